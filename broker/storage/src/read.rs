//! Reads by offset and by timestamp.
//!
//! A read is planned synchronously against the log's state and, when it needs
//! the disk, finished by an async step that borrows nothing from the log.
//! Record bytes are never copied: batches in memory are shared `Bytes` (with
//! their assigned base offset supplied as a separate 8-byte chunk, because the
//! buffered bytes still carry the producer's), and batches from disk are
//! slices of the aligned read buffer.

use std::ops::ControlFlow;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader};
use crate::error::{Result, StorageError};
use crate::index::SegmentIndex;
use crate::io::StorageIo;
use crate::log::{PartitionLog, SealedHandle};
use crate::scan::{scan, ScanCheck, ScanEnd};
use crate::types::{LeaderEpoch, Offset};

/// Size of one disk read when a fetch asks for little: large enough that a
/// catching-up consumer reads the disk in big sequential pieces.
const DISK_READ_MIN_BYTES: usize = 64 << 10;

/// The bytes of a batch header up to and including `partitionLeaderEpoch`:
/// what a read from memory patches.
const PATCHED_PREFIX_BYTES: usize = 16;

/// Batches returned by a read, as chunks to be sent in order with a vectored
/// write. Chunks need not align with batches.
#[derive(Debug, Default, Clone)]
pub struct ReadChunks {
    pub chunks: Vec<Bytes>,
    /// Total bytes in `chunks`.
    pub bytes: usize,
    /// The offset after the last batch returned (the read's start if none).
    pub next_offset: Offset,
}

impl ReadChunks {
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Concatenates the chunks (tests and tools only: this copies).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out
    }

    /// Adds batches held in memory, whose bytes still carry the producer's
    /// base offset and leader epoch, each as two chunks: its first
    /// [`PATCHED_PREFIX_BYTES`] with the assigned base offset and epoch,
    /// and the rest of its bytes. One small buffer holds every patched
    /// prefix of this read, so the read allocates once, not once per batch.
    fn push_in_memory<'a>(
        &mut self,
        batches: impl ExactSizeIterator<Item = (Offset, Offset, LeaderEpoch, &'a Bytes)> + Clone,
    ) {
        let mut prefixes = BytesMut::with_capacity(PATCHED_PREFIX_BYTES * batches.len());
        for (base, _, epoch, bytes) in batches.clone() {
            // baseOffset, batchLength (the batch's own), partitionLeaderEpoch.
            prefixes.extend_from_slice(&base.0.to_be_bytes());
            prefixes.extend_from_slice(&bytes[8..12]);
            prefixes.extend_from_slice(&epoch.0.to_be_bytes());
        }
        let prefixes = prefixes.freeze();
        for (i, (_, next, _, bytes)) in batches.enumerate() {
            let at = i * PATCHED_PREFIX_BYTES;
            self.chunks
                .push(prefixes.slice(at..at + PATCHED_PREFIX_BYTES));
            self.chunks.push(bytes.slice(PATCHED_PREFIX_BYTES..));
            self.bytes += bytes.len();
            self.next_offset = next;
        }
    }
}

/// A read that still needs the disk.
pub struct DiskRead<I: StorageIo> {
    io: I,
    segment: SegmentRef<I::File>,
    segment_base: Offset,
    segment_bytes: u64,
    offset: Offset,
    max_bytes: usize,
    max_offset: Offset,
    /// The segments after `segment`, read in turn while nothing is found:
    /// in a compacted log the cleaner may have left no batch past
    /// `offset` in its segment (a gap, or an empty segment), and a reader
    /// must then get the next batch there is, as Kafka's does. Empty for
    /// a log that was never compacted.
    later: Vec<(SegmentRef<I::File>, Offset, u64)>,
}

/// The most non-empty segments one read walks past when the cleaner left
/// them without data at the offset read (empty ones cost no read and are
/// not counted): bounds the work of one read. A later non-empty segment
/// always has a batch past the offset read, so the walk only ends empty
/// at a limit.
pub const READ_EMPTY_SEGMENTS_MAX: usize = 16;

enum SegmentRef<F> {
    /// The active segment: file open and index in memory, position known.
    Active {
        file: Rc<F>,
        start_position: u64,
    },
    Sealed(Rc<SealedHandle<F>>),
}

/// The result of planning a read.
pub enum ReadPlan<I: StorageIo> {
    Ready(ReadChunks),
    Disk(DiskRead<I>),
}

impl<I: StorageIo> ReadPlan<I> {
    /// Finishes the read (a no-op for reads served from memory).
    pub async fn execute(self) -> Result<ReadChunks> {
        match self {
            ReadPlan::Ready(r) => Ok(r),
            ReadPlan::Disk(d) => d.execute().await,
        }
    }
}

impl<I: StorageIo> PartitionLog<I> {
    /// Plans a read of whole batches from the batch holding `offset`, up to
    /// `max_bytes` (but always at least one whole batch if any is readable),
    /// never including a batch that ends after `max_offset` (the high
    /// watermark: pass [`PartitionLog::flushed_offset`] or lower).
    pub fn plan_read(
        &self,
        offset: Offset,
        max_bytes: usize,
        max_offset: Offset,
    ) -> Result<ReadPlan<I>> {
        if offset < self.log_start || offset > self.next_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start,
                log_end: self.next_offset,
            });
        }
        let mut out = ReadChunks {
            next_offset: offset,
            ..Default::default()
        };
        if offset >= max_offset {
            return Ok(ReadPlan::Ready(out));
        }
        if offset >= self.written_offset {
            self.read_unflushed(&mut out, max_bytes, max_offset);
            return Ok(ReadPlan::Ready(out));
        }
        let cached = self
            .cache
            .borrow()
            .collect(self.cache_id, offset, max_bytes, max_offset);
        if !cached.is_empty() {
            out.push_in_memory(
                cached
                    .iter()
                    .map(|c| (c.base, c.next, c.leader_epoch, &c.bytes)),
            );
            if out.next_offset >= self.written_offset && out.bytes < max_bytes {
                self.read_unflushed(&mut out, max_bytes, max_offset);
            }
            return Ok(ReadPlan::Ready(out));
        }
        Ok(ReadPlan::Disk(
            self.plan_disk_read(offset, max_bytes, max_offset),
        ))
    }

    fn read_unflushed(&self, out: &mut ReadChunks, max_bytes: usize, max_offset: Offset) {
        let first = self
            .unflushed
            .partition_point(|p| p.next <= out.next_offset);
        let mut picked = Vec::new();
        let mut bytes = out.bytes;
        for p in self.unflushed.iter().skip(first) {
            if p.next > max_offset || (bytes > 0 && bytes + p.bytes.len() > max_bytes) {
                break;
            }
            bytes += p.bytes.len();
            picked.push(p);
        }
        out.push_in_memory(
            picked
                .iter()
                .map(|p| (p.base, p.next, p.leader_epoch, &p.bytes)),
        );
    }

    fn plan_disk_read(&self, offset: Offset, max_bytes: usize, max_offset: Offset) -> DiskRead<I> {
        let (segment, segment_base, segment_bytes) = if offset >= self.active.base {
            let start_position = self.active.index.position_for(self.active.base, offset);
            (
                SegmentRef::Active {
                    file: self.active.file.clone(),
                    start_position,
                },
                self.active.base,
                self.active.written_bytes,
            )
        } else {
            let s = self
                .sealed
                .range(..=offset.0)
                .next_back()
                .map(|(_, s)| s)
                .expect("offset at or above log start lies in a segment");
            (SegmentRef::Sealed(s.handle.clone()), s.base, s.size_bytes)
        };
        let mut later = Vec::new();
        let compacted = self.config.cleanup_policy.compacts() || !self.cleaner.passes.is_empty();
        if compacted && segment_base < self.active.base {
            // Segments the cleaner emptied are passed over without a
            // read: a log under steady overwrite empties many segments in
            // a row, and counting them against the limit left a reader
            // behind more than that many with nothing, at the same
            // offset, forever (found by the crash test of issue 22).
            later.extend(
                self.sealed
                    .range(segment_base.0 + 1..)
                    .filter(|(_, s)| s.size_bytes > 0)
                    .take(READ_EMPTY_SEGMENTS_MAX)
                    .map(|(_, s)| (SegmentRef::Sealed(s.handle.clone()), s.base, s.size_bytes)),
            );
            if later.len() < READ_EMPTY_SEGMENTS_MAX {
                later.push((
                    SegmentRef::Active {
                        file: self.active.file.clone(),
                        start_position: 0,
                    },
                    self.active.base,
                    self.active.written_bytes,
                ));
            }
        }
        DiskRead {
            io: self.io.clone(),
            segment,
            segment_base,
            segment_bytes,
            offset,
            max_bytes,
            max_offset: max_offset.min(self.written_offset),
            later,
        }
    }

    /// The newest record timestamp among batches that end at or before
    /// `max_offset`, or None if there are none (Kafka's max-timestamp
    /// query, ListOffsets -3, then looks up the first record carrying it).
    pub fn max_timestamp_ms(&self, max_offset: Offset) -> Option<i64> {
        let mut max = None::<i64>;
        let mut note = |ts: i64| max = Some(max.map_or(ts, |m: i64| m.max(ts)));
        for s in self.sealed.values().filter(|s| s.next > self.log_start) {
            note(s.max_timestamp_ms);
        }
        if self.active.written_bytes > 0 {
            note(self.active.index.max_timestamp_ms());
        }
        for p in self.unflushed.iter().take_while(|p| p.next <= max_offset) {
            if let Ok(h) = BatchHeader::parse(&p.bytes) {
                note(h.max_timestamp_ms);
            }
        }
        max
    }

    /// Plans a lookup of the first record whose timestamp is at or after
    /// `target_ms`, below `max_offset`. For a compressed batch, whose records
    /// this layer does not decompress, the answer is the batch's base offset
    /// and its max timestamp.
    pub fn plan_offset_for_timestamp(
        &self,
        target_ms: i64,
        max_offset: Offset,
    ) -> TimestampPlan<I> {
        for s in self.sealed.values() {
            if s.next <= self.log_start {
                continue;
            }
            if s.max_timestamp_ms >= target_ms {
                return TimestampPlan::Disk(self.timestamp_lookup(
                    SegmentRef::Sealed(s.handle.clone()),
                    s.base,
                    s.size_bytes,
                    target_ms,
                    max_offset,
                ));
            }
        }
        let a = &self.active;
        if a.written_bytes > 0 && a.index.max_timestamp_ms() >= target_ms {
            let start = a.index.offset_for_time(a.base, target_ms);
            let start_position = a.index.position_for(a.base, start);
            return TimestampPlan::Disk(self.timestamp_lookup(
                SegmentRef::Active {
                    file: a.file.clone(),
                    start_position,
                },
                a.base,
                a.written_bytes,
                target_ms,
                max_offset,
            ));
        }
        for p in &self.unflushed {
            if p.next > max_offset {
                break;
            }
            if let Ok(h) = BatchHeader::parse(&p.bytes) {
                if h.max_timestamp_ms >= target_ms {
                    let mut found = record_at_or_after(&p.bytes, &h, target_ms);
                    // The buffered bytes carry the producer's base offset.
                    found.0 = Offset(found.0 .0 - h.base_offset.0 + p.base.0);
                    return TimestampPlan::Ready(Some(found));
                }
            }
        }
        TimestampPlan::Ready(None)
    }

    fn timestamp_lookup(
        &self,
        segment: SegmentRef<I::File>,
        base: Offset,
        bytes: u64,
        target_ms: i64,
        max_offset: Offset,
    ) -> TimestampLookup<I> {
        TimestampLookup {
            io: self.io.clone(),
            segment,
            segment_base: base,
            segment_bytes: bytes,
            target_ms,
            max_offset: max_offset.min(self.written_offset),
        }
    }
}

fn record_at_or_after(bytes: &[u8], h: &BatchHeader, target_ms: i64) -> (Offset, i64) {
    batch::first_record_at_or_after(bytes, target_ms).unwrap_or((h.base_offset, h.max_timestamp_ms))
}

/// Opens a sealed segment's file and loads its index on first use. A missing
/// or malformed index file is rebuilt from the log rather than trusted.
pub(crate) async fn sealed_parts<I: StorageIo>(
    io: &I,
    handle: &SealedHandle<I::File>,
    base: Offset,
    size_bytes: u64,
) -> Result<(Rc<I::File>, Rc<SegmentIndex>)> {
    let file = match handle.file.get() {
        Some(f) => f.clone(),
        None => {
            let f = Rc::new(
                io.open(&handle.log_path, false)
                    .await
                    .map_err(|e| StorageError::io("open segment", &handle.log_path, e))?,
            );
            let _ = handle.file.set(f.clone());
            f
        }
    };
    if let Some(idx) = handle.index.get() {
        return Ok((file, idx.clone()));
    }
    let index_path = handle.log_path.with_extension("index");
    let time_path = handle.log_path.with_extension("timeindex");
    let offsets = io.read_small_file(&index_path).await.ok().flatten();
    let times = io.read_small_file(&time_path).await.ok().flatten();
    let decoded = match (offsets, times) {
        (Some(o), Some(t)) => SegmentIndex::decode(&o, &t, size_bytes),
        _ => None,
    };
    let index = match decoded {
        Some(idx) => idx,
        None => {
            tracing::warn!(path = %index_path.display(), "index missing or malformed; rebuilding from the log");
            let mut idx = SegmentIndex::new();
            scan(
                &*file,
                0,
                size_bytes,
                1 << 20,
                ScanCheck {
                    validate: false,
                    expect_offset: None,
                    gaps_allowed: false,
                },
                |pos, h, _| {
                    idx.on_append(base, h, pos, 4096);
                    ControlFlow::Continue(())
                },
            )
            .await
            .map_err(|e| StorageError::io("rebuild index", &handle.log_path, e))?;
            idx
        }
    };
    let index = Rc::new(index);
    let _ = handle.index.set(index.clone());
    Ok((file, index))
}

impl<I: StorageIo> DiskRead<I> {
    async fn execute(self) -> Result<ReadChunks> {
        let (mut out, mut stopped) = self
            .read_segment(&self.segment, self.segment_base, self.segment_bytes)
            .await?;
        for (segment, base, bytes) in &self.later {
            if !out.chunks.is_empty() || stopped {
                break;
            }
            (out, stopped) = self.read_segment(segment, *base, *bytes).await?;
        }
        Ok(out)
    }

    /// Reads from one segment; also says whether the read stopped before
    /// the segment's end (a limit), after which no later segment is read.
    async fn read_segment(
        &self,
        segment: &SegmentRef<I::File>,
        segment_base: Offset,
        segment_bytes: u64,
    ) -> Result<(ReadChunks, bool)> {
        let (file, start_position, path) = match segment {
            SegmentRef::Active {
                file,
                start_position,
            } => (file.clone(), *start_position, None),
            SegmentRef::Sealed(handle) => {
                let (file, index) =
                    sealed_parts(&self.io, handle, segment_base, segment_bytes).await?;
                (
                    file,
                    index.position_for(segment_base, self.offset),
                    Some(handle.log_path.clone()),
                )
            }
        };
        let mut out = ReadChunks {
            next_offset: self.offset,
            ..Default::default()
        };
        let chunk_bytes = self.max_bytes.clamp(DISK_READ_MIN_BYTES, 16 << 20);
        let mut damaged = None;
        let end = scan(
            &*file,
            start_position,
            segment_bytes,
            chunk_bytes,
            ScanCheck {
                validate: false,
                expect_offset: None,
                gaps_allowed: false,
            },
            |pos, h, bytes| {
                if h.next_offset() <= self.offset {
                    return ControlFlow::Continue(());
                }
                if h.next_offset() > self.max_offset
                    || (out.bytes > 0 && out.bytes + bytes.len() > self.max_bytes)
                {
                    return ControlFlow::Break(());
                }
                // Data read back from disk is checked before it is served:
                // damage to flushed data is reported, never passed on.
                if let Err(e) = batch::validate(&bytes) {
                    damaged = Some((pos, e.to_string()));
                    return ControlFlow::Break(());
                }
                out.bytes += bytes.len();
                out.next_offset = h.next_offset();
                out.chunks.push(bytes);
                if out.bytes >= self.max_bytes {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )
        .await
        .map_err(|e| StorageError::io("read", path.clone().unwrap_or_default(), e))?;
        let path = path.unwrap_or_default();
        if let Some((position, reason)) = damaged {
            tracing::error!(path = %path.display(), position, %reason, "corrupt batch in flushed data");
            return Err(StorageError::Corrupt {
                path,
                position,
                reason,
            });
        }
        let stopped = matches!(end, ScanEnd::Stopped { .. });
        if let ScanEnd::Invalid {
            position, reason, ..
        } = end
        {
            if out.chunks.is_empty() {
                tracing::error!(path = %path.display(), position, %reason, "corrupt batch in flushed data");
                return Err(StorageError::Corrupt {
                    path,
                    position,
                    reason,
                });
            }
        }
        Ok((out, stopped))
    }
}

/// A timestamp lookup that still needs the disk.
pub struct TimestampLookup<I: StorageIo> {
    io: I,
    segment: SegmentRef<I::File>,
    segment_base: Offset,
    segment_bytes: u64,
    target_ms: i64,
    max_offset: Offset,
}

pub enum TimestampPlan<I: StorageIo> {
    Ready(Option<(Offset, i64)>),
    Disk(TimestampLookup<I>),
}

impl<I: StorageIo> TimestampPlan<I> {
    /// The first record at or after the target time: (offset, its timestamp).
    pub async fn execute(self) -> Result<Option<(Offset, i64)>> {
        let lookup = match self {
            TimestampPlan::Ready(r) => return Ok(r),
            TimestampPlan::Disk(l) => l,
        };
        let (file, start) = match &lookup.segment {
            SegmentRef::Active {
                file,
                start_position,
            } => (file.clone(), *start_position),
            SegmentRef::Sealed(handle) => {
                let (file, index) = sealed_parts(
                    &lookup.io,
                    handle,
                    lookup.segment_base,
                    lookup.segment_bytes,
                )
                .await?;
                let from = index.offset_for_time(lookup.segment_base, lookup.target_ms);
                (file, index.position_for(lookup.segment_base, from))
            }
        };
        let mut found = None;
        scan(
            &*file,
            start,
            lookup.segment_bytes,
            1 << 20,
            ScanCheck {
                validate: false,
                expect_offset: None,
                gaps_allowed: false,
            },
            |_, h, bytes| {
                if h.next_offset() > lookup.max_offset {
                    return ControlFlow::Break(());
                }
                if h.max_timestamp_ms >= lookup.target_ms {
                    found = Some(record_at_or_after(&bytes, h, lookup.target_ms));
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )
        .await
        .map_err(|e| StorageError::io("timestamp lookup", std::path::PathBuf::new(), e))?;
        Ok(found)
    }
}
