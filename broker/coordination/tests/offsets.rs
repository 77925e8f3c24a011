//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete,
//! DeleteGroups and offsets retention, with the durability contract
//! (nothing visible before its append completes).

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use corelog_coordination::records::{RecordKey, RecordValue};
use corelog_coordination::*;

fn offset_delete(s: &mut Sim, group: &str, partitions: &[(&str, i32)]) -> OffsetDeleteResult {
    let id = s.send(Request::OffsetDelete(OffsetDelete {
        group_id: group.into(),
        partitions: partitions
            .iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect(),
    }));
    s.ack_all();
    match s.take(id) {
        Some(Response::OffsetDelete(r)) => r,
        other => panic!("expected an offset delete reply, got {other:?}"),
    }
}

fn delete_groups(s: &mut Sim, groups: &[&str]) -> ReplyId {
    s.send(Request::DeleteGroups(
        groups.iter().map(|g| g.to_string()).collect(),
    ))
}

fn offsets_of(pairs: &[(&str, i32, i64)]) -> BTreeMap<TopicPartition, i64> {
    pairs
        .iter()
        .map(|(t, p, o)| (TopicPartition::new(*t, *p), *o))
        .collect()
}

/// Offset keys written by an append: (topic, partition, is a tombstone).
fn offset_keys(a: &Append) -> Vec<(String, i32, bool)> {
    a.records
        .iter()
        .filter_map(|r| match &r.key {
            RecordKey::Offset {
                topic, partition, ..
            } => Some((topic.clone(), *partition, r.value.is_none())),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------- commit --

#[test]
fn simple_commit_to_an_unknown_group_creates_an_empty_group_visible_only_after_the_append() {
    let mut s = Sim::new(config());
    s.auto_ack = false;
    let id = s.commit("g", -1, "", &[("t", 0, 42), ("t", 1, 7)]);
    assert!(!s.has_reply(id), "the commit waits for its append");
    assert!(
        s.offsets("g").is_empty(),
        "not visible before it is durable"
    );
    assert_eq!(s.log.len(), 1);
    let records = &s.log[0].records;
    assert_eq!(
        offset_keys(&s.log[0]),
        vec![("t".to_string(), 0, false), ("t".to_string(), 1, false)]
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(&r.key, RecordKey::Group { group } if group == "g")),
        "the new empty group is written too"
    );

    s.ack_all();
    assert_eq!(s.committed(id), vec![codes::NONE, codes::NONE]);
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 0, 42), ("t", 1, 7)]));
    let d = s.describe("g");
    assert_eq!(d.state, "Empty");
    assert_eq!(d.protocol_type, "");
}

#[test]
fn offset_fetch_of_partitions_never_committed_answers_minus_one() {
    let mut s = Sim::new(config());
    let _ = s.commit_now("g", -1, "", &[("t", 0, 42)]);
    let r = s.call(Request::OffsetFetch(OffsetFetch {
        group_id: "g".into(),
        partitions: Some(vec![
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 1),
        ]),
        member: None,
        require_stable: false,
    }));
    let Response::OffsetFetch(r) = r else {
        panic!("{r:?}")
    };
    assert_eq!(r.error, codes::NONE);
    assert_eq!(
        r.offsets.iter().map(|o| o.offset).collect::<Vec<_>>(),
        vec![42, -1]
    );
    assert!(s.offsets("unknown").is_empty());
}

#[test]
fn commits_from_a_member_are_checked_against_the_generation_and_membership() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let a = ids[0].clone();
    let before = s.log.len();
    assert_eq!(
        s.commit_now("g", generation + 1, &a, &[("t", 0, 1)]),
        vec![codes::ILLEGAL_GENERATION]
    );
    assert_eq!(
        s.commit_now("g", generation - 1, &a, &[("t", 0, 1)]),
        vec![codes::ILLEGAL_GENERATION]
    );
    assert_eq!(
        s.commit_now("g", generation, "ghost", &[("t", 0, 1)]),
        vec![codes::UNKNOWN_MEMBER_ID]
    );
    // A simple commit into a group with members is refused.
    assert_eq!(
        s.commit_now("g", -1, "", &[("t", 0, 1)]),
        vec![codes::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(s.log.len(), before, "nothing written for refused commits");
    assert!(s.offsets("g").is_empty());
    assert_eq!(
        s.commit_now("g", generation, &a, &[("t", 0, 1), ("t", 1, 2)]),
        vec![codes::NONE, codes::NONE]
    );
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 0, 1), ("t", 1, 2)]));
}

#[test]
fn commit_with_a_generation_to_an_unknown_group_is_illegal_generation() {
    let mut s = Sim::new(config());
    assert_eq!(
        s.commit_now("g", 3, "m", &[("t", 0, 1)]),
        vec![codes::ILLEGAL_GENERATION]
    );
    assert!(s.list().is_empty(), "no group is created");
}

#[test]
fn commit_while_the_group_completes_a_rebalance_is_rebalance_in_progress() {
    let mut s = Sim::new(config());
    let (ids, _) = s.stable_group("g", 1);
    let a = ids[0].clone();
    let jb = s.join(join_req("g", "").client("b"));
    let ra = s.join_now(join_req("g", &a));
    let b = s.joined(jb).member_id;
    assert_eq!(s.state("g"), "CompletingRebalance");
    assert_eq!(
        s.commit_now("g", ra.generation_id, &a, &[("t", 0, 1)]),
        vec![codes::REBALANCE_IN_PROGRESS]
    );
    assert_eq!(
        s.commit_now("g", ra.generation_id, &b, &[("t", 0, 1)]),
        vec![codes::REBALANCE_IN_PROGRESS]
    );
    assert_eq!(
        s.commit_now("g", ra.generation_id - 1, &a, &[("t", 0, 1)]),
        vec![codes::ILLEGAL_GENERATION]
    );
    assert!(s.offsets("g").is_empty());
}

#[test]
fn commit_while_the_group_prepares_a_rebalance_is_accepted_for_the_current_generation() {
    // Consumers commit in onPartitionsRevoked, before they rejoin.
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let _ = s.join(join_req("g", "").client("new"));
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(
        s.commit_now("g", generation, &ids[1], &[("t", 3, 30)]),
        vec![codes::NONE]
    );
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 3, 30)]));
}

#[test]
fn commit_with_metadata_over_the_limit_is_refused_for_that_partition_only() {
    let mut s = Sim::new(CoordinatorConfig {
        offset_metadata_bytes_max: 10,
        ..config()
    });
    let id = s.send(Request::OffsetCommit(OffsetCommit {
        group_id: "g".into(),
        generation_id: -1,
        offsets: vec![
            CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: Some("x".repeat(11)),
            },
            CommitPartition {
                topic: "t".into(),
                partition: 1,
                offset: 2,
                leader_epoch: 4,
                metadata: Some("x".repeat(10)),
            },
        ],
        ..Default::default()
    }));
    assert_eq!(
        s.committed(id),
        vec![codes::OFFSET_METADATA_TOO_LARGE, codes::NONE]
    );
    let r = s.call(Request::OffsetFetch(OffsetFetch {
        group_id: "g".into(),
        partitions: None,
        member: None,
        require_stable: false,
    }));
    let Response::OffsetFetch(r) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        r.offsets,
        vec![FetchedOffset {
            topic: "t".into(),
            partition: 1,
            error: codes::NONE,
            offset: 2,
            leader_epoch: 4,
            metadata: Some("x".repeat(10)),
        }]
    );
}

#[test]
fn commit_to_an_empty_group_id_is_invalid_group_id() {
    let mut s = Sim::new(config());
    assert_eq!(
        s.commit_now("", -1, "", &[("t", 0, 1)]),
        vec![codes::INVALID_GROUP_ID]
    );
}

// -------------------------------------------------------- delete groups --

#[test]
fn delete_groups_refuses_a_non_empty_group_and_deletes_an_empty_one_with_tombstones() {
    let mut s = Sim::new(config());
    let _ = s.stable_group("busy", 1);
    let _ = s.commit_now("idle", -1, "", &[("t", 0, 1), ("u", 2, 3)]);
    s.auto_ack = false;
    let id = delete_groups(&mut s, &["busy", "idle", "nope"]);
    assert!(!s.has_reply(id), "the reply waits for the tombstones");
    let last = s.log.last().expect("tombstones appended").clone();
    let mut tombstones = offset_keys(&last);
    tombstones.sort();
    assert_eq!(
        tombstones,
        vec![("t".to_string(), 0, true), ("u".to_string(), 2, true)]
    );
    assert!(last.records.iter().any(|r| {
        matches!(&r.key, RecordKey::Group { group } if group == "idle") && r.value.is_none()
    }));
    s.ack_all();
    match s.take(id) {
        Some(Response::DeleteGroups(v)) => assert_eq!(
            v,
            vec![
                ("busy".to_string(), codes::NON_EMPTY_GROUP),
                ("idle".to_string(), codes::NONE),
                ("nope".to_string(), codes::GROUP_ID_NOT_FOUND),
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert!(s.offsets("idle").is_empty());
    assert_eq!(s.describe("idle").state, "Dead");
    assert_eq!(s.describe("busy").state, "Stable");
    let listed: Vec<String> = s.list().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["busy".to_string()]);
}

#[test]
fn group_deleted_while_a_commit_is_still_being_written_keeps_none_of_its_offsets() {
    let mut s = Sim::new(config());
    let _ = s.commit_now("g", -1, "", &[("t", 0, 1)]);
    s.auto_ack = false;
    let commit = s.commit("g", -1, "", &[("t", 1, 2)]);
    let delete = delete_groups(&mut s, &["g"]);
    s.ack_all();
    assert_eq!(s.committed(commit), vec![codes::NONE]);
    assert!(s.take(delete).is_some());
    assert!(
        s.offsets("g").is_empty(),
        "an offset written before the delete outlived the group"
    );
    let rebuilt = replay(config(), &s.records(), &TopicsView::new(), s.now);
    assert!(rebuilt.live_records().is_empty());
}

// -------------------------------------------------------- offset delete --

#[test]
fn offset_delete_keeps_topics_the_members_subscribe_to_and_deletes_the_others() {
    let mut s = Sim::new(config());
    // Members subscribe to "t" (a real ConsumerProtocolSubscription).
    let (ids, generation) = s.stable_group("g", 2);
    let _ = s.commit_now(
        "g",
        generation,
        &ids[0],
        &[("t", 0, 1), ("t", 1, 2), ("u", 0, 3)],
    );
    let r = offset_delete(&mut s, "g", &[("t", 0), ("u", 0), ("v", 9)]);
    assert_eq!(r.error, codes::NONE);
    assert_eq!(
        r.partitions,
        vec![
            (
                TopicPartition::new("t", 0),
                codes::GROUP_SUBSCRIBED_TO_TOPIC
            ),
            (TopicPartition::new("u", 0), codes::NONE),
            (TopicPartition::new("v", 9), codes::NONE),
        ]
    );
    assert_eq!(
        offset_keys(s.log.last().unwrap()),
        vec![("u".to_string(), 0, true)]
    );
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 0, 1), ("t", 1, 2)]));
}

#[test]
fn offset_delete_on_an_empty_group_deletes_any_topic() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let _ = s.commit_now("g", generation, &ids[0], &[("t", 0, 1)]);
    let _ = s.leave("g", &[(&ids[0], None)]);
    assert_eq!(s.state("g"), "Empty");
    let r = offset_delete(&mut s, "g", &[("t", 0)]);
    assert_eq!(
        r.partitions,
        vec![(TopicPartition::new("t", 0), codes::NONE)]
    );
    assert!(s.offsets("g").is_empty());
}

#[test]
fn offset_delete_on_an_unknown_group_is_group_id_not_found() {
    let mut s = Sim::new(config());
    let r = offset_delete(&mut s, "nope", &[("t", 0)]);
    assert_eq!(r.error, codes::GROUP_ID_NOT_FOUND);
}

#[test]
fn offset_delete_on_a_non_consumer_group_with_members_is_non_empty_group() {
    // Kafka can only tell what a "consumer" protocol group reads.
    let mut s = Sim::new(config());
    let mut j = join_req("g", "").protocols(&[("default", Bytes::from_static(b"opaque"))]);
    j.protocol_type = "connect".into();
    let (ids, generation) = s.stable_group_of("g", vec![j]);
    let _ = s.commit_now("g", generation, &ids[0], &[("t", 0, 1)]);
    let r = offset_delete(&mut s, "g", &[("t", 0)]);
    assert_eq!(r.error, codes::NON_EMPTY_GROUP);
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 0, 1)]));
}

#[test]
fn offset_delete_keeps_every_topic_when_a_subscription_cannot_be_read() {
    // Kafka: a consumer group whose subscriptions it cannot parse counts
    // as subscribed to every topic.
    let mut s = Sim::new(config());
    let j = join_req("g", "").protocols(&[("range", Bytes::from_static(b"\x00"))]);
    let (ids, generation) = s.stable_group_of("g", vec![j]);
    let _ = s.commit_now("g", generation, &ids[0], &[("u", 0, 1)]);
    let r = offset_delete(&mut s, "g", &[("u", 0)]);
    assert_eq!(r.error, codes::NONE);
    assert_eq!(
        r.partitions,
        vec![(
            TopicPartition::new("u", 0),
            codes::GROUP_SUBSCRIBED_TO_TOPIC
        )]
    );
    assert_eq!(s.offsets("g"), offsets_of(&[("u", 0, 1)]));
}

#[test]
fn offset_delete_while_a_commit_of_that_partition_is_being_written_deletes_it() {
    let mut s = Sim::new(config());
    let _ = s.commit_now("g", -1, "", &[("t", 0, 1)]);
    s.auto_ack = false;
    let commit = s.commit("g", -1, "", &[("t", 5, 2)]);
    let del = s.send(Request::OffsetDelete(OffsetDelete {
        group_id: "g".into(),
        partitions: vec![TopicPartition::new("t", 5)],
    }));
    s.ack_all();
    assert_eq!(s.committed(commit), vec![codes::NONE]);
    assert!(s.take(del).is_some());
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 0, 1)]));
}

// ------------------------------------------------------------- retention --

const HOUR: i64 = 3_600_000;

fn retention_config() -> CoordinatorConfig {
    CoordinatorConfig {
        offsets_retention_ms: HOUR,
        ..config()
    }
}

#[test]
fn offsets_of_a_group_empty_for_the_retention_period_expire_at_the_next_check() {
    let mut s = Sim::new(retention_config());
    s.advance(0);
    let (ids, generation) = s.stable_group("g", 1);
    let _ = s.commit_now("g", generation, &ids[0], &[("t", 0, 1), ("t", 1, 2)]);
    s.advance(60_000);
    let _ = s.leave("g", &[(&ids[0], None)]);
    let empty_since = s.now;
    assert_eq!(s.state("g"), "Empty");

    s.advance_to(empty_since + HOUR - 1);
    assert_eq!(s.offsets("g").len(), 2, "kept for the retention period");
    let before = s.log.len();
    s.advance_to(empty_since + HOUR + RETENTION_CHECK_INTERVAL_MS);
    assert!(
        s.offsets("g").is_empty(),
        "expired at the first check after"
    );
    assert_eq!(
        s.describe("g").state,
        "Dead",
        "an empty group without offsets goes"
    );
    let mut tombstones: Vec<(String, i32, bool)> =
        s.log[before..].iter().flat_map(offset_keys).collect();
    tombstones.sort();
    assert_eq!(
        tombstones,
        vec![("t".to_string(), 0, true), ("t".to_string(), 1, true)]
    );
}

#[test]
fn offsets_of_a_group_with_members_do_not_expire() {
    let mut s = Sim::new(retention_config());
    let (ids, generation) = s.stable_group_of(
        "g",
        vec![join_req("g", "").timeouts(1_800_000, REBALANCE_MS)],
    );
    let _ = s.commit_now("g", generation, &ids[0], &[("t", 0, 1)]);
    for _ in 0..12 {
        s.advance(1_700_000);
        assert_eq!(s.heartbeat("g", generation, &ids[0]), codes::NONE);
    }
    assert!(s.now > 5 * HOUR);
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 0, 1)]));
}

#[test]
fn simple_consumer_offsets_expire_a_retention_period_after_their_commit() {
    let mut s = Sim::new(retention_config());
    s.advance(0);
    let _ = s.commit_now("g", -1, "", &[("t", 0, 1)]);
    s.advance(HOUR / 2);
    let _ = s.commit_now("g", -1, "", &[("t", 1, 2)]);
    s.advance_to(HOUR + RETENTION_CHECK_INTERVAL_MS);
    assert_eq!(s.offsets("g"), offsets_of(&[("t", 1, 2)]));
    s.advance_to(HOUR + HOUR / 2 + RETENTION_CHECK_INTERVAL_MS);
    assert!(s.offsets("g").is_empty());
    assert_eq!(s.describe("g").state, "Dead");
}

#[test]
fn offsets_are_only_checked_for_expiry_at_the_check_interval() {
    let mut s = Sim::new(CoordinatorConfig {
        offsets_retention_ms: 1_000,
        ..config()
    });
    s.advance(0);
    let t0 = s.now;
    let _ = s.commit_now("g", -1, "", &[("t", 0, 1)]);
    s.advance_to(t0 + RETENTION_CHECK_INTERVAL_MS - 1);
    assert_eq!(s.offsets("g").len(), 1, "no check before the interval");
    s.advance_to(t0 + RETENTION_CHECK_INTERVAL_MS);
    assert!(s.offsets("g").is_empty());
}

#[test]
fn offset_records_carry_what_was_committed() {
    let mut s = Sim::new(config());
    s.advance_to(1_234);
    let _ = s.commit_now("g", -1, "", &[("t", 0, 99)]);
    let r = s.log[0]
        .records
        .iter()
        .find_map(|r| match &r.value {
            Some(RecordValue::Offset(v)) => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((r.offset, r.commit_ms), (99, 1_234));
}
