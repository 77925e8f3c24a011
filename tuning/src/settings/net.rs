//! Network sysctls: listen backlog, SYN backlog and socket buffer limits.

use super::{at_least, parse_u64, sysctl_item, Context, Doc, Judgement, Setting};
use crate::report::{Item, Status};

pub const SOMAXCONN: Setting = Setting {
    name: "somaxconn",
    title: "Listen backlog cap (net.core.somaxconn)",
    check: check_somaxconn,
};

pub const TCP_BACKLOG: Setting = Setting {
    name: "tcp-backlog",
    title: "TCP SYN and device backlogs",
    check: check_tcp_backlog,
};

pub const TCP_BUFFERS: Setting = Setting {
    name: "tcp-buffers",
    title: "TCP socket buffer sizes",
    check: check_tcp_buffers,
};

const SOMAXCONN_DOC: Doc = Doc {
    setting: SOMAXCONN.name,
    title: SOMAXCONN.title,
    why: "The broker's listen() backlog is silently capped at somaxconn. When thousands of \
          clients reconnect after a restart or a leader move, a small cap drops SYNs and turns \
          a sub-second failover into seconds of retries.",
};

const BACKLOG_DOC: Doc = Doc {
    setting: TCP_BACKLOG.name,
    title: TCP_BACKLOG.title,
    why: "tcp_max_syn_backlog bounds half-open connections during reconnect storms, and \
          netdev_max_backlog bounds packets queued per core before the stack processes them; \
          a shard core busy with a produce burst must not drop packets.",
};

const BUFFERS_DOC: Doc = Doc {
    setting: TCP_BUFFERS.name,
    title: TCP_BUFFERS.title,
    why: "Producers send and consumers fetch megabyte batches; socket buffers smaller than the \
          bandwidth-delay product cap per-connection throughput regardless of disk speed. \
          Raising the maximums lets autotuning grow busy sockets while idle ones stay small.",
};

/// Listen and SYN backlog floor.
const BACKLOG_MIN: u64 = 4096;
/// Maximum socket buffer, in bytes, that autotuning may reach.
const BUFFER_MAX_BYTES: u64 = 16 << 20;

fn check_somaxconn(ctx: &Context) -> Vec<Item> {
    vec![sysctl_item(
        ctx,
        &SOMAXCONN_DOC,
        "net.core.somaxconn",
        &format!(">= {BACKLOG_MIN}"),
        &BACKLOG_MIN.to_string(),
        at_least(BACKLOG_MIN),
    )]
}

fn check_tcp_backlog(ctx: &Context) -> Vec<Item> {
    vec![
        sysctl_item(
            ctx,
            &BACKLOG_DOC,
            "net.ipv4.tcp_max_syn_backlog",
            &format!(">= {BACKLOG_MIN}"),
            &BACKLOG_MIN.to_string(),
            at_least(BACKLOG_MIN),
        ),
        sysctl_item(
            ctx,
            &BACKLOG_DOC,
            "net.core.netdev_max_backlog",
            &format!(">= {BACKLOG_MIN}"),
            &BACKLOG_MIN.to_string(),
            at_least(BACKLOG_MIN),
        ),
    ]
}

/// Judges a `min default max` triple such as `net.ipv4.tcp_rmem`: only the maximum matters,
/// and `--apply` raises it while keeping the minimum and default the administrator chose.
fn triple_max_at_least(min_max: u64) -> impl Fn(&str) -> Result<Judgement, String> {
    move |s| {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() != 3 {
            return Err(format!("expected three numbers, got {s:?}"));
        }
        let lo = parse_u64(parts[0])?;
        let def = parse_u64(parts[1])?;
        let max = parse_u64(parts[2])?;
        Ok(if max >= min_max {
            Judgement {
                status: Status::Ok,
                fix: None,
            }
        } else {
            Judgement {
                status: Status::Warn,
                fix: Some(format!("{lo} {def} {min_max}")),
            }
        })
    }
}

fn check_tcp_buffers(ctx: &Context) -> Vec<Item> {
    let core = |name: &str| {
        sysctl_item(
            ctx,
            &BUFFERS_DOC,
            name,
            &format!(">= {BUFFER_MAX_BYTES}"),
            &BUFFER_MAX_BYTES.to_string(),
            at_least(BUFFER_MAX_BYTES),
        )
    };
    let triple = |name: &str| {
        sysctl_item(
            ctx,
            &BUFFERS_DOC,
            name,
            &format!("max >= {BUFFER_MAX_BYTES}"),
            &format!("4096 131072 {BUFFER_MAX_BYTES}"),
            triple_max_at_least(BUFFER_MAX_BYTES),
        )
    };
    vec![
        core("net.core.rmem_max"),
        core("net.core.wmem_max"),
        triple("net.ipv4.tcp_rmem"),
        triple("net.ipv4.tcp_wmem"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples() {
        let judge = triple_max_at_least(16 << 20);
        let j = judge("4096 131072 6291456").expect("parse");
        assert_eq!(j.status, Status::Warn);
        assert_eq!(j.fix.as_deref(), Some("4096 131072 16777216"));
        assert_eq!(
            judge("4096 131072 33554432").expect("parse").status,
            Status::Ok
        );
        assert!(judge("4096 x 1").is_err());
        assert!(judge("4096").is_err());
    }
}
