//! Produce: validate each partition's record batch, append it on the shard
//! that owns the partition, and answer per `acks`.
//!
//! Validation runs here, on the connection's shard, before a batch travels
//! to its owner: the header, the CRC and every record inside, decompressed
//! if need be (`corelog_storage::records`), plus what only a produce
//! request may not carry (control batches, transactional batches without
//! the request's transactional id, zstd before Produce v7).
//!
//! A transactional batch that would start its producer's transaction on a
//! partition is first checked with the producer's transaction coordinator
//! (KIP-890's verification, `crate::txn::verify`): only a partition the
//! producer added to its ongoing transaction takes it, so a late or
//! hanging write cannot open a transaction no marker will ever close. The owner then
//! appends the checked batch without reading it again. A refused batch is
//! answered with Kafka's error code and, from Produce v8 on, a message
//! saying what was wrong.
//!
//! acks=0: no response. acks=1 and acks=all (-1): answered when the
//! partition says the append is acknowledged at that level (see
//! `crate::partition` for what each level waits for).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use corelog_protocol::kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_storage::batch::{BatchError, Compression};
use corelog_storage::legacy;
use corelog_storage::{RecordLimits, StorageError, ValidBatch};
use futures_lite::FutureExt;

use super::Close;
use super::{Handled, Reply, RequestContext};
use crate::error::ServerError;
use crate::partition::{Acks, NotAcknowledged};
use crate::shard::Shard;
use crate::ShardId;

#[derive(Debug, Clone)]
struct Outcome {
    error_code: i16,
    base_offset: i64,
    log_start_offset: i64,
    /// What the client is told beside the code, where the code alone does
    /// not say what to fix.
    message: Option<String>,
}

impl Outcome {
    fn error(code: i16) -> Outcome {
        Outcome {
            error_code: code,
            base_offset: -1,
            log_start_offset: -1,
            message: None,
        }
    }

    /// A refusal by the log, with the log's reason where the client can
    /// act on it (a keyless record for a compacted topic).
    fn refused(e: &StorageError) -> Outcome {
        let message = matches!(e, StorageError::KeylessRecordInCompactedLog { .. }).then(|| {
            format!("{e}: every record of a topic with cleanup.policy compact needs a key")
        });
        Outcome {
            message,
            ..Outcome::error(ServerError::code_of_storage(e))
        }
    }
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Result<Handled<ProduceResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let acks = request.acks;
    let acks_level = Acks::from_kafka(acks);
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    if shard.config().auto_create_topics {
        let md = shard.metadata();
        let missing: Vec<String> = request
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| {
                !md.topics.contains_key(n) && crate::metadata::validate_topic_name(n).is_ok()
            })
            .collect();
        if !missing.is_empty() {
            super::create_topics::auto_create(shard, missing).await;
        }
    }
    let md = shard.metadata();
    let transactional_id: Option<String> = request
        .transactional_id
        .as_ref()
        .map(|t| t.0.to_string())
        .filter(|t| !t.is_empty());
    // Each partition's outcome, in request order: decided here when the
    // request itself is wrong, else by the owning shard; with a message for
    // the client when it is refused here.
    let mut slots: Vec<(String, i32, Option<Outcome>, Option<String>)> = Vec::new();
    let mut batches: Vec<(ShardId, Batch)> = Vec::new();
    for topic in &request.topic_data {
        let name = topic.name.0.to_string();
        for part in &topic.partition_data {
            let index = part.index;
            let mut message = None;
            let refused = match acks_level {
                None => Some(error_code::INVALID_REQUIRED_ACKS),
                Some(acks) => match (md.topics.get(&name), &part.records) {
                    (None, _) => Some(error_code::UNKNOWN_TOPIC_OR_PARTITION),
                    (Some(t), _) if index < 0 || index as usize >= t.partitions.len() => {
                        Some(error_code::UNKNOWN_TOPIC_OR_PARTITION)
                    }
                    // Another node leads it (cluster mode): the client
                    // asks Metadata again and sends it there.
                    (Some(t), _) if t.partitions[index as usize].serving_shard().is_none() => {
                        Some(error_code::NOT_LEADER_OR_FOLLOWER)
                    }
                    (Some(_), None) => Some(error_code::CORRUPT_MESSAGE),
                    (Some(t), Some(records)) => {
                        let settings = md.settings(shard.config(), &name);
                        if records.len() > settings.max_message_bytes as usize {
                            Some(error_code::MESSAGE_TOO_LARGE)
                        } else if acks == Acks::All
                            && settings.min_insync_replicas > 1
                            && t.partitions[index as usize]
                                .replica
                                .as_ref()
                                .is_none_or(|r| r.replicas.len() <= 1)
                        {
                            // One replica can never satisfy min.insync.replicas > 1.
                            // (A replicated partition's leader checks its ISR.)
                            Some(corelog_protocol::ResponseError::NotEnoughReplicas.code())
                        } else {
                            match check_batch(
                                records,
                                header.api_version,
                                &settings.log.record_limits,
                                shard.config().legacy_conversion_bytes_max,
                                transactional_id.is_some(),
                            ) {
                                Ok(batch) => {
                                    let owner = t.partitions[index as usize].shard;
                                    batches.push((
                                        owner,
                                        Batch {
                                            slot: slots.len(),
                                            topic: name.clone(),
                                            index,
                                            transactional_id: transactional_id.clone(),
                                            batch,
                                        },
                                    ));
                                    None
                                }
                                Err((code, why)) => {
                                    tracing::debug!(topic = %name, index, code, why = %why, "produce refused");
                                    message = Some(why);
                                    Some(code)
                                }
                            }
                        }
                    }
                },
            };
            slots.push((name.clone(), index, refused.map(Outcome::error), message));
        }
    }
    if let (Some(acks), false) = (acks_level, batches.is_empty()) {
        let sent: Vec<usize> = batches.iter().map(|(_, b)| b.slot).collect();
        let outcomes = shard
            .fan_out(
                batches,
                move |s, batches| append_all(s, batches, acks, timeout),
                Outcome::error(error_code::NOT_LEADER_OR_FOLLOWER),
            )
            .await;
        // Answers come back in the order the batches were sent.
        for (slot, outcome) in sent.into_iter().zip(outcomes) {
            slots[slot].2 = Some(outcome);
        }
    }
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    // KIP-951 (v10 and later): a partition answered NOT_LEADER_OR_FOLLOWER
    // carries its leader and leader epoch, and the response the leaders'
    // endpoints, so the client goes there without asking Metadata first.
    let mut hinted: Vec<i32> = Vec::new();
    for (name, index, outcome, message) in slots {
        let outcome = outcome.unwrap_or(Outcome::error(error_code::NOT_LEADER_OR_FOLLOWER));
        let mut part = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(outcome.error_code)
            .with_base_offset(outcome.base_offset)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(outcome.log_start_offset)
            .with_error_message(message.or(outcome.message).map(StrBytes::from_string));
        if header.api_version >= 10 && outcome.error_code == error_code::NOT_LEADER_OR_FOLLOWER {
            let leader = md
                .topics
                .get(&name)
                .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
                .and_then(|p| p.replica.as_ref())
                .filter(|r| r.leader >= 0);
            if let Some(r) = leader {
                part = part.with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(r.leader))
                        .with_leader_epoch(r.leader_epoch),
                );
                if !hinted.contains(&r.leader) {
                    hinted.push(r.leader);
                }
            }
        }
        match responses.last_mut() {
            Some(t) if t.name.0.as_str() == name => t.partition_responses.push(part),
            _ => responses.push(
                TopicProduceResponse::default()
                    .with_name(StrBytes::from_string(name).into())
                    .with_partition_responses(vec![part]),
            ),
        }
    }
    if acks == 0 {
        return Ok(Handled::Reply(Reply::None));
    }
    let node_endpoints = hinted
        .iter()
        .filter_map(|id| md.brokers.iter().find(|b| b.id == *id))
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    Ok(ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(node_endpoints)
        .into())
}

/// One partition's batch, sent to the shard that owns the partition.
struct Batch {
    /// Its place among the request's partitions.
    slot: usize,
    topic: String,
    index: i32,
    /// The request's transactional id, for a transactional batch's
    /// verification.
    transactional_id: Option<String>,
    batch: ValidBatch,
}

/// Checks one partition's records as Kafka's broker does before it appends
/// them: exactly one well-formed batch whose every record decodes
/// ([`ValidBatch::new`]), and nothing a client may not produce. Answers the
/// checked batch, or the error code and a message for the client.
///
/// Produce v0-2 carry message sets of format v0 or v1 instead (issue 21):
/// those are converted to one batch first (`corelog_storage::legacy`,
/// within `conversion_bytes_max`), which is then checked like any other.
/// A v2 batch in those versions is taken as it is, as Kafka does.
fn check_batch(
    records: &Bytes,
    version: i16,
    limits: &RecordLimits,
    conversion_bytes_max: usize,
    has_transactional_id: bool,
) -> Result<ValidBatch, (i16, String)> {
    let refused = |e: BatchError| {
        let code = ServerError::code_of_storage(&StorageError::Batch(e.clone()));
        (code, e.to_string())
    };
    let records = if version < 3 && is_message_set(records) {
        let converted = legacy::up_convert(
            records,
            corelog_runtime::now_ms(),
            limits,
            conversion_bytes_max,
        )
        .map_err(refused)?;
        super::conversions::count(super::conversions::Direction::Up, records.len());
        Bytes::from(converted)
    } else {
        records.clone()
    };
    let batch = ValidBatch::new(records, limits).map_err(refused)?;
    let h = batch.header();
    if h.is_control() {
        // Commit and abort markers are the transaction coordinator's to
        // write; a client's would end transactions that never began.
        return Err((
            error_code::INVALID_RECORD,
            "clients may not produce control batches".into(),
        ));
    }
    if h.is_transactional() && (!has_transactional_id || !h.has_producer_id()) {
        // Its coordinator could not be asked whether the partition is in
        // the producer's transaction, and no marker would be sure to
        // close it: stored, it could hold read_committed consumers back
        // for ever.
        return Err((
            error_code::INVALID_TXN_STATE,
            "a transactional batch needs a producer id and the request's transactional id".into(),
        ));
    }
    if h.compression() == Some(Compression::Zstd) && version < 7 {
        // KIP-110: clients that may not read zstd never see it.
        return Err((
            error_code::UNSUPPORTED_COMPRESSION_TYPE,
            "zstd batches need Produce v7 or later".into(),
        ));
    }
    Ok(batch)
}

/// Whether `records` hold a message set of format v0 or v1: their first
/// message's magic byte is 0 or 1 where a batch has its magic 2.
fn is_message_set(records: &[u8]) -> bool {
    records
        .get(legacy::MAGIC_OFFSET)
        .is_some_and(|&magic| magic as i8 == legacy::MAGIC_V0 || magic as i8 == legacy::MAGIC_V1)
}

/// What a produce answer says for a failed verification, in codes every
/// Produce version's clients know: a fenced producer's batch is refused as
/// one of an old epoch, and a coordinator busy completing the previous
/// transaction gets a retriable code (Kafka answers NOT_ENOUGH_REPLICAS
/// there too).
fn verification_code(code: i16) -> i16 {
    use corelog_coordination::codes;
    match code {
        codes::PRODUCER_FENCED => codes::INVALID_PRODUCER_EPOCH,
        codes::CONCURRENT_TRANSACTIONS
        | codes::COORDINATOR_LOAD_IN_PROGRESS
        | codes::COORDINATOR_NOT_AVAILABLE
        | codes::NOT_COORDINATOR => error_code::NOT_ENOUGH_REPLICAS,
        other => other,
    }
}

/// Runs on the owning shard: appends every batch it was sent, in request
/// order, then waits for each to be acknowledged at `acks`, all within one
/// deadline (`timeout` from now). One outcome per batch, in order.
async fn append_all(
    shard: Rc<Shard>,
    batches: Vec<Batch>,
    acks: Acks,
    timeout: Duration,
) -> Vec<Outcome> {
    let deadline = Instant::now() + timeout;
    let mut outcomes = Vec::with_capacity(batches.len());
    let mut appended = Vec::with_capacity(batches.len());
    for batch in batches {
        let Some(p) = shard.partition(&batch.topic, batch.index) else {
            outcomes.push(Outcome::error(error_code::UNKNOWN_TOPIC_OR_PARTITION));
            continue;
        };
        if p.is_follower() {
            // Metadata that named this node leader moved on since the
            // request was routed: only the follower's task appends now.
            outcomes.push(Outcome::error(error_code::NOT_LEADER_OR_FOLLOWER));
            continue;
        }
        if acks == Acks::All && !p.accepts_acks_all() {
            // Kafka's answer when the ISR is below min.insync.replicas:
            // nothing is appended.
            outcomes.push(Outcome::error(error_code::NOT_ENOUGH_REPLICAS));
            continue;
        }
        let h = *batch.batch.header();
        if h.is_transactional() && p.ongoing_transaction(h.producer_id).is_none() {
            let code = crate::txn::verify(
                &shard,
                batch.transactional_id.as_deref().unwrap_or_default(),
                h.producer_id,
                h.producer_epoch,
                crate::TopicPartition::new(batch.topic.clone(), batch.index),
            )
            .await;
            if code != error_code::NONE {
                tracing::debug!(topic = %batch.topic, index = batch.index, code, "transactional batch failed verification");
                outcomes.push(Outcome::error(verification_code(code)));
                continue;
            }
        }
        let (bytes, records) = (batch.batch.len(), h.records_count.max(0) as u64);
        match p.append(batch.batch, acks) {
            Ok(a) => {
                crate::traffic::count_in(&batch.topic, batch.index, bytes, records);
                appended.push((outcomes.len(), p, a));
                // Filled in once acknowledged.
                outcomes.push(Outcome::error(error_code::NONE));
            }
            Err(e) => {
                tracing::debug!(topic = %batch.topic, index = batch.index, error = %e, "produce refused");
                outcomes.push(Outcome::refused(&e));
            }
        }
    }
    for (at, p, a) in appended {
        let acknowledged = async { Some(p.acknowledged(&a).await) };
        let timed_out = async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            None
        };
        outcomes[at] = match acknowledged.or(timed_out).await {
            Some(Ok(())) => Outcome {
                error_code: error_code::NONE,
                base_offset: a.base_offset.0,
                log_start_offset: p.log_start_offset().0,
                message: None,
            },
            Some(Err(NotAcknowledged::Discarded)) => {
                Outcome::error(error_code::KAFKA_STORAGE_ERROR)
            }
            Some(Err(NotAcknowledged::NotLeader)) => {
                Outcome::error(error_code::NOT_LEADER_OR_FOLLOWER)
            }
            None => Outcome::error(error_code::REQUEST_TIMED_OUT),
        };
    }
    outcomes
}
