//! The leader-epoch cache of a partition's log (Kafka's
//! `leader-epoch-checkpoint`, KIP-101 and KIP-279), and the follower's
//! truncation rule it serves.
//!
//! Every batch carries the epoch of the leader that appended it. The cache
//! records, for each epoch, the first offset written in it. From that:
//!
//! - **OffsetForLeaderEpoch** ([`EpochCache::end_offset_for`]): for an
//!   epoch a follower names, the largest epoch at or below it that this log
//!   knows, and the offset where that epoch ends here (the start of the
//!   next known epoch, or the log end for the latest).
//! - **Truncation** ([`divergence_point`]): a follower whose last epoch
//!   is `e` asks the leader for `e`'s end; it keeps its log only up to
//!   the smaller of the leader's answer and its own end of that epoch,
//!   and asks again with the epoch before when the leader answered an
//!   older epoch. After that its log is a prefix of the leader's, so a
//!   diverging suffix (written by a deposed leader, never committed) is
//!   cut before anything new is appended.
//!
//! Lives on: the shard that owns the partition, beside its log (persisted
//! with the log's checkpoint, by the host).
//!
//! The cache type itself lives in `corelog-model` (re-exported here), so
//! that the storage layer can keep one per log without importing this crate.

use corelog_model::{LeaderEpoch, Offset};

pub use corelog_model::epochs::{EpochCache, UNDEFINED};

/// The follower's truncation rule (KIP-279, as Kafka's fetcher applies
/// it), one exchange of it. In: the follower's cache, log end and high
/// watermark, and the leader's answer to OffsetForLeaderEpoch for the
/// follower's latest epoch. Out: the offset to truncate the follower's log
/// to (everything below is kept), and, when the follower's log may diverge
/// earlier still, the epoch to ask about next.
pub fn divergence_point(
    follower: &EpochCache,
    follower_end: Offset,
    follower_high_watermark: Offset,
    leader_answer: (LeaderEpoch, Offset),
) -> (Offset, Option<LeaderEpoch>) {
    let (leader_epoch, leader_end) = leader_answer;
    if leader_epoch == UNDEFINED.0 {
        // The leader knows no epoch at or before the follower's: keep what
        // was committed, as Kafka does.
        return (follower_high_watermark.min(follower_end), None);
    }
    match follower.end_offset_for(leader_epoch, follower_end) {
        // Every epoch the follower holds is newer than the leader's
        // answer: all of it diverges from where its first epoch starts
        // (Kafka answers such a request with that start). Keeping up to
        // the leader's end instead kept a deposed leader's batches where
        // the leader has others (the seeded simulation `tests/sim.rs`
        // found that).
        (e, _) if e == UNDEFINED.0 => {
            let first = follower
                .entries()
                .first()
                .map_or(follower_end, |&(_, start)| start);
            (leader_end.min(first).min(follower_end), None)
        }
        // Both hold the leader's epoch: they agree up to where the
        // shorter one ends it.
        (e, my_end) if e == leader_epoch => (leader_end.min(my_end).min(follower_end), None),
        // The follower's largest epoch below the leader's ends at
        // `my_end` here; what follows is of epochs the leader does not
        // have. Cut there and ask about that epoch.
        (e, my_end) => (my_end.min(follower_end), Some(e)),
    }
}
