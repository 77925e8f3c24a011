//! Retention: deleting whole old segments by time, size or log start, and
//! keeping the newest deleted file for a later segment to write over
//! (segment recycling).

use std::path::PathBuf;
use std::rc::Rc;

use crate::io::StorageIo;
use crate::job::{Job, Work};
use crate::log::{InFlight, PartitionLog, SealedHandle};
use crate::types::Offset;

/// A deleted segment's file, kept under a new name for a later segment to
/// write over (see `LogConfig::segment_files_recycled_max`).
///
/// Every batch in it has offsets below `next`, and it is only ever reused by
/// a segment whose base offset is at least `next`. Recovery relies on this:
/// the old batches that follow a recycled segment's data can never continue
/// its offsets, so they end the data like zeros do.
pub(crate) struct Recycled<F> {
    pub path: PathBuf,
    pub next: Offset,
    pub size_bytes: u64,
    /// The retention job that renames the file here has finished.
    pub ready: bool,
    /// The deleted segment's handle, which reads planned before the
    /// deletion still hold. The file is not written over while any does:
    /// they read it through its open descriptor and must find the old
    /// batches there (after a restart there are no such reads: None).
    pub readers: Option<Rc<SealedHandle<F>>>,
}

impl<F> Recycled<F> {
    /// Whether a new segment starting at `base` may be written over it.
    pub(crate) fn reusable_by(&self, base: Offset) -> bool {
        self.ready
            && self.next <= base
            && self
                .readers
                .as_ref()
                .is_none_or(|h| Rc::strong_count(h) == 1)
    }
}

/// The file extension of a recycled segment file; its stem is `next`.
pub(crate) const RECYCLED_EXT: &str = "recycled";

impl<I: StorageIo> PartitionLog<I> {
    /// Sealed segments that retention or the log start offset make deletable,
    /// oldest first. The active segment is never deleted here.
    pub(crate) fn retention_job(&mut self, now_ms: i64) -> Option<Job<I>> {
        let mut doomed = Vec::new();
        let mut remaining = self.size_bytes();
        // A compact-only log keeps its segments: only the cleaner shrinks
        // it (and a moved log start, which applies whatever the policy).
        let deletes = self.config.cleanup_policy.deletes();
        for s in self.sealed.values() {
            let below_start = s.next <= self.log_start;
            let expired = deletes
                && self
                    .config
                    .retention_ms
                    .is_some_and(|ms| s.max_timestamp_ms < now_ms - ms);
            let oversize = deletes
                && self
                    .config
                    .retention_bytes
                    .is_some_and(|max| remaining - s.size_bytes >= max);
            if !(below_start || expired || oversize) {
                break;
            }
            remaining -= s.size_bytes;
            doomed.push(s.base);
        }
        if doomed.is_empty() {
            return None;
        }
        let mut remove = Vec::new();
        // The newest deleted segment's file is kept for a later segment to
        // write over, while the pool has room.
        let mut recycle = None;
        let pool_full = self.recycled.len() >= self.config.segment_files_recycled_max;
        for (i, base) in doomed.iter().enumerate() {
            if let Some(s) = self.sealed.remove(&base.0) {
                self.log_start = self.log_start.max(s.next);
                self.epochs.truncate_before(self.log_start);
                // Its aborted transactions go with it.
                self.aborted = self.aborted.split_off(&s.next.0);
                for ext in ["index", "timeindex", "txnindex"] {
                    remove.push(self.path_of(s.base, ext));
                }
                if i + 1 == doomed.len() && !pool_full {
                    let to = self.path_of(s.next, RECYCLED_EXT);
                    recycle = Some((self.path_of(s.base, "log"), to.clone()));
                    self.recycled.push(Recycled {
                        path: to,
                        next: s.next,
                        size_bytes: s.size_bytes,
                        ready: false,
                        readers: Some(s.handle),
                    });
                } else {
                    remove.push(self.path_of(s.base, "log"));
                }
            }
        }
        self.cache
            .borrow_mut()
            .remove_range(self.cache_id, Some(self.log_start), None);
        let checkpoint = self.checkpoint_bytes(None, self.active_meta());
        self.in_flight = Some(InFlight::Retention);
        Some(self.job(Work::Retention {
            checkpoint,
            remove,
            recycle,
        }))
    }
}
