//! Rebuilding a coordinator from its offsets log: everything appended,
//! loaded in order, gives back the groups and offsets; so does the last
//! compacting snapshot and what follows it.

mod common;

use std::collections::BTreeMap;

use common::*;
use corelog_coordination::records::{GroupValue, RecordValue};
use corelog_coordination::*;

fn sorted_list(s: &mut Sim) -> Vec<ListedGroup> {
    let mut v = s.list();
    v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    v
}

/// What a client can see of every group: list, describe, consumer
/// describe and the committed offsets.
fn observe(s: &mut Sim) -> String {
    let mut out = String::new();
    for g in sorted_list(s) {
        out.push_str(&format!("{g:?}\n"));
        match g.group_type {
            GroupType::Classic => out.push_str(&format!("{:?}\n", s.describe(&g.group_id))),
            GroupType::Consumer => {
                out.push_str(&format!("{:?}\n", s.consumer_describe(&g.group_id)))
            }
        }
        out.push_str(&format!("{:?}\n", s.offsets(&g.group_id)));
    }
    out
}

fn recovered(s: &Sim, records: &[corelog_coordination::records::LogRecord]) -> Sim {
    let c = replay(s.c.config().clone(), records, &topics_view(TOPICS), s.now);
    Sim::from_coordinator(c, s.now)
}

const TOPICS: &[(&str, u32)] = &[("t", 4), ("u", 2)];

/// A bit of everything: a stable classic group with offsets, an emptied
/// one, a simple group, a deleted group and a KIP-848 group.
fn scenario(s: &mut Sim) -> (Vec<String>, i32, String, i32) {
    s.set_topics(TOPICS);
    let (ids, generation) = s.stable_group("stable", 2);
    let _ = s.commit_now("stable", generation, &ids[0], &[("t", 0, 10), ("t", 1, 11)]);
    let _ = s.commit_now("stable", generation, &ids[1], &[("t", 1, 12)]);

    let (e, eg) = s.stable_group("emptied", 1);
    let _ = s.commit_now("emptied", eg, &e[0], &[("u", 0, 5)]);
    let _ = s.leave("emptied", &[(&e[0], None)]);

    let _ = s.commit_now("simple", -1, "", &[("u", 1, 77)]);
    let _ = s.commit_now("gone", -1, "", &[("u", 1, 1)]);
    let del = s.send(Request::DeleteGroups(vec!["gone".into()]));
    assert!(s.take(del).is_some());

    let k = s.consumer_heartbeat(consumer_join("kip848", "", &["t", "u"]));
    assert_eq!(k.error, codes::NONE);
    let owned = k.assignment.clone().unwrap();
    let again = s.consumer_heartbeat(consumer_hb("kip848", &k.member_id, k.member_epoch, &owned));
    assert_eq!(again.error, codes::NONE);
    let _ = s.commit_now("kip848", k.member_epoch, &k.member_id, &[("t", 2, 3)]);
    (ids, generation, k.member_id, k.member_epoch)
}

#[test]
fn coordinator_rebuilt_from_the_log_has_the_same_groups_members_and_offsets() {
    let mut s = Sim::new(config());
    let _ = scenario(&mut s);
    let before = observe(&mut s);
    let mut r = recovered(&s, &s.records());
    assert_eq!(observe(&mut r), before);
    assert_eq!(live_state(&r.c), live_state(&s.c));
    assert_eq!(r.describe("stable").state, "Stable");
    assert_eq!(r.describe("gone").state, "Dead");
    assert!(r.offsets("gone").is_empty());
    assert_eq!(
        r.offsets("stable"),
        BTreeMap::from([
            (TopicPartition::new("t", 0), 10),
            (TopicPartition::new("t", 1), 12)
        ])
    );
}

#[test]
fn members_of_a_recovered_group_keep_their_assignment_if_they_heartbeat_and_expire_if_not() {
    let mut s = Sim::new(config());
    let (ids, generation, k, k_epoch) = scenario(&mut s);
    let mut r = recovered(&s, &s.records());
    let t0 = r.now;
    let (a, b) = (ids[0].clone(), ids[1].clone());

    // The members' sessions start afresh at the load.
    r.advance(SESSION_MS as i64 - 1_000);
    assert_eq!(r.heartbeat("stable", generation, &a), codes::NONE);
    let x = r.sync("stable", generation, &a, &[]);
    assert_eq!(&r.synced(x).assignment[..], &assignment(0)[..]);
    // b never comes back.
    r.advance_to(t0 + SESSION_MS as i64);
    assert_eq!(r.state("stable"), "PreparingRebalance");
    assert_eq!(
        r.heartbeat("stable", generation, &a),
        codes::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        r.heartbeat("stable", generation, &b),
        codes::UNKNOWN_MEMBER_ID
    );
    let ra = r.join_now(join_req("stable", &a));
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(ra.members.len(), 1);

    // The KIP-848 member's session too.
    let owned = r
        .consumer_describe("kip848")
        .members
        .into_iter()
        .next()
        .unwrap()
        .assignment;
    assert_eq!(count(&owned), 6);
    let hb = r.consumer_heartbeat(consumer_hb("kip848", &k, k_epoch, &owned));
    assert_eq!(hb.error, codes::NONE);
    r.advance(r.c.config().consumer_session_timeout_ms as i64);
    let d = r.consumer_describe("kip848");
    assert!(d.members.is_empty(), "expired: {d:?}");
    assert_eq!(d.state, "Empty");
}

#[test]
fn stable_group_recovered_mid_rebalance_comes_back_as_last_written() {
    // A rebalance in progress is not written: the group comes back as of
    // its last completed generation.
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let _ = s.join(join_req("g", "").client("new"));
    let _ = s.join(join_req("g", &ids[0]));
    assert_eq!(s.state("g"), "PreparingRebalance");
    let mut r = recovered(&s, &s.records());
    let d = r.describe("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members.len(), 2);
    assert_eq!(r.heartbeat("g", generation, &ids[1]), codes::NONE);
}

// ----------------------------------------------------------- snapshots --

fn tiny_snapshots() -> CoordinatorConfig {
    CoordinatorConfig {
        snapshot_min_bytes: 1,
        ..config()
    }
}

#[test]
fn the_last_snapshot_and_what_follows_rebuild_the_same_state_as_the_whole_log() {
    let mut s = Sim::new(tiny_snapshots());
    let (ids, generation, _, _) = scenario(&mut s);
    for i in 0..50 {
        let _ = s.commit_now("stable", generation, &ids[0], &[("t", (i % 3) as i32, i)]);
        let _ = s.commit_now("simple", -1, "", &[("u", 1, 100 + i)]);
    }
    let snapshots = s.log.iter().filter(|a| a.compacts).count();
    assert!(snapshots > 0, "a tiny snapshot_min_bytes forces snapshots");
    let last = s.log.iter().rposition(|a| a.compacts).unwrap();
    assert!(
        s.log[last].records.iter().all(|r| r.value.is_some()),
        "a snapshot holds no tombstones"
    );

    let full = recovered(&s, &s.records());
    let mut compacted = recovered(&s, &since_last_snapshot(&s.log));
    assert_eq!(live_state(&compacted.c), live_state(&full.c));
    assert_eq!(live_state(&compacted.c), live_state(&s.c));
    let expected = observe(&mut s);
    assert_eq!(observe(&mut compacted), expected);

    // The snapshot alone, when nothing followed it.
    let only = &s.log[last].records;
    if last == s.log.len() - 1 {
        let mut alone = recovered(&s, only);
        assert_eq!(observe(&mut alone), expected);
    }
}

#[test]
fn snapshot_taken_as_the_last_append_alone_rebuilds_the_state() {
    let mut s = Sim::new(tiny_snapshots());
    let (ids, generation) = s.stable_group("g", 1);
    // Commit until the last append of a step is a snapshot.
    let mut i = 0;
    loop {
        let _ = s.commit_now("g", generation, &ids[0], &[("t", 0, i)]);
        i += 1;
        if s.log.last().unwrap().compacts {
            break;
        }
        assert!(i < 1_000, "no snapshot after {i} commits");
    }
    let snapshot = s.log.last().unwrap().records.clone();
    let mut alone = recovered(&s, &snapshot);
    assert_eq!(live_state(&alone.c), live_state(&s.c));
    assert_eq!(
        alone.offsets("g"),
        BTreeMap::from([(TopicPartition::new("t", 0), i - 1)])
    );
    assert_eq!(alone.describe("g"), s.describe("g"));
    assert!(snapshot.iter().any(|r| matches!(
        &r.value,
        Some(RecordValue::Group(GroupValue::Classic(g))) if g.generation == generation
    )));
}

#[test]
fn replaying_from_the_last_snapshot_matches_the_whole_log_under_random_traffic_with_slow_appends() {
    for seed in 0..60 {
        let mut rng = Rng::new(seed);
        let mut s = Sim::with_seed(
            CoordinatorConfig {
                snapshot_min_bytes: 0,
                ..config()
            },
            seed,
        );
        s.auto_ack = false;
        let groups = ["g1", "g2", "g3"];
        let mut member: Option<(String, i32)> = None;
        for _ in 0..200 {
            let g = groups[rng.below(3) as usize];
            match rng.below(10) {
                0..=3 => {
                    let p = rng.below(4) as i32;
                    let _ = s.commit(g, -1, "", &[("t", p, rng.below(1000) as i64)]);
                }
                4 => {
                    let p = rng.below(4) as i32;
                    let _ = s.send(Request::OffsetDelete(OffsetDelete {
                        group_id: g.into(),
                        partitions: vec![TopicPartition::new("t", p)],
                    }));
                }
                5 => {
                    let _ = s.send(Request::DeleteGroups(vec![g.into()]));
                }
                6 => match member.take() {
                    None => {
                        let j = s.join(join_req("c", ""));
                        if let Some(Response::Join(r)) = s.take(j) {
                            if r.error == codes::NONE {
                                let me = r.member_id.clone();
                                let _ = s.sync("c", r.generation_id, &me, &[(&me, b"x")]);
                                member = Some((me, r.generation_id));
                            }
                        }
                    }
                    Some((me, _)) => {
                        let _ = s.send(Request::Leave(LeaveGroup {
                            group_id: "c".into(),
                            members: vec![LeavingMember {
                                member_id: me,
                                group_instance_id: None,
                            }],
                        }));
                    }
                },
                7 => {
                    let n = s.unacked.len();
                    for _ in 0..rng.below(n as u64 + 1) {
                        s.ack_one();
                    }
                }
                _ => {
                    let ms = rng.below(400_000) as i64;
                    s.advance(ms);
                }
            }
        }
        s.ack_all();
        let whole = fold(&s.records());
        let compacted = fold(&since_last_snapshot(&s.log));
        assert!(
            compacted == whole,
            "seed {seed}: the snapshot differs: {:#?}",
            diff(&compacted, &whole)
        );
        let memory = live_state(&s.c);
        assert!(
            memory == whole,
            "seed {seed}: memory differs from the log: {:#?}",
            diff(&memory, &whole)
        );
    }
}
