//! CreateTopics, and topic auto-creation for Metadata and Produce.

use std::collections::BTreeMap;
use std::rc::Rc;

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use corelog_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::controller::change_metadata;
use crate::metadata::{
    describe_value, settings_with, validate_topic_name, PartitionMeta, TopicMeta, TOPIC_CONFIG_KEYS,
};
use crate::shard::Shard;
use crate::ShardId;

/// A topic to create, as the controller receives it.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    /// -1: the broker default (1).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// The outcome for one topic: Ok(partition count) or (error code, message).
pub type CreateResult = Result<i32, (i16, String)>;

/// Creates topics on the controller shard, all in one metadata change.
pub async fn create(
    shard: &Rc<Shard>,
    specs: Vec<TopicSpec>,
    validate_only: bool,
) -> Vec<(String, CreateResult)> {
    shard
        .call(ShardId(0), move |s| async move {
            let server = s.config.clone();
            let shard_count = s.shard_count;
            let result = change_metadata(&s, |md| {
                let mut results = Vec::new();
                let mut created = false;
                for spec in specs {
                    let r = check(md, &server, &spec).inspect(|&partitions| {
                        if !validate_only {
                            created = true;
                            let shards = md.place(shard_count, partitions as usize);
                            md.topics.insert(
                                spec.name.clone(),
                                TopicMeta {
                                    id: uuid::Uuid::new_v4().simple().to_string(),
                                    partitions: shards
                                        .into_iter()
                                        .map(|shard| PartitionMeta { shard })
                                        .collect(),
                                    configs: spec.configs.clone(),
                                },
                            );
                        }
                    });
                    results.push((spec.name, r));
                }
                (results, created)
            })
            .await;
            result.unwrap_or_else(|e| vec![(String::new(), Err((e.code(), e.to_string())))])
        })
        .await
        .unwrap_or_default()
}

fn check(
    md: &crate::metadata::ClusterMetadata,
    server: &crate::config::ServerConfig,
    spec: &TopicSpec,
) -> CreateResult {
    validate_topic_name(&spec.name).map_err(|e| (error_code::INVALID_TOPIC_EXCEPTION, e))?;
    if md.topics.contains_key(&spec.name) {
        return Err((
            error_code::TOPIC_ALREADY_EXISTS,
            format!("Topic '{}' already exists.", spec.name),
        ));
    }
    let partitions = match spec.partitions {
        -1 => server.default_partitions as i32,
        n if n >= 1 => n,
        n => {
            return Err((
                error_code::INVALID_PARTITIONS,
                format!("Number of partitions must be larger than 0, got {n}."),
            ))
        }
    };
    if !(spec.replication_factor == -1 || spec.replication_factor == 1) {
        return Err((
            error_code::INVALID_REPLICATION_FACTOR,
            format!(
                "Replication factor: {} larger than available brokers: 1.",
                spec.replication_factor
            ),
        ));
    }
    settings_with(server, &spec.configs).map_err(|e| (error_code::INVALID_CONFIG, e.message))?;
    Ok(partitions)
}

/// Creates topics with default settings (auto-creation). Errors are logged;
/// the caller reports what the metadata then holds.
pub async fn auto_create(shard: &Rc<Shard>, names: Vec<String>) {
    let specs = names
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        })
        .collect();
    for (name, r) in create(shard, specs, false).await {
        if let Err((code, msg)) = r {
            if code != error_code::TOPIC_ALREADY_EXISTS {
                tracing::warn!(topic = %name, code, %msg, "auto-creation failed");
            }
        }
    }
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> Result<Handled<CreateTopicsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let mut duplicates = Vec::new();
    let mut specs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        if !seen.insert(name.clone()) {
            duplicates.push(name);
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let partitions = if t.assignments.is_empty() {
            t.num_partitions
        } else {
            t.assignments.len() as i32
        };
        specs.push(TopicSpec {
            name,
            partitions,
            replication_factor: t.replication_factor,
            configs,
        });
    }
    let results = create(shard, specs, request.validate_only).await;
    let md = shard.metadata();
    let mut topics: Vec<CreatableTopicResult> = results
        .into_iter()
        .map(|(name, r)| {
            let entry = CreatableTopicResult::default()
                .with_name(StrBytes::from_string(name.clone()).into());
            match r {
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
                                    describe_value(&shard.config, &meta, k).map(|(v, default)| {
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
                    entry
                        .with_topic_id(md.topics.get(&name).map(|t| t.uuid()).unwrap_or_default())
                        .with_num_partitions(partitions)
                        .with_replication_factor(1)
                        .with_configs(configs)
                }
                Err((code, msg)) => entry
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    for name in duplicates {
        topics.push(
            CreatableTopicResult::default()
                .with_name(StrBytes::from_string(name).into())
                .with_error_code(error_code::INVALID_REQUEST)
                .with_error_message(Some(StrBytes::from_static_str(
                    "Duplicate topic in request.",
                ))),
        );
    }
    Ok(CreateTopicsResponse::default().with_topics(topics).into())
}
