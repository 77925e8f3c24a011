//! CPU time of another process (the broker under test), from
//! `/proc/PID/stat`, so a run can record the broker's CPU per message.
//!
//! `utime` and `stime` there (fields 14 and 15) are the whole process's,
//! all threads together, in clock ticks (`sysconf(_SC_CLK_TCK)`, usually 100
//! a second). A tick is 10 ms: over a measured window of several seconds on
//! a busy broker that is well under 1% of what is measured.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// utime + stime in clock ticks from the text of `/proc/PID/stat`.
///
/// The second field, `comm`, is the command name in parentheses and may
/// itself hold spaces and parentheses (a thread may name itself `a) b (c`),
/// so the fields are counted from after the *last* `)`: there the third
/// field (`state`) begins, and utime and stime are the 12th and 13th fields
/// of that rest.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Clock ticks a second, as `/proc/PID/stat` counts CPU time.
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has reported 100 on every architecture for decades; a failed
    // call falls back to it rather than failing the run.
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// CPU time (user + system, all threads) that process `pid` has used.
pub fn process_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is the broker's pid {pid} right?)"))?;
    let Some(ticks) = parse_stat_cpu_ticks(&text) else {
        bail!("{path}: no utime and stime in {text:?}");
    };
    let per_s = clock_ticks_per_s();
    Ok(Duration::from_secs(ticks / per_s)
        + Duration::from_nanos((ticks % per_s) * 1_000_000_000 / per_s))
}

/// The broker's CPU over a measured window: CPU seconds and microseconds
/// of CPU per message acknowledged in that window (`None` without
/// messages).
pub fn cpu_per_message(cpu: Duration, messages: u64) -> (f64, Option<f64>) {
    let cpu_s = cpu.as_secs_f64();
    let per_msg_us = (messages > 0).then(|| cpu_s * 1e6 / messages as f64);
    (cpu_s, per_msg_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_last_parenthesis() {
        // A real line (kernel 6.x), utime 1234 and stime 567.
        let plain = "4242 (corelog) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 \
                     3 0 100 2000000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 17 0 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(plain), Some(1801));
        // comm with spaces and parentheses of its own must not shift the
        // fields.
        let odd = "77 (a) b (c) d) R 1 77 77 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_cpu_ticks(odd), Some(30));
        // Truncated or garbled text is no measurement, not zero.
        assert_eq!(parse_stat_cpu_ticks("77 (x) R 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis 1 2 3"), None);
        assert_eq!(
            parse_stat_cpu_ticks("7 (x) R 1 1 1 0 -1 0 0 0 0 0 abc 2"),
            None
        );
    }

    #[test]
    fn own_process_cpu_is_readable_and_grows() {
        let pid = std::process::id();
        let before = process_cpu(pid).expect("own stat");
        // Burn some CPU so at least a tick or two passes.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = process_cpu(pid).expect("own stat");
        assert!(after >= before, "{before:?} -> {after:?}");
        assert!(process_cpu(u32::MAX).is_err());
    }

    #[test]
    fn cpu_per_message_in_microseconds() {
        let (s, per) = cpu_per_message(Duration::from_millis(1500), 100_000);
        assert!((s - 1.5).abs() < 1e-12);
        assert!(per.is_some_and(|u| (u - 15.0).abs() < 1e-9));
        assert_eq!(cpu_per_message(Duration::from_secs(1), 0).1, None);
    }
}
