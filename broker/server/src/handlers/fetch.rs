//! Fetch: read each partition on its owning shard, long-poll until
//! `min_bytes` arrive or `max_wait_ms` passes, and answer with the record
//! bytes referenced, not copied (a vectored response).
//!
//! A consumer never sees past the high watermark (or, reading committed,
//! the last stable offset); the partition facade (`crate::partition`)
//! computes both and bounds every read by them.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use corelog_protocol::{
    AbortedTransaction, FetchNodeEndpoint, FetchPartitionHeader, FetchResponseWriter,
};
use corelog_runtime::notify::Notify;
use corelog_storage::{LeaderEpoch, Offset};
use futures_lite::FutureExt;

use super::Close;
use super::{Handled, Reply, RequestContext};
use crate::error::ServerError;
use crate::partition::{Isolation, ReadChunks, ReadPlan};
use crate::shard::Shard;
use crate::{ShardId, TopicId};
use corelog_model::NodeId;

/// One partition's answer, built on its owning shard and sent back whole.
/// Cloned only for `Shard::fan_out`'s answer to the partitions of a shard
/// that is gone (an error, no chunks); a real answer is moved, never cloned.
#[derive(Debug, Default, Clone)]
struct PartitionData {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// The log end when read: how far a follower's long poll has seen.
    log_end_offset: i64,
    /// Where the fetcher's log diverges from this one: (epoch, end offset).
    diverging_epoch: Option<(i32, i64)>,
    chunks: Vec<Bytes>,
    bytes: usize,
    /// A read_committed read's aborted transactions that may have records
    /// in what it read, so that the consumer drops them; `None` (null) for
    /// other isolation levels, as Kafka sends.
    aborted: Option<Vec<AbortedTransaction>>,
}

impl PartitionData {
    fn with(mut self, read: ReadChunks) -> PartitionData {
        self.bytes = read.bytes;
        self.chunks = read.chunks;
        self
    }

    fn error(code: i16) -> PartitionData {
        PartitionData {
            error_code: code,
            high_watermark: -1,
            last_stable_offset: -1,
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
    isolation: Isolation,
    /// The leader epoch the consumer believes current (v9+; -1 skips the
    /// check, KIP-320).
    current_leader_epoch: i32,
    /// The epoch of the last batch the fetcher holds (v12+; -1 when it
    /// does not say): checked for divergence before reading.
    last_fetched_epoch: i32,
    /// The follower fetching, for a replica's fetch.
    replica: Option<NodeId>,
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
    // A follower's fetch names its broker (replica_id, or ReplicaState from
    // v15): it reads up to the log end, and its fetch offset tells the
    // leader what it holds on disk (`crate::replica`). Consumers send -1.
    let replica_id = if header.api_version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    // Followers fetch with current versions; a Fetch v0-3 (an old
    // consumer's, answered in an old message format) is never a replica's.
    let replica = (replica_id >= 0 && header.api_version >= FETCH_BATCHES_VERSION_MIN)
        .then_some(NodeId(replica_id));
    // read_committed reads stop at the last stable offset, read_uncommitted
    // ones at the high watermark (the facade knows both).
    let isolation = if replica.is_some() {
        Isolation::Replica
    } else {
        Isolation::from_kafka(request.isolation_level)
    };
    let mut topics: Vec<(String, TopicId, Vec<Wanted>)> = Vec::new();
    for t in &request.topics {
        let by_id = header.api_version >= 13;
        // A follower's fetch may also name the cluster's internal offsets
        // topic (`ClusterMetadata::topic_for`); a consumer's may not.
        let found = if by_id {
            md.topic_by_id(t.topic_id, replica.is_some())
                .map(|(n, m)| (n.to_string(), m))
        } else {
            let name = t.topic.0.as_str();
            md.topic_for(name, replica.is_some())
                .map(|m| (name.to_string(), m))
        };
        let name = found
            .as_ref()
            .map_or_else(|| t.topic.0.to_string(), |(n, _)| n.clone());
        let topic_id = TopicId(*t.topic_id.as_bytes());
        let mut parts = Vec::new();
        for p in &t.partitions {
            let (owner, code) = match &found {
                None if by_id => (None, error_code::UNKNOWN_TOPIC_ID),
                None => (None, error_code::UNKNOWN_TOPIC_OR_PARTITION),
                Some((_, m)) => match m.partitions.get(p.partition.max(0) as usize) {
                    Some(pm) if p.partition >= 0 => match pm.serving_shard() {
                        Some(owner) => (Some(owner), error_code::NONE),
                        // Another node leads it (cluster mode).
                        None => (None, error_code::NOT_LEADER_OR_FOLLOWER),
                    },
                    _ => (None, error_code::UNKNOWN_TOPIC_OR_PARTITION),
                },
            };
            parts.push(Wanted {
                topic: name.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                isolation,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                replica,
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
        (request.max_wait_ms.max(0) as u64).min(shard.config().fetch_wait_ms_max),
    );
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    // v0-2 have no response limit; Kafka then applies fetch.max.bytes.
    let fetch_bytes_max = shard.config().fetch_bytes_max;
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
    let max_bytes = max_bytes.min(shard.config().fetch_response_bytes_per_connection_max);
    let units = max_bytes.max(1) as u64;
    let permit = budget
        .clone()
        .acquire_static_permit(units)
        .await
        .map_err(|_| Close {
            reason: "connection's fetch budget closed".into(),
            final_bytes: None,
            logged: false,
        })?;
    // Each partition reads at most its partition_max_bytes and never more
    // than max_bytes; how max_bytes is shared out among the partitions
    // depends on what they hold, in request order (`read_partitions` on
    // each owner shard, then `fill_in_order` over all of them). Reads of
    // partitions on different shards run at once, each shard's within
    // max_bytes, so a request may read up to max_bytes per owner shard
    // before the answer is trimmed to max_bytes.
    for (_, _, parts) in &mut topics {
        for w in parts.iter_mut() {
            w.max_bytes = w.max_bytes.min(max_bytes);
        }
    }
    let (results, kept) = loop {
        let results = read_all(shard, &topics, max_bytes).await;
        let kept = fill_in_order(&topics, &results, max_bytes);
        let total: usize = kept.iter().sum();
        // An error or a diverging epoch is answered at once, as Kafka does.
        let any_error = results
            .iter()
            .flatten()
            .any(|r| r.error_code != error_code::NONE || r.diverging_epoch.is_some());
        if total >= min_bytes.max(1)
            || any_error
            || Instant::now() >= deadline
            || shard.is_stopping()
        {
            break (results, kept);
        }
        // Keep only what the wait needs of a read that fell short: its
        // bytes are read again once more data has arrived.
        let seen: Vec<i64> = results
            .iter()
            .flatten()
            .map(|r| match isolation {
                Isolation::ReadUncommitted => r.high_watermark,
                Isolation::ReadCommitted => r.last_stable_offset,
                Isolation::Replica => r.log_end_offset,
            })
            .collect();
        drop(results);
        wait_for_data(shard, &topics, &seen, deadline).await;
    };
    if header.api_version < FETCH_BATCHES_VERSION_MIN {
        // Old consumers get message sets, converted here; only they pay
        // for it, and the zero-copy writer below stays as it is.
        return legacy_answer(cx, &topics, results, kept, max_bytes, permit);
    }
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
        logged: false,
    })?;
    let mut kept = kept.into_iter();
    // KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER or
    // FENCED_LEADER_EPOCH names its leader (v12+), and the response where
    // that leader listens (v16+).
    let md = shard.metadata();
    let mut hinted: Vec<i32> = Vec::new();
    for ((name, topic_id, parts), datas) in topics.iter().zip(results) {
        writer
            .begin_topic(name, topic_id.0, parts.len())
            .map_err(|e| Close {
                reason: e.to_string(),
                final_bytes: None,
                logged: false,
            })?;
        for (w, data) in parts.iter().zip(datas) {
            let keep = kept.next().unwrap_or(0);
            crate::traffic::count_out(name, w.partition, keep);
            if data.error_code != error_code::NONE {
                crate::request_metrics::count_error(ApiKey::Fetch as i16, data.error_code);
            }
            let chunks = if keep == data.bytes {
                data.chunks
            } else {
                prefix(data.chunks, keep)
            };
            let header = FetchPartitionHeader {
                partition_index: w.partition,
                error_code: data.error_code,
                high_watermark: data.high_watermark,
                last_stable_offset: data.last_stable_offset,
                log_start_offset: data.log_start_offset,
                aborted_transactions: data.aborted.as_deref(),
                preferred_read_replica: -1,
                current_leader: if data.error_code == error_code::NOT_LEADER_OR_FOLLOWER
                    || data.error_code == error_code::FENCED_LEADER_EPOCH
                {
                    md.topics
                        .get(name)
                        .and_then(|t| t.partitions.get(usize::try_from(w.partition).ok()?))
                        .and_then(|p| p.replica.as_ref())
                        .filter(|r| r.leader >= 0)
                        .map(|r| (r.leader, r.leader_epoch))
                } else {
                    None
                },
                diverging_epoch: data.diverging_epoch,
            };
            if let Some((leader, _)) = header.current_leader {
                if !hinted.contains(&leader) {
                    hinted.push(leader);
                }
            }
            writer.add_partition(&header, &chunks).map_err(|e| Close {
                reason: e.to_string(),
                final_bytes: None,
                logged: false,
            })?;
        }
    }
    let endpoints: Vec<FetchNodeEndpoint> = hinted
        .iter()
        .filter_map(|id| md.brokers.iter().find(|b| b.id == *id))
        .map(|b| FetchNodeEndpoint {
            node_id: b.id,
            host: b.host.clone(),
            port: i32::from(b.port),
            rack: b.rack.clone(),
        })
        .collect();
    writer.set_node_endpoints(&endpoints).map_err(|e| Close {
        reason: e.to_string(),
        final_bytes: None,
        logged: false,
    })?;
    let frame = writer.finish().map_err(|e| Close {
        reason: e.to_string(),
        final_bytes: None,
        logged: false,
    })?;
    Ok(Handled::Reply(Reply::Segments(
        frame.into_segments(),
        permit,
    )))
}

/// The first Fetch version whose answer carries record batches (magic 2);
/// v0-3 are answered with message sets (magic 0 for v0-1, 1 for v2-3).
const FETCH_BATCHES_VERSION_MIN: i16 = 4;

/// Answers a Fetch v0-3 (issue 21): each partition's records, read and
/// trimmed as for every version, converted to a message set of the magic
/// the version reads (`corelog_storage::legacy::down_convert`), and the
/// response encoded through the legacy codec. Each partition's message set
/// stops at the bytes its batches took (so the response stays within what
/// `max_bytes` and `partition_max_bytes` allowed) and at
/// `legacy_conversion_bytes_max`, in whole messages, with at least its
/// first message. Transaction markers are left out; these versions read
/// uncommitted, aborted records included, as Kafka serves them.
fn legacy_answer(
    cx: &RequestContext<'_>,
    topics: &[(String, TopicId, Vec<Wanted>)],
    results: Vec<Vec<PartitionData>>,
    kept: Vec<usize>,
    max_bytes: usize,
    permit: glommio::sync::StaticPermit,
) -> Result<Handled<FetchResponse>, Close> {
    use corelog_protocol::kafka_protocol::messages::fetch_response::{
        FetchableTopicResponse, PartitionData as Partition,
    };
    use corelog_protocol::kafka_protocol::messages::TopicName;
    use corelog_protocol::kafka_protocol::protocol::StrBytes;
    use corelog_storage::legacy;

    let RequestContext { shard, header, .. } = *cx;
    let magic = if header.api_version <= 1 {
        legacy::MAGIC_V0
    } else {
        legacy::MAGIC_V1
    };
    let md = shard.metadata();
    let conversion_bytes_max = shard.config().legacy_conversion_bytes_max;
    let mut kept = kept.into_iter();
    let mut left = max_bytes;
    let mut responses = Vec::with_capacity(topics.len());
    for ((name, _, parts), datas) in topics.iter().zip(results) {
        let limits = md.settings(shard.config(), name).log.record_limits;
        let mut partitions = Vec::with_capacity(parts.len());
        for (w, data) in parts.iter().zip(datas) {
            let keep = kept.next().unwrap_or(0);
            let mut set = Vec::new();
            if keep > 0 {
                let chunks = prefix(data.chunks, keep);
                let batches: std::borrow::Cow<'_, [u8]> = match chunks.as_slice() {
                    [one] => std::borrow::Cow::Borrowed(&one[..]),
                    many => std::borrow::Cow::Owned(many.concat()),
                };
                // Only the first partition with data may pass the limits,
                // by its first message (`down_convert` always converts one).
                let cap = w.max_bytes.min(left).min(conversion_bytes_max);
                if cap > 0 || left == max_bytes {
                    if let Err(e) =
                        legacy::down_convert(&batches, magic, w.offset, &limits, cap, &mut set)
                    {
                        // Stored batches passed the produce check, so only
                        // damage does this; the consumer gets what converted
                        // before it.
                        tracing::warn!(topic = %name, partition = w.partition, error = %e, "converting records for an old consumer failed");
                    }
                    if set.len() > cap && left < max_bytes {
                        // A later partition's first message did not fit.
                        set.clear();
                    }
                    left = left.saturating_sub(set.len());
                    super::conversions::count(super::conversions::Direction::Down, keep);
                }
            }
            crate::traffic::count_out(name, w.partition, set.len());
            partitions.push(
                Partition::default()
                    .with_partition_index(w.partition)
                    .with_error_code(data.error_code)
                    .with_high_watermark(data.high_watermark)
                    .with_records(Some(Bytes::from(set))),
            );
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.clone())))
                .with_partitions(partitions),
        );
    }
    let response =
        corelog_protocol::Response::Fetch(FetchResponse::default().with_responses(responses));
    super::count_errors(&response);
    let bytes = corelog_protocol::encode_response(
        header.api_key,
        header.api_version,
        header.correlation_id,
        &response,
    )
    .map_err(|e| Close {
        reason: format!("encoding response: {e}"),
        final_bytes: None,
        logged: false,
    })?;
    Ok(Handled::Reply(Reply::Segments(
        vec![bytes.freeze()],
        permit,
    )))
}

/// Reads every wanted partition, with one call per owning shard; each
/// owner shares `max_bytes` among its partitions (`read_partitions`).
async fn read_all(
    shard: &Rc<Shard>,
    topics: &[(String, TopicId, Vec<Wanted>)],
    max_bytes: usize,
) -> Vec<Vec<PartitionData>> {
    let reads: Vec<(ShardId, Read)> = topics
        .iter()
        .flat_map(|t| &t.2)
        .filter_map(|w| {
            w.owner.map(|owner| {
                let read = Read {
                    topic: w.topic.clone(),
                    partition: w.partition,
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                    isolation: w.isolation,
                    current_leader_epoch: w.current_leader_epoch,
                    last_fetched_epoch: w.last_fetched_epoch,
                    replica: w.replica,
                };
                (owner, read)
            })
        })
        .collect();
    let mut datas = shard
        .fan_out(
            reads,
            move |s, reads| read_partitions(s, reads, max_bytes),
            PartitionData::error(error_code::NOT_LEADER_OR_FOLLOWER),
        )
        .await
        .into_iter();
    topics
        .iter()
        .map(|(_, _, parts)| {
            parts
                .iter()
                .map(|w| match w.owner {
                    Some(_) => datas.next().unwrap_or_else(|| {
                        PartitionData::error(error_code::NOT_LEADER_OR_FOLLOWER)
                    }),
                    None => PartitionData::error(w.error_code),
                })
                .collect()
        })
        .collect()
}

/// What one partition's read asks of its owner.
struct Read {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    isolation: Isolation,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    replica: Option<NodeId>,
}

/// Runs on the owning shard: every partition it was asked for, in request
/// order, sharing `max_bytes` among them as Kafka does: each reads at most
/// what the partitions before it left of `max_bytes` (and its own
/// partition_max_bytes), the first that holds data at least one batch.
///
/// When the partitions' limits together fit in `max_bytes` (the usual case:
/// a consumer's fetch.max.bytes is many times its max.partition.fetch.bytes)
/// no partition's read depends on another's, so all are planned at once and
/// their disk reads overlap. Otherwise each read must know what the ones
/// before it took, and they run one after another. Partitions on other
/// shards take from the same `max_bytes`; `fill_in_order` trims the
/// answers of all shards together, so what is read here is an upper bound
/// of what is sent.
async fn read_partitions(
    shard: Rc<Shard>,
    reads: Vec<Read>,
    max_bytes: usize,
) -> Vec<PartitionData> {
    let wanted: usize = reads.iter().map(|r| r.max_bytes).sum();
    if wanted <= max_bytes {
        read_independent(shard, reads).await
    } else {
        read_in_order(shard, reads, max_bytes).await
    }
}

/// Reads partitions whose limits do not depend on each other: reads served
/// from memory finish in place; reads that need the disk run concurrently,
/// each in its own task.
async fn read_independent(shard: Rc<Shard>, reads: Vec<Read>) -> Vec<PartitionData> {
    // Plan every read first (no await in between, so all see the log at the
    // same moment), then finish them: in place when the plan needs no disk.
    let mut out: Vec<Option<PartitionData>> = Vec::with_capacity(reads.len());
    let mut disk = Vec::new();
    for read in reads {
        match plan_partition(&shard, &read) {
            Planned::Done(data) => out.push(Some(data)),
            Planned::Read(data, ReadPlan::Ready(chunks)) => out.push(Some(data.with(chunks))),
            Planned::Read(data, plan) => {
                disk.push((out.len(), read, data, plan));
                out.push(None);
            }
        }
    }
    if let [_] = disk.as_slice() {
        let (at, read, data, plan) = disk.pop().expect("one disk read");
        out[at] = Some(finish_read(&read, data, plan).await);
    } else {
        // Several disk reads: overlap them.
        let tasks: Vec<_> = disk
            .into_iter()
            .map(|(at, read, data, plan)| {
                (
                    at,
                    glommio::spawn_local(async move { finish_read(&read, data, plan).await }),
                )
            })
            .collect();
        for (at, task) in tasks {
            out[at] = Some(task.await);
        }
    }
    out.into_iter()
        .map(|d| d.expect("every read is answered"))
        .collect()
}

/// Reads partitions one after another, each limited to what the ones
/// before it left of `max_bytes`. Once a partition returned data, a later
/// one whose first batch is larger than what is left returns nothing (only
/// the first partition with data may exceed the limit), and once nothing is
/// left the rest read nothing, though each is still checked (an offset out
/// of range is reported).
async fn read_in_order(shard: Rc<Shard>, reads: Vec<Read>, max_bytes: usize) -> Vec<PartitionData> {
    let mut out = Vec::with_capacity(reads.len());
    let mut left = max_bytes;
    let mut any_data = false;
    for mut read in reads {
        read.max_bytes = read.max_bytes.min(left);
        let data = match plan_partition(&shard, &read) {
            Planned::Done(data) => data,
            // Nothing left to fill: the plan only checked the offset.
            Planned::Read(data, _) if read.max_bytes == 0 && any_data => data,
            Planned::Read(data, ReadPlan::Ready(chunks)) => data.with(chunks),
            Planned::Read(data, plan) => finish_read(&read, data, plan).await,
        };
        let data = if any_data && data.bytes > read.max_bytes {
            // One batch larger than what is left: not sent.
            PartitionData {
                chunks: Vec::new(),
                bytes: 0,
                ..data
            }
        } else {
            data
        };
        any_data |= data.bytes > 0;
        left = left.saturating_sub(data.bytes);
        out.push(data);
    }
    out
}

/// How many bytes of each partition's read (in request order, all topics
/// flattened) go into the response: Kafka's filling of `max_bytes`. Each
/// partition takes whole batches up to its partition_max_bytes and what the
/// partitions before it left of `max_bytes`; the first partition with data
/// takes at least its first batch, however large (KIP-74), so a consumer
/// always progresses.
fn fill_in_order(
    topics: &[(String, TopicId, Vec<Wanted>)],
    results: &[Vec<PartitionData>],
    max_bytes: usize,
) -> Vec<usize> {
    let mut left = max_bytes;
    let mut any_data = false;
    let mut kept = Vec::new();
    for ((_, _, parts), datas) in topics.iter().zip(results) {
        for (w, data) in parts.iter().zip(datas) {
            let limit = w.max_bytes.min(left);
            let keep = if data.bytes <= limit {
                data.bytes
            } else {
                whole_batches_within(&data.chunks, data.bytes, limit, !any_data)
            };
            any_data |= keep > 0;
            left = left.saturating_sub(keep);
            kept.push(keep);
        }
    }
    kept
}

/// The length of the longest run of whole batches at the start of `chunks`
/// (`total` bytes of record batches) that fits in `limit`, or of the first
/// batch when `at_least_one` and it alone is larger.
fn whole_batches_within(chunks: &[Bytes], total: usize, limit: usize, at_least_one: bool) -> usize {
    let mut cursor = ChunkCursor::new(chunks);
    let mut end = 0usize;
    // A batch starts with its base offset (8 bytes) and its length (4
    // bytes), which counts the bytes after the length.
    while end + 12 <= total {
        let Some(length) = cursor.u32_at(end + 8) else {
            break;
        };
        let next = end + 12 + length as usize;
        if next > total || (next > limit && !(at_least_one && end == 0)) {
            break;
        }
        end = next;
    }
    end
}

/// Reads bytes at increasing positions of a sequence of chunks.
struct ChunkCursor<'a> {
    chunks: &'a [Bytes],
    /// The chunk holding the last position read, and where it starts.
    index: usize,
    start: usize,
}

impl<'a> ChunkCursor<'a> {
    fn new(chunks: &'a [Bytes]) -> ChunkCursor<'a> {
        ChunkCursor {
            chunks,
            index: 0,
            start: 0,
        }
    }

    /// The byte at `pos`, which is at or after every position read before.
    fn byte_at(&mut self, pos: usize) -> Option<u8> {
        while pos >= self.start + self.chunks.get(self.index)?.len() {
            self.start += self.chunks[self.index].len();
            self.index += 1;
        }
        Some(self.chunks[self.index][pos - self.start])
    }

    /// The big-endian u32 at `pos`, which may span chunks.
    fn u32_at(&mut self, pos: usize) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..4 {
            value = value << 8 | u32::from(self.byte_at(pos + i)?);
        }
        Some(value)
    }
}

/// The first `len` bytes of `chunks`, sharing their memory.
fn prefix(chunks: Vec<Bytes>, len: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut left = len;
    for chunk in chunks {
        if left == 0 {
            break;
        }
        if chunk.len() <= left {
            left -= chunk.len();
            out.push(chunk);
        } else {
            out.push(chunk.slice(..left));
            left = 0;
        }
    }
    out
}

enum Planned {
    /// Answered without reading (unknown partition, offset out of range).
    Done(PartitionData),
    /// The header fields, and the read that fills in the records.
    Read(PartitionData, ReadPlan),
}

/// Runs on the owning shard: plans one partition's read.
fn plan_partition(shard: &Rc<Shard>, read: &Read) -> Planned {
    let Some(p) = shard.partition(&read.topic, read.partition) else {
        return Planned::Done(PartitionData::error(error_code::UNKNOWN_TOPIC_OR_PARTITION));
    };
    let fenced = p.check_leader_epoch(read.current_leader_epoch);
    if fenced != error_code::NONE {
        return Planned::Done(PartitionData::error(fenced));
    }
    if read.last_fetched_epoch >= 0 {
        // Kafka's check for a fetcher that names the epoch of its last
        // batch (KIP-595, how followers find divergence without a separate
        // OffsetForLeaderEpoch): if that epoch ends here before the fetch
        // offset, or this log does not hold it, the fetcher's log diverges;
        // it is told where, and gets no records.
        let (epoch, end) = p.end_offset_for_epoch(LeaderEpoch(read.last_fetched_epoch));
        if epoch.0 < 0 || end.0 < 0 {
            return Planned::Done(PartitionData::error(error_code::OFFSET_OUT_OF_RANGE));
        }
        if epoch.0 < read.last_fetched_epoch || end.0 < read.offset {
            let bounds = p.bounds();
            return Planned::Done(PartitionData {
                high_watermark: bounds.high_watermark.0,
                last_stable_offset: bounds.last_stable_offset.0,
                log_start_offset: bounds.log_start_offset.0,
                diverging_epoch: Some((epoch.0, end.0)),
                ..Default::default()
            });
        }
    }
    if let Some(follower) = read.replica {
        // What the follower holds on disk counts before the read, so the
        // answer carries the high watermark it may have moved.
        let Some(proposals) = p.follower_fetched(
            follower,
            Offset(read.offset),
            corelog_runtime::now_ms() as u64,
        ) else {
            return Planned::Done(PartitionData::error(error_code::NOT_LEADER_OR_FOLLOWER));
        };
        crate::replica::propose(shard, &read.topic, read.partition, &p, proposals);
    }
    let (bounds, plan, aborted) = if read.isolation == Isolation::ReadCommitted {
        let (bounds, plan, aborted) = p.plan_read_committed(Offset(read.offset), read.max_bytes);
        let aborted = aborted
            .into_iter()
            .map(|a| AbortedTransaction {
                producer_id: a.producer_id.0,
                first_offset: a.first_offset.0,
            })
            .collect();
        (bounds, plan, Some(aborted))
    } else {
        let (bounds, plan) = p.plan_read(Offset(read.offset), read.max_bytes, read.isolation);
        (bounds, plan, None)
    };
    let mut data = PartitionData {
        high_watermark: bounds.high_watermark.0,
        last_stable_offset: bounds.last_stable_offset.0,
        log_start_offset: bounds.log_start_offset.0,
        log_end_offset: bounds.log_end_offset.0,
        aborted,
        ..Default::default()
    };
    match plan {
        Ok(plan) => Planned::Read(data, plan),
        Err(e) => {
            data.error_code = ServerError::code_of_storage(&e);
            Planned::Done(data)
        }
    }
}

/// Runs on the owning shard: performs a planned read.
async fn finish_read(read: &Read, data: PartitionData, plan: ReadPlan) -> PartitionData {
    match plan.execute().await {
        Ok(chunks) => data.with(chunks),
        Err(e) => {
            tracing::error!(topic = %read.topic, partition = read.partition, error = %e, "fetch read failed");
            PartitionData {
                error_code: ServerError::code_of_storage(&e),
                ..data
            }
        }
    }
}

/// Waits until any wanted partition has data it did not have at the last
/// read (the end of what its isolation level may see, the high watermark or
/// the last stable offset, passes both the fetch offset and the end that
/// read saw), until the deadline, or until shutdown.
///
/// Waiting for "data past the fetch offset" alone is not enough: a
/// partition that holds some data, but less than `min_bytes`, satisfies it
/// at once, and the Fetch spun re-reading it until its deadline.
///
/// The waits on other shards are cancelled when this returns: each runs in
/// a task owned here (dropped on return) through `call_cancellable`.
async fn wait_for_data(
    shard: &Rc<Shard>,
    topics: &[(String, TopicId, Vec<Wanted>)],
    seen_visible_ends: &[i64],
    deadline: Instant,
) {
    // One wait per owning shard, covering all its partitions.
    let mut by_owner: Vec<(ShardId, Vec<Watch>)> = Vec::new();
    let wanted = topics.iter().flat_map(|t| &t.2);
    for (w, &seen) in wanted.zip(seen_visible_ends) {
        let Some(owner) = w.owner else { continue };
        let watch = Watch {
            topic: w.topic.clone(),
            partition: w.partition,
            isolation: w.isolation,
            past: w.offset.max(seen),
        };
        match by_owner.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, watches)) => watches.push(watch),
            None => by_owner.push((owner, vec![watch])),
        }
    }
    let arrived = Rc::new(Notify::new());
    let wake = arrived.notified();
    let mut waits = Vec::new();
    for (owner, watches) in by_owner {
        let (shard, arrived) = (shard.clone(), arrived.clone());
        waits.push(glommio::spawn_local(async move {
            let _ = shard
                .call_cancellable(owner, move |s| wait_partitions(s, watches, deadline))
                .await;
            arrived.notify_all();
        }));
    }
    let timeout = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
    };
    let stopped = shard.stop_notified();
    if shard.is_stopping() {
        return;
    }
    wake.or(stopped).or(timeout).await;
    drop(waits);
}

/// A partition a long poll waits on: it wants an offset at or above `past`
/// to become visible at `isolation`.
struct Watch {
    topic: String,
    partition: i32,
    isolation: Isolation,
    past: i64,
}

/// Runs on the owning shard: returns once any watched partition has data
/// past its `past` (or is gone), at the deadline, or at shutdown.
async fn wait_partitions(shard: Rc<Shard>, watches: Vec<Watch>, deadline: Instant) {
    let mut watched = Vec::with_capacity(watches.len());
    for w in &watches {
        match shard.partition(&w.topic, w.partition) {
            Some(p) => watched.push((p, w)),
            // Deleted meanwhile: the next read reports it.
            None => return,
        }
    }
    loop {
        let stopped = shard.stop_notified();
        let visible = watched
            .iter()
            .any(|(p, w)| p.bounds().visible_end(w.isolation).0 > w.past);
        if visible || Instant::now() >= deadline || shard.is_stopping() {
            return;
        }
        let timeout = async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        };
        let mut changes: Vec<_> = watched.iter().map(|(p, _)| Box::pin(p.changed())).collect();
        let any_changed = futures_lite::future::poll_fn(|cx| {
            for change in changes.iter_mut() {
                if change.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        });
        any_changed.or(stopped).or(timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record batch as far as framing goes: base offset, length, then
    /// `length` bytes.
    fn batch(length: usize) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&(length as u32).to_be_bytes());
        b.resize(12 + length, 7);
        b
    }

    /// `batches` as chunks cut at every `cut`-th byte, so headers span
    /// chunks.
    fn chunked(batches: &[Vec<u8>], cut: usize) -> (Vec<Bytes>, usize) {
        let all: Vec<u8> = batches.concat();
        let chunks = all.chunks(cut).map(Bytes::copy_from_slice).collect();
        (chunks, all.len())
    }

    #[test]
    fn whole_batches_are_kept_within_the_limit_across_chunk_boundaries() {
        // Batches of 112, 62 and 212 bytes.
        let batches = [batch(100), batch(50), batch(200)];
        for cut in [1, 5, 8, 13, 1000] {
            let (chunks, total) = chunked(&batches, cut);
            let within = |limit, first| whole_batches_within(&chunks, total, limit, first);
            assert_eq!(within(total, false), total, "cut {cut}");
            assert_eq!(within(174, false), 174, "cut {cut}");
            assert_eq!(within(173, false), 112, "cut {cut}");
            assert_eq!(within(111, false), 0, "cut {cut}");
            // The first batch goes in whole when it must, even past the limit.
            assert_eq!(within(0, true), 112, "cut {cut}");
            assert_eq!(within(111, true), 112, "cut {cut}");
            assert_eq!(within(200, true), 174, "cut {cut}");
        }
    }

    #[test]
    fn a_prefix_shares_the_chunks_and_cuts_the_last() {
        let chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"hi"),
        ];
        let cat = |c: Vec<Bytes>| c.concat();
        assert_eq!(cat(prefix(chunks.clone(), 0)), b"");
        assert_eq!(cat(prefix(chunks.clone(), 3)), b"abc");
        assert_eq!(cat(prefix(chunks.clone(), 5)), b"abcde");
        assert_eq!(cat(prefix(chunks.clone(), 9)), b"abcdefghi");
        assert_eq!(prefix(chunks, 5).len(), 2);
    }

    fn wanted(max_bytes: usize) -> Wanted {
        Wanted {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            max_bytes,
            isolation: Isolation::ReadUncommitted,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            replica: None,
            owner: Some(ShardId(0)),
            error_code: 0,
        }
    }

    fn data(batches: &[Vec<u8>]) -> PartitionData {
        let (chunks, bytes) = chunked(batches, 10);
        PartitionData {
            chunks,
            bytes,
            ..Default::default()
        }
    }

    #[test]
    fn max_bytes_is_filled_partition_by_partition_in_request_order() {
        // Four partitions of 112-byte batches (three each, one empty), each
        // allowed 1000 bytes, in a response of 300: the first empty one
        // takes nothing, the next two whole batches (224), the next none
        // (76 left is less than a batch), and the last none either.
        let b = || batch(100);
        let topics = vec![(
            "t".to_string(),
            TopicId([0; 16]),
            (0..5).map(|_| wanted(1000)).collect::<Vec<_>>(),
        )];
        let results = vec![vec![
            data(&[]),
            data(&[b(), b()]),
            data(&[b(), b(), b()]),
            data(&[b()]),
            data(&[]),
        ]];
        assert_eq!(fill_in_order(&topics, &results, 300), [0, 224, 0, 0, 0]);
        // A partition's own limit binds before the response's.
        let mut topics = topics;
        topics[0].2[1].max_bytes = 150;
        assert_eq!(fill_in_order(&topics, &results, 300), [0, 112, 112, 0, 0]);
        // Smaller than one batch: the first partition with data still
        // returns its first batch, and no other partition anything.
        assert_eq!(fill_in_order(&topics, &results, 1), [0, 112, 0, 0, 0]);
    }
}
