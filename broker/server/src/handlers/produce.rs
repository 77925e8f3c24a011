//! Produce: validate each partition's record batch, append it on the shard
//! that owns the partition, and answer per `acks`.
//!
//! acks=0: no response. acks=1: answered once the batch is appended (in the
//! log's write buffer). acks=all (-1): answered once it is on stable storage
//! (written and fdatasynced).

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use corelog_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use futures_lite::FutureExt;

use super::{Handled, Reply, RequestContext};
use crate::conn::Close;
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
    cx: &RequestContext<'_>,
    request: ProduceRequest,
) -> Result<Handled<ProduceResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let acks = request.acks;
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
            let outcome_task = if !(acks == -1 || acks == 0 || acks == 1) {
                Err(Outcome::error(error_code::INVALID_REQUIRED_ACKS))
            } else {
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
                        } else if acks == -1 && settings.min_insync_replicas > 1 {
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
        return Ok(Handled::Reply(Reply::None));
    }
    Ok(ProduceResponse::default().with_responses(responses).into())
}

/// Runs on the partition's owning shard.
async fn append(
    shard: Rc<Shard>,
    topic: String,
    index: i32,
    records: Bytes,
    acks: i16,
    timeout: Duration,
) -> Outcome {
    let Some(p) = shard.partition(&topic, index) else {
        return Outcome::error(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let (info, generation) = match p.append(records) {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(%topic, index, error = %e, "produce refused");
            return Outcome::error(super::storage_error_code(&e));
        }
    };
    if acks == -1 {
        let durable = async { Some(p.wait_flushed(info.last_offset.plus(1), generation).await) };
        let timed_out = async {
            glommio::timer::sleep(timeout).await;
            None
        };
        match durable.or(timed_out).await {
            Some(Ok(())) => {}
            Some(Err(_)) => return Outcome::error(error_code::KAFKA_STORAGE_ERROR),
            None => return Outcome::error(error_code::REQUEST_TIMED_OUT),
        }
    }
    Outcome {
        error_code: error_code::NONE,
        base_offset: info.base_offset.0,
        log_start_offset: p.read_log(|l| l.log_start_offset().0),
    }
}
