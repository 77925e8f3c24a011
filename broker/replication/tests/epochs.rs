//! The leader-epoch cache and the follower's truncation (KIP-101/279).

use corelog_model::{LeaderEpoch, Offset};
use corelog_replication::epochs::{divergence_point, EpochCache, UNDEFINED};
use proptest::prelude::*;

mod common;
use common::{cache_of, histories};

fn e(n: i32) -> LeaderEpoch {
    LeaderEpoch(n)
}

fn o(n: i64) -> Offset {
    Offset(n)
}

#[test]
fn offset_for_leader_epoch_answers_like_kafka() {
    // Epoch 1 at 0..5, epoch 3 at 5..9, epoch 4 from 9, log end 12.
    let c = cache_of(&[1, 1, 1, 1, 1, 3, 3, 3, 3, 4, 4, 4]);
    assert_eq!(c.entries(), &[(e(1), o(0)), (e(3), o(5)), (e(4), o(9))]);
    assert_eq!(c.end_offset_for(e(1), o(12)), (e(1), o(5)));
    // An epoch this log skipped: the largest known below it.
    assert_eq!(c.end_offset_for(e(2), o(12)), (e(1), o(5)));
    assert_eq!(c.end_offset_for(e(3), o(12)), (e(3), o(9)));
    assert_eq!(c.end_offset_for(e(4), o(12)), (e(4), o(12)));
    assert_eq!(c.end_offset_for(e(9), o(12)), (e(4), o(12)));
    assert_eq!(c.end_offset_for(e(0), o(12)), UNDEFINED);
    assert_eq!(EpochCache::new().end_offset_for(e(5), o(0)), UNDEFINED);
}

#[test]
fn a_follower_whose_epochs_are_all_newer_than_the_leaders_answer_keeps_none_of_them() {
    // The follower led epoch 1 from offset 0 and was deposed; the leader
    // holds only epoch 0 up to 5 below its own epoch. None of the
    // follower's batches are the leader's, though its log reaches 8.
    let follower = cache_of(&[1, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(
        divergence_point(&follower, o(8), o(0), (e(0), o(5))),
        (o(0), None)
    );
    // Its epochs start at 3 (the log start moved there): cut to 3.
    let mut moved = EpochCache::new();
    moved.assign(e(1), o(3));
    assert_eq!(
        divergence_point(&moved, o(8), o(3), (e(0), o(5))),
        (o(3), None)
    );
}

#[test]
fn assign_ignores_older_epochs_and_truncation_drops_entries() {
    let mut c = cache_of(&[1, 1, 2, 2, 5]);
    c.assign(e(3), o(7));
    assert_eq!(c.latest(), Some(e(5)), "an older epoch cannot start later");
    c.truncate_from(o(4));
    assert_eq!(c.entries(), &[(e(1), o(0)), (e(2), o(2))]);
    c.truncate_before(o(3));
    assert_eq!(c.entries(), &[(e(2), o(3))]);
    // A newer epoch starting below an entry replaces it.
    c.assign(e(7), o(3));
    assert_eq!(c.entries(), &[(e(7), o(3))]);
}

#[test]
fn a_suffix_of_a_deposed_leader_is_cut_at_the_divergence() {
    // Leader: epochs 1,1,1,3,3,3. The follower got 1,1,1 then, from a
    // deposed leader of epoch 2, 2,2,2,2.
    let leader = cache_of(&[1, 1, 1, 3, 3, 3]);
    let follower = cache_of(&[1, 1, 1, 2, 2, 2, 2]);
    let answer = leader.end_offset_for(follower.latest().unwrap(), o(6));
    assert_eq!(answer, (e(1), o(3)));
    // The follower holds epoch 1 as well: they agree up to its end.
    assert_eq!(
        divergence_point(&follower, o(7), o(2), answer),
        (o(3), None)
    );
}

#[test]
fn a_follower_without_the_leaders_epoch_cuts_its_own_and_asks_again() {
    // Leader: 1,1,4,4. Follower: 1,1,1 (a third entry of epoch 1 the
    // leader lost) and 3,3 from a deposed leader; its latest epoch 3
    // makes the leader answer epoch 1 ending at 2.
    let leader = cache_of(&[1, 1, 4, 4]);
    let follower = cache_of(&[1, 1, 1, 3, 3]);
    let answer = leader.end_offset_for(e(3), o(4));
    assert_eq!(answer, (e(1), o(2)));
    assert_eq!(
        divergence_point(&follower, o(5), o(0), answer),
        (o(2), None)
    );
    // Leader 1,1,2,2 and follower 1,1,3: the leader answers epoch 2, which
    // the follower lacks: it cuts where its epoch 1 ends, and asks about 1.
    let leader = cache_of(&[1, 1, 2, 2, 5]);
    let follower = cache_of(&[1, 1, 1, 3]);
    let answer = leader.end_offset_for(e(3), o(5));
    assert_eq!(answer, (e(2), o(4)));
    assert_eq!(
        divergence_point(&follower, o(4), o(0), answer),
        (o(3), Some(e(1)))
    );
    let mut follower = follower;
    follower.truncate_from(o(3));
    let answer = leader.end_offset_for(e(1), o(5));
    assert_eq!(
        divergence_point(&follower, o(3), o(0), answer),
        (o(2), None)
    );
}

proptest! {
    /// Whatever the history: after the exchanges, the follower keeps at
    /// least the common prefix and nothing that disagrees with the leader.
    #[test]
    fn truncation_leaves_the_follower_a_prefix_of_the_leader(h in histories()) {
        let (leader, mut follower, common) = h;
        let leader_cache = cache_of(&leader);
        let leader_end = o(leader.len() as i64);
        let mut cache = cache_of(&follower);
        let mut ask = cache.latest();
        let mut rounds = 0;
        while let Some(epoch) = ask {
            rounds += 1;
            prop_assert!(rounds <= 20, "did not converge");
            let answer = leader_cache.end_offset_for(epoch, leader_end);
            let (to, next) = divergence_point(&cache, o(follower.len() as i64), o(0), answer);
            prop_assert!(to.0 >= 0 && to.0 as usize <= follower.len());
            follower.truncate(to.0 as usize);
            cache.truncate_from(to);
            ask = next;
        }
        prop_assert!(follower.len() >= common, "cut {} below the common prefix {common}", follower.len());
        prop_assert_eq!(&follower[..], &leader[..follower.len()]);
    }
}
