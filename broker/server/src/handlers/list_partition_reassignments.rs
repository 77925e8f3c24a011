//! ListPartitionReassignments (KIP-455): the partition moves in progress,
//! as the active controller's image holds them (each partition's replicas
//! during the move, and those being added and removed). A partition not
//! being moved, or one that does not exist, is left out, as in Kafka. A
//! single node never moves a partition: its answer is always empty.

use std::collections::BTreeMap;

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use corelog_protocol::kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::controller_outcomes;
use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::error::ServerError;
use crate::TopicPartition;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ListPartitionReassignmentsRequest,
) -> Result<Handled<ListPartitionReassignmentsResponse>, Close> {
    let shard = cx.shard;
    let asked: Option<Vec<TopicPartition>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .iter()
                    .map(move |p| TopicPartition::new(name.clone(), *p))
            })
            .collect()
    });
    if asked
        .as_ref()
        .is_some_and(|a| a.len() as u64 > u64::from(shard.config().partitions_per_request_max))
    {
        return Ok(ListPartitionReassignmentsResponse::default()
            .with_error_code(error_code::INVALID_REQUEST)
            .with_error_message(Some(StrBytes::from_static_str(
                "more partitions than partitions_per_request_max",
            )))
            .into());
    }
    if shard.config().node_id.is_none() {
        return Ok(ListPartitionReassignmentsResponse::default().into());
    }
    let request = ControlRequest::ListReassignments { partitions: asked };
    let list = match controller_outcomes::ask(shard, request).await {
        Ok(ControlResponse::Reassignments { list }) => list,
        Ok(other) => {
            return Ok(failed(&ServerError::Internal(format!(
                "the controller answered ListPartitionReassignments with {other:?}"
            ))))
        }
        Err(e) => return Ok(failed(&e)),
    };
    let ids = |l: Vec<i32>| l.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut topics: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for s in list {
        topics.entry(s.partition.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(s.partition.partition)
                .with_replicas(ids(s.replicas))
                .with_adding_replicas(ids(s.adding))
                .with_removing_replicas(ids(s.removing)),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    Ok(ListPartitionReassignmentsResponse::default()
        .with_topics(topics)
        .into())
}

fn failed(e: &ServerError) -> Handled<ListPartitionReassignmentsResponse> {
    ListPartitionReassignmentsResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(StrBytes::from_string(e.to_string())))
        .into()
}
