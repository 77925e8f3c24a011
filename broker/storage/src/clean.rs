//! Log compaction (`cleanup.policy=compact` and `compact,delete`): the
//! cleaner keeps the latest record of every key in the sealed segments and
//! drops the older ones, with Kafka's `LogCleaner` semantics.
//!
//! # A pass
//! - **Cleanable range**: sealed segments only, from the log start up to
//!   the base of the first segment that is the active one, holds the first
//!   unstable offset (an open transaction's first offset: never cleaned
//!   past), or holds a record younger than `min.compaction.lag.ms` (by the
//!   segment's largest timestamp).
//! - **Dirty range**: from the last cleaned offset (persisted, see below)
//!   to the end of the cleanable range. A log is due when the dirty bytes
//!   are at least `min.cleanable.dirty.ratio` of the cleanable bytes, or
//!   when the first dirty segment's newest record is older than
//!   `max.compaction.lag.ms` (the segment's largest timestamp stands in for
//!   its oldest record, which a sealed segment does not keep: such a log is
//!   due somewhat later than Kafka would make it).
//! - **Key map**: key -> latest offset over the dirty range, bounded by
//!   [`CleanerBudget::offset_map_bytes_max`] and by
//!   [`CleanerBudget::dirty_bytes_per_pass_max`] of dirty segments read.
//!   Where it fills, the pass ends: it cleans up to the first record it
//!   could not map, and the next pass goes on from there (Kafka does the same).
//! - **Rewrite**: every cleanable segment below the map's end is filtered.
//!   A record is kept when its offset is at or past the map's end, or it
//!   has a key and that key is absent from the map or mapped to an offset
//!   at or below the record's (Kafka's rule); records without a key are
//!   dropped (Kafka counts them as invalid). A segment where nothing is
//!   dropped is not rewritten.
//! - **Offsets never change.** A batch whose records are all kept is copied
//!   byte for byte. One that lost some keeps its header (base offset,
//!   lastOffsetDelta, timestamps, producer id, epoch and base sequence,
//!   attributes, leader epoch) with a new length, record count and CRC; the
//!   kept records keep their bytes (offset and timestamp deltas) and are
//!   compressed again with the batch's codec. A batch with no record left
//!   is dropped, unless it is the last batch of a producer the log
//!   remembers (Kafka's `retainLastBatchSequence`): then an empty batch (no
//!   records, uncompressed, the same last offset and sequence) is kept, so
//!   that producer state rebuilt from the log still knows its sequence.
//!   Stored batches may therefore have gaps and no record: see
//!   [`crate::batch::validate`].
//! - **Tombstones** (null values) are dropped once the cleaner passed them
//!   at least `delete.retention.ms` ago. The log remembers when each pass
//!   ended and where (`passes`, persisted with the last cleaned offset); a
//!   tombstone's batch is past its horizon when the pass that first
//!   cleaned its offset ended `delete.retention.ms` before now. This is
//!   Kafka 2.x's rule (the segment's last-modified time after cleaning)
//!   with the time kept by the log rather than by the file system; it
//!   leaves batch bytes alone, where Kafka 3.x's stamps a delete horizon
//!   into each batch's base timestamp. Merging old passes (at most
//!   [`CLEANER_PASSES_MAX`] are kept) only makes tombstones live longer.
//!   Each pass notes when the first tombstone it kept passes its horizon;
//!   from then the log is due whatever its dirty ratio, and a pass with no
//!   dirty range (an empty key map) filters the cleaned range, so a log
//!   that is no longer written still loses its tombstones (Kafka 3.x's
//!   trigger). That time is kept in memory only: after a restart such
//!   tombstones wait until the log is due for another reason.
//! - **Transactions**: the data batches of aborted transactions (by the
//!   aborted-transaction index) are dropped like records without a key.
//!   Transaction markers are always kept (Kafka drops them once their
//!   transaction's data is gone and the delete horizon has passed; not
//!   done here). So each segment's `.txnindex` stays as it is.
//! - Segments are not grouped: each rewritten segment keeps its base
//!   offset and file name, and may become small. One the pass left with
//!   no batch at all is removed by the swap (see
//!   [`PartitionLog::emptied_segments`]), except the first sealed segment:
//!   the sealed segment before it then covers its offsets, so a segment's
//!   last batch may be followed by a gap of any length up to the next
//!   segment's base. Since every sealed segment left holds some key's
//!   latest record (or a producer's last batch, or a transaction marker),
//!   a log of N keys keeps about N + 2 segments however long it is
//!   overwritten. Grouping nearly empty neighbours into one segment, as
//!   Kafka's `groupSegmentsBySize` does, is not done.
//!
//! # Where the work runs
//! [`crate::PartitionLog::clean_job`] hands out a [`CleanJob`] that runs
//! beside the job pipeline (like the background checkpoint), so that
//! appends and their writes go on while it reads and rewrites segments; it
//! holds the sealed segments through their handles, which retention and
//! truncation may drop meanwhile. Its CPU work (decompressing, filtering,
//! compressing) runs on the task that awaits it, the shard's thread: the
//! job model has no blocking-pool lane, and [`CleanJob::run`] awaits the
//! caller's throttle after each segment, which is where the shard gives
//! producers priority and applies `log.cleaner.io.max.bytes.per.second`.
//! The swap of the rewritten segments into the log is a short job of the
//! pipeline (renames, one checkpoint, index files), handed out by
//! [`crate::PartitionLog::next_job`] once [`crate::PartitionLog::finish_clean`]
//! accepted the pass.
//!
//! # Durability contract
//! - A pass writes each rewritten segment to `<base>.log.cleaned`, trimmed
//!   to its data and fdatasynced. Nothing else changes; a crash leaves
//!   `.cleaned` files that the next open deletes (the pass is undone).
//! - The swap job, in order: (1) renames each `<base>.log.cleaned` to
//!   `<base>.log.swap`; (2) deletes the old segment's `.index` and
//!   `.timeindex`; (3) writes the partition checkpoint with the new sizes
//!   (atomically; this syncs the directory, making (1) and (2) durable);
//!   (4) renames each `<base>.log.swap` over `<base>.log`; (5) writes the
//!   cleaner checkpoint (atomically, syncing the directory, which makes (4)
//!   durable); (6) writes the new index files; (7) deletes the files of
//!   the segments the pass emptied (`.log`, `.index`, `.timeindex`,
//!   `.txnindex`). Those segments get no `.swap` file (their empty
//!   `.cleaned` file is deleted in (2) with the stale ones), and the
//!   checkpoint of (3) no longer lists them: that one atomic write commits
//!   their removal together with the new sizes.
//! - On open, recovery deletes `.cleaned` files, and completes each
//!   `<base>.log.swap` whose base is a checkpointed sealed segment: it
//!   deletes that segment's index files, renames the swap file over the
//!   `.log`, and takes the segment's size from the file (the checkpoint may
//!   be the one before (3)). A missing index is rebuilt from the log on
//!   first read. A swap file for any other base is deleted. Before
//!   renaming any swap file, recovery writes the checkpoint with the swap
//!   files' sizes: once renamed, nothing else would tell a later open
//!   (after another crash) that the checkpoint's size is the old file's.
//!   Files of a segment below the checkpoint's active segment that it does
//!   not list are an emptied segment's, left by a crash between (3) and
//!   (7): recovery deletes them.
//! - So after a crash at any point each segment is either its old file or
//!   its new one, both holding every record the pass keeps, at its offset:
//!   a pass only drops records superseded within the pass's own map (or
//!   tombstones and aborted data already decided before it), so old and
//!   new segments may mix without losing a kept record, and no offset is
//!   ever duplicated (a segment is replaced under its own name). A removed
//!   segment held only records the pass dropped: before (3) it is there
//!   with its old file, after (3) it is gone and the segment before it
//!   covers its offsets; without a checkpoint its file, if still there, is
//!   walked like any other (old records, at their offsets).
//! - A swap job that fails is handed out again before any other job that
//!   writes a checkpoint, so no checkpoint with the old sizes lands after
//!   a `.swap` was renamed into place. The last cleaned offset and the
//!   passes live in `cleaner.checkpoint` (see [`CleanerCheckpoint`]); if it
//!   is lost or lags, the next pass cleans again from further back and
//!   tombstones wait longer, which is safe.

mod filter;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::rc::Rc;

use crate::batch::BatchHeader;
use crate::error::{Result, StorageError};
use crate::index::SegmentIndex;
use crate::io::{align_up, DirectFile, StorageIo};
use crate::job::{Job, Work};
use crate::log::{InFlight, PartitionLog, SealedHandle};
use crate::scan::{scan, ScanCheck, ScanEnd};
use crate::types::{Offset, ProducerId};

pub use filter::build;
use filter::{filter_batch, OffsetMap, Outcome};

/// The cleaner's persisted state, beside the partition checkpoint.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner.checkpoint";

/// The most passes the log remembers for tombstone horizons; older ones
/// are merged (which keeps tombstones longer, never shorter).
pub const CLEANER_PASSES_MAX: usize = 64;

/// The most bytes a pass reads or holds for writing at a time: the chunk
/// it reads segments in, and the output it buffers before writing whole
/// blocks. With the key map, this bounds a pass's memory whatever
/// `segment.bytes` is.
pub const CLEANER_IO_CHUNK_BYTES: usize = 1 << 20;

/// Extensions of the files a pass writes and a swap renames.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// What one pass may cost. The server sets these from its own config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerBudget {
    /// Memory of the key map (Kafka: `log.cleaner.dedupe.buffer.size`
    /// divided among the cleaner threads). Keys count with their bytes
    /// plus a fixed overhead per entry.
    pub offset_map_bytes_max: usize,
    /// Dirty segment bytes one pass maps (and so rewrites past the last
    /// cleaned offset); at least one segment is always taken.
    pub dirty_bytes_per_pass_max: u64,
}

impl Default for CleanerBudget {
    fn default() -> Self {
        CleanerBudget {
            offset_map_bytes_max: 64 << 20,
            dirty_bytes_per_pass_max: 1 << 30,
        }
    }
}

/// Where a compacted log stands, for metrics and the scheduler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerState {
    /// Every offset below it was cleaned at least once.
    pub last_cleaned_offset: Offset,
    /// The cleanable range ends here: the base of the first segment that
    /// is the active one, holds the first unstable offset, or is younger
    /// than `min.compaction.lag.ms`.
    pub first_uncleanable_offset: Offset,
    /// Bytes of the segments below `first_uncleanable_offset`.
    pub cleanable_bytes: u64,
    /// Of those, the bytes of segments past the last cleaned offset.
    pub dirty_bytes: u64,
    /// `dirty_bytes / cleanable_bytes` (0 when nothing is cleanable).
    pub dirty_ratio: f64,
    /// Whether a pass would run now (the log compacts, the dirty ratio or
    /// `max.compaction.lag.ms` says so, or a tombstone the last pass kept
    /// has passed its delete horizon, and no pass is running or waiting
    /// for its swap).
    pub due: bool,
}

/// What a pass did, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_read: usize,
    pub segments_rewritten: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub batches_dropped: u64,
    pub batches_rebuilt: u64,
    pub map_keys: usize,
    /// The new last cleaned offset.
    pub cleaned_to: Offset,
    /// When the first tombstone this pass kept below `cleaned_to` passes
    /// its delete horizon (None: it kept none).
    pub tombstones_due_at_ms: Option<i64>,
}

/// The persisted cleaner state: the last cleaned offset and when each
/// remembered pass ended (for tombstone horizons).
///
/// Lives on: the partition log (`PartitionLog::cleaner`), on the shard
/// that owns it; on disk in [`CLEANER_CHECKPOINT_FILE`].
///
/// Format: `b"CLN1"`, last cleaned offset i64, pass count u32, then per
/// pass (end offset i64, end time ms i64), then the CRC-32C of everything
/// before it, all big-endian.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    pub last_cleaned_offset: i64,
    /// (end offset of the pass, time it was swapped in), ascending.
    pub passes: Vec<(i64, i64)>,
}

const CLEANER_MAGIC: &[u8; 4] = b"CLN1";

impl CleanerCheckpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + 16 * self.passes.len());
        out.extend_from_slice(CLEANER_MAGIC);
        out.extend_from_slice(&self.last_cleaned_offset.to_be_bytes());
        out.extend_from_slice(&(self.passes.len() as u32).to_be_bytes());
        for (end, at) in &self.passes {
            out.extend_from_slice(&end.to_be_bytes());
            out.extend_from_slice(&at.to_be_bytes());
        }
        let crc = crc_fast::crc32_iscsi(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// None when the bytes are not a whole, intact cleaner checkpoint.
    pub fn decode(bytes: &[u8]) -> Option<CleanerCheckpoint> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc_fast::crc32_iscsi(body).to_be_bytes() != crc {
            return None;
        }
        let rest = body.strip_prefix(CLEANER_MAGIC)?;
        let i64_at = |at: usize| -> Option<i64> {
            Some(i64::from_be_bytes(rest.get(at..at + 8)?.try_into().ok()?))
        };
        let last_cleaned_offset = i64_at(0)?;
        let n = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
        if rest.len() != 12 + 16 * n || n > CLEANER_PASSES_MAX {
            return None;
        }
        let passes = (0..n)
            .map(|i| Some((i64_at(12 + 16 * i)?, i64_at(20 + 16 * i)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(CleanerCheckpoint {
            last_cleaned_offset,
            passes,
        })
    }

    /// When the pass that first cleaned `offset` ended; None if none did.
    fn first_cleaned_ms(&self, offset: i64) -> Option<i64> {
        self.passes
            .iter()
            .find(|(end, _)| offset < *end)
            .map(|(_, at)| *at)
    }

    /// Records a pass that cleaned up to `end` at `at_ms`.
    fn add_pass(&mut self, end: i64, at_ms: i64) {
        self.last_cleaned_offset = self.last_cleaned_offset.max(end);
        if self.passes.last().is_some_and(|(e, _)| *e >= end) {
            return;
        }
        self.passes.push((end, at_ms));
        while self.passes.len() > CLEANER_PASSES_MAX {
            // The two oldest become one with the later time: their
            // tombstones wait as long as the later pass's would.
            let (_, at) = self.passes.remove(0);
            self.passes[0].1 = self.passes[0].1.max(at);
        }
    }
}

/// One sealed segment a pass reads.
struct Input<F> {
    base: Offset,
    next: Offset,
    size_bytes: u64,
    handle: Rc<SealedHandle<F>>,
}

/// One rewritten segment, written as `<base>.log.cleaned`.
pub(crate) struct Output<F> {
    pub base: Offset,
    pub next: Offset,
    pub size_bytes: u64,
    pub index: SegmentIndex,
    pub file: Rc<F>,
    /// The segment it replaces, to check at the swap that the log still
    /// holds that very segment.
    pub replaces: Rc<SealedHandle<F>>,
}

/// A cleaning pass of one partition, run beside its job pipeline (see the
/// module doc). Owns what it reads; borrows nothing of the log.
pub struct CleanJob<I: StorageIo> {
    io: I,
    inputs: Vec<Input<I::File>>,
    first_dirty: Offset,
    /// Where the cleanable range ends (a segment base).
    end: Offset,
    budget: CleanerBudget,
    /// Aborted transactions by producer: (first offset, marker offset).
    aborted: HashMap<ProducerId, Vec<(Offset, Offset)>>,
    producer_last_batches: HashSet<i64>,
    cleaner: CleanerCheckpoint,
    delete_retention_ms: i64,
    decompressed_bytes_max: usize,
    index_interval_bytes: u32,
    now_ms: i64,
}

/// The outcome of a [`CleanJob`], for [`PartitionLog::finish_clean`].
pub struct CleanDone<I: StorageIo> {
    result: Result<(Vec<Output<I::File>>, CleanStats)>,
    now_ms: i64,
}

impl<I: StorageIo> CleanDone<I> {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// What the pipeline's swap job needs once it is done.
pub(crate) struct PendingSwap<F> {
    pub outputs: Vec<Output<F>>,
    /// `.cleaned` files of a dropped pass, to remove.
    pub stale: Vec<PathBuf>,
    /// The segments the swap removes (see [`PartitionLog::emptied_segments`]),
    /// chosen by the first swap job and kept for its retries and its
    /// success: a failed attempt may have written the checkpoint that no
    /// longer lists them, so a retry must not bring them back.
    pub removed: Option<Vec<Offset>>,
    pub stats: CleanStats,
    pub now_ms: i64,
}

fn suffixed(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

impl<I: StorageIo> CleanJob<I> {
    /// Runs the pass. `throttle(bytes)` is awaited after each segment read
    /// or written with the bytes it moved: the caller's rate limit and its
    /// chance to let producers' work run first.
    pub async fn run<Fut: std::future::Future<Output = ()>>(
        self,
        mut throttle: impl FnMut(u64) -> Fut,
    ) -> CleanDone<I> {
        let now_ms = self.now_ms;
        let mut written: Vec<PathBuf> = Vec::new();
        let result = self.clean(&mut throttle, &mut written).await;
        if result.is_err() {
            // Best effort: the next open deletes what is left.
            for path in &written {
                let _ = self.io.remove_file(path).await;
            }
        }
        CleanDone { result, now_ms }
    }

    /// Visits the batches of `input` from `from`, in chunks of
    /// [`CLEANER_IO_CHUNK_BYTES`], until `visit` breaks (the position of the
    /// batch it broke at is returned) or the segment ends (None).
    async fn walk(
        &self,
        input: &Input<I::File>,
        from: u64,
        mut visit: impl FnMut(u64, &BatchHeader, &[u8]) -> ControlFlow<()>,
    ) -> Result<Option<u64>> {
        let (file, _) =
            crate::read::sealed_parts(&self.io, &input.handle, input.base, input.size_bytes)
                .await?;
        let check = ScanCheck {
            validate: false,
            expect_offset: None,
            gaps_allowed: false,
        };
        let end = scan(
            &*file,
            from,
            input.size_bytes,
            CLEANER_IO_CHUNK_BYTES,
            check,
            |pos, h, b| visit(pos, h, &b),
        )
        .await
        .map_err(|e| StorageError::io("cleaner read", &input.handle.log_path, e))?;
        match end {
            ScanEnd::Complete => Ok(None),
            ScanEnd::Stopped { position } => Ok(Some(position)),
            ScanEnd::Invalid {
                position, reason, ..
            } => Err(StorageError::Corrupt {
                path: input.handle.log_path.clone(),
                position,
                reason: format!("cleaner: {reason}"),
            }),
        }
    }

    async fn clean<Fut: std::future::Future<Output = ()>>(
        &self,
        throttle: &mut impl FnMut(u64) -> Fut,
        written: &mut Vec<PathBuf>,
    ) -> Result<(Vec<Output<I::File>>, CleanStats)> {
        let mut stats = CleanStats::default();
        // The key map over the dirty range.
        let mut map = OffsetMap::new(self.budget.offset_map_bytes_max);
        let mut map_end = self.end;
        let mut dirty_read = 0u64;
        for input in self.inputs.iter().filter(|s| s.next > self.first_dirty) {
            if dirty_read > 0
                && dirty_read + input.size_bytes > self.budget.dirty_bytes_per_pass_max
            {
                map_end = input.base;
                break;
            }
            let mut full_at = None;
            self.walk(input, 0, |_, h, b| {
                if h.next_offset() <= self.first_dirty || h.is_control() || self.is_aborted(h) {
                    return ControlFlow::Continue(());
                }
                let Some((_, section)) = filter::section(b, h, self.decompressed_bytes_max) else {
                    return ControlFlow::Continue(());
                };
                let Some(recs) = filter::records(&section, h.base_offset) else {
                    return ControlFlow::Continue(());
                };
                for r in recs.iter().filter(|r| r.offset >= self.first_dirty.0) {
                    if let Some(k) = r.key {
                        if !map.put(k, r.offset) {
                            full_at = Some(Offset(r.offset));
                            return ControlFlow::Break(());
                        }
                    }
                }
                ControlFlow::Continue(())
            })
            .await?;
            dirty_read += input.size_bytes;
            stats.bytes_read += input.size_bytes;
            throttle(input.size_bytes).await;
            if let Some(at) = full_at {
                map_end = at;
                break;
            }
        }
        // A pass with no dirty range (one for tombstones past their
        // horizon) maps nothing and filters the cleaned range only.
        if map_end <= self.first_dirty && self.first_dirty < self.end {
            return Err(StorageError::Config(format!(
                "the cleaner's key map ({} bytes) cannot hold one key of the dirty range",
                self.budget.offset_map_bytes_max
            )));
        }
        stats.map_keys = map.len();
        stats.cleaned_to = map_end;
        // The rewrite of every segment below the map's end, a chunk at a time.
        let mut outputs = Vec::new();
        let tombstones_due = std::cell::Cell::new(None);
        for input in self.inputs.iter().filter(|s| s.base < map_end) {
            stats.segments_read += 1;
            stats.bytes_read += input.size_bytes;
            let path = suffixed(&input.handle.log_path, CLEANED_SUFFIX);
            let mut out = ChunkedOutput::default();
            let mut index = SegmentIndex::new();
            let mut changed = false;
            let mut from = 0;
            loop {
                let mut failed = None;
                let stopped = self
                    .walk(input, from, |_, h, b| {
                        if out.pending.len() >= CLEANER_IO_CHUNK_BYTES {
                            return ControlFlow::Break(());
                        }
                        let kept = match self.filter(h, b, map_end, &map, &tombstones_due) {
                            Outcome::Keep => std::borrow::Cow::Borrowed(b),
                            Outcome::Drop => {
                                changed = true;
                                stats.batches_dropped += 1;
                                return ControlFlow::Continue(());
                            }
                            Outcome::Rebuilt(nb) => {
                                changed = true;
                                stats.batches_rebuilt += 1;
                                std::borrow::Cow::Owned(nb)
                            }
                        };
                        match BatchHeader::parse(&kept) {
                            Ok(kh) => index.on_append(
                                input.base,
                                &kh,
                                out.len(),
                                self.index_interval_bytes,
                            ),
                            Err(e) => {
                                failed = Some(e);
                                return ControlFlow::Break(());
                            }
                        }
                        out.pending.extend_from_slice(&kept);
                        ControlFlow::Continue(())
                    })
                    .await?;
                if let Some(e) = failed {
                    return Err(e.into());
                }
                // Nothing is written until a batch was dropped or rebuilt:
                // a segment the pass leaves as it was is not rewritten.
                if changed && out.pending.len() >= CLEANER_IO_CHUNK_BYTES {
                    out.flush_blocks(&self.io, &path, written).await?;
                }
                match stopped {
                    Some(at) => from = at,
                    None => break,
                }
            }
            throttle(input.size_bytes).await;
            if !changed {
                if out.file.is_some() {
                    let _ = self.io.remove_file(&path).await;
                }
                continue;
            }
            let size_bytes = out.len();
            let file = out.finish(&self.io, &path, written).await?;
            stats.segments_rewritten += 1;
            stats.bytes_written += size_bytes;
            outputs.push(Output {
                base: input.base,
                next: input.next,
                size_bytes,
                index,
                file: Rc::new(file),
                replaces: input.handle.clone(),
            });
            throttle(size_bytes).await;
        }
        stats.tombstones_due_at_ms = tombstones_due.get();
        Ok((outputs, stats))
    }

    /// What becomes of one batch below the map's end (see the module doc).
    ///
    /// Notes in `tombstones_due` the earliest horizon of the tombstones it
    /// keeps below the map's end.
    fn filter(
        &self,
        h: &BatchHeader,
        b: &[u8],
        map_end: Offset,
        map: &OffsetMap,
        tombstones_due: &std::cell::Cell<Option<i64>>,
    ) -> Outcome {
        if h.is_control() {
            return Outcome::Keep;
        }
        let keep_empty =
            h.has_producer_id() && self.producer_last_batches.contains(&h.last_offset().0);
        if self.is_aborted(h) {
            return filter_batch(b, h, self.decompressed_bytes_max, keep_empty, |_| false);
        }
        let horizon_passed = h.next_offset() <= self.first_dirty
            && self
                .cleaner
                .first_cleaned_ms(h.base_offset.0)
                .is_some_and(|at| at.saturating_add(self.delete_retention_ms) <= self.now_ms);
        filter_batch(b, h, self.decompressed_bytes_max, keep_empty, |r| {
            if r.offset >= map_end.0 {
                return true;
            }
            let Some(k) = r.key else {
                return false;
            };
            let latest = map.get(k).is_none_or(|m| r.offset >= m);
            if latest && r.tombstone && !horizon_passed {
                // Kept for now: it goes once the pass that first cleaned
                // it (this one, if none did) is `delete.retention.ms` old.
                let at = self
                    .cleaner
                    .first_cleaned_ms(h.base_offset.0)
                    .filter(|_| h.next_offset() <= self.first_dirty)
                    .unwrap_or(self.now_ms)
                    .saturating_add(self.delete_retention_ms);
                let due = tombstones_due.get().map_or(at, |d| d.min(at));
                tombstones_due.set(Some(due));
            }
            latest && !(r.tombstone && horizon_passed)
        })
    }

    /// Whether `h` is a data batch of an aborted transaction.
    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.get(&h.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, marker)| first <= h.base_offset && h.base_offset < marker)
            })
    }
}

/// A rewritten segment's bytes on their way to its `.cleaned` file: whole
/// blocks are written as they fill, so a pass holds at most about
/// [`CLEANER_IO_CHUNK_BYTES`] of output at a time.
struct ChunkedOutput<F> {
    file: Option<F>,
    /// Bytes written to the file (whole blocks).
    flushed: u64,
    /// Bytes not written yet.
    pending: Vec<u8>,
}

impl<F> Default for ChunkedOutput<F> {
    fn default() -> Self {
        ChunkedOutput {
            file: None,
            flushed: 0,
            pending: Vec::new(),
        }
    }
}

impl<F: DirectFile> ChunkedOutput<F> {
    fn len(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    /// Creates the `.cleaned` file on the first write.
    async fn ensure_file<I: StorageIo<File = F>>(
        &mut self,
        io: &I,
        path: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> Result<&F> {
        if self.file.is_none() {
            io.remove_file(path)
                .await
                .map_err(|e| StorageError::io("remove stale cleaned segment", path, e))?;
            written.push(path.to_path_buf());
            let f = io
                .open(path, true)
                .await
                .map_err(|e| StorageError::io("create cleaned segment", path, e))?;
            self.file = Some(f);
        }
        self.file.as_ref().ok_or_else(|| {
            StorageError::io(
                "create cleaned segment",
                path,
                std::io::Error::other("no file"),
            )
        })
    }

    /// Writes the whole blocks of `pending`.
    async fn flush_blocks<I: StorageIo<File = F>>(
        &mut self,
        io: &I,
        path: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let whole = crate::io::align_down(self.pending.len() as u64) as usize;
        if whole == 0 {
            return Ok(());
        }
        let at = self.flushed;
        let mut buf = self
            .ensure_file(io, path, written)
            .await?
            .alloc_buffer(whole);
        buf.as_mut().copy_from_slice(&self.pending[..whole]);
        let file = self.ensure_file(io, path, written).await?;
        file.write_at(buf, at)
            .await
            .map_err(|e| StorageError::io("write cleaned segment", path, e))?;
        self.pending.drain(..whole);
        self.flushed += whole as u64;
        Ok(())
    }

    /// Writes the rest, trims the file to the data and syncs it.
    async fn finish<I: StorageIo<File = F>>(
        mut self,
        io: &I,
        path: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> Result<F> {
        let len = self.len();
        let at = self.flushed;
        let rest = std::mem::take(&mut self.pending);
        let file = self.ensure_file(io, path, written).await?;
        if !rest.is_empty() {
            let mut buf = file.alloc_buffer(align_up(rest.len() as u64) as usize);
            buf.as_mut()[..rest.len()].copy_from_slice(&rest);
            buf.as_mut()[rest.len()..].fill(0);
            file.write_at(buf, at)
                .await
                .map_err(|e| StorageError::io("write cleaned segment", path, e))?;
        }
        file.truncate(len)
            .await
            .map_err(|e| StorageError::io("truncate cleaned segment", path, e))?;
        file.fdatasync()
            .await
            .map_err(|e| StorageError::io("fdatasync cleaned segment", path, e))?;
        self.file.take().ok_or_else(|| {
            StorageError::io(
                "create cleaned segment",
                path,
                std::io::Error::other("no file"),
            )
        })
    }
}

impl<I: StorageIo> PartitionLog<I> {
    /// Where the log stands for the cleaner at `now_ms` (see [`CleanerState`]).
    pub fn cleaner_state(&self, now_ms: i64) -> CleanerState {
        let (end, first_dirty) = self.cleanable_range(now_ms);
        let mut cleanable_bytes = 0;
        let mut dirty_bytes = 0;
        let mut first_dirty_ts = None;
        for s in self.sealed.values().filter(|s| s.next <= end) {
            cleanable_bytes += s.size_bytes;
            if s.next > first_dirty {
                dirty_bytes += s.size_bytes;
                first_dirty_ts.get_or_insert(s.max_timestamp_ms);
            }
        }
        let dirty_ratio = if cleanable_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / cleanable_bytes as f64
        };
        let c = &self.config;
        let lag_due =
            first_dirty_ts.is_some_and(|ts| now_ms.saturating_sub(ts) >= c.max_compaction_lag_ms);
        // A tombstone past its horizon makes the log due without new
        // dirty bytes: otherwise a compacted log that is no longer written
        // would keep its tombstones for ever (Kafka 3.x cleans such a log
        // once its delete horizon passes).
        let tombstones_due = self.tombstones_due_at_ms.is_some_and(|at| at <= now_ms);
        let due = c.cleanup_policy.compacts()
            && !self.cleaning
            && self.pending_swap.is_none()
            && ((dirty_bytes > 0 && (dirty_ratio >= c.min_cleanable_dirty_ratio || lag_due))
                || tombstones_due);
        CleanerState {
            last_cleaned_offset: first_dirty,
            first_uncleanable_offset: end,
            cleanable_bytes,
            dirty_bytes,
            dirty_ratio,
            due,
        }
    }

    /// (end of the cleanable range, first dirty offset).
    fn cleanable_range(&self, now_ms: i64) -> (Offset, Offset) {
        let mut end = self.active.base;
        if let Some(first_unstable) = self.first_unstable_offset() {
            end = end.min(first_unstable);
        }
        // Kafka bounds the range by the last stable offset, so by the high
        // watermark too: what a truncation may still take away (and with
        // it records the key map would count as newer) is never cleaned
        // against.
        end = end.min(
            self.high_watermark
                .unwrap_or(self.flushed_offset)
                .min(self.flushed_offset),
        );
        let young_after = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        // The cleanable range ends at the base of the first segment it
        // does not wholly hold.
        let mut boundary = self
            .sealed
            .values()
            .next()
            .map_or(self.active.base, |s| s.base);
        for s in self.sealed.values() {
            if s.next > end || s.max_timestamp_ms > young_after {
                break;
            }
            boundary = s.next;
        }
        let first_dirty = Offset(self.cleaner.last_cleaned_offset)
            .max(self.log_start)
            .min(boundary.max(self.log_start));
        (boundary, first_dirty)
    }

    /// A cleaning pass to run beside the job pipeline, when the log
    /// compacts and is due ([`CleanerState::due`]) at `now_ms`. Run it with
    /// [`CleanJob::run`] and hand the result to [`Self::finish_clean`]; one
    /// runs at a time.
    pub fn clean_job(&mut self, now_ms: i64, budget: &CleanerBudget) -> Option<CleanJob<I>> {
        if self.failure.is_some() || !self.cleaner_state(now_ms).due {
            return None;
        }
        let (end, first_dirty) = self.cleanable_range(now_ms);
        let inputs: Vec<Input<I::File>> = self
            .sealed
            .values()
            .filter(|s| s.next <= end && s.next > self.log_start)
            .map(|s| Input {
                base: s.base,
                next: s.next,
                size_bytes: s.size_bytes,
                handle: s.handle.clone(),
            })
            .collect();
        if inputs.is_empty() {
            return None;
        }
        // Every aborted transaction that started in the range, wherever
        // its marker lies: its data must neither be kept nor enter the map
        // (where it would make a committed record of its key look old).
        let mut aborted: HashMap<ProducerId, Vec<(Offset, Offset)>> = HashMap::new();
        for e in self.aborted.values().filter(|e| e.first_offset < end) {
            aborted
                .entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        self.cleaning = true;
        Some(CleanJob {
            io: self.io.clone(),
            inputs,
            first_dirty,
            end,
            budget: *budget,
            aborted,
            producer_last_batches: self.producers.last_batch_offsets(),
            cleaner: self.cleaner.clone(),
            delete_retention_ms: self.config.delete_retention_ms,
            decompressed_bytes_max: self.config.record_limits.decompressed_bytes_max,
            index_interval_bytes: self.config.index_interval_bytes,
            now_ms,
        })
    }

    /// Forgets a pass that was dropped before it finished (its owner is
    /// closing the log and will not wait for it). The log is as if the pass
    /// never ran; the `.cleaned` files it may have written are deleted by
    /// the next open, or by the next pass before it writes the same file.
    pub fn abandon_clean(&mut self) {
        self.cleaning = false;
    }

    /// Takes a finished pass. On success its segments are swapped in by a
    /// later job of the pipeline ([`Self::next_job`]); a failure changes
    /// nothing (its `.cleaned` files are removed) and is returned.
    pub fn finish_clean(&mut self, done: CleanDone<I>) -> Result<CleanStats> {
        self.cleaning = false;
        let (outputs, stats) = done.result.inspect_err(|e| {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cleaner pass failed");
        })?;
        self.pending_swap = Some(PendingSwap {
            outputs,
            stale: Vec::new(),
            removed: None,
            stats,
            now_ms: done.now_ms,
        });
        Ok(stats)
    }

    /// The pipeline job that swaps a finished pass in (see the module doc).
    pub(crate) fn clean_swap_job(&mut self) -> Option<Job<I>> {
        if self
            .pending_swap
            .as_ref()
            .is_some_and(|p| self.next_offset < p.stats.cleaned_to)
        {
            // The log was cut below what the pass mapped: its key map may
            // hold records that are gone, so none of its output is used.
            tracing::info!(dir = %self.dir.display(), "log cut under a cleaning pass; pass dropped");
            let last_cleaned = Offset(self.cleaner.last_cleaned_offset);
            if let Some(mut p) = self.pending_swap.take() {
                p.stats.cleaned_to = last_cleaned;
                for o in std::mem::take(&mut p.outputs) {
                    p.stale
                        .push(suffixed(&self.path_of(o.base, "log"), CLEANED_SUFFIX));
                }
                self.pending_swap = Some(p);
            }
        }
        let pending = self.pending_swap.as_ref()?;
        // Only segments the log still holds as they were read are swapped;
        // retention or a truncation may have removed others meanwhile.
        let live = |o: &Output<I::File>| {
            self.sealed
                .get(&o.base.0)
                .is_some_and(|s| s.next == o.next && Rc::ptr_eq(&s.handle, &o.replaces))
        };
        // Only outputs still to swap are removed: a pass dropped above
        // (its outputs gone) removes nothing, so the checkpoint, the files
        // deleted and the log in memory all follow the same list.
        let removed: Vec<Offset> = match &pending.removed {
            Some(removed) => removed
                .iter()
                .copied()
                .filter(|b| pending.outputs.iter().any(|o| o.base == *b))
                .collect(),
            None => self.emptied_segments(&pending.outputs),
        };
        let mut swaps = Vec::new();
        let mut stale = pending.stale.clone();
        let mut sizes = std::collections::BTreeMap::new();
        let mut removed_files = Vec::new();
        for o in &pending.outputs {
            let log_path = self.path_of(o.base, "log");
            if removed.contains(&o.base) {
                // Its empty output is not swapped in: the segment goes.
                stale.push(suffixed(&log_path, CLEANED_SUFFIX));
                for ext in ["index", "timeindex", "txnindex"] {
                    removed_files.push(self.path_of(o.base, ext));
                }
                removed_files.push(log_path);
            } else if live(o) {
                sizes.insert(o.base.0, o.size_bytes);
                swaps.push(crate::job::CleanSwap {
                    cleaned: suffixed(&log_path, CLEANED_SUFFIX),
                    swap: suffixed(&log_path, SWAP_SUFFIX),
                    index_files: vec![
                        (self.path_of(o.base, "index"), o.index.encode_offsets()),
                        (self.path_of(o.base, "timeindex"), o.index.encode_times()),
                    ],
                    log: log_path,
                });
            } else {
                stale.push(suffixed(&log_path, CLEANED_SUFFIX));
            }
        }
        let mut cleaner = self.cleaner.clone();
        cleaner.add_pass(pending.stats.cleaned_to.0, pending.now_ms);
        let checkpoint = self.checkpoint_bytes_with_sizes(&sizes, &removed);
        if let Some(p) = self.pending_swap.as_mut() {
            p.removed = Some(removed);
        }
        self.in_flight = Some(InFlight::CleanSwap);
        Some(self.job(Work::CleanSwap {
            dir: self.dir.clone(),
            swaps,
            stale,
            checkpoint,
            cleaner_checkpoint: (self.dir.join(CLEANER_CHECKPOINT_FILE), cleaner.encode()),
            removed: removed_files,
        }))
    }

    /// The sealed segments a swap of `outputs` removes: those the pass left
    /// with no batch at all (an empty output of a segment the log still
    /// holds as it was read), except the first sealed segment, which keeps
    /// the log's first file at or below the log start, and any segment with
    /// aborted-transaction entries (none is expected: transaction markers
    /// are always kept, so such a segment is never empty). Each removed
    /// segment's offsets are then covered by the sealed segment before it,
    /// whose last batch is followed by a gap up to the next segment's base
    /// (reads, the indexes, truncation, retention and recovery all take
    /// such gaps already: the cleaner leaves one wherever it drops a
    /// segment's last batches). Only segments whose predecessor is
    /// contiguous with them are taken, so the log's ranges stay a
    /// partition of its offsets.
    pub(crate) fn emptied_segments(&self, outputs: &[Output<I::File>]) -> Vec<Offset> {
        let first_sealed = self.sealed.keys().next().copied();
        outputs
            .iter()
            .filter(|o| {
                o.size_bytes == 0
                    && Some(o.base.0) != first_sealed
                    && self.aborted.range(o.base.0..o.next.0).next().is_none()
                    && self
                        .sealed
                        .get(&o.base.0)
                        .is_some_and(|s| s.next == o.next && Rc::ptr_eq(&s.handle, &o.replaces))
                    && self
                        .sealed
                        .range(..o.base.0)
                        .next_back()
                        .is_some_and(|(_, prev)| prev.next == o.base)
            })
            .map(|o| o.base)
            .collect()
    }

    /// Applies a swap job that succeeded: the new segments replace the old
    /// ones in memory; reads planned before keep the old files open.
    pub(crate) fn finish_clean_swap(&mut self) {
        let Some(pending) = self.pending_swap.take() else {
            return;
        };
        self.cleaner
            .add_pass(pending.stats.cleaned_to.0, pending.now_ms);
        self.tombstones_due_at_ms = pending.stats.tombstones_due_at_ms;
        let mut cache_below = None;
        for o in pending.outputs {
            let log_path = self.path_of(o.base, "log");
            if pending
                .removed
                .as_ref()
                .is_some_and(|r| r.contains(&o.base))
            {
                // The segment before it covers its offsets from now on.
                // Reads planned before hold its handle, whose file the
                // pass opened (it read the segment through this very
                // handle), so they still read it through that descriptor.
                if let Some(gone) = self.sealed.remove(&o.base.0) {
                    if let Some((_, prev)) = self.sealed.range_mut(..o.base.0).next_back() {
                        prev.next = gone.next;
                    }
                    cache_below = Some(gone.next);
                }
                continue;
            }
            let Some(s) = self.sealed.get_mut(&o.base.0) else {
                continue;
            };
            if s.next != o.next || !Rc::ptr_eq(&s.handle, &o.replaces) {
                continue;
            }
            let handle = SealedHandle {
                log_path,
                file: std::cell::OnceCell::new(),
                index: std::cell::OnceCell::new(),
            };
            let _ = handle.file.set(o.file);
            let _ = handle.index.set(Rc::new(o.index));
            s.handle = Rc::new(handle);
            s.size_bytes = o.size_bytes;
            cache_below = Some(o.next);
        }
        if let Some(below) = cache_below {
            // The cache holds the old batches of the replaced segments.
            self.cache
                .borrow_mut()
                .remove_range(self.cache_id, Some(below), None);
        }
    }

    /// The cleaner's persisted state as it stands.
    pub fn cleaner_checkpoint(&self) -> &CleanerCheckpoint {
        &self.cleaner
    }
}
