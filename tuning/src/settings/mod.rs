//! The registry of settings `corelog tune` knows, and helpers shared by the tuners.
//!
//! Each tuner module exposes check functions that read the current state below a [`SysRoot`]
//! and return [`Item`]s. An item carries the file writes (`fixes`) that `--apply` performs, so
//! apply and revert are generic and no tuner writes anything itself.

pub mod cpu;
pub mod disk;
pub mod io_uring;
pub mod memory;
pub mod net;

use crate::cpulist::CpuSet;
use crate::report::{Fix, Item, Status};
use crate::sysroot::SysRoot;
use std::path::PathBuf;

/// Everything a check needs to know about the host and the broker's layout.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where `/proc` and `/sys` are read from.
    pub root: SysRoot,
    /// The broker's data directory (an absolute path as seen inside the root).
    pub data_dir: PathBuf,
    /// The cores the broker's shards run on; `None` means every online CPU.
    pub shard_cpus: Option<CpuSet>,
    /// Whether to try a real `io_uring_setup` in this process. Only meaningful when the root
    /// is the real machine, because a fake tree cannot describe the running kernel.
    pub live_probe: bool,
}

impl Context {
    /// A context for `root` and `data_dir` with all shards on all CPUs and the live io_uring
    /// probe enabled only for the real root.
    pub fn new(root: SysRoot, data_dir: impl Into<PathBuf>) -> Context {
        let live_probe = root.is_real();
        Context {
            root,
            data_dir: data_dir.into(),
            shard_cpus: None,
            live_probe,
        }
    }
}

/// A setting that can be named with `--only`.
pub struct Setting {
    /// The stable name used on the command line and in reports.
    pub name: &'static str,
    /// A short human title.
    pub title: &'static str,
    /// Reads the current state and returns one or more items.
    pub check: fn(&Context) -> Vec<Item>,
}

/// All settings in report order.
pub fn all() -> &'static [Setting] {
    &SETTINGS
}

static SETTINGS: [Setting; 17] = [
    cpu::GOVERNOR,
    cpu::IRQ_AFFINITY,
    cpu::CLOCKSOURCE,
    disk::IO_SCHEDULER,
    disk::NOMERGES,
    disk::WRITE_CACHE,
    disk::READ_AHEAD,
    disk::DATA_FS,
    memory::THP,
    memory::SWAPPINESS,
    memory::MEMLOCK,
    memory::CORE_DUMP,
    io_uring::IO_URING,
    io_uring::AIO_MAX_NR,
    net::SOMAXCONN,
    net::TCP_BACKLOG,
    net::TCP_BUFFERS,
];

/// The names of all settings, for error messages and `--help`.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name).collect()
}

/// Looks a setting up by name.
pub fn find(name: &str) -> Option<&'static Setting> {
    all().iter().find(|s| s.name == name)
}

/// Checks the selected settings (all when `only` is empty). Unknown names are an error so a
/// typo in `--only` never silently does nothing.
pub fn check(ctx: &Context, only: &[String]) -> Result<Vec<Item>, String> {
    let selected = select(only)?;
    Ok(selected.iter().flat_map(|s| (s.check)(ctx)).collect())
}

/// Resolves `--only` names to settings, keeping report order.
pub fn select(only: &[String]) -> Result<Vec<&'static Setting>, String> {
    for name in only {
        if find(name).is_none() {
            return Err(format!(
                "unknown setting {name:?}; known settings: {}",
                names().join(", ")
            ));
        }
    }
    Ok(all()
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|n| n == s.name))
        .collect())
}

/// Static documentation of a setting, from which items are built.
pub(crate) struct Doc {
    pub setting: &'static str,
    pub title: &'static str,
    pub why: &'static str,
}

impl Doc {
    /// Builds an item with the given judgement.
    #[allow(clippy::too_many_arguments)]
    pub fn item(
        &self,
        subject: impl Into<String>,
        current: impl Into<String>,
        recommended: impl Into<String>,
        status: Status,
        change: impl Into<String>,
        revert: impl Into<String>,
    ) -> Item {
        Item {
            setting: self.setting.to_string(),
            title: self.title.to_string(),
            subject: subject.into(),
            current: current.into(),
            recommended: recommended.into(),
            status,
            why: self.why.to_string(),
            change: change.into(),
            revert: revert.into(),
            note: None,
            fixes: Vec::new(),
        }
    }
}

/// Adds a note to an item (builder style).
pub(crate) fn with_note(mut item: Item, note: impl Into<String>) -> Item {
    item.note = Some(note.into());
    item
}

/// Adds fixes to an item (builder style).
pub(crate) fn with_fixes(mut item: Item, fixes: Vec<Fix>) -> Item {
    item.fixes = fixes;
    item
}

/// The outcome of judging a sysctl value.
pub(crate) struct Judgement {
    pub status: Status,
    /// The value `--apply` writes, when the setting should and can be changed.
    pub fix: Option<String>,
}

/// Maps a sysctl name such as `vm.swappiness` to its `/proc/sys` path.
pub(crate) fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// Checks one sysctl: reads it, judges it, and describes how to change and revert it.
///
/// `recommended` is what the report shows (it may be a bound such as `>= 4096`); `example` is
/// a concrete value for the hand-written `sysctl -w` command when the judge proposes none.
pub(crate) fn sysctl_item(
    ctx: &Context,
    doc: &Doc,
    name: &str,
    recommended: &str,
    example: &str,
    judge: impl Fn(&str) -> Result<Judgement, String>,
) -> Item {
    let path = sysctl_path(name);
    let change = |value: &str| {
        format!(
            "sysctl -w {name}='{value}'; persist with a line `{name} = {value}` in \
             /etc/sysctl.d/90-corelog.conf"
        )
    };
    match ctx.root.read(&path) {
        Err(e) => with_note(
            doc.item(
                name,
                "unreadable",
                recommended,
                Status::Unreadable,
                change(example),
                "nothing to revert",
            ),
            e.to_string(),
        ),
        Ok(raw) => {
            let current = normalise_ws(&raw);
            let revert = format!(
                "sysctl -w {name}='{current}' and remove the line from \
                 /etc/sysctl.d/90-corelog.conf, or `corelog tune --revert`"
            );
            match judge(&current) {
                Err(e) => with_note(
                    doc.item(
                        name,
                        format!("unreadable ({current:?})"),
                        recommended,
                        Status::Unreadable,
                        change(example),
                        revert,
                    ),
                    e,
                ),
                Ok(j) => {
                    let change = match (&j.fix, j.status) {
                        (Some(v), _) => change(v),
                        // Suggesting the example here could lower a value that is already
                        // above the recommended bound, so say so instead.
                        (None, Status::Ok) => {
                            format!("no change needed; if ever required: {}", change(&current))
                        }
                        (None, _) => change(example),
                    };
                    let fixes = j
                        .fix
                        .map(|value| vec![Fix { path, value }])
                        .unwrap_or_default();
                    with_fixes(
                        doc.item(name, current, recommended, j.status, change, revert),
                        fixes,
                    )
                }
            }
        }
    }
}

/// Collapses runs of whitespace (tabs in `tcp_rmem`) into single spaces.
pub(crate) fn normalise_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses an unsigned integer sysctl value with a readable error.
pub(crate) fn parse_u64(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|e| format!("not an unsigned integer: {s:?} ({e})"))
}

/// Judges a value that must be at least `min`; `--apply` raises it to `min`.
pub(crate) fn at_least(min: u64) -> impl Fn(&str) -> Result<Judgement, String> {
    move |s| {
        let v = parse_u64(s)?;
        Ok(if v >= min {
            Judgement {
                status: Status::Ok,
                fix: None,
            }
        } else {
            Judgement {
                status: Status::Warn,
                fix: Some(min.to_string()),
            }
        })
    }
}

/// Reads the online CPU set, falling back to the `cpuN` directories when the `online` file
/// is missing.
pub(crate) fn online_cpus(root: &SysRoot) -> Result<CpuSet, String> {
    match root.read("/sys/devices/system/cpu/online") {
        Ok(s) => crate::cpulist::parse(&s),
        Err(e) => {
            let names = root
                .list_dir("/sys/devices/system/cpu")
                .map_err(|_| e.to_string())?;
            let set: CpuSet = names
                .iter()
                .filter_map(|n| n.strip_prefix("cpu"))
                .filter_map(|n| n.parse::<u32>().ok())
                .collect();
            if set.is_empty() {
                Err(e.to_string())
            } else {
                Ok(set)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_findable() {
        let names = names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for n in names {
            assert!(find(n).is_some());
        }
        assert!(select(&["nope".to_string()]).is_err());
    }

    #[test]
    fn sysctl_paths() {
        assert_eq!(sysctl_path("vm.swappiness"), "/proc/sys/vm/swappiness");
        assert_eq!(
            normalise_ws("4096\t131072\t6291456\n"),
            "4096 131072 6291456"
        );
    }
}
