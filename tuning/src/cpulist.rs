//! Parsing and formatting of the kernel's CPU list syntax (`0-3,8,10-11`).

use std::collections::BTreeSet;

/// A set of CPU numbers.
pub type CpuSet = BTreeSet<u32>;

/// Parses a CPU list such as `0-3,8` (the format of `/sys/devices/system/cpu/online` and
/// `smp_affinity_list`). Returns an error naming the bad part instead of guessing.
pub fn parse(list: &str) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for part in list.trim().split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // The kernel also accepts a stride (`0-15:2`), which we honour because hand-written
        // shard lists may use it.
        let (range, stride) = match part.split_once(':') {
            Some((r, s)) => {
                let stride: u32 = s
                    .parse()
                    .map_err(|_| format!("bad stride in CPU list part {part:?}"))?;
                (r, stride.max(1))
            }
            None => (part, 1),
        };
        match range.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad CPU number in {part:?}"))?;
                let b: u32 = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad CPU number in {part:?}"))?;
                if a > b {
                    return Err(format!("descending CPU range {part:?}"));
                }
                if b - a > 65_536 {
                    return Err(format!("CPU range {part:?} is implausibly large"));
                }
                set.extend((a..=b).step_by(stride as usize));
            }
            None => {
                let n: u32 = range
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad CPU number {part:?}"))?;
                set.insert(n);
            }
        }
    }
    Ok(set)
}

/// Formats a CPU set compactly, e.g. `{0,1,2,3,8}` becomes `0-3,8`.
pub fn format(set: &CpuSet) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        if start == end {
            parts.push(start.to_string());
        } else {
            parts.push(format!("{start}-{end}"));
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = parse("0-3,8,10-11\n").expect("parse");
        assert_eq!(s.len(), 7);
        assert_eq!(format(&s), "0-3,8,10-11");
        assert_eq!(format(&parse("0-6:2").expect("parse")), "0,2,4,6");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("a-b").is_err());
        assert!(parse("5-1").is_err());
        assert!(parse("0-4294967295").is_err());
        assert!(parse("").expect("empty is fine").is_empty());
    }
}
