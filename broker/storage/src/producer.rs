//! Idempotent producer state of one partition, with Kafka's rules
//! (ProducerStateManager): per producer id, the current epoch and the
//! sequence ranges and offsets of its last few batches.
//!
//! - A batch whose epoch and sequence range match a remembered batch is a
//!   duplicate (a retry): it is answered with the original offsets and not
//!   appended again.
//! - A batch from an older epoch is refused (INVALID_PRODUCER_EPOCH).
//! - In the same epoch, the first sequence must follow the last one
//!   (OUT_OF_ORDER_SEQUENCE_NUMBER otherwise). A new epoch starts at 0.
//! - A producer the partition has no state for may start at any sequence,
//!   as Kafka allows after its state was removed by retention.
//!
//! Transactions (Kafka's `ProducerStateEntry.currentTxnFirstOffset` and
//! `coordinatorEpoch`): the first transactional data batch of a producer
//! with no transaction ongoing opens one at its base offset; a marker
//! (control batch) from the producer closes it, raises the producer's epoch
//! if the marker's is newer (a coordinator aborting a fenced or timed-out
//! transaction bumps it) and records the coordinator epoch. An ABORT that
//! closes a transaction yields a [`TxnIndexEntry`] for the aborted-
//! transaction index. Leader appends, follower appends and recovery's
//! replay all go through [`ProducerStates::record_batch`], so the three
//! agree.
//!
//! The log's last stable offset may never pass the first offset of an
//! ongoing transaction; so a producer with one is never evicted by the
//! [`PRODUCERS_PER_PARTITION_MAX`] bound (the oldest one without is).
//!
//! Going back: every change of a producer's epoch, transaction or
//! coordinator epoch is noted in a journal with the state it replaced, so
//! that the state as of an earlier offset can be restored exactly (the
//! checkpoint's snapshot as of the recovery point, a discarded write, a
//! truncation). The journal keeps every change at or after its horizon
//! ([`ProducerStates::journal_horizon`]); the log prunes it (see
//! `PartitionLog::prune_txn_journal`).
//!
//! Lives on: the partition's log. The state as of the recovery point is in
//! the checkpoint; recovery replays the batches after it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::txn::{MarkerKind, ParsedMarker, TxnIndexEntry, TxnMarker};
use crate::types::{Offset, ProducerEpoch, ProducerId};

/// Batches remembered per producer: Kafka's `max.in.flight.requests` bound
/// for idempotence is 5, so a retry can only be of one of the last 5.
pub const REMEMBERED_BATCHES: usize = 5;

/// Producer ids a partition remembers; beyond it the least recently
/// written one without an ongoing transaction is forgotten (it may then
/// restart at any sequence). Producers with ongoing transactions are never
/// forgotten, so there may be more of them than this.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// Journal entries kept beyond what a discarded write or a checkpoint
/// needs (those at or after the flushed offset are always kept), for a
/// truncation to restore the state from. A truncation to before the
/// journal's horizon rebuilds the state by scanning the log instead.
pub const TXN_JOURNAL_ENTRIES_MAX: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: ProducerEpoch,
    pub batches: VecDeque<BatchMeta>,
    /// The first offset of the producer's ongoing transaction.
    pub current_txn_first_offset: Option<Offset>,
    /// The coordinator epoch of the last marker seen from it; -1 if none.
    pub coordinator_epoch: i32,
    /// The newest timestamp of its last batch or marker; -1 if unknown.
    pub last_timestamp_ms: i64,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: ProducerEpoch(0),
            batches: VecDeque::new(),
            current_txn_first_offset: None,
            coordinator_epoch: -1,
            last_timestamp_ms: -1,
        }
    }
}

impl ProducerEntry {
    /// Nothing worth remembering: no batch, no transaction, no marker.
    fn is_blank(&self) -> bool {
        self.batches.is_empty()
            && self.current_txn_first_offset.is_none()
            && self.coordinator_epoch < 0
    }

    fn txn_fields(&self) -> TxnFields {
        TxnFields {
            epoch: self.epoch,
            current_txn_first_offset: self.current_txn_first_offset,
            coordinator_epoch: self.coordinator_epoch,
        }
    }

    fn set_txn_fields(&mut self, f: TxnFields) {
        self.epoch = f.epoch;
        self.current_txn_first_offset = f.current_txn_first_offset;
        self.coordinator_epoch = f.coordinator_epoch;
    }
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStateView {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The last sequence of its last remembered batch; -1 if none.
    pub last_sequence: i32,
    /// -1 if unknown.
    pub last_timestamp_ms: i64,
    /// -1 if no marker was seen.
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: Option<Offset>,
}

/// What a producer's batch is, before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    New,
    /// A retry of a batch already in the log at these offsets.
    Duplicate(BatchMeta),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// Kafka: INVALID_PRODUCER_EPOCH.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("producer {producer_id}: sequence {got} does not follow {last}")]
    OutOfOrder {
        producer_id: ProducerId,
        got: i32,
        last: i32,
    },
}

/// Why a transaction marker was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// The marker's producer epoch is older than the producer's. Kafka:
    /// PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for older clients).
    #[error(
        "marker for producer {producer_id} epoch {epoch} is older than the current epoch {current}"
    )]
    ProducerFenced {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// The marker's coordinator epoch is older than the last one seen for
    /// the producer: a deposed coordinator. Kafka: TRANSACTION_COORDINATOR_FENCED.
    #[error("marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, after epoch {last}")]
    CoordinatorFenced {
        producer_id: ProducerId,
        coordinator_epoch: i32,
        last: i32,
    },
}

/// The fields the journal restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxnFields {
    epoch: ProducerEpoch,
    current_txn_first_offset: Option<Offset>,
    coordinator_epoch: i32,
}

/// A change to a producer's [`TxnFields`] by the batch at `offset`.
#[derive(Debug, Clone, Copy)]
struct TxnChange {
    offset: i64,
    producer_id: ProducerId,
    /// What they were before; `None` when the batch created the producer.
    before: Option<TxnFields>,
}

#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    producers: HashMap<ProducerId, ProducerEntry>,
    /// Ongoing transactions by first offset.
    ongoing: BTreeMap<i64, ProducerId>,
    /// Changes in offset order.
    journal: VecDeque<TxnChange>,
    /// The journal holds every change at or after this offset.
    journal_horizon: Offset,
}

fn last_seq_of(h: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX, as Kafka's do.
    ((h.base_sequence as i64 + h.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The last offset of each remembered producer's last batch: the
    /// batches the cleaner keeps (empty if need be) so that a producer's
    /// sequence survives a rebuild of producer state from the log.
    pub(crate) fn last_batch_offsets(&self) -> std::collections::HashSet<i64> {
        self.producers
            .values()
            .filter_map(|e| e.batches.back().map(|b| b.last_offset))
            .collect()
    }

    /// The smallest first offset of an ongoing transaction.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.ongoing.keys().next().map(|&o| Offset(o))
    }

    /// The first offset of the producer's ongoing transaction, if any.
    pub fn ongoing_transaction(&self, producer_id: ProducerId) -> Option<Offset> {
        self.producers
            .get(&producer_id)
            .and_then(|e| e.current_txn_first_offset)
    }

    /// Every producer, by id.
    pub fn views(&self) -> Vec<ProducerStateView> {
        let mut out: Vec<ProducerStateView> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerStateView {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: e.last_timestamp_ms,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset,
            })
            .collect();
        out.sort_by_key(|v| v.producer_id);
        out
    }

    /// The offset from which the state can be rewound exactly.
    pub fn journal_horizon(&self) -> Offset {
        self.journal_horizon
    }

    /// Checks a batch with producer fields against the state, changing nothing.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return Ok(SequenceCheck::New);
        };
        if h.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        let last_seq = last_seq_of(h);
        if h.producer_epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
            {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
            if let Some(last) = entry.batches.back() {
                if !in_sequence(last.last_seq, h.base_sequence) {
                    return Err(SequenceError::OutOfOrder {
                        producer_id: h.producer_id,
                        got: h.base_sequence,
                        last: last.last_seq,
                    });
                }
            }
        } else if h.base_sequence != 0 && !entry.batches.is_empty() {
            // A bumped epoch starts its sequences again at 0.
            return Err(SequenceError::OutOfOrder {
                producer_id: h.producer_id,
                got: h.base_sequence,
                last: -1,
            });
        }
        Ok(SequenceCheck::New)
    }

    /// Checks a marker the coordinator asks the leader to write: not from
    /// an older producer epoch, nor from an older coordinator epoch than
    /// the last marker seen. A producer the partition has no state for, or
    /// no ongoing transaction of, passes (a coordinator retrying after a
    /// crash must succeed).
    pub fn check_marker(&self, marker: &TxnMarker) -> Result<(), MarkerError> {
        let Some(entry) = self.producers.get(&marker.producer_id) else {
            return Ok(());
        };
        if marker.producer_epoch < entry.epoch {
            return Err(MarkerError::ProducerFenced {
                producer_id: marker.producer_id,
                epoch: marker.producer_epoch,
                current: entry.epoch,
            });
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(MarkerError::CoordinatorFenced {
                producer_id: marker.producer_id,
                coordinator_epoch: marker.coordinator_epoch,
                last: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records any batch appended at `base` (`bytes` is the batch, for a
    /// marker's record): a data batch as [`Self::record`] does, a marker
    /// as the end of the producer's transaction. Returns the aborted
    /// transaction's index entry when the batch is an ABORT marker that
    /// closed one.
    pub fn record_batch(
        &mut self,
        h: &BatchHeader,
        bytes: &[u8],
        base: Offset,
    ) -> Option<TxnIndexEntry> {
        if !h.has_producer_id() {
            return None;
        }
        if h.is_control() {
            let marker = crate::txn::parse_marker(bytes, h)?;
            return self.record_marker(
                h.producer_id,
                h.producer_epoch,
                marker,
                base,
                h.max_timestamp_ms,
            );
        }
        self.record(h, base);
        None
    }

    /// Records a data batch appended at `base` (its header carries the
    /// producer's own base offset, which is ignored). Control batches are
    /// left to [`Self::record_batch`].
    pub fn record(&mut self, h: &BatchHeader, base: Offset) {
        if !h.has_producer_id() || h.is_control() {
            return;
        }
        self.make_room_for(h.producer_id);
        let before = self.producers.get(&h.producer_id).map(|e| e.txn_fields());
        let entry = self.producers.entry(h.producer_id).or_default();
        if entry
            .batches
            .back()
            .is_some_and(|b| b.last_offset >= base.0)
        {
            // Already known (recovery replaying what the checkpoint holds).
            return;
        }
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if h.base_sequence >= 0 {
            // A coordinator's batch has no sequence: nothing to dedupe.
            entry.batches.push_back(BatchMeta {
                first_seq: h.base_sequence,
                last_seq: last_seq_of(h),
                base_offset: base.0,
                last_offset: base.0 + h.last_offset_delta as i64,
            });
        }
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp_ms = h.max_timestamp_ms;
        if h.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(base);
            self.ongoing.insert(base.0, h.producer_id);
        }
        let after = entry.txn_fields();
        self.note(base, h.producer_id, before, after);
    }

    fn record_marker(
        &mut self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        marker: ParsedMarker,
        at: Offset,
        timestamp_ms: i64,
    ) -> Option<TxnIndexEntry> {
        self.make_room_for(producer_id);
        let before = self.producers.get(&producer_id).map(|e| e.txn_fields());
        let entry = self.producers.entry(producer_id).or_default();
        let completed = entry.current_txn_first_offset.take();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp_ms = timestamp_ms;
        let after = entry.txn_fields();
        if let Some(first) = completed {
            self.ongoing.remove(&first.0);
        }
        self.note(at, producer_id, before, after);
        match (marker.kind, completed) {
            (MarkerKind::Abort, Some(first)) => Some(TxnIndexEntry {
                producer_id,
                first_offset: first,
                last_offset: at,
                // The others' first unstable offset: all of them started
                // before the marker.
                last_stable_offset: self.first_unstable_offset().unwrap_or(at.plus(1)),
            }),
            _ => None,
        }
    }

    fn note(
        &mut self,
        at: Offset,
        producer_id: ProducerId,
        before: Option<TxnFields>,
        after: TxnFields,
    ) {
        if before != Some(after) {
            self.journal.push_back(TxnChange {
                offset: at.0,
                producer_id,
                before,
            });
        }
    }

    /// Forgets a producer if a new one would pass the bound.
    fn make_room_for(&mut self, producer_id: ProducerId) {
        if !self.producers.contains_key(&producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            self.evict_oldest();
        }
    }

    /// Forgets the least recently written producer without an ongoing
    /// transaction (none if every producer has one).
    fn evict_oldest(&mut self) {
        let oldest = self
            .producers
            .iter()
            .filter(|(_, e)| e.current_txn_first_offset.is_none())
            .min_by_key(|(_, e)| e.batches.back().map_or(i64::MIN, |b| b.last_offset))
            .map(|(&pid, _)| pid);
        if let Some(pid) = oldest {
            self.producers.remove(&pid);
        }
    }

    /// The transaction fields as of `end` of each producer that changed at
    /// or after it (`None`: it did not exist then).
    fn fields_as_of(&self, end: Offset) -> HashMap<ProducerId, Option<TxnFields>> {
        let mut out = HashMap::new();
        // Newest first: the earliest change at or after `end` is inserted
        // last and wins, and it holds the state before all of them.
        for c in self.journal.iter().rev().take_while(|c| c.offset >= end.0) {
            out.insert(c.producer_id, c.before);
        }
        out
    }

    /// Whether [`Self::rewind_to`] can restore the state as of `end`.
    pub fn can_rewind_to(&self, end: Offset) -> bool {
        end >= self.journal_horizon
    }

    /// Restores the state as of `end`: batches at or after it are
    /// forgotten (discarded by a failed write, or cut by a truncation),
    /// and epochs, transactions and coordinator epochs they changed are
    /// put back. Exact when [`Self::can_rewind_to`] `end`; otherwise only
    /// the batches are forgotten.
    pub fn rewind_to(&mut self, end: Offset) {
        for (pid, before) in self.fields_as_of(end) {
            match before {
                None => {
                    self.producers.remove(&pid);
                }
                Some(f) => self.producers.entry(pid).or_default().set_txn_fields(f),
            }
        }
        while self.journal.back().is_some_and(|c| c.offset >= end.0) {
            self.journal.pop_back();
        }
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < end.0);
            if entry
                .current_txn_first_offset
                .is_some_and(|first| first >= end)
            {
                entry.current_txn_first_offset = None;
            }
        }
        self.producers.retain(|_, e| !e.is_blank());
        self.rebuild_ongoing();
    }

    /// Forgets batches at or after `end` (they were discarded by a failed
    /// write), restoring the state as of `end` (see [`Self::rewind_to`]).
    pub fn forget_from(&mut self, end: Offset) {
        self.rewind_to(end);
    }

    fn rebuild_ongoing(&mut self) {
        self.ongoing = self
            .producers
            .iter()
            .filter_map(|(&pid, e)| e.current_txn_first_offset.map(|f| (f.0, pid)))
            .collect();
    }

    /// Drops journal entries below `keep_from`, and more (oldest first,
    /// never at or after `keep_always_from`) while it holds more than
    /// [`TXN_JOURNAL_ENTRIES_MAX`].
    pub(crate) fn prune_journal(&mut self, keep_from: Offset, keep_always_from: Offset) {
        while let Some(c) = self.journal.front().copied() {
            let below = c.offset < keep_from.0;
            let over =
                self.journal.len() > TXN_JOURNAL_ENTRIES_MAX && c.offset < keep_always_from.0;
            if !(below || over) {
                break;
            }
            self.journal.pop_front();
            self.journal_horizon = self.journal_horizon.max(Offset(c.offset + 1));
        }
    }

    /// The state as of `end`: only batches that end before it, and the
    /// transaction fields as they were then, for a checkpoint whose
    /// recovery point is `end`.
    pub fn snapshot_before(&self, end: Offset) -> Vec<(ProducerId, ProducerEntry)> {
        let as_of = self.fields_as_of(end);
        let mut out: Vec<(ProducerId, ProducerEntry)> = self
            .producers
            .iter()
            .filter_map(|(&pid, e)| {
                let fields = match as_of.get(&pid) {
                    Some(None) => return None,
                    Some(Some(f)) => *f,
                    None => e.txn_fields(),
                };
                let batches: VecDeque<BatchMeta> = e
                    .batches
                    .iter()
                    .filter(|b| b.last_offset < end.0)
                    .copied()
                    .collect();
                let mut entry = ProducerEntry {
                    batches,
                    last_timestamp_ms: e.last_timestamp_ms,
                    ..Default::default()
                };
                entry.set_txn_fields(fields);
                (!entry.is_blank()).then_some((pid, entry))
            })
            .collect();
        out.sort_by_key(|(pid, _)| *pid);
        out
    }

    pub fn restore(
        entries: impl IntoIterator<Item = (ProducerId, ProducerEntry)>,
    ) -> ProducerStates {
        let mut s = ProducerStates {
            producers: entries.into_iter().collect(),
            ..Default::default()
        };
        s.rebuild_ongoing();
        s
    }

    /// The checkpoint form of [`Self::snapshot_before`].
    pub fn to_checkpoint(&self, end: Offset) -> Vec<crate::checkpoint::ProducerMeta> {
        self.snapshot_before(end)
            .into_iter()
            .map(|(producer_id, e)| crate::checkpoint::ProducerMeta {
                producer_id: producer_id.0,
                epoch: e.epoch.0,
                batches: e
                    .batches
                    .iter()
                    .map(|b| crate::checkpoint::ProducerBatchMeta {
                        first_seq: b.first_seq,
                        last_seq: b.last_seq,
                        base_offset: b.base_offset,
                        last_offset: b.last_offset,
                    })
                    .collect(),
                current_txn_first_offset: e.current_txn_first_offset.map(|o| o.0),
                coordinator_epoch: e.coordinator_epoch,
                last_timestamp_ms: e.last_timestamp_ms,
            })
            .collect()
    }

    /// The state a checkpoint holds, as of its recovery point `as_of`: the
    /// journal starts there.
    pub fn from_checkpoint(
        metas: &[crate::checkpoint::ProducerMeta],
        as_of: Offset,
    ) -> ProducerStates {
        let mut s = Self::restore(metas.iter().map(|m| {
            let batches = m
                .batches
                .iter()
                .map(|b| BatchMeta {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                })
                .collect();
            (
                ProducerId(m.producer_id),
                ProducerEntry {
                    epoch: ProducerEpoch(m.epoch),
                    batches,
                    current_txn_first_offset: m.current_txn_first_offset.map(Offset),
                    coordinator_epoch: m.coordinator_epoch,
                    last_timestamp_ms: m.last_timestamp_ms,
                },
            )
        }));
        s.journal_horizon = as_of;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build::{batch, BatchSpec};

    fn h(pid: i64, epoch: i16, seq: i32, records: usize) -> BatchHeader {
        BatchHeader::parse(&batch(&BatchSpec {
            records,
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(epoch),
            base_sequence: seq,
            ..Default::default()
        }))
        .unwrap()
    }

    /// A transactional data batch of `records` records.
    fn txn(pid: i64, epoch: i16, seq: i32, records: usize) -> (BatchHeader, Vec<u8>) {
        let spec = BatchSpec {
            records,
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(epoch),
            base_sequence: seq,
            ..Default::default()
        };
        let b =
            crate::batch::build::wrap(&spec, 0x10, &crate::batch::build::records_section(&spec));
        (BatchHeader::parse(&b).unwrap(), b)
    }

    fn marker(
        pid: i64,
        epoch: i16,
        coordinator_epoch: i32,
        kind: MarkerKind,
    ) -> (BatchHeader, Vec<u8>) {
        let b = crate::txn::marker_batch(
            &TxnMarker {
                producer_id: ProducerId(pid),
                producer_epoch: ProducerEpoch(epoch),
                coordinator_epoch,
                kind,
            },
            5,
        );
        (BatchHeader::parse(&b).unwrap(), b)
    }

    fn rec(s: &mut ProducerStates, b: &(BatchHeader, Vec<u8>), at: i64) -> Option<TxnIndexEntry> {
        s.record_batch(&b.0, &b.1, Offset(at))
    }

    #[test]
    fn first_transactional_batch_opens_a_transaction_and_a_commit_marker_closes_it() {
        let mut s = ProducerStates::default();
        rec(&mut s, &txn(1, 0, 0, 2), 10);
        rec(&mut s, &txn(1, 0, 2, 2), 12);
        assert_eq!(s.ongoing_transaction(ProducerId(1)), Some(Offset(10)));
        assert_eq!(s.first_unstable_offset(), Some(Offset(10)));
        assert_eq!(rec(&mut s, &marker(1, 0, 3, MarkerKind::Commit), 14), None);
        assert_eq!(s.ongoing_transaction(ProducerId(1)), None);
        assert_eq!(s.first_unstable_offset(), None);
        let e = s.get(ProducerId(1)).unwrap();
        assert_eq!(e.coordinator_epoch, 3);
        assert_eq!(
            e.batches.len(),
            2,
            "a marker in the same epoch keeps the sequence state"
        );
        // The next transactional batch opens the next transaction.
        rec(&mut s, &txn(1, 0, 4, 1), 15);
        assert_eq!(s.ongoing_transaction(ProducerId(1)), Some(Offset(15)));
    }

    #[test]
    fn abort_marker_yields_an_index_entry_whose_lso_is_the_first_offset_still_open() {
        let mut s = ProducerStates::default();
        rec(&mut s, &txn(1, 0, 0, 1), 0);
        rec(&mut s, &txn(2, 0, 0, 1), 1);
        assert_eq!(
            rec(&mut s, &marker(1, 0, 0, MarkerKind::Abort), 2),
            Some(TxnIndexEntry {
                producer_id: ProducerId(1),
                first_offset: Offset(0),
                last_offset: Offset(2),
                last_stable_offset: Offset(1),
            })
        );
        assert_eq!(
            rec(&mut s, &marker(2, 0, 0, MarkerKind::Abort), 3),
            Some(TxnIndexEntry {
                producer_id: ProducerId(2),
                first_offset: Offset(1),
                last_offset: Offset(3),
                last_stable_offset: Offset(4),
            })
        );
        assert_eq!(
            rec(&mut s, &marker(2, 0, 0, MarkerKind::Abort), 4),
            None,
            "an abort with no transaction open aborts nothing"
        );
    }

    #[test]
    fn markers_are_checked_against_producer_and_coordinator_epochs() {
        let mut s = ProducerStates::default();
        let m = |epoch: i16, coordinator_epoch: i32| TxnMarker {
            producer_id: ProducerId(1),
            producer_epoch: ProducerEpoch(epoch),
            coordinator_epoch,
            kind: MarkerKind::Abort,
        };
        assert_eq!(s.check_marker(&m(0, 0)), Ok(()), "unknown producers pass");
        rec(&mut s, &txn(1, 2, 0, 1), 0);
        rec(&mut s, &marker(1, 2, 5, MarkerKind::Commit), 1);
        assert!(matches!(
            s.check_marker(&m(1, 5)),
            Err(MarkerError::ProducerFenced { .. })
        ));
        assert!(matches!(
            s.check_marker(&m(2, 4)),
            Err(MarkerError::CoordinatorFenced { .. })
        ));
        assert_eq!(s.check_marker(&m(2, 5)), Ok(()), "a retried marker passes");
        assert_eq!(s.check_marker(&m(3, 6)), Ok(()));
        // A marker with a bumped epoch (the coordinator aborting a fenced
        // transaction) raises the producer's epoch and its sequences restart.
        rec(&mut s, &txn(1, 2, 1, 1), 2);
        rec(&mut s, &marker(1, 3, 6, MarkerKind::Abort), 3);
        let e = s.get(ProducerId(1)).unwrap();
        assert_eq!((e.epoch, e.coordinator_epoch), (ProducerEpoch(3), 6));
        assert!(matches!(
            s.check(&h(1, 2, 2, 1)),
            Err(SequenceError::StaleEpoch { .. })
        ));
        assert_eq!(s.check(&h(1, 3, 0, 1)).unwrap(), SequenceCheck::New);
    }

    #[test]
    fn rewinding_past_a_marker_reopens_its_transaction_and_restores_the_epochs() {
        let mut s = ProducerStates::default();
        rec(&mut s, &txn(1, 0, 0, 2), 0);
        rec(&mut s, &marker(1, 1, 7, MarkerKind::Abort), 2);
        rec(&mut s, &txn(2, 0, 0, 1), 3);
        assert_eq!(
            s.snapshot_before(Offset(2))[0].1.current_txn_first_offset,
            Some(Offset(0))
        );
        assert_eq!(
            s.snapshot_before(Offset(3)).len(),
            1,
            "producer 2 did not exist at 3"
        );
        assert!(s.can_rewind_to(Offset(2)));
        s.rewind_to(Offset(2));
        assert_eq!(s.ongoing_transaction(ProducerId(1)), Some(Offset(0)));
        assert_eq!(s.get(ProducerId(2)), None);
        let e = s.get(ProducerId(1)).unwrap();
        assert_eq!((e.epoch, e.coordinator_epoch), (ProducerEpoch(0), -1));
        assert_eq!(s.first_unstable_offset(), Some(Offset(0)));
        s.rewind_to(Offset(0));
        assert!(s.is_empty());
        assert_eq!(s.first_unstable_offset(), None);
    }

    #[test]
    fn pruned_journal_cannot_rewind_below_its_horizon() {
        let mut s = ProducerStates::default();
        rec(&mut s, &txn(1, 0, 0, 1), 0);
        rec(&mut s, &marker(1, 0, 0, MarkerKind::Commit), 1);
        rec(&mut s, &txn(1, 0, 1, 1), 2);
        s.prune_journal(Offset(2), Offset(2));
        assert_eq!(s.journal_horizon(), Offset(2));
        assert!(!s.can_rewind_to(Offset(1)) && s.can_rewind_to(Offset(2)));
    }

    #[test]
    fn producer_with_an_open_transaction_is_never_evicted() {
        let mut s = ProducerStates::default();
        // The oldest producer has a transaction open.
        rec(&mut s, &txn(0, 0, 0, 1), 0);
        for i in 1..PRODUCERS_PER_PARTITION_MAX as i64 {
            s.record(&h(i, 0, 0, 1), Offset(i));
        }
        assert_eq!(s.len(), PRODUCERS_PER_PARTITION_MAX);
        s.record(&h(1_000_000, 0, 0, 1), Offset(20_000));
        assert_eq!(s.len(), PRODUCERS_PER_PARTITION_MAX);
        assert_eq!(s.ongoing_transaction(ProducerId(0)), Some(Offset(0)));
        assert!(
            s.get(ProducerId(1)).is_none(),
            "the oldest one without a transaction goes"
        );
        assert_eq!(s.first_unstable_offset(), Some(Offset(0)));
    }

    #[test]
    fn transaction_state_round_trips_through_the_checkpoint_form() {
        let mut s = ProducerStates::default();
        rec(&mut s, &txn(1, 4, 0, 2), 10);
        rec(&mut s, &txn(2, 0, 0, 1), 12);
        rec(&mut s, &marker(2, 0, 9, MarkerKind::Commit), 13);
        let metas = s.to_checkpoint(Offset(14));
        let back = ProducerStates::from_checkpoint(&metas, Offset(14));
        assert_eq!(back.views(), s.views());
        assert_eq!(back.first_unstable_offset(), Some(Offset(10)));
        assert_eq!(back.journal_horizon(), Offset(14));
        let v = s.views();
        assert_eq!(v[0].current_txn_start_offset, Some(Offset(10)));
        assert_eq!((v[0].last_sequence, v[0].coordinator_epoch), (1, -1));
        assert_eq!((v[1].coordinator_epoch, v[1].last_timestamp_ms), (9, 5));
    }

    #[test]
    fn retry_of_a_remembered_batch_is_a_duplicate_with_its_original_offsets() {
        let mut s = ProducerStates::default();
        s.record(&h(7, 0, 0, 3), Offset(100));
        s.record(&h(7, 0, 3, 2), Offset(103));
        assert_eq!(
            s.check(&h(7, 0, 0, 3)).unwrap(),
            SequenceCheck::Duplicate(BatchMeta {
                first_seq: 0,
                last_seq: 2,
                base_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(s.check(&h(7, 0, 5, 1)).unwrap(), SequenceCheck::New);
    }

    #[test]
    fn sequence_gap_is_out_of_order_and_stale_epoch_is_refused() {
        let mut s = ProducerStates::default();
        s.record(&h(7, 1, 0, 3), Offset(0));
        assert!(matches!(
            s.check(&h(7, 1, 4, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert!(matches!(
            s.check(&h(7, 0, 3, 1)),
            Err(SequenceError::StaleEpoch { .. })
        ));
        assert_eq!(
            s.check(&h(7, 2, 0, 1)).unwrap(),
            SequenceCheck::New,
            "a new epoch starts at 0"
        );
        assert!(matches!(
            s.check(&h(7, 2, 5, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(
            s.check(&h(8, 0, 42, 1)).unwrap(),
            SequenceCheck::New,
            "unknown producers start anywhere"
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_discards_are_forgotten() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.record(&h(1, 0, i, 1), Offset(i as i64));
        }
        assert_eq!(
            s.get(ProducerId(1)).unwrap().batches.len(),
            REMEMBERED_BATCHES
        );
        s.forget_from(Offset(6));
        assert_eq!(
            s.get(ProducerId(1))
                .unwrap()
                .batches
                .back()
                .unwrap()
                .last_offset,
            5
        );
        assert_eq!(s.snapshot_before(Offset(5))[0].1.batches.len(), 2);
    }
}
