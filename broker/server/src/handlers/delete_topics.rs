//! DeleteTopics: removes topics from the metadata on the controller shard;
//! every shard's `reconcile` then closes the partitions it owns and deletes
//! their directories. From v6 a topic may be named by its id.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use corelog_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use corelog_protocol::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::controller::change_metadata;
use crate::error::ServerError;
use crate::shard::Shard;
use crate::ShardId;

/// One topic to delete, as the request names it.
#[derive(Debug, Clone)]
enum Target {
    Name(String),
    /// 32 hex digits, as `TopicMeta::id` holds it.
    Id(String),
}

/// The outcome for one topic: its name and id (as far as known) and an error.
#[derive(Debug, Clone)]
struct Outcome {
    name: Option<String>,
    id: Option<String>,
    error: Option<ServerError>,
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> Result<Handled<DeleteTopicsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let v6 = header.api_version >= 6;
    let named = if v6 {
        request.topics.len()
    } else {
        request.topic_names.len()
    };
    if let Some(e) = shard.config().refuse_topics(named) {
        // Refused whole, before anything is built per entry.
        let error = e.message_field().filter(|_| header.api_version >= 5);
        let responses = if v6 {
            request
                .topics
                .iter()
                .map(|t| {
                    DeletableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_topic_id(t.topic_id)
                        .with_error_code(e.code())
                        .with_error_message(error.clone())
                })
                .collect()
        } else {
            request
                .topic_names
                .iter()
                .map(|n| {
                    DeletableTopicResult::default()
                        .with_name(Some(n.clone()))
                        .with_error_code(e.code())
                        .with_error_message(error.clone())
                })
                .collect()
        };
        return Ok(DeleteTopicsResponse::default()
            .with_responses(responses)
            .into());
    }
    // Entries answered without asking the controller, in request order.
    let mut early: Vec<(usize, Outcome)> = Vec::new();
    let mut targets: Vec<(usize, Target)> = Vec::new();
    let mut seen_names = HashSet::new();
    let mut seen_ids = HashSet::new();
    let requested: Vec<(Option<String>, Option<String>)> = if v6 {
        request
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string());
                let id = (!t.topic_id.is_nil()).then(|| t.topic_id.simple().to_string());
                (name, id)
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), None))
            .collect()
    };
    for (i, (name, id)) in requested.into_iter().enumerate() {
        let bad = |msg: &str| Outcome {
            name: name.clone(),
            id: id.clone(),
            error: Some(ServerError::InvalidRequest(msg.to_string())),
        };
        match (&name, &id) {
            (Some(_), Some(_)) => {
                early.push((i, bad("You may not specify both topic name and topic id.")))
            }
            (None, None) => early.push((i, bad("Neither topic name nor id were specified."))),
            (Some(n), None) => {
                if seen_names.insert(n.clone()) {
                    targets.push((i, Target::Name(n.clone())));
                } else {
                    early.push((i, bad("Duplicate topic name.")));
                }
            }
            (None, Some(t)) => {
                if seen_ids.insert(t.clone()) {
                    targets.push((i, Target::Id(t.clone())));
                } else {
                    early.push((i, bad("Duplicate topic id.")));
                }
            }
        }
    }
    let (indexes, targets): (Vec<usize>, Vec<Target>) = targets.into_iter().unzip();
    let outcomes = delete(shard, targets).await;
    let mut all: Vec<(usize, Outcome)> = indexes.into_iter().zip(outcomes).collect();
    all.extend(early);
    all.sort_by_key(|(i, _)| *i);
    let responses = all
        .into_iter()
        .map(|(_, o)| {
            let mut r = DeletableTopicResult::default()
                .with_name(o.name.map(|n| TopicName(StrBytes::from_string(n))));
            if v6 {
                let id =
                    o.id.and_then(|id| uuid::Uuid::parse_str(&id).ok())
                        .unwrap_or_default();
                r = r.with_topic_id(id);
            }
            if let Some(e) = o.error {
                r = r.with_error_code(e.code());
                if header.api_version >= 5 {
                    r = r.with_error_message(e.message_field());
                }
            }
            r
        })
        .collect();
    Ok(DeleteTopicsResponse::default()
        .with_responses(responses)
        .into())
}

/// Deletes the topics in one metadata change on the controller shard.
async fn delete(shard: &Rc<Shard>, targets: Vec<Target>) -> Vec<Outcome> {
    if targets.is_empty() {
        return Vec::new();
    }
    let fallback: Vec<(Option<String>, Option<String>)> = targets
        .iter()
        .map(|t| match t {
            Target::Name(n) => (Some(n.clone()), None),
            Target::Id(id) => (None, Some(id.clone())),
        })
        .collect();
    if shard.config().node_id.is_some() {
        return shard
            .call(ShardId(0), move |s| async move {
                delete_in_cluster(&s, targets).await
            })
            .await
            .unwrap_or_else(|_| {
                fallback
                    .into_iter()
                    .map(|(name, id)| Outcome {
                        name,
                        id,
                        error: Some(ServerError::Internal(
                            "the controller shard stopped".to_string(),
                        )),
                    })
                    .collect()
            });
    }
    let answer = shard
        .call(ShardId(0), move |s| async move {
            change_metadata(&s, |md| {
                // Topics by id, looked up once: a scan of every topic for
                // each id asked would cost ids times topics on this shard.
                let by_id: HashMap<String, String> =
                    if targets.iter().any(|t| matches!(t, Target::Id(_))) {
                        md.topics
                            .iter()
                            .map(|(n, m)| (m.id.to_ascii_lowercase(), n.clone()))
                            .collect()
                    } else {
                        HashMap::new()
                    };
                let mut outcomes = Vec::with_capacity(targets.len());
                let mut removed = false;
                for t in targets {
                    let name = match &t {
                        Target::Name(n) => md.topics.contains_key(n).then(|| n.clone()),
                        Target::Id(id) => by_id
                            .get(&id.to_ascii_lowercase())
                            .filter(|n| md.topics.contains_key(*n))
                            .cloned(),
                    };
                    let outcome = match (name, t) {
                        (Some(name), _) => {
                            let meta = md.topics.remove(&name);
                            removed = true;
                            tracing::info!(topic = %name, "topic deleted");
                            Outcome {
                                name: Some(name),
                                id: meta.map(|m| m.id),
                                error: None,
                            }
                        }
                        (None, Target::Name(n)) => Outcome {
                            error: Some(ServerError::UnknownTopicOrPartition(format!(
                                "Topic '{n}' does not exist."
                            ))),
                            name: Some(n),
                            id: None,
                        },
                        (None, Target::Id(id)) => Outcome {
                            error: Some(ServerError::UnknownTopicId(id.clone())),
                            name: None,
                            id: Some(id),
                        },
                    };
                    outcomes.push(outcome);
                }
                (outcomes, removed)
            })
            .await
        })
        .await;
    let error = match answer {
        Ok(Ok(outcomes)) => return outcomes,
        Ok(Err(e)) => e,
        Err(_) => ServerError::Internal("the controller shard stopped".to_string()),
    };
    fallback
        .into_iter()
        .map(|(name, id)| Outcome {
            name,
            id,
            error: Some(error.clone()),
        })
        .collect()
}

/// Deletes topics through the metadata quorum (cluster mode), one
/// controller request per topic, and waits until this node's shards no
/// longer hold them. A topic named by id is looked up in this node's table.
/// Runs on shard 0.
async fn delete_in_cluster(shard: &Rc<Shard>, targets: Vec<Target>) -> Vec<Outcome> {
    let md = shard.metadata();
    let mut outcomes = Vec::with_capacity(targets.len());
    let mut deleted = Vec::new();
    for t in targets {
        let name = match t {
            Target::Name(n) => n,
            Target::Id(id) => {
                let found = md
                    .topics
                    .iter()
                    .find(|(_, m)| m.id.eq_ignore_ascii_case(&id))
                    .map(|(n, _)| n.clone());
                match found {
                    Some(n) => n,
                    None => {
                        outcomes.push(Outcome {
                            error: Some(ServerError::UnknownTopicId(id.clone())),
                            name: None,
                            id: Some(id),
                        });
                        continue;
                    }
                }
            }
        };
        let answer =
            crate::controller::ask::ask(shard, ControlRequest::DeleteTopic { name: name.clone() })
                .await;
        outcomes.push(match answer {
            Ok(ControlResponse::TopicDeleted { id }) => {
                tracing::info!(topic = %name, "topic deleted");
                deleted.push(name.clone());
                Outcome {
                    name: Some(name),
                    id: Some(id),
                    error: None,
                }
            }
            Ok(other) => Outcome {
                name: Some(name),
                id: None,
                error: Some(ServerError::Internal(format!(
                    "the controller answered DeleteTopic with {other:?}"
                ))),
            },
            Err(e) => Outcome {
                id: md.topics.get(&name).map(|m| m.id.clone()),
                name: Some(name),
                error: Some(e),
            },
        });
    }
    if !deleted.is_empty()
        && !crate::controller::cluster::wait_published(shard, |md| {
            deleted.iter().all(|n| !md.topics.contains_key(n))
        })
        .await
    {
        tracing::warn!(topics = ?deleted, "deleted topics are still in this node's table");
    }
    outcomes
}
