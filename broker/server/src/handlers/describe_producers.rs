//! DescribeProducers: the idempotent and transactional producers each
//! partition remembers (its producer state), read on the partition's
//! owner shard, one call per owner.

use corelog_coordination::codes;
use corelog_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use corelog_protocol::kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId as WireProducerId,
};

use super::group_common::{s, tname};
use super::Close;
use super::{Handled, RequestContext};
use crate::{ShardId, TopicPartition};

/// One partition's answer, built on its owner.
#[derive(Debug, Clone)]
struct Answer {
    error: i16,
    producers: Vec<ProducerState>,
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> Result<Handled<DescribeProducersResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let md = shard.metadata();
    let mut slots: Vec<(TopicPartition, Option<Answer>)> = Vec::new();
    let mut items: Vec<(ShardId, TopicPartition)> = Vec::new();
    let mut sent: Vec<usize> = Vec::new();
    for t in &request.topics {
        let name = s(&t.name.0);
        for &p in &t.partition_indexes {
            let tp = TopicPartition::new(name.clone(), p);
            let owner = md
                .topics
                .get(&name)
                .and_then(|m| m.partitions.get(usize::try_from(p).ok()?))
                .map(|pm| pm.serving_shard());
            let answer = match owner {
                None => Some(Answer {
                    error: codes::UNKNOWN_TOPIC_OR_PARTITION,
                    producers: Vec::new(),
                }),
                Some(None) => Some(Answer {
                    error: corelog_protocol::error_code::NOT_LEADER_OR_FOLLOWER,
                    producers: Vec::new(),
                }),
                Some(Some(owner)) => {
                    sent.push(slots.len());
                    items.push((owner, tp.clone()));
                    None
                }
            };
            slots.push((tp, answer));
        }
    }
    let gone = Answer {
        error: corelog_protocol::error_code::NOT_LEADER_OR_FOLLOWER,
        producers: Vec::new(),
    };
    let answers = shard
        .fan_out(
            items,
            |s, parts: Vec<TopicPartition>| async move {
                parts
                    .into_iter()
                    .map(|tp| match s.partition(&tp.topic, tp.partition) {
                        None => Answer {
                            error: codes::UNKNOWN_TOPIC_OR_PARTITION,
                            producers: Vec::new(),
                        },
                        Some(p) => Answer {
                            error: codes::NONE,
                            producers: p
                                .producer_states()
                                .into_iter()
                                .map(|v| {
                                    ProducerState::default()
                                        .with_producer_id(WireProducerId(v.producer_id.0))
                                        .with_producer_epoch(i32::from(v.producer_epoch.0))
                                        .with_last_sequence(v.last_sequence)
                                        .with_last_timestamp(v.last_timestamp_ms)
                                        .with_coordinator_epoch(v.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            v.current_txn_start_offset.map_or(-1, |o| o.0),
                                        )
                                })
                                .collect(),
                        },
                    })
                    .collect()
            },
            gone,
        )
        .await;
    for (slot, answer) in sent.into_iter().zip(answers) {
        slots[slot].1 = Some(answer);
    }
    let mut topics: Vec<TopicResponse> = Vec::new();
    for (tp, answer) in slots {
        let answer = answer.unwrap_or(Answer {
            error: codes::UNKNOWN_SERVER_ERROR,
            producers: Vec::new(),
        });
        let part = PartitionResponse::default()
            .with_partition_index(tp.partition)
            .with_error_code(answer.error)
            .with_active_producers(answer.producers);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(part),
            _ => topics.push(
                TopicResponse::default()
                    .with_name(tname(tp.topic))
                    .with_partitions(vec![part]),
            ),
        }
    }
    Ok(DescribeProducersResponse::default()
        .with_topics(topics)
        .into())
}
