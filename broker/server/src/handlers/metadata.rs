//! Metadata: brokers, controller and topics with their partitions. On a
//! single node this broker leads every partition; in `shard-direct` mode
//! each shard is described as a broker and leads the partitions it owns
//! (`crate::endpoints`).

use std::collections::{HashMap, HashSet};

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use corelog_protocol::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::config::ServerConfig;
use crate::endpoints;
use crate::metadata::ClusterMetadata;
use crate::ShardId;

/// Kafka's `AclOperation` codes of a cluster: CREATE, ALTER, DESCRIBE,
/// CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS: [i32; 7] = [5, 7, 8, 9, 10, 11, 12];
/// Of a topic: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC_OPERATIONS: [i32; 8] = [3, 4, 5, 6, 7, 8, 10, 11];

pub async fn handle(
    cx: &RequestContext<'_>,
    request: MetadataRequest,
) -> Result<Handled<MetadataResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let mut md = shard.metadata();
    // From v10 a topic may be asked for by id alone (name null), as KIP-848
    // consumers do for the topic ids in their assignment. A topic asked
    // for twice is answered once, as Kafka does: a request naming a large
    // topic a million times would otherwise build a million copies of its
    // partition list.
    let mut seen_ids = HashSet::new();
    let by_id: Vec<uuid::Uuid> = request
        .topics
        .iter()
        .flatten()
        .filter(|t| t.name.is_none() && !t.topic_id.is_nil())
        .map(|t| t.topic_id)
        .filter(|id| seen_ids.insert(*id))
        .collect();
    let mut seen_names = HashSet::new();
    let requested: Option<Vec<String>> = match &request.topics {
        // v0 asks for every topic with an empty list; later versions with null.
        Some(t) if t.is_empty() && header.api_version == 0 => None,
        Some(t) => Some(
            t.iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
                .filter(|n| seen_names.insert(*n))
                .map(str::to_string)
                .collect(),
        ),
        None => None,
    };
    let auto_create = shard.config().auto_create_topics
        && (header.api_version < 4 || request.allow_auto_topic_creation);
    if let (Some(names), true) = (&requested, auto_create) {
        let missing: Vec<String> = names
            .iter()
            .filter(|n| {
                md.topic_for(n, true).is_none() && crate::metadata::validate_topic_name(n).is_ok()
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            super::create_topics::auto_create(shard, missing).await;
            md = shard.metadata();
        }
    }
    let include_topic_ops = header.api_version >= 8 && request.include_topic_authorized_operations;
    let topics: Vec<MetadataResponseTopic> = match requested {
        None => md
            .topics
            .keys()
            .map(|n| topic_entry(shard.config(), &md, n, header.api_version))
            .collect(),
        Some(names) => {
            // Topics by id, looked up once: a scan of every topic for each
            // id asked would cost ids times topics on this shard.
            let names_by_id: HashMap<uuid::Uuid, &str> = if by_id.is_empty() {
                HashMap::new()
            } else {
                md.topics
                    .iter()
                    .map(|(name, t)| (t.uuid(), name.as_str()))
                    .collect()
            };
            names
                .iter()
                .map(|n| topic_entry(shard.config(), &md, n, header.api_version))
                .chain(by_id.iter().map(|id| {
                    match names_by_id.get(id) {
                        Some(name) => topic_entry(shard.config(), &md, name, header.api_version),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(*id)
                            .with_error_code(error_code::UNKNOWN_TOPIC_ID),
                    }
                }))
                .collect()
        }
    };
    let topics = topics
        .into_iter()
        .map(|t| {
            if include_topic_ops && t.error_code == 0 {
                t.with_topic_authorized_operations(
                    TOPIC_OPERATIONS.iter().fold(0, |bits, op| bits | 1 << op),
                )
            } else {
                t
            }
        })
        .collect::<Vec<_>>();
    let brokers = endpoints::brokers(shard.config(), &md, shard.shard_count())
        .into_iter()
        .map(|e| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(e.node_id.0))
                .with_host(StrBytes::from_string(e.host))
                .with_port(e.port as i32)
        })
        .collect();
    Ok(MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(md.cluster_id.clone())))
        // The controller shard (0) answers topic changes.
        .with_controller_id(BrokerId(endpoints::node_of(shard.config(), ShardId(0)).0))
        .with_topics(topics)
        // v8-10 can carry the cluster's authorized operations; with no
        // authorizer every operation is allowed, as in Kafka.
        .with_cluster_authorized_operations(
            if (8..=10).contains(&header.api_version)
                && request.include_cluster_authorized_operations
            {
                CLUSTER_OPERATIONS.iter().fold(0, |bits, op| bits | 1 << op)
            } else {
                i32::MIN
            },
        )
        .into())
}

fn topic_entry(
    config: &ServerConfig,
    md: &ClusterMetadata,
    name: &str,
    version: i16,
) -> MetadataResponseTopic {
    let entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))));
    // The internal offsets topic (cluster mode, where it is replicated) is
    // described when asked for by name, marked internal, as Kafka does, so
    // that its leaders and ISRs can be seen; a listing of every topic
    // leaves it out.
    let internal = !md.topics.contains_key(name);
    let Some(topic) = md.topic_for(name, true) else {
        let code = if crate::metadata::validate_topic_name(name).is_ok() {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        } else {
            error_code::INVALID_TOPIC_EXCEPTION
        };
        return entry.with_error_code(code);
    };
    entry
        .with_topic_id(topic.uuid())
        .with_is_internal(internal)
        .with_topic_authorized_operations(i32::MIN)
        .with_partitions(
            topic
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (leader, epoch, replicas, isr) = match &p.replica {
                        // A cluster node: what the quorum's image says.
                        Some(r) => (
                            BrokerId(r.leader),
                            r.leader_epoch,
                            r.replicas.iter().map(|&n| BrokerId(n)).collect(),
                            r.isr.iter().map(|&n| BrokerId(n)).collect(),
                        ),
                        None => {
                            let leader = BrokerId(endpoints::node_of(config, p.shard).0);
                            (leader, crate::LEADER_EPOCH.0, vec![leader], vec![leader])
                        }
                    };
                    // A partition whose replicas are all fenced has no
                    // leader, as Kafka says it.
                    let code = if leader.0 < 0 {
                        error_code::LEADER_NOT_AVAILABLE
                    } else {
                        error_code::NONE
                    };
                    MetadataResponsePartition::default()
                        .with_error_code(code)
                        .with_partition_index(i as i32)
                        .with_leader_id(leader)
                        // The field exists from v7; older versions must leave its default.
                        .with_leader_epoch(if version >= 7 { epoch } else { -1 })
                        .with_replica_nodes(replicas)
                        .with_isr_nodes(isr)
                })
                .collect(),
        )
}
