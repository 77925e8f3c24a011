//! DescribeTopicPartitions (KIP-966): topics' partitions with their
//! leaders, replicas and ISR, as Metadata gives them, and the eligible
//! leader replicas, which only this api reports (a replica outside the ISR
//! that holds every committed offset, so it may lead when no member of the
//! ISR is live; `corelog_controller`'s `PartitionInfo::elr`).
//!
//! Paged as Kafka pages it: topics in name order (every topic when none is
//! named), at most `ResponsePartitionLimit` partitions per answer, capped
//! at [`PARTITIONS_PER_RESPONSE_MAX`] (Kafka's
//! `max.request.partition.size.limit`), from the request's cursor; the
//! answer's `NextCursor` names the first partition left out, and is null
//! when nothing is.
//!
//! On a single node every partition has one replica, this broker, which
//! leads it; no replica is ever eligible outside the ISR.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use corelog_protocol::kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::endpoints;
use crate::metadata::{ClusterMetadata, PartitionMeta};

/// The most partitions one answer describes, whatever the request asks
/// (Kafka's `max.request.partition.size.limit`, 2000).
pub const PARTITIONS_PER_RESPONSE_MAX: usize = 2000;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeTopicPartitionsRequest,
) -> Result<Handled<DescribeTopicPartitionsResponse>, Close> {
    let shard = cx.shard;
    let md = shard.metadata();
    let mut names: Vec<String> = if request.topics.is_empty() {
        md.topics.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(first) = &cursor_topic {
        names.retain(|n| n >= first);
    }
    let mut budget = usize::try_from(request.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        let entry = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
            .with_topic_authorized_operations(i32::MIN);
        let Some(topic) = md.topics.get(&name) else {
            let code = if crate::metadata::validate_topic_name(&name).is_ok() {
                error_code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                error_code::INVALID_TOPIC_EXCEPTION
            };
            topics.push(entry.with_error_code(code));
            continue;
        };
        if budget == 0 {
            next_cursor = Some((name, 0));
            break;
        }
        let start = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition as usize
        } else {
            0
        };
        let mut partitions = Vec::new();
        for (i, p) in topic.partitions.iter().enumerate().skip(start) {
            if budget == 0 {
                next_cursor = Some((name.clone(), i as i32));
                break;
            }
            budget -= 1;
            partitions.push(describe(shard.config(), &md, i as i32, p));
        }
        topics.push(
            entry
                .with_topic_id(topic.uuid())
                .with_partitions(partitions),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    Ok(DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(TopicName(StrBytes::from_string(topic)))
                .with_partition_index(partition)
        }))
        .into())
}

fn describe(
    config: &crate::config::ServerConfig,
    md: &ClusterMetadata,
    index: i32,
    p: &PartitionMeta,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |l: &[i32]| l.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let out = DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_last_known_elr(Some(Vec::new()));
    match &p.replica {
        // A cluster node: the quorum's image. Replicas on brokers that are
        // not live (fenced, or gone) are offline.
        Some(r) => {
            let offline: Vec<i32> = r
                .replicas
                .iter()
                .copied()
                .filter(|id| !md.brokers.iter().any(|b| b.id == *id))
                .collect();
            out.with_error_code(if r.leader < 0 {
                error_code::LEADER_NOT_AVAILABLE
            } else {
                error_code::NONE
            })
            .with_leader_id(BrokerId(r.leader))
            .with_leader_epoch(r.leader_epoch)
            .with_replica_nodes(ids(&r.replicas))
            .with_isr_nodes(ids(&r.isr))
            .with_eligible_leader_replicas(Some(ids(&r.elr)))
            .with_offline_replicas(ids(&offline))
        }
        None => {
            let leader = BrokerId(endpoints::node_of(config, p.shard).0);
            out.with_leader_id(leader)
                .with_leader_epoch(crate::LEADER_EPOCH.0)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
                .with_eligible_leader_replicas(Some(Vec::new()))
        }
    }
}
