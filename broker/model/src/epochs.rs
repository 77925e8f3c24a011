//! The leader-epoch cache of a partition's log (Kafka's
//! `leader-epoch-checkpoint`, KIP-101 and KIP-279).
//!
//! Every batch carries the epoch of the leader that appended it
//! (`partitionLeaderEpoch` in the batch header). The cache records, for
//! each epoch, the first offset written in it, so that a log can say where
//! any epoch ends: the answer to OffsetForLeaderEpoch, which consumers use
//! to detect a truncated log and followers use to cut a diverging suffix.
//!
//! It lives here, below storage and replication, because both use it: the
//! storage layer keeps one per partition log (persisted with the log's
//! checkpoint), and the replication state machines reason over it.

use crate::{LeaderEpoch, Offset};

/// Kafka's answer to an epoch this log has never heard of and nothing
/// before it either: UNDEFINED_EPOCH (-1) and UNDEFINED_EPOCH_OFFSET (-1).
pub const UNDEFINED: (LeaderEpoch, Offset) = (LeaderEpoch(-1), Offset(-1));

/// `(epoch, start offset)` entries, both strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    pub fn new() -> EpochCache {
        EpochCache::default()
    }

    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    /// The latest epoch, if any batch was written.
    pub fn latest(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that a batch of `epoch` starts at `offset` (the log end).
    ///
    /// Entries that start at or after `offset` go first, whatever their
    /// epoch: no batch follows them (an epoch a leader recorded when it
    /// took over and wrote nothing in, say), and the batch now written
    /// there says which epoch the log holds from `offset` (Kafka's assign
    /// does the same). Then an epoch older than the latest left is ignored
    /// (it cannot start after a newer one; the log refuses such a batch,
    /// see [`Self::latest_before`]), as is the latest itself.
    pub fn assign(&mut self, epoch: LeaderEpoch, offset: Offset) {
        while self
            .entries
            .last()
            .is_some_and(|&(_, start)| start >= offset)
        {
            self.entries.pop();
        }
        if self
            .entries
            .last()
            .is_some_and(|&(latest, _)| epoch <= latest)
        {
            return;
        }
        self.entries.push((epoch, offset));
    }

    /// The latest epoch that started below `offset`: the epoch of the
    /// log's batches before a batch appended at `offset`, which that batch
    /// may not be older than. Epochs recorded at `offset` or later hold
    /// no batch yet, and do not count.
    pub fn latest_before(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries
            .iter()
            .rev()
            .find(|&&(_, start)| start < offset)
            .map(|&(e, _)| e)
    }

    /// For OffsetForLeaderEpoch: the largest known epoch at or below
    /// `epoch`, and where it ends in a log that ends at `log_end`.
    /// [`UNDEFINED`] when every known epoch is newer (or none is known).
    pub fn end_offset_for(&self, epoch: LeaderEpoch, log_end: Offset) -> (LeaderEpoch, Offset) {
        let Some(i) = self.entries.iter().rposition(|&(e, _)| e <= epoch) else {
            return UNDEFINED;
        };
        let end = self.entries.get(i + 1).map_or(log_end, |&(_, start)| start);
        (self.entries[i].0, end.min(log_end))
    }

    /// OffsetForLeaderEpoch exactly as a Kafka leader answers it
    /// (`LeaderEpochFileCache.endOffsetFor`), for the API:
    /// - the latest epoch ends at the log end;
    /// - an epoch newer than any known is [`UNDEFINED`] (a leader records
    ///   its own epoch when it takes over, so only a caller ahead of it
    ///   asks this);
    /// - an epoch older than any known ends where the oldest known starts
    ///   (the log start moved past it), answered with the asked epoch;
    /// - otherwise the largest known epoch at or below the asked one, and
    ///   the start of the epoch after it.
    ///
    /// [`Self::end_offset_for`] differs only at the two edges: it answers
    /// a newer epoch with the latest one and an older one with
    /// [`UNDEFINED`], which the replication state machines' models assume.
    pub fn answer_offset_for_leader_epoch(
        &self,
        epoch: LeaderEpoch,
        log_end: Offset,
    ) -> (LeaderEpoch, Offset) {
        let Some(&(latest, _)) = self.entries.last() else {
            return UNDEFINED;
        };
        if epoch.0 < 0 || epoch > latest {
            return UNDEFINED;
        }
        if epoch == latest {
            return (epoch, log_end);
        }
        match self.entries.iter().rposition(|&(e, _)| e <= epoch) {
            None => (epoch, self.entries[0].1.min(log_end)),
            Some(i) => (self.entries[i].0, self.entries[i + 1].1.min(log_end)),
        }
    }

    /// The epoch of the batch holding `offset`, if the cache knows it.
    pub fn epoch_at(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries
            .iter()
            .rev()
            .find(|&&(_, start)| start <= offset)
            .map(|&(e, _)| e)
    }

    /// The log was cut at `offset` (everything from it removed): entries
    /// that start there or later go.
    pub fn truncate_from(&mut self, offset: Offset) {
        while self
            .entries
            .last()
            .is_some_and(|&(_, start)| start >= offset)
        {
            self.entries.pop();
        }
    }

    /// The log now starts at `offset` (retention, DeleteRecords): the
    /// epoch in force there starts there.
    pub fn truncate_before(&mut self, offset: Offset) {
        let keep_from = self
            .entries
            .iter()
            .rposition(|&(_, start)| start <= offset)
            .unwrap_or(0);
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut() {
            first.1 = first.1.max(offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::new();
        for &(e, o) in entries {
            c.assign(LeaderEpoch(e), Offset(o));
        }
        c
    }

    fn answer(c: &EpochCache, epoch: i32, end: i64) -> (i32, i64) {
        let (e, o) = c.answer_offset_for_leader_epoch(LeaderEpoch(epoch), Offset(end));
        (e.0, o.0)
    }

    #[test]
    fn offset_for_leader_epoch_is_answered_as_a_kafka_leader_answers_it() {
        // Epoch 1 from 5, epoch 3 from 9, epoch 4 from 12; the log ends at 20.
        let c = cache(&[(1, 5), (3, 9), (4, 12)]);
        assert_eq!(
            answer(&c, 4, 20),
            (4, 20),
            "the latest epoch ends at the log end"
        );
        assert_eq!(answer(&c, 3, 20), (3, 12));
        assert_eq!(
            answer(&c, 2, 20),
            (1, 9),
            "an unknown epoch: the one below it"
        );
        assert_eq!(answer(&c, 1, 20), (1, 9));
        assert_eq!(
            answer(&c, 0, 20),
            (0, 5),
            "older than any: where the oldest starts"
        );
        assert_eq!(answer(&c, 5, 20), (-1, -1), "newer than any: undefined");
        assert_eq!(answer(&c, -1, 20), (-1, -1));
        assert_eq!(answer(&EpochCache::new(), 0, 0), (-1, -1));
    }

    #[test]
    fn a_batch_replaces_an_epoch_recorded_where_no_batch_followed() {
        // A leader of epoch 4 took over at 10 and wrote nothing; as a
        // follower it then gets the new leader's batches of epoch 3 from 10.
        let mut c = cache(&[(1, 0), (4, 10)]);
        assert_eq!(c.latest_before(Offset(10)), Some(LeaderEpoch(1)));
        c.assign(LeaderEpoch(3), Offset(10));
        assert_eq!(
            c.entries(),
            &[(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(10))]
        );
        // An older epoch than a batch below it is still ignored.
        c.assign(LeaderEpoch(2), Offset(12));
        assert_eq!(c.latest(), Some(LeaderEpoch(3)));
        assert_eq!(c.latest_before(Offset(12)), Some(LeaderEpoch(3)));
    }

    #[test]
    fn the_epoch_of_an_offset_is_the_latest_that_started_at_or_before_it() {
        let c = cache(&[(1, 5), (3, 9)]);
        assert_eq!(c.epoch_at(Offset(4)), None);
        assert_eq!(c.epoch_at(Offset(5)), Some(LeaderEpoch(1)));
        assert_eq!(c.epoch_at(Offset(8)), Some(LeaderEpoch(1)));
        assert_eq!(c.epoch_at(Offset(100)), Some(LeaderEpoch(3)));
    }
}
