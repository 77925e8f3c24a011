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
//! Lives on: the partition's log. The state as of the recovery point is in
//! the checkpoint; recovery replays the batches after it.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::types::{Offset, ProducerEpoch, ProducerId};

/// Batches remembered per producer: Kafka's `max.in.flight.requests` bound
/// for idempotence is 5, so a retry can only be of one of the last 5.
pub const REMEMBERED_BATCHES: usize = 5;

/// Producer ids a partition remembers; beyond it the least recently
/// written one is forgotten (it may then restart at any sequence).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    pub epoch: ProducerEpoch,
    pub batches: VecDeque<BatchMeta>,
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

#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    producers: HashMap<ProducerId, ProducerEntry>,
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

    /// Records a batch appended at `base` (its header carries the producer's
    /// own base offset, which is ignored).
    pub fn record(&mut self, h: &BatchHeader, base: Offset) {
        if !h.has_producer_id() {
            return;
        }
        if !self.producers.contains_key(&h.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            self.evict_oldest();
        }
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
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_seq_of(h),
            base_offset: base.0,
            last_offset: base.0 + h.last_offset_delta as i64,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.batches.back().map_or(i64::MIN, |b| b.last_offset))
            .map(|(&pid, _)| pid);
        if let Some(pid) = oldest {
            self.producers.remove(&pid);
        }
    }

    /// Forgets batches at or after `end` (they were discarded by a failed write).
    pub fn forget_from(&mut self, end: Offset) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < end.0);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// The state as of `end`: only batches that end before it, for a
    /// checkpoint whose recovery point is `end`.
    pub fn snapshot_before(&self, end: Offset) -> Vec<(ProducerId, ProducerEntry)> {
        let mut out: Vec<(ProducerId, ProducerEntry)> = self
            .producers
            .iter()
            .filter_map(|(&pid, e)| {
                let batches: VecDeque<BatchMeta> = e
                    .batches
                    .iter()
                    .filter(|b| b.last_offset < end.0)
                    .copied()
                    .collect();
                (!batches.is_empty()).then_some({
                    (
                        pid,
                        ProducerEntry {
                            epoch: e.epoch,
                            batches,
                        },
                    )
                })
            })
            .collect();
        out.sort_by_key(|(pid, _)| *pid);
        out
    }

    pub fn restore(
        entries: impl IntoIterator<Item = (ProducerId, ProducerEntry)>,
    ) -> ProducerStates {
        ProducerStates {
            producers: entries.into_iter().collect(),
        }
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
            })
            .collect()
    }

    pub fn from_checkpoint(metas: &[crate::checkpoint::ProducerMeta]) -> ProducerStates {
        Self::restore(metas.iter().map(|m| {
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
                },
            )
        }))
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
