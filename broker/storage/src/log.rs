//! One partition's log: an append-only sequence of segment files.
//!
//! Lives on: the shard that owns the partition. Nothing here is shared
//! across threads; the runtime keeps the log in an `Rc<RefCell<_>>` and never
//! holds a borrow across an `.await`, which this API makes natural: every
//! method is synchronous, and all disk work is handed out as a [`Job`] that
//! runs without borrowing the log.
//!
//! # Durability contract
//! - [`PartitionLog::append`] validates a batch, assigns its offsets and
//!   buffers it. When it returns, the batch is readable up to
//!   [`PartitionLog::next_offset`] by the broker, but it is not durable.
//! - Batches reach the disk through jobs from [`PartitionLog::next_job`]:
//!   every batch buffered while a write is in flight goes into the next single
//!   write (group commit). With `flush.policy=always` each write is followed by
//!   fdatasync before the job completes.
//! - [`PartitionLog::flushed_offset`] advances only after the write *and* its
//!   fdatasync complete. Everything below it survives a process crash and a
//!   power loss.
//! - The high watermark may never pass `flushed_offset()`: consumers must
//!   not see data that a crash could take back. Reads take an explicit
//!   `max_offset` for this reason.
//! - If a write or sync fails, every unflushed batch is discarded, the log end
//!   goes back to `flushed_offset()`, [`PartitionLog::discard_generation`]
//!   increases (so that waiters for durability can tell their batch is gone),
//!   and appends fail until a repair job finds the disk writable again.
//!   Nothing flushed is touched.
//!
//! - Compaction (`cleanup.policy` with compact) rewrites sealed segments
//!   only, never changes an offset, and swaps a pass in so that a crash at
//!   any point leaves each segment either old or new, both holding every
//!   record the pass keeps; the steps and what recovery does with the
//!   files they leave are in [`crate::clean`]. A compacted segment may
//!   have gaps between offsets and batches without records.
//!
//! # Leader epochs
//! Every appended batch is stamped with the log's leader epoch
//! ([`PartitionLog::set_leader_epoch`]) in its `partitionLeaderEpoch`
//! field, which the CRC does not cover, and the log keeps the epoch cache
//! (first offset of each epoch) that answers OffsetForLeaderEpoch. The cache
//! follows the log: truncation and a discarded write drop the epochs that
//! started in the removed range, a moved log start moves the first epoch's
//! start, and recovery rebuilds what followed the last checkpoint from the
//! batches themselves.
//!
//! # Transactions
//! Producer state tracks each producer's ongoing transaction (see
//! [`crate::producer`]); markers are appended with
//! [`PartitionLog::append_marker`] and clients' control batches are
//! refused. The last stable offset ([`PartitionLog::last_stable_offset`])
//! is the high watermark bounded by the first offset of every ongoing
//! transaction: it may never pass the first offset of a transaction whose
//! marker is not in the log, so a read_committed consumer never reads data
//! whose fate is undecided. Every change to the log that can take a marker
//! away (a discarded write, a truncation) restores the transactions as they
//! were before it, so the LSO can go back with the log end but never
//! leaves an open transaction's data below it. ABORT markers feed the
//! aborted-transaction index ([`PartitionLog::aborted_transactions`]),
//! whose `.txnindex` files and their durability are described in
//! [`crate::txn`].

use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, ValidBatch};
use crate::cache::{CacheId, SharedBatchCache};
use crate::checkpoint::{
    ActiveSegmentMeta, Checkpoint, LeaderEpochMeta, SealedSegmentMeta, CHECKPOINT_FILE,
};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Result, StorageError};
use crate::index::SegmentIndex;
use crate::io::{align_down, align_up, DirectFile, StorageIo, WriteBuffer, IO_ALIGN_BYTES};
use crate::job::{Job, JobDone, Work};
pub use crate::lanes::{
    BackgroundCheckpoint, BackgroundCheckpointDone, Preallocation, PreallocationDone,
};
use crate::producer::ProducerStateView;
use crate::retention::Recycled;
use crate::txn::{self, AbortedIndex, AbortedTxn, TxnMarker};
use crate::types::{segment_file_stem, LeaderEpoch, Offset, ProducerId};
use corelog_model::epochs::EpochCache;

/// The smallest step of space reserved ahead of a segment's data.
pub const PREALLOCATE_STEP_MIN_BYTES: u64 = 1 << 20;

/// A group-commit write of at least this many bytes goes straight into
/// space that was never zero-filled, and while writes are this large the
/// preallocation lane fills nothing ahead of them.
///
/// Measured on the project's machine (virtio disk, ext4), durable 1 MiB and
/// 4 MiB appends into new space run at 1.3-1.5 GiB/s, while zero-filling
/// first and then overwriting writes every byte twice (about 1 GiB/s of
/// data) and, beside the writes, holds the inode lock that stalls them (the
/// 16 ms p99 of 1 MiB appends). Small writes keep the lane: at 16 KiB an
/// overwrite of filled blocks syncs in 115 us at p50 against 170 us for new
/// space, and the second write costs little bandwidth at their rate.
pub const DIRECT_WRITE_MIN_BYTES: u64 = 256 << 10;

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub max_timestamp_ms: i64,
    /// The batch was an idempotent producer's retry of a batch already in
    /// the log: nothing was appended, and the offsets are the original's.
    pub duplicate: bool,
}

/// A batch that is buffered but not yet durable. Its bytes are the producer's
/// own, with the producer's base offset; the assigned one is patched in when
/// the batch is copied into a write buffer or served from memory.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub base: Offset,
    pub next: Offset,
    /// The epoch it is stamped with when written or served.
    pub leader_epoch: LeaderEpoch,
    pub bytes: Bytes,
}

/// A segment that no longer takes appends.
pub(crate) struct Sealed<F> {
    pub base: Offset,
    pub next: Offset,
    pub size_bytes: u64,
    pub max_timestamp_ms: i64,
    pub handle: Rc<SealedHandle<F>>,
}

/// The parts of a sealed segment that are loaded on first use, so that
/// opening a partition reads no index and opens no old file.
pub(crate) struct SealedHandle<F> {
    pub log_path: PathBuf,
    pub file: OnceCell<Rc<F>>,
    pub index: OnceCell<Rc<SegmentIndex>>,
}

/// The segment that takes appends.
pub(crate) struct Active<F> {
    pub base: Offset,
    pub file: Rc<F>,
    pub path: PathBuf,
    /// Bytes of batches written to the file (not necessarily synced).
    pub written_bytes: u64,
    /// The written bytes of the last, partly filled block. The next write
    /// starts with them, so that block is rewritten from memory and never
    /// read back from disk.
    pub tail: Vec<u8>,
    pub synced_bytes: u64,
    pub synced_tail: Vec<u8>,
    pub preallocated_bytes: u64,
    pub index: SegmentIndex,
    /// Wall-clock time of the segment's first write, for `segment.ms`; 0 while empty.
    pub first_write_ms: i64,
}

/// Why the log refuses appends until a repair job succeeds.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub message: String,
    pub os_error: Option<i32>,
}

/// The buffer of the next group-commit write, filled while the write before
/// it is in flight (see [`PartitionLog::stage_queued`]).
pub(crate) struct Staged<B> {
    pub buf: B,
    /// The segment and file position the write is for: the active segment,
    /// at the block where the write in flight ends.
    pub segment: Offset,
    pub start: u64,
    /// Bytes of the block that the write in flight ends in, at the start of `buf`.
    pub head: usize,
    /// The batches copied after the head, and their bytes.
    pub batches: usize,
    pub bytes: u64,
}

impl<B> Staged<B> {
    /// Bytes of `buf` filled: the head, then the batches.
    fn filled(&self) -> usize {
        self.head + self.bytes as usize
    }
}

impl Pending {
    /// Copies the batch to the start of `dst` with its assigned base offset
    /// and leader epoch patched in: the one copy of record bytes on the
    /// produce path, into the aligned buffer that O_DIRECT requires.
    /// Returns its length.
    fn copy_to(&self, dst: &mut [u8]) -> usize {
        let len = self.bytes.len();
        dst[..len].copy_from_slice(&self.bytes);
        batch::set_base_offset(dst, self.base);
        batch::set_partition_leader_epoch(dst, self.leader_epoch);
        len
    }
}

/// What the job in flight will change when it completes.
pub(crate) enum InFlight {
    Write {
        batches: usize,
        bytes: u64,
        new_tail: Vec<u8>,
        preallocate_to: Option<u64>,
        sync: bool,
    },
    Sync,
    Roll {
        new_base: Offset,
        preallocate_to: u64,
        /// The new segment is a recycled file whose first this many bytes
        /// are written blocks.
        recycled_bytes: u64,
    },
    Checkpoint,
    Retention,
    /// A cleaning pass being swapped in ([`crate::clean`]).
    CleanSwap,
    Repair {
        preallocate_to: u64,
    },
}

pub struct PartitionLog<I: StorageIo> {
    pub(crate) io: I,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) cache: SharedBatchCache,
    pub(crate) cache_id: CacheId,
    pub(crate) log_start: Offset,
    /// Sealed segments by base offset.
    pub(crate) sealed: BTreeMap<i64, Sealed<I::File>>,
    pub(crate) active: Active<I::File>,
    pub(crate) next_offset: Offset,
    pub(crate) written_offset: Offset,
    pub(crate) flushed_offset: Offset,
    /// Batches at and above `written_offset`, oldest first.
    pub(crate) unflushed: VecDeque<Pending>,
    pub(crate) unflushed_bytes: usize,
    pub(crate) in_flight: Option<InFlight>,
    pub(crate) failure: Option<Failure>,
    /// Jobs that failed since the last one that succeeded. A disk that
    /// refuses writes fails a job every retry (every 100 ms per partition);
    /// only the first failure and then each doubling are logged at error,
    /// so a full disk does not also fill the log with lines.
    pub(crate) failures_in_a_row: u64,
    /// The same for preallocations ahead of the writes.
    pub(crate) preallocation_failures_in_a_row: u64,
    pub(crate) discard_generation: u64,
    pub(crate) bytes_since_checkpoint: u64,
    pub(crate) checkpoint_requested: bool,
    pub(crate) last_sync_ms: i64,
    pub(crate) producers: crate::producer::ProducerStates,
    /// A preallocation running beside the jobs: (segment base, target size).
    pub(crate) preallocating: Option<(Offset, u64)>,
    /// The last preallocation failed; none is started until a write or a
    /// repair succeeds.
    pub(crate) preallocation_failed: bool,
    /// The last group-commit write was at least [`DIRECT_WRITE_MIN_BYTES`]:
    /// the preallocation lane stands down while writes are that large.
    pub(crate) large_writes: bool,
    /// Periodic checkpoints are left to [`Self::next_background_checkpoint`].
    pub(crate) background_checkpoints: bool,
    /// A [`BackgroundCheckpoint`] is running.
    pub(crate) checkpointing: bool,
    /// Deleted segment files kept for new segments to write over, at most
    /// `segment_files_recycled_max`.
    pub(crate) recycled: Vec<Recycled<I::File>>,
    /// Segments started on a recycled file since the log was opened.
    pub(crate) segments_on_recycled_files: u64,
    /// The next write's buffer, being filled behind a large write in flight.
    pub(crate) staged: Option<Staged<<I::File as DirectFile>::Buffer>>,
    /// Writes that used a staged buffer since the log was opened.
    pub(crate) writes_from_staged_buffers: u64,
    /// The epoch appended batches are stamped with.
    pub(crate) leader_epoch: LeaderEpoch,
    /// The first offset of each leader epoch in the log.
    pub(crate) epochs: EpochCache,
    /// The replicated partition's high watermark as the replication layer
    /// last reported it, kept in the checkpoint; on open, what the
    /// checkpoint held, bounded by the log.
    pub(crate) high_watermark: Option<Offset>,
    /// Aborted transactions of every segment, by marker offset (see
    /// [`crate::txn`]).
    pub(crate) aborted: AbortedIndex,
    /// The cleaner's persisted state (last cleaned offset, passes).
    pub(crate) cleaner: crate::clean::CleanerCheckpoint,
    /// A [`crate::clean::CleanJob`] is running.
    pub(crate) cleaning: bool,
    /// A finished cleaning pass waiting for its swap job.
    pub(crate) pending_swap: Option<crate::clean::PendingSwap<I::File>>,
    /// When the first tombstone the last pass kept in the cleaned range
    /// passes its delete horizon: from then the log is due for a pass
    /// whatever its dirty ratio (Kafka 3.x's delete-horizon trigger). In
    /// memory only: after a restart such tombstones wait until the log is
    /// due again for another reason, which only keeps them longer.
    pub(crate) tombstones_due_at_ms: Option<i64>,
}

impl<I: StorageIo> PartitionLog<I> {
    /// Offset the next append gets (the log end offset).
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// The epoch appended batches are stamped with.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    /// The log's leader-epoch cache.
    pub fn epochs(&self) -> &EpochCache {
        &self.epochs
    }

    /// Records the replicated partition's high watermark, for the next
    /// checkpoint (periodic, or the clean shutdown's). Not written now: a
    /// checkpoint that lags only makes a restarted replica start from an
    /// older committed offset, which is safe (it waits for its followers).
    pub fn set_high_watermark(&mut self, hw: Offset) {
        self.high_watermark = Some(hw);
        self.prune_txn_journal();
    }

    /// Prunes the producer-state journal: a discarded write or a
    /// checkpoint rewinds it at most to the flushed offset, a truncation
    /// (of a follower) normally not below the high watermark; older
    /// entries are kept up to the journal's bound for a deeper truncation,
    /// which otherwise rescans the log.
    pub(crate) fn prune_txn_journal(&mut self) {
        let flushed = self.flushed_offset;
        let keep_from = self.high_watermark.map_or(flushed, |hw| hw.min(flushed));
        self.producers.prune_journal(keep_from, flushed);
    }

    /// The smallest first offset of an ongoing transaction: the offset the
    /// last stable offset may not pass.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.producers.first_unstable_offset()
    }

    /// The last stable offset for `high_watermark`: the high watermark,
    /// bounded by the first offset of every ongoing transaction (not below
    /// the log start, as Kafka bounds it). A read_committed fetch reads
    /// below it.
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        match self.first_unstable_offset() {
            Some(first) => high_watermark.min(first.max(self.log_start)),
            None => high_watermark,
        }
    }

    /// The first offset of `producer_id`'s ongoing transaction in this
    /// partition, if one is ongoing (KIP-890: whether a transactional batch
    /// from it would start a transaction).
    pub fn ongoing_transaction(&self, producer_id: ProducerId) -> Option<Offset> {
        self.producers.ongoing_transaction(producer_id)
    }

    /// Every producer the partition remembers, by id (DescribeProducers).
    pub fn producer_states(&self) -> Vec<ProducerStateView> {
        self.producers.views()
    }

    /// The aborted transactions whose range `[first_offset, last_offset]`
    /// intersects `[from, upper)`, in first-offset order: what a
    /// read_committed Fetch returns with the data it read from `from` up
    /// to `upper`. At most [`txn::ABORTED_TXNS_PER_READ_MAX`] (the ones that
    /// start first); see [`Self::aborted_transactions_bounded`].
    pub fn aborted_transactions(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        self.aborted_transactions_bounded(from, upper, txn::ABORTED_TXNS_PER_READ_MAX)
            .0
    }

    /// [`Self::aborted_transactions`] with at most `max` of them, and the
    /// offset below which the list is complete: `upper`, or the first
    /// offset of the first transaction left out, below which a fetch must
    /// then end its data.
    pub fn aborted_transactions_bounded(
        &self,
        from: Offset,
        upper: Offset,
        max: usize,
    ) -> (Vec<AbortedTxn>, Offset) {
        // Below the log start nothing is read; the entries of segments
        // that retention has not deleted yet stay until it does.
        txn::collect(&self.aborted, from.max(self.log_start), upper, max)
    }

    /// Appends a transaction marker as the coordinator asks
    /// (WriteTxnMarkers): a control batch as Kafka builds it (see
    /// [`crate::txn`]) from the producer, stamped with `now_ms`, appended
    /// like any batch (same durability: see the contract above). It ends
    /// the producer's ongoing transaction; an ABORT of one adds it to the
    /// aborted-transaction index.
    ///
    /// Refused, changing nothing, when its producer epoch is older than the
    /// producer's ([`StorageError::ProducerFenced`]) or its coordinator
    /// epoch older than the last marker's ([`StorageError::CoordinatorFenced`]).
    /// A marker for a producer with no ongoing transaction is written (a
    /// coordinator retrying after a crash must succeed); one with a newer
    /// producer epoch raises the producer's epoch.
    pub fn append_marker(&mut self, marker: TxnMarker, now_ms: i64) -> Result<AppendInfo> {
        if marker.producer_id.is_none() || marker.producer_epoch.is_none() {
            return Err(StorageError::Batch(batch::BatchError::Invalid(
                "transaction marker without a producer id and epoch",
            )));
        }
        let bytes = Bytes::from(txn::marker_batch(&marker, now_ms));
        let header = BatchHeader::parse(&bytes)?;
        self.check_appendable(&header)?;
        self.producers.check_marker(&marker)?;
        if self.epochs.latest() != Some(self.leader_epoch) {
            self.epochs.assign(self.leader_epoch, self.next_offset);
        }
        Ok(self.buffer(&header, self.leader_epoch, bytes))
    }

    /// The high watermark the log was opened with: the checkpoint's,
    /// bounded by the log start and end (a follower's may have passed its
    /// durable end, and a crash cut its tail). `None` when the checkpoint
    /// held none. The replication layer starts from it after a restart.
    /// (After [`Self::set_high_watermark`], the value last set.)
    pub fn high_watermark(&self) -> Option<Offset> {
        self.high_watermark
    }

    /// Makes `epoch` the epoch of every batch appended from now on, and
    /// records that it starts at the log end (Kafka's leader does the same
    /// when it takes over, so that OffsetForLeaderEpoch for its own epoch is
    /// answered before it has appended anything). An epoch older than one
    /// the log already holds is refused and changes nothing: the epochs of
    /// a log never go back. Returns whether the epoch is now in force.
    pub fn set_leader_epoch(&mut self, epoch: LeaderEpoch) -> bool {
        if epoch.0 < 0 || self.epochs.latest().is_some_and(|latest| epoch < latest) {
            tracing::warn!(dir = %self.dir.display(), epoch = epoch.0, latest = ?self.epochs.latest(), "refusing an older leader epoch");
            return false;
        }
        // Not checkpointed now: recovery finds the epoch again in its
        // batches, and one with no batch is recorded again when the leader
        // sets it after a restart.
        if self.epochs.latest() != Some(epoch) {
            self.epochs.assign(epoch, self.next_offset);
        }
        self.leader_epoch = epoch;
        true
    }

    /// OffsetForLeaderEpoch as a Kafka leader answers it: the largest epoch
    /// at or below `epoch` that this log holds, and the offset where it
    /// ends (the log end for the latest epoch). See
    /// [`EpochCache::answer_offset_for_leader_epoch`].
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        self.epochs
            .answer_offset_for_leader_epoch(epoch, self.next_offset)
    }

    /// The cache after a cut at `end` (truncation, discarded writes): the
    /// epochs that started in the removed range go, and the log's own epoch
    /// is recorded again at the new end if it went with them.
    pub(crate) fn epochs_cut_at(&mut self, end: Offset) {
        self.epochs.truncate_from(end);
        if self
            .epochs
            .latest()
            .is_none_or(|latest| latest < self.leader_epoch)
        {
            self.epochs.assign(self.leader_epoch, end);
        }
    }

    /// Every offset below this is durable.
    pub fn flushed_offset(&self) -> Offset {
        self.flushed_offset
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start
    }

    /// Increases whenever unflushed batches are discarded after a failed
    /// write. A waiter that saw generation `g` when its batch was appended
    /// knows the batch is gone if the generation is no longer `g`.
    pub fn discard_generation(&self) -> u64 {
        self.discard_generation
    }

    /// Bytes buffered and not yet written: the memory a slow disk holds up.
    pub fn unflushed_bytes(&self) -> usize {
        self.unflushed_bytes
    }

    /// Bytes of all segments, as retention counts them.
    pub fn size_bytes(&self) -> u64 {
        self.sealed.values().map(|s| s.size_bytes).sum::<u64>() + self.active.written_bytes
    }

    /// How many segments since the log was opened were written over a
    /// recycled segment file instead of new space.
    pub fn segments_on_recycled_files(&self) -> u64 {
        self.segments_on_recycled_files
    }

    /// Group-commit writes whose buffer was filled while the write before
    /// them was in flight (see [`Self::stage_queued`]), since the log was opened.
    pub fn writes_from_staged_buffers(&self) -> u64 {
        self.writes_from_staged_buffers
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the settings (AlterConfigs). Takes effect from the next job.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate().map_err(StorageError::Config)?;
        self.config = config;
        Ok(())
    }

    /// Whether the last write failed and appends are refused until a repair.
    pub fn is_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Validates one record batch (every record in it, see
    /// [`crate::records`]) with this log's limits, then appends it as
    /// [`Self::append_valid`] does. An invalid batch changes nothing.
    pub fn append(&mut self, batch_bytes: Bytes) -> Result<AppendInfo> {
        let batch = ValidBatch::new(batch_bytes, &self.config.record_limits)?;
        self.append_valid(batch)
    }

    /// Assigns a checked batch the next offsets and buffers it. Returns at
    /// once; the batch becomes durable through later jobs. A refused batch
    /// (unwritable log, too large for a segment, out-of-order sequence)
    /// changes nothing.
    ///
    /// A control batch is refused (Kafka: INVALID_RECORD, clients may not
    /// write control records; markers come through [`Self::append_marker`]),
    /// as is a transactional batch without a producer id (by the batch
    /// checks).
    pub fn append_valid(&mut self, batch: ValidBatch) -> Result<AppendInfo> {
        let header = *batch.header();
        if header.is_control() {
            return Err(StorageError::Batch(batch::BatchError::Invalid(
                "clients may not write control records",
            )));
        }
        if header.is_transactional() && !header.has_producer_id() {
            return Err(StorageError::Batch(batch::BatchError::Invalid(
                "transactional batch without a producer id",
            )));
        }
        if header.has_producer_id() && header.base_sequence < 0 {
            // Only a coordinator writes producer batches without a
            // sequence ([`Self::append_from_coordinator`]).
            return Err(StorageError::Batch(batch::BatchError::Invalid(
                "producer id without a base sequence",
            )));
        }
        self.check_appendable(&header)?;
        self.check_keys(&batch)?;
        if header.has_producer_id() {
            if let crate::producer::SequenceCheck::Duplicate(b) = self.producers.check(&header)? {
                return Ok(AppendInfo {
                    base_offset: Offset(b.base_offset),
                    last_offset: Offset(b.last_offset),
                    max_timestamp_ms: header.max_timestamp_ms,
                    duplicate: true,
                });
            }
        }
        if self.epochs.latest() != Some(self.leader_epoch) {
            // The first batch of a log, or the first after a cut that took
            // the epoch's start with it.
            self.epochs.assign(self.leader_epoch, self.next_offset);
        }
        Ok(self.buffer(&header, self.leader_epoch, batch.into_bytes()))
    }

    /// Appends a batch a coordinator wrote on a producer's behalf: a group
    /// coordinator's transactional batch of offsets (TxnOffsetCommit),
    /// Kafka's `AppendOrigin.COORDINATOR`. It carries the producer's id and
    /// epoch but no sequence, so the producer's sequence checks do not
    /// apply and it is not remembered for deduplication; it opens the
    /// producer's transaction here like any transactional batch, and the
    /// coordinator's marker closes it. Durability is as for
    /// [`Self::append_valid`]. Control batches are refused: markers go
    /// through [`Self::append_marker`].
    pub fn append_from_coordinator(&mut self, batch: ValidBatch) -> Result<AppendInfo> {
        let header = *batch.header();
        if header.is_control() {
            return Err(StorageError::Batch(batch::BatchError::Invalid(
                "markers are appended with append_marker",
            )));
        }
        self.check_appendable(&header)?;
        self.check_keys(&batch)?;
        if self.epochs.latest() != Some(self.leader_epoch) {
            self.epochs.assign(self.leader_epoch, self.next_offset);
        }
        Ok(self.buffer(&header, self.leader_epoch, batch.into_bytes()))
    }

    /// A compacted log refuses records without a key (a replicated batch
    /// is not checked: its leader did, as Kafka's followers do not
    /// validate). Control batches never reach here: clients may not write
    /// them and markers come through [`Self::append_marker`].
    fn check_keys(&self, batch: &ValidBatch) -> Result<()> {
        let keyless_records = batch.summary().keyless_records;
        if self.config.cleanup_policy.compacts() && keyless_records > 0 {
            return Err(StorageError::KeylessRecordInCompactedLog { keyless_records });
        }
        Ok(())
    }

    /// The refusals every append shares: an unwritable log, a batch larger
    /// than a segment.
    fn check_appendable(&self, header: &BatchHeader) -> Result<()> {
        if let Some(f) = &self.failure {
            tracing::debug!(reason = %f.message, "append refused");
            return Err(StorageError::io(
                "append (the log is unwritable until the disk recovers)",
                &self.dir,
                std::io::Error::from_raw_os_error(f.os_error.unwrap_or(libc::EIO)),
            ));
        }
        if header.total_bytes as u64 > self.config.segment_bytes_max {
            return Err(StorageError::BatchTooLarge {
                batch_bytes: header.total_bytes,
                segment_bytes_max: self.config.segment_bytes_max,
            });
        }
        Ok(())
    }

    /// Buffers an accepted batch at the log end, stamped with `epoch`, and
    /// records its producer state.
    fn buffer(&mut self, header: &BatchHeader, epoch: LeaderEpoch, bytes: Bytes) -> AppendInfo {
        let base = self.next_offset;
        let next = base.plus(header.last_offset_delta as i64 + 1);
        if let Some(entry) = self.producers.record_batch(header, &bytes, base) {
            self.aborted.insert(entry.last_offset.0, entry);
        }
        self.unflushed_bytes += bytes.len();
        self.unflushed.push_back(Pending {
            base,
            next,
            leader_epoch: epoch,
            bytes,
        });
        self.next_offset = next;
        self.stage_queued();
        AppendInfo {
            base_offset: base,
            last_offset: Offset(next.0 - 1),
            max_timestamp_ms: header.max_timestamp_ms,
            duplicate: false,
        }
    }

    /// Appends a batch as its leader wrote it: a follower's append (Kafka's
    /// `appendAsFollower`). The batch keeps the leader's base offset and
    /// leader epoch, and its epoch enters the epoch cache, so the follower's
    /// log becomes a copy of the leader's, batch for batch.
    ///
    /// The batch must start at the log end and its epoch may not be older
    /// than the log's latest (replicating a compacted leader's batches,
    /// which may start past the log end and have gaps, is not supported
    /// yet: such a batch is refused);
    /// otherwise it is refused and nothing changes. Idempotent producer
    /// state is recorded without the producer checks (the leader made
    /// them), so that a follower that becomes leader dedupes a producer's
    /// retries exactly as the old leader did. Durability is as for
    /// [`Self::append_valid`]: buffered now, durable through later jobs.
    pub fn append_replicated(&mut self, batch: ValidBatch) -> Result<AppendInfo> {
        let header = *batch.header();
        self.check_appendable(&header)?;
        let base = header.base_offset;
        if base != self.next_offset {
            return Err(StorageError::ReplicaOffsetMismatch {
                base,
                log_end: self.next_offset,
            });
        }
        let epoch = LeaderEpoch(header.partition_leader_epoch);
        // Only epochs of batches below count: one this log recorded at its
        // end when it led and wrote nothing gives way to the leader's
        // batch (`EpochCache::assign`). Refusing it would stop this
        // follower for good: it would never hold the leader's older-epoch
        // batches it lacks (the seeded simulation in
        // `corelog-replication`'s `tests/sim.rs` found that).
        let latest = self.epochs.latest_before(base);
        if epoch.0 < 0 || latest.is_some_and(|l| epoch < l) {
            return Err(StorageError::ReplicaEpochBehind {
                epoch: epoch.0,
                latest: latest.map_or(-1, |l| l.0),
            });
        }
        self.epochs.assign(epoch, base);
        Ok(self.buffer(&header, epoch, batch.into_bytes()))
    }

    /// Copies the batches queued behind a large write in flight into the
    /// buffer of the write that will follow it, so that the copy overlaps
    /// the device's work instead of delaying the next write.
    ///
    /// Measured with eight writers of 1 MiB batches: copying a 4 MiB group
    /// commit took 0.2-0.4 ms while the device sat idle, and leaving the
    /// copy out raised throughput by 17-23% (three interleaved rounds).
    ///
    /// The staged batches are the ones the next [`Self::write_job`] takes
    /// first, by the same limits (segment size, `write_bytes_max`); it uses
    /// the buffer only if the segment, position and head still match, so a
    /// failure, a roll or a different choice of batches costs the copy,
    /// never correctness. Memory: one buffer of `write_bytes_max` per
    /// partition with a large write in flight, beside the one being written.
    fn stage_queued(&mut self) {
        let Some(InFlight::Write {
            batches: in_flight_batches,
            bytes: in_flight_bytes,
            new_tail,
            ..
        }) = &self.in_flight
        else {
            return;
        };
        if !self.large_writes || self.failure.is_some() {
            return;
        }
        let written = self.active.written_bytes + in_flight_bytes;
        let max_bytes = self.config.write_bytes_max as u64;
        let segment_max = self.config.segment_bytes_max;
        let fits = |staged_bytes: u64, len: u64| {
            staged_bytes + len <= max_bytes && written + staged_bytes + len <= segment_max
        };
        if self.staged.is_none() {
            match self.unflushed.get(*in_flight_batches) {
                Some(first) if fits(0, first.bytes.len() as u64) => {}
                _ => return,
            }
            let head = new_tail.len();
            let mut buf = self
                .active
                .file
                .alloc_buffer(align_up(head as u64 + max_bytes) as usize);
            buf.as_mut()[..head].copy_from_slice(new_tail);
            self.staged = Some(Staged {
                buf,
                segment: self.active.base,
                start: align_down(written),
                head,
                batches: 0,
                bytes: 0,
            });
        }
        let Some(st) = self.staged.as_mut() else {
            return;
        };
        for p in self.unflushed.iter().skip(in_flight_batches + st.batches) {
            let len = p.bytes.len();
            if !fits(st.bytes, len as u64) {
                break;
            }
            let at = st.filled();
            p.copy_to(&mut st.buf.as_mut()[at..]);
            st.bytes += len as u64;
            st.batches += 1;
        }
    }

    /// Moves the log start forward (DeleteRecords). Offsets below it become
    /// unreadable at once; whole segments below it are deleted by a later
    /// retention job. `offset` may not pass the flushed offset.
    pub fn advance_log_start(&mut self, offset: Offset) -> Result<Offset> {
        if offset > self.flushed_offset || offset < Offset::ZERO {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start,
                log_end: self.flushed_offset,
            });
        }
        if offset > self.log_start {
            self.log_start = offset;
            self.epochs.truncate_before(offset);
            self.checkpoint_requested = true;
            self.cache
                .borrow_mut()
                .remove_range(self.cache_id, Some(offset), None);
        }
        Ok(self.log_start)
    }

    /// Asks for a checkpoint at the next opportunity (clean shutdown does).
    pub fn request_checkpoint(&mut self) {
        self.checkpoint_requested = true;
    }

    /// Whether the log has work for a job right now, ignoring timers.
    pub fn has_work(&self) -> bool {
        self.in_flight.is_none()
            && (self.failure.is_some()
                || !self.unflushed.is_empty()
                || self.checkpoint_requested
                || self.pending_swap.is_some())
    }

    /// When the runtime should ask [`Self::next_job`] again even if nothing is
    /// appended: the interval flush deadline, if one is pending.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        match self.config.flush_policy {
            FlushPolicy::IntervalMs(ms) if self.written_offset > self.flushed_offset => {
                Some(self.last_sync_ms + ms as i64)
            }
            _ => None,
        }
    }

    /// The next piece of disk work, or None if there is none or one is
    /// already in flight. At most one job runs at a time per log; run it with
    /// [`Job::run`] and hand the result to [`Self::finish_job`].
    pub fn next_job(&mut self, now_ms: i64) -> Option<Job<I>> {
        if self.in_flight.is_some() {
            return None;
        }
        // Jobs that change the active file's size wait for a running
        // preallocation, which writes zeros past the written data.
        let file_busy = self.preallocating.is_some();
        // Jobs that write a checkpoint or an index file, or change the set
        // of segments, wait for a running background checkpoint.
        let checkpointing = self.checkpointing;
        if self.failure.is_some() {
            return (!file_busy && !checkpointing).then(|| self.repair_job());
        }
        // A finished cleaning pass is swapped in before any other job
        // writes a checkpoint: a failed swap may have renamed some new
        // segments into place, which a checkpoint with the old sizes
        // would then misdescribe (see `crate::clean`).
        if self.pending_swap.is_some() {
            return (!checkpointing).then(|| self.clean_swap_job()).flatten();
        }
        let interval_due = self.bytes_since_checkpoint >= self.config.checkpoint_interval_bytes;
        if (self.checkpoint_requested || (interval_due && !self.background_checkpoints))
            && !checkpointing
        {
            // A checkpoint covers synced data only; with an interval policy,
            // sync first so that the recovery point can move.
            if self.written_offset > self.flushed_offset {
                return Some(self.sync_job());
            }
            return Some(self.checkpoint_job());
        }
        if interval_due && !checkpointing && self.written_offset > self.flushed_offset {
            // The background checkpoint, too, waits for synced data.
            return Some(self.sync_job());
        }
        if !checkpointing {
            if let Some(job) = self.retention_job(now_ms) {
                return Some(job);
            }
        }
        if let Some(first) = self.unflushed.front() {
            let too_big = self.active.written_bytes + first.bytes.len() as u64
                > self.config.segment_bytes_max;
            let too_old = now_ms - self.active.first_write_ms >= self.config.segment_ms;
            if self.active.written_bytes > 0 && (too_big || too_old) {
                return (!file_busy && !checkpointing).then(|| self.roll_job());
            }
            // While a preallocation runs, a write may only use space that is
            // already preallocated.
            let cap = file_busy.then_some(self.active.preallocated_bytes);
            return self.write_job(now_ms, cap);
        }
        if let Some(deadline) = self.next_deadline_ms() {
            if now_ms >= deadline {
                return Some(self.sync_job());
            }
        }
        None
    }

    pub(crate) fn job(&self, work: Work<I::File>) -> Job<I> {
        Job {
            io: self.io.clone(),
            work,
        }
    }

    pub(crate) fn path_of(&self, base: Offset, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", segment_file_stem(base)))
    }

    /// The preallocation target for a file that must hold `needed` bytes.
    /// How far ahead of the data space is reserved: in proportion to the
    /// active segment's size, from [`PREALLOCATE_STEP_MIN_BYTES`] up to
    /// `preallocate_step_bytes`. A busy partition reserves in large steps;
    /// thousands of quiet ones do not each hold (and zero-fill) the full step.
    pub(crate) fn preallocation_step(&self) -> u64 {
        align_up(self.active.written_bytes.max(PREALLOCATE_STEP_MIN_BYTES))
            .min(self.config.preallocate_step_bytes)
    }

    fn preallocation_for(&self, needed: u64) -> u64 {
        let step = self.preallocation_step();
        let stepped = needed.div_ceil(step) * step;
        stepped
            .min(align_up(self.config.segment_bytes_max))
            .max(align_up(needed))
    }

    /// One group-commit write of the batches queued so far, or None if the
    /// first one does not fit under `cap_bytes` (the file end it may reach).
    fn write_job(&mut self, now_ms: i64, cap_bytes: Option<u64>) -> Option<Job<I>> {
        let active = &self.active;
        let start = align_down(active.written_bytes);
        let head = active.tail.len();
        let mut count = 0;
        let mut bytes = 0u64;
        for p in &self.unflushed {
            let len = p.bytes.len() as u64;
            let fits_segment = active.written_bytes + bytes + len <= self.config.segment_bytes_max;
            let fits_write = bytes + len <= self.config.write_bytes_max as u64;
            let fits_cap =
                cap_bytes.is_none_or(|cap| start + align_up(head as u64 + bytes + len) <= cap);
            if !fits_cap || (count > 0 && !(fits_segment && fits_write)) {
                break;
            }
            count += 1;
            bytes += len;
        }
        if count == 0 {
            return None;
        }
        let end_in_buf = head + bytes as usize;
        let write_len = align_up(end_in_buf as u64) as usize;
        // The buffer filled behind the previous write, if it was filled
        // for this very write.
        let staged = self.staged.take().filter(|st| {
            st.segment == active.base
                && st.start == start
                && st.head == head
                && st.batches <= count
                && st.buf.as_ref().len() >= write_len
        });
        let (mut buf, copied, mut at) = match staged {
            Some(st) => {
                self.writes_from_staged_buffers += 1;
                let filled = st.filled();
                (st.buf, st.batches, filled)
            }
            None => {
                let mut buf = active.file.alloc_buffer(write_len);
                buf.as_mut()[..head].copy_from_slice(&active.tail);
                (buf, 0, head)
            }
        };
        buf.shrink_to(write_len);
        {
            let dst = buf.as_mut();
            // The batches not staged already (all of them without a staged buffer).
            for p in self.unflushed.iter().take(count).skip(copied) {
                at += p.copy_to(&mut dst[at..]);
            }
            // Padding up to the block end: zeros, which recovery reads as the end of data.
            dst[at..].fill(0);
        }
        let new_tail = buf.as_ref()[align_down(end_in_buf as u64) as usize..end_in_buf].to_vec();
        let write_len = write_len as u64;
        let needed = start + write_len;
        // A large write goes straight into new space, past what is filled
        // (see DIRECT_WRITE_MIN_BYTES); a small one zero-fills ahead first.
        let large = write_len >= DIRECT_WRITE_MIN_BYTES;
        // The first small write after large ones fills only its own blocks
        // inline (a full step could be 32 MiB, in front of this write); the
        // lane takes over from there.
        let preallocate_to = (needed > active.preallocated_bytes && !large).then(|| {
            if self.large_writes {
                needed
            } else {
                self.preallocation_for(needed)
            }
        });
        self.large_writes = large;
        let sync = match self.config.flush_policy {
            FlushPolicy::Always => true,
            FlushPolicy::IntervalMs(ms) => now_ms - self.last_sync_ms >= ms as i64,
        };
        if self.active.first_write_ms == 0 {
            self.active.first_write_ms = now_ms.max(1);
        }
        self.in_flight = Some(InFlight::Write {
            batches: count,
            bytes,
            new_tail,
            preallocate_to,
            sync,
        });
        // Batches that did not fit in this write start the next one.
        self.stage_queued();
        Some(self.job(Work::Write {
            file: self.active.file.clone(),
            path: self.active.path.clone(),
            buf,
            pos: start,
            preallocate_to,
            sync,
        }))
    }

    fn sync_job(&mut self) -> Job<I> {
        self.in_flight = Some(InFlight::Sync);
        self.job(Work::Sync {
            file: self.active.file.clone(),
            path: self.active.path.clone(),
        })
    }

    /// The checkpoint as it will be once the job in flight completes, with
    /// the active segment's recovery point at its synced bytes.
    pub(crate) fn checkpoint_bytes(
        &self,
        sealed_extra: Option<SealedSegmentMeta>,
        active: ActiveSegmentMeta,
    ) -> (PathBuf, Vec<u8>) {
        self.checkpoint_bytes_sized(sealed_extra, active, &BTreeMap::new(), &[])
    }

    /// The checkpoint as it stands, with the sealed segments of `sizes`
    /// (base -> bytes) at their new sizes: a cleaning pass's swap.
    /// The checkpoint a cleaner swap writes: the rewritten segments with
    /// their new sizes, and without the `removed` ones (whose offsets the
    /// segment before each then covers).
    pub(crate) fn checkpoint_bytes_with_sizes(
        &self,
        sizes: &BTreeMap<i64, u64>,
        removed: &[Offset],
    ) -> (PathBuf, Vec<u8>) {
        self.checkpoint_bytes_sized(None, self.active_meta(), sizes, removed)
    }

    fn checkpoint_bytes_sized(
        &self,
        sealed_extra: Option<SealedSegmentMeta>,
        active: ActiveSegmentMeta,
        sizes: &BTreeMap<i64, u64>,
        removed: &[Offset],
    ) -> (PathBuf, Vec<u8>) {
        let mut sealed: Vec<SealedSegmentMeta> = self
            .sealed
            .values()
            .filter(|s| !removed.contains(&s.base))
            .map(|s| SealedSegmentMeta {
                base_offset: s.base.0,
                size_bytes: sizes.get(&s.base.0).copied().unwrap_or(s.size_bytes),
                max_timestamp_ms: s.max_timestamp_ms,
            })
            .collect();
        sealed.extend(sealed_extra);
        // The segments whose .txnindex file this checkpoint covers: each
        // sealed one with entries (written when it was sealed), and the
        // active one with entries below the recovery point (written with
        // this checkpoint, see `active_index_files`).
        let has_entries =
            |from: i64, to: i64| from < to && self.aborted.range(from..to).next().is_some();
        let mut txn_index_bases: Vec<i64> = sealed
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                let next = sealed
                    .get(i + 1)
                    .map_or(active.base_offset, |n| n.base_offset);
                has_entries(s.base_offset, next)
            })
            .map(|(_, s)| s.base_offset)
            .collect();
        if has_entries(active.base_offset, active.recovery_next_offset) {
            txn_index_bases.push(active.base_offset);
        }
        // Producer state as of the recovery point: recovery replays the rest.
        let producers = self
            .producers
            .to_checkpoint(Offset(active.recovery_next_offset));
        let leader_epochs = Some(
            self.epochs
                .entries()
                .iter()
                .map(|&(epoch, start)| LeaderEpochMeta {
                    epoch: epoch.0,
                    start_offset: start.0,
                })
                .collect(),
        );
        let cp = Checkpoint {
            log_start_offset: self.log_start.0,
            sealed,
            active,
            producers,
            leader_epochs,
            high_watermark: self.high_watermark.map(|o| o.0),
            txn_index_bases,
        };
        (self.dir.join(CHECKPOINT_FILE), cp.encode())
    }

    pub(crate) fn active_meta(&self) -> ActiveSegmentMeta {
        ActiveSegmentMeta {
            base_offset: self.active.base.0,
            recovery_position_bytes: self.active.synced_bytes,
            recovery_next_offset: self.flushed_offset.0,
            max_timestamp_ms: self.active.index.max_timestamp_ms(),
            first_write_ms: self.active.first_write_ms,
            recovery_point_is_end: false,
        }
    }

    /// The active segment's index files as they stand, for a checkpoint or
    /// the roll that seals it, with its `.txnindex` (the entries whose
    /// markers lie below `txn_below`, the checkpoint's recovery point or
    /// the roll's end of the segment) when it has any.
    pub(crate) fn active_index_files(&self, txn_below: Offset) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = vec![
            (
                self.path_of(self.active.base, "index"),
                self.active.index.encode_offsets(),
            ),
            (
                self.path_of(self.active.base, "timeindex"),
                self.active.index.encode_times(),
            ),
        ];
        let entries = txn::segment_entries(&self.aborted, self.active.base, txn_below);
        if !entries.is_empty() {
            files.push((
                self.path_of(self.active.base, "txnindex"),
                txn::encode(&entries),
            ));
        }
        files
    }

    fn checkpoint_job(&mut self) -> Job<I> {
        let index_files = self.active_index_files(self.flushed_offset);
        let checkpoint = self.checkpoint_bytes(None, self.active_meta());
        self.in_flight = Some(InFlight::Checkpoint);
        self.job(Work::Checkpoint {
            index_files,
            checkpoint,
        })
    }

    fn roll_job(&mut self) -> Job<I> {
        let old = &self.active;
        let new_base = self.written_offset;
        let sealed_meta = SealedSegmentMeta {
            base_offset: old.base.0,
            size_bytes: old.written_bytes,
            max_timestamp_ms: old.index.max_timestamp_ms(),
        };
        let new_active = ActiveSegmentMeta {
            base_offset: new_base.0,
            recovery_position_bytes: 0,
            recovery_next_offset: new_base.0,
            max_timestamp_ms: i64::MIN,
            first_write_ms: 0,
            recovery_point_is_end: false,
        };
        let checkpoint = self.checkpoint_bytes(Some(sealed_meta), new_active);
        // While writes are large they go straight into new space, so the new
        // segment gets no zero-filled head either.
        let preallocate_to = if self.large_writes {
            0
        } else {
            self.preallocation_for(self.unflushed.front().map_or(0, |p| p.bytes.len() as u64))
        };
        // A recycled file is taken out of the pool now: if the roll fails,
        // the file is either still under its pool name (found again on the
        // next open) or already the new segment.
        let reuse = self
            .recycled
            .iter()
            .position(|r| r.reusable_by(new_base))
            .map(|i| self.recycled.swap_remove(i));
        let recycled_bytes = reuse.as_ref().map_or(0, |r| align_down(r.size_bytes));
        self.in_flight = Some(InFlight::Roll {
            new_base,
            preallocate_to,
            recycled_bytes,
        });
        self.job(Work::Roll {
            old_file: old.file.clone(),
            old_path: old.path.clone(),
            old_len_bytes: old.written_bytes,
            // The segment being sealed is still the active one here.
            index_files: self.active_index_files(new_base),
            new_path: self.path_of(new_base, "log"),
            reuse: reuse.map(|r| (r.path, recycled_bytes)),
            preallocate_to,
            checkpoint,
        })
    }

    /// Puts the active file back into the state of its last sync: the synced
    /// tail block rewritten, everything after it cut off, then space reserved
    /// again for the next write. Succeeds once the disk takes writes again.
    fn repair_job(&mut self) -> Job<I> {
        let a = &self.active;
        let start = align_down(a.synced_bytes);
        let mut buf = a.file.alloc_buffer(IO_ALIGN_BYTES);
        buf.as_mut().fill(0);
        buf.as_mut()[..a.synced_tail.len()].copy_from_slice(&a.synced_tail);
        let preallocate_to =
            self.preallocation_for(align_up(a.synced_bytes) + IO_ALIGN_BYTES as u64);
        self.in_flight = Some(InFlight::Repair { preallocate_to });
        self.job(Work::Repair {
            file: a.file.clone(),
            path: a.path.clone(),
            tail_block: (!a.synced_tail.is_empty()).then_some((buf, start)),
            truncate_to: align_up(a.synced_bytes),
            preallocate_to,
        })
    }

    /// Applies a completed job. On failure the log discards its unflushed
    /// batches (see the durability contract) and returns the error.
    pub fn finish_job(&mut self, done: JobDone<I>) -> Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let new_file = match done.result {
            Ok(f) => {
                self.failures_in_a_row = 0;
                f
            }
            Err(e) => {
                self.on_failure(&in_flight, &e);
                return Err(e);
            }
        };
        match in_flight {
            InFlight::Write {
                batches,
                bytes,
                new_tail,
                preallocate_to,
                sync,
            } => self.finish_write(batches, bytes, new_tail, preallocate_to, sync, done.now_ms),
            InFlight::Sync => self.mark_synced(done.now_ms),
            InFlight::Roll {
                new_base,
                preallocate_to,
                recycled_bytes,
            } => {
                let Some(file) = new_file else {
                    return Ok(());
                };
                if recycled_bytes > 0 {
                    self.segments_on_recycled_files += 1;
                }
                self.finish_roll(new_base, file, preallocate_to.max(recycled_bytes))
            }
            InFlight::Checkpoint => {
                self.bytes_since_checkpoint = 0;
                self.checkpoint_requested = false;
            }
            InFlight::Retention => {
                for r in &mut self.recycled {
                    r.ready = true;
                }
            }
            InFlight::CleanSwap => self.finish_clean_swap(),
            InFlight::Repair { preallocate_to } => {
                let a = &mut self.active;
                a.written_bytes = a.synced_bytes;
                a.tail = a.synced_tail.clone();
                a.preallocated_bytes = preallocate_to;
                a.index.truncate_to_position(a.base, a.synced_bytes);
                self.failure = None;
                self.preallocation_failed = false;
                tracing::info!(dir = %self.dir.display(), "log writable again after repair");
            }
        }
        Ok(())
    }

    fn finish_write(
        &mut self,
        batches: usize,
        bytes: u64,
        new_tail: Vec<u8>,
        preallocate_to: Option<u64>,
        sync: bool,
        now_ms: i64,
    ) {
        let mut cache = self.cache.borrow_mut();
        let a = &mut self.active;
        let mut pos = a.written_bytes;
        for _ in 0..batches {
            let Some(p) = self.unflushed.pop_front() else {
                break;
            };
            if let Ok(header) = BatchHeader::parse(&p.bytes) {
                let mut h = header;
                h.base_offset = p.base;
                a.index
                    .on_append(a.base, &h, pos, self.config.index_interval_bytes);
            }
            pos += p.bytes.len() as u64;
            self.unflushed_bytes -= p.bytes.len();
            self.written_offset = p.next;
            cache.insert(self.cache_id, p.base, p.next, p.leader_epoch, p.bytes);
        }
        debug_assert_eq!(pos, a.written_bytes + bytes);
        a.written_bytes = pos;
        a.tail = new_tail;
        if let Some(to) = preallocate_to {
            a.preallocated_bytes = a.preallocated_bytes.max(to);
        }
        // A write past the filled space (a large one) wrote its blocks: they
        // count as filled, and the file now ends at least there.
        a.preallocated_bytes = a.preallocated_bytes.max(align_up(pos));
        self.bytes_since_checkpoint += bytes;
        self.preallocation_failed = false;
        drop(cache);
        if sync {
            self.mark_synced(now_ms);
        }
    }

    fn mark_synced(&mut self, now_ms: i64) {
        let a = &mut self.active;
        a.synced_bytes = a.written_bytes;
        a.synced_tail = a.tail.clone();
        self.flushed_offset = self.written_offset;
        self.last_sync_ms = now_ms;
        self.prune_txn_journal();
    }

    fn finish_roll(&mut self, new_base: Offset, file: Rc<I::File>, preallocate_to: u64) {
        let path = self.path_of(new_base, "log");
        let new_active = Active {
            base: new_base,
            file,
            path,
            written_bytes: 0,
            tail: Vec::new(),
            synced_bytes: 0,
            synced_tail: Vec::new(),
            preallocated_bytes: preallocate_to,
            index: SegmentIndex::new(),
            first_write_ms: 0,
        };
        let old = std::mem::replace(&mut self.active, new_active);
        // Anything staged was for the old segment.
        self.staged = None;
        // The roll job synced the old segment, so everything written is durable.
        self.flushed_offset = self.written_offset;
        let handle = SealedHandle {
            log_path: old.path,
            file: OnceCell::new(),
            index: OnceCell::new(),
        };
        let _ = handle.file.set(old.file);
        let max_timestamp_ms = old.index.max_timestamp_ms();
        let _ = handle.index.set(Rc::new(old.index));
        self.sealed.insert(
            old.base.0,
            Sealed {
                base: old.base,
                next: new_base,
                size_bytes: old.written_bytes,
                max_timestamp_ms,
                handle: Rc::new(handle),
            },
        );
        self.bytes_since_checkpoint = 0;
    }

    fn on_failure(&mut self, in_flight: &InFlight, error: &StorageError) {
        let os_error = match error {
            StorageError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        };
        self.failures_in_a_row += 1;
        if self.failures_in_a_row.is_power_of_two() {
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                failures_in_a_row = self.failures_in_a_row,
                "log write failed; unflushed batches discarded"
            );
        } else {
            tracing::debug!(dir = %self.dir.display(), %error, "log write failed again");
        }
        // Its batches are discarded below (and `write_job` would refuse a
        // buffer for a position the log no longer writes at): free it now.
        self.staged = None;
        match in_flight {
            InFlight::Checkpoint | InFlight::Retention | InFlight::CleanSwap => {
                // Nothing in the data files changed; a later job retries.
                // A file the failed retention was to recycle may or may not
                // have been renamed: it is not used (the next open finds it).
                self.recycled.retain(|r| r.ready);
                return;
            }
            InFlight::Repair { .. } => {}
            _ => {
                let dropped: usize = self.unflushed.iter().map(|p| p.bytes.len()).sum();
                let lost_written = self.written_offset > self.flushed_offset;
                if !self.unflushed.is_empty() || lost_written {
                    self.discard_generation += 1;
                }
                self.unflushed.clear();
                self.unflushed_bytes = 0;
                if lost_written {
                    self.cache.borrow_mut().remove_range(
                        self.cache_id,
                        None,
                        Some(self.flushed_offset),
                    );
                }
                self.written_offset = self.flushed_offset;
                self.next_offset = self.flushed_offset;
                self.epochs_cut_at(self.flushed_offset);
                self.producers.forget_from(self.flushed_offset);
                self.aborted.split_off(&self.flushed_offset.0);
                let a = &mut self.active;
                a.written_bytes = a.synced_bytes;
                a.tail = a.synced_tail.clone();
                a.index.truncate_to_position(a.base, a.synced_bytes);
                tracing::warn!(dropped_bytes = dropped, "discarded unflushed batches");
            }
        }
        self.failure = Some(Failure {
            message: error.to_string(),
            os_error,
        });
    }

    /// Runs jobs until none is left: everything appended is written, synced
    /// (whatever the flush policy) and checkpointed. Holds `&mut self` across
    /// awaits, so it is for tests, tools and single-owner use, not for a shard
    /// that serves requests while the jobs run.
    pub async fn flush_all(&mut self, now_ms: i64) -> Result<()> {
        let mut result = Ok(());
        loop {
            let job = match self.next_job(now_ms) {
                Some(job) => job,
                None if self.written_offset > self.flushed_offset => self.sync_job(),
                None => break,
            };
            let done = job.run(now_ms).await;
            if let Err(e) = self.finish_job(done) {
                result = Err(e);
                break;
            }
        }
        result
    }

    /// Flushes, syncs and checkpoints, so that the next open needs no recovery.
    pub async fn close(mut self, now_ms: i64) -> Result<()> {
        self.flush_all(now_ms).await?;
        self.checkpoint_requested = true;
        self.flush_all(now_ms).await?;
        self.cache.borrow_mut().remove_log(self.cache_id);
        Ok(())
    }

    /// Drops this log's batches from the shard cache (the log is going away).
    pub fn cache_remove(&self) {
        self.cache.borrow_mut().remove_log(self.cache_id);
    }

    /// Deletes the whole partition directory. The log must not be used after.
    pub async fn delete(self) -> Result<()> {
        self.cache.borrow_mut().remove_log(self.cache_id);
        self.io
            .remove_dir_all(&self.dir)
            .await
            .map_err(|e| StorageError::io("delete partition", &self.dir, e))
    }
}
