//! A leader and a follower with a diverging log, driven together through
//! random interleavings: the follower cuts its log to the common prefix
//! before it appends anything, catches up, and the leader's high watermark
//! counts only what the follower made durable.

use corelog_model::{LeaderEpoch, NodeId, Offset};
use corelog_replication::follower::{self, Follower};
use corelog_replication::{Input, Leader, ReplicationConfig, Takeover};
use proptest::prelude::*;

mod common;
use common::{cache_of, histories};

#[derive(Debug, Clone)]
enum Op {
    /// The leader appends this many records in its epoch.
    Append(usize),
    LeaderSync,
    /// The follower's disk catches up with its log.
    FollowerSync,
    /// The next request in flight gets its answer.
    Deliver,
    /// The request in flight is lost.
    Lose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..6).prop_map(Op::Append),
        Just(Op::LeaderSync),
        Just(Op::FollowerSync),
        Just(Op::Deliver),
        Just(Op::Deliver),
        Just(Op::Lose),
    ]
}

proptest! {
    #[test]
    fn a_diverging_follower_is_cut_to_the_common_prefix_then_catches_up(
        h in histories(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let (mut leader_log, mut follower_log, common) = h;
        // The new leader takes over at the next epoch, its log all durable.
        let epoch = LeaderEpoch(leader_log.last().copied().unwrap() + 2);
        let mut leader_cache = cache_of(&leader_log);
        let mut leader_durable = leader_log.len() as i64;
        let mut leader = Leader::new(
            NodeId(1),
            Takeover {
                replicas: vec![NodeId(1), NodeId(2)],
                isr: vec![NodeId(1), NodeId(2)],
                partition_epoch: 0,
                log_end: Offset(leader_log.len() as i64),
                log_durable: Offset(leader_durable),
                high_watermark: Offset(0),
            },
            ReplicationConfig::default(),
            0,
        );
        let mut f = Follower::new(
            cache_of(&follower_log),
            Offset(follower_log.len() as i64),
            Offset(follower_log.len() as i64),
            Offset(0),
        );
        // Truncations are the host's own work, done at once; requests to
        // the leader are in flight until delivered or lost.
        let mut in_flight: Vec<follower::Output> = Vec::new();
        let absorb = |outs: Vec<follower::Output>,
                          log: &mut Vec<i32>,
                          in_flight: &mut Vec<follower::Output>| {
            for o in outs {
                match o {
                    follower::Output::Truncate { to } => log.truncate(to.0 as usize),
                    follower::Output::HighWatermark(_) => {}
                    request => in_flight.push(request),
                }
            }
        };
        absorb(
            f.step(follower::Input::Leader { leader: NodeId(1), leader_epoch: epoch }),
            &mut follower_log,
            &mut in_flight,
        );
        let mut fetched_any = false;
        let mut now = 0;
        let drain = std::iter::repeat_n(Op::Deliver, 60).chain([Op::LeaderSync, Op::FollowerSync])
            .chain(std::iter::repeat_n(Op::Deliver, 4));
        for op in ops.into_iter().chain(drain) {
            now += 10;
            match op {
                Op::Append(k) => {
                    let start = leader_log.len() as i64;
                    leader_log.extend(std::iter::repeat_n(epoch.0, k));
                    leader_cache.assign(epoch, Offset(start));
                    leader.step(now, Input::LeaderLog {
                        end: Offset(leader_log.len() as i64),
                        durable: Offset(leader_durable),
                    });
                }
                Op::LeaderSync => {
                    leader_durable = leader_log.len() as i64;
                    leader.step(now, Input::LeaderLog {
                        end: Offset(leader_log.len() as i64),
                        durable: Offset(leader_durable),
                    });
                }
                Op::FollowerSync => {
                    f.step(follower::Input::Durable(Offset(follower_log.len() as i64)));
                }
                Op::Lose => {
                    if !in_flight.is_empty() {
                        in_flight.clear();
                        absorb(f.step(follower::Input::Failed), &mut follower_log, &mut in_flight);
                    }
                }
                Op::Deliver => {
                    let outs = std::mem::take(&mut in_flight);
                    for o in outs {
                        match o {
                            follower::Output::Truncate { .. } | follower::Output::HighWatermark(_) => {}
                            follower::Output::AskEpoch { leader_epoch, epoch: asked, .. } => {
                                let answer = leader_cache
                                    .end_offset_for(asked, Offset(leader_log.len() as i64));
                                let before = follower_log.len();
                                absorb(
                                    f.step(follower::Input::EpochAnswer { leader_epoch, answer }),
                                    &mut follower_log,
                                    &mut in_flight,
                                );
                                // Never below the common prefix, and only
                                // while nothing new was fetched.
                                prop_assert!(follower_log.len() >= common.min(before));
                                prop_assert!(follower_log.len() == before || !fetched_any);
                            }
                            follower::Output::Fetch { leader_epoch, offset, durable, .. } => {
                                // Nothing is fetched before the log is a
                                // prefix of the leader's.
                                prop_assert_eq!(offset.0 as usize, follower_log.len());
                                prop_assert_eq!(&follower_log[..], &leader_log[..follower_log.len()]);
                                fetched_any = true;
                                leader.step(now, Input::FollowerFetch {
                                    follower: NodeId(2),
                                    durable,
                                });
                                let from = offset.0 as usize;
                                let to = (from + 3).min(leader_log.len());
                                let mut epochs = Vec::new();
                                for i in from..to {
                                    if i == from || leader_log[i] != leader_log[i - 1] {
                                        epochs.push((LeaderEpoch(leader_log[i]), Offset(i as i64)));
                                    }
                                }
                                follower_log.extend_from_slice(&leader_log[from..to]);
                                let outs = f.step(follower::Input::Fetched {
                                    leader_epoch,
                                    end: Offset(to as i64),
                                    epochs,
                                    leader_high_watermark: leader.high_watermark(),
                                });
                                for o in &outs {
                                    if let follower::Output::HighWatermark(hw) = o {
                                        prop_assert!(*hw <= leader.high_watermark());
                                    }
                                }
                                absorb(outs, &mut follower_log, &mut in_flight);
                            }
                        }
                    }
                }
            }
            // Whatever the leader calls committed is on the follower's disk.
            prop_assert!(leader.high_watermark() <= f.durable());
            prop_assert!(leader.high_watermark().0 <= leader_durable);
        }
        prop_assert_eq!(&follower_log, &leader_log, "caught up");
        prop_assert_eq!(f.epochs(), &leader_cache);
        prop_assert_eq!(leader.high_watermark(), Offset(leader_log.len() as i64));
    }
}
