//! What the replication tests share: logs as the epoch of each offset,
//! and histories of a leader and a follower that diverged.

use corelog_model::{LeaderEpoch, Offset};
use corelog_replication::epochs::EpochCache;
use proptest::prelude::*;

/// The cache of a log given as the epoch of each offset.
pub fn cache_of(log: &[i32]) -> EpochCache {
    let mut c = EpochCache::new();
    for (i, ep) in log.iter().enumerate() {
        c.assign(LeaderEpoch(*ep), Offset(i as i64));
    }
    c
}

/// A leader's log (the epoch of each offset; leader epochs are even), the
/// length of the prefix a follower shares with it, and the follower's log:
/// that prefix, then entries of deposed leaders (odd epochs the leader
/// never had), all older than the leader's latest epoch.
pub fn histories() -> impl Strategy<Value = (Vec<i32>, Vec<i32>, usize)> {
    (
        proptest::collection::vec((1i32..4, 1usize..5), 1..8),
        0usize..40,
        proptest::collection::vec(1usize..5, 0..4),
    )
        .prop_map(|(segments, cut, deposed)| {
            let mut leader = Vec::new();
            let mut epoch = 0;
            for (step, len) in segments {
                epoch += 2 * step;
                leader.extend(std::iter::repeat_n(epoch, len));
            }
            let k = cut.min(leader.len());
            let mut follower = leader[..k].to_vec();
            let top = *leader.last().unwrap();
            let mut d = follower.last().copied().unwrap_or(0) + 1;
            for len in deposed {
                if d % 2 == 0 {
                    d += 1;
                }
                if d >= top {
                    break;
                }
                follower.extend(std::iter::repeat_n(d, len));
                d += 2;
            }
            (leader, follower, k)
        })
}
