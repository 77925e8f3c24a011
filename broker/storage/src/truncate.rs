//! Cutting a log short: remove every batch after a given offset, as a
//! follower does when its leader's log diverges (Kafka's `truncateTo`).
//!
//! Transactions: the producer state goes back to what it was at the cut
//! point, so a follower cut back into a transaction whose marker it had
//! sees it open again (and its LSO held there). The state is restored from
//! the producer-state journal (the changes since its horizon, with the
//! state each replaced), which the log keeps back to the high watermark,
//! below which a follower is not cut, and some way further (see
//! `TXN_JOURNAL_ENTRIES_MAX`). A cut below the journal's horizon rebuilds
//! the state by scanning the log from its first segment to the cut point,
//! seeded with the producers whose current transaction started before that
//! segment (a transaction that started before it and whose marker is cut
//! is the one case that such a rebuild misses). Aborted-transaction entries
//! whose markers are cut are dropped, and the cut segment's `.txnindex` is
//! rewritten (or removed) before the checkpoint that ends the log there.

use std::ops::ControlFlow;
use std::rc::Rc;

use crate::checkpoint::ActiveSegmentMeta;
use crate::error::{Result, StorageError};
use crate::index::SegmentIndex;
use crate::io::{align_up, StorageIo};
use crate::log::{Active, PartitionLog};
use crate::producer::ProducerStates;
use crate::read::sealed_parts;
use crate::recover::cut_file_at;
use crate::scan::{scan, ScanCheck};
use crate::txn;
use crate::types::{segment_file_stem, Offset};

impl<I: StorageIo> PartitionLog<I> {
    /// Removes every batch that ends after `offset`, so the log ends at the
    /// start of the batch holding `offset` (at `offset` itself when a batch
    /// starts there), and returns the new log end. A batch is never split.
    ///
    /// Durable when it returns, and safe against a crash part-way: the new
    /// end is checkpointed as the end of the log before anything is cut, so
    /// recovery never brings cut batches back.
    ///
    /// Holds `&mut self` across awaits, like `flush_all`: for tests, tools and
    /// single-owner use. A shard will drive it as a job (replication).
    pub async fn truncate_to(&mut self, offset: Offset, now_ms: i64) -> Result<Offset> {
        if offset >= self.next_offset {
            return Ok(self.next_offset);
        }
        // Flush first, so everything below is on disk and no job is in
        // flight. The flush may run retention, which moves the log start
        // and deletes whole segments; checking the range only after it
        // means a refused truncation changes nothing. (Batches that are
        // about to be cut get written first; truncation is rare.)
        self.flush_all(now_ms).await?;
        self.staged = None;
        let out_of_range = |log: &Self| StorageError::OffsetOutOfRange {
            requested: offset,
            log_start: log.log_start,
            log_end: log.next_offset,
        };
        if offset < self.log_start {
            return Err(out_of_range(self));
        }
        // Cutting at the start of a batch that begins before the log start
        // would end the log before it starts. Kafka then empties the log and
        // restarts it at the log start (truncateFullyAndStartAt), which this
        // layer does not do yet: it refuses and changes nothing.
        let batch_start = self.batch_start_for(offset).await?;
        if batch_start < self.log_start {
            return Err(out_of_range(self));
        }

        // The segment holding `offset`, its file and its index.
        let in_active = offset >= self.active.base;
        let (base, file, path, seg_bytes) = if in_active {
            let a = &self.active;
            (a.base, a.file.clone(), a.path.clone(), a.written_bytes)
        } else {
            let s = self
                .sealed
                .range(..=offset.0)
                .next_back()
                .map(|(_, s)| s)
                .ok_or_else(|| out_of_range(self))?;
            let (file, _) = sealed_parts(&self.io, &s.handle, s.base, s.size_bytes).await?;
            (s.base, file, s.handle.log_path.clone(), s.size_bytes)
        };
        // Find the first batch that ends after `offset`, rebuilding the
        // segment's index (and newest timestamp) for what stays.
        let mut index = SegmentIndex::new();
        let mut cut = None;
        let interval = self.config.index_interval_bytes;
        scan(
            &*file,
            0,
            seg_bytes,
            1 << 20,
            ScanCheck {
                validate: false,
                expect_offset: None,
                gaps_allowed: false,
            },
            |pos, h, _| {
                if h.next_offset() > offset {
                    cut = Some((pos, h.base_offset));
                    return ControlFlow::Break(());
                }
                index.on_append(base, h, pos, interval);
                ControlFlow::Continue(())
            },
        )
        .await
        .map_err(|e| StorageError::io("truncate scan", &path, e))?;
        let (cut_bytes, new_end) = cut.ok_or_else(|| StorageError::Corrupt {
            path: path.clone(),
            position: seg_bytes,
            reason: format!("no batch holds offset {offset} in this segment"),
        })?;

        // 0. The cut segment's aborted transactions as they will be: its
        // file may be listed by the checkpoint below.
        let kept_txns = txn::segment_entries(&self.aborted, base, new_end);
        let txn_path = self.path_of(base, "txnindex");
        if kept_txns.is_empty() {
            self.io
                .remove_file(&txn_path)
                .await
                .map_err(|e| StorageError::io("delete txn index", &txn_path, e))?;
        } else {
            self.io
                .write_file_atomic(&txn_path, &txn::encode(&kept_txns))
                .await
                .map_err(|e| StorageError::io("write txn index", &txn_path, e))?;
        }

        // 1. Checkpoint the new end as the end of the log.
        let later: Vec<i64> = self.sealed_bases_after(base);
        // The cut segment becomes the active one; the old active goes.
        self.sealed.remove(&base.0);
        let doomed: Vec<Offset> = if in_active {
            Vec::new()
        } else {
            vec![self.active.base]
        };
        let end_meta = ActiveSegmentMeta {
            base_offset: base.0,
            recovery_position_bytes: cut_bytes,
            recovery_next_offset: new_end.0,
            max_timestamp_ms: index.max_timestamp_ms(),
            first_write_ms: self.active.first_write_ms.max(1),
            recovery_point_is_end: true,
        };
        let (cp_path, cp_bytes) = self.checkpoint_bytes(None, end_meta);
        self.io
            .write_file_atomic(&cp_path, &cp_bytes)
            .await
            .map_err(|e| StorageError::io("write checkpoint", &cp_path, e))?;

        // 2. Cut the segment and delete the later ones.
        let tail = cut_file_at(&*file, &path, cut_bytes).await?;
        for b in doomed.iter().map(|o| o.0).chain(later) {
            for ext in ["log", "index", "timeindex", "txnindex"] {
                let p = self
                    .dir
                    .join(format!("{}.{ext}", segment_file_stem(Offset(b))));
                self.io
                    .remove_file(&p)
                    .await
                    .map_err(|e| StorageError::io("delete segment", &p, e))?;
            }
        }
        self.active = Active {
            base,
            file: Rc::clone(&file),
            path,
            written_bytes: cut_bytes,
            tail: tail.clone(),
            synced_bytes: cut_bytes,
            synced_tail: tail,
            preallocated_bytes: align_up(cut_bytes),
            index,
            first_write_ms: if cut_bytes > 0 {
                self.active.first_write_ms.max(1)
            } else {
                0
            },
        };
        self.next_offset = new_end;
        self.written_offset = new_end;
        self.flushed_offset = new_end;
        self.epochs.truncate_from(new_end);
        self.high_watermark = self.high_watermark.map(|hw| hw.min(new_end));
        self.aborted.split_off(&new_end.0);
        if self.producers.can_rewind_to(new_end) {
            self.producers.rewind_to(new_end);
        } else {
            tracing::info!(dir = %self.dir.display(), cut = new_end.0, horizon = self.producers.journal_horizon().0, "truncation below the producer-state journal; rebuilding it from the log");
            self.producers = self.rebuild_producers(new_end).await?;
        }
        self.cache
            .borrow_mut()
            .remove_range(self.cache_id, None, Some(new_end));

        // 3. A normal checkpoint: appends after this point must survive a crash.
        self.request_checkpoint();
        self.flush_all(now_ms).await?;
        Ok(new_end)
    }

    /// The producer state as of `end` (the log end), rebuilt by scanning
    /// every segment: see the module doc for what it is seeded with.
    async fn rebuild_producers(&self, end: Offset) -> Result<ProducerStates> {
        let first = self
            .sealed
            .values()
            .next()
            .map_or(self.active.base, |s| s.base);
        let seeds = self
            .producers
            .snapshot_before(end)
            .into_iter()
            .filter(|(_, e)| e.current_txn_first_offset.is_some_and(|f| f < first))
            .map(|(pid, mut e)| {
                e.batches.clear();
                (pid, e)
            });
        let mut producers = ProducerStates::restore(seeds);
        let mut segments = Vec::new();
        for s in self.sealed.values() {
            let (file, _) = sealed_parts(&self.io, &s.handle, s.base, s.size_bytes).await?;
            segments.push((file, s.handle.log_path.clone(), s.size_bytes));
        }
        segments.push((
            self.active.file.clone(),
            self.active.path.clone(),
            self.active.written_bytes,
        ));
        for (file, path, size_bytes) in segments {
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
                |_, h, bytes| {
                    if h.base_offset >= end {
                        return ControlFlow::Break(());
                    }
                    producers.record_batch(h, &bytes, h.base_offset);
                    ControlFlow::Continue(())
                },
            )
            .await
            .map_err(|e| StorageError::io("producer state rebuild read", &path, e))?;
        }
        Ok(producers)
    }

    /// The base offset of the batch holding `offset` (below the log end).
    async fn batch_start_for(&self, offset: Offset) -> Result<Offset> {
        if let Some(p) = self.unflushed.iter().find(|p| p.next > offset) {
            if p.base <= offset {
                return Ok(p.base);
            }
        }
        let plan = self.plan_read(offset, 1, self.next_offset)?;
        let read = plan.execute().await?;
        let bytes = read.to_vec();
        let h = crate::batch::BatchHeader::parse(&bytes)?;
        Ok(h.base_offset)
    }

    /// Bases of sealed segments after `base` (removed from the table as it goes).
    fn sealed_bases_after(&mut self, base: Offset) -> Vec<i64> {
        let later: Vec<i64> = self.sealed.range(base.0 + 1..).map(|(&b, _)| b).collect();
        for b in &later {
            self.sealed.remove(b);
        }
        later
    }
}
