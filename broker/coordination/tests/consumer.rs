//! KIP-848 consumer groups: ConsumerGroupHeartbeat with member epochs,
//! revocation before reassignment, the uniform and range assignors, and a
//! seeded simulation checking that no partition ever has two owners.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use corelog_coordination::records::{ConsumerSnapshot, GroupValue, RecordKey, RecordValue};
use corelog_coordination::*;

fn t(p: &[i32]) -> Assignment {
    Assignment::from([(topic_id("t"), p.to_vec())])
}

fn sim(partitions: u32) -> Sim {
    let mut s = Sim::new(config());
    s.set_topics(&[("t", partitions), ("u", 3)]);
    s
}

/// The group as last written: each member's assigned and revoking
/// partitions (what the coordinator considers owned).
fn written(s: &Sim, group: &str) -> Option<ConsumerSnapshot> {
    s.c.live_records()
        .into_iter()
        .find_map(|r| match (r.key, r.value) {
            (RecordKey::Group { group: g }, Some(RecordValue::Group(GroupValue::Consumer(c))))
                if g == group =>
            {
                Some(c)
            }
            _ => None,
        })
}

/// No partition is held (assigned or being revoked) by two members.
fn assert_single_owner(s: &Sim, group: &str) {
    let Some(g) = written(s, group) else {
        return;
    };
    let mut seen: BTreeMap<(uuid::Uuid, i32), String> = BTreeMap::new();
    for m in &g.members {
        assert!(
            pairs(&m.assigned).is_disjoint(&pairs(&m.revoking)),
            "{} both owns and revokes a partition",
            m.member_id
        );
        for tp in pairs(&m.assigned).into_iter().chain(pairs(&m.revoking)) {
            if let Some(other) = seen.insert(tp, m.member_id.clone()) {
                panic!(
                    "partition {tp:?} held by {other} and {}: {g:#?}",
                    m.member_id
                );
            }
        }
    }
}

fn join(s: &mut Sim, member: &str, topics: &[&str]) -> ConsumerHeartbeatResult {
    let r = s.consumer_heartbeat(consumer_join("g", member, topics));
    assert_eq!(r.error, codes::NONE, "{r:?}");
    assert_single_owner(s, "g");
    r
}

fn hb(s: &mut Sim, member: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeatResult {
    let r = s.consumer_heartbeat(consumer_hb("g", member, epoch, owned));
    assert_single_owner(s, "g");
    r
}

// ---------------------------------------------------------------- joins --

#[test]
fn a_member_past_members_max_is_refused_naming_the_setting() {
    let mut s = Sim::new(CoordinatorConfig {
        members_max: 2,
        ..config()
    });
    s.set_topics(&[("t", 4)]);
    join(&mut s, "m1", &["t"]);
    join(&mut s, "m2", &["t"]);
    let r = s.consumer_heartbeat(consumer_join("g", "m3", &["t"]));
    assert_eq!(r.error, codes::GROUP_MAX_SIZE_REACHED);
    let msg = r.error_message.unwrap_or_default();
    assert!(
        msg.contains("groups.members_max (group.max.size) is 2"),
        "{msg}"
    );
    // A member already in the group may join again.
    join(&mut s, "m2", &["t"]);
}

#[test]
fn first_member_joining_gets_a_member_id_epoch_1_and_every_partition() {
    let mut s = sim(4);
    let r = join(&mut s, "", &["t"]);
    assert!(
        !r.member_id.is_empty(),
        "v0: the coordinator names the member"
    );
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(r.assignment, Some(t(&[0, 1, 2, 3])));

    let again = hb(&mut s, &r.member_id, 1, &t(&[0, 1, 2, 3]));
    assert_eq!(again.error, codes::NONE);
    assert_eq!(again.member_epoch, 1);
    assert_eq!(again.assignment, None, "unchanged: not sent again");

    let d = s.consumer_describe("g");
    assert_eq!(d.state, "Stable");
    assert_eq!((d.group_epoch, d.assignment_epoch), (1, 1));
    assert_eq!(d.assignor, "uniform");
    assert_eq!(d.members[0].member_id, r.member_id);
    assert_eq!(d.members[0].assignment, t(&[0, 1, 2, 3]));
}

#[test]
fn client_chosen_member_id_is_kept() {
    let mut s = sim(2);
    let r = join(&mut s, "my-id", &["t"]);
    assert_eq!(r.member_id, "my-id");
}

#[test]
fn second_member_gets_partitions_only_after_the_first_confirms_it_revoked_them() {
    let mut s = sim(4);
    let a = join(&mut s, "a", &["t"]);
    assert_eq!(a.assignment, Some(t(&[0, 1, 2, 3])));

    let b = join(&mut s, "b", &["t"]);
    assert_eq!(b.member_epoch, 2, "the group epoch went up");
    assert_eq!(b.assignment.map(|a| count(&a)), Some(0), "nothing free yet");
    let d = s.consumer_describe("g");
    assert_eq!(d.group_epoch, 2);
    assert_eq!(d.state, "Reconciling");
    let target_b = d.members.iter().find(|m| m.member_id == "b").unwrap();
    assert_eq!(count(&target_b.target_assignment), 2);

    // a is asked to let go of two partitions; its epoch stays.
    let ra = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3]));
    assert_eq!(ra.error, codes::NONE);
    assert_eq!(ra.member_epoch, 1);
    let kept = ra.assignment.clone().expect("a new, smaller assignment");
    assert_eq!(count(&kept), 2);
    let revoked: BTreeSet<_> = pairs(&t(&[0, 1, 2, 3]))
        .difference(&pairs(&kept))
        .copied()
        .collect();

    // b gets none of them while a still owns them.
    let rb = hb(&mut s, "b", 2, &t(&[]));
    assert_eq!(rb.error, codes::NONE);
    assert!(rb.assignment.is_none_or(|a| count(&a) == 0));
    // a still lists them: they stay a's.
    let ra = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3]));
    assert_eq!(ra.member_epoch, 1);
    let rb = hb(&mut s, "b", 2, &t(&[]));
    assert!(rb.assignment.is_none_or(|a| count(&a) == 0));

    // a confirms: it reaches the new epoch.
    let ra = hb(&mut s, "a", 1, &kept);
    assert_eq!(ra.error, codes::NONE);
    assert_eq!(ra.member_epoch, 2);
    // Now b gets them.
    let rb = hb(&mut s, "b", 2, &t(&[]));
    assert_eq!(rb.member_epoch, 2);
    let got = rb.assignment.expect("the released partitions");
    assert_eq!(pairs(&got), revoked);
    let rb = hb(&mut s, "b", 2, &got);
    assert_eq!(rb.assignment, None);
    assert_eq!(s.consumer_describe("g").state, "Stable");
}

#[test]
fn lost_revocation_reply_is_repeated_when_the_member_sends_a_full_heartbeat() {
    // Kafka's consumer sends every field after an error (a timed-out
    // heartbeat); the coordinator answers a full request with the whole
    // assignment, so a lost revocation does not cost the member its
    // partitions at the rebalance timeout.
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let _ = join(&mut s, "b", &["t"]);
    let lost = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3]));
    let kept = lost.assignment.expect("revocation asked");
    let mut full = consumer_hb("g", "a", 1, &t(&[0, 1, 2, 3]));
    full.rebalance_timeout_ms = REBALANCE_MS;
    full.subscribed_topic_names = Some(vec!["t".into()]);
    let again = s.consumer_heartbeat(full);
    assert_eq!(again.error, codes::NONE);
    assert_eq!(again.member_epoch, 1);
    assert_eq!(again.assignment, Some(kept.clone()), "the answer repeated");
    assert_eq!(hb(&mut s, "a", 1, &kept).member_epoch, 2);
    assert_eq!(count(&hb(&mut s, "b", 2, &t(&[])).assignment.unwrap()), 2);
}

#[test]
fn member_that_does_not_revoke_within_its_rebalance_timeout_is_removed_and_its_partitions_move() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let _ = join(&mut s, "b", &["t"]);
    let t0 = s.now;
    let ra = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3]));
    assert!(ra.assignment.is_some(), "revocation asked");
    // a keeps heartbeating but never lets go.
    let mut now = t0;
    while now + 5_000 < t0 + REBALANCE_MS as i64 {
        now += 5_000;
        s.advance_to(now);
        assert_eq!(hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).error, codes::NONE);
        let rb = hb(&mut s, "b", 2, &t(&[]));
        assert!(rb.assignment.is_none_or(|a| count(&a) == 0));
    }
    s.advance_to(t0 + REBALANCE_MS as i64);
    assert_single_owner(&s, "g");
    assert_eq!(
        hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).error,
        codes::UNKNOWN_MEMBER_ID
    );
    let rb = hb(&mut s, "b", 2, &t(&[]));
    assert_eq!(rb.assignment, Some(t(&[0, 1, 2, 3])));
    assert_eq!(rb.member_epoch, 3);
}

#[test]
fn member_leaving_with_epoch_minus_one_frees_its_partitions_for_the_others() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let _ = join(&mut s, "b", &["t"]);
    let kept = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).assignment.unwrap();
    assert_eq!(hb(&mut s, "a", 1, &kept).member_epoch, 2);
    let b_owned = hb(&mut s, "b", 2, &t(&[])).assignment.unwrap();
    assert_eq!(count(&b_owned), 2);

    let left = hb(&mut s, "b", -1, &b_owned);
    assert_eq!(left.error, codes::NONE);
    assert_eq!(left.member_epoch, -1);
    let ra = hb(&mut s, "a", 2, &kept);
    assert_eq!(ra.member_epoch, 3);
    assert_eq!(ra.assignment, Some(t(&[0, 1, 2, 3])));
    assert_eq!(s.consumer_describe("g").members.len(), 1);
    assert_eq!(
        hb(&mut s, "b", 2, &t(&[])).error,
        codes::UNKNOWN_MEMBER_ID,
        "gone"
    );
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let left = hb(&mut s, "a", -1, &t(&[0, 1, 2, 3]));
    assert_eq!(left.error, codes::NONE);
    let d = s.consumer_describe("g");
    assert_eq!(d.state, "Empty");
    assert!(d.members.is_empty());
}

// --------------------------------------------------------------- errors --

#[test]
fn heartbeat_with_an_epoch_ahead_of_the_members_is_fenced_member_epoch() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let r = hb(&mut s, "a", 5, &t(&[0, 1, 2, 3]));
    assert_eq!(r.error, codes::FENCED_MEMBER_EPOCH);
}

#[test]
fn heartbeat_with_the_previous_epoch_is_accepted_only_while_owning_no_more_than_assigned() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let _ = join(&mut s, "b", &["t"]);
    let kept = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).assignment.unwrap();
    assert_eq!(hb(&mut s, "a", 1, &kept).member_epoch, 2);
    // a missed that answer: it comes back with epoch 1 and what it kept.
    let again = hb(&mut s, "a", 1, &kept);
    assert_eq!(again.error, codes::NONE);
    assert_eq!(again.member_epoch, 2);
    assert_eq!(again.assignment, Some(kept.clone()), "the answer repeated");
    // With epoch 1 but claiming partitions it no longer has: fenced.
    let r = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3]));
    assert_eq!(r.error, codes::FENCED_MEMBER_EPOCH);
}

#[test]
fn heartbeat_from_an_unknown_member_is_unknown_member_id() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    assert_eq!(
        hb(&mut s, "ghost", 3, &t(&[])).error,
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        hb(&mut s, "ghost", -1, &t(&[])).error,
        codes::UNKNOWN_MEMBER_ID
    );
    let r = s.consumer_heartbeat(consumer_hb("nope", "ghost", 3, &t(&[])));
    assert_eq!(r.error, codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn member_that_stops_heartbeating_is_removed_after_the_session_timeout() {
    let mut s = sim(4);
    let session = s.c.config().consumer_session_timeout_ms as i64;
    let _ = join(&mut s, "a", &["t"]);
    let _ = join(&mut s, "b", &["t"]);
    let t0 = s.now;
    let kept = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).assignment.unwrap();
    assert_eq!(hb(&mut s, "a", 1, &kept).member_epoch, 2);
    // b never heartbeats again; a does every 5 s.
    let mut owned = kept;
    let mut epoch = 2;
    while s.now + 5_000 < t0 + session {
        s.advance(5_000);
        let r = hb(&mut s, "a", epoch, &owned);
        assert_eq!(r.error, codes::NONE);
        epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            owned = a;
        }
    }
    assert_eq!(s.consumer_describe("g").members.len(), 2);
    s.advance_to(t0 + session);
    assert_eq!(s.consumer_describe("g").members.len(), 1);
    let r = hb(&mut s, "a", epoch, &owned);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(r.assignment, Some(t(&[0, 1, 2, 3])));
}

#[test]
fn unsupported_assignor_is_rejected_without_creating_a_group() {
    let mut s = sim(4);
    let mut j = consumer_join("g", "", &["t"]);
    j.server_assignor = Some("sticky".into());
    let r = s.consumer_heartbeat(j);
    assert_eq!(r.error, codes::UNSUPPORTED_ASSIGNOR);
    assert!(s.list().is_empty(), "{:?}", s.list());
    assert!(s.log.is_empty());
}

#[test]
fn rejected_join_leaves_a_simple_groups_offsets_and_type_alone() {
    let mut s = sim(4);
    let _ = s.commit_now("g", -1, "", &[("t", 0, 5)]);
    let mut j = consumer_join("g", "", &["t"]);
    j.server_assignor = Some("sticky".into());
    assert_eq!(s.consumer_heartbeat(j).error, codes::UNSUPPORTED_ASSIGNOR);
    let mut j = consumer_join("g", "", &["t"]);
    j.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        s.consumer_heartbeat(j).error,
        codes::INVALID_REGULAR_EXPRESSION
    );
    let listed = s.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_type, GroupType::Classic);
    assert_eq!(s.offsets("g").len(), 1);
}

#[test]
fn join_without_subscriptions_is_invalid_request_and_creates_no_group() {
    let mut s = sim(4);
    let mut j = consumer_join("g", "", &[]);
    j.subscribed_topic_names = None;
    let r = s.consumer_heartbeat(j);
    assert_eq!(r.error, codes::INVALID_REQUEST);
    assert!(s.list().is_empty(), "{:?}", s.list());
}

#[test]
fn range_assignor_is_used_when_the_members_ask_for_it() {
    let mut s = sim(4);
    let mut ja = consumer_join("g", "a", &["t"]);
    ja.server_assignor = Some("range".into());
    let ra = s.consumer_heartbeat(ja);
    assert_eq!(ra.error, codes::NONE);
    let mut jb = consumer_join("g", "b", &["t"]);
    jb.server_assignor = Some("range".into());
    let _ = s.consumer_heartbeat(jb);
    let d = s.consumer_describe("g");
    assert_eq!(d.assignor, "range");
    let targets: BTreeMap<String, Assignment> = d
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.target_assignment.clone()))
        .collect();
    assert_eq!(targets["a"], t(&[0, 1]));
    assert_eq!(targets["b"], t(&[2, 3]));
    // And the members get there.
    let kept = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).assignment.unwrap();
    assert_eq!(kept, t(&[0, 1]));
    assert_eq!(hb(&mut s, "a", 1, &kept).member_epoch, 2);
    assert_eq!(hb(&mut s, "b", 2, &t(&[])).assignment, Some(t(&[2, 3])));
}

#[test]
fn members_subscribe_by_regex_and_get_only_matching_topics() {
    let mut s = sim(2);
    let mut j = consumer_join("g", "a", &[]);
    j.subscribed_topic_names = Some(vec![]);
    j.subscribed_topic_regex = Some("u|nothing".into());
    let r = s.consumer_heartbeat(j);
    assert_eq!(r.error, codes::NONE);
    assert_eq!(
        r.assignment,
        Some(Assignment::from([(topic_id("u"), vec![0, 1, 2])]))
    );
}

#[test]
fn new_partitions_of_a_subscribed_topic_are_assigned_on_the_next_heartbeat() {
    let mut s = sim(2);
    let a = join(&mut s, "a", &["t"]);
    assert_eq!(a.assignment, Some(t(&[0, 1])));
    s.set_topics(&[("t", 3), ("u", 3)]);
    let r = hb(&mut s, "a", 1, &t(&[0, 1]));
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.assignment, Some(t(&[0, 1, 2])));
}

#[test]
fn classic_join_to_a_consumer_group_and_consumer_heartbeat_to_a_classic_group_are_refused() {
    let mut s = sim(2);
    let _ = join(&mut s, "a", &["t"]);
    let r = s.join_now(join_req("g", ""));
    assert_eq!(r.error, codes::INCONSISTENT_GROUP_PROTOCOL);
    let _ = s.stable_group("classic", 1);
    let r = s.consumer_heartbeat(consumer_join("classic", "", &["t"]));
    assert_eq!(r.error, codes::GROUP_ID_NOT_FOUND);
}

// -------------------------------------------------------------- offsets --

#[test]
fn offset_commit_from_a_member_with_a_stale_epoch_is_stale_member_epoch() {
    let mut s = sim(4);
    let _ = join(&mut s, "a", &["t"]);
    let _ = join(&mut s, "b", &["t"]);
    let kept = hb(&mut s, "a", 1, &t(&[0, 1, 2, 3])).assignment.unwrap();
    assert_eq!(hb(&mut s, "a", 1, &kept).member_epoch, 2);

    assert_eq!(
        s.commit_now("g", 1, "a", &[("t", 0, 5)]),
        vec![codes::STALE_MEMBER_EPOCH]
    );
    assert_eq!(
        s.commit_now("g", 3, "a", &[("t", 0, 5)]),
        vec![codes::FENCED_MEMBER_EPOCH]
    );
    assert_eq!(
        s.commit_now("g", 2, "ghost", &[("t", 0, 5)]),
        vec![codes::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        s.commit_now("g", -1, "", &[("t", 0, 5)]),
        vec![codes::UNKNOWN_MEMBER_ID],
        "a simple commit into a group with members"
    );
    assert!(s.offsets("g").is_empty());
    assert_eq!(s.commit_now("g", 2, "a", &[("t", 0, 5)]), vec![codes::NONE]);
    assert_eq!(s.offsets("g").len(), 1);

    // OffsetFetch v9 checks the member's epoch too.
    let r = s.call(Request::OffsetFetch(OffsetFetch {
        group_id: "g".into(),
        partitions: None,
        member: Some(("a".into(), 1)),
        require_stable: false,
    }));
    assert!(matches!(r, Response::OffsetFetch(ref f) if f.error == codes::STALE_MEMBER_EPOCH));
    let r = s.call(Request::OffsetFetch(OffsetFetch {
        group_id: "g".into(),
        partitions: None,
        member: Some(("a".into(), 2)),
        require_stable: false,
    }));
    assert!(
        matches!(r, Response::OffsetFetch(ref f) if f.error == codes::NONE && f.offsets.len() == 1)
    );
}

#[test]
fn offset_delete_keeps_topics_a_consumer_group_subscribes_to() {
    let mut s = sim(2);
    let a = join(&mut s, "a", &["t"]);
    let _ = s.commit_now("g", a.member_epoch, "a", &[("t", 0, 1), ("u", 0, 2)]);
    let id = s.send(Request::OffsetDelete(OffsetDelete {
        group_id: "g".into(),
        partitions: vec![TopicPartition::new("t", 0), TopicPartition::new("u", 0)],
    }));
    match s.take(id) {
        Some(Response::OffsetDelete(r)) => assert_eq!(
            r.partitions,
            vec![
                (
                    TopicPartition::new("t", 0),
                    codes::GROUP_SUBSCRIBED_TO_TOPIC
                ),
                (TopicPartition::new("u", 0), codes::NONE),
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn delete_groups_refuses_a_consumer_group_with_members() {
    let mut s = sim(2);
    let _ = join(&mut s, "a", &["t"]);
    let id = s.send(Request::DeleteGroups(vec!["g".into()]));
    assert_eq!(
        s.take(id),
        Some(Response::DeleteGroups(vec![(
            "g".into(),
            codes::NON_EMPTY_GROUP
        )]))
    );
    let _ = hb(&mut s, "a", -1, &t(&[0, 1]));
    let id = s.send(Request::DeleteGroups(vec!["g".into()]));
    assert_eq!(
        s.take(id),
        Some(Response::DeleteGroups(vec![("g".into(), codes::NONE)]))
    );
    assert_eq!(s.consumer_describe("g").error, codes::GROUP_ID_NOT_FOUND);
}

// ------------------------------------------------------------ simulation --

/// A consumer as the simulation models it: it adopts each assignment it
/// is sent at once (revoking what is not in it), and starts over when
/// fenced.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
    topics: Vec<String>,
    /// After a lost reply the client sends a full heartbeat (every field),
    /// as Kafka's consumer does after an error.
    full: bool,
}

const SUBSCRIPTIONS: &[&[&str]] = &[&["t"], &["t", "u"], &["u"]];

/// Checks the members the coordinator knows against what their clients
/// believe they own: each client owns only what the coordinator counts
/// as its (assigned or still being revoked), so no two clients share a
/// partition.
fn assert_clients_agree(s: &Sim, clients: &[Client], seed: u64) {
    assert_single_owner(s, "g");
    let Some(g) = written(s, "g") else {
        return;
    };
    let mut seen = BTreeSet::new();
    for c in clients {
        let Some(m) = g.members.iter().find(|m| m.member_id == c.id) else {
            continue;
        };
        let held: BTreeSet<_> = pairs(&m.assigned)
            .union(&pairs(&m.revoking))
            .copied()
            .collect();
        for tp in pairs(&c.owned) {
            assert!(
                held.contains(&tp),
                "seed {seed}: client {} consumes {tp:?} the coordinator does not count as its",
                c.id
            );
            assert!(
                seen.insert(tp),
                "seed {seed}: {tp:?} consumed by two clients"
            );
        }
    }
}

fn send_heartbeat(s: &mut Sim, c: &mut Client, subscribe: Option<Vec<String>>, lose_reply: bool) {
    let mut h = if c.epoch == 0 {
        consumer_join("g", &c.id, &[])
    } else {
        consumer_hb("g", &c.id, c.epoch, &c.owned)
    };
    let changed = subscribe.is_some();
    if let Some(topics) = subscribe {
        c.topics = topics;
    }
    if c.epoch == 0 || c.full || changed {
        h.subscribed_topic_names = Some(c.topics.clone());
    }
    if c.full {
        h.rebalance_timeout_ms = REBALANCE_MS;
    }
    let r = s.consumer_heartbeat(h);
    if lose_reply {
        c.full = true;
        return;
    }
    c.full = false;
    match r.error {
        codes::NONE => {
            c.id = r.member_id;
            c.epoch = r.member_epoch;
            if let Some(a) = r.assignment {
                c.owned = a;
            }
        }
        codes::FENCED_MEMBER_EPOCH | codes::UNKNOWN_MEMBER_ID => {
            // The client drops everything and joins again.
            c.epoch = 0;
            c.owned = Assignment::new();
        }
        other => panic!("unexpected heartbeat error {other}: {r:?}"),
    }
}

/// Seeds of the simulation: about 0.05 s each in a debug build.
const SEEDS: u64 = 64;

#[test]
fn no_partition_is_ever_owned_by_two_members_in_seeded_random_runs() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let mut s = Sim::with_seed(config(), seed);
        s.set_topics(&[("t", 6), ("u", 3)]);
        let mut clients: Vec<Client> = Vec::new();
        let mut next = 0;
        let mut t_parts = 6u32;
        for _ in 0..300 {
            match rng.below(12) {
                0 | 1 if clients.len() < 6 => {
                    next += 1;
                    let topics = SUBSCRIPTIONS[rng.below(3) as usize]
                        .iter()
                        .map(|t| t.to_string())
                        .collect();
                    // Half the clients let the coordinator name them (v0).
                    let id = if rng.below(2) == 0 {
                        String::new()
                    } else {
                        format!("m{next}")
                    };
                    let mut c = Client {
                        id,
                        epoch: 0,
                        owned: Assignment::new(),
                        topics,
                        full: false,
                    };
                    send_heartbeat(&mut s, &mut c, None, false);
                    clients.push(c);
                }
                2 if !clients.is_empty() => {
                    // A clean leave.
                    let i = rng.below(clients.len() as u64) as usize;
                    let c = clients.remove(i);
                    if c.epoch != 0 {
                        let _ = s.consumer_heartbeat(consumer_hb("g", &c.id, -1, &c.owned));
                    }
                }
                3 if !clients.is_empty() => {
                    // A crash: the client stops, the session must expire.
                    let i = rng.below(clients.len() as u64) as usize;
                    clients.remove(i);
                }
                4 if !clients.is_empty() => {
                    let i = rng.below(clients.len() as u64) as usize;
                    let topics = SUBSCRIPTIONS[rng.below(3) as usize]
                        .iter()
                        .map(|t| t.to_string())
                        .collect();
                    send_heartbeat(&mut s, &mut clients[i], Some(topics), false);
                }
                5 if !clients.is_empty() => {
                    // The reply is lost on the way.
                    let i = rng.below(clients.len() as u64) as usize;
                    send_heartbeat(&mut s, &mut clients[i], None, true);
                }
                6 => {
                    let ms = rng.below(20_000) as i64;
                    s.advance(ms);
                }
                7 => {
                    // Partitions are only ever added to a topic.
                    t_parts = (t_parts + rng.below(2) as u32).min(9);
                    s.set_topics(&[("t", t_parts), ("u", 3)]);
                }
                _ if !clients.is_empty() => {
                    let i = rng.below(clients.len() as u64) as usize;
                    send_heartbeat(&mut s, &mut clients[i], None, false);
                }
                _ => {}
            }
            assert_clients_agree(&s, &clients, seed);
        }

        // Then everyone heartbeats for a while: the group must settle with
        // each subscribed partition owned exactly once.
        // (Longer than a session, so crashed members are gone.)
        for _ in 0..15 {
            s.advance(4_000);
            for c in clients.iter_mut() {
                send_heartbeat(&mut s, c, None, false);
            }
            assert_clients_agree(&s, &clients, seed);
        }
        assert_clients_agree(&s, &clients, seed);
        if clients.is_empty() {
            continue;
        }
        let d = s.consumer_describe("g");
        assert_eq!(d.state, "Stable", "seed {seed}: {d:#?}");
        assert_eq!(d.members.len(), clients.len(), "seed {seed}");
        let wanted: BTreeSet<&str> = clients
            .iter()
            .flat_map(|c| c.topics.iter().map(String::as_str))
            .collect();
        let expected: usize = wanted
            .iter()
            .map(|t| if *t == "t" { t_parts } else { 3 } as usize)
            .sum();
        let owned: usize = clients.iter().map(|c| count(&c.owned)).sum();
        assert_eq!(owned, expected, "seed {seed}: every partition owned once");
        for m in &d.members {
            assert_eq!(m.member_epoch, d.group_epoch, "seed {seed}");
            assert_eq!(m.assignment, m.target_assignment, "seed {seed}");
        }
    }
}
