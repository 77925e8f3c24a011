//! Typed calls for what Corelog's CLI and tests ask of a broker: one
//! method per request, each sent at the highest version both this client
//! and the broker support (see [`Connection::negotiate`]).
//!
//! The ranges below are the versions whose fields these methods fill in
//! correctly: the lowest is where every field they set exists (the codec
//! refuses to encode a field a version does not have), the highest is the
//! last one whose request shape they build (e.g. Fetch 13 names topics by
//! id, which these methods do not do). Responses come back whole, with
//! their error codes for the caller to judge, except where a method says
//! it checks them.

use std::ops::RangeInclusive;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::{ClientError, ClientResult, Connection};

/// Versions each method builds; see the module comment.
pub mod versions {
    use std::ops::RangeInclusive;
    /// 4 adds allow_auto_topic_creation, which these calls turn off.
    pub const METADATA: RangeInclusive<i16> = 4..=12;
    /// 4 is the first that takes -1 for "the broker's default" counts.
    pub const CREATE_TOPICS: RangeInclusive<i16> = 4..=7;
    pub const DELETE_TOPICS: RangeInclusive<i16> = 1..=6;
    pub const CREATE_PARTITIONS: RangeInclusive<i16> = 0..=3;
    pub const DESCRIBE_CONFIGS: RangeInclusive<i16> = 1..=4;
    pub const INCREMENTAL_ALTER_CONFIGS: RangeInclusive<i16> = 0..=1;
    /// 2 adds the isolation level.
    pub const LIST_OFFSETS: RangeInclusive<i16> = 2..=7;
    /// 3 is the first with record batches (magic 2).
    pub const PRODUCE: RangeInclusive<i16> = 3..=12;
    /// 13 names topics by id.
    pub const FETCH: RangeInclusive<i16> = 4..=12;
    pub const FIND_COORDINATOR: RangeInclusive<i16> = 1..=4;
    pub const LIST_GROUPS: RangeInclusive<i16> = 0..=4;
    pub const DESCRIBE_GROUPS: RangeInclusive<i16> = 0..=5;
    pub const DELETE_GROUPS: RangeInclusive<i16> = 0..=2;
    /// 9 is the KIP-848 flavour of the request.
    pub const OFFSET_COMMIT: RangeInclusive<i16> = 2..=8;
    /// 9 adds member epochs (KIP-848).
    pub const OFFSET_FETCH: RangeInclusive<i16> = 1..=8;
    /// 1 adds the rebalance timeout.
    pub const JOIN_GROUP: RangeInclusive<i16> = 1..=7;
    pub const SYNC_GROUP: RangeInclusive<i16> = 0..=4;
    pub const HEARTBEAT: RangeInclusive<i16> = 0..=4;
    pub const LEAVE_GROUP: RangeInclusive<i16> = 0..=4;
}

/// ListOffsets timestamps with a special meaning.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
/// The replica id of an ordinary client (not a follower).
const CONSUMER_REPLICA_ID: i32 = -1;
/// FindCoordinator key type of a consumer group.
const COORDINATOR_KEY_TYPE_GROUP: i8 = 0;
/// Fetch and ListOffsets isolation levels.
pub const READ_UNCOMMITTED: i8 = 0;
pub const READ_COMMITTED: i8 = 1;

/// A group's coordinator, from FindCoordinator.
#[derive(Clone, Debug)]
pub struct Coordinator {
    pub node_id: i32,
    /// host:port, to connect to.
    pub addr: String,
}

/// One committed offset from OffsetFetch; `offset` is -1 where the group
/// has none for the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub error_code: i16,
}

/// One offset for OffsetCommit.
#[derive(Clone, Debug)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

/// Groups `(topic, item)` pairs by topic, keeping the topics' first-seen
/// order, as the per-topic request arrays want them.
fn by_topic<T: Clone>(items: &[(String, T)]) -> Vec<(String, Vec<T>)> {
    let mut out: Vec<(String, Vec<T>)> = Vec::new();
    for (topic, item) in items {
        match out.iter_mut().find(|(t, _)| t == topic) {
            Some((_, v)) => v.push(item.clone()),
            None => out.push((topic.clone(), vec![item.clone()])),
        }
    }
    out
}

impl Connection {
    /// The version to send `api_key` at: the highest in `handled` that the
    /// broker advertised. Without the handshake, the highest in `handled`.
    pub fn negotiate(&self, api_key: ApiKey, handled: RangeInclusive<i16>) -> ClientResult<i16> {
        if self.supported.is_empty() {
            return Ok(*handled.end());
        }
        let broker = usize::try_from(api_key as i16)
            .ok()
            .and_then(|i| self.supported.get(i).copied().flatten());
        let unsupported = || ClientError::Unsupported {
            addr: self.addr.clone(),
            api_key,
            version: *handled.end(),
        };
        let range = broker.ok_or_else(unsupported)?;
        let version = range.max_version.min(*handled.end());
        if version < range.min_version.max(*handled.start()) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// An error code from the broker as a [`ClientError::Kafka`], or Ok
    /// for code 0.
    pub fn check(&self, what: &str, code: i16, message: Option<&StrBytes>) -> ClientResult<()> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Kafka {
            what: what.to_string(),
            code,
            message: message.map(|m| m.to_string()),
        })
    }

    /// Metadata of `topics` (None: every topic); never creates a topic.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> ClientResult<MetadataResponse> {
        let version = self.negotiate(ApiKey::Metadata, versions::METADATA)?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        self.request(ApiKey::Metadata, version, &req)
    }

    /// CreateTopics; `timeout_ms` is how long the broker may take.
    pub fn create_topics(
        &mut self,
        topics: Vec<CreatableTopic>,
        timeout_ms: i32,
        validate_only: bool,
    ) -> ClientResult<CreateTopicsResponse> {
        let version = self.negotiate(ApiKey::CreateTopics, versions::CREATE_TOPICS)?;
        let req = CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(timeout_ms)
            .with_validate_only(validate_only);
        self.request(ApiKey::CreateTopics, version, &req)
    }

    /// DeleteTopics by name.
    pub fn delete_topics(
        &mut self,
        names: &[&str],
        timeout_ms: i32,
    ) -> ClientResult<DeleteTopicsResponse> {
        let version = self.negotiate(ApiKey::DeleteTopics, versions::DELETE_TOPICS)?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
        // Version 6 moved the names into topic states (which may name a
        // topic by id instead).
        if version >= 6 {
            req.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                .collect();
        } else {
            req.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        self.request(ApiKey::DeleteTopics, version, &req)
    }

    /// CreatePartitions: raises `topic`'s partition count to `count`,
    /// the broker placing the new replicas.
    pub fn create_partitions(
        &mut self,
        topic: &str,
        count: i32,
        timeout_ms: i32,
    ) -> ClientResult<CreatePartitionsResponse> {
        let version = self.negotiate(ApiKey::CreatePartitions, versions::CREATE_PARTITIONS)?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)]);
        self.request(ApiKey::CreatePartitions, version, &req)
    }

    /// DescribeConfigs of `resources`, with each entry's documentation off.
    pub fn describe_configs(
        &mut self,
        resources: Vec<DescribeConfigsResource>,
    ) -> ClientResult<DescribeConfigsResponse> {
        let version = self.negotiate(ApiKey::DescribeConfigs, versions::DESCRIBE_CONFIGS)?;
        let req = DescribeConfigsRequest::default().with_resources(resources);
        self.request(ApiKey::DescribeConfigs, version, &req)
    }

    /// IncrementalAlterConfigs of `resources`.
    pub fn incremental_alter_configs(
        &mut self,
        resources: Vec<AlterConfigsResource>,
        validate_only: bool,
    ) -> ClientResult<IncrementalAlterConfigsResponse> {
        let version = self.negotiate(
            ApiKey::IncrementalAlterConfigs,
            versions::INCREMENTAL_ALTER_CONFIGS,
        )?;
        let req = IncrementalAlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only);
        self.request(ApiKey::IncrementalAlterConfigs, version, &req)
    }

    /// ListOffsets of `topic`'s `(partition, timestamp)` pairs, asked of
    /// this broker (which must lead them). A timestamp is a time in ms
    /// (the first offset at or after it), [`EARLIEST_TIMESTAMP`] or
    /// [`LATEST_TIMESTAMP`].
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        isolation_level: i8,
    ) -> ClientResult<ListOffsetsResponse> {
        let version = self.negotiate(ApiKey::ListOffsets, versions::LIST_OFFSETS)?;
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(CONSUMER_REPLICA_ID))
            .with_isolation_level(isolation_level)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, ts)| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(ts)
                        })
                        .collect(),
                )]);
        self.request(ApiKey::ListOffsets, version, &req)
    }

    /// The offset ListOffsets gives for one partition and timestamp,
    /// checking the error code; -1 where no record is that recent.
    pub fn offset_for(&mut self, topic: &str, partition: i32, timestamp: i64) -> ClientResult<i64> {
        let resp = self.list_offsets(topic, &[(partition, timestamp)], READ_UNCOMMITTED)?;
        let p = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                self.protocol_error(format!(
                    "ListOffsets answered nothing for {topic}/{partition}"
                ))
            })?;
        self.check(&format!("{topic}/{partition}"), p.error_code, None)?;
        Ok(p.offset)
    }

    /// Produces one encoded record batch (or several, concatenated) to one
    /// partition. With `acks` 0 the broker does not answer, so neither
    /// does this: it returns an empty response once the request is sent.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
        timeout_ms: i32,
    ) -> ClientResult<ProduceResponse> {
        let version = self.negotiate(ApiKey::Produce, versions::PRODUCE)?;
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        if acks == 0 {
            self.send(ApiKey::Produce, version, &req)?;
            return Ok(ProduceResponse::default());
        }
        self.request(ApiKey::Produce, version, &req)
    }

    /// Fetches `topic`'s `(partition, offset)` pairs from this broker,
    /// waiting up to `max_wait_ms` for at least one byte; at most
    /// `max_bytes` in all and `partition_max_bytes` per partition (a
    /// broker returns at least one batch even when it is larger).
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        max_wait_ms: i32,
        max_bytes: i32,
        partition_max_bytes: i32,
        isolation_level: i8,
    ) -> ClientResult<FetchResponse> {
        let version = self.negotiate(ApiKey::Fetch, versions::FETCH)?;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(CONSUMER_REPLICA_ID))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(isolation_level)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, offset)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                )]);
        self.request(ApiKey::Fetch, version, &req)
    }

    /// The coordinator of consumer group `group`, checking the error code.
    pub fn find_coordinator(&mut self, group: &str) -> ClientResult<Coordinator> {
        let version = self.negotiate(ApiKey::FindCoordinator, versions::FIND_COORDINATOR)?;
        let mut req = FindCoordinatorRequest::default().with_key_type(COORDINATOR_KEY_TYPE_GROUP);
        // Version 4 asks for several keys at once.
        if version >= 4 {
            req.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
        } else {
            req.key = StrBytes::from_string(group.to_string());
        }
        let resp: FindCoordinatorResponse = self.request(ApiKey::FindCoordinator, version, &req)?;
        let what = format!("coordinator of group {group}");
        let (code, message, node, host, port) = if version >= 4 {
            let c = resp
                .coordinators
                .first()
                .ok_or_else(|| self.protocol_error("FindCoordinator answered nothing".into()))?;
            (
                c.error_code,
                c.error_message.clone(),
                c.node_id,
                c.host.clone(),
                c.port,
            )
        } else {
            (
                resp.error_code,
                resp.error_message.clone(),
                resp.node_id,
                resp.host.clone(),
                resp.port,
            )
        };
        self.check(&what, code, message.as_ref())?;
        Ok(Coordinator {
            node_id: node.0,
            addr: format!("{host}:{port}"),
        })
    }

    /// ListGroups (every group this broker coordinates).
    pub fn list_groups(&mut self) -> ClientResult<ListGroupsResponse> {
        let version = self.negotiate(ApiKey::ListGroups, versions::LIST_GROUPS)?;
        self.request(ApiKey::ListGroups, version, &ListGroupsRequest::default())
    }

    /// DescribeGroups, asked of the groups' coordinator.
    pub fn describe_groups(&mut self, groups: &[&str]) -> ClientResult<DescribeGroupsResponse> {
        let version = self.negotiate(ApiKey::DescribeGroups, versions::DESCRIBE_GROUPS)?;
        let req = DescribeGroupsRequest::default()
            .with_groups(groups.iter().map(|g| group_id(g)).collect());
        self.request(ApiKey::DescribeGroups, version, &req)
    }

    /// DeleteGroups, asked of the groups' coordinator.
    pub fn delete_groups(&mut self, groups: &[&str]) -> ClientResult<DeleteGroupsResponse> {
        let version = self.negotiate(ApiKey::DeleteGroups, versions::DELETE_GROUPS)?;
        let req = DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| group_id(g)).collect());
        self.request(ApiKey::DeleteGroups, version, &req)
    }

    /// The offsets `group` committed, asked of its coordinator: for
    /// `topics`' partitions, or (None) for every partition it has one for.
    /// Checks the group's error code; each offset carries its own.
    pub fn offset_fetch(
        &mut self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> ClientResult<Vec<CommittedOffset>> {
        let version = self.negotiate(ApiKey::OffsetFetch, versions::OFFSET_FETCH)?;
        let what = format!("offsets of group {group}");
        let mut out = Vec::new();
        // Version 8 asks for several groups at once.
        if version >= 8 {
            let req =
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(group_id(group))
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(topic_name(t))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect()
                    }))]);
            let resp: OffsetFetchResponse = self.request(ApiKey::OffsetFetch, version, &req)?;
            let g = resp
                .groups
                .first()
                .ok_or_else(|| self.protocol_error("OffsetFetch answered no group".into()))?;
            self.check(&what, g.error_code, None)?;
            for t in &g.topics {
                for p in &t.partitions {
                    out.push(CommittedOffset {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        error_code: p.error_code,
                    });
                }
            }
        } else {
            let req = OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                }));
            let resp: OffsetFetchResponse = self.request(ApiKey::OffsetFetch, version, &req)?;
            // Version 2 added a group-level error code.
            self.check(&what, resp.error_code, None)?;
            for t in &resp.topics {
                for p in &t.partitions {
                    out.push(CommittedOffset {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        error_code: p.error_code,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` for `group`, asked of its coordinator. Outside a
    /// generation (an admin tool resetting an empty group) pass generation
    /// -1 and an empty member id, as Kafka's tools do.
    pub fn offset_commit(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &[OffsetToCommit],
    ) -> ClientResult<OffsetCommitResponse> {
        let version = self.negotiate(ApiKey::OffsetCommit, versions::OFFSET_COMMIT)?;
        let pairs: Vec<(String, (i32, i64))> = offsets
            .iter()
            .map(|o| (o.topic.clone(), (o.partition, o.offset)))
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_topics(
                by_topic(&pairs)
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, offset)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        self.request(ApiKey::OffsetCommit, version, &req)
    }

    /// JoinGroup as a classic-protocol member of `group` offering one
    /// protocol (`protocol_name`, with `metadata`, e.g. a consumer
    /// subscription).
    #[allow(clippy::too_many_arguments)]
    pub fn join_group(
        &mut self,
        group: &str,
        member_id: &str,
        protocol_type: &str,
        protocol_name: &str,
        metadata: Bytes,
        session_timeout_ms: i32,
        rebalance_timeout_ms: i32,
    ) -> ClientResult<JoinGroupResponse> {
        let version = self.negotiate(ApiKey::JoinGroup, versions::JOIN_GROUP)?;
        let req = JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(session_timeout_ms)
            .with_rebalance_timeout_ms(rebalance_timeout_ms)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_protocol_type(StrBytes::from_string(protocol_type.to_string()))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_string(protocol_name.to_string()))
                .with_metadata(metadata)]);
        self.request(ApiKey::JoinGroup, version, &req)
    }

    /// SyncGroup: the leader passes every member's assignment, the others
    /// an empty list.
    pub fn sync_group(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> ClientResult<SyncGroupResponse> {
        let version = self.negotiate(ApiKey::SyncGroup, versions::SYNC_GROUP)?;
        let req = SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        self.request(ApiKey::SyncGroup, version, &req)
    }

    /// Heartbeat of a classic group member.
    pub fn heartbeat(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
    ) -> ClientResult<HeartbeatResponse> {
        let version = self.negotiate(ApiKey::Heartbeat, versions::HEARTBEAT)?;
        let req = HeartbeatRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_string()));
        self.request(ApiKey::Heartbeat, version, &req)
    }

    /// LeaveGroup of one classic group member.
    pub fn leave_group(
        &mut self,
        group: &str,
        member_id: &str,
    ) -> ClientResult<LeaveGroupResponse> {
        let version = self.negotiate(ApiKey::LeaveGroup, versions::LEAVE_GROUP)?;
        let mut req = LeaveGroupRequest::default().with_group_id(group_id(group));
        // Version 3 lets one request take several members out (KIP-345).
        if version >= 3 {
            req.members = vec![MemberIdentity::default()
                .with_member_id(StrBytes::from_string(member_id.to_string()))];
        } else {
            req.member_id = StrBytes::from_string(member_id.to_string());
        }
        self.request(ApiKey::LeaveGroup, version, &req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_grouped_by_topic_in_first_seen_order() {
        let items = vec![
            ("b".to_string(), 1),
            ("a".to_string(), 2),
            ("b".to_string(), 3),
        ];
        assert_eq!(
            by_topic(&items),
            vec![("b".to_string(), vec![1, 3]), ("a".to_string(), vec![2])]
        );
    }
}
