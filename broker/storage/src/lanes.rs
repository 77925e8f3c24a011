//! The two lanes that run beside a partition's job pipeline, so that a
//! write never waits for them: space reservation ahead of the writes, and
//! the periodic checkpoint. The shard runtime drives each as a task of its
//! own; `next_job` holds back the jobs that would conflict with a running one.

use std::path::PathBuf;
use std::rc::Rc;

use crate::error::StorageError;
use crate::io::{align_up, DirectFile, StorageIo};
use crate::log::{InFlight, PartitionLog};
use crate::types::Offset;

/// Reserving (and, where the I/O layer does so, zero-filling) the active
/// segment's next `preallocate_step_bytes` while writes go on below it.
///
/// It runs beside the job pipeline, not in it, so that a write never waits
/// for a whole step to be reserved. It only touches bytes at or past the
/// reserved size, which no write reaches while it runs: `next_job` caps
/// writes at the reserved size and holds back rolls and repairs until
/// [`PartitionLog::finish_preallocation`].
pub struct Preallocation<I: StorageIo> {
    io: I,
    file: Rc<I::File>,
    path: PathBuf,
    base: Offset,
    to: u64,
}

pub struct PreallocationDone {
    base: Offset,
    to: u64,
    result: std::result::Result<(), StorageError>,
}

impl PreallocationDone {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

impl<I: StorageIo> Preallocation<I> {
    pub async fn run(self) -> PreallocationDone {
        let _ = &self.io;
        let result = self
            .file
            .preallocate(self.to)
            .await
            .map_err(|e| StorageError::io("preallocate", &self.path, e));
        PreallocationDone {
            base: self.base,
            to: self.to,
            result,
        }
    }
}

/// The periodic checkpoint (every `checkpoint_interval_bytes` flushed),
/// written beside the job pipeline so that writes go on meanwhile; see
/// [`PartitionLog::set_background_checkpoints`].
///
/// It describes the log as synced when it was made, and touches only the
/// checkpoint and the active segment's index files. Writes and syncs of the
/// active segment may run beside it; every job that writes a checkpoint or
/// an index file, or changes the set of segments (checkpoint, roll,
/// retention, repair), waits for [`PartitionLog::finish_background_checkpoint`],
/// so a newer checkpoint is never overwritten by this older one.
pub struct BackgroundCheckpoint<I: StorageIo> {
    io: I,
    index_files: Vec<(PathBuf, Vec<u8>)>,
    checkpoint: (PathBuf, Vec<u8>),
    covers_bytes: u64,
}

pub struct BackgroundCheckpointDone {
    covers_bytes: u64,
    result: std::result::Result<(), StorageError>,
}

impl BackgroundCheckpointDone {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

impl<I: StorageIo> BackgroundCheckpoint<I> {
    pub async fn run(self) -> BackgroundCheckpointDone {
        let result =
            crate::job::write_checkpoint_files(&self.io, &self.index_files, &self.checkpoint).await;
        BackgroundCheckpointDone {
            covers_bytes: self.covers_bytes,
            result,
        }
    }
}

impl<I: StorageIo> PartitionLog<I> {
    /// Whether nothing of this log is running: no job, no background
    /// checkpoint, no preallocation and no cleaning pass in flight. A driver that stops only
    /// once this holds (and nothing is left to do) leaves nothing writing
    /// into the log's directory after it: a checkpoint still in flight
    /// would otherwise land after the log was reopened, cut, moved or
    /// deleted, describing a log that is no longer there.
    pub fn is_quiet(&self) -> bool {
        self.in_flight.is_none()
            && !self.checkpointing
            && self.preallocating.is_none()
            && !self.cleaning
    }

    /// Space reservation ahead of the writes, to run beside the jobs (see
    /// [`Preallocation`]): Some when the active segment has less than one
    /// two `preallocate_step_bytes` reserved beyond its written and queued bytes.
    pub fn next_preallocation(&mut self) -> Option<Preallocation<I>> {
        let touches_size = matches!(
            self.in_flight,
            Some(InFlight::Write {
                preallocate_to: Some(_),
                ..
            }) | Some(InFlight::Roll { .. })
                | Some(InFlight::Repair { .. })
        );
        if self.preallocating.is_some()
            || self.failure.is_some()
            || touches_size
            || self.preallocation_failed
            || self.large_writes
        {
            return None;
        }
        let a = &self.active;
        let limit = align_up(self.config.segment_bytes_max);
        // Two steps ahead: a step being filled while writes use the one before
        // it, so writes do not catch up with the fill at high rates.
        // Nothing is reserved ahead of a segment that has no data and none
        // queued: an idle partition costs no disk space.
        let data = a.written_bytes + self.unflushed_bytes as u64;
        if data == 0 {
            return None;
        }
        let step = self.preallocation_step();
        let wanted = data + 2 * step;
        if a.preallocated_bytes >= wanted.min(limit) {
            return None;
        }
        let to = (a.preallocated_bytes + step)
            .min(limit)
            .max(align_up(wanted.min(limit)));
        self.preallocating = Some((a.base, to));
        Some(Preallocation {
            io: self.io.clone(),
            file: a.file.clone(),
            path: a.path.clone(),
            base: a.base,
            to,
        })
    }

    /// Applies a finished [`Preallocation`]. A failure is only logged: the
    /// write that needs the space preallocates inline and reports the error.
    pub fn finish_preallocation(&mut self, done: PreallocationDone) {
        self.preallocating = None;
        match done.result {
            Ok(()) if done.base == self.active.base => {
                self.preallocation_failures_in_a_row = 0;
                self.active.preallocated_bytes = self.active.preallocated_bytes.max(done.to);
            }
            Ok(()) => self.preallocation_failures_in_a_row = 0,
            Err(e) => {
                // Stand down until a write or repair succeeds: retrying at
                // once would spin on a full disk and, since writes wait for a
                // running preallocation, keep the failing write (which
                // reports the error to producers) from ever running.
                self.preallocation_failed = true;
                self.preallocation_failures_in_a_row += 1;
                // The first failure and each doubling: a full disk fails
                // one after every repair.
                if self.preallocation_failures_in_a_row.is_power_of_two() {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        failures_in_a_row = self.preallocation_failures_in_a_row,
                        "preallocation ahead of writes failed"
                    )
                }
            }
        }
    }

    /// Hands the periodic checkpoint to [`Self::next_background_checkpoint`]
    /// instead of the job pipeline, so that writes need not wait for it. The
    /// shard runtime turns this on and runs the checkpoints beside the jobs;
    /// explicit requests ([`Self::request_checkpoint`]) stay jobs.
    pub fn set_background_checkpoints(&mut self, on: bool) {
        self.background_checkpoints = on;
    }

    /// The periodic checkpoint, to run beside the jobs (see
    /// [`BackgroundCheckpoint`]): Some when `checkpoint_interval_bytes` have
    /// been flushed since the last one, everything written is synced, and
    /// the job in flight (if any) is a write or a sync.
    pub fn next_background_checkpoint(&mut self) -> Option<BackgroundCheckpoint<I>> {
        let beside_ok = matches!(
            self.in_flight,
            None | Some(InFlight::Write { .. }) | Some(InFlight::Sync)
        );
        if !self.background_checkpoints
            || self.checkpointing
            || self.pending_swap.is_some()
            || self.failure.is_some()
            || !beside_ok
            || self.bytes_since_checkpoint < self.config.checkpoint_interval_bytes
            || self.written_offset > self.flushed_offset
        {
            return None;
        }
        let index_files = self.active_index_files(self.flushed_offset);
        let checkpoint = self.checkpoint_bytes(None, self.active_meta());
        self.checkpointing = true;
        Some(BackgroundCheckpoint {
            io: self.io.clone(),
            index_files,
            checkpoint,
            covers_bytes: self.bytes_since_checkpoint,
        })
    }

    /// Applies a finished [`BackgroundCheckpoint`]. A failure is logged and
    /// the next one retries; the data is durable either way, only the
    /// recovery point stays where it was.
    pub fn finish_background_checkpoint(&mut self, done: BackgroundCheckpointDone) {
        self.checkpointing = false;
        match done.result {
            Ok(()) => {
                self.bytes_since_checkpoint = self
                    .bytes_since_checkpoint
                    .saturating_sub(done.covers_bytes);
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "background checkpoint failed")
            }
        }
    }
}
