//! Opening a partition: trust the checkpoint, re-validate only what follows
//! the recovery point, cut off a torn tail.
//!
//! The work done is bounded by `checkpoint_interval_bytes` (plus at most one
//! segment rolled after the last checkpoint), not by the size of the log:
//! sealed segments listed in the checkpoint are neither opened nor read.
//! (Their `.txnindex` files, which exist only for segments with aborted
//! transactions, are read: see [`crate::txn`].)

use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::cache::{CacheId, SharedBatchCache};
use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use crate::clean::{CleanerCheckpoint, CLEANED_SUFFIX, CLEANER_CHECKPOINT_FILE, SWAP_SUFFIX};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::index::SegmentIndex;
use crate::io::{align_down, align_up, is_temporary_file, DirectFile, StorageIo};
use crate::log::{Active, PartitionLog, Sealed, SealedHandle};
use crate::retention::{Recycled, RECYCLED_EXT};
use crate::scan::{scan, ScanCheck, ScanEnd};
use crate::txn::{self, AbortedIndex, TxnIndexEntry};
use crate::types::{segment_file_stem, LeaderEpoch, Offset};
use corelog_model::epochs::EpochCache;

const RECOVERY_READ_BYTES: usize = 1 << 20;

/// What recovery found, for the log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes re-validated past the recovery point.
    pub scanned_bytes: u64,
    /// Where damaged bytes after the last valid batch were found and cut
    /// off (a torn write), if any. Zero padding is not damage.
    pub torn_tail_position_bytes: Option<u64>,
    /// Segment files removed: left over from retention, or after a torn segment.
    pub removed_segments: usize,
    /// Whether a usable checkpoint was found.
    pub from_checkpoint: bool,
}

fn parse_segment_name(name: &str) -> Option<i64> {
    parse_stem(name.strip_suffix(".log")?)
}

fn parse_recycled_name(name: &str) -> Option<i64> {
    parse_stem(name.strip_suffix(RECYCLED_EXT)?.strip_suffix('.')?)
}

fn parse_stem(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Finds the recycled segment files in a partition directory, keeps up to
/// `keep_max` of them (newest first) and deletes the rest.
async fn load_recycled<I: StorageIo>(
    io: &I,
    dir: &Path,
    names: &[String],
    keep_max: usize,
) -> Vec<Recycled<I::File>> {
    let mut found: Vec<(i64, &String)> = names
        .iter()
        .filter_map(|n| parse_recycled_name(n).map(|next| (next, n)))
        .collect();
    found.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
    let mut kept = Vec::new();
    for (next, name) in found {
        let path = dir.join(name);
        if kept.len() < keep_max {
            let size = match io.open(&path, false).await {
                Ok(f) => f.size().await.ok(),
                Err(_) => None,
            };
            if let Some(size_bytes) = size {
                kept.push(Recycled {
                    path,
                    next: Offset(next),
                    size_bytes,
                    ready: true,
                    readers: None,
                });
                continue;
            }
        }
        if let Err(e) = io.remove_file(&path).await {
            tracing::warn!(path = %path.display(), error = %e, "could not remove recycled segment file");
        }
    }
    kept
}

/// One segment as recovery walks it.
struct Walked<F> {
    base: Offset,
    file: Rc<F>,
    path: PathBuf,
    /// Where valid data ends.
    end_bytes: u64,
    file_bytes: u64,
    /// When the segment was first written, for `segment.ms`: from the
    /// checkpoint, else the first batch's timestamp (as Kafka does); 0 if empty.
    first_write_ms: i64,
    index: SegmentIndex,
    next: Offset,
    /// The walk accepted gaps between its batches (see `ScanCheck::gaps_allowed`).
    gaps: bool,
}

impl<I: StorageIo> PartitionLog<I> {
    /// Makes `dir`, which must not exist or be empty, a log with nothing in
    /// it whose first offset is `start`: [`PartitionLog::open`] then finds
    /// its log start and end at `start`, and the next append is at
    /// `start`. Kafka's `truncateFullyAndStartAt`, for a follower whose
    /// leader no longer holds the offsets the follower would fetch next
    /// (retention or DeleteRecords removed them): it starts a copy at the
    /// leader's log start instead.
    ///
    /// Crash safety: the only state it writes is an empty segment file
    /// named for `start`. Before that file is durable, the directory may
    /// come back empty (a log at offset 0), a state the follower resets
    /// from again; nothing it held is needed by then.
    pub async fn create_empty_at(io: &I, dir: &Path, start: Offset) -> Result<()> {
        if start < Offset::ZERO {
            return Err(StorageError::OffsetOutOfRange {
                requested: start,
                log_start: Offset::ZERO,
                log_end: Offset::ZERO,
            });
        }
        io.create_dir_all(dir)
            .await
            .map_err(|e| StorageError::io("create dir", dir, e))?;
        let names = io
            .list_dir(dir)
            .await
            .map_err(|e| StorageError::io("list dir", dir, e))?;
        if !names.is_empty() {
            return Err(StorageError::io(
                "create an empty log in",
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory is not empty",
                ),
            ));
        }
        let path = dir.join(format!("{}.log", segment_file_stem(start)));
        io.open(&path, true)
            .await
            .map_err(|e| StorageError::io("create segment", &path, e))?;
        Ok(())
    }

    /// Opens (or creates) the partition in `dir`, recovering from a crash if
    /// needed. `now_ms` is the wall clock, used for `segment.ms` of a new segment.
    pub async fn open(
        io: I,
        dir: PathBuf,
        config: LogConfig,
        cache: SharedBatchCache,
        cache_id: CacheId,
    ) -> Result<(Self, RecoveryReport)> {
        config.validate().map_err(StorageError::Config)?;
        io.create_dir_all(&dir)
            .await
            .map_err(|e| StorageError::io("create dir", &dir, e))?;
        let names = io
            .list_dir(&dir)
            .await
            .map_err(|e| StorageError::io("list dir", &dir, e))?;
        for name in names
            .iter()
            .filter(|n| is_temporary_file(n) || n.ends_with(CLEANED_SUFFIX))
        {
            let _ = io.remove_file(&dir.join(name)).await;
        }
        let recycled = load_recycled(&io, &dir, &names, config.segment_files_recycled_max).await;
        let mut bases: Vec<i64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        bases.sort_unstable();
        let cp_path = dir.join(CHECKPOINT_FILE);
        let mut checkpoint = match io.read_small_file(&cp_path).await {
            Ok(Some(bytes)) => match Checkpoint::decode(&bytes) {
                Ok(cp) => Some(cp),
                Err(e) => {
                    tracing::warn!(path = %cp_path.display(), error = %e, "checkpoint unreadable; validating the whole log");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => return Err(StorageError::io("read checkpoint", &cp_path, e)),
        };
        let mut report = RecoveryReport {
            from_checkpoint: checkpoint.is_some(),
            ..Default::default()
        };
        let path_of =
            |base: i64, ext: &str| dir.join(format!("{}.{ext}", segment_file_stem(Offset(base))));

        // Cleaning passes that reached their commit mark are completed:
        // each swap file replaces its segment, whose size is then the
        // file's (the checkpoint may predate the swap, and is written again
        // with those sizes before the renames).
        let swapped = finish_swaps(&io, &dir, &names, checkpoint.as_mut(), &cp_path).await?;
        let mut sealed = BTreeMap::new();
        let mut producers = checkpoint
            .as_ref()
            .map(|c| {
                crate::producer::ProducerStates::from_checkpoint(
                    &c.producers,
                    Offset(c.active.recovery_next_offset),
                )
            })
            .unwrap_or_default();
        // The producer state is the checkpoint's as of its recovery point:
        // only batches from there on are replayed into it (the walk may
        // start earlier, at the active segment's base, when its index is
        // unusable).
        let replay_from = checkpoint
            .as_ref()
            .map_or(i64::MIN, |c| c.active.recovery_next_offset);
        let mut aborted = AbortedIndex::new();
        // The epoch cache as checkpointed. Batches walked below add their
        // epochs, except in a log checkpointed in format 1: its batches
        // carry whatever epoch their producer wrote, so the whole log is
        // taken as epoch 0 (the only epoch a broker of that format led in).
        let mut epochs = EpochCache::new();
        let batch_epochs_trusted = match checkpoint.as_ref().map(|c| &c.leader_epochs) {
            Some(Some(entries)) => {
                for e in entries {
                    epochs.assign(LeaderEpoch(e.epoch), Offset(e.start_offset));
                }
                true
            }
            Some(None) => false,
            None => true,
        };
        let checkpointed_first_write = checkpoint
            .as_ref()
            .map(|c| (c.active.base_offset, c.active.first_write_ms));
        let log_start;
        // Segments to walk: (base, start position, index so far, expected offset).
        let mut to_walk: Vec<(i64, u64, SegmentIndex, Offset)> = Vec::new();
        // Set when the checkpoint says the log ends at its recovery point.
        let mut end_at: Option<u64> = None;
        match &checkpoint {
            Some(cp) => {
                log_start = Offset(cp.log_start_offset);
                let first_kept = cp
                    .sealed
                    .first()
                    .map_or(cp.active.base_offset, |s| s.base_offset);
                // Files below the first checkpointed segment are retention's
                // leftovers from a crash between checkpoint and delete.
                for &b in bases.iter().filter(|&&b| b < first_kept) {
                    remove_segment_files(&io, &dir, b).await;
                    report.removed_segments += 1;
                }
                bases.retain(|&b| b >= first_kept);
                // Files of a segment below the active one that the
                // checkpoint does not list are the segments a cleaner swap
                // emptied and removed, from a crash between the swap's
                // checkpoint and their deletion (see `crate::clean`): the
                // segment before each covers their offsets now.
                let listed = |b: i64| cp.sealed.iter().any(|s| s.base_offset == b);
                let unlisted: Vec<i64> = bases
                    .iter()
                    .copied()
                    .filter(|&b| b < cp.active.base_offset && !listed(b))
                    .collect();
                for &b in &unlisted {
                    remove_segment_files(&io, &dir, b).await;
                    report.removed_segments += 1;
                }
                bases.retain(|b| !unlisted.contains(b));
                let on_disk = |b: i64| bases.binary_search(&b).is_ok();
                for (i, s) in cp.sealed.iter().enumerate() {
                    if !on_disk(s.base_offset) {
                        return Err(StorageError::Corrupt {
                            path: path_of(s.base_offset, "log"),
                            position: 0,
                            reason: "segment listed in the checkpoint is missing".into(),
                        });
                    }
                    let next = cp
                        .sealed
                        .get(i + 1)
                        .map_or(cp.active.base_offset, |n| n.base_offset);
                    sealed.insert(
                        s.base_offset,
                        Sealed {
                            base: Offset(s.base_offset),
                            next: Offset(next),
                            size_bytes: swapped
                                .get(&s.base_offset)
                                .copied()
                                .unwrap_or(s.size_bytes),
                            max_timestamp_ms: s.max_timestamp_ms,
                            handle: Rc::new(SealedHandle {
                                log_path: path_of(s.base_offset, "log"),
                                file: OnceCell::new(),
                                index: OnceCell::new(),
                            }),
                        },
                    );
                }
                let a = &cp.active;
                if !on_disk(a.base_offset) {
                    if a.recovery_position_bytes > 0 {
                        return Err(StorageError::Corrupt {
                            path: path_of(a.base_offset, "log"),
                            position: 0,
                            reason: "active segment listed in the checkpoint is missing".into(),
                        });
                    }
                    bases.push(a.base_offset);
                    bases.sort_unstable();
                }
                let offsets = io
                    .read_small_file(&path_of(a.base_offset, "index"))
                    .await
                    .ok()
                    .flatten();
                let times = io
                    .read_small_file(&path_of(a.base_offset, "timeindex"))
                    .await
                    .ok()
                    .flatten();
                let recovered_index = match (offsets, times) {
                    (Some(o), Some(t)) => SegmentIndex::decode(&o, &t, a.recovery_position_bytes),
                    (None, None) if a.recovery_position_bytes == 0 => Some(SegmentIndex::new()),
                    _ => None,
                };
                let (mut index, from) = match recovered_index {
                    Some(idx) => (idx, a.recovery_position_bytes),
                    // Without a usable index the active segment is walked from
                    // its start: slower, still correct.
                    None => (SegmentIndex::new(), 0),
                };
                index.set_max_timestamp_ms(a.max_timestamp_ms);
                let expect = if from == 0 {
                    Offset(a.base_offset)
                } else {
                    Offset(a.recovery_next_offset)
                };
                to_walk.push((a.base_offset, from, index, expect));
                if a.recovery_point_is_end {
                    // A truncation was cutting the log here: keep nothing after it.
                    end_at = Some(a.recovery_position_bytes);
                    for &b in bases.iter().filter(|&&b| b > a.base_offset) {
                        remove_segment_files(&io, &dir, b).await;
                        report.removed_segments += 1;
                    }
                    bases.retain(|&b| b <= a.base_offset);
                }
                for &b in bases.iter().filter(|&&b| b > a.base_offset) {
                    to_walk.push((b, 0, SegmentIndex::new(), Offset(b)));
                }
            }
            None => {
                if bases.is_empty() {
                    bases.push(0);
                }
                log_start = Offset(bases[0]);
                for &b in &bases {
                    to_walk.push((b, 0, SegmentIndex::new(), Offset(b)));
                }
            }
        }

        // Walk the unchecked segments in order. The first one that ends in
        // invalid bytes ends the log: it is cut there and later ones removed.
        let mut walked: Vec<Walked<I::File>> = Vec::new();
        let mut expect_next: Option<Offset> = None;
        // Only the last segment can be the active one, which the cleaner
        // never rewrites: the ones before it (walked when the checkpoint is
        // lost) may have gaps where the cleaner dropped whole batches.
        let walk_count = to_walk.len();
        let mut walk_iter = to_walk.into_iter().enumerate();
        for (walk_index, (base, from, mut index, expect)) in walk_iter.by_ref() {
            let gaps_allowed = walk_index + 1 < walk_count;
            let path = path_of(base, "log");
            let file = io
                .open(&path, true)
                .await
                .map_err(|e| StorageError::io("open segment", &path, e))?;
            let file_bytes = file
                .size()
                .await
                .map_err(|e| StorageError::io("stat segment", &path, e))?;
            let expect = expect_next.unwrap_or(expect);
            // After a segment with gaps, the next one may start past where
            // the last kept batch ended, never before it.
            let continues = Offset(base) == expect
                || (expect_next.is_some()
                    && Offset(base) > expect
                    && walked.last().is_some_and(|w| w.gaps));
            if !continues && from == 0 {
                // A segment whose name does not continue the log is not ours to trust.
                tracing::warn!(path = %path.display(), "segment does not continue the log; removing it and what follows");
                remove_segment_files(&io, &dir, base).await;
                report.removed_segments += 1;
                break;
            }
            let mut next = expect;
            let mut first_write_ms = match checkpointed_first_write {
                Some((b, ms)) if b == base && ms > 0 => ms,
                _ => 0,
            };
            let interval = config.index_interval_bytes;
            // Only the checkpointed active segment is walked when the log ends
            // at its recovery point (the later ones were removed above).
            let scan_end = end_at.map_or(file_bytes, |e| e.min(file_bytes));
            let end = scan(
                &file,
                from,
                scan_end,
                RECOVERY_READ_BYTES,
                ScanCheck {
                    validate: true,
                    expect_offset: Some(expect),
                    gaps_allowed,
                },
                |pos, h, bytes| {
                    index.on_append(Offset(base), h, pos, interval);
                    if h.base_offset.0 >= replay_from {
                        if let Some(e) = producers.record_batch(h, &bytes, h.base_offset) {
                            aborted.insert(e.last_offset.0, e);
                        }
                    }
                    if batch_epochs_trusted && h.partition_leader_epoch >= 0 {
                        epochs.assign(LeaderEpoch(h.partition_leader_epoch), h.base_offset);
                    }
                    if first_write_ms == 0 {
                        first_write_ms = h.max_timestamp_ms.max(1);
                    }
                    next = h.next_offset();
                    ControlFlow::Continue(())
                },
            )
            .await
            .map_err(|e| StorageError::io("recovery read", &path, e))?;
            let (end_bytes, torn) = match end {
                ScanEnd::Complete => (scan_end, false),
                ScanEnd::Invalid {
                    position,
                    reason,
                    zeroed,
                    older,
                } => {
                    if older {
                        // The file was recycled: its old batches, all below
                        // the segment's base offset, follow the data.
                        tracing::info!(path = %path.display(), position, "end of data; older batches of a recycled segment file follow");
                    } else if !zeroed {
                        tracing::warn!(path = %path.display(), position, %reason, "torn tail: cutting the log here");
                        report.torn_tail_position_bytes.get_or_insert(position);
                    }
                    (position, true)
                }
                ScanEnd::Stopped { position } => (position, true),
            };
            report.scanned_bytes += end_bytes - from;
            walked.push(Walked {
                base: Offset(base),
                file: Rc::new(file),
                path,
                end_bytes,
                file_bytes,
                index,
                next,
                first_write_ms,
                gaps: gaps_allowed,
            });
            expect_next = Some(next);
            if torn {
                break;
            }
        }
        // Segments after a torn one cannot be trusted: they were never
        // acknowledged, since a roll happens only after the data before it is synced.
        for (_, (base, _, _, _)) in walk_iter {
            tracing::warn!(base, "removing segment that follows a torn one");
            remove_segment_files(&io, &dir, base).await;
            report.removed_segments += 1;
        }

        let mut last = walked
            .pop()
            .expect("recovery walks at least the active segment");
        // Segments sealed here (walked, not the last) get their .txnindex
        // written below, before the checkpoint that will list them.
        // A sealed segment ends where the next one starts: a rewritten one
        // may have lost its last batches to the cleaner.
        let following: Vec<Offset> = walked
            .iter()
            .skip(1)
            .map(|w| w.base)
            .chain(std::iter::once(last.base))
            .collect();
        for (w, next) in walked.iter_mut().zip(following) {
            w.next = w.next.max(next);
        }
        let walked_sealed: Vec<(Offset, Offset)> =
            walked.iter().map(|w| (w.base, w.next)).collect();
        for w in walked {
            let max_timestamp_ms = w.index.max_timestamp_ms();
            let handle = SealedHandle {
                log_path: w.path,
                file: OnceCell::new(),
                index: OnceCell::new(),
            };
            let _ = handle.file.set(w.file);
            let _ = handle.index.set(Rc::new(w.index));
            sealed.insert(
                w.base.0,
                Sealed {
                    base: w.base,
                    next: w.next,
                    size_bytes: w.end_bytes,
                    max_timestamp_ms,
                    handle: Rc::new(handle),
                },
            );
        }
        let mut checkpoint_requested =
            report.removed_segments > 0 || !report.from_checkpoint || !swapped.is_empty();
        let tail = if last.end_bytes < last.file_bytes {
            // Cut everything after the valid data: torn bytes, and stale bytes
            // that a later, shorter write could otherwise leave reachable.
            let tail = cut_tail(&last).await?;
            last.file_bytes = align_up(last.end_bytes);
            tail
        } else {
            read_tail(&last).await?
        };
        checkpoint_requested |= report.scanned_bytes > 0;
        let mut log = Self::assemble(
            io,
            dir,
            config,
            cache,
            cache_id,
            log_start,
            sealed,
            last,
            tail,
            checkpoint_requested,
        );
        log.producers = producers;
        log.recycled = recycled;
        log.cleaner = load_cleaner_checkpoint(&log.io, &log.dir).await;
        if let Some(cp) = &checkpoint {
            load_txn_indexes(&log.io, &log.dir, cp, &mut aborted).await?;
        }
        // Nothing past the recovered end (a torn tail, a truncation's end).
        aborted.split_off(&log.next_offset.0);
        for (base, next) in walked_sealed {
            let entries = txn::segment_entries(&aborted, base, next);
            if !entries.is_empty() {
                let path = log.path_of(base, "txnindex");
                log.io
                    .write_file_atomic(&path, &txn::encode(&entries))
                    .await
                    .map_err(|e| StorageError::io("write txn index", &path, e))?;
            }
        }
        log.aborted = aborted;
        // Epochs that started at or after the recovered end lost their
        // batches (or never had any); the first one starts at the log start.
        epochs.truncate_from(log.next_offset);
        epochs.truncate_before(log.log_start);
        if epochs.latest().is_none() && log.next_offset > log.log_start {
            epochs.assign(LeaderEpoch(0), log.log_start);
        }
        if let Some(latest) = epochs.latest() {
            log.leader_epoch = latest;
        }
        log.epochs = epochs;
        log.high_watermark = checkpoint
            .as_ref()
            .and_then(|c| c.high_watermark)
            .map(|hw| Offset(hw).max(log.log_start).min(log.next_offset));
        Ok((log, report))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        io: I,
        dir: PathBuf,
        config: LogConfig,
        cache: SharedBatchCache,
        cache_id: CacheId,
        log_start: Offset,
        sealed: BTreeMap<i64, Sealed<I::File>>,
        last: Walked<I::File>,
        tail: Vec<u8>,
        checkpoint_requested: bool,
    ) -> Self {
        let next = last.next;
        let log_start = log_start.min(next);
        let first_write_ms = match (last.end_bytes, last.first_write_ms) {
            (0, _) => 0,
            (_, 0) => last.index.max_timestamp_ms().max(1),
            (_, ms) => ms,
        };
        let active = Active {
            base: last.base,
            file: last.file,
            path: last.path,
            written_bytes: last.end_bytes,
            synced_tail: tail.clone(),
            tail,
            synced_bytes: last.end_bytes,
            preallocated_bytes: last.file_bytes,
            index: last.index,
            first_write_ms,
        };
        PartitionLog {
            io,
            dir,
            config,
            cache,
            cache_id,
            log_start,
            sealed,
            active,
            next_offset: next,
            written_offset: next,
            flushed_offset: next,
            unflushed: VecDeque::new(),
            unflushed_bytes: 0,
            in_flight: None,
            failure: None,
            failures_in_a_row: 0,
            preallocation_failures_in_a_row: 0,
            discard_generation: 0,
            bytes_since_checkpoint: 0,
            checkpoint_requested,
            last_sync_ms: 0,
            producers: Default::default(),
            preallocating: None,
            preallocation_failed: false,
            large_writes: false,
            staged: None,
            writes_from_staged_buffers: 0,
            background_checkpoints: false,
            checkpointing: false,
            recycled: Vec::new(),
            segments_on_recycled_files: 0,
            leader_epoch: LeaderEpoch(0),
            epochs: EpochCache::new(),
            high_watermark: None,
            aborted: AbortedIndex::new(),
            cleaner: Default::default(),
            cleaning: false,
            pending_swap: None,
            tombstones_due_at_ms: None,
        }
    }
}

/// Reads the written part of the last, partly filled block.
async fn read_tail<F: DirectFile>(w: &Walked<F>) -> Result<Vec<u8>> {
    read_tail_at(&*w.file, &w.path, w.end_bytes).await
}

async fn cut_tail<F: DirectFile>(w: &Walked<F>) -> Result<Vec<u8>> {
    cut_file_at(&*w.file, &w.path, w.end_bytes).await
}

/// Reads the bytes of the block holding `end_bytes` that lie before it.
pub(crate) async fn read_tail_at<F: DirectFile>(
    file: &F,
    path: &Path,
    end_bytes: u64,
) -> Result<Vec<u8>> {
    let start = align_down(end_bytes);
    let len = (end_bytes - start) as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    let block = file
        .read_at(start, 4096)
        .await
        .map_err(|e| StorageError::io("read tail", path, e))?;
    Ok(block.get(..len).map(<[u8]>::to_vec).unwrap_or_default())
}

/// Ends a segment file's data at `end_bytes`: rewrites the last block with
/// zeros after the data, cuts the file at that block's end (nothing stale
/// stays reachable past the data) and syncs. Returns the kept tail.
/// Recovery uses it to cut a torn tail, truncation to cut a log short.
pub(crate) async fn cut_file_at<F: DirectFile>(
    file: &F,
    path: &Path,
    end_bytes: u64,
) -> Result<Vec<u8>> {
    let tail = read_tail_at(file, path, end_bytes).await?;
    let start = align_down(end_bytes);
    if !tail.is_empty() {
        let mut buf = file.alloc_buffer(4096);
        buf.as_mut().fill(0);
        buf.as_mut()[..tail.len()].copy_from_slice(&tail);
        file.write_at(buf, start)
            .await
            .map_err(|e| StorageError::io("rewrite tail", path, e))?;
    }
    let keep = align_up(end_bytes);
    file.truncate(keep)
        .await
        .map_err(|e| StorageError::io("truncate", path, e))?;
    file.fdatasync()
        .await
        .map_err(|e| StorageError::io("fdatasync", path, e))?;
    Ok(tail)
}

async fn remove_segment_files<I: StorageIo>(io: &I, dir: &Path, base: i64) {
    for ext in ["log", "index", "timeindex", "txnindex"] {
        let path = dir.join(format!("{}.{ext}", segment_file_stem(Offset(base))));
        if let Err(e) = io.remove_file(&path).await {
            tracing::warn!(path = %path.display(), error = %e, "could not remove segment file");
        }
    }
}

/// Loads the `.txnindex` files the checkpoint lists into `aborted`: each
/// sealed segment's, and the active one's entries below the recovery
/// point. A listed file that is missing or torn is rebuilt by scanning the
/// log from its first segment through that segment (the producer state at
/// a segment's base is not stored, and an aborted transaction may have
/// started in an earlier segment), and written again.
async fn load_txn_indexes<I: StorageIo>(
    io: &I,
    dir: &Path,
    cp: &Checkpoint,
    aborted: &mut AbortedIndex,
) -> Result<()> {
    let path_of = |base: i64| dir.join(format!("{}.txnindex", segment_file_stem(Offset(base))));
    // Every segment the checkpoint covers: (base, end of its covered
    // offsets, bytes of it covered).
    let mut covered: Vec<(i64, i64, u64)> = cp
        .sealed
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let next = cp
                .sealed
                .get(i + 1)
                .map_or(cp.active.base_offset, |n| n.base_offset);
            (s.base_offset, next, s.size_bytes)
        })
        .collect();
    covered.push((
        cp.active.base_offset,
        cp.active.recovery_next_offset,
        cp.active.recovery_position_bytes,
    ));
    let mut rebuild: Vec<(i64, i64)> = Vec::new();
    for &base in &cp.txn_index_bases {
        let Some(&(_, next, _)) = covered.iter().find(|c| c.0 == base) else {
            continue;
        };
        let path = path_of(base);
        let bytes = io.read_small_file(&path).await.ok().flatten();
        // The active segment's file may hold entries past the recovery
        // point (a truncation's end); they are dropped, not a fault.
        let is_active = base == cp.active.base_offset;
        let decode_next = if is_active {
            Offset(i64::MAX)
        } else {
            Offset(next)
        };
        match bytes.and_then(|b| txn::decode(&b, Offset(base), decode_next)) {
            Some(entries) => {
                for e in entries.into_iter().filter(|e| e.last_offset.0 < next) {
                    aborted.insert(e.last_offset.0, e);
                }
            }
            None => {
                tracing::warn!(path = %path.display(), "txn index missing or torn; rebuilding it from the log");
                rebuild.push((base, next));
            }
        }
    }
    let Some(&(_, upto)) = rebuild.iter().max_by_key(|r| r.1) else {
        return Ok(());
    };
    let mut producers = crate::producer::ProducerStates::default();
    let mut found: Vec<TxnIndexEntry> = Vec::new();
    for &(base, next, size_bytes) in covered.iter().filter(|c| c.0 < upto) {
        let log_path = dir.join(format!("{}.log", segment_file_stem(Offset(base))));
        let file = io
            .open(&log_path, false)
            .await
            .map_err(|e| StorageError::io("open segment", &log_path, e))?;
        scan(
            &file,
            0,
            size_bytes,
            RECOVERY_READ_BYTES,
            ScanCheck {
                validate: false,
                expect_offset: None,
                gaps_allowed: false,
            },
            |_, h, bytes| {
                if h.base_offset.0 >= next {
                    return ControlFlow::Break(());
                }
                if let Some(e) = producers.record_batch(h, &bytes, h.base_offset) {
                    found.push(e);
                }
                ControlFlow::Continue(())
            },
        )
        .await
        .map_err(|e| StorageError::io("txn index rebuild read", &log_path, e))?;
    }
    for (base, next) in rebuild {
        let entries: Vec<TxnIndexEntry> = found
            .iter()
            .filter(|e| e.last_offset.0 >= base && e.last_offset.0 < next)
            .copied()
            .collect();
        let path = path_of(base);
        io.write_file_atomic(&path, &txn::encode(&entries))
            .await
            .map_err(|e| StorageError::io("write txn index", &path, e))?;
        for e in entries {
            aborted.insert(e.last_offset.0, e);
        }
    }
    Ok(())
}

/// Completes the swaps of a cleaning pass that reached its commit mark
/// (see [`crate::clean`]): for each `<base>.log.swap` of a segment the
/// checkpoint lists as sealed (any segment, without a checkpoint), the old
/// indexes go and the swap file replaces the `.log`. Returns the new
/// sizes by base. Other swap files are deleted.
///
/// The checkpoint is written again with the swap files' sizes before any
/// of them is renamed (as the swap job's step (3) does before its step
/// (4)): once a swap file has taken its segment's name, nothing tells a
/// later open that the checkpoint's size for it is the old file's, and a
/// crash before the next checkpoint would leave the log reading past the
/// end of the new, shorter file.
async fn finish_swaps<I: StorageIo>(
    io: &I,
    dir: &Path,
    names: &[String],
    checkpoint: Option<&mut Checkpoint>,
    checkpoint_path: &Path,
) -> Result<std::collections::HashMap<i64, u64>> {
    let mut sizes = std::collections::HashMap::new();
    let mut ours = Vec::new();
    for name in names {
        let Some(base) = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(parse_stem)
        else {
            continue;
        };
        let swap = dir.join(name);
        let listed = checkpoint
            .as_deref()
            .is_none_or(|cp| cp.sealed.iter().any(|s| s.base_offset == base));
        if !listed {
            tracing::warn!(path = %swap.display(), "swap file of a segment the log no longer holds; removing it");
            let _ = io.remove_file(&swap).await;
            continue;
        }
        let size = io
            .open(&swap, false)
            .await
            .map_err(|e| StorageError::io("open swap file", &swap, e))?
            .size()
            .await
            .map_err(|e| StorageError::io("stat swap file", &swap, e))?;
        sizes.insert(base, size);
        ours.push((base, swap));
    }
    if let Some(cp) = checkpoint.filter(|_| !ours.is_empty()) {
        for s in cp.sealed.iter_mut() {
            if let Some(&size) = sizes.get(&s.base_offset) {
                s.size_bytes = size;
            }
        }
        io.write_file_atomic(checkpoint_path, &cp.encode())
            .await
            .map_err(|e| StorageError::io("write checkpoint", checkpoint_path, e))?;
    }
    for (base, swap) in ours {
        let stem = segment_file_stem(Offset(base));
        for ext in ["index", "timeindex"] {
            let path = dir.join(format!("{stem}.{ext}"));
            io.remove_file(&path)
                .await
                .map_err(|e| StorageError::io("remove old index", &path, e))?;
        }
        let log = dir.join(format!("{stem}.log"));
        io.rename(&swap, &log)
            .await
            .map_err(|e| StorageError::io("complete cleaned segment swap", &swap, e))?;
        tracing::info!(path = %log.display(), size = sizes.get(&base).copied().unwrap_or_default(), "completed a cleaned segment's swap");
    }
    Ok(sizes)
}

/// The cleaner's state; a missing or damaged file starts it afresh (the
/// next pass cleans from the log start, tombstones wait a full horizon).
async fn load_cleaner_checkpoint<I: StorageIo>(io: &I, dir: &Path) -> CleanerCheckpoint {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    match io.read_small_file(&path).await {
        Ok(Some(bytes)) => CleanerCheckpoint::decode(&bytes).unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "cleaner checkpoint unreadable; cleaning starts over");
            CleanerCheckpoint::default()
        }),
        Ok(None) => CleanerCheckpoint::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cleaner checkpoint unreadable; cleaning starts over");
            CleanerCheckpoint::default()
        }
    }
}
