//! AlterConfigs (legacy): replaces the whole override set of a topic. Also
//! the controller-side code that IncrementalAlterConfigs shares: checking a
//! resource, applying edits to a topic's overrides, validating the result.
//!
//! Broker configs are static (the config file): altering a BROKER resource
//! is refused with INVALID_REQUEST.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use corelog_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use corelog_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::controller::change_metadata;
use crate::error::ServerError;
use crate::metadata::{describe_value, settings_with, TopicMeta};
use crate::shard::Shard;
use crate::{ShardId, NODE_ID};

/// IncrementalAlterConfigs operation codes.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// The change asked for one topic.
#[derive(Debug, Clone)]
pub enum Edit {
    /// AlterConfigs: these become the topic's overrides (a null value
    /// leaves the key at its default).
    Replace(Vec<(String, Option<String>)>),
    /// IncrementalAlterConfigs: (key, operation, value), applied in order.
    Incremental(Vec<(String, i8, Option<String>)>),
}

/// The outcome for one resource.
pub type Outcome = Result<(), ServerError>;

/// One resource of an alter request: Ok(topic name and edit) to go to the
/// controller, or the error it is answered with at once.
pub type Checked = Result<(String, Edit), ServerError>;

/// Why a whole alter request is refused, if it is: more resources than
/// `topics_per_request_max` or more config entries than
/// `configs_per_request_max` (answered with INVALID_REQUEST for every
/// resource, before anything is built per entry).
pub fn refuse_request(
    server: &crate::config::ServerConfig,
    resources: usize,
    configs: usize,
) -> Option<ServerError> {
    server
        .refuse_topics(resources)
        .or_else(|| server.refuse_configs(configs))
}

/// Checks an alter request's resources, then applies them: the shared
/// part of AlterConfigs and IncrementalAlterConfigs.
pub async fn check_and_alter(
    shard: &Rc<Shard>,
    resources: Vec<(i8, String, Edit)>,
    validate_only: bool,
) -> Vec<Outcome> {
    let checked = check_resources(resources, |n| {
        crate::endpoints::names_own_broker(shard.config(), shard.shard_count(), n)
    });
    alter_topics(shard, checked, validate_only).await
}

/// Checks the resources of an alter request that do not need the
/// metadata: duplicates, resource types, broker resources, duplicate keys.
/// `own_broker` says whether a broker resource's name is this node.
fn check_resources(
    resources: Vec<(i8, String, Edit)>,
    own_broker: impl Fn(&str) -> bool,
) -> Vec<Checked> {
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    for (t, n, _) in &resources {
        if !seen.insert((*t, n.clone())) {
            duplicates.insert((*t, n.clone()));
        }
    }
    resources
        .into_iter()
        .map(|(resource_type, name, edit)| {
            let invalid = |msg: String| Err(ServerError::InvalidRequest(msg));
            if duplicates.contains(&(resource_type, name.clone())) {
                return invalid("Each resource must appear at most once.".to_string());
            }
            match resource_type {
                RESOURCE_TOPIC => {}
                RESOURCE_BROKER => {
                    let msg = if own_broker(&name) {
                        "Dynamic broker configs are not supported: broker settings come from the \
                         config file and take effect at restart."
                            .to_string()
                    } else {
                        format!(
                            "Unexpected broker id, expected {NODE_ID} or empty string, but received {name}"
                        )
                    };
                    return invalid(msg);
                }
                other => {
                    return invalid(format!(
                        "Unsupported resource type {other}; only topic (2) configs can be altered."
                    ))
                }
            }
            let keys: Vec<&String> = match &edit {
                Edit::Replace(c) => c.iter().map(|(k, _)| k).collect(),
                Edit::Incremental(c) => c.iter().map(|(k, _, _)| k).collect(),
            };
            let mut seen_keys = HashSet::new();
            if keys.iter().any(|k| !seen_keys.insert(*k)) {
                return invalid("Error due to duplicate config keys".to_string());
            }
            Ok((name, edit))
        })
        .collect()
}

/// Applies the edits of the checked resources to their topics in one
/// metadata change on the controller shard (none with `validate_only`).
/// Answers one outcome per resource, in order.
pub async fn alter_topics(
    shard: &Rc<Shard>,
    resources: Vec<Checked>,
    validate_only: bool,
) -> Vec<Outcome> {
    let edits: Vec<(String, Edit)> = resources.iter().flatten().cloned().collect();
    let count = edits.len();
    let applied: Vec<Outcome> = if edits.is_empty() {
        Vec::new()
    } else if shard.config().node_id.is_some() {
        shard
            .call(ShardId(0), move |s| async move {
                alter_in_cluster(&s, edits, validate_only).await
            })
            .await
            .unwrap_or_else(|_| {
                vec![
                    Err(ServerError::Internal(
                        "the controller shard stopped".to_string()
                    ));
                    count
                ]
            })
    } else {
        let answer = shard
            .call(ShardId(0), move |s| async move {
                let server = s.config();
                change_metadata(&s, |md| {
                    let mut changed = false;
                    let outcomes = edits
                        .into_iter()
                        .map(|(name, edit)| {
                            let Some(topic) = md.topics.get_mut(&name) else {
                                return Err(ServerError::UnknownTopicOrPartition(format!(
                                    "Topic '{name}' does not exist."
                                )));
                            };
                            let configs = apply(server, topic, &edit)?;
                            settings_with(server, &configs)?;
                            if !validate_only && configs != topic.configs {
                                tracing::info!(topic = %name, ?configs, "topic configs changed");
                                topic.configs = configs;
                                changed = true;
                            }
                            Ok(())
                        })
                        .collect::<Vec<Outcome>>();
                    (outcomes, changed)
                })
                .await
            })
            .await;
        match answer {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(e)) => vec![Err(e); count],
            Err(_) => vec![
                Err(ServerError::Internal(
                    "the controller shard stopped".to_string()
                ));
                count
            ],
        }
    };
    let mut applied = applied.into_iter();
    resources
        .into_iter()
        .map(|r| match r {
            Ok(_) => applied.next().unwrap_or_else(|| {
                Err(ServerError::Internal(
                    "no answer from the controller".to_string(),
                ))
            }),
            Err(e) => Err(e),
        })
        .collect()
}

/// Alters topic configs through the metadata quorum (cluster mode), one
/// controller request per topic, and waits until this node's shards hold
/// the new values. The values are checked here, by the broker's own rules,
/// before the controller is asked. Runs on shard 0.
async fn alter_in_cluster(
    shard: &Rc<Shard>,
    edits: Vec<(String, Edit)>,
    validate_only: bool,
) -> Vec<Outcome> {
    let server = shard.config();
    let mut outcomes = Vec::with_capacity(edits.len());
    let mut altered = Vec::new();
    for (name, edit) in edits {
        let outcome = async {
            let md = shard.metadata();
            let Some(topic) = md.topics.get(&name) else {
                return Err(ServerError::UnknownTopicOrPartition(format!(
                    "Topic '{name}' does not exist."
                )));
            };
            let configs = apply(server, topic, &edit)?;
            settings_with(server, &configs)?;
            if validate_only || configs == topic.configs {
                return Ok(None);
            }
            let mut changes: Vec<(String, Option<String>)> = topic
                .configs
                .keys()
                .filter(|k| !configs.contains_key(*k))
                .map(|k| (k.clone(), None))
                .collect();
            changes.extend(
                configs
                    .iter()
                    .filter(|(k, v)| topic.configs.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), Some(v.clone()))),
            );
            let answer = crate::controller::ask::ask(
                shard,
                ControlRequest::AlterConfigs {
                    topic: name.clone(),
                    changes,
                },
            )
            .await?;
            match answer {
                ControlResponse::ConfigsAltered => Ok(Some(configs)),
                other => Err(ServerError::Internal(format!(
                    "the controller answered AlterConfigs with {other:?}"
                ))),
            }
        }
        .await;
        outcomes.push(outcome.map(|configs| {
            if let Some(configs) = configs {
                tracing::info!(topic = %name, ?configs, "topic configs changed");
                altered.push((name.clone(), configs));
            }
        }));
    }
    if !altered.is_empty()
        && !crate::controller::cluster::wait_published(shard, |md| {
            altered
                .iter()
                .all(|(n, c)| md.topics.get(n).is_some_and(|t| &t.configs == c))
        })
        .await
    {
        tracing::warn!("altered topic configs are not in this node's table yet");
    }
    outcomes
}

/// The topic's overrides after `edit`.
fn apply(
    server: &crate::config::ServerConfig,
    topic: &TopicMeta,
    edit: &Edit,
) -> Result<BTreeMap<String, String>, ServerError> {
    match edit {
        Edit::Replace(configs) => Ok(configs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect()),
        Edit::Incremental(ops) => {
            let mut configs = topic.configs.clone();
            for (key, op, value) in ops {
                match *op {
                    OP_SET => {
                        let Some(v) = value else {
                            return Err(ServerError::InvalidRequest(format!(
                                "Null value not supported for : {key}"
                            )));
                        };
                        configs.insert(key.clone(), v.clone());
                    }
                    OP_DELETE => {
                        configs.remove(key);
                    }
                    OP_APPEND | OP_SUBTRACT => {
                        let verb = if *op == OP_APPEND {
                            "append"
                        } else {
                            "subtract"
                        };
                        if !is_list_config(key) {
                            return Err(ServerError::InvalidConfig {
                                key: key.clone(),
                                message: format!(
                                    "Config value {verb} is not allowed for config key: {key}"
                                ),
                            });
                        }
                        let current = match configs.get(key) {
                            Some(v) => v.clone(),
                            None => {
                                let defaults = TopicMeta {
                                    id: String::new(),
                                    partitions: Vec::new(),
                                    configs: BTreeMap::new(),
                                };
                                describe_value(server, &defaults, key)
                                    .map_or_else(String::new, |v| v.0)
                            }
                        };
                        let mut list: Vec<String> = split_list(&current);
                        let items = split_list(value.as_deref().unwrap_or(""));
                        if *op == OP_APPEND {
                            for item in items {
                                if !list.contains(&item) {
                                    list.push(item);
                                }
                            }
                        } else {
                            list.retain(|i| !items.contains(i));
                        }
                        configs.insert(key.clone(), list.join(","));
                    }
                    other => {
                        return Err(ServerError::InvalidRequest(format!(
                            "Unknown alter configs op type {other}"
                        )))
                    }
                }
            }
            Ok(configs)
        }
    }
}

/// Whether Kafka types the topic config as a list (APPEND and SUBTRACT
/// apply only to those).
fn is_list_config(key: &str) -> bool {
    key == "cleanup.policy"
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> Result<Handled<AlterConfigsResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let configs = request.resources.iter().map(|r| r.configs.len()).sum();
    let outcomes = match refuse_request(shard.config(), request.resources.len(), configs) {
        // Refused whole, before anything is built per entry.
        Some(e) => vec![Err(e); request.resources.len()],
        None => alter(shard, &request).await,
    };
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => resp,
                Err(e) => resp
                    .with_error_code(e.code())
                    .with_error_message(e.message_field()),
            }
        })
        .collect();
    Ok(AlterConfigsResponse::default()
        .with_responses(responses)
        .into())
}

/// Checks the resources and applies them on the controller shard.
async fn alter(shard: &Rc<Shard>, request: &AlterConfigsRequest) -> Vec<Outcome> {
    let resources = request
        .resources
        .iter()
        .map(|r| {
            let configs = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            (
                r.resource_type,
                r.resource_name.to_string(),
                Edit::Replace(configs),
            )
        })
        .collect();
    check_and_alter(shard, resources, request.validate_only).await
}
