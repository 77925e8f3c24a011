//! Produce: validate each partition's record batch, append it on the shard
//! that owns the partition, and answer per `acks`.
//!
//! acks=0: no response. acks=1 and acks=all (-1): answered when the
//! partition says the append is acknowledged at that level (see
//! `crate::partition` for what each level waits for).

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use corelog_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use corelog_protocol::RequestHeader;
use futures_lite::FutureExt;

use crate::partition::Acks;
use crate::shard::Shard;

#[derive(Debug, Clone, Copy)]
struct Outcome {
    error_code: i16,
    base_offset: i64,
    log_start_offset: i64,
}

impl Outcome {
    fn error(code: i16) -> Outcome {
        Outcome {
            error_code: code,
            base_offset: -1,
            log_start_offset: -1,
        }
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let acks_level = Acks::from_kafka(acks);
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    if shard.config.auto_create_topics {
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
    let mut tasks = Vec::new();
    for topic in &request.topic_data {
        let name = topic.name.0.to_string();
        for part in &topic.partition_data {
            let index = part.index;
            let outcome_task = if let Some(acks) = acks_level {
                match (md.topics.get(&name), part.records.clone()) {
                    (None, _) => Err(Outcome::error(error_code::UNKNOWN_TOPIC_OR_PARTITION)),
                    (Some(t), _) if index < 0 || index as usize >= t.partitions.len() => {
                        Err(Outcome::error(error_code::UNKNOWN_TOPIC_OR_PARTITION))
                    }
                    (Some(_), None) => Err(Outcome::error(error_code::CORRUPT_MESSAGE)),
                    (Some(t), Some(records)) => {
                        let settings = md.settings(&shard.config, &name);
                        if records.len() > settings.max_message_bytes as usize {
                            Err(Outcome::error(error_code::MESSAGE_TOO_LARGE))
                        } else if acks == Acks::All && settings.min_insync_replicas > 1 {
                            // One replica can never satisfy min.insync.replicas > 1.
                            Err(Outcome::error(
                                corelog_protocol::ResponseError::NotEnoughReplicas.code(),
                            ))
                        } else {
                            let owner = t.partitions[index as usize].shard;
                            let shard = shard.clone();
                            let name = name.clone();
                            Ok(glommio::spawn_local(async move {
                                shard
                                    .call(owner, move |s| {
                                        append(s, name, index, records, acks, timeout)
                                    })
                                    .await
                                    .unwrap_or(Outcome::error(error_code::NOT_LEADER_OR_FOLLOWER))
                            }))
                        }
                    }
                }
            } else {
                Err(Outcome::error(error_code::INVALID_REQUIRED_ACKS))
            };
            tasks.push((name.clone(), index, outcome_task));
        }
    }
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    for (name, index, task) in tasks {
        let outcome = match task {
            Ok(t) => t.await,
            Err(o) => o,
        };
        let part = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(outcome.error_code)
            .with_base_offset(outcome.base_offset)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(outcome.log_start_offset);
        match responses.last_mut() {
            Some(t) if t.name.0.as_str() == name => t.partition_responses.push(part),
            _ => responses.push(
                TopicProduceResponse::default()
                    .with_name(
                        corelog_protocol::kafka_protocol::protocol::StrBytes::from_string(name)
                            .into(),
                    )
                    .with_partition_responses(vec![part]),
            ),
        }
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Runs on the partition's owning shard.
async fn append(
    shard: Rc<Shard>,
    topic: String,
    index: i32,
    records: Bytes,
    acks: Acks,
    timeout: Duration,
) -> Outcome {
    let Some(p) = shard.partition(&topic, index) else {
        return Outcome::error(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let appended = match p.append(records, acks) {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(%topic, index, error = %e, "produce refused");
            return Outcome::error(super::storage_error_code(&e));
        }
    };
    let acknowledged = async { Some(p.acknowledged(&appended).await) };
    let timed_out = async {
        glommio::timer::sleep(timeout).await;
        None
    };
    match acknowledged.or(timed_out).await {
        Some(Ok(())) => {}
        Some(Err(_)) => return Outcome::error(error_code::KAFKA_STORAGE_ERROR),
        None => return Outcome::error(error_code::REQUEST_TIMED_OUT),
    }
    Outcome {
        error_code: error_code::NONE,
        base_offset: appended.base_offset.0,
        log_start_offset: p.log_start_offset().0,
    }
}
