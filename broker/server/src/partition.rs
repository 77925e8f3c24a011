//! The partition facade: the one place above storage that knows what
//! "committed" means.
//!
//! Handlers append, read, look up offsets and delete records through
//! [`Partition`]; none of them names the storage log or its flushed
//! offset. What a client may see and what an acknowledgement promises are
//! decided here:
//!
//! - **High watermark.** The offset below which every record is committed.
//!   On this single node a record is committed once it is on stable storage
//!   (written and fdatasynced), so the high watermark is the log's flushed
//!   offset. It may never pass that offset: a consumer is never served, and
//!   a DeleteRecords never removes up to, a record a crash could take back.
//!   Replication will make it the offset every in-sync replica holds; that
//!   changes this file, not the handlers.
//! - **Last stable offset.** The bound of a `read_committed` read. Without
//!   transactions every committed record is stable, so it equals the high
//!   watermark.
//! - **Acknowledgements.** An append with `acks=0` or `acks=1` completes when
//!   the batch is in the log (its write buffer); with `acks=all` when the
//!   high watermark passes the batch's last offset.
//!
//! - **Leader epochs.** Every batch appended here is stamped with the
//!   partition's leader epoch ([`Partition::set_leader_epoch`], from the
//!   metadata), and the log answers OffsetForLeaderEpoch from its epoch
//!   cache ([`Partition::end_offset_for_epoch`]). A request that names a
//!   `current_leader_epoch` is checked with [`Partition::check_leader_epoch`].
//!
//! Lives on: the shard that owns the partition. Every method runs there;
//! none blocks, and none holds a borrow of the log across an await.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use corelog_protocol::error_code;
use corelog_runtime::{Discarded, GlommioIo, Partition as LogDriver};
use corelog_storage::{
    CacheId, LeaderEpoch, LogConfig, Offset, PartitionLog, RecoveryReport, SharedBatchCache,
    StorageError, TimestampPlan, ValidBatch,
};

pub use corelog_storage::ReadChunks;

use crate::TopicPartition;

/// A planned read: `Ready` when memory answered it, else it still needs the
/// disk (`execute` does the read).
pub type ReadPlan = corelog_storage::ReadPlan<GlommioIo>;

/// How much of the replication an append waits for before it is
/// acknowledged (the producer's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the producer wants no answer.
    None,
    /// `acks=1`: answered once the leader has the batch in its log.
    Leader,
    /// `acks=all` (-1): answered once the batch is committed (below the
    /// high watermark).
    All,
}

impl Acks {
    /// The level a Produce request's `acks` field asks for; `None` (the
    /// Rust one) for a value Kafka does not define.
    pub fn from_kafka(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// Which records a read may return (a Fetch's `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset.
    ReadCommitted,
}

impl Isolation {
    /// Kafka's encoding: 1 is `read_committed`, anything else
    /// `read_uncommitted`.
    pub fn from_kafka(level: i8) -> Isolation {
        if level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
}

/// The offsets that bound a read, taken together with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBounds {
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
}

impl ReadBounds {
    /// The end of what a read at `isolation` may return.
    pub fn visible_end(&self, isolation: Isolation) -> Offset {
        match isolation {
            Isolation::ReadUncommitted => self.high_watermark,
            Isolation::ReadCommitted => self.last_stable_offset,
        }
    }
}

/// A point in the log an acknowledgement waits for: every offset below
/// `end`, appended while the log's discard generation was `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    end: Offset,
    generation: u64,
}

/// What an append assigned, and what its acknowledgement waits for.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// An idempotent producer's retry of a batch already in the log: the
    /// offsets are the original's.
    pub duplicate: bool,
    /// The point [`Partition::acknowledged`] waits for.
    pub commit: CommitPoint,
    pub acks: Acks,
}

/// Which offset a DeleteRecords request deletes up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteUpTo {
    /// Kafka's -1: everything below the high watermark.
    HighWatermark,
    Offset(Offset),
}

/// See [`Partition::check_leader_epoch`].
pub fn check_leader_epoch(leader_epoch: LeaderEpoch, current_leader_epoch: i32) -> i16 {
    use std::cmp::Ordering;
    if current_leader_epoch < 0 {
        return error_code::NONE;
    }
    match current_leader_epoch.cmp(&leader_epoch.0) {
        Ordering::Less => error_code::FENCED_LEADER_EPOCH,
        Ordering::Greater => error_code::UNKNOWN_LEADER_EPOCH,
        Ordering::Equal => error_code::NONE,
    }
}

/// A partition as the server layer sees it: its log and the rules for
/// what is committed. Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Partition {
    log: LogDriver,
    /// The leader epoch the metadata names: what requests are fenced
    /// against. The log stamps batches with it too, unless the log already
    /// holds a newer epoch (see [`Partition::set_leader_epoch`]).
    leader_epoch: Rc<Cell<LeaderEpoch>>,
}

impl Partition {
    /// Opens (recovering it if it was not closed cleanly) the log in `dir`
    /// and starts its driver on the current executor. The report says what
    /// recovery found.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        cache: SharedBatchCache,
        cache_id: CacheId,
    ) -> Result<(Partition, RecoveryReport), StorageError> {
        let (log, report) = PartitionLog::open(GlommioIo, dir, config, cache, cache_id).await?;
        Ok((Partition::start(log), report))
    }

    /// Takes an opened log and starts its driver on the current executor.
    fn start(log: PartitionLog<GlommioIo>) -> Partition {
        let leader_epoch = Rc::new(Cell::new(log.leader_epoch()));
        Partition {
            log: LogDriver::start(log),
            leader_epoch,
        }
    }

    /// Every offset below it is committed and may be served.
    pub fn high_watermark(&self) -> Offset {
        self.log.read_log(|l| bounds_of(l).high_watermark)
    }

    /// The bound of a `read_committed` read. Equal to the high watermark
    /// until transactions exist.
    pub fn last_stable_offset(&self) -> Offset {
        self.log.read_log(|l| bounds_of(l).last_stable_offset)
    }

    /// The high watermark, last stable offset and log start, read together.
    pub fn bounds(&self) -> ReadBounds {
        self.log.read_log(bounds_of)
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.log.read_log(|l| l.log_start_offset())
    }

    /// Bytes of the log's segments, as retention counts them: what Kafka
    /// reports as a partition's size (DescribeLogDirs).
    pub fn size_bytes(&self) -> u64 {
        self.log.read_log(|l| l.size_bytes())
    }

    /// The offset the next append gets; may be ahead of the high watermark.
    pub fn log_end_offset(&self) -> Offset {
        self.log.read_log(|l| l.next_offset())
    }

    /// The epoch this node leads the partition in, as the metadata names it.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }

    /// Takes the leader epoch the metadata names: requests are fenced
    /// against it from now on, and appended batches carry it. The log
    /// refuses an epoch older than one it holds (it logs that, and goes on
    /// stamping its own latest), so that batches never go back in epoch;
    /// returns whether the log took it.
    pub fn set_leader_epoch(&self, epoch: LeaderEpoch) -> bool {
        self.leader_epoch.set(epoch);
        self.log.with_log(|l| l.set_leader_epoch(epoch))
    }

    /// Kafka's check of a request's `current_leader_epoch` (KIP-320): -1
    /// skips it; an older epoch than this leader's is FENCED_LEADER_EPOCH
    /// (the client's metadata is stale), a newer one UNKNOWN_LEADER_EPOCH
    /// (this broker has not heard of it yet). Returns the error code, NONE
    /// when the request may go on.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> i16 {
        check_leader_epoch(self.leader_epoch(), current_leader_epoch)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` in this
    /// log and the offset where it ends (the log end for the latest).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        self.log.read_log(|l| l.end_offset_for_epoch(epoch))
    }

    /// The epoch of the batch holding `offset`, as ListOffsets reports it
    /// (-1 when the log holds no batch at or below it).
    pub fn epoch_at(&self, offset: Offset) -> LeaderEpoch {
        self.log
            .read_log(|l| l.epochs().epoch_at(offset).unwrap_or(LeaderEpoch(-1)))
    }

    /// Appends one batch. The returned [`Appended`] carries the assigned
    /// offsets; [`Self::acknowledged`] completes when `acks` is satisfied.
    pub fn append(&self, batch: ValidBatch, acks: Acks) -> Result<Appended, StorageError> {
        let (info, generation) = self.log.append(batch)?;
        Ok(Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            duplicate: info.duplicate,
            commit: CommitPoint {
                end: info.last_offset.plus(1),
                generation,
            },
            acks,
        })
    }

    /// Completes when `appended` may be acknowledged at its acks level: at
    /// once for `acks=0` and `acks=1`; for `acks=all` once the high
    /// watermark has passed its last offset. Fails if the batch was
    /// discarded by a failed write before it was committed; it then never
    /// will be, and the producer must be told.
    pub async fn acknowledged(&self, appended: &Appended) -> Result<(), Discarded> {
        match appended.acks {
            Acks::None | Acks::Leader => Ok(()),
            Acks::All => self.committed(appended.commit).await,
        }
    }

    /// The commit point of everything appended so far.
    pub fn end_commit_point(&self) -> CommitPoint {
        self.log.read_log(|l| CommitPoint {
            end: l.next_offset(),
            generation: l.discard_generation(),
        })
    }

    /// Completes once every offset below `point` is committed, or fails if
    /// they were discarded by a failed write.
    pub async fn committed(&self, point: CommitPoint) -> Result<(), Discarded> {
        self.log.wait_flushed(point.end, point.generation).await
    }

    /// Completes after something about the log changed (a write, a sync, a
    /// roll...), which may have moved the high watermark. Long polls wait
    /// on it and then look again.
    pub async fn changed(&self) {
        self.log.changed().await
    }

    /// Plans a read of whole batches from `offset`, up to `max_bytes` (at
    /// least one batch if any is readable), never past what `isolation` may
    /// see. Returns the bounds the read was planned against with it.
    pub fn plan_read(
        &self,
        offset: Offset,
        max_bytes: usize,
        isolation: Isolation,
    ) -> (ReadBounds, Result<ReadPlan, StorageError>) {
        self.log.read_log(|l| {
            let bounds = bounds_of(l);
            let end = bounds.visible_end(isolation);
            (bounds, l.plan_read(offset, max_bytes, end))
        })
    }

    /// Plans a lookup of the first committed record whose timestamp is at
    /// or after `target_ms` (ListOffsets by time).
    pub fn plan_offset_for_timestamp(&self, target_ms: i64) -> TimestampPlan<GlommioIo> {
        self.log
            .read_log(|l| l.plan_offset_for_timestamp(target_ms, bounds_of(l).high_watermark))
    }

    /// Plans a lookup of the committed record with the newest timestamp
    /// (ListOffsets -3); `None` when nothing is committed.
    pub fn plan_max_timestamp(&self) -> Option<TimestampPlan<GlommioIo>> {
        self.log.read_log(|l| {
            let hw = bounds_of(l).high_watermark;
            l.max_timestamp_ms(hw)
                .map(|max| l.plan_offset_for_timestamp(max, hw))
        })
    }

    /// Moves the log start forward to `up_to` (DeleteRecords, and the
    /// offsets log after a snapshot). Only committed records may be
    /// deleted: an offset past the high watermark is out of range. Returns
    /// the new log start offset.
    pub fn delete_records(&self, up_to: DeleteUpTo) -> Result<Offset, StorageError> {
        self.log.with_log(|l| {
            let bounds = bounds_of(l);
            let target = match up_to {
                DeleteUpTo::HighWatermark => bounds.high_watermark,
                DeleteUpTo::Offset(o) => o,
            };
            if target > bounds.high_watermark || target < Offset::ZERO {
                return Err(StorageError::OffsetOutOfRange {
                    requested: target,
                    log_start: bounds.log_start_offset,
                    log_end: bounds.high_watermark,
                });
            }
            let start = l.advance_log_start(target)?;
            l.request_checkpoint();
            Ok(start)
        })
    }

    /// The log's current settings (segment size, retention, flush policy).
    pub fn log_config(&self) -> LogConfig {
        self.log.read_log(|l| l.config().clone())
    }

    /// Applies new settings to the log.
    pub fn set_log_config(&self, config: LogConfig) -> Result<(), StorageError> {
        self.log.with_log(|l| l.set_config(config))
    }

    /// Drops the partition's batches from the shard's cache (after it was
    /// deleted).
    pub fn forget_cached(&self) {
        self.log.read_log(|l| l.cache_remove());
    }

    /// Flushes everything, writes a final checkpoint and stops the driver.
    pub async fn close(&self) {
        self.log.close().await
    }
}

/// The single definition of the bounds, from the log's state. Everything
/// above reads them through here.
fn bounds_of(log: &PartitionLog<GlommioIo>) -> ReadBounds {
    let high_watermark = log.flushed_offset();
    ReadBounds {
        high_watermark,
        last_stable_offset: high_watermark,
        log_start_offset: log.log_start_offset(),
    }
}

/// The partitions one shard owns, by topic and index.
///
/// Lives on: that shard. Every method is synchronous, so no borrow of the
/// table can be held across an await. Lookups by `&str` allocate nothing:
/// they run for every partition of every Produce and Fetch.
#[derive(Default)]
pub struct PartitionTable {
    topics: RefCell<HashMap<String, HashMap<i32, Partition>>>,
}

impl PartitionTable {
    pub fn get(&self, topic: &str, partition: i32) -> Option<Partition> {
        self.topics.borrow().get(topic)?.get(&partition).cloned()
    }

    pub fn insert(&self, key: TopicPartition, partition: Partition) {
        self.topics
            .borrow_mut()
            .entry(key.topic)
            .or_default()
            .insert(key.partition, partition);
    }

    pub fn remove(&self, key: &TopicPartition) -> Option<Partition> {
        let mut topics = self.topics.borrow_mut();
        let partitions = topics.get_mut(&key.topic)?;
        let removed = partitions.remove(&key.partition);
        if partitions.is_empty() {
            topics.remove(&key.topic);
        }
        removed
    }

    /// Every partition's key.
    pub fn keys(&self) -> Vec<TopicPartition> {
        self.topics
            .borrow()
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(|&i| TopicPartition::new(t.clone(), i)))
            .collect()
    }

    /// Every partition (handles: cheap clones).
    pub fn all(&self) -> Vec<Partition> {
        self.topics
            .borrow()
            .values()
            .flat_map(|ps| ps.values().cloned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.topics.borrow().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_current_leader_epoch_is_fenced_unless_it_is_the_leaders_or_absent() {
        let leader = LeaderEpoch(4);
        assert_eq!(
            check_leader_epoch(leader, -1),
            error_code::NONE,
            "-1 skips the check"
        );
        assert_eq!(check_leader_epoch(leader, 4), error_code::NONE);
        assert_eq!(
            check_leader_epoch(leader, 3),
            error_code::FENCED_LEADER_EPOCH,
            "the asker's view is stale"
        );
        assert_eq!(
            check_leader_epoch(leader, 5),
            error_code::UNKNOWN_LEADER_EPOCH,
            "this broker is behind the asker"
        );
    }
}
