//! DescribeLogDirs: the broker's one data directory, the size on disk of
//! the partitions asked about, and the size and free space of its volume.
//!
//! The answer follows Kafka's (`ReplicaManager.describeLogDirs` and
//! `KafkaApis.handleDescribeLogDirsRequest`):
//! - `topics` null asks about every partition; otherwise about the listed
//!   partitions, each once however often it is listed. A topic or partition
//!   the broker does not have is left out of the answer, not reported as an
//!   error, and so is a topic none of whose asked partitions exist.
//! - The directory is named by its absolute path. `offset_lag` is 0 (no
//!   replica is being moved between directories, so every log is current)
//!   and `is_future_key` false.
//! - From v4, `total_bytes` and `usable_bytes` are the volume's size and the
//!   space an unprivileged writer can still use (`statvfs`'s `f_blocks` and
//!   `f_bavail`, as Java's `FileStore` reports them). When the volume cannot
//!   be read the directory is answered with `KAFKA_STORAGE_ERROR` and no
//!   topics, as Kafka answers for a directory it cannot describe.
//! - No authorizer exists, so the top-level error (v3+) is always NONE.
//!
//! The internal offsets log (`__consumer_offsets`) is not described: it is
//! not in the topic metadata, which Metadata answers from too.
//!
//! In `shard-direct` listener mode every broker the node describes shares
//! the one data directory, and each answers for all of it.

use std::path::Path;

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use corelog_protocol::kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::{ShardId, TopicPartition};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> Result<Handled<DescribeLogDirsResponse>, Close> {
    let shard = cx.shard;
    let md = shard.metadata();

    // The partitions to describe, grouped by topic in the order topics are
    // first named (every topic, by name, when `topics` is null), each with
    // the shard that owns it.
    let mut wanted: Vec<(String, Vec<(i32, ShardId)>)> = Vec::new();
    match &request.topics {
        None => {
            for (name, topic) in &md.topics {
                let parts = topic
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.hosted())
                    .map(|(index, p)| (index as i32, p.shard))
                    .collect();
                wanted.push((name.clone(), parts));
            }
        }
        Some(topics) => {
            for asked in topics {
                let name = asked.topic.0.as_str();
                let Some(topic) = md.topics.get(name) else {
                    continue;
                };
                let slot = match wanted.iter().position(|(n, _)| n == name) {
                    Some(slot) => slot,
                    None => {
                        wanted.push((name.to_owned(), Vec::new()));
                        wanted.len() - 1
                    }
                };
                let parts = &mut wanted[slot].1;
                for &index in &asked.partitions {
                    let owner = usize::try_from(index)
                        .ok()
                        .and_then(|i| topic.partitions.get(i))
                        .filter(|p| p.hosted())
                        .map(|p| p.shard);
                    if let Some(owner) = owner {
                        if !parts.iter().any(|&(i, _)| i == index) {
                            parts.push((index, owner));
                        }
                    }
                }
            }
        }
    }

    // One message per owner shard carries all of its partitions; a
    // partition its owner no longer has (deleted meanwhile), or whose owner
    // stopped, is left out like any partition the broker does not have.
    let items: Vec<(ShardId, TopicPartition)> = wanted
        .iter()
        .flat_map(|(name, parts)| {
            parts
                .iter()
                .map(move |&(index, owner)| (owner, TopicPartition::new(name.clone(), index)))
        })
        .collect();
    let sizes = shard
        .fan_out(
            items,
            |s, items: Vec<TopicPartition>| async move {
                items
                    .into_iter()
                    .map(|tp| s.partition(&tp.topic, tp.partition).map(|p| p.size_bytes()))
                    .collect()
            },
            None,
        )
        .await;

    let mut sizes = sizes.into_iter();
    let mut topics = Vec::new();
    for (name, parts) in wanted {
        let partitions: Vec<_> = parts
            .into_iter()
            .filter_map(|(index, _)| {
                let size = sizes.next().flatten()?;
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                )
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions),
            );
        }
    }

    let data_dir = shard.config().data_dir.clone();
    let (path, volume) = corelog_runtime::run_blocking(move || {
        let path = std::path::absolute(&data_dir).unwrap_or(data_dir);
        let volume = volume_bytes(&path);
        (path, volume)
    })
    .await;
    let log_dir = StrBytes::from_string(path.to_string_lossy().into_owned());
    let result = match volume {
        Ok(volume) => DescribeLogDirsResult::default()
            .with_log_dir(log_dir)
            .with_topics(topics)
            .with_total_bytes(volume.total)
            .with_usable_bytes(volume.usable),
        Err(e) => {
            tracing::warn!(dir = %path.display(), error = %e, "cannot describe the data directory's volume");
            DescribeLogDirsResult::default()
                .with_log_dir(log_dir)
                .with_error_code(error_code::KAFKA_STORAGE_ERROR)
        }
    };
    // v0-v3 have no volume fields, and kafka-protocol refuses to drop a
    // value that differs from the default (-1) at a version that lacks them.
    let result = if cx.header.api_version < 4 {
        result.with_total_bytes(-1).with_usable_bytes(-1)
    } else {
        result
    };
    Ok(DescribeLogDirsResponse::default()
        .with_results(vec![result])
        .into())
}

/// The size of a volume and the space on it an unprivileged writer can use.
struct Volume {
    total: i64,
    usable: i64,
}

/// `statvfs` of the volume holding `dir`. Blocking: a stalled mount holds
/// the caller, so it runs on the blocking pool.
fn volume_bytes(dir: &Path) -> std::io::Result<Volume> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `st` points to writable memory of the struct's size.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let block = u128::from(st.f_frsize);
    // Kafka reports a size that overflows a long as Long.MAX_VALUE
    // (`adjustForLargeFileSystems`).
    let clamp = |blocks: u64| i64::try_from(u128::from(blocks) * block).unwrap_or(i64::MAX);
    Ok(Volume {
        total: clamp(st.f_blocks),
        usable: clamp(st.f_bavail),
    })
}
