//! OffsetCommit: a group's consumed positions. Answered once the commit is
//! durable in the offsets log. Partitions of unknown topics are refused
//! here, as Kafka does, before the coordinator sees them.

use corelog_coordination::{codes, CommitPartition, OffsetCommit, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use corelog_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::group_common::{s, tname};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;
use crate::TopicPartition;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> Result<Handled<OffsetCommitResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let md = shard.metadata();
    let group_id = s(&request.group_id.0);
    // Per partition in request order: an early error, or None to commit.
    let mut outcome: Vec<(TopicPartition, Option<i16>)> = Vec::new();
    let mut offsets = Vec::new();
    for t in &request.topics {
        let topic = s(&t.name.0);
        let count = md.topics.get(&topic).map(|m| m.partitions.len() as i32);
        for p in &t.partitions {
            let known = count.is_some_and(|c| p.partition_index >= 0 && p.partition_index < c);
            if !known {
                outcome.push((
                    TopicPartition::new(topic.clone(), p.partition_index),
                    Some(codes::UNKNOWN_TOPIC_OR_PARTITION),
                ));
                continue;
            }
            outcome.push((TopicPartition::new(topic.clone(), p.partition_index), None));
            offsets.push(CommitPartition {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(s),
            });
        }
    }
    let mut answered: std::collections::HashMap<TopicPartition, i16> = Default::default();
    if !offsets.is_empty() {
        let commit = OffsetCommit {
            group_id: group_id.clone(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: s(&request.member_id),
            group_instance_id: request.group_instance_id.as_ref().map(s),
            offsets,
        };
        let keys: Vec<TopicPartition> = commit
            .offsets
            .iter()
            .map(|o| TopicPartition::new(o.topic.clone(), o.partition))
            .collect();
        match call_group(shard, &group_id, G::OffsetCommit(commit)).await {
            Ok(R::OffsetCommit(results)) => {
                answered.extend(results);
            }
            Ok(_) => {
                for k in keys {
                    answered.insert(k, codes::UNKNOWN_SERVER_ERROR);
                }
            }
            Err(code) => {
                for k in keys {
                    answered.insert(k, code);
                }
            }
        }
    }
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (tp, early) in outcome {
        let code = early.unwrap_or_else(|| {
            answered
                .get(&tp)
                .copied()
                .unwrap_or(codes::UNKNOWN_SERVER_ERROR)
        });
        let part = OffsetCommitResponsePartition::default()
            .with_partition_index(tp.partition)
            .with_error_code(code);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(part),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(tname(tp.topic))
                    .with_partitions(vec![part]),
            ),
        }
    }
    Ok(OffsetCommitResponse::default().with_topics(topics).into())
}
