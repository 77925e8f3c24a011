//! The bound on consumer groups per shard (`groups.groups_per_shard_max`,
//! issue 24): each new group id a client names creates coordinator state,
//! so past the bound every request that would create a group is answered
//! GROUP_MAX_SIZE_REACHED before anything is created, while existing
//! groups are served as ever, and a deleted group makes room again.

mod common;

use common::{s, topic, Client, TestServer};
use corelog_coordination::codes;
use corelog_protocol::error_code as ec;
use corelog_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use corelog_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use corelog_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use corelog_protocol::kafka_protocol::messages::*;
use corelog_protocol::kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "group-bounds";
const GROUPS_MAX: usize = 3;

fn group(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

/// A "simple" commit (generation -1, no member), as a consumer that assigns
/// its partitions itself sends: it creates the group if it does not exist.
/// Returns the partition's error code.
fn commit(c: &mut Client, group_id: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s("")))])]);
    let resp: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 2, &req);
    resp.topics[0].partitions[0].error_code
}

/// The committed offset of partition 0, -1 if none.
fn committed(c: &mut Client, group_id: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic(TOPIC))
            .with_partition_indexes(vec![0])]));
    let resp: OffsetFetchResponse = c.request(ApiKey::OffsetFetch, 1, &req);
    resp.topics[0].partitions[0].committed_offset
}

/// JoinGroup v5 as a new member; the error code. A group that exists (or
/// is created) answers MEMBER_ID_REQUIRED at once (KIP-394).
fn join(c: &mut Client, group_id: &str) -> i16 {
    let req = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Default::default())]);
    let resp: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &req);
    resp.error_code
}

/// A KIP-848 consumer joining `group_id`; (error code, message).
fn consumer_join(c: &mut Client, group_id: &str) -> (i16, String) {
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(s(""))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![topic(TOPIC)]))
        .with_topic_partitions(Some(Vec::new()));
    let resp: ConsumerGroupHeartbeatResponse = c.request(ApiKey::ConsumerGroupHeartbeat, 0, &req);
    (
        resp.error_code,
        resp.error_message
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

fn listed(c: &mut Client) -> Vec<String> {
    let resp: ListGroupsResponse = c.request(ApiKey::ListGroups, 3, &ListGroupsRequest::default());
    let mut ids: Vec<String> = resp.groups.iter().map(|g| g.group_id.to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn past_groups_per_shard_max_no_request_creates_a_group_and_deleting_one_makes_room() {
    // One shard: every offsets partition's coordinator is on it, so the
    // bound counts every group.
    let server = TestServer::start_with(1, None, |c| {
        c.groups.groups_per_shard_max = GROUPS_MAX;
    });
    let mut c = server.client();
    c.create_topic(TOPIC, 1);
    for (i, g) in ["g1", "g2", "g3"].iter().enumerate() {
        assert_eq!(commit(&mut c, g, 10 + i as i64), ec::NONE, "{g}");
    }
    assert_eq!(listed(&mut c), ["g1", "g2", "g3"]);

    // Every way of creating a fourth group is refused, and creates nothing.
    assert_eq!(commit(&mut c, "g4", 7), codes::GROUP_MAX_SIZE_REACHED);
    assert_eq!(
        committed(&mut c, "g4"),
        -1,
        "the refused commit stored nothing"
    );
    assert_eq!(join(&mut c, "g5"), codes::GROUP_MAX_SIZE_REACHED);
    let (code, message) = consumer_join(&mut c, "g6");
    assert_eq!(code, codes::GROUP_MAX_SIZE_REACHED);
    assert!(message.contains("groups_per_shard_max"), "{message}");
    assert_eq!(listed(&mut c), ["g1", "g2", "g3"]);

    // Existing groups are served as ever: commits, and a member joining
    // the (empty, commit-only) group g1.
    assert_eq!(commit(&mut c, "g2", 20), ec::NONE);
    assert_eq!(committed(&mut c, "g2"), 20);
    assert_eq!(join(&mut c, "g1"), codes::MEMBER_ID_REQUIRED);

    // Deleting an empty group makes room for a new one.
    let resp: DeleteGroupsResponse = c.request(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![group("g3")]),
    );
    assert_eq!(resp.results[0].error_code, ec::NONE);
    let (code, message) = consumer_join(&mut c, "g6");
    assert_eq!(code, ec::NONE, "{message}");
    assert_eq!(listed(&mut c), ["g1", "g2", "g6"]);
    assert_eq!(commit(&mut c, "g4", 7), codes::GROUP_MAX_SIZE_REACHED);
    server.stop();
}
