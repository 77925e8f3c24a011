//! Sparse offset and time indexes of one segment, in Kafka's on-disk layout.
//!
//! `.index`: 8-byte entries, big-endian `relativeOffset: u32, position: u32`,
//! keyed by the last offset of the batch that starts at `position`.
//! `.timeindex`: 12-byte entries, `timestamp: i64, relativeOffset: u32`, the
//! largest timestamp seen so far and the offset where it was seen.
//! Both are sorted, so lookups are binary searches.
//!
//! Lives on: the shard that owns the partition, in memory for the active
//! segment and loaded on first use for sealed ones.

use crate::batch::BatchHeader;
use crate::types::Offset;

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    /// (offset relative to the segment base, byte position of the batch).
    offsets: Vec<(u32, u32)>,
    /// (max timestamp so far, relative offset).
    times: Vec<(i64, u32)>,
    bytes_since_entry: u64,
    max_timestamp_ms: i64,
}

impl SegmentIndex {
    pub fn new() -> SegmentIndex {
        SegmentIndex {
            max_timestamp_ms: i64::MIN,
            ..Default::default()
        }
    }

    /// Notes a batch written at `position` of a segment starting at `base`.
    /// Adds entries once `interval_bytes` have passed since the last one.
    pub fn on_append(
        &mut self,
        base: Offset,
        header: &BatchHeader,
        position: u64,
        interval_bytes: u32,
    ) {
        let relative = (header.last_offset().0 - base.0) as u32;
        let new_max = header.max_timestamp_ms > self.max_timestamp_ms;
        if new_max {
            self.max_timestamp_ms = header.max_timestamp_ms;
        }
        if self.bytes_since_entry >= interval_bytes as u64 {
            self.offsets.push((relative, position as u32));
            if self
                .times
                .last()
                .is_none_or(|&(ts, _)| self.max_timestamp_ms > ts)
            {
                self.times.push((self.max_timestamp_ms, relative));
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.total_bytes as u64;
    }

    /// The byte position from which a scan for `target` must start: the
    /// position of the last indexed batch whose last offset is <= target.
    pub fn position_for(&self, base: Offset, target: Offset) -> u64 {
        let rel = target.0 - base.0;
        if rel < 0 {
            return 0;
        }
        let i = self.offsets.partition_point(|&(r, _)| (r as i64) <= rel);
        if i == 0 {
            0
        } else {
            self.offsets[i - 1].1 as u64
        }
    }

    /// The offset from which a scan for the first record with timestamp >=
    /// `target_ms` must start.
    pub fn offset_for_time(&self, base: Offset, target_ms: i64) -> Offset {
        let i = self.times.partition_point(|&(ts, _)| ts < target_ms);
        if i == 0 {
            base
        } else {
            Offset(base.0 + self.times[i - 1].1 as i64)
        }
    }

    /// The newest timestamp the segment has seen, or i64::MIN if empty.
    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }

    /// Forgets every entry at or after `position`, for truncation and recovery.
    pub fn truncate_to_position(&mut self, base: Offset, position: u64) {
        self.offsets.retain(|&(_, p)| (p as u64) < position);
        let last_rel = self.offsets.last().map(|&(r, _)| r);
        self.times
            .retain(|&(_, r)| last_rel.is_some_and(|l| r <= l));
        let _ = base;
        self.bytes_since_entry = 0;
    }

    pub fn encode_offsets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_BYTES);
        for &(r, p) in &self.offsets {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    pub fn encode_times(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.times.len() * TIME_ENTRY_BYTES);
        for &(ts, r) in &self.times {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    /// Rebuilds an index from its two files, keeping only entries below
    /// `valid_bytes` (data past it is not trusted). Returns None if a file is
    /// malformed (not a whole number of entries, or out of order), in which
    /// case the caller rebuilds the index from the log.
    pub fn decode(offsets: &[u8], times: &[u8], valid_bytes: u64) -> Option<SegmentIndex> {
        if !offsets.len().is_multiple_of(OFFSET_ENTRY_BYTES)
            || !times.len().is_multiple_of(TIME_ENTRY_BYTES)
        {
            return None;
        }
        let mut idx = SegmentIndex::new();
        for e in offsets.chunks_exact(OFFSET_ENTRY_BYTES) {
            let r = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let p = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if idx
                .offsets
                .last()
                .is_some_and(|&(lr, lp)| r < lr || p <= lp)
            {
                return None;
            }
            if (p as u64) < valid_bytes {
                idx.offsets.push((r, p));
            }
        }
        let last_rel = idx.offsets.last().map(|&(r, _)| r);
        for e in times.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            let ts = i64::from_be_bytes(ts);
            let r = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if idx.times.last().is_some_and(|&(lt, _)| ts < lt) {
                return None;
            }
            if last_rel.is_some_and(|l| r <= l) {
                idx.times.push((ts, r));
            }
        }
        Some(idx)
    }

    /// Records the segment's newest timestamp when it is known from elsewhere
    /// (the checkpoint), since the sparse entries may not include it.
    pub fn set_max_timestamp_ms(&mut self, ts: i64) {
        self.max_timestamp_ms = self.max_timestamp_ms.max(ts);
    }

    /// Approximate heap bytes, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 8 + self.times.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build::{batch, BatchSpec};
    use crate::batch::{set_base_offset, BatchHeader};

    fn header_at(base: i64, records: usize, ts: i64) -> BatchHeader {
        let mut b = batch(&BatchSpec {
            records,
            base_timestamp_ms: ts,
            value_bytes: 1000,
            ..Default::default()
        });
        set_base_offset(&mut b, Offset(base));
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn lookups_find_a_position_at_or_before_the_target_and_survive_encoding() {
        let base = Offset(100);
        let mut idx = SegmentIndex::new();
        let mut pos = 0u64;
        let mut off = 100;
        let mut positions = Vec::new();
        for i in 0..50 {
            let h = header_at(off, 2, 1000 + i);
            positions.push((off, pos));
            idx.on_append(base, &h, pos, 4096);
            pos += h.total_bytes as u64;
            off += 2;
        }
        for &(o, p) in &positions {
            assert!(idx.position_for(base, Offset(o)) <= p);
        }
        let decoded =
            SegmentIndex::decode(&idx.encode_offsets(), &idx.encode_times(), u64::MAX).unwrap();
        assert_eq!(decoded.offsets, idx.offsets);
        assert_eq!(decoded.times, idx.times);
        assert!(idx.offset_for_time(base, 1030) <= Offset(160));
    }

    #[test]
    fn malformed_index_file_is_refused_so_it_gets_rebuilt() {
        assert!(SegmentIndex::decode(&[0; 7], &[], 100).is_none());
        let mut bad = Vec::new();
        bad.extend_from_slice(&5u32.to_be_bytes());
        bad.extend_from_slice(&100u32.to_be_bytes());
        bad.extend_from_slice(&3u32.to_be_bytes());
        bad.extend_from_slice(&200u32.to_be_bytes());
        assert!(SegmentIndex::decode(&bad, &[], u64::MAX).is_none());
    }
}
