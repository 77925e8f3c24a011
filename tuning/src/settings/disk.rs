//! Block-device and filesystem settings: I/O scheduler, nomerges, write cache, read-ahead,
//! and the filesystem holding the data directory.

use super::{with_fixes, with_note, Context, Doc, Setting};
use crate::report::{Fix, Item, Status};
use crate::sysroot::{choices, selected_value, SysRoot};
use std::path::{Component, Path, PathBuf};

pub const IO_SCHEDULER: Setting = Setting {
    name: "io-scheduler",
    title: "Disk I/O scheduler",
    check: check_scheduler,
};

pub const NOMERGES: Setting = Setting {
    name: "nomerges",
    title: "Block request merging",
    check: check_nomerges,
};

pub const WRITE_CACHE: Setting = Setting {
    name: "write-cache",
    title: "Disk write cache mode",
    check: check_write_cache,
};

pub const READ_AHEAD: Setting = Setting {
    name: "read-ahead",
    title: "Disk read-ahead",
    check: check_read_ahead,
};

pub const DATA_FS: Setting = Setting {
    name: "data-fs",
    title: "Filesystem of the data directory",
    check: check_data_fs,
};

const SCHEDULER_DOC: Doc = Doc {
    setting: IO_SCHEDULER.name,
    title: IO_SCHEDULER.title,
    why: "The broker already issues large, aligned, sequential direct-I/O writes and bounds its \
          own queue depth; an elevator on a fast NVMe only adds per-request CPU and locking. \
          `none` passes requests straight to the device's hardware queues. Rotational disks still \
          benefit from mq-deadline.",
};

const NOMERGES_DOC: Doc = Doc {
    setting: NOMERGES.name,
    title: NOMERGES.title,
    why: "Merging looks for adjacent requests to coalesce. The broker's writes are already \
          chunked to the size the device likes, so on SSDs the search is wasted CPU on the shard \
          core; 2 disables it entirely.",
};

const WRITE_CACHE_DOC: Doc = Doc {
    setting: WRITE_CACHE.name,
    title: WRITE_CACHE.title,
    why: "With `write back` the kernel sends a cache flush on every fdatasync, which is what \
          makes an acknowledged produce durable. Drives with power-loss protection report \
          `write through` and flushes are free. Forcing `write through` on a drive with a \
          volatile cache would make acknowledged writes lossy, so this is reported, not changed.",
};

const READ_AHEAD_DOC: Doc = Doc {
    setting: READ_AHEAD.name,
    title: READ_AHEAD.title,
    why: "The broker reads with O_DIRECT, which bypasses read-ahead, but recovery scans and \
          tools that read segments through the page cache do not. Large values (some distros \
          set megabytes) waste device bandwidth the produce path needs.",
};

const DATA_FS_DOC: Doc = Doc {
    setting: DATA_FS.name,
    title: DATA_FS.title,
    why: "Direct I/O with io_uring needs a local filesystem that supports O_DIRECT and \
          non-blocking appends: XFS is the reference (best-tested async direct I/O and \
          preallocation), ext4 works. Network, in-memory and copy-on-write filesystems lose \
          data, block the ring, or turn direct I/O into buffered I/O.",
};

/// Block devices worth tuning: skip loop, RAM, optical and device-mapper nodes whose queue
/// settings have no effect on the underlying hardware.
fn block_devices(root: &SysRoot) -> Result<Vec<String>, String> {
    const SKIP: [&str; 8] = ["loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md"];
    root.list_dir("/sys/block")
        .map(|names| {
            names
                .into_iter()
                .filter(|n| !SKIP.iter().any(|p| n.starts_with(p)))
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// True for NVMe and other non-rotational devices.
fn is_solid_state(root: &SysRoot, dev: &str) -> bool {
    dev.starts_with("nvme")
        || root
            .read_trimmed(format!("/sys/block/{dev}/queue/rotational"))
            .map(|r| r == "0")
            .unwrap_or(false)
}

/// Produces one item per device for a queue attribute, or one unreadable item when
/// `/sys/block` itself cannot be listed.
fn per_device(ctx: &Context, doc: &Doc, judge: impl Fn(&SysRoot, &str) -> Item) -> Vec<Item> {
    match block_devices(&ctx.root) {
        Err(e) => vec![with_note(
            doc.item(
                "block devices",
                "unreadable",
                "see below",
                Status::Unreadable,
                "see README",
                "nothing to revert",
            ),
            e,
        )],
        Ok(devs) if devs.is_empty() => vec![doc.item(
            "block devices",
            "no physical block devices in /sys/block",
            "n/a",
            Status::Info,
            "n/a",
            "n/a",
        )],
        Ok(devs) => devs.iter().map(|d| judge(&ctx.root, d)).collect(),
    }
}

fn check_scheduler(ctx: &Context) -> Vec<Item> {
    per_device(ctx, &SCHEDULER_DOC, |root, dev| {
        let path = format!("/sys/block/{dev}/queue/scheduler");
        let recommended = if is_solid_state(root, dev) {
            "none"
        } else {
            "mq-deadline"
        };
        let change = format!(
            "echo {recommended} > {path}; persist with a udev rule: ACTION==\"add|change\", \
             KERNEL==\"{dev}\", ATTR{{queue/scheduler}}=\"{recommended}\""
        );
        match root.read(&path) {
            Err(e) => with_note(
                SCHEDULER_DOC.item(
                    dev,
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
                let ok = current == recommended;
                let offered = choices(&raw).iter().any(|c| c == recommended);
                let fixes = if !ok && offered {
                    vec![Fix {
                        path: path.clone(),
                        value: recommended.to_string(),
                    }]
                } else {
                    Vec::new()
                };
                let item = with_fixes(
                    SCHEDULER_DOC.item(
                        dev,
                        current,
                        recommended,
                        if ok { Status::Ok } else { Status::Warn },
                        change,
                        revert,
                    ),
                    fixes,
                );
                if !ok && !offered {
                    with_note(
                        item,
                        format!("the kernel does not offer {recommended} here"),
                    )
                } else {
                    item
                }
            }
        }
    })
}

fn check_nomerges(ctx: &Context) -> Vec<Item> {
    per_device(ctx, &NOMERGES_DOC, |root, dev| {
        let path = format!("/sys/block/{dev}/queue/nomerges");
        let recommended = if is_solid_state(root, dev) { "2" } else { "0" };
        let change = format!(
            "echo {recommended} > {path}; persist with a udev rule setting \
             ATTR{{queue/nomerges}}=\"{recommended}\""
        );
        match root.read_trimmed(&path) {
            Err(e) => with_note(
                NOMERGES_DOC.item(
                    dev,
                    "unreadable",
                    recommended,
                    Status::Unreadable,
                    change,
                    "nothing to revert",
                ),
                e.to_string(),
            ),
            Ok(current) => {
                let revert = format!("echo {current} > {path}, or `corelog tune --revert`");
                let ok = current == recommended;
                let fixes = if ok {
                    Vec::new()
                } else {
                    vec![Fix {
                        path: path.clone(),
                        value: recommended.to_string(),
                    }]
                };
                with_fixes(
                    NOMERGES_DOC.item(
                        dev,
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
    })
}

fn check_write_cache(ctx: &Context) -> Vec<Item> {
    per_device(ctx, &WRITE_CACHE_DOC, |root, dev| {
        let path = format!("/sys/block/{dev}/queue/write_cache");
        let recommended =
            "as reported by the drive (write through only with power-loss protection)";
        let change =
            format!("only if the drive has power-loss protection: echo 'write through' > {path}");
        match root.read_trimmed(&path) {
            Err(e) => with_note(
                WRITE_CACHE_DOC.item(
                    dev,
                    "unreadable",
                    recommended,
                    Status::Unreadable,
                    change,
                    "nothing to revert",
                ),
                e.to_string(),
            ),
            Ok(current) => {
                let revert = format!("echo '{current}' > {path}");
                let note = if current == "write back" {
                    "every fdatasync issues a device cache flush; expect higher fdatasync \
                     latency unless the drive has power-loss protection"
                } else {
                    "fdatasync needs no cache flush on this device"
                };
                with_note(
                    WRITE_CACHE_DOC.item(dev, current, recommended, Status::Info, change, revert),
                    note,
                )
            }
        }
    })
}

/// Read-ahead above this many KiB is reported; 128 KiB is the kernel default.
const MAX_READ_AHEAD_KB: u64 = 128;

fn check_read_ahead(ctx: &Context) -> Vec<Item> {
    per_device(ctx, &READ_AHEAD_DOC, |_root, dev| {
        let path = format!("/sys/block/{dev}/queue/read_ahead_kb");
        let recommended = format!("<= {MAX_READ_AHEAD_KB}");
        let change = format!(
            "echo {MAX_READ_AHEAD_KB} > {path} (or blockdev --setra 256 /dev/{dev}); persist \
             with a udev rule setting ATTR{{queue/read_ahead_kb}}=\"{MAX_READ_AHEAD_KB}\""
        );
        match ctx.root.read_trimmed(&path) {
            Err(e) => with_note(
                READ_AHEAD_DOC.item(
                    dev,
                    "unreadable",
                    recommended,
                    Status::Unreadable,
                    change,
                    "nothing to revert",
                ),
                e.to_string(),
            ),
            Ok(current) => {
                let revert = format!("echo {current} > {path}, or `corelog tune --revert`");
                match current.parse::<u64>() {
                    Err(_) => with_note(
                        READ_AHEAD_DOC.item(
                            dev,
                            format!("unreadable ({current:?})"),
                            recommended,
                            Status::Unreadable,
                            change,
                            revert,
                        ),
                        "not an integer",
                    ),
                    Ok(kb) => {
                        let ok = kb <= MAX_READ_AHEAD_KB;
                        let fixes = if ok {
                            Vec::new()
                        } else {
                            vec![Fix {
                                path: path.clone(),
                                value: MAX_READ_AHEAD_KB.to_string(),
                            }]
                        };
                        with_fixes(
                            READ_AHEAD_DOC.item(
                                dev,
                                format!("{kb} KiB"),
                                format!("{recommended} KiB"),
                                if ok { Status::Ok } else { Status::Warn },
                                change,
                                revert,
                            ),
                            fixes,
                        )
                    }
                }
            }
        }
    })
}

/// One parsed line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the backing device.
    pub device_number: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,noatime`).
    pub mount_options: String,
    /// Filesystem type (`xfs`).
    pub fs_type: String,
    /// The mount source (`/dev/nvme0n1p1`).
    pub source: String,
    /// Superblock options (`rw,attr2,inode64`).
    pub super_options: String,
}

/// Undoes the octal escapes (`\040` for space) that mountinfo uses in paths.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Work on bytes, not string slices, so a multi-byte character after a backslash can
        // never split a UTF-8 boundary.
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped rather than failing the check.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // The optional fields end at a lone "-"; the three fields after it are fixed.
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        mounts.push(Mount {
            device_number: fields[2].to_string(),
            mount_point: PathBuf::from(unescape_mount_path(fields[4])),
            mount_options: fields[5].to_string(),
            fs_type: fields[sep + 1].to_string(),
            source: unescape_mount_path(fields[sep + 2]),
            super_options: fields.get(sep + 3).copied().unwrap_or("").to_string(),
        });
    }
    mounts
}

/// Normalises a path lexically (no filesystem access, so it works for fake roots).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Finds the mount that holds `dir`: the last-mounted entry with the longest matching mount
/// point, as the kernel resolves it.
pub fn mount_for<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    let dir = lexical(dir);
    let mut best: Option<&Mount> = None;
    for m in mounts {
        if dir.starts_with(&m.mount_point) {
            let better = best
                .map(|b| m.mount_point.components().count() >= b.mount_point.components().count())
                .unwrap_or(true);
            if better {
                best = Some(m);
            }
        }
    }
    best
}

/// Resolves the data directory the way the broker will see it: through symlinks on the real
/// machine, lexically on a fake root.
pub(crate) fn resolve_data_dir(ctx: &Context) -> PathBuf {
    if ctx.root.is_real() {
        // Walk up to the nearest existing ancestor so a not-yet-created data dir still maps to
        // the filesystem it will be created on.
        let mut probe = lexical(&ctx.data_dir);
        let mut tail = Vec::new();
        loop {
            if let Ok(c) = std::fs::canonicalize(&probe) {
                let mut full = c;
                for t in tail.iter().rev() {
                    full.push(t);
                }
                return full;
            }
            match (probe.file_name().map(|f| f.to_os_string()), probe.parent()) {
                (Some(name), Some(parent)) => {
                    tail.push(name);
                    probe = parent.to_path_buf();
                }
                _ => return lexical(&ctx.data_dir),
            }
        }
    }
    lexical(&ctx.data_dir)
}

/// Filesystems that cannot hold the log safely: data vanishes on reboot, or O_DIRECT and
/// fdatasync do not mean what the broker relies on.
const UNSUITABLE_FS: [&str; 8] = [
    "tmpfs", "ramfs", "nfs", "nfs4", "cifs", "smb3", "9p", "fuse",
];

fn check_data_fs(ctx: &Context) -> Vec<Item> {
    let recommended = "xfs (or ext4), mounted with noatime";
    let change = "put the data directory on a dedicated XFS filesystem: mkfs.xfs /dev/DEV; \
                  mount -o noatime /dev/DEV /var/lib/corelog (and add it to /etc/fstab)";
    let revert = "not changed by corelog tune";
    let dir = resolve_data_dir(ctx);
    let subject = dir.display().to_string();
    let mounts = match ctx.root.read("/proc/self/mountinfo") {
        Ok(t) => parse_mountinfo(&t),
        Err(e) => {
            return vec![with_note(
                DATA_FS_DOC.item(
                    subject,
                    "unreadable",
                    recommended,
                    Status::Unreadable,
                    change,
                    revert,
                ),
                e.to_string(),
            )]
        }
    };
    let Some(m) = mount_for(&mounts, &dir) else {
        return vec![with_note(
            DATA_FS_DOC.item(
                subject,
                "unreadable",
                recommended,
                Status::Unreadable,
                change,
                revert,
            ),
            "no mount in /proc/self/mountinfo contains the data directory",
        )];
    };
    let opts: Vec<&str> = m
        .mount_options
        .split(',')
        .chain(m.super_options.split(','))
        .collect();
    let current = format!(
        "{} on {} ({}) mounted at {} with {}",
        m.fs_type,
        m.source,
        m.device_number,
        m.mount_point.display(),
        m.mount_options
    );
    let mut problems = Vec::new();
    let fs = m.fs_type.as_str();
    let status = if UNSUITABLE_FS
        .iter()
        .any(|u| fs == *u || fs.starts_with("fuse"))
    {
        problems.push(format!(
            "{fs} is not a local persistent filesystem with O_DIRECT"
        ));
        Status::Fail
    } else if fs == "xfs" || fs == "ext4" {
        if opts.contains(&"sync") || opts.contains(&"dirsync") {
            problems.push("`sync` makes every write synchronous".to_string());
        }
        if opts.contains(&"data=journal") {
            problems.push("ext4 data=journal disables direct I/O".to_string());
        }
        if opts.contains(&"strictatime") {
            problems.push("strictatime writes an inode update on every read".to_string());
        }
        if problems.is_empty() {
            Status::Ok
        } else {
            Status::Warn
        }
    } else {
        problems.push(format!(
            "{fs} is untested with the broker's direct I/O; use xfs or ext4"
        ));
        Status::Warn
    };
    let mut item = DATA_FS_DOC.item(subject, current, recommended, status, change, revert);
    if !problems.is_empty() {
        item = with_note(item, problems.join("; "));
    } else if !opts.contains(&"noatime") {
        item = with_note(
            item,
            "noatime is not set; relatime costs little with direct I/O but noatime avoids it",
        );
    }
    vec![item]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 259:0 / /var/lib/corelog rw,noatime shared:2 - xfs /dev/nvme0n1 rw,attr2,inode64
41 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn mountinfo_lookup() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[2].mount_point, PathBuf::from("/mnt/with space"));
        let m = mount_for(&mounts, Path::new("/var/lib/corelog/data")).expect("mount");
        assert_eq!(m.fs_type, "xfs");
        let m = mount_for(&mounts, Path::new("/var/lib/corelogx")).expect("mount");
        assert_eq!(m.fs_type, "ext4");
        let m = mount_for(&mounts, Path::new("/var/lib/corelog/../x")).expect("mount");
        assert_eq!(m.fs_type, "ext4");
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_mount_path("a\\040b"), "a b");
        assert_eq!(unescape_mount_path("a\\04"), "a\\04");
        assert_eq!(unescape_mount_path("\\"), "\\");
    }
}
