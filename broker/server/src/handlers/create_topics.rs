//! CreateTopics, and topic auto-creation for Metadata and Produce.

use std::collections::BTreeMap;
use std::rc::Rc;

use corelog_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use corelog_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use corelog_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::controller::change_metadata;
use crate::error::ServerError;
use crate::metadata::{
    describe_value, settings_with, validate_topic_name, PartitionMeta, Placer, TopicMeta,
    TOPIC_CONFIG_KEYS,
};
use crate::shard::Shard;
use crate::{ShardId, NODE_ID};

/// A topic to create, as the controller receives it.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    /// -1: the broker default (1).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// A manual replica assignment (one list per partition). On a single
    /// node it was checked (`check_assignments`) and `partitions` is its
    /// length; a cluster node hands it to the metadata quorum's controller.
    pub assignment: Option<Vec<Vec<i32>>>,
}

/// The outcome for one topic: Ok(partition count) or why it was refused.
pub type CreateResult = Result<i32, ServerError>;

/// Creates topics on the controller shard, all in one metadata change.
pub async fn create(
    shard: &Rc<Shard>,
    specs: Vec<TopicSpec>,
    validate_only: bool,
) -> Vec<(String, CreateResult)> {
    if shard.config().node_id.is_some() {
        return shard
            .call(ShardId(0), move |s| async move {
                create_in_cluster(&s, specs, validate_only).await
            })
            .await
            .unwrap_or_default();
    }
    shard
        .call(ShardId(0), move |s| async move {
            let server = s.config();
            let shard_count = s.shard_count();
            let result = change_metadata(&s, |md| {
                // The loads are counted once for the whole change, and each
                // topic's partitions count in them once placed.
                let mut placer = md.placer(shard_count);
                let mut results = Vec::new();
                let mut created = false;
                for spec in specs {
                    let r = check(md, server, &mut placer, &spec).map(|(partitions, shards)| {
                        if !validate_only {
                            created = true;
                            md.topics.insert(
                                spec.name.clone(),
                                TopicMeta {
                                    id: uuid::Uuid::new_v4().simple().to_string(),
                                    partitions: shards
                                        .into_iter()
                                        .map(PartitionMeta::local)
                                        .collect(),
                                    configs: spec.configs.clone(),
                                },
                            );
                        }
                        partitions
                    });
                    results.push((spec.name, r));
                }
                (results, created)
            })
            .await;
            result.unwrap_or_else(|e| vec![(String::new(), Err(e))])
        })
        .await
        .unwrap_or_default()
}

/// Creates topics through the metadata quorum (cluster mode), one
/// controller request per topic, and waits until this node's shards hold
/// those it created. What the controller cannot know is checked here
/// first: the topic configs this broker implements, and the broker's
/// partition bounds per topic and per request. Runs on shard 0.
async fn create_in_cluster(
    shard: &Rc<Shard>,
    specs: Vec<TopicSpec>,
    validate_only: bool,
) -> Vec<(String, CreateResult)> {
    let server = shard.config();
    let mut results = Vec::with_capacity(specs.len());
    let mut created = Vec::new();
    let mut added: u64 = 0;
    for spec in specs {
        let r = async {
            validate_topic_name(&spec.name)?;
            settings_with(server, &spec.configs)?;
            let rf_one = match &spec.assignment {
                Some(a) => a.iter().all(|r| r.len() == 1),
                None => matches!(spec.replication_factor, -1 | 1),
            };
            if !rf_one && !server.replication_preview {
                return Err(ServerError::InvalidReplicationFactor(
                    "Topics have one replica: partition replication is incomplete (issue 18); replication_preview = true allows more.".into(),
                ));
            }
            let partitions = match (&spec.assignment, spec.partitions) {
                (Some(a), _) => i32::try_from(a.len()).unwrap_or(i32::MAX),
                (None, -1) => server.default_partitions as i32,
                (None, n) => n,
            };
            let count = u64::try_from(partitions).unwrap_or(0);
            let topic_max = u64::from(server.partitions_per_topic_max);
            if count > topic_max {
                return Err(ServerError::InvalidPartitions(format!(
                    "partitions_per_topic_max is {topic_max}: a topic cannot have {count} partitions."
                )));
            }
            let request_max = u64::from(server.partitions_per_request_max);
            if added + count > request_max {
                return Err(ServerError::InvalidPartitions(format!(
                    "partitions_per_request_max is {request_max}: this request would add {} partitions.",
                    added + count
                )));
            }
            let answer = crate::controller::ask::ask(
                shard,
                ControlRequest::CreateTopic {
                    name: spec.name.clone(),
                    partitions: if spec.assignment.is_some() { -1 } else { partitions },
                    replication_factor: if spec.assignment.is_some() {
                        -1
                    } else {
                        spec.replication_factor
                    },
                    assignment: spec.assignment.clone(),
                    configs: spec.configs.clone().into_iter().collect(),
                    validate_only,
                },
            )
            .await?;
            match answer {
                ControlResponse::TopicCreated { assignment, .. } => {
                    added += count;
                    Ok(i32::try_from(assignment.len()).unwrap_or(i32::MAX))
                }
                other => Err(ServerError::Internal(format!(
                    "the controller answered CreateTopic with {other:?}"
                ))),
            }
        }
        .await;
        if r.is_ok() && !validate_only {
            created.push(spec.name.clone());
        }
        results.push((spec.name, r));
    }
    if !created.is_empty()
        && !crate::controller::cluster::wait_published(shard, |md| {
            created.iter().all(|n| md.topics.contains_key(n))
        })
        .await
    {
        tracing::warn!(topics = ?created, "created topics are not in this node's table yet");
    }
    results
}

/// Checks one topic against the metadata and the broker's bounds, as
/// Kafka does, and places its partitions (on `placer` only: the caller
/// records them). Returns the partition count and the partitions' shards.
fn check(
    md: &crate::metadata::ClusterMetadata,
    server: &crate::config::ServerConfig,
    placer: &mut Placer,
    spec: &TopicSpec,
) -> Result<(i32, Vec<ShardId>), ServerError> {
    validate_topic_name(&spec.name)?;
    if md.topics.contains_key(&spec.name) {
        return Err(ServerError::TopicAlreadyExists(spec.name.clone()));
    }
    let partitions = match spec.partitions {
        -1 => server.default_partitions as i32,
        n if n >= 1 => n,
        n => {
            return Err(ServerError::InvalidPartitions(format!(
                "Number of partitions must be larger than 0, got {n}."
            )))
        }
    };
    if !(spec.replication_factor == -1 || spec.replication_factor == 1) {
        return Err(ServerError::InvalidReplicationFactor(format!(
            "Replication factor: {} larger than available brokers: 1.",
            spec.replication_factor
        )));
    }
    settings_with(server, &spec.configs)?;
    // Last, so that a topic refused for another reason takes no room.
    let shards = placer.place_within(server, partitions as u64, partitions as u64)?;
    Ok((partitions, shards))
}

/// Creates topics with default settings (auto-creation). Errors are logged;
/// the caller reports what the metadata then holds.
pub async fn auto_create(shard: &Rc<Shard>, mut names: Vec<String>) {
    // One request's names are created in one change, bounded like a
    // CreateTopics request; the rest stay unknown (and are created by a
    // later request that names them, if it fits).
    let topics_max = shard.config().topics_per_request_max;
    if names.len() > topics_max {
        tracing::warn!(
            asked = names.len(),
            topics_max,
            "auto-creation of the topics past topics_per_request_max skipped"
        );
        names.truncate(topics_max);
    }
    let specs = names
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
            assignment: None,
        })
        .collect();
    for (name, r) in create(shard, specs, false).await {
        match r {
            Ok(_) | Err(ServerError::TopicAlreadyExists(_)) => {}
            Err(e) => {
                tracing::warn!(topic = %name, code = e.code(), msg = %e, "auto-creation failed")
            }
        }
    }
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> Result<Handled<CreateTopicsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    if let Some(e) = request_over_bounds(shard.config(), &request) {
        // Refused whole, before anything is built per entry.
        let topics = request
            .topics
            .iter()
            .map(|t| refused(t.name.0.clone(), &e))
            .collect();
        return Ok(CreateTopicsResponse::default().with_topics(topics).into());
    }
    // Entries answered without asking the controller: duplicates and bad
    // replica assignments.
    let mut early: Vec<(String, ServerError)> = Vec::new();
    let mut specs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        if !seen.insert(name.clone()) {
            early.push((
                name,
                ServerError::InvalidRequest("Duplicate topic in request.".to_string()),
            ));
            continue;
        }
        let cluster = shard.config().node_id.is_some();
        // A cluster node's controller checks assignments against the
        // cluster's brokers.
        if !cluster {
            if let Err(e) = check_assignments(shard.config(), t) {
                early.push((name, e));
                continue;
            }
        }
        let assignment = (cluster && !t.assignments.is_empty()).then(|| {
            let mut a = t.assignments.clone();
            a.sort_by_key(|x| x.partition_index);
            a.into_iter()
                .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        // Assignments are entries on the wire, so their count is backed by
        // the request's bytes; the controller bounds it like a number.
        let partitions = if t.assignments.is_empty() {
            t.num_partitions
        } else {
            i32::try_from(t.assignments.len()).unwrap_or(i32::MAX)
        };
        specs.push(TopicSpec {
            name,
            partitions,
            replication_factor: t.replication_factor,
            configs,
            assignment,
        });
    }
    let results = create(shard, specs, request.validate_only).await;
    let md = shard.metadata();
    let mut topics: Vec<CreatableTopicResult> = results
        .into_iter()
        .map(|(name, r)| match r {
            Ok(partitions) => {
                let configs = if header.api_version >= 5 {
                    let meta = md.topics.get(&name).cloned().unwrap_or(TopicMeta {
                        id: String::new(),
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    });
                    Some(
                        TOPIC_CONFIG_KEYS
                            .iter()
                            .filter_map(|k| {
                                describe_value(shard.config(), &meta, k).map(|(v, default)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_static_str(k))
                                        .with_value(Some(StrBytes::from_string(v)))
                                        .with_config_source(if default { 5 } else { 1 })
                                })
                            })
                            .collect(),
                    )
                } else {
                    None
                };
                CreatableTopicResult::default()
                    .with_name(StrBytes::from_string(name.clone()).into())
                    .with_topic_id(md.topics.get(&name).map(|t| t.uuid()).unwrap_or_default())
                    // Null on success, as Kafka answers (the codec's
                    // default is an empty string).
                    .with_error_message(None)
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(configs)
            }
            Err(e) => refused(StrBytes::from_string(name), &e),
        })
        .collect();
    for (name, e) in early {
        topics.push(refused(StrBytes::from_string(name), &e));
    }
    Ok(CreateTopicsResponse::default().with_topics(topics).into())
}

/// An entry answered with an error.
fn refused(name: StrBytes, e: &ServerError) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(name.into())
        .with_error_code(e.code())
        .with_error_message(e.message_field())
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// Why a whole request is refused: more topics or configs than the
/// broker's bounds allow (answered with INVALID_REQUEST for every topic).
fn request_over_bounds(
    server: &crate::config::ServerConfig,
    request: &CreateTopicsRequest,
) -> Option<ServerError> {
    server
        .refuse_topics(request.topics.len())
        .or_else(|| server.refuse_configs(request.topics.iter().map(|t| t.configs.len()).sum()))
}

/// Checks a topic's manual replica assignment: each partition from 0 up
/// named once, each with this broker as its one replica. A list longer than
/// `partitions_per_topic_max` is left to the controller, which refuses it
/// with INVALID_PARTITIONS without walking it.
fn check_assignments(
    server: &crate::config::ServerConfig,
    t: &CreatableTopic,
) -> Result<(), ServerError> {
    let invalid = |msg: String| Err(ServerError::InvalidReplicaAssignment(msg));
    if t.assignments.len() > server.partitions_per_topic_max as usize {
        return Ok(());
    }
    let mut named = vec![false; t.assignments.len()];
    for a in &t.assignments {
        let index = a.partition_index;
        match usize::try_from(index).ok().and_then(|i| named.get_mut(i)) {
            Some(seen) if !*seen => *seen = true,
            _ => {
                return invalid(
                    "Partitions should be a consecutive 0-based integer sequence.".to_string(),
                )
            }
        }
        if a.broker_ids.len() != 1 || a.broker_ids[0].0 != NODE_ID.0 {
            return invalid(format!(
                "The assignment of partition {index} must name broker {NODE_ID} alone: this cluster has that one broker, and topics have one replica."
            ));
        }
    }
    Ok(())
}
