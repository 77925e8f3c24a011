//! The leader's ISR and high watermark: Kafka's rules, each as a test, and
//! a property test of the durability invariant over random histories.

use corelog_model::{NodeId, Offset};
use corelog_replication::{Input, Leader, Output, ReplicationConfig, Takeover};
use proptest::prelude::*;

const LAG_MS: u64 = 1_000;

fn n(i: i32) -> NodeId {
    NodeId(i)
}

fn leader(isr: &[i32], min_isr: usize) -> Leader {
    Leader::new(
        n(1),
        Takeover {
            replicas: vec![n(1), n(2), n(3)],
            isr: isr.iter().map(|i| n(*i)).collect(),
            partition_epoch: 5,
            log_end: Offset(0),
            log_durable: Offset(0),
            high_watermark: Offset(0),
        },
        ReplicationConfig {
            replica_lag_time_max_ms: LAG_MS,
            min_insync_replicas: min_isr,
        },
        0,
    )
}

fn log(end: i64, durable: i64) -> Input {
    Input::LeaderLog {
        end: Offset(end),
        durable: Offset(durable),
    }
}

fn fetch(f: i32, durable: i64) -> Input {
    Input::FollowerFetch {
        follower: n(f),
        durable: Offset(durable),
    }
}

fn proposals(out: &[Output]) -> Vec<Vec<i32>> {
    out.iter()
        .filter_map(|o| match o {
            Output::ProposeIsr { isr, .. } => Some(isr.iter().map(|x| x.0).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_high_watermark_is_the_least_durable_end_over_the_isr() {
    let mut l = leader(&[1, 2, 3], 1);
    l.step(0, log(10, 10));
    l.step(0, fetch(2, 10));
    assert_eq!(
        l.step(0, fetch(3, 4)),
        vec![Output::HighWatermark(Offset(4))]
    );
    assert_eq!(
        l.step(0, fetch(3, 10)),
        vec![Output::HighWatermark(Offset(10))]
    );
}

#[test]
fn an_offset_appended_but_not_yet_synced_on_the_leader_is_not_committed() {
    let mut l = leader(&[1, 2, 3], 1);
    l.step(0, log(10, 6));
    l.step(0, fetch(2, 10));
    l.step(0, fetch(3, 10));
    assert_eq!(l.high_watermark(), Offset(6));
    l.step(0, log(10, 10));
    assert_eq!(l.high_watermark(), Offset(10));
}

#[test]
fn below_min_insync_replicas_the_high_watermark_holds_and_acks_all_is_refused() {
    let mut l = leader(&[1], 2);
    assert!(!l.accepts_acks_all());
    l.step(0, log(10, 10));
    assert_eq!(l.high_watermark(), Offset(0));
    // Follower 2 catches up and joins: two in sync, the watermark moves.
    let out = l.step(0, fetch(2, 10));
    assert_eq!(proposals(&out), vec![vec![1, 2]]);
    assert_eq!(l.high_watermark(), Offset(0), "not committed yet");
    let out = l.step(
        0,
        Input::IsrCommitted {
            isr: vec![n(1), n(2)],
            partition_epoch: 6,
        },
    );
    assert!(l.accepts_acks_all());
    assert_eq!(out[0], Output::HighWatermark(Offset(10)));
}

#[test]
fn a_lagging_follower_leaves_the_isr_through_the_controller() {
    let mut l = leader(&[1, 2, 3], 1);
    l.step(0, log(10, 10));
    l.step(0, fetch(2, 10));
    l.step(0, fetch(3, 3));
    assert_eq!(l.high_watermark(), Offset(3));
    // Follower 3 stops fetching; follower 2 keeps up.
    assert!(proposals(&l.step(LAG_MS, Input::Tick)).is_empty());
    let out = l.step(LAG_MS + 1, Input::Tick);
    assert_eq!(proposals(&out), vec![vec![1, 2]]);
    l.step(LAG_MS + 1, fetch(2, 10));
    // Until the controller commits, 3 still bounds the watermark.
    assert_eq!(l.high_watermark(), Offset(3));
    assert!(
        proposals(&l.step(LAG_MS + 2, Input::Tick)).is_empty(),
        "one at a time"
    );
    let out = l.step(
        LAG_MS + 2,
        Input::IsrCommitted {
            isr: vec![n(1), n(2)],
            partition_epoch: 6,
        },
    );
    assert_eq!(out, vec![Output::HighWatermark(Offset(10))]);
    assert_eq!(l.partition_epoch(), 6);
}

#[test]
fn a_follower_that_keeps_up_with_steady_appends_stays_in_sync() {
    let mut l = leader(&[1, 2], 1);
    let mut end = 0;
    for t in 0..50u64 {
        let now = t * 200;
        // Each fetch reaches the leader's end as of the previous fetch,
        // never the current one: the leader appends in between.
        l.step(now, fetch(2, end));
        end += 10;
        let out = l.step(now, log(end, end));
        assert!(proposals(&out).is_empty(), "dropped at {now} ms");
    }
    assert_eq!(l.isr(), &[n(1), n(2)]);
}

#[test]
fn a_joining_follower_counts_as_in_sync_while_its_change_is_in_flight() {
    let mut l = leader(&[1, 2], 1);
    l.step(0, log(10, 10));
    l.step(0, fetch(2, 10));
    assert_eq!(l.high_watermark(), Offset(10));
    let out = l.step(0, fetch(3, 10));
    assert_eq!(proposals(&out), vec![vec![1, 2, 3]]);
    // More appends: the watermark may not pass what 3 holds, though 3 is
    // not in the committed ISR yet (Kafka's maximal ISR).
    l.step(1, log(20, 20));
    l.step(1, fetch(2, 20));
    assert_eq!(l.high_watermark(), Offset(10));
    l.step(2, fetch(3, 20));
    assert_eq!(l.high_watermark(), Offset(20));
}

#[test]
fn a_refused_change_is_proposed_again() {
    let mut l = leader(&[1, 2], 1);
    l.step(0, log(10, 10));
    assert_eq!(proposals(&l.step(0, fetch(3, 10))), vec![vec![1, 2, 3]]);
    let out = l.step(
        1,
        Input::IsrRefused {
            isr: vec![n(1), n(2), n(3)],
            partition_epoch: 5,
        },
    );
    assert_eq!(proposals(&out), vec![vec![1, 2, 3]]);
}

#[test]
fn a_late_answer_about_an_earlier_proposal_changes_nothing() {
    let mut l = leader(&[1, 2], 1);
    l.step(0, log(10, 10));
    assert_eq!(proposals(&l.step(0, fetch(3, 10))), vec![vec![1, 2, 3]]);
    // The metadata settled that one; the leader proposes a shrink next.
    l.step(
        1,
        Input::IsrCommitted {
            isr: vec![n(1), n(2), n(3)],
            partition_epoch: 6,
        },
    );
    // 2 never fetched: it lags.
    let out = l.step(LAG_MS + 10, log(10, 10));
    assert_eq!(proposals(&out), vec![vec![1, 3]]);
    // The refusal of the first proposal arrives late: the shrink stays
    // in flight, and the members it drops still count.
    let refused = Input::IsrRefused {
        isr: vec![n(1), n(2), n(3)],
        partition_epoch: 5,
    };
    assert!(l.step(LAG_MS + 11, refused).is_empty());
    assert_eq!(l.pending_isr(), Some(&[n(1), n(3)][..]));
    let unknown = Input::IsrUnknown {
        isr: vec![n(1), n(2), n(3)],
        partition_epoch: 5,
    };
    assert!(l.step(LAG_MS + 12, unknown).is_empty());
}

#[test]
fn an_unanswered_expansion_keeps_counting_and_is_proposed_again() {
    let mut l = leader(&[1, 2], 1);
    l.step(0, log(10, 10));
    l.step(0, fetch(2, 10));
    assert_eq!(proposals(&l.step(0, fetch(3, 10))), vec![vec![1, 2, 3]]);
    // The controller may have made 3 a member and may elect it: until a
    // newer partition epoch says otherwise, 3 bounds the watermark.
    let out = l.step(
        1,
        Input::IsrUnknown {
            isr: vec![n(1), n(2), n(3)],
            partition_epoch: 5,
        },
    );
    assert_eq!(proposals(&out), vec![vec![1, 2, 3]]);
    assert_eq!(l.maximal_isr(), vec![n(1), n(2), n(3)]);
    l.step(2, log(20, 20));
    l.step(2, fetch(2, 20));
    assert_eq!(l.high_watermark(), Offset(10));
}

#[test]
fn a_view_from_before_the_change_leaves_it_in_flight() {
    let mut l = leader(&[1, 2], 1);
    l.step(0, log(10, 10));
    l.step(0, fetch(3, 10));
    let before = l.partition_epoch();
    l.step(
        1,
        Input::IsrCommitted {
            isr: vec![n(1), n(2)],
            partition_epoch: before,
        },
    );
    assert_eq!(l.pending_isr(), Some(&[n(1), n(2), n(3)][..]));
    // A newer epoch settles it, whatever it says.
    l.step(
        2,
        Input::IsrCommitted {
            isr: vec![n(1), n(2), n(3)],
            partition_epoch: before + 1,
        },
    );
    assert_eq!(l.pending_isr(), None);
    assert_eq!(l.isr(), &[n(1), n(2), n(3)]);
}

#[test]
fn an_isr_from_an_older_partition_epoch_is_ignored() {
    let mut l = leader(&[1, 2, 3], 1);
    l.step(
        0,
        Input::IsrCommitted {
            isr: vec![n(1)],
            partition_epoch: 4,
        },
    );
    assert_eq!(l.isr(), &[n(1), n(2), n(3)]);
}

#[test]
fn a_node_that_is_not_a_replica_earns_nothing() {
    let mut l = leader(&[1, 2], 1);
    l.step(0, log(10, 10));
    assert!(l.step(0, fetch(9, 10)).is_empty());
    assert_eq!(l.high_watermark(), Offset(0));
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    Append(i64),
    Sync,
    Fetch(usize, i64),
    Time(u64),
    /// The controller's answer to a change in flight: 0 committed, 1
    /// refused (not applied), 2 unknown, 3 a view from before it.
    Answer(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..20).prop_map(Op::Append),
        Just(Op::Sync),
        (0usize..2, 0i64..30).prop_map(|(f, d)| Op::Fetch(f, d)),
        (1u64..800).prop_map(Op::Time),
        (0u8..4).prop_map(Op::Answer),
    ]
}

proptest! {
    /// Whatever the order of appends, syncs, fetches, time and the
    /// controller's answers: the high watermark never goes back, never
    /// passes the leader's durable end, and never passes what any member
    /// of the ISR (or of a change in flight) holds on disk. So a leader
    /// elected from the ISR has every committed offset.
    #[test]
    fn no_committed_offset_is_missing_from_an_in_sync_replica(
        min_isr in 1usize..4,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut l = leader(&[1, 2, 3], min_isr);
        let (mut now, mut end, mut durable) = (0u64, 0i64, 0i64);
        let mut followers = [0i64; 2];
        let mut last_hw = Offset(0);
        let mut epoch = 5;
        for op in ops {
            let out = match op {
                Op::Append(k) => { end += k; l.step(now, log(end, durable)) }
                Op::Sync => { durable = end; l.step(now, log(end, durable)) }
                Op::Fetch(f, d) => {
                    // A follower's disk only grows, and holds at most what
                    // the leader appended.
                    followers[f] = (followers[f] + d).min(end).max(followers[f]);
                    l.step(now, fetch(f as i32 + 2, followers[f]))
                }
                Op::Time(ms) => { now += ms; l.step(now, Input::Tick) }
                Op::Answer(kind) => match l.pending_isr().map(<[NodeId]>::to_vec) {
                    Some(isr) if kind == 0 => {
                        epoch += 1;
                        l.step(now, Input::IsrCommitted { isr, partition_epoch: epoch })
                    }
                    Some(isr) if kind == 1 => {
                        l.step(now, Input::IsrRefused { isr, partition_epoch: epoch })
                    }
                    Some(isr) if kind == 2 => {
                        l.step(now, Input::IsrUnknown { isr, partition_epoch: epoch })
                    }
                    Some(_) => {
                        let isr = l.isr().to_vec();
                        l.step(now, Input::IsrCommitted { isr, partition_epoch: epoch })
                    }
                    None => Vec::new(),
                },
            };
            for o in &out {
                if let Output::ProposeIsr { isr, .. } = o {
                    prop_assert!(isr.contains(&n(1)), "the leader never leaves its ISR");
                }
            }
            let hw = l.high_watermark();
            prop_assert!(hw >= last_hw, "went back from {last_hw:?} to {hw:?}");
            prop_assert!(hw.0 <= durable, "passed the leader's durable end");
            for m in l.maximal_isr() {
                let held = if m == n(1) { durable } else { followers[(m.0 - 2) as usize] };
                prop_assert!(hw.0 <= held, "{hw:?} passes what in-sync {m:?} holds ({held})");
            }
            if l.isr().len() < min_isr {
                prop_assert!(!l.accepts_acks_all());
            }
            last_hw = hw;
        }
        // Then everything syncs and both followers catch up: with enough
        // members in sync, the watermark reaches the end.
        l.step(now, log(end, end));
        for _ in 0..4 {
            now += 1;
            l.step(now, fetch(2, end));
            l.step(now, fetch(3, end));
            if let Some(isr) = l.pending_isr().map(<[NodeId]>::to_vec) {
                epoch += 1;
                l.step(now, Input::IsrCommitted { isr, partition_epoch: epoch });
            }
        }
        prop_assert_eq!(l.high_watermark(), Offset(end));
    }
}
