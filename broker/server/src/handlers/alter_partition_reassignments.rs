//! AlterPartitionReassignments (KIP-455): move partitions to other
//! replicas, or cancel a move in progress. The active controller decides
//! (`corelog_controller`'s `Request::AlterReassignments`): the new
//! replicas join at once and start following the leader; once all of the
//! target replicas are in the ISR, the controller removes the others (and
//! moves leadership to a target replica if the leader is not one). Each
//! step is a new leader epoch, which the brokers take from the metadata
//! like any leadership change: producers and consumers see a retriable
//! NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH and go on. The answer
//! comes once the move has started, not when it completes;
//! ListPartitionReassignments shows it until then.
//!
//! On a single node every partition has its one replica, this broker:
//! naming it again changes nothing, any other broker is
//! INVALID_REPLICA_ASSIGNMENT, and there is never a move to cancel.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use corelog_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::controller_outcomes::{self, by_topic, failed_all, Outcome};
use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse, ReassignmentAsk};
use crate::error::ServerError;
use crate::TopicPartition;

/// Kafka's code for a cancellation with no move to cancel (not among the
/// protocol crate's named codes).
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> Result<Handled<AlterPartitionReassignmentsResponse>, Close> {
    let shard = cx.shard;
    let asked: Vec<ReassignmentAsk> = request
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.iter().map(move |p| ReassignmentAsk {
                partition: TopicPartition::new(name.clone(), p.partition_index),
                target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    if asked.len() as u64 > u64::from(shard.config().partitions_per_request_max) {
        return Ok(AlterPartitionReassignmentsResponse::default()
            .with_error_code(error_code::INVALID_REQUEST)
            .with_error_message(Some(StrBytes::from_static_str(
                "more partitions than partitions_per_request_max",
            )))
            .into());
    }
    let outcomes: Vec<Outcome> = if shard.config().node_id.is_some() {
        let names: Vec<TopicPartition> = asked.iter().map(|a| a.partition.clone()).collect();
        let request = ControlRequest::AlterReassignments { partitions: asked };
        match controller_outcomes::ask(shard, request).await {
            Ok(ControlResponse::ReassignmentsAltered { results }) => results,
            Ok(other) => failed_all(
                names,
                &ServerError::Internal(format!(
                    "the controller answered AlterPartitionReassignments with {other:?}"
                )),
            ),
            Err(e) => failed_all(names, &e),
        }
    } else {
        let md = shard.metadata();
        asked
            .into_iter()
            .map(|ReassignmentAsk { partition: tp, target }| {
                let exists = md.topics.get(&tp.topic).is_some_and(|t| {
                    tp.partition >= 0 && (tp.partition as usize) < t.partitions.len()
                });
                let (code, message) = match target {
                    _ if !exists => (
                        error_code::UNKNOWN_TOPIC_OR_PARTITION,
                        Some("This server does not host this topic-partition.".to_string()),
                    ),
                    None => (
                        NO_REASSIGNMENT_IN_PROGRESS,
                        Some("no reassignment is in progress for this partition".to_string()),
                    ),
                    Some(r) if r == [crate::NODE_ID.0] => (0, None),
                    Some(_) => (
                        error_code::INVALID_REPLICA_ASSIGNMENT,
                        Some(format!(
                            "this single-node broker is broker {}, the only replica a partition can have",
                            crate::NODE_ID.0
                        )),
                    ),
                };
                Outcome::new(tp, code, message)
            })
            .collect()
    };
    let responses = by_topic(outcomes, |partition, code, message| {
        ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string))
    })
    .into_iter()
    .map(|(topic, partitions)| {
        ReassignableTopicResponse::default()
            .with_name(TopicName(StrBytes::from_string(topic)))
            .with_partitions(partitions)
    })
    .collect();
    Ok(AlterPartitionReassignmentsResponse::default()
        .with_responses(responses)
        .into())
}
