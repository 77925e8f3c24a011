//! Fetch: read each partition on its owning shard, long-poll until
//! `min_bytes` arrive or `max_wait_ms` passes, and answer with the record
//! bytes referenced, not copied (a vectored response).
//!
//! A consumer never sees past the high watermark, which on this single node
//! is the flushed offset: nothing a crash could take back is served.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse};
use corelog_protocol::{FetchPartitionHeader, FetchResponseWriter};
use corelog_runtime::notify::Notify;
use corelog_storage::Offset;
use futures_lite::FutureExt;

use super::{Handled, Reply, RequestContext};
use crate::conn::Close;
use crate::shard::Shard;
use crate::ShardId;

/// One partition's answer, built on its owning shard and sent back whole.
#[derive(Debug, Default)]
struct PartitionData {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl PartitionData {
    fn error(code: i16) -> PartitionData {
        PartitionData {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            ..Default::default()
        }
    }
}

struct Wanted {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    owner: Option<ShardId>,
    /// Set when the topic or partition is unknown.
    error_code: i16,
}

/// Answers a Fetch. The returned permit holds the response's share of the
/// connection's `fetch_response_bytes_per_connection_max` until the
/// response is written.
pub async fn handle(
    cx: &RequestContext<'_>,
    request: FetchRequest,
) -> Result<Handled<FetchResponse>, Close> {
    let RequestContext {
        shard,
        header,
        fetch_budget: budget,
        ..
    } = *cx;
    let md = shard.metadata();
    let mut topics: Vec<(String, [u8; 16], Vec<Wanted>)> = Vec::new();
    for t in &request.topics {
        let by_id = header.api_version >= 13;
        let found = if by_id {
            md.topics
                .iter()
                .find(|(_, m)| m.uuid() == t.topic_id)
                .map(|(n, m)| (n.clone(), m))
        } else {
            md.topics
                .get_key_value(t.topic.0.as_str())
                .map(|(n, m)| (n.clone(), m))
        };
        let name = found
            .as_ref()
            .map_or_else(|| t.topic.0.to_string(), |(n, _)| n.clone());
        let topic_id = *t.topic_id.as_bytes();
        let mut parts = Vec::new();
        for p in &t.partitions {
            let (owner, code) = match &found {
                None if by_id => (None, error_code::UNKNOWN_TOPIC_ID),
                None => (None, error_code::UNKNOWN_TOPIC_OR_PARTITION),
                Some((_, m)) => match m.partitions.get(p.partition.max(0) as usize) {
                    Some(pm) if p.partition >= 0 => (Some(pm.shard), error_code::NONE),
                    _ => (None, error_code::UNKNOWN_TOPIC_OR_PARTITION),
                },
            };
            parts.push(Wanted {
                topic: name.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                owner,
                error_code: code,
            });
        }
        topics.push((name, topic_id, parts));
    }
    // A client's max_wait_ms is capped (`fetch_wait_ms_max`): a Fetch that
    // asks to wait for 24 days holds its connection's order and its waiters
    // that long.
    let max_wait = Duration::from_millis(
        (request.max_wait_ms.max(0) as u64).min(shard.config.fetch_wait_ms_max),
    );
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    // v0-2 have no response limit; Kafka then applies fetch.max.bytes.
    let fetch_bytes_max = shard.config.fetch_bytes_max;
    let max_bytes = if header.api_version >= 3 {
        (request.max_bytes.max(0) as usize).min(fetch_bytes_max)
    } else {
        fetch_bytes_max
    };
    // Reserve the response's bytes before reading them. A client that does
    // not read its answers thus holds at most the budget in unwritten
    // responses: its next Fetch waits here, the connection reaches its
    // in-flight bound and stops reading requests. The reservation is the
    // response's bound, max_bytes, which the budget also caps; the response
    // may exceed it by the one batch a consumer always gets to progress.
    let max_bytes = max_bytes.min(shard.config.fetch_response_bytes_per_connection_max);
    let units = max_bytes.max(1) as u64;
    let permit = budget
        .clone()
        .acquire_static_permit(units)
        .await
        .map_err(|_| Close {
            reason: "connection's fetch budget closed".into(),
            final_bytes: None,
        })?;
    // Bound what the reads may bring into memory: each partition reads at
    // most what is left of max_bytes after the partitions before it (a
    // partition left with nothing still returns its first batch, so a
    // consumer always progresses), rather than every partition its own
    // partition_max_bytes.
    let mut left = max_bytes;
    for (_, _, parts) in &mut topics {
        for w in parts.iter_mut() {
            w.max_bytes = w.max_bytes.min(left);
            left -= w.max_bytes;
        }
    }
    let results = loop {
        let results = read_all(shard, &topics).await;
        let total: usize = results.iter().flatten().map(|r| r.bytes).sum();
        let any_error = results
            .iter()
            .flatten()
            .any(|r| r.error_code != error_code::NONE);
        if total >= min_bytes.max(1)
            || any_error
            || Instant::now() >= deadline
            || shard.stopping.get()
        {
            break results;
        }
        // Keep only what the wait needs of a read that fell short: its
        // bytes are read again once more data has arrived.
        let seen: Vec<i64> = results.iter().flatten().map(|r| r.high_watermark).collect();
        drop(results);
        wait_for_data(shard, &topics, &seen, deadline).await;
    };
    // Fit the response into max_bytes: the first non-empty partition always
    // goes in whole, later ones only while they fit (as Kafka does).
    let mut used = 0usize;
    let mut writer = FetchResponseWriter::new(
        header.api_version,
        header.correlation_id,
        0,
        0,
        0,
        topics.len(),
    )
    .map_err(|e| Close {
        reason: e.to_string(),
        final_bytes: None,
    })?;
    for ((name, topic_id, parts), datas) in topics.iter().zip(results) {
        writer
            .begin_topic(name, *topic_id, parts.len())
            .map_err(|e| Close {
                reason: e.to_string(),
                final_bytes: None,
            })?;
        for (w, data) in parts.iter().zip(datas) {
            let include = used == 0 || used + data.bytes <= max_bytes;
            let chunks: &[Bytes] = if include { &data.chunks } else { &[] };
            if include {
                used += data.bytes;
            }
            let header = FetchPartitionHeader {
                partition_index: w.partition,
                error_code: data.error_code,
                high_watermark: data.high_watermark,
                last_stable_offset: data.high_watermark,
                log_start_offset: data.log_start_offset,
                aborted_transactions: None,
                preferred_read_replica: -1,
            };
            writer.add_partition(&header, chunks).map_err(|e| Close {
                reason: e.to_string(),
                final_bytes: None,
            })?;
        }
    }
    let frame = writer.finish().map_err(|e| Close {
        reason: e.to_string(),
        final_bytes: None,
    })?;
    Ok(Handled::Reply(Reply::Segments(
        frame.into_segments(),
        permit,
    )))
}

async fn read_all(
    shard: &Rc<Shard>,
    topics: &[(String, [u8; 16], Vec<Wanted>)],
) -> Vec<Vec<PartitionData>> {
    let mut tasks = Vec::new();
    for (_, _, parts) in topics {
        let mut t = Vec::new();
        for w in parts {
            let task = w.owner.map(|owner| {
                let shard = shard.clone();
                let (topic, partition, offset, max_bytes) =
                    (w.topic.clone(), w.partition, w.offset, w.max_bytes);
                glommio::spawn_local(async move {
                    shard
                        .call(owner, move |s| {
                            read_partition(s, topic, partition, offset, max_bytes)
                        })
                        .await
                        .unwrap_or_else(|_| {
                            PartitionData::error(error_code::NOT_LEADER_OR_FOLLOWER)
                        })
                })
            });
            t.push((task, w.error_code));
        }
        tasks.push(t);
    }
    let mut out = Vec::new();
    for t in tasks {
        let mut datas = Vec::new();
        for (task, code) in t {
            datas.push(match task {
                Some(task) => task.await,
                None => PartitionData::error(code),
            });
        }
        out.push(datas);
    }
    out
}

/// Runs on the owning shard.
async fn read_partition(
    shard: Rc<Shard>,
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
) -> PartitionData {
    let Some(p) = shard.partition(&topic, partition) else {
        return PartitionData::error(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let (plan, hw, start) = p.read_log(|l| {
        let hw = l.flushed_offset();
        (
            l.plan_read(Offset(offset), max_bytes, hw),
            hw.0,
            l.log_start_offset().0,
        )
    });
    let mut data = PartitionData {
        high_watermark: hw,
        log_start_offset: start,
        ..Default::default()
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            data.error_code = super::storage_error_code(&e);
            return data;
        }
    };
    match plan.execute().await {
        Ok(read) => {
            data.bytes = read.bytes;
            data.chunks = read.chunks;
        }
        Err(e) => {
            tracing::error!(%topic, partition, error = %e, "fetch read failed");
            data.error_code = super::storage_error_code(&e);
        }
    }
    data
}

/// Waits until any wanted partition has data it did not have at the last
/// read (its high watermark passes both the fetch offset and the high
/// watermark that read saw), until the deadline, or until shutdown.
///
/// Waiting for "data past the fetch offset" alone is not enough: a
/// partition that holds some data, but less than `min_bytes`, satisfies it
/// at once, and the Fetch spun re-reading it until its deadline.
///
/// The waits on other shards are cancelled when this returns: each runs in
/// a task owned here (dropped on return) through `call_cancellable`.
async fn wait_for_data(
    shard: &Rc<Shard>,
    topics: &[(String, [u8; 16], Vec<Wanted>)],
    seen_high_watermarks: &[i64],
    deadline: Instant,
) {
    let arrived = Rc::new(Notify::new());
    let wake = arrived.notified();
    let mut waits = Vec::new();
    let wanted = topics.iter().flat_map(|t| &t.2);
    for (w, &seen) in wanted.zip(seen_high_watermarks) {
        let Some(owner) = w.owner else { continue };
        let (shard, arrived) = (shard.clone(), arrived.clone());
        let (topic, partition) = (w.topic.clone(), w.partition);
        let past = w.offset.max(seen);
        waits.push(glommio::spawn_local(async move {
            let _ = shard
                .call_cancellable(owner, move |s| {
                    wait_partition(s, topic, partition, past, deadline)
                })
                .await;
            arrived.notify_all();
        }));
    }
    let timeout = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
    };
    let stopped = shard.stop_notify.notified();
    if shard.stopping.get() {
        return;
    }
    wake.or(stopped).or(timeout).await;
    drop(waits);
}

/// Runs on the owning shard: returns once the partition's high watermark
/// passes `past` (some offset at or above `past` is readable), at the
/// deadline, or at shutdown.
async fn wait_partition(
    shard: Rc<Shard>,
    topic: String,
    partition: i32,
    past: i64,
    deadline: Instant,
) {
    let Some(p) = shard.partition(&topic, partition) else {
        return;
    };
    loop {
        let stopped = shard.stop_notify.notified();
        if p.read_log(|l| l.flushed_offset().0 > past)
            || Instant::now() >= deadline
            || shard.stopping.get()
        {
            return;
        }
        let timeout = async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        };
        p.changed().or(stopped).or(timeout).await;
    }
}
