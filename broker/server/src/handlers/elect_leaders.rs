//! ElectLeaders (KIP-183, KIP-460): give partitions back to their
//! preferred replica, or elect a leader for a partition without one from
//! outside its ISR (an unclean election, which may lose committed
//! records). The active controller decides (`corelog_controller`'s
//! `Request::ElectLeaders`); the new leaders arrive with the metadata.
//!
//! On a single node every partition has one replica, which leads it: each
//! existing partition answers ELECTION_NOT_NEEDED, as Kafka's would.

use corelog_protocol::kafka_protocol::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use corelog_protocol::kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::controller_outcomes::{self, by_topic, failed_all, Outcome};
use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::error::ServerError;
use crate::TopicPartition;

/// `election_type` 1 (v1+); 0, and every v0 request, elects preferred
/// replicas.
const UNCLEAN: i8 = 1;

/// Kafka's codes for an election's outcome.
const ELECTION_NOT_NEEDED: i16 = 84;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> Result<Handled<ElectLeadersResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let unclean = header.api_version >= 1 && request.election_type == UNCLEAN;
    if header.api_version >= 1 && request.election_type != UNCLEAN && request.election_type != 0 {
        return Ok(ElectLeadersResponse::default()
            .with_error_code(INVALID_REQUEST)
            .into());
    }
    let asked: Option<Vec<TopicPartition>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions
                    .iter()
                    .map(move |p| TopicPartition::new(name.clone(), *p))
            })
            .collect()
    });
    if asked
        .as_ref()
        .is_some_and(|a| a.len() as u64 > u64::from(shard.config().partitions_per_request_max))
    {
        return Ok(ElectLeadersResponse::default()
            .with_error_code(INVALID_REQUEST)
            .into());
    }
    let outcomes: Vec<Outcome> = if shard.config().node_id.is_some() {
        let request = ControlRequest::ElectLeaders {
            unclean,
            partitions: asked.clone(),
        };
        match controller_outcomes::ask(shard, request).await {
            Ok(ControlResponse::LeadersElected { results }) => results,
            Ok(other) => failed_all(
                asked.unwrap_or_default(),
                &ServerError::Internal(format!(
                    "the controller answered ElectLeaders with {other:?}"
                )),
            ),
            Err(e) => failed_all(asked.unwrap_or_default(), &e),
        }
    } else {
        let md = shard.metadata();
        asked
            .unwrap_or_default()
            .into_iter()
            .map(|tp| {
                let exists = md.topics.get(&tp.topic).is_some_and(|t| {
                    tp.partition >= 0 && (tp.partition as usize) < t.partitions.len()
                });
                if exists {
                    Outcome::new(
                        tp,
                        ELECTION_NOT_NEEDED,
                        Some("the partition's only replica leads it".to_string()),
                    )
                } else {
                    Outcome::new(
                        tp,
                        UNKNOWN_TOPIC_OR_PARTITION,
                        Some("This server does not host this topic-partition.".to_string()),
                    )
                }
            })
            .collect()
    };
    let results = by_topic(outcomes, |partition, code, message| {
        PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string))
    })
    .into_iter()
    .map(|(topic, partitions)| {
        ReplicaElectionResult::default()
            .with_topic(TopicName(StrBytes::from_string(topic)))
            .with_partition_result(partitions)
    })
    .collect();
    Ok(ElectLeadersResponse::default()
        .with_replica_election_results(results)
        .into())
}
