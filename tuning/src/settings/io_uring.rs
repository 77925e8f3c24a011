//! Whether io_uring can be used at all, and the Linux AIO limit.

use super::{at_least, sysctl_item, with_fixes, with_note, Context, Doc, Setting};
use crate::report::{Fix, Item, Status};
use crate::sysroot::SysRoot;

pub const IO_URING: Setting = Setting {
    name: "io-uring",
    title: "io_uring availability",
    check: check_io_uring,
};

pub const AIO_MAX_NR: Setting = Setting {
    name: "aio-max-nr",
    title: "Linux AIO request limit (fs.aio-max-nr)",
    check: check_aio_max_nr,
};

const IO_URING_DOC: Doc = Doc {
    setting: IO_URING.name,
    title: IO_URING.title,
    why: "Every disk and network operation of a shard goes through its io_uring; without it \
          the broker cannot run. Kernels from 6.6 can switch io_uring off \
          (kernel.io_uring_disabled), container runtimes and systemd units often block it with \
          seccomp, and glommio needs kernel 5.8 or later.",
};

const AIO_DOC: Doc = Doc {
    setting: AIO_MAX_NR.name,
    title: AIO_MAX_NR.title,
    why: "io_uring does not use this limit, but Linux AIO does: fio/iotune-style benchmarks with \
          libaio, and Seastar-based neighbours, fail with EAGAIN when the system-wide pool of \
          AIO contexts is exhausted. Raising it costs nothing.",
};

/// The minimum kernel glommio supports.
const MIN_KERNEL: (u32, u32) = (5, 8);

/// Parses `major.minor` from a kernel release string such as `6.1.0-18-amd64`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Reads the kernel release below the root.
fn kernel_version(root: &SysRoot) -> Result<(String, Option<(u32, u32)>), String> {
    root.read_trimmed("/proc/sys/kernel/osrelease")
        .map(|r| {
            let v = parse_kernel_version(&r);
            (r, v)
        })
        .map_err(|e| e.to_string())
}

/// Really creates (and closes) a small io_uring instance in this process.
///
/// This is the authoritative answer to "can the broker use io_uring here": it sees the kernel
/// version, `kernel.io_uring_disabled`, seccomp filters and memory accounting exactly as the
/// broker will. The error is one line suitable for a start-up refusal.
pub fn io_uring_available() -> Result<(), String> {
    // `struct io_uring_params` is 120 bytes; all-zero input asks for default behaviour and the
    // kernel fills in the ring offsets, which we do not need.
    let mut params = [0u64; 15];
    // SAFETY: io_uring_setup reads and writes exactly sizeof(struct io_uring_params) bytes
    // through the pointer, and `params` is that large and lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: `fd` is a descriptor we just received and own.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let reason = match err.raw_os_error() {
        Some(libc::ENOSYS) => {
            "the kernel has no io_uring (needs Linux 5.8+), or a seccomp filter hides it"
        }
        Some(libc::EPERM) => {
            "io_uring is not permitted: kernel.io_uring_disabled is set, or a seccomp/container \
             profile blocks io_uring_setup"
        }
        Some(libc::ENOMEM) => {
            "the kernel could not allocate the ring: RLIMIT_MEMLOCK is too low (raise \
             LimitMEMLOCK) or memory is exhausted"
        }
        Some(libc::EMFILE) | Some(libc::ENFILE) => "out of file descriptors",
        _ => "unexpected error",
    };
    Err(format!("io_uring_setup failed: {reason} ({err})"))
}

fn check_io_uring(ctx: &Context) -> Vec<Item> {
    let mut items = Vec::new();
    let release = kernel_version(&ctx.root);

    // Kernel version.
    let min = format!(">= {}.{}", MIN_KERNEL.0, MIN_KERNEL.1);
    items.push(match &release {
        Err(e) => with_note(
            IO_URING_DOC.item(
                "kernel version",
                "unreadable",
                min,
                Status::Unreadable,
                "upgrade the kernel",
                "n/a",
            ),
            e.clone(),
        ),
        Ok((r, v)) => IO_URING_DOC.item(
            "kernel version",
            r.clone(),
            min,
            match v {
                Some(v) if *v >= MIN_KERNEL => Status::Ok,
                Some(_) => Status::Fail,
                None => Status::Unreadable,
            },
            "upgrade the kernel",
            "n/a",
        ),
    });

    // The kernel.io_uring_disabled switch (6.6+).
    let path = "/proc/sys/kernel/io_uring_disabled";
    let change = "sysctl -w kernel.io_uring_disabled=0; persist in /etc/sysctl.d/90-corelog.conf \
                  (1 allows only members of kernel.io_uring_group)";
    items.push(match ctx.root.read_trimmed(path) {
        Err(e) => {
            let predates = matches!(&release, Ok((_, Some(v))) if *v < (6, 6));
            if predates {
                IO_URING_DOC.item(
                    "kernel.io_uring_disabled",
                    "absent (kernel predates the switch; io_uring is on)",
                    "0",
                    Status::Ok,
                    change,
                    "nothing to revert",
                )
            } else {
                with_note(
                    IO_URING_DOC.item(
                        "kernel.io_uring_disabled",
                        "unreadable",
                        "0",
                        Status::Unreadable,
                        change,
                        "nothing to revert",
                    ),
                    e.to_string(),
                )
            }
        }
        Ok(v) => {
            let revert =
                format!("sysctl -w kernel.io_uring_disabled={v}, or `corelog tune --revert`");
            let (status, note) = match v.as_str() {
                "0" => (Status::Ok, None),
                "1" => (
                    Status::Warn,
                    Some("only CAP_SYS_ADMIN or members of kernel.io_uring_group may create rings"),
                ),
                "2" => (Status::Fail, Some("io_uring is disabled for every process")),
                _ => (Status::Unreadable, Some("unexpected value")),
            };
            let fixes = if matches!(status, Status::Warn | Status::Fail) {
                vec![Fix {
                    path: path.to_string(),
                    value: "0".to_string(),
                }]
            } else {
                Vec::new()
            };
            let item = with_fixes(
                IO_URING_DOC.item(
                    "kernel.io_uring_disabled",
                    v.clone(),
                    "0",
                    status,
                    change,
                    revert,
                ),
                fixes,
            );
            match note {
                Some(n) => with_note(item, n),
                None => item,
            }
        }
    });

    // Seccomp mode of this process, which a container or systemd unit imposes.
    let seccomp_change = "allow io_uring_setup, io_uring_enter and io_uring_register in the \
                          container's seccomp profile, or drop SystemCallFilter= restrictions \
                          from the unit";
    items.push(match ctx.root.read("/proc/self/status") {
        Err(e) => with_note(
            IO_URING_DOC.item(
                "seccomp",
                "unreadable",
                "0 (no filter) or a filter that allows io_uring",
                Status::Unreadable,
                seccomp_change,
                "n/a",
            ),
            e.to_string(),
        ),
        Ok(status_text) => {
            let mode = status_text
                .lines()
                .find_map(|l| l.strip_prefix("Seccomp:"))
                .map(|v| v.trim().to_string());
            let (current, status, note) = match mode.as_deref() {
                Some("0") => ("0 (disabled)".to_string(), Status::Ok, None),
                Some("1") => (
                    "1 (strict)".to_string(),
                    Status::Fail,
                    Some("strict mode allows only read/write/exit"),
                ),
                Some("2") => (
                    "2 (filter)".to_string(),
                    Status::Warn,
                    Some("a filter is active; it may block io_uring (the live probe decides)"),
                ),
                Some(other) => (other.to_string(), Status::Unreadable, None),
                None => (
                    "unreadable".to_string(),
                    Status::Unreadable,
                    Some("no Seccomp line in /proc/self/status"),
                ),
            };
            let item = IO_URING_DOC.item(
                "seccomp",
                current,
                "0 (no filter) or a filter that allows io_uring",
                status,
                seccomp_change,
                "n/a",
            );
            match note {
                Some(n) => with_note(item, n),
                None => item,
            }
        }
    });

    // The live probe, only against the real kernel.
    let live = if ctx.live_probe {
        match io_uring_available() {
            Ok(()) => IO_URING_DOC.item(
                "io_uring_setup (live)",
                "ring created",
                "ring created",
                Status::Ok,
                "see the other io-uring rows",
                "n/a",
            ),
            Err(e) => with_note(
                IO_URING_DOC.item(
                    "io_uring_setup (live)",
                    "failed",
                    "ring created",
                    Status::Fail,
                    "see the other io-uring rows",
                    "n/a",
                ),
                e,
            ),
        }
    } else {
        IO_URING_DOC.item(
            "io_uring_setup (live)",
            "not probed (fake root)",
            "ring created",
            Status::Info,
            "see the other io-uring rows",
            "n/a",
        )
    };
    items.push(live);
    items
}

/// The recommended minimum for `fs.aio-max-nr`.
const AIO_MAX_NR_MIN: u64 = 1_048_576;

fn check_aio_max_nr(ctx: &Context) -> Vec<Item> {
    let item = sysctl_item(
        ctx,
        &AIO_DOC,
        "fs.aio-max-nr",
        &format!(">= {AIO_MAX_NR_MIN}"),
        &AIO_MAX_NR_MIN.to_string(),
        at_least(AIO_MAX_NR_MIN),
    );
    vec![match ctx.root.read_trimmed("/proc/sys/fs/aio-nr") {
        Ok(used) => with_note(
            item,
            format!("{used} AIO requests currently allocated (fs.aio-nr)"),
        ),
        Err(_) => item,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("5.15.0"), Some((5, 15)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert!((5, 4) < MIN_KERNEL && (6, 1) >= MIN_KERNEL);
    }

    #[test]
    fn live_probe_does_not_panic() {
        // Whether it succeeds depends on the host; it must return, with a message on failure.
        if let Err(e) = io_uring_available() {
            assert!(e.contains("io_uring_setup failed"));
        }
    }
}
