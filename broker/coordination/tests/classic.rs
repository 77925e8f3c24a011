//! The classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) driven through every state transition with a simulated
//! clock: Empty, PreparingRebalance, CompletingRebalance, Stable.

mod common;

use bytes::Bytes;
use common::*;
use corelog_coordination::records::{GroupValue, LogRecord, RecordKey, RecordValue};
use corelog_coordination::*;

fn joined_ids(r: &JoinResult) -> Vec<String> {
    r.members.iter().map(|m| m.member_id.clone()).collect()
}

// ------------------------------------------------- KIP-394 member ids --

#[test]
fn first_join_requiring_a_member_id_gets_member_id_required_and_the_rejoin_with_it_is_admitted() {
    let mut s = Sim::new(config());
    let first = s.join_now(join_req("g", "").require_id());
    assert_eq!(first.error, codes::MEMBER_ID_REQUIRED);
    assert!(
        !first.member_id.is_empty(),
        "the coordinator names the member"
    );
    assert_eq!(first.generation_id, -1);
    assert!(
        s.describe("g").members.is_empty(),
        "a pending member is not a member yet"
    );

    let r = s.join_now(join_req("g", &first.member_id).require_id());
    assert_eq!(r.error, codes::NONE);
    assert_eq!(r.member_id, first.member_id);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, first.member_id);
    assert_eq!(
        r.members,
        vec![JoinedMember {
            member_id: first.member_id.clone(),
            group_instance_id: None,
            metadata: subscription(&["t"]),
        }]
    );
}

#[test]
fn pending_member_that_never_comes_back_expires_after_its_session_timeout() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let a = &ids[0];
    let t0 = s.now;
    let pending = s.join_now(join_req("g", "").require_id().client("late"));
    assert_eq!(pending.error, codes::MEMBER_ID_REQUIRED);

    // A rebalance waits for the member id handed out...
    let ja = s.join(join_req("g", a));
    assert_eq!(s.state("g"), "PreparingRebalance");
    s.advance_to(t0 + SESSION_MS as i64 - 1);
    assert!(!s.has_reply(ja), "the join waits for the pending member");

    // ...until the pending member's session runs out.
    s.advance_to(t0 + SESSION_MS as i64);
    let r = s.joined(ja);
    assert_eq!(r.error, codes::NONE);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(joined_ids(&r), vec![a.clone()]);

    // The expired id is no longer accepted.
    let late = s.join_now(join_req("g", &pending.member_id).require_id());
    assert_eq!(late.error, codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn pending_member_leaving_stops_blocking_the_rebalance() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let pending = s.join_now(join_req("g", "").require_id());
    let ja = s.join(join_req("g", &ids[0]));
    assert!(!s.has_reply(ja));
    let r = s.leave("g", &[(&pending.member_id, None)]);
    assert_eq!(r.members[0].2, codes::NONE);
    assert_eq!(s.joined(ja).generation_id, generation + 1);
}

#[test]
fn static_member_needs_no_member_id_round_trip() {
    let mut s = Sim::new(config());
    let r = s.join_now(join_req("g", "").require_id().instance("i1"));
    assert_eq!(r.error, codes::NONE);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.members[0].group_instance_id.as_deref(), Some("i1"));
}

// ------------------------------------------------------ join and sync --

#[test]
fn single_member_leads_syncs_its_assignment_and_the_sync_reply_waits_for_the_group_record() {
    let mut s = Sim::new(config());
    s.auto_ack = false;
    let j = s.join(join_req("g", "").client("solo"));
    let r = s.joined(j);
    assert!(s.log.is_empty(), "nothing is written mid-rebalance");
    assert_eq!(r.error, codes::NONE);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined_ids(&r), vec![r.member_id.clone()]);
    assert_eq!(r.members[0].metadata, subscription(&["t"]));
    assert_eq!(s.state("g"), "CompletingRebalance");

    let me = r.member_id.clone();
    let sy = s.sync("g", 1, &me, &[(&me, b"plan")]);
    assert!(
        !s.has_reply(sy),
        "no sync reply before the append completes"
    );
    assert_eq!(s.log.len(), 1);
    match &s.log[0].records[..] {
        [LogRecord {
            key: RecordKey::Group { group },
            value: Some(RecordValue::Group(GroupValue::Classic(g))),
        }] => {
            assert_eq!(group, "g");
            assert_eq!(g.generation, 1);
            assert_eq!(g.leader.as_deref(), Some(me.as_str()));
            assert_eq!(g.protocol.as_deref(), Some("range"));
            assert_eq!(g.members.len(), 1);
            assert_eq!(g.members[0].member_id, me);
            assert_eq!(&g.members[0].assignment[..], b"plan");
        }
        other => panic!("expected one group record, got {other:?}"),
    }

    s.ack_all();
    let sr = s.synced(sy);
    assert_eq!(sr.error, codes::NONE);
    assert_eq!(&sr.assignment[..], b"plan");
    let d = s.describe("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.protocol, "range");
    assert_eq!(&d.members[0].assignment[..], b"plan");
    assert_eq!(d.members[0].client_id, "solo");
}

#[test]
fn members_joining_within_the_initial_rebalance_delay_end_up_in_one_generation() {
    let mut s = Sim::new(CoordinatorConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    let ja = s.join(join_req("g", "").client("a"));
    s.advance_to(1_000);
    assert!(!s.has_reply(ja));
    let jb = s.join(join_req("g", "").client("b"));
    // Each newcomer extends the wait by the delay.
    s.advance_to(3_999);
    assert!(!s.has_reply(ja) && !s.has_reply(jb));
    s.advance_to(4_000);
    let (ra, rb) = (s.joined(ja), s.joined(jb));
    assert_eq!(ra.generation_id, 1);
    assert_eq!(rb.generation_id, 1);
    assert_eq!(ra.leader, ra.member_id, "the first to join leads");
    assert_eq!(rb.leader, ra.member_id);
    assert_eq!(
        joined_ids(&ra),
        vec![ra.member_id.clone(), rb.member_id.clone()]
    );
    assert!(rb.members.is_empty(), "only the leader gets the members");
}

#[test]
fn initial_rebalance_delay_never_runs_past_the_rebalance_timeout() {
    let mut s = Sim::new(CoordinatorConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    let mut joins = Vec::new();
    // A newcomer every 2 s would extend the delay forever.
    for i in 0..15 {
        s.advance_to(i * 2_000);
        joins.push(s.join(join_req("g", "").client(&format!("c{i}"))));
    }
    s.advance_to(REBALANCE_MS as i64 - 1);
    assert!(!s.has_reply(joins[0]));
    s.advance_to(REBALANCE_MS as i64);
    for j in joins {
        assert_eq!(s.joined(j).generation_id, 1);
    }
}

#[test]
fn second_member_joining_a_stable_group_triggers_rebalance_and_both_get_generation_2() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    assert_eq!(generation, 1);
    let a = ids[0].clone();

    let jb = s.join(join_req("g", "").client("b"));
    assert!(!s.has_reply(jb), "the newcomer waits for the others");
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(s.heartbeat("g", 1, &a), codes::REBALANCE_IN_PROGRESS);

    let ra = s.join_now(join_req("g", &a));
    let rb = s.joined(jb);
    assert_eq!(ra.generation_id, 2);
    assert_eq!(rb.generation_id, 2);
    assert_eq!(ra.leader, a);
    assert_eq!(rb.leader, a);
    assert_eq!(joined_ids(&ra), vec![a.clone(), rb.member_id.clone()]);
    assert!(rb.members.is_empty());
    assert_eq!(s.state("g"), "CompletingRebalance");

    let b = rb.member_id.clone();
    let sb = s.sync("g", 2, &b, &[]);
    assert!(!s.has_reply(sb), "a follower waits for the leader's sync");
    let sa = s.sync("g", 2, &a, &[(&a, b"A"), (&b, b"B")]);
    assert_eq!(&s.synced(sa).assignment[..], b"A");
    assert_eq!(&s.synced(sb).assignment[..], b"B");
    assert_eq!(s.state("g"), "Stable");
    assert_eq!(s.heartbeat("g", 2, &a), codes::NONE);
    assert_eq!(s.heartbeat("g", 2, &b), codes::NONE);
}

#[test]
fn member_joining_while_the_group_prepares_a_rebalance_gets_the_same_generation() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let (a, b) = (ids[0].clone(), ids[1].clone());

    // b changes its subscription: a rebalance starts.
    let jb = s.join(join_req("g", &b).protocols(&[("range", subscription(&["t", "u"]))]));
    assert_eq!(s.state("g"), "PreparingRebalance");
    // c joins while the group is preparing.
    let jc = s.join(join_req("g", "").client("c"));
    assert!(!s.has_reply(jb) && !s.has_reply(jc));
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(
        s.heartbeat("g", generation, &a),
        codes::REBALANCE_IN_PROGRESS
    );

    let ra = s.join_now(join_req("g", &a));
    let (rb, rc) = (s.joined(jb), s.joined(jc));
    for r in [&ra, &rb, &rc] {
        assert_eq!(r.error, codes::NONE);
        assert_eq!(r.generation_id, generation + 1);
        assert_eq!(r.leader, a);
    }
    let c = rc.member_id.clone();
    assert_eq!(
        ra.members,
        vec![
            JoinedMember {
                member_id: a.clone(),
                group_instance_id: None,
                metadata: subscription(&["t"]),
            },
            JoinedMember {
                member_id: b.clone(),
                group_instance_id: None,
                metadata: subscription(&["t", "u"]),
            },
            JoinedMember {
                member_id: c.clone(),
                group_instance_id: None,
                metadata: subscription(&["t"]),
            },
        ]
    );
}

#[test]
fn non_leader_rejoining_a_stable_group_unchanged_gets_the_current_generation_without_a_rebalance() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let r = s.join_now(join_req("g", &ids[1]));
    assert_eq!(r.error, codes::NONE);
    assert_eq!(r.generation_id, generation);
    assert_eq!(r.leader, ids[0]);
    assert_eq!(s.state("g"), "Stable");
    assert_eq!(s.heartbeat("g", generation, &ids[0]), codes::NONE);
}

#[test]
fn leader_rejoining_a_stable_group_starts_a_rebalance() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let ja = s.join(join_req("g", &ids[0]));
    assert!(!s.has_reply(ja));
    assert_eq!(s.state("g"), "PreparingRebalance");
    let rb = s.join_now(join_req("g", &ids[1]));
    assert_eq!(rb.generation_id, generation + 1);
    assert_eq!(s.joined(ja).members.len(), 2);
}

#[test]
fn member_that_missed_its_join_reply_gets_the_same_generation_again_while_completing() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let jb = s.join(join_req("g", "").client("b"));
    let ra = s.join_now(join_req("g", &ids[0]));
    let rb = s.joined(jb);
    assert_eq!(s.state("g"), "CompletingRebalance");
    let again = s.join_now(join_req("g", &rb.member_id));
    assert_eq!(again.generation_id, generation + 1);
    assert_eq!(again.leader, ra.leader);
    let leader_again = s.join_now(join_req("g", &ids[0]));
    assert_eq!(leader_again.generation_id, generation + 1);
    assert_eq!(
        leader_again.members.len(),
        2,
        "the leader gets the members again"
    );
    assert_eq!(s.state("g"), "CompletingRebalance");
}

#[test]
fn member_that_does_not_rejoin_within_the_rebalance_timeout_is_removed_and_the_rest_complete() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let t0 = s.now;
    let jc = s.join(join_req("g", "").client("c"));
    let ja = s.join(join_req("g", &a));
    // b stays alive but never rejoins.
    for _ in 0..5 {
        s.advance(5_000);
        assert_eq!(
            s.heartbeat("g", generation, &b),
            codes::REBALANCE_IN_PROGRESS
        );
    }
    s.advance_to(t0 + REBALANCE_MS as i64 - 1);
    assert!(!s.has_reply(ja) && !s.has_reply(jc));

    s.advance_to(t0 + REBALANCE_MS as i64);
    let (ra, rc) = (s.joined(ja), s.joined(jc));
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(rc.generation_id, generation + 1);
    assert_eq!(joined_ids(&ra), vec![a.clone(), rc.member_id.clone()]);
    assert_eq!(
        s.heartbeat("g", generation, &b),
        codes::UNKNOWN_MEMBER_ID,
        "b is gone"
    );
}

// ----------------------------------------------------------- sync timeout --

#[test]
fn member_that_never_syncs_is_removed_after_the_rebalance_timeout_and_the_group_rebalances() {
    let mut s = Sim::new(config());
    let (ids, _) = s.stable_group("g", 1);
    let a = ids[0].clone();
    let jb = s.join(join_req("g", "").client("b"));
    let ra = s.join_now(join_req("g", &a));
    let b = s.joined(jb).member_id;
    let generation = ra.generation_id;
    let t0 = s.now;

    let sa = s.sync("g", generation, &a, &[(&a, b"A"), (&b, b"B")]);
    assert_eq!(s.synced(sa).error, codes::NONE);
    assert_eq!(s.state("g"), "Stable");
    // b heartbeats but never syncs.
    for _ in 0..5 {
        s.advance(5_000);
        assert_eq!(s.heartbeat("g", generation, &b), codes::NONE);
        assert_eq!(s.heartbeat("g", generation, &a), codes::NONE);
    }
    s.advance_to(t0 + REBALANCE_MS as i64 - 1);
    assert_eq!(s.state("g"), "Stable");

    s.advance_to(t0 + REBALANCE_MS as i64);
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(s.heartbeat("g", generation, &b), codes::UNKNOWN_MEMBER_ID);
    assert_eq!(
        s.heartbeat("g", generation, &a),
        codes::REBALANCE_IN_PROGRESS
    );
    let r = s.join_now(join_req("g", &a));
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(joined_ids(&r), vec![a]);
}

#[test]
fn leader_that_never_syncs_is_removed_and_waiting_followers_are_told_to_rejoin() {
    let mut s = Sim::new(config());
    let (ids, _) = s.stable_group("g", 1);
    let a = ids[0].clone();
    let jb = s.join(join_req("g", "").client("b"));
    let generation = s.join_now(join_req("g", &a)).generation_id;
    let b = s.joined(jb).member_id;
    let t0 = s.now;
    let sb = s.sync("g", generation, &b, &[]);
    // The leader stays alive but never sends its assignment.
    for _ in 0..5 {
        s.advance(5_000);
        assert_eq!(s.heartbeat("g", generation, &a), codes::NONE);
    }
    assert!(!s.has_reply(sb));
    s.advance_to(t0 + REBALANCE_MS as i64);
    let r = s.synced(sb);
    assert_eq!(r.error, codes::REBALANCE_IN_PROGRESS);
    assert_eq!(s.heartbeat("g", generation, &a), codes::UNKNOWN_MEMBER_ID);
    let rb = s.join_now(join_req("g", &b));
    assert_eq!(rb.error, codes::NONE, "{rb:?} {:?}", s.describe("g"));
    assert_eq!(rb.generation_id, generation + 1);
    assert_eq!(rb.leader, b, "the remaining member leads");
}

#[test]
fn follower_waiting_for_the_leaders_sync_gets_a_fresh_session_with_its_assignment() {
    // Kafka resets a member's session when it answers its sync: a member
    // blocked in SyncGroup cannot heartbeat (its client waits).
    let mut s = Sim::new(config());
    let (ids, _) = s.stable_group("g", 1);
    let a = ids[0].clone();
    let jb = s.join(join_req("g", "").client("b"));
    let generation = s.join_now(join_req("g", &a)).generation_id;
    let b = s.joined(jb).member_id;
    let sb = s.sync("g", generation, &b, &[]);
    // The leader takes 9 s to compute the assignment, heartbeating.
    for _ in 0..3 {
        s.advance(3_000);
        assert_eq!(s.heartbeat("g", generation, &a), codes::NONE);
    }
    let sa = s.sync("g", generation, &a, &[(&a, b"A"), (&b, b"B")]);
    assert_eq!(s.synced(sa).error, codes::NONE);
    assert_eq!(&s.synced(sb).assignment[..], b"B");
    // b heartbeats a few seconds after getting its assignment.
    s.advance(3_000);
    assert_eq!(s.heartbeat("g", generation, &a), codes::NONE);
    assert_eq!(s.heartbeat("g", generation, &b), codes::NONE);
    assert_eq!(s.state("g"), "Stable");
}

#[test]
fn sync_errors_unknown_member_wrong_generation_preparing_and_protocol_mismatch() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let a = ids[0].clone();
    let e = |s: &mut Sim, id| s.synced(id).error;

    let x = s.sync("g", generation, "ghost", &[]);
    assert_eq!(e(&mut s, x), codes::UNKNOWN_MEMBER_ID);
    let x = s.sync("nope", 1, "ghost", &[]);
    assert_eq!(e(&mut s, x), codes::UNKNOWN_MEMBER_ID);
    let x = s.sync("g", generation + 7, &a, &[]);
    assert_eq!(e(&mut s, x), codes::ILLEGAL_GENERATION);
    let x = s.send(Request::Sync(SyncGroup {
        group_id: "g".into(),
        generation_id: generation,
        member_id: a.clone(),
        protocol_type: Some("consumer".into()),
        protocol_name: Some("roundrobin".into()),
        ..Default::default()
    }));
    assert_eq!(e(&mut s, x), codes::INCONSISTENT_GROUP_PROTOCOL);
    // Stable: a sync just returns the member's assignment.
    let x = s.sync("g", generation, &ids[1], &[]);
    assert_eq!(&s.synced(x).assignment[..], &assignment(1)[..]);

    let _ = s.join(join_req("g", &a));
    let x = s.sync("g", generation, &ids[1], &[]);
    assert_eq!(e(&mut s, x), codes::REBALANCE_IN_PROGRESS);
}

// -------------------------------------------------------------- heartbeat --

#[test]
fn heartbeat_from_an_unknown_member_is_unknown_member_id() {
    let mut s = Sim::new(config());
    assert_eq!(s.heartbeat("nope", 1, "ghost"), codes::UNKNOWN_MEMBER_ID);
    let (_, generation) = s.stable_group("g", 1);
    assert_eq!(
        s.heartbeat("g", generation, "ghost"),
        codes::UNKNOWN_MEMBER_ID
    );
    assert_eq!(s.heartbeat("g", generation, ""), codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn heartbeat_with_the_wrong_generation_is_illegal_generation() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    assert_eq!(
        s.heartbeat("g", generation - 1, &ids[0]),
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(
        s.heartbeat("g", generation + 1, &ids[0]),
        codes::ILLEGAL_GENERATION
    );
    assert_eq!(s.heartbeat("g", generation, &ids[0]), codes::NONE);
}

#[test]
fn heartbeat_while_preparing_a_rebalance_is_rebalance_in_progress() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let _ = s.join(join_req("g", "").client("new"));
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(
        s.heartbeat("g", generation, &ids[1]),
        codes::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn heartbeat_with_an_old_generation_while_preparing_a_rebalance_is_illegal_generation() {
    // Kafka checks the generation before the state.
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let _ = s.join(join_req("g", "").client("new"));
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(
        s.heartbeat("g", generation - 1, &ids[1]),
        codes::ILLEGAL_GENERATION
    );
}

#[test]
fn heartbeat_with_the_new_generation_while_completing_the_rebalance_is_accepted() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let jb = s.join(join_req("g", "").client("b"));
    let _ = s.join_now(join_req("g", &ids[0]));
    let b = s.joined(jb).member_id;
    assert_eq!(s.state("g"), "CompletingRebalance");
    assert_eq!(s.heartbeat("g", generation + 1, &b), codes::NONE);
    assert_eq!(s.heartbeat("g", generation, &b), codes::ILLEGAL_GENERATION);
}

// -------------------------------------------------------- session timeout --

#[test]
fn member_that_stops_heartbeating_is_removed_at_its_session_timeout_and_the_others_rejoin() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 3);
    let (a, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let t0 = s.now;
    // a and c heartbeat every 3 s; b is silent.
    for _ in 0..3 {
        s.advance(3_000);
        assert_eq!(s.heartbeat("g", generation, &a), codes::NONE);
        assert_eq!(s.heartbeat("g", generation, &c), codes::NONE);
    }
    s.advance_to(t0 + SESSION_MS as i64 - 1);
    assert_eq!(s.state("g"), "Stable");
    s.advance_to(t0 + SESSION_MS as i64);
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(
        s.heartbeat("g", generation, &a),
        codes::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        s.heartbeat("g", generation, &c),
        codes::REBALANCE_IN_PROGRESS
    );
    assert_eq!(s.heartbeat("g", generation, &b), codes::UNKNOWN_MEMBER_ID);

    let jc = s.join(join_req("g", &c));
    let ra = s.join_now(join_req("g", &a));
    let rc = s.joined(jc);
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(rc.generation_id, generation + 1);
    assert_eq!(joined_ids(&ra), vec![a, c]);
}

#[test]
fn commits_keep_a_member_alive_like_heartbeats() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    for i in 0..5 {
        s.advance(SESSION_MS as i64 - 1);
        assert_eq!(
            s.commit_now("g", generation, &ids[0], &[("t", 0, i)]),
            vec![codes::NONE]
        );
    }
    assert_eq!(s.state("g"), "Stable");
}

// ------------------------------------------------------------------- leave --

#[test]
fn batched_leave_removes_the_members_answers_unknown_ones_per_member_and_rebalances() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 3);
    let (a, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let r = s.leave("g", &[(&b, None), ("ghost", None), (&c, None)]);
    assert_eq!(r.error, codes::NONE);
    assert_eq!(
        r.members,
        vec![
            (b.clone(), None, codes::NONE),
            ("ghost".to_string(), None, codes::UNKNOWN_MEMBER_ID),
            (c.clone(), None, codes::NONE),
        ]
    );
    assert_eq!(s.state("g"), "PreparingRebalance");
    assert_eq!(
        s.heartbeat("g", generation, &a),
        codes::REBALANCE_IN_PROGRESS
    );
    assert_eq!(s.heartbeat("g", generation, &b), codes::UNKNOWN_MEMBER_ID);
    let ra = s.join_now(join_req("g", &a));
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(joined_ids(&ra), vec![a]);
}

#[test]
fn leave_from_an_unknown_group_is_unknown_member_id() {
    let mut s = Sim::new(config());
    let r = s.leave("nope", &[("m", None)]);
    assert_eq!(r.error, codes::UNKNOWN_MEMBER_ID);
}

#[test]
fn last_member_leaving_empties_the_group_and_the_empty_group_is_written() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let r = s.leave("g", &[(&ids[0], None)]);
    assert_eq!(r.members[0].2, codes::NONE);
    let d = s.describe("g");
    assert_eq!(d.state, "Empty");
    assert!(d.members.is_empty());
    match s.log.last().map(|a| &a.records[..]) {
        Some(
            [LogRecord {
                value: Some(RecordValue::Group(GroupValue::Classic(g))),
                ..
            }],
        ) => {
            assert!(g.members.is_empty());
            assert_eq!(g.generation, generation + 1);
        }
        other => panic!("expected the empty group written, got {other:?}"),
    }
}

#[test]
fn leaving_while_others_are_awaiting_join_completes_the_rebalance_without_the_leaver() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 2);
    let ja = s.join(join_req("g", &ids[0]));
    assert!(!s.has_reply(ja));
    let r = s.leave("g", &[(&ids[1], None)]);
    assert_eq!(r.members[0].2, codes::NONE);
    let ra = s.joined(ja);
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(joined_ids(&ra), vec![ids[0].clone()]);
}

// ------------------------------------------------------ static membership --

fn static_pair(s: &mut Sim) -> (String, String, i32) {
    let (ids, generation) = s.stable_group_of(
        "g",
        vec![
            join_req("g", "").client("a").instance("ia"),
            join_req("g", "").client("b").instance("ib"),
        ],
    );
    (ids[0].clone(), ids[1].clone(), generation)
}

#[test]
fn static_member_rejoining_with_an_empty_member_id_keeps_its_generation_and_assignment_without_a_rebalance(
) {
    let mut s = Sim::new(config());
    let (a, b_old, generation) = static_pair(&mut s);

    // b restarts: it knows its instance id, not its member id.
    let rb = s.join_now(join_req("g", "").client("b2").instance("ib"));
    assert_eq!(rb.error, codes::NONE);
    assert_ne!(rb.member_id, b_old, "a new member id");
    assert_eq!(rb.generation_id, generation, "no new generation");
    assert_eq!(rb.leader, a);
    assert!(!rb.skip_assignment);
    assert!(rb.members.is_empty());
    assert_eq!(s.state("g"), "Stable");
    let b = rb.member_id.clone();

    let sb = s.sync_static("g", generation, &b, Some("ib"), &[]);
    let sb = s.synced(sb);
    assert_eq!(sb.error, codes::NONE);
    assert_eq!(&sb.assignment[..], &assignment(1)[..], "its old assignment");
    assert_eq!(
        s.heartbeat("g", generation, &a),
        codes::NONE,
        "no rebalance"
    );
    assert_eq!(
        s.heartbeat_static("g", generation, &b, Some("ib")),
        codes::NONE
    );

    // The old incarnation is fenced.
    assert_eq!(
        s.heartbeat_static("g", generation, &b_old, Some("ib")),
        codes::FENCED_INSTANCE_ID
    );
    let commit = s.send(Request::OffsetCommit(OffsetCommit {
        group_id: "g".into(),
        generation_id: generation,
        member_id: b_old.clone(),
        group_instance_id: Some("ib".into()),
        offsets: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: None,
        }],
    }));
    assert_eq!(s.committed(commit), vec![codes::FENCED_INSTANCE_ID]);
    let j = s.join_now(join_req("g", &b_old).instance("ib"));
    assert_eq!(j.error, codes::FENCED_INSTANCE_ID);
    let x = s.sync_static("g", generation, &b_old, Some("ib"), &[]);
    assert_eq!(s.synced(x).error, codes::FENCED_INSTANCE_ID);
    let l = s.leave("g", &[(&b_old, Some("ib"))]);
    assert_eq!(l.members[0].2, codes::FENCED_INSTANCE_ID);

    let d = s.describe("g");
    assert_eq!(d.state, "Stable");
    let members: Vec<(&str, Option<&str>, &str)> = d
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str(),
                m.group_instance_id.as_deref(),
                m.client_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![
            (a.as_str(), Some("ia"), "a"),
            (b.as_str(), Some("ib"), "b2")
        ]
    );
}

#[test]
fn static_leader_rejoining_while_stable_is_told_to_skip_the_assignment() {
    let mut s = Sim::new(config());
    let (a_old, b, generation) = static_pair(&mut s);
    let ra = s.join_now(join_req("g", "").client("a2").instance("ia"));
    assert_eq!(ra.error, codes::NONE);
    assert_eq!(ra.generation_id, generation);
    assert_ne!(ra.member_id, a_old);
    assert_eq!(ra.leader, ra.member_id, "it stays the leader");
    assert!(ra.skip_assignment);
    assert_eq!(joined_ids(&ra), vec![ra.member_id.clone(), b.clone()]);
    assert_eq!(s.state("g"), "Stable");
    let x = s.sync_static("g", generation, &ra.member_id, Some("ia"), &[]);
    assert_eq!(&s.synced(x).assignment[..], &assignment(0)[..]);
}

#[test]
fn static_member_rejoining_with_new_protocols_triggers_a_rebalance() {
    let mut s = Sim::new(config());
    let (a, _b, generation) = static_pair(&mut s);
    let jb = s.join(
        join_req("g", "")
            .instance("ib")
            .protocols(&[("range", subscription(&["t", "u"]))]),
    );
    assert!(!s.has_reply(jb));
    assert_eq!(s.state("g"), "PreparingRebalance");
    let ra = s.join_now(join_req("g", &a).instance("ia"));
    let rb = s.joined(jb);
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(rb.generation_id, generation + 1);
    assert_eq!(ra.members[1].metadata, subscription(&["t", "u"]));
}

#[test]
fn static_member_that_does_not_rejoin_in_time_stays_in_the_group() {
    let mut s = Sim::new(config());
    let (a, b, generation) = static_pair(&mut s);
    let t0 = s.now;
    let jc = s.join(join_req("g", "").client("c"));
    let ja = s.join(join_req("g", &a).instance("ia"));
    for _ in 0..5 {
        s.advance(5_000);
        assert_eq!(
            s.heartbeat_static("g", generation, &b, Some("ib")),
            codes::REBALANCE_IN_PROGRESS
        );
    }
    s.advance_to(t0 + REBALANCE_MS as i64);
    let (ra, rc) = (s.joined(ja), s.joined(jc));
    assert_eq!(ra.generation_id, generation + 1);
    // The leader assigns to b too: a static member is kept.
    assert_eq!(joined_ids(&ra), vec![a, b.clone(), rc.member_id.clone()]);
    // b finds out and gets the generation with its id.
    assert_eq!(
        s.heartbeat_static("g", generation, &b, Some("ib")),
        codes::ILLEGAL_GENERATION
    );
    let rb = s.join_now(join_req("g", &b).instance("ib"));
    assert_eq!(rb.error, codes::NONE);
    assert_eq!(rb.generation_id, generation + 1);
}

#[test]
fn all_static_group_where_no_member_rejoins_waits_instead_of_completing_without_a_leader() {
    // Kafka postpones the join phase while no member has rejoined: a
    // generation needs a leader to compute its assignment.
    let mut s = Sim::new(config());
    let (a, _b, generation) = static_pair(&mut s);
    let t0 = s.now;
    let r = s.leave("g", &[("", Some("ib"))]);
    assert_eq!(r.members[0].2, codes::NONE);
    assert_eq!(s.state("g"), "PreparingRebalance");
    // a is slow to rejoin but alive.
    for _ in 0..7 {
        s.advance(5_000);
        assert_eq!(
            s.heartbeat_static("g", generation, &a, Some("ia")),
            codes::REBALANCE_IN_PROGRESS
        );
    }
    assert!(s.now > t0 + REBALANCE_MS as i64);
    let ra = s.join_now(join_req("g", &a).instance("ia"));
    assert_eq!(ra.error, codes::NONE);
    assert_eq!(ra.leader, a, "the member that rejoined leads");
    assert_eq!(joined_ids(&ra), vec![a.clone()]);
    let x = s.sync_static("g", ra.generation_id, &a, Some("ia"), &[(&a, b"A")]);
    assert_eq!(s.synced(x).error, codes::NONE);
    assert_eq!(s.state("g"), "Stable");
}

#[test]
fn static_member_leaving_by_instance_id_alone_is_removed() {
    let mut s = Sim::new(config());
    let (_a, b, _) = static_pair(&mut s);
    let r = s.leave("g", &[("", Some("ib")), ("", Some("nobody"))]);
    assert_eq!(
        r.members,
        vec![
            (String::new(), Some("ib".to_string()), codes::NONE),
            (
                String::new(),
                Some("nobody".to_string()),
                codes::UNKNOWN_MEMBER_ID
            ),
        ]
    );
    assert!(!s.describe("g").members.iter().any(|m| m.member_id == b));
}

// ---------------------------------------------------------- validation --

#[test]
fn join_with_another_protocol_type_or_no_common_protocol_is_inconsistent_group_protocol() {
    let mut s = Sim::new(config());
    let (ids, generation) = s.stable_group("g", 1);
    let mut other = join_req("g", "");
    other.protocol_type = "connect".into();
    assert_eq!(s.join_now(other).error, codes::INCONSISTENT_GROUP_PROTOCOL);
    let rr = join_req("g", "").protocols(&[("roundrobin", subscription(&["t"]))]);
    assert_eq!(s.join_now(rr).error, codes::INCONSISTENT_GROUP_PROTOCOL);
    let none = join_req("fresh", "").protocols(&[]);
    assert_eq!(s.join_now(none).error, codes::INCONSISTENT_GROUP_PROTOCOL);
    let mut untyped = join_req("fresh", "");
    untyped.protocol_type = String::new();
    assert_eq!(
        s.join_now(untyped).error,
        codes::INCONSISTENT_GROUP_PROTOCOL
    );
    // The group is untouched.
    assert_eq!(s.state("g"), "Stable");
    assert_eq!(s.heartbeat("g", generation, &ids[0]), codes::NONE);
}

#[test]
fn join_with_a_second_common_protocol_is_admitted_and_the_common_one_chosen() {
    let mut s = Sim::new(config());
    let a = s.join_now(join_req("g", "").protocols(&[
        ("range", subscription(&["t"])),
        ("roundrobin", subscription(&["t"])),
    ]));
    let jb = s.join(join_req("g", "").protocols(&[("roundrobin", subscription(&["t"]))]));
    let ra = s.join_now(join_req("g", &a.member_id).protocols(&[
        ("range", subscription(&["t"])),
        ("roundrobin", subscription(&["t"])),
    ]));
    let rb = s.joined(jb);
    assert_eq!(ra.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(rb.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn session_timeout_outside_the_broker_bounds_is_invalid_session_timeout() {
    let mut s = Sim::new(config());
    let cfg = s.c.config().clone();
    for t in [
        cfg.min_session_timeout_ms - 1,
        cfg.max_session_timeout_ms + 1,
    ] {
        let r = s.join_now(join_req("g", "").timeouts(t, REBALANCE_MS));
        assert_eq!(r.error, codes::INVALID_SESSION_TIMEOUT);
    }
    for t in [cfg.min_session_timeout_ms, cfg.max_session_timeout_ms] {
        let r = s.join_now(join_req(&format!("g{t}"), "").timeouts(t, REBALANCE_MS));
        assert_eq!(r.error, codes::NONE);
    }
}

#[test]
fn join_to_an_unknown_group_with_a_member_id_is_unknown_member_id() {
    let mut s = Sim::new(config());
    let r = s.join_now(join_req("g", "made-up"));
    assert_eq!(r.error, codes::UNKNOWN_MEMBER_ID);
    let r = s.join_now(join_req("", ""));
    assert_eq!(r.error, codes::INVALID_GROUP_ID);
}

#[test]
fn group_at_its_size_limit_refuses_a_newcomer() {
    let mut s = Sim::new(CoordinatorConfig {
        members_max: 2,
        ..config()
    });
    let (ids, generation) = s.stable_group("g", 2);
    let r = s.join_now(join_req("g", "").client("third"));
    assert_eq!(r.error, codes::GROUP_MAX_SIZE_REACHED);
    assert_eq!(s.state("g"), "Stable");
    assert_eq!(s.heartbeat("g", generation, &ids[1]), codes::NONE);
}

// -------------------------------------------------------- list and describe --

#[test]
fn list_and_describe_show_each_state() {
    let mut s = Sim::new(config());
    let (ids, _) = s.stable_group("stable", 1);
    let _ = s.join(join_req("preparing", "").client("p1"));
    let (pids, _) = s.stable_group("preparing2", 1);
    let _ = s.join(join_req("preparing2", &pids[0]).protocols(&[("range", Bytes::new())]));
    let _ = s.commit_now("simple", -1, "", &[("t", 0, 1)]);

    let listed: Vec<(String, String)> = s
        .list()
        .into_iter()
        .map(|g| (g.group_id, g.state))
        .collect();
    assert!(listed.contains(&("stable".into(), "Stable".into())));
    assert!(listed.contains(&("preparing".into(), "CompletingRebalance".into())));
    assert!(listed.contains(&("simple".into(), "Empty".into())));

    let only_empty = match s.call(Request::ListGroups(ListGroups {
        states: vec!["empty".into()],
        types: vec![],
    })) {
        Response::ListGroups(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(only_empty.len(), 1);
    assert_eq!(only_empty[0].group_id, "simple");
    assert_eq!(only_empty[0].protocol_type, "");

    let d = s.describe("stable");
    assert_eq!(d.members[0].member_id, ids[0]);
    assert_eq!(d.members[0].metadata, subscription(&["t"]));
    let d = s.describe("missing");
    assert_eq!((d.error, d.state.as_str()), (codes::NONE, "Dead"));
}

#[test]
fn fail_pending_returns_every_reply_still_owed() {
    let mut s = Sim::new(config());
    let (ids, _) = s.stable_group("g", 2);
    s.auto_ack = false;
    let commit = s.commit("simple", -1, "", &[("t", 0, 1)]);
    let join = s.join(join_req("g", &ids[0]));
    let sync = s.sync("g", 99, &ids[1], &[]);
    assert!(s.has_reply(sync), "an immediate error is not owed");
    let mut owed = s.c.fail_pending();
    owed.sort();
    assert_eq!(owed, vec![commit, join]);
    assert!(s.c.fail_pending().is_empty());
}
