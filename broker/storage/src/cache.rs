//! The shard's batch cache: recently flushed batches kept in memory, so that
//! consumers at the tail are served without touching the disk and without
//! copying record bytes (entries are `Bytes` shared with the fetch response).
//!
//! Lives on: one shard, shared by all its partitions through an
//! `Rc<RefCell<_>>`. Borrows are short and synchronous; none is held across
//! an `.await`.
//!
//! Eviction is first-in first-out across all partitions of the shard, bounded
//! by `bytes_max`: the oldest cached batch goes first, whichever partition it
//! belongs to.
//!
//! The bound counts batch bytes, and it is the memory the cache holds only
//! because a small batch is copied into an allocation of its own when it is
//! cached (`copy_below_bytes`). A batch arrives as a slice of the request
//! that carried it, and a request is a slice of its connection's read
//! buffer: kept as it is, a 170-byte batch pinned the whole 4 KiB (or up to
//! 64 KiB) buffer it was read into, and the broker's resident memory grew by
//! about 4.4 KiB per small produce request (20,000 requests of one 171-byte
//! batch each, one shard: 4,405 bytes per request before the copy, about 440
//! after; `tests/clients/test_memory_bounds.py` holds the bound), so a cache
//! bounded to 256 MiB of batches could hold gigabytes. A batch at least as large as a
//! read is read into a buffer reserved for its own request, so it pins at
//! most about twice its size, and is kept without a copy.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;

use crate::types::{LeaderEpoch, Offset};

/// A batch held in memory. Its bytes still carry the producer's base offset
/// and leader epoch; [`Self::base`] and [`Self::leader_epoch`] are the ones
/// the log assigned, patched in when the batch is served.
#[derive(Debug, Clone)]
pub struct CachedBatch {
    pub base: Offset,
    pub next: Offset,
    pub leader_epoch: LeaderEpoch,
    pub bytes: Bytes,
}

/// Identifies a partition log within its shard's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheId(pub u64);

pub type SharedBatchCache = Rc<RefCell<BatchCache>>;

#[derive(Debug)]
pub struct BatchCache {
    bytes_max: usize,
    /// Batches shorter than this are copied when cached, so that they do
    /// not keep the larger buffer they are a slice of alive.
    copy_below_bytes: usize,
    bytes_used: usize,
    /// Per log: base offset -> (next offset after the batch, its leader
    /// epoch, the batch).
    logs: HashMap<CacheId, BTreeMap<i64, (i64, LeaderEpoch, Bytes)>>,
    fifo: VecDeque<(CacheId, i64)>,
    /// Lookups ([`Self::collect`]) that found the batch asked for, and
    /// those that did not (the read then goes to the disk), for the
    /// metrics. Cells, as a lookup only reads the cache.
    hits: std::cell::Cell<u64>,
    misses: std::cell::Cell<u64>,
}

/// The default for [`BatchCache::with_copy_below`]: the largest read a
/// connection makes into a shared buffer (the server's `READ_CHUNK_BYTES`).
pub const BATCH_COPY_BELOW_BYTES_DEFAULT: usize = 64 << 10;

impl BatchCache {
    pub fn new(bytes_max: usize) -> BatchCache {
        BatchCache {
            bytes_max,
            copy_below_bytes: BATCH_COPY_BELOW_BYTES_DEFAULT,
            bytes_used: 0,
            logs: HashMap::new(),
            fifo: VecDeque::new(),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    pub fn shared(bytes_max: usize) -> SharedBatchCache {
        Rc::new(RefCell::new(BatchCache::new(bytes_max)))
    }

    /// Batches shorter than `bytes` are copied into an allocation of their
    /// own when cached. Set it to the size of the reads that fill the
    /// buffers batches are sliced from.
    pub fn with_copy_below(mut self, bytes: usize) -> BatchCache {
        self.copy_below_bytes = bytes;
        self
    }

    pub fn into_shared(self) -> SharedBatchCache {
        Rc::new(RefCell::new(self))
    }

    pub fn bytes_used(&self) -> usize {
        self.bytes_used
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Lookups so far that found their batch, and those that did not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    /// Caches a flushed batch. Batches larger than the whole cache are not kept.
    pub fn insert(
        &mut self,
        id: CacheId,
        base: Offset,
        next: Offset,
        leader_epoch: LeaderEpoch,
        batch: Bytes,
    ) {
        if batch.len() > self.bytes_max {
            return;
        }
        // One memcpy of a small batch, after its write: cheaper than the
        // page faults of the fresh buffers a pinned one forces the
        // connection to take.
        let batch = if batch.len() < self.copy_below_bytes {
            Bytes::copy_from_slice(&batch)
        } else {
            batch
        };
        self.bytes_used += batch.len();
        if let Some((_, _, old)) = self
            .logs
            .entry(id)
            .or_default()
            .insert(base.0, (next.0, leader_epoch, batch))
        {
            self.bytes_used -= old.len();
        }
        self.fifo.push_back((id, base.0));
        while self.bytes_used > self.bytes_max {
            let Some((victim, at)) = self.fifo.pop_front() else {
                break;
            };
            self.remove_one(victim, at);
        }
    }

    fn remove_one(&mut self, id: CacheId, base: i64) {
        if let Some(map) = self.logs.get_mut(&id) {
            if let Some((_, _, b)) = map.remove(&base) {
                self.bytes_used -= b.len();
            }
            if map.is_empty() {
                self.logs.remove(&id);
            }
        }
    }

    /// Collects cached batches starting with the one that contains `offset`,
    /// contiguous, ending before `max_offset`, up to `max_bytes` (but always
    /// the first batch if it is there). The bytes still carry the producer's
    /// base offset and epoch; the caller patches in the assigned ones. Empty if the batch holding `offset` is not cached.
    pub fn collect(
        &self,
        id: CacheId,
        offset: Offset,
        max_bytes: usize,
        max_offset: Offset,
    ) -> Vec<CachedBatch> {
        let out = self.collect_uncounted(id, offset, max_bytes, max_offset);
        let counter = if out.is_empty() {
            &self.misses
        } else {
            &self.hits
        };
        counter.set(counter.get() + 1);
        out
    }

    fn collect_uncounted(
        &self,
        id: CacheId,
        offset: Offset,
        max_bytes: usize,
        max_offset: Offset,
    ) -> Vec<CachedBatch> {
        let mut out = Vec::new();
        let Some(map) = self.logs.get(&id) else {
            return out;
        };
        let Some((&first_base, _)) = map.range(..=offset.0).next_back() else {
            return out;
        };
        let mut next = offset;
        let mut bytes = 0usize;
        for (&base, (batch_next, leader_epoch, batch)) in map.range(first_base..) {
            if base > next.0 || *batch_next <= offset.0 || *batch_next > max_offset.0 {
                break;
            }
            if !out.is_empty() && bytes + batch.len() > max_bytes {
                break;
            }
            bytes += batch.len();
            out.push(CachedBatch {
                base: Offset(base),
                next: Offset(*batch_next),
                leader_epoch: *leader_epoch,
                bytes: batch.clone(),
            });
            next = Offset(*batch_next);
        }
        out
    }

    /// Drops every cached batch of `id` that ends at or before `below`
    /// (retention, DeleteRecords) or, with `at_or_above`, that ends after it (truncation).
    pub fn remove_range(
        &mut self,
        id: CacheId,
        below: Option<Offset>,
        at_or_above: Option<Offset>,
    ) {
        let Some(map) = self.logs.get_mut(&id) else {
            return;
        };
        let doomed: Vec<i64> = map
            .iter()
            .filter(|(_, (next, _, _))| {
                below.is_some_and(|b| *next <= b.0) || at_or_above.is_some_and(|a| *next > a.0)
            })
            .map(|(&base, _)| base)
            .collect();
        for base in doomed {
            self.remove_one(id, base);
        }
    }

    /// Drops every cached batch of a log (the partition was deleted or closed).
    pub fn remove_log(&mut self, id: CacheId) {
        if let Some(map) = self.logs.remove(&id) {
            self.bytes_used -= map.values().map(|(_, _, b)| b.len()).sum::<usize>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[test]
    fn cache_stays_within_its_byte_bound_evicting_oldest_first_across_logs() {
        let mut c = BatchCache::new(1000);
        c.insert(CacheId(1), Offset(0), Offset(10), LeaderEpoch(0), b(400));
        c.insert(CacheId(2), Offset(0), Offset(10), LeaderEpoch(0), b(400));
        c.insert(CacheId(1), Offset(10), Offset(20), LeaderEpoch(0), b(400));
        assert!(c.bytes_used() <= 1000);
        let max = Offset(100);
        assert!(c.collect(CacheId(1), Offset(0), 10_000, max).is_empty());
        assert_eq!(c.collect(CacheId(2), Offset(5), 10_000, max).len(), 1);
        assert_eq!(c.hits_and_misses(), (1, 1));
        assert_eq!(
            c.collect(CacheId(1), Offset(15), 10_000, max)[0].next,
            Offset(20)
        );
    }

    #[test]
    fn a_small_batch_is_cached_in_its_own_allocation_not_the_buffer_it_came_from() {
        let buffer = b(4096);
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let mut c = BatchCache::new(1 << 20).with_copy_below(1024);
        c.insert(
            CacheId(1),
            Offset(0),
            Offset(1),
            LeaderEpoch(0),
            buffer.slice(100..270),
        );
        c.insert(
            CacheId(1),
            Offset(1),
            Offset(2),
            LeaderEpoch(0),
            buffer.slice(1000..3000),
        );
        drop(buffer);
        let got = c.collect(CacheId(1), Offset(0), 1 << 20, Offset(10));
        assert_eq!(got.len(), 2);
        assert!(
            !range.contains(&(got[0].bytes.as_ptr() as usize)),
            "a 170-byte slice would pin the 4 KiB buffer"
        );
        assert!(
            range.contains(&(got[1].bytes.as_ptr() as usize)),
            "a batch of a read's size is kept without a copy"
        );
        assert_eq!(c.bytes_used(), 170 + 2000);
    }

    #[test]
    fn collect_stops_at_gaps_limits_and_the_high_watermark() {
        let mut c = BatchCache::new(1 << 20);
        for i in 0..5 {
            c.insert(
                CacheId(1),
                Offset(i * 10),
                Offset(i * 10 + 10),
                LeaderEpoch(0),
                b(100),
            );
        }
        c.insert(CacheId(1), Offset(70), Offset(80), LeaderEpoch(0), b(100));
        let max = Offset(1000);
        let got = c.collect(CacheId(1), Offset(12), 250, max);
        assert_eq!((got.len(), got[1].next), (2, Offset(30)));
        let got = c.collect(CacheId(1), Offset(0), 1 << 20, max);
        assert_eq!(
            (got.len(), got[4].next),
            (5, Offset(50)),
            "stops at the gap before 70"
        );
        assert_eq!(
            c.collect(CacheId(1), Offset(0), 1 << 20, Offset(25)).len(),
            2
        );
        let got = c.collect(CacheId(1), Offset(0), 1, max);
        assert_eq!(
            got.len(),
            1,
            "the first batch is returned even over max_bytes"
        );
        c.remove_range(CacheId(1), Some(Offset(20)), None);
        assert!(c.collect(CacheId(1), Offset(5), 1000, max).is_empty());
        c.remove_log(CacheId(1));
        assert_eq!(c.bytes_used(), 0);
    }
}
