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

use std::collections::BTreeMap;

use corelog_protocol::kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use corelog_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::error::ServerError;
use crate::ShardId;

const INVALID_REQUEST: i16 = 42;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// One partition's outcome: `(topic, partition, code, message)`.
type Outcome = (String, i32, i16, Option<String>);

pub async fn handle(
    cx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> Result<Handled<AlterPartitionReassignmentsResponse>, Close> {
    let shard = cx.shard;
    let asked: Vec<(String, i32, Option<Vec<i32>>)> = request
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.iter().map(move |p| {
                (
                    name.clone(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    if asked.len() as u64 > u64::from(shard.config().partitions_per_request_max) {
        return Ok(AlterPartitionReassignmentsResponse::default()
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(StrBytes::from_static_str(
                "more partitions than partitions_per_request_max",
            )))
            .into());
    }
    let outcomes: Vec<Outcome> = if shard.config().node_id.is_some() {
        let names: Vec<(String, i32)> = asked.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let request = ControlRequest::AlterReassignments { partitions: asked };
        let answer = shard
            .call(ShardId(0), move |s| async move {
                crate::controller::cluster::ask(&s, request).await
            })
            .await
            .unwrap_or_else(|_| {
                Err(ServerError::Internal(
                    "the controller shard stopped".to_string(),
                ))
            });
        match answer {
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
            .map(|(topic, partition, target)| {
                let exists = md
                    .topics
                    .get(&topic)
                    .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len());
                let (code, message) = match target {
                    _ if !exists => (
                        UNKNOWN_TOPIC_OR_PARTITION,
                        Some("This server does not host this topic-partition.".to_string()),
                    ),
                    None => (
                        NO_REASSIGNMENT_IN_PROGRESS,
                        Some("no reassignment is in progress for this partition".to_string()),
                    ),
                    Some(r) if r == [crate::NODE_ID.0] => (0, None),
                    Some(_) => (
                        INVALID_REPLICA_ASSIGNMENT,
                        Some(format!(
                            "this single-node broker is broker {}, the only replica a partition can have",
                            crate::NODE_ID.0
                        )),
                    ),
                };
                (topic, partition, code, message)
            })
            .collect()
    };
    Ok(AlterPartitionReassignmentsResponse::default()
        .with_responses(by_topic(outcomes))
        .into())
}

/// The outcomes grouped by topic, in the order the topics first appear.
fn by_topic(outcomes: Vec<Outcome>) -> Vec<ReassignableTopicResponse> {
    let mut order: Vec<String> = Vec::new();
    let mut grouped: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for (topic, partition, code, message) in outcomes {
        if !grouped.contains_key(&topic) {
            order.push(topic.clone());
        }
        grouped.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    order
        .into_iter()
        .map(|topic| {
            let partitions = grouped.remove(&topic).unwrap_or_default();
            ReassignableTopicResponse::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect()
}

fn failed_all(asked: Vec<(String, i32)>, e: &ServerError) -> Vec<Outcome> {
    asked
        .into_iter()
        .map(|(topic, partition)| (topic, partition, e.code(), Some(e.to_string())))
        .collect()
}
