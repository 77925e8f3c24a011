//! CreatePartitions: raises a topic's partition count. The new partitions
//! are placed on the least loaded shards (`ClusterMetadata::place`) and
//! opened there by `reconcile`.

use std::collections::HashSet;
use std::rc::Rc;

use corelog_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use corelog_protocol::kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::config::ServerConfig;
use crate::controller::change_metadata;
use crate::error::ServerError;
use crate::metadata::{ClusterMetadata, PartitionMeta, Placer};
use crate::shard::Shard;
use crate::{ShardId, NODE_ID};

/// A topic's requested partition count, as the controller receives it.
#[derive(Debug, Clone)]
struct Growth {
    name: String,
    count: i32,
    /// Replica lists of the new partitions, if the client chose them.
    assignments: Option<Vec<Vec<i32>>>,
}

type Outcome = Result<(), ServerError>;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> Result<Handled<CreatePartitionsResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    if let Some(e) = shard.config().refuse_topics(request.topics.len()) {
        // Refused whole, before anything is built per entry.
        let results = request
            .topics
            .iter()
            .map(|t| refused(t.name.clone(), &e))
            .collect();
        return Ok(CreatePartitionsResponse::default()
            .with_results(results)
            .into());
    }
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        if !seen.insert(name.clone()) {
            duplicates.insert(name);
        }
    }
    let mut growths = Vec::new();
    let mut results: Vec<(String, Option<Outcome>)> = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        if duplicates.contains(&name) {
            results.push((
                name,
                Some(Err(ServerError::InvalidRequest(
                    "Duplicate topic in request.".to_string(),
                ))),
            ));
            continue;
        }
        growths.push(Growth {
            name: name.clone(),
            count: t.count,
            assignments: t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            }),
        });
        results.push((name, None));
    }
    let mut outcomes = grow(shard, growths, request.validate_only)
        .await
        .into_iter();
    let results = results
        .into_iter()
        .map(|(name, early)| {
            let outcome = early.unwrap_or_else(|| {
                outcomes.next().unwrap_or_else(|| {
                    Err(ServerError::Internal(
                        "no answer from the controller".to_string(),
                    ))
                })
            });
            let name = TopicName(StrBytes::from_string(name));
            match outcome {
                Ok(()) => CreatePartitionsTopicResult::default().with_name(name),
                Err(e) => refused(name, &e),
            }
        })
        .collect();
    Ok(CreatePartitionsResponse::default()
        .with_results(results)
        .into())
}

/// Applies the growths in one metadata change on the controller shard.
async fn grow(shard: &Rc<Shard>, growths: Vec<Growth>, validate_only: bool) -> Vec<Outcome> {
    if growths.is_empty() {
        return Vec::new();
    }
    let count = growths.len();
    if shard.config().node_id.is_some() {
        return shard
            .call(ShardId(0), move |s| async move {
                grow_in_cluster(&s, growths, validate_only).await
            })
            .await
            .unwrap_or_else(|_| {
                vec![
                    Err(ServerError::Internal(
                        "the controller shard stopped".to_string()
                    ));
                    count
                ]
            });
    }
    let answer = shard
        .call(ShardId(0), move |s| async move {
            let shard_count = s.shard_count();
            let server = s.config();
            change_metadata(&s, |md| {
                let mut changed = false;
                // The loads are counted once for the whole change, and each
                // topic's new partitions count in them once placed.
                let mut placer = md.placer(shard_count);
                let outcomes = growths
                    .into_iter()
                    .map(|g| {
                        let shards = check(md, server, &mut placer, &g)?;
                        if !validate_only {
                            if let Some(t) = md.topics.get_mut(&g.name) {
                                t.partitions
                                    .extend(shards.into_iter().map(PartitionMeta::local));
                                changed = true;
                                tracing::info!(topic = %g.name, partitions = g.count, "partitions added");
                            }
                        }
                        Ok(())
                    })
                    .collect::<Vec<Outcome>>();
                (outcomes, changed)
            })
            .await
        })
        .await;
    let error = match answer {
        Ok(Ok(outcomes)) => return outcomes,
        Ok(Err(e)) => e,
        Err(_) => ServerError::Internal("the controller shard stopped".to_string()),
    };
    vec![Err(error); count]
}

/// Grows topics through the metadata quorum (cluster mode), one
/// controller request per topic, and waits until this node's shards hold
/// the new partitions. The broker's partition bounds are checked here;
/// the controller checks the rest. Runs on shard 0.
async fn grow_in_cluster(
    shard: &Rc<Shard>,
    growths: Vec<Growth>,
    validate_only: bool,
) -> Vec<Outcome> {
    let server = shard.config();
    let mut outcomes = Vec::with_capacity(growths.len());
    let mut grown = Vec::new();
    for g in growths {
        let outcome = async {
            let current = shard
                .metadata()
                .topics
                .get(&g.name)
                .map_or(0, |t| t.partitions.len() as u64);
            let after = u64::try_from(g.count).unwrap_or(0);
            let topic_max = u64::from(server.partitions_per_topic_max);
            if after > topic_max {
                return Err(ServerError::InvalidPartitions(format!(
                    "partitions_per_topic_max is {topic_max}: a topic cannot have {after} partitions."
                )));
            }
            let request_max = u64::from(server.partitions_per_request_max);
            if after.saturating_sub(current) > request_max {
                return Err(ServerError::InvalidPartitions(format!(
                    "partitions_per_request_max is {request_max}: this request would add {} partitions.",
                    after - current
                )));
            }
            if g.assignments.as_ref().is_some_and(|a| a.iter().any(|r| r.len() != 1)) {
                return Err(ServerError::InvalidReplicaAssignment(
                    "Topics have one replica: partition replication is not implemented yet (issue 18).".into(),
                ));
            }
            if validate_only {
                // The controller has no validate-only form of this change:
                // the checks above and the topic's existence are what is
                // validated.
                return if shard.metadata().topics.contains_key(&g.name) {
                    Ok(())
                } else {
                    Err(ServerError::UnknownTopicOrPartition(format!(
                        "The topic '{}' does not exist.",
                        g.name
                    )))
                };
            }
            let answer = crate::controller::ask::ask(
                shard,
                ControlRequest::CreatePartitions {
                    name: g.name.clone(),
                    count: g.count,
                    assignment: g.assignments.clone(),
                },
            )
            .await?;
            match answer {
                ControlResponse::PartitionsCreated => Ok(()),
                other => Err(ServerError::Internal(format!(
                    "the controller answered CreatePartitions with {other:?}"
                ))),
            }
        }
        .await;
        if outcome.is_ok() && !validate_only {
            tracing::info!(topic = %g.name, partitions = g.count, "partitions added");
            grown.push((g.name.clone(), g.count as usize));
        }
        outcomes.push(outcome);
    }
    if !grown.is_empty()
        && !crate::controller::cluster::wait_published(shard, |md| {
            grown
                .iter()
                .all(|(n, c)| md.topics.get(n).is_some_and(|t| t.partitions.len() >= *c))
        })
        .await
    {
        tracing::warn!(topics = ?grown, "new partitions are not in this node's table yet");
    }
    outcomes
}

/// An entry answered with an error.
fn refused(name: TopicName, e: &ServerError) -> CreatePartitionsTopicResult {
    CreatePartitionsTopicResult::default()
        .with_name(name)
        .with_error_code(e.code())
        .with_error_message(e.message_field())
}

/// Checks one request entry against the metadata and the broker's bounds
/// as Kafka does, and places the partitions to add (on `placer` only: the
/// caller records them). Returns their shards.
fn check(
    md: &ClusterMetadata,
    server: &ServerConfig,
    placer: &mut Placer,
    g: &Growth,
) -> Result<Vec<ShardId>, ServerError> {
    let Some(topic) = md.topics.get(&g.name) else {
        return Err(ServerError::UnknownTopicOrPartition(format!(
            "The topic '{}' does not exist.",
            g.name
        )));
    };
    let current = topic.partitions.len() as i32;
    if g.count < current {
        return Err(ServerError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {}.",
            g.count
        )));
    }
    if g.count == current {
        return Err(ServerError::InvalidPartitions(format!(
            "Topic already has {current} partitions."
        )));
    }
    // The count is a number on the wire: bounded before anything depends
    // on it.
    let added = (g.count - current) as u64;
    placer.check_within(server, g.count as u64, added)?;
    let added = added as usize;
    if let Some(assignments) = &g.assignments {
        if assignments.len() != added {
            return Err(ServerError::InvalidReplicaAssignment(format!(
                "Attempted to add {added} additional partitions, but only {} assignments were specified.",
                assignments.len()
            )));
        }
        for (i, replicas) in assignments.iter().enumerate() {
            // The first few name the fault; a hostile list could be
            // millions long.
            let unknown: Vec<String> = replicas
                .iter()
                .filter(|&&b| b != NODE_ID.0)
                .take(10)
                .map(|b| b.to_string())
                .collect();
            if !unknown.is_empty() {
                return Err(ServerError::InvalidReplicaAssignment(format!(
                    "The manual partition assignment includes broker(s) {} which are not registered; this cluster has broker {NODE_ID} only.",
                    unknown.join(", ")
                )));
            }
            if replicas.len() != 1 {
                return Err(ServerError::InvalidReplicaAssignment(format!(
                    "The manual partition assignment of partition {} has {} replicas; the topic's replication factor is 1.",
                    current as usize + i,
                    replicas.len()
                )));
            }
        }
    }
    placer.place_within(server, g.count as u64, added as u64)
}
