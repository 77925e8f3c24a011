//! A partition log on its shard: the driver task that runs the log's jobs
//! (group commit), and the handle that appends and waits for durability.
//!
//! Lives on: the shard that owns the partition. The log sits in a `RefCell`;
//! every borrow here is taken and dropped between awaits.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corelog_storage::{
    AppendInfo, CleanStats, CleanerBudget, Offset, PartitionLog, StorageError, ValidBatch,
};
use futures_lite::FutureExt;

use crate::io::GlommioIo;
use crate::notify::Notify;

/// How long the driver waits before retrying after a failed job, so that a
/// failing disk is probed, not hammered.
pub const FAILED_JOB_BACKOFF_MS: u64 = 100;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Inner {
    log: RefCell<PartitionLog<GlommioIo>>,
    /// Wakes the driver: there is new work.
    work: Notify,
    /// Wakes durability waiters: a job finished.
    progress: Notify,
    closed: std::cell::Cell<bool>,
    /// [`Partition::close`] has begun: a cleaning pass stops where it is.
    closing: std::cell::Cell<bool>,
    /// Jobs of the driver that failed since the partition started.
    failed_jobs: std::cell::Cell<u64>,
}

/// Failed jobs after which [`Partition::close`] stops waiting for its final
/// checkpoint. On a disk that refuses writes (ENOSPC, EIO) the checkpoint
/// is retried every `FAILED_JOB_BACKOFF_MS` for ever; a stop must not wait
/// on it, since the next start recovers from the last checkpoint anyway.
const CLOSE_FAILED_JOBS_MAX: u64 = 3;

/// A shard-local handle to a partition log with a running driver.
#[derive(Clone)]
pub struct Partition {
    inner: Rc<Inner>,
}

/// The batch was discarded before it became durable (the write failed).
#[derive(Debug)]
pub struct Discarded;

impl Partition {
    /// Takes ownership of an opened log and starts its driver on the current executor.
    pub fn start(mut log: PartitionLog<GlommioIo>) -> Partition {
        log.set_background_checkpoints(true);
        let inner = Rc::new(Inner {
            log: RefCell::new(log),
            work: Notify::new(),
            progress: Notify::new(),
            closed: std::cell::Cell::new(false),
            closing: std::cell::Cell::new(false),
            failed_jobs: std::cell::Cell::new(0),
        });
        glommio::spawn_local(drive(inner.clone())).detach();
        glommio::spawn_local(preallocate_ahead(inner.clone())).detach();
        glommio::spawn_local(checkpoint_beside(inner.clone())).detach();
        Partition { inner }
    }

    /// Appends one checked batch (see the durability contract of
    /// `PartitionLog`). Returns the assigned offsets and the discard
    /// generation to wait with.
    pub fn append(&self, batch: ValidBatch) -> Result<(AppendInfo, u64), StorageError> {
        let mut log = self.inner.log.borrow_mut();
        let info = log.append_valid(batch)?;
        let generation = log.discard_generation();
        drop(log);
        self.inner.work.notify_all();
        Ok((info, generation))
    }

    /// Appends a transaction marker (`PartitionLog::append_marker`,
    /// WriteTxnMarkers) stamped with `now_ms`. Returns its offsets and the
    /// discard generation to wait with, as [`Self::append`] does.
    pub fn append_marker(
        &self,
        marker: corelog_storage::TxnMarker,
        now_ms: i64,
    ) -> Result<(AppendInfo, u64), StorageError> {
        let mut log = self.inner.log.borrow_mut();
        let info = log.append_marker(marker, now_ms)?;
        let generation = log.discard_generation();
        drop(log);
        self.inner.work.notify_all();
        Ok((info, generation))
    }

    /// Appends a batch a coordinator wrote for a producer
    /// (`PartitionLog::append_from_coordinator`). Returns the assigned
    /// offsets and the discard generation to wait with.
    pub fn append_from_coordinator(
        &self,
        batch: ValidBatch,
    ) -> Result<(AppendInfo, u64), StorageError> {
        let mut log = self.inner.log.borrow_mut();
        let info = log.append_from_coordinator(batch)?;
        let generation = log.discard_generation();
        drop(log);
        self.inner.work.notify_all();
        Ok((info, generation))
    }

    /// Appends a batch as the partition's leader wrote it (a follower's
    /// append, `PartitionLog::append_replicated`): its base offset and
    /// leader epoch are kept. Returns the assigned offsets and the discard
    /// generation to wait with.
    pub fn append_replicated(&self, batch: ValidBatch) -> Result<(AppendInfo, u64), StorageError> {
        let mut log = self.inner.log.borrow_mut();
        let info = log.append_replicated(batch)?;
        let generation = log.discard_generation();
        drop(log);
        self.inner.work.notify_all();
        Ok((info, generation))
    }

    /// Waits until every offset below `end` is durable, or reports that the
    /// batch was discarded by a failed write.
    pub async fn wait_flushed(&self, end: Offset, generation: u64) -> Result<(), Discarded> {
        loop {
            {
                let log = self.inner.log.borrow();
                if log.discard_generation() != generation {
                    return Err(Discarded);
                }
                if log.flushed_offset() >= end {
                    return Ok(());
                }
            }
            self.inner.progress.notified().await;
        }
    }

    /// Completes after the log's next finished job: a write, a sync, a
    /// roll... Long polls use it to notice new durable data.
    pub async fn changed(&self) {
        self.inner.progress.notified().await
    }

    /// Reads the log. `f` must not await. Unlike [`Self::with_log`] it does
    /// not wake the driver: fetches and offset lookups on the hot path
    /// change nothing the driver acts on.
    pub fn read_log<R>(&self, f: impl FnOnce(&PartitionLog<GlommioIo>) -> R) -> R {
        f(&self.inner.log.borrow())
    }

    /// Runs `f` with the log borrowed mutably, then wakes the driver in case
    /// `f` gave it work. `f` must not await.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut PartitionLog<GlommioIo>) -> R) -> R {
        let r = f(&mut self.inner.log.borrow_mut());
        self.inner.work.notify_all();
        r
    }

    /// Makes the driver look for work now: the log's timed work (retention
    /// of segments whose records expired, and the cleaner) is found when
    /// the driver asks for a job, and an idle partition's driver asks only
    /// when something wakes it.
    pub fn wake(&self) {
        self.inner.work.notify_all();
    }

    /// Runs one cleaning pass of the log if it compacts and is due (see
    /// `corelog_storage::clean`), on the calling task: the caller picks the
    /// task queue (the shard runs it in its background class) and
    /// `throttle(bytes)`, awaited after each segment, its pace. The swap
    /// of the cleaned segments is then a job of the driver. None: no pass
    /// was due, or the log began closing, which drops the pass (a close
    /// does not wait for one).
    pub async fn clean<Fut: std::future::Future<Output = ()>>(
        &self,
        budget: &CleanerBudget,
        throttle: impl FnMut(u64) -> Fut,
    ) -> Option<Result<CleanStats, StorageError>> {
        if self.inner.closing.get() {
            return None;
        }
        let job = self.inner.log.borrow_mut().clean_job(now_ms(), budget)?;
        let run = async { Some(job.run(throttle).await) };
        let closing = async {
            loop {
                let woken = self.inner.work.notified();
                if self.inner.closing.get() {
                    return None;
                }
                woken.await;
            }
        };
        let outcome = run.or(closing).await;
        let result = {
            let mut log = self.inner.log.borrow_mut();
            match outcome {
                Some(done) => Some(log.finish_clean(done)),
                None => {
                    log.abandon_clean();
                    None
                }
            }
        };
        // The swap is the driver's next job; a close waits for quiet.
        self.inner.work.notify_all();
        self.inner.progress.notify_all();
        result
    }

    /// Flushes everything, writes a final checkpoint and stops the driver.
    /// On a disk that refuses writes it stops after
    /// [`CLOSE_FAILED_JOBS_MAX`] failed jobs instead, without the checkpoint:
    /// nothing acknowledged is lost (acknowledged means flushed), and the
    /// next start recovers the tail as after a crash.
    pub async fn close(&self) {
        // A running cleaning pass sees this on the wake below and stops.
        self.inner.closing.set(true);
        self.with_log(|l| l.request_checkpoint());
        let failed_before = self.inner.failed_jobs.get();
        loop {
            // Quiet too: a job or background checkpoint still in flight
            // would finish after the close and write into a directory its
            // owner may be cutting, replacing or deleting by then.
            let idle = {
                let log = self.inner.log.borrow();
                !log.has_work() && log.flushed_offset() == log.next_offset() && log.is_quiet()
            };
            if idle || self.inner.log.borrow().is_failed() {
                break;
            }
            if self.inner.failed_jobs.get() - failed_before >= CLOSE_FAILED_JOBS_MAX {
                tracing::warn!(
                    dir = %self.inner.log.borrow().dir().display(),
                    "closing without a final checkpoint: the disk refuses its writes; the next start recovers from the last checkpoint"
                );
                break;
            }
            self.inner.progress.notified().await;
        }
        self.inner.closed.set(true);
        self.inner.work.notify_all();
    }
}

/// Keeps space reserved ahead of the writes, beside the job driver, so a
/// write rarely waits for a preallocation step.
async fn preallocate_ahead(inner: Rc<Inner>) {
    loop {
        if inner.closed.get() {
            return;
        }
        let job = inner.log.borrow_mut().next_preallocation();
        match job {
            Some(job) => {
                let done = job.run().await;
                let failed = !done.is_ok();
                inner.log.borrow_mut().finish_preallocation(done);
                // A close waiting for quiet looks again.
                inner.progress.notify_all();
                if failed {
                    glommio::timer::sleep(Duration::from_millis(FAILED_JOB_BACKOFF_MS)).await;
                }
                // A write may have been waiting for the space.
                inner.work.notify_all();
            }
            None => inner.work.notified().or(inner.progress.notified()).await,
        }
    }
}

/// Writes the periodic checkpoints beside the job driver, so that a write
/// never waits for one (measured: with 1 MiB writes a checkpoint came every
/// 64 writes and held the next write up for its five fsyncs).
async fn checkpoint_beside(inner: Rc<Inner>) {
    loop {
        if inner.closed.get() {
            return;
        }
        let job = inner.log.borrow_mut().next_background_checkpoint();
        match job {
            Some(job) => {
                let done = job.run().await;
                let failed = !done.is_ok();
                inner.log.borrow_mut().finish_background_checkpoint(done);
                // A close waiting for quiet looks again.
                inner.progress.notify_all();
                if failed {
                    glommio::timer::sleep(Duration::from_millis(FAILED_JOB_BACKOFF_MS)).await;
                }
                // Jobs held back while it ran (rolls, retention, an
                // explicit checkpoint) may go now.
                inner.work.notify_all();
            }
            None => inner.work.notified().or(inner.progress.notified()).await,
        }
    }
}

async fn drive(inner: Rc<Inner>) {
    let mut failed_in_a_row = 0u64;
    loop {
        if inner.closed.get() {
            return;
        }
        let now = now_ms();
        let job = inner.log.borrow_mut().next_job(now);
        match job {
            Some(job) => {
                let kind = job.kind();
                let done = job.run(now_ms()).await;
                let result = inner.log.borrow_mut().finish_job(done);
                inner.progress.notify_all();
                if let Err(e) = result {
                    inner.failed_jobs.set(inner.failed_jobs.get() + 1);
                    failed_in_a_row += 1;
                    // Every 100 ms while a disk refuses writes: the first
                    // failure and each doubling are enough to read.
                    if failed_in_a_row.is_power_of_two() {
                        tracing::warn!(job = kind, error = %e, failed_in_a_row, "partition job failed; retrying after backoff");
                    }
                    glommio::timer::sleep(Duration::from_millis(FAILED_JOB_BACKOFF_MS)).await;
                } else {
                    failed_in_a_row = 0;
                }
            }
            None => {
                let deadline = inner.log.borrow().next_deadline_ms();
                let wake = inner.work.notified();
                match deadline {
                    Some(at) => {
                        let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
                        wake.or(async {
                            glommio::timer::sleep(wait).await;
                        })
                        .await
                    }
                    None => wake.await,
                }
            }
        }
    }
}
