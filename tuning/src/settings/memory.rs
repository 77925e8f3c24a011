//! Memory settings: transparent hugepages, swappiness, the memlock limit and core dumps.

use super::{sysctl_item, with_fixes, with_note, Context, Doc, Judgement, Setting};
use crate::report::{Fix, Item, Status};
use crate::sysroot::{choices, selected_value, SysRoot};

pub const THP: Setting = Setting {
    name: "thp",
    title: "Transparent hugepages",
    check: check_thp,
};

pub const SWAPPINESS: Setting = Setting {
    name: "swappiness",
    title: "Swappiness",
    check: check_swappiness,
};

pub const MEMLOCK: Setting = Setting {
    name: "memlock",
    title: "Locked-memory limit (RLIMIT_MEMLOCK)",
    check: check_memlock,
};

pub const CORE_DUMP: Setting = Setting {
    name: "core-dump",
    title: "Core dump settings",
    check: check_core_dump,
};

const THP_DOC: Doc = Doc {
    setting: THP.name,
    title: THP.title,
    why: "With `always`, any page fault on a shard core may stall in direct compaction to \
          assemble a huge page, and khugepaged rewrites memory behind the broker's back; both \
          show up as tail-latency spikes. `madvise` lets the broker opt in for its large, \
          long-lived buffer pools without imposing stalls elsewhere.",
};

const SWAPPINESS_DOC: Doc = Doc {
    setting: SWAPPINESS.name,
    title: SWAPPINESS.title,
    why: "The broker keeps its working set in its own buffers and never relies on the page \
          cache for data (direct I/O), so swapping any of it out only converts memory pressure \
          into multi-millisecond stalls on a shard. 1 avoids swap except to dodge the OOM \
          killer.",
};

const MEMLOCK_DOC: Doc = Doc {
    setting: MEMLOCK.name,
    title: MEMLOCK.title,
    why: "io_uring rings (on kernels before 5.12) and registered I/O buffers count against \
          RLIMIT_MEMLOCK; glommio needs at least 512 KiB per process and the broker registers \
          its direct-I/O buffer pools, so a low limit makes ring setup or buffer registration \
          fail at start-up.",
};

const CORE_DUMP_DOC: Doc = Doc {
    setting: CORE_DUMP.name,
    title: CORE_DUMP.title,
    why: "A broker core dump contains every buffer pool and can be tens of GiB. With a \
          relative core_pattern it lands in the working directory, often the data disk, where \
          it can fill the log's filesystem and slow the restart; pipe it to systemd-coredump or \
          an absolute path on another disk.",
};

const THP_DIR: &str = "/sys/kernel/mm/transparent_hugepage";

/// Checks one THP knob (`enabled` or `defrag`).
fn thp_item(ctx: &Context, knob: &str, good: &[&str], recommended: &str) -> Item {
    let path = format!("{THP_DIR}/{knob}");
    let change = format!(
        "echo {recommended} > {path}; persist with transparent_hugepage={recommended} on the \
         kernel command line (enabled) or a tmpfiles.d entry"
    );
    match ctx.root.read(&path) {
        Err(e) => with_note(
            THP_DOC.item(
                knob,
                "unreadable",
                recommended,
                Status::Unreadable,
                change,
                "nothing to revert",
            ),
            e.to_string(),
        ),
        Ok(raw) => {
            let current = selected_value(&raw);
            let revert = format!("echo {current} > {path}, or `corelog tune --revert`");
            let ok = good.contains(&current.as_str());
            let offered = choices(&raw).iter().any(|c| c == recommended);
            let fixes = if !ok && offered {
                vec![Fix {
                    path: path.clone(),
                    value: recommended.to_string(),
                }]
            } else {
                Vec::new()
            };
            with_fixes(
                THP_DOC.item(
                    knob,
                    current,
                    recommended,
                    if ok { Status::Ok } else { Status::Warn },
                    change,
                    revert,
                ),
                fixes,
            )
        }
    }
}

fn check_thp(ctx: &Context) -> Vec<Item> {
    vec![
        thp_item(ctx, "enabled", &["madvise", "never"], "madvise"),
        thp_item(
            ctx,
            "defrag",
            &["madvise", "defer+madvise", "defer", "never"],
            "madvise",
        ),
    ]
}

fn check_swappiness(ctx: &Context) -> Vec<Item> {
    vec![sysctl_item(
        ctx,
        &SWAPPINESS_DOC,
        "vm.swappiness",
        "1",
        "1",
        |s| {
            let v = super::parse_u64(s)?;
            Ok(if v <= 10 {
                Judgement {
                    status: Status::Ok,
                    fix: None,
                }
            } else {
                Judgement {
                    status: Status::Warn,
                    fix: Some("1".into()),
                }
            })
        },
    )]
}

/// A soft/hard pair from `/proc/self/limits`; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Reads one row of `/proc/self/limits` (e.g. "Max locked memory") below the root, so tests
/// can fake resource limits the same way as sysfs files.
pub fn read_limit(root: &SysRoot, row: &str) -> Result<Limit, String> {
    let text = root.read("/proc/self/limits").map_err(|e| e.to_string())?;
    parse_limit(&text, row)
}

/// Parses one row of `/proc/self/limits` text.
pub fn parse_limit(text: &str, row: &str) -> Result<Limit, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(row))
        .ok_or_else(|| format!("no {row:?} row in /proc/self/limits"))?;
    let mut values = line[row.len()..].split_whitespace();
    let parse = |v: Option<&str>| -> Result<Option<u64>, String> {
        match v {
            Some("unlimited") => Ok(None),
            Some(n) => n
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("bad value {n:?} in {row:?} row")),
            None => Err(format!("truncated {row:?} row")),
        }
    };
    Ok(Limit {
        soft: parse(values.next())?,
        hard: parse(values.next())?,
    })
}

/// Formats a limit value for humans.
pub fn format_limit(v: Option<u64>) -> String {
    match v {
        None => "unlimited".to_string(),
        Some(b) if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        Some(b) if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        Some(b) => format!("{b} bytes"),
    }
}

/// Below this, glommio cannot set up its rings at all.
pub const MEMLOCK_MIN_BYTES: u64 = 512 << 10;
/// At or above this the broker's registered buffer pools fit comfortably.
pub const MEMLOCK_GOOD_BYTES: u64 = 1 << 30;

/// Judges a soft memlock limit.
pub fn judge_memlock(soft: Option<u64>) -> Status {
    match soft {
        None => Status::Ok,
        Some(b) if b >= MEMLOCK_GOOD_BYTES => Status::Ok,
        Some(b) if b >= MEMLOCK_MIN_BYTES => Status::Warn,
        Some(_) => Status::Fail,
    }
}

fn check_memlock(ctx: &Context) -> Vec<Item> {
    let recommended = "unlimited";
    let change = "systemd unit: LimitMEMLOCK=infinity; otherwise `corelog - memlock unlimited` \
                  in /etc/security/limits.d/corelog.conf (or ulimit -l unlimited in the \
                  launching shell)";
    let revert = "remove the LimitMEMLOCK line or the limits.d entry";
    match read_limit(&ctx.root, "Max locked memory") {
        Err(e) => vec![with_note(
            MEMLOCK_DOC.item(
                "this process",
                "unreadable",
                recommended,
                Status::Unreadable,
                change,
                revert,
            ),
            e,
        )],
        Ok(l) => {
            let item = MEMLOCK_DOC.item(
                "this process",
                format!(
                    "soft {}, hard {}",
                    format_limit(l.soft),
                    format_limit(l.hard)
                ),
                recommended,
                judge_memlock(l.soft),
                change,
                revert,
            );
            vec![with_note(
                item,
                "this is the limit of the process running the check; the broker inherits its \
                 own from its service manager",
            )]
        }
    }
}

fn check_core_dump(ctx: &Context) -> Vec<Item> {
    let recommended = "a pipe (|systemd-coredump) or an absolute path off the data disk";
    let change = "sysctl -w kernel.core_pattern='|/usr/lib/systemd/systemd-coredump %P %u %g \
                  %s %t %c %h' (installing systemd-coredump does this), or an absolute \
                  directory on another disk; LimitCORE= in the unit bounds the size";
    let pattern_path = "/proc/sys/kernel/core_pattern";
    let pattern = ctx.root.read_trimmed(pattern_path);
    let core_limit = read_limit(&ctx.root, "Max core file size");
    let mut items = Vec::new();
    match pattern {
        Err(e) => items.push(with_note(
            CORE_DUMP_DOC.item(
                "kernel.core_pattern",
                "unreadable",
                recommended,
                Status::Unreadable,
                change,
                "nothing to revert",
            ),
            e.to_string(),
        )),
        Ok(p) => {
            let revert = format!("sysctl -w kernel.core_pattern='{p}'");
            let relative = !(p.starts_with('|') || p.starts_with('/'));
            let dumps_enabled = !matches!(core_limit, Ok(Limit { soft: Some(0), .. }));
            let (status, note) = if relative && dumps_enabled {
                (
                    Status::Warn,
                    Some("relative pattern: dumps land in the broker's working directory"),
                )
            } else if relative {
                (
                    Status::Info,
                    Some("relative pattern, but RLIMIT_CORE is 0 so no dumps are written"),
                )
            } else {
                (Status::Ok, None)
            };
            let item = CORE_DUMP_DOC.item(
                "kernel.core_pattern",
                p,
                recommended,
                status,
                change,
                revert,
            );
            items.push(match note {
                Some(n) => with_note(item, n),
                None => item,
            });
        }
    }
    let limit_change = "LimitCORE= in the systemd unit (0 disables, infinity keeps whole dumps)";
    items.push(match core_limit {
        Err(e) => with_note(
            CORE_DUMP_DOC.item(
                "RLIMIT_CORE",
                "unreadable",
                "site policy",
                Status::Unreadable,
                limit_change,
                "nothing to revert",
            ),
            e,
        ),
        Ok(l) => CORE_DUMP_DOC.item(
            "RLIMIT_CORE",
            format!(
                "soft {}, hard {}",
                format_limit(l.soft),
                format_limit(l.hard)
            ),
            "site policy",
            Status::Info,
            limit_change,
            "restore the previous LimitCORE= value",
        ),
    });
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max core file size        0                    unlimited            bytes
Max locked memory         8388608              8388608              bytes
";

    #[test]
    fn limits_parsing() {
        let l = parse_limit(LIMITS, "Max locked memory").expect("row");
        assert_eq!(l.soft, Some(8 << 20));
        let c = parse_limit(LIMITS, "Max core file size").expect("row");
        assert_eq!(c.hard, None);
        assert!(parse_limit(LIMITS, "Max open files").is_err());
        assert!(parse_limit("Max locked memory  x y", "Max locked memory").is_err());
        assert_eq!(format_limit(Some(8 << 20)), "8 MiB");
        assert_eq!(judge_memlock(Some(64 << 10)), Status::Fail);
        assert_eq!(judge_memlock(Some(8 << 20)), Status::Warn);
        assert_eq!(judge_memlock(None), Status::Ok);
    }
}
