//! Fully populated requests and responses of the consumer-group apis, for
//! every version kafka-protocol 0.18 knows.
//!
//! Every array holds two or more elements, every field the version carries is
//! set to a non-default value, and flexible versions carry an unknown tagged
//! field at every level. Nullable fields are null in one of the two variants
//! (`alt` false or true) and set in the other; inside arrays one element has
//! the field set and the other has it null.

use bytes::Bytes;
use corelog_protocol::kafka_protocol::messages::{
    consumer_group_describe_response, consumer_group_heartbeat_request,
    consumer_group_heartbeat_response, delete_groups_response, describe_groups_response,
    find_coordinator_response, join_group_request, join_group_response, leave_group_request,
    leave_group_response, list_groups_response, offset_commit_request, offset_commit_response,
    offset_delete_request, offset_delete_response, offset_fetch_request, offset_fetch_response,
    sync_group_request, ApiKey, BrokerId, ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use corelog_protocol::{ApiSupport, Request, Response};

use super::{extra_tag, id, s, support, topic};

/// The group apis with every version kafka-protocol 0.18 decodes (requests)
/// and encodes (responses), and below it OffsetCommit v0-1 and OffsetFetch
/// v0, served through kafka-protocol 0.15.1 (`corelog_protocol::legacy`). The responses of OffsetCommit and OffsetFetch go
/// to 10, their requests stop at 9.
pub const GROUP_APIS: &[ApiSupport] = &[
    support(ApiKey::FindCoordinator, 0, 6),
    support(ApiKey::JoinGroup, 0, 9),
    support(ApiKey::SyncGroup, 0, 5),
    support(ApiKey::Heartbeat, 0, 4),
    support(ApiKey::LeaveGroup, 0, 5),
    support(ApiKey::OffsetCommit, 0, 9),
    support(ApiKey::OffsetFetch, 0, 9),
    support(ApiKey::ListGroups, 0, 5),
    support(ApiKey::DescribeGroups, 0, 6),
    support(ApiKey::DeleteGroups, 0, 2),
    support(ApiKey::OffsetDelete, 0, 0),
    support(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    support(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Whether `api_key` is one of the group apis.
pub fn is_group_api(api_key: ApiKey) -> bool {
    GROUP_APIS.iter().any(|s| s.api_key == api_key)
}

fn group(value: &'static str) -> GroupId {
    GroupId(s(value))
}

/// `Some(value)` or `None`, so that nullable fields are exercised both ways.
fn nullable<T>(set: bool, value: T) -> Option<T> {
    set.then_some(value)
}

/// Protocol metadata, assignment or member metadata bytes for `n`; distinct
/// per element so that a swap shows up.
pub fn payload(n: u8) -> Bytes {
    Bytes::from(vec![n; 9 + usize::from(n)])
}

macro_rules! tagged {
    ($value:expr, $flex:expr) => {{
        let value = $value;
        if $flex {
            value.with_unknown_tagged_field(extra_tag().0, extra_tag().1)
        } else {
            value
        }
    }};
}

/// A group request of `api_key` at `v`; `alt` flips which nullable fields are
/// null.
pub fn build_group_request(api_key: ApiKey, v: i16, alt: bool) -> Request {
    // Whether top-level nullable fields are set in this variant.
    let set = (v % 2 == 0) != alt;
    match api_key {
        ApiKey::FindCoordinator => {
            let flex = v >= 3;
            let mut r = FindCoordinatorRequest::default();
            if v <= 3 {
                r = r.with_key(s("group-a"));
            }
            if v >= 1 {
                r = r.with_key_type(if alt { 1 } else { 0 });
            }
            if v >= 4 {
                r = r.with_coordinator_keys(vec![s("group-a"), s("group-b"), s("")]);
            }
            Request::FindCoordinator(tagged!(r, flex))
        }
        ApiKey::JoinGroup => {
            let flex = v >= 6;
            let protocol = |name: &'static str, n: u8| {
                tagged!(
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(payload(n)),
                    flex
                )
            };
            let mut r = JoinGroupRequest::default()
                .with_group_id(group("group-a"))
                .with_session_timeout_ms(45_000)
                .with_member_id(s(if alt { "" } else { "member-1" }))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    protocol("range", 1),
                    protocol("cooperative-sticky", 2),
                ]);
            if v >= 1 {
                r = r.with_rebalance_timeout_ms(300_000);
            }
            if v >= 5 {
                r = r.with_group_instance_id(nullable(set, s("instance-1")));
            }
            if v >= 8 {
                r = r.with_reason(nullable(!set, s("rebalance needed")));
            }
            Request::JoinGroup(tagged!(r, flex))
        }
        ApiKey::SyncGroup => {
            let flex = v >= 4;
            let assignment = |member: &'static str, n: u8| {
                tagged!(
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(payload(n)),
                    flex
                )
            };
            let mut r = SyncGroupRequest::default()
                .with_group_id(group("group-a"))
                .with_generation_id(7)
                .with_member_id(s("member-1"))
                .with_assignments(vec![
                    assignment("member-1", 3),
                    assignment("member-2", 4),
                    assignment("member-3", 0),
                ]);
            if v >= 3 {
                r = r.with_group_instance_id(nullable(set, s("instance-1")));
            }
            if v >= 5 {
                r = r
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(nullable(!set, s("range")));
            }
            Request::SyncGroup(tagged!(r, flex))
        }
        ApiKey::Heartbeat => {
            let flex = v >= 4;
            let mut r = HeartbeatRequest::default()
                .with_group_id(group("group-a"))
                .with_generation_id(7)
                .with_member_id(s("member-1"));
            if v >= 3 {
                r = r.with_group_instance_id(nullable(set, s("instance-1")));
            }
            Request::Heartbeat(tagged!(r, flex))
        }
        ApiKey::LeaveGroup => {
            let flex = v >= 4;
            let mut r = LeaveGroupRequest::default().with_group_id(group("group-a"));
            if v <= 2 {
                r = r.with_member_id(s("member-1"));
            } else {
                let member = |id: &'static str, instance: bool, reason: bool| {
                    let mut m = leave_group_request::MemberIdentity::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(nullable(instance, s("instance-1")));
                    if v >= 5 {
                        m = m.with_reason(nullable(reason, s("shutting down")));
                    }
                    tagged!(m, flex)
                };
                r = r.with_members(vec![
                    member("member-1", set, !set),
                    member("member-2", !set, set),
                ]);
            }
            Request::LeaveGroup(tagged!(r, flex))
        }
        ApiKey::OffsetCommit => {
            let flex = v >= 8;
            let partition = |index: i32, metadata: Option<&'static str>| {
                let mut p = offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(index)
                    .with_committed_offset(1000 + i64::from(index))
                    .with_committed_metadata(metadata.map(s));
                if v >= 6 {
                    p = p.with_committed_leader_epoch(3);
                }
                tagged!(p, flex)
            };
            let topic_entry = |name: &'static str, partitions| {
                tagged!(
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic(name))
                        .with_partitions(partitions),
                    flex
                )
            };
            let mut r = OffsetCommitRequest::default()
                .with_group_id(group("group-a"))
                .with_topics(vec![
                    topic_entry(
                        "orders",
                        vec![partition(0, Some("meta")), partition(1, None)],
                    ),
                    topic_entry("payments", vec![partition(2, Some(""))]),
                ]);
            if v >= 7 {
                r = r.with_group_instance_id(nullable(set, s("instance-1")));
            }
            // v0 has neither (Kafka's simple commit: generation -1).
            if v >= 1 {
                r = r
                    .with_generation_id_or_member_epoch(5)
                    .with_member_id(s("member-1"));
            }
            if (2..=4).contains(&v) {
                r = r.with_retention_time_ms(86_400_000);
            }
            Request::OffsetCommit(tagged!(r, flex))
        }
        ApiKey::OffsetFetch => {
            let flex = v >= 6;
            let mut r = OffsetFetchRequest::default();
            if v <= 7 {
                let topic_entry = |name: &'static str, partitions: Vec<i32>| {
                    tagged!(
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic(name))
                            .with_partition_indexes(partitions),
                        flex
                    )
                };
                // Topics are nullable (all topics) from v2.
                let topics = vec![
                    topic_entry("orders", vec![0, 1, 2]),
                    topic_entry("payments", vec![5]),
                ];
                r = r
                    .with_group_id(group("group-a"))
                    .with_topics(nullable(set || v < 2, topics));
            } else {
                let topic_entry = |name: &'static str, partitions: Vec<i32>| {
                    tagged!(
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(topic(name))
                            .with_partition_indexes(partitions),
                        true
                    )
                };
                let group_entry = |name: &'static str, member: bool, topics| {
                    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group(name))
                        .with_topics(topics);
                    if v >= 9 && member {
                        g = g.with_member_id(Some(s("member-1"))).with_member_epoch(4);
                    }
                    tagged!(g, true)
                };
                r = r.with_groups(vec![
                    group_entry(
                        "group-a",
                        set,
                        Some(vec![
                            topic_entry("orders", vec![0, 1]),
                            topic_entry("payments", vec![3]),
                        ]),
                    ),
                    group_entry("group-b", !set, None),
                ]);
            }
            if v >= 7 {
                r = r.with_require_stable(true);
            }
            Request::OffsetFetch(tagged!(r, flex))
        }
        ApiKey::ListGroups => {
            let flex = v >= 3;
            let mut r = ListGroupsRequest::default();
            if v >= 4 {
                r = r.with_states_filter(vec![s("Stable"), s("Empty")]);
            }
            if v >= 5 {
                r = r.with_types_filter(vec![s("classic"), s("consumer")]);
            }
            Request::ListGroups(tagged!(r, flex))
        }
        ApiKey::DescribeGroups => {
            let flex = v >= 5;
            let mut r = DescribeGroupsRequest::default().with_groups(vec![
                group("group-a"),
                group("group-b"),
                group(""),
            ]);
            if v >= 3 {
                r = r.with_include_authorized_operations(true);
            }
            Request::DescribeGroups(tagged!(r, flex))
        }
        ApiKey::DeleteGroups => {
            let flex = v >= 2;
            let r = DeleteGroupsRequest::default()
                .with_groups_names(vec![group("group-a"), group("group-b")]);
            Request::DeleteGroups(tagged!(r, flex))
        }
        ApiKey::OffsetDelete => {
            let partition = |index: i32| {
                offset_delete_request::OffsetDeleteRequestPartition::default()
                    .with_partition_index(index)
            };
            Request::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(group("group-a"))
                    .with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic("orders"))
                            .with_partitions(vec![partition(0), partition(1)]),
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic("payments"))
                            .with_partitions(vec![partition(4), partition(5)]),
                    ]),
            )
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let tp = |n: u8, partitions: Vec<i32>| {
                tagged!(
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(id(n))
                        .with_partitions(partitions),
                    true
                )
            };
            let mut r = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("group-a"))
                .with_member_id(s("member-1"))
                .with_member_epoch(if alt { -1 } else { 3 })
                .with_instance_id(nullable(set, s("instance-1")))
                .with_rack_id(nullable(!set, s("rack-a")))
                .with_rebalance_timeout_ms(300_000)
                .with_subscribed_topic_names(nullable(
                    set,
                    vec![topic("orders"), topic("payments")],
                ))
                .with_server_assignor(nullable(!set, s("uniform")))
                .with_topic_partitions(nullable(!alt, vec![tp(1, vec![0, 1, 2]), tp(2, vec![7])]));
            if v >= 1 {
                r = r.with_subscribed_topic_regex(nullable(!set, s("orders-.*")));
            }
            Request::ConsumerGroupHeartbeat(tagged!(r, true))
        }
        ApiKey::ConsumerGroupDescribe => Request::ConsumerGroupDescribe(tagged!(
            ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![group("group-a"), group("group-b")])
                .with_include_authorized_operations(true),
            true
        )),
        other => panic!("not a group api: {other:?}"),
    }
}

/// A group response of `api_key` at `v` with content in every field the
/// version carries; `alt` flips which nullable fields are null.
pub fn build_group_response(api_key: ApiKey, v: i16, alt: bool) -> Response {
    let set = (v % 2 == 0) != alt;
    match api_key {
        ApiKey::FindCoordinator => {
            let flex = v >= 3;
            let mut r = FindCoordinatorResponse::default();
            if v >= 1 {
                r = r.with_throttle_time_ms(12);
            }
            if v <= 3 {
                r = r
                    .with_error_code(if alt { 15 } else { 0 })
                    .with_node_id(BrokerId(3))
                    .with_host(s("broker-3"))
                    .with_port(9092);
                if v >= 1 {
                    r = r.with_error_message(nullable(set, s("coordinator not available")));
                }
            } else {
                r = r.with_coordinators(vec![
                    tagged!(
                        find_coordinator_response::Coordinator::default()
                            .with_key(s("group-a"))
                            .with_node_id(BrokerId(1))
                            .with_host(s("broker-1"))
                            .with_port(9092)
                            .with_error_code(0)
                            .with_error_message(None),
                        flex
                    ),
                    tagged!(
                        find_coordinator_response::Coordinator::default()
                            .with_key(s("group-b"))
                            .with_node_id(BrokerId(-1))
                            .with_host(s(""))
                            .with_port(-1)
                            .with_error_code(15)
                            .with_error_message(Some(s("coordinator not available"))),
                        flex
                    ),
                ]);
            }
            Response::FindCoordinator(tagged!(r, flex))
        }
        ApiKey::JoinGroup => {
            let flex = v >= 6;
            let member = |id: &'static str, instance: bool, n: u8| {
                let mut m = join_group_response::JoinGroupResponseMember::default()
                    .with_member_id(s(id))
                    .with_metadata(payload(n));
                if v >= 5 {
                    m = m.with_group_instance_id(nullable(instance, s("instance-1")));
                }
                tagged!(m, flex)
            };
            let mut r = JoinGroupResponse::default()
                .with_error_code(0)
                .with_generation_id(4)
                .with_protocol_name(Some(s("range")))
                .with_leader(s("member-1"))
                .with_member_id(s("member-1"))
                .with_members(vec![
                    member("member-1", set, 5),
                    member("member-2", !set, 6),
                ]);
            if v >= 2 {
                r = r.with_throttle_time_ms(3);
            }
            if v >= 7 {
                r = r
                    .with_protocol_type(nullable(set, s("consumer")))
                    .with_protocol_name(nullable(!set, s("range")));
            }
            if v >= 9 {
                r = r.with_skip_assignment(true);
            }
            Response::JoinGroup(tagged!(r, flex))
        }
        ApiKey::SyncGroup => {
            let flex = v >= 4;
            let mut r = SyncGroupResponse::default()
                .with_error_code(27)
                .with_assignment(payload(7));
            if v >= 1 {
                r = r.with_throttle_time_ms(3);
            }
            if v >= 5 {
                r = r
                    .with_protocol_type(nullable(set, s("consumer")))
                    .with_protocol_name(nullable(!set, s("range")));
            }
            Response::SyncGroup(tagged!(r, flex))
        }
        ApiKey::Heartbeat => {
            let flex = v >= 4;
            let mut r = HeartbeatResponse::default().with_error_code(27);
            if v >= 1 {
                r = r.with_throttle_time_ms(3);
            }
            Response::Heartbeat(tagged!(r, flex))
        }
        ApiKey::LeaveGroup => {
            let flex = v >= 4;
            let mut r = LeaveGroupResponse::default().with_error_code(if alt { 25 } else { 0 });
            if v >= 1 {
                r = r.with_throttle_time_ms(3);
            }
            if v >= 3 {
                let member = |id: &'static str, instance: bool, error: i16| {
                    tagged!(
                        leave_group_response::MemberResponse::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(nullable(instance, s("instance-1")))
                            .with_error_code(error),
                        flex
                    )
                };
                r = r.with_members(vec![
                    member("member-1", set, 0),
                    member("member-2", !set, 25),
                ]);
            }
            Response::LeaveGroup(tagged!(r, flex))
        }
        ApiKey::OffsetCommit => {
            let flex = v >= 8;
            let partition = |index: i32, error: i16| {
                tagged!(
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error),
                    flex
                )
            };
            let topic_entry = |name: &'static str, n: u8, partitions| {
                let mut t = offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_partitions(partitions);
                if v <= 9 {
                    t = t.with_name(topic(name));
                } else {
                    t = t.with_topic_id(id(n));
                }
                tagged!(t, flex)
            };
            let mut r = OffsetCommitResponse::default().with_topics(vec![
                topic_entry("orders", 1, vec![partition(0, 0), partition(1, 22)]),
                topic_entry("payments", 2, vec![partition(2, 0)]),
            ]);
            if v >= 3 {
                r = r.with_throttle_time_ms(3);
            }
            Response::OffsetCommit(tagged!(r, flex))
        }
        ApiKey::OffsetFetch => Response::OffsetFetch(build_offset_fetch_response(v, set)),
        ApiKey::ListGroups => {
            let flex = v >= 3;
            let listed = |id: &'static str, protocol_type: &'static str, kind: &'static str| {
                let mut g = list_groups_response::ListedGroup::default()
                    .with_group_id(group(id))
                    .with_protocol_type(s(protocol_type));
                if v >= 4 {
                    g = g.with_group_state(s("Stable"));
                }
                if v >= 5 {
                    g = g.with_group_type(s(kind));
                }
                tagged!(g, flex)
            };
            let mut r = ListGroupsResponse::default()
                .with_error_code(0)
                .with_groups(vec![
                    listed("group-a", "consumer", "classic"),
                    listed("group-b", "", "consumer"),
                ]);
            if v >= 1 {
                r = r.with_throttle_time_ms(3);
            }
            Response::ListGroups(tagged!(r, flex))
        }
        ApiKey::DescribeGroups => {
            let flex = v >= 5;
            let member = |id: &'static str, instance: bool, n: u8| {
                let mut m = describe_groups_response::DescribedGroupMember::default()
                    .with_member_id(s(id))
                    .with_client_id(s("client-1"))
                    .with_client_host(s("/10.0.0.1"))
                    .with_member_metadata(payload(n))
                    .with_member_assignment(payload(n + 1));
                if v >= 4 {
                    m = m.with_group_instance_id(nullable(instance, s("instance-1")));
                }
                tagged!(m, flex)
            };
            let described = |id: &'static str, error: i16, members| {
                let mut g = describe_groups_response::DescribedGroup::default()
                    .with_error_code(error)
                    .with_group_id(group(id))
                    .with_group_state(s("Stable"))
                    .with_protocol_type(s("consumer"))
                    .with_protocol_data(s("range"))
                    .with_members(members);
                if v >= 3 {
                    g = g.with_authorized_operations(0x0f00);
                }
                if v >= 6 {
                    g = g.with_error_message(nullable(error != 0, s("group not found")));
                }
                tagged!(g, flex)
            };
            let mut r = DescribeGroupsResponse::default().with_groups(vec![
                described(
                    "group-a",
                    0,
                    vec![member("member-1", set, 1), member("member-2", !set, 3)],
                ),
                described("group-b", 69, vec![]),
            ]);
            if v >= 1 {
                r = r.with_throttle_time_ms(3);
            }
            Response::DescribeGroups(tagged!(r, flex))
        }
        ApiKey::DeleteGroups => {
            let flex = v >= 2;
            let result = |id: &'static str, error: i16| {
                tagged!(
                    delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(group(id))
                        .with_error_code(error),
                    flex
                )
            };
            Response::DeleteGroups(tagged!(
                DeleteGroupsResponse::default()
                    .with_throttle_time_ms(3)
                    .with_results(vec![result("group-a", 0), result("group-b", 69)]),
                flex
            ))
        }
        ApiKey::OffsetDelete => {
            let partition = |index: i32, error: i16| {
                offset_delete_response::OffsetDeleteResponsePartition::default()
                    .with_partition_index(index)
                    .with_error_code(error)
            };
            let topic_entry = |name: &'static str, partitions| {
                offset_delete_response::OffsetDeleteResponseTopic::default()
                    .with_name(topic(name))
                    .with_partitions(partitions)
            };
            Response::OffsetDelete(
                OffsetDeleteResponse::default()
                    .with_error_code(0)
                    .with_throttle_time_ms(3)
                    .with_topics(vec![
                        topic_entry("orders", vec![partition(0, 0), partition(1, 86)]),
                        topic_entry("payments", vec![partition(4, 0)]),
                    ]),
            )
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let tp = |n: u8, partitions: Vec<i32>| {
                tagged!(
                    consumer_group_heartbeat_response::TopicPartitions::default()
                        .with_topic_id(id(n))
                        .with_partitions(partitions),
                    true
                )
            };
            let assignment = tagged!(
                consumer_group_heartbeat_response::Assignment::default()
                    .with_topic_partitions(vec![tp(1, vec![0, 2]), tp(2, vec![1])]),
                true
            );
            Response::ConsumerGroupHeartbeat(tagged!(
                ConsumerGroupHeartbeatResponse::default()
                    .with_throttle_time_ms(3)
                    .with_error_code(if set { 0 } else { 25 })
                    .with_error_message(nullable(!set, s("unknown member")))
                    .with_member_id(Some(s("member-1")))
                    .with_member_epoch(6)
                    .with_heartbeat_interval_ms(5000)
                    .with_assignment(nullable(set, assignment)),
                true
            ))
        }
        ApiKey::ConsumerGroupDescribe => {
            use consumer_group_describe_response as cgd;
            let tp = |n: u8, name: &'static str, partitions: Vec<i32>| {
                tagged!(
                    cgd::TopicPartitions::default()
                        .with_topic_id(id(n))
                        .with_topic_name(topic(name))
                        .with_partitions(partitions),
                    true
                )
            };
            let assignment = |partitions: Vec<cgd::TopicPartitions>| {
                tagged!(
                    cgd::Assignment::default().with_topic_partitions(partitions),
                    true
                )
            };
            let member = |id: &'static str, nulls: bool| {
                let mut m = cgd::Member::default()
                    .with_member_id(s(id))
                    .with_instance_id(nullable(!nulls, s("instance-1")))
                    .with_rack_id(nullable(nulls, s("rack-a")))
                    .with_member_epoch(6)
                    .with_client_id(s("client-1"))
                    .with_client_host(s("/10.0.0.1"))
                    .with_subscribed_topic_names(vec![topic("orders"), topic("payments")])
                    .with_subscribed_topic_regex(nullable(!nulls, s("orders-.*")))
                    .with_assignment(assignment(vec![
                        tp(1, "orders", vec![0, 1]),
                        tp(2, "payments", vec![0]),
                    ]))
                    .with_target_assignment(assignment(vec![tp(1, "orders", vec![0])]));
                if v >= 1 {
                    m = m.with_member_type(1);
                }
                tagged!(m, true)
            };
            let described = |id: &'static str, error: i16, members| {
                tagged!(
                    cgd::DescribedGroup::default()
                        .with_error_code(error)
                        .with_error_message(nullable(error != 0, s("group not found")))
                        .with_group_id(group(id))
                        .with_group_state(s("Stable"))
                        .with_group_epoch(8)
                        .with_assignment_epoch(7)
                        .with_assignor_name(s("uniform"))
                        .with_members(members)
                        .with_authorized_operations(0x0f00),
                    true
                )
            };
            Response::ConsumerGroupDescribe(tagged!(
                ConsumerGroupDescribeResponse::default()
                    .with_throttle_time_ms(3)
                    .with_groups(vec![
                        described(
                            "group-a",
                            0,
                            vec![member("member-1", set), member("member-2", !set)]
                        ),
                        described("group-b", 69, vec![]),
                    ]),
                true
            ))
        }
        other => panic!("not a group api: {other:?}"),
    }
}

fn build_offset_fetch_response(v: i16, set: bool) -> OffsetFetchResponse {
    use offset_fetch_response as of;
    let flex = v >= 6;
    let mut r = OffsetFetchResponse::default();
    if v >= 3 {
        r = r.with_throttle_time_ms(3);
    }
    if v <= 7 {
        let partition = |index: i32, metadata: bool, error: i16| {
            let mut p = of::OffsetFetchResponsePartition::default()
                .with_partition_index(index)
                .with_committed_offset(1000 + i64::from(index))
                .with_metadata(nullable(metadata, s("meta")))
                .with_error_code(error);
            if v >= 5 {
                p = p.with_committed_leader_epoch(2);
            }
            tagged!(p, flex)
        };
        let topic_entry = |name: &'static str, partitions| {
            tagged!(
                of::OffsetFetchResponseTopic::default()
                    .with_name(topic(name))
                    .with_partitions(partitions),
                flex
            )
        };
        r = r.with_topics(vec![
            topic_entry("orders", vec![partition(0, set, 0), partition(1, !set, 0)]),
            topic_entry("payments", vec![partition(2, true, 3)]),
        ]);
        if v >= 2 {
            r = r.with_error_code(if set { 0 } else { 14 });
        }
    } else {
        let partition = |index: i32, metadata: bool, error: i16| {
            tagged!(
                of::OffsetFetchResponsePartitions::default()
                    .with_partition_index(index)
                    .with_committed_offset(1000 + i64::from(index))
                    .with_committed_leader_epoch(2)
                    .with_metadata(nullable(metadata, s("meta")))
                    .with_error_code(error),
                true
            )
        };
        let topic_entry = |name: &'static str, n: u8, partitions| {
            let mut t = of::OffsetFetchResponseTopics::default().with_partitions(partitions);
            if v <= 9 {
                t = t.with_name(topic(name));
            } else {
                t = t.with_topic_id(id(n));
            }
            tagged!(t, true)
        };
        let group_entry = |name: &'static str, error: i16, topics| {
            tagged!(
                of::OffsetFetchResponseGroup::default()
                    .with_group_id(group(name))
                    .with_topics(topics)
                    .with_error_code(error),
                true
            )
        };
        r = r.with_groups(vec![
            group_entry(
                "group-a",
                0,
                vec![
                    topic_entry(
                        "orders",
                        1,
                        vec![partition(0, set, 0), partition(1, !set, 0)],
                    ),
                    topic_entry("payments", 2, vec![partition(2, true, 3)]),
                ],
            ),
            group_entry("group-b", 69, vec![]),
        ]);
    }
    tagged!(r, flex)
}
