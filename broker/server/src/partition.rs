//! The partition facade: the one place above storage that knows what
//! "committed" means.
//!
//! Handlers append, read, look up offsets and delete records through
//! [`Partition`]; none of them names the storage log or its flushed
//! offset. What a client may see and what an acknowledgement promises are
//! decided here:
//!
//! - **High watermark.** The offset below which every record is committed.
//!   It depends on this node's [`Role`]. The only replica (a single node,
//!   or a topic with one replica): a record is committed once it is on
//!   stable storage (written and fdatasynced), so the high watermark is the
//!   log's flushed offset. The leader of a replicated partition: once every
//!   in-sync replica holds it on disk (`corelog_replication::Leader`, fed
//!   by followers' fetches). A follower: the leader's, as last fetched. In
//!   every role it never passes this log's flushed offset: a consumer is
//!   never served, and a DeleteRecords never removes up to, a record a
//!   crash could take back.
//! - **Last stable offset.** The bound of a `read_committed` read: the
//!   high watermark, or the first offset of the oldest transaction still
//!   open on this partition if that is lower (the log's producer state
//!   knows it, `PartitionLog::last_stable_offset`). It never passes the
//!   high watermark. A read_committed read also gets the aborted
//!   transactions within what it read ([`Partition::aborted_transactions`]),
//!   so the consumer drops their records.
//! - **Transaction markers.** The transaction coordinator's COMMIT and
//!   ABORT control batches are appended here ([`Partition::append_marker`])
//!   and acknowledged like an `acks=all` batch: once committed.
//! - **Acknowledgements.** An append with `acks=0` or `acks=1` completes when
//!   the batch is in the log (its write buffer); with `acks=all` when the
//!   high watermark passes the batch's last offset, or fails when a failed
//!   write discarded the batch or this node stopped leading first.
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

use futures_lite::FutureExt;

use corelog_model::NodeId;
use corelog_protocol::error_code;
use corelog_replication::{
    Input as LeaderInput, Leader, Output as LeaderOutput, ReplicationConfig, Takeover,
};
use corelog_runtime::notify::Notify;
use corelog_runtime::{Discarded, GlommioIo, Partition as LogDriver};
use corelog_storage::{
    AbortedTxn, CacheId, CleanStats, CleanerBudget, CleanerState, LeaderEpoch, LogConfig, Offset,
    PartitionLog, ProducerId, ProducerStateView, RecoveryReport, SharedBatchCache, StorageError,
    TimestampPlan, TxnMarker, ValidBatch,
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
    /// A follower's fetch: up to the log end, committed or not, as Kafka's
    /// leader serves its followers.
    Replica,
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
    pub log_end_offset: Offset,
}

impl ReadBounds {
    /// The end of what a read at `isolation` may return.
    pub fn visible_end(&self, isolation: Isolation) -> Offset {
        match isolation {
            Isolation::ReadUncommitted => self.high_watermark,
            Isolation::ReadCommitted => self.last_stable_offset,
            Isolation::Replica => self.log_end_offset,
        }
    }
}

/// A point in the log an acknowledgement waits for: every offset below
/// `end`, appended while the log's discard generation was `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPoint {
    end: Offset,
    generation: u64,
    /// The role generation the offsets were written in. What another role
    /// commits at those offsets may be other batches: a leader deposed
    /// while an acknowledgement was pending follows the new leader, cuts
    /// its own batches and takes the new leader's there, whose high
    /// watermark then passes them.
    role_generation: u64,
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

impl Appended {
    /// What the log driver answered an append (offsets and the discard
    /// generation), with the role generation it was written in.
    fn of(
        (info, generation): (corelog_storage::AppendInfo, u64),
        role_generation: u64,
        acks: Acks,
    ) -> Appended {
        Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            duplicate: info.duplicate,
            commit: CommitPoint {
                end: info.last_offset.plus(1),
                generation,
                role_generation,
            },
            acks,
        }
    }
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

/// What a leader's host learned of the partition's ISR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrNews {
    /// The controller committed `isr` at `partition_epoch`: its answer to
    /// a proposal, or the metadata.
    Committed {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// The proposal of `isr` at `partition_epoch` was refused and provably
    /// not applied (see [`crate::replica`]'s `news_of`).
    NotApplied {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// The proposal's fate is unknown (no answer, or a refusal a commit of
    /// it could explain): it stays in flight and is proposed again.
    Unknown {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
}

/// This node's part in a partition's replication (issue 18).
#[derive(Debug)]
pub enum Role {
    /// The only replica (a single node, or a topic with one replica):
    /// committed means durable here.
    Sole,
    /// Leads a replicated partition: committed means durable on every
    /// in-sync replica (`corelog_replication::Leader` decides).
    Leader(Box<Leader>),
    /// Follows another node's leader and serves no client: its log is a
    /// copy of the leader's (a follower task appends to it), and its high
    /// watermark the leader's as last fetched, bounded by its own disk.
    Follower {
        high_watermark: Offset,
        /// The leader followed and its epoch; `None` while the partition
        /// has no leader.
        leader: Option<(NodeId, LeaderEpoch)>,
    },
}

/// A role as the metadata asks for it, to compare with the one held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Sole,
    /// The leader in this epoch.
    Leader(LeaderEpoch),
    Follower(Option<(NodeId, LeaderEpoch)>),
}

/// The replication state shared by a partition's handles.
///
/// Lives on: the shard that owns the partition.
struct Replication {
    role: RefCell<Role>,
    /// Bumped at each role change: a follower task or leader driver of an
    /// older generation stops.
    generation: Cell<u64>,
    /// Woken when the high watermark moves or the role changes, for
    /// `acks=all` waiters and long polls.
    moved: Notify,
    /// The leader epoch of the leader's role, while it holds one.
    led_epoch: Cell<LeaderEpoch>,
}

/// What reopening the log takes (a follower's truncation closes the
/// log, reopens it alone, cuts it, and starts a new driver).
struct Reopen {
    dir: PathBuf,
    cache: SharedBatchCache,
    cache_id: CacheId,
}

/// Why an acknowledgement will never come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAcknowledged {
    /// A failed write discarded the batch before it was committed.
    Discarded,
    /// This node stopped leading the partition before the batch was
    /// committed; a new leader may or may not have it.
    NotLeader,
}

/// What a leader of a replicated partition starts from: the controller's
/// view and the topic's settings.
#[derive(Debug, Clone)]
pub struct LeaderStart {
    /// The epoch it leads in: a leader that learns it leads in a newer one
    /// (having missed the ones between, in which its followers may have
    /// followed another leader and cut their logs) starts over.
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub partition_epoch: i32,
    pub min_insync_replicas: usize,
    pub replica_lag_time_max_ms: u64,
}

/// A partition as the server layer sees it: its log and the rules for
/// what is committed. Cheap to clone (reference counts).
#[derive(Clone)]
pub struct Partition {
    /// The log's driver. Replaced only by a follower's truncation
    /// ([`Partition::truncate_to`]); every method takes the driver anew, and
    /// none holds the borrow across an await.
    log: Rc<RefCell<LogDriver>>,
    /// The leader epoch the metadata names: what requests are fenced
    /// against. The log stamps batches with it too, unless the log already
    /// holds a newer epoch (see [`Partition::set_leader_epoch`]).
    leader_epoch: Rc<Cell<LeaderEpoch>>,
    replication: Rc<Replication>,
    reopen: Rc<Reopen>,
}

impl Partition {
    /// Opens (recovering it if it was not closed cleanly) the log in `dir`
    /// and starts its driver on the current executor. The report says what
    /// recovery found. The partition starts as the only replica
    /// ([`Role::Sole`]).
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        cache: SharedBatchCache,
        cache_id: CacheId,
    ) -> Result<(Partition, RecoveryReport), StorageError> {
        let (log, report) =
            PartitionLog::open(GlommioIo, dir.clone(), config, cache.clone(), cache_id).await?;
        let leader_epoch = Rc::new(Cell::new(log.leader_epoch()));
        let partition = Partition {
            log: Rc::new(RefCell::new(LogDriver::start(log))),
            leader_epoch,
            replication: Rc::new(Replication {
                role: RefCell::new(Role::Sole),
                generation: Cell::new(0),
                moved: Notify::new(),
                led_epoch: Cell::new(LeaderEpoch(-1)),
            }),
            reopen: Rc::new(Reopen {
                dir,
                cache,
                cache_id,
            }),
        };
        Ok((partition, report))
    }

    /// The current driver (a reference count).
    fn driver(&self) -> LogDriver {
        self.log.borrow().clone()
    }

    /// Lets the log act on time that passed without appends: retention
    /// deletes segments whose records expired (see
    /// `ServerConfig::log_retention_check_interval_ms`).
    pub fn check_timed_work(&self) {
        self.driver().wake();
    }

    /// Whether the partition's log is compacted (`cleanup.policy` has
    /// compact).
    pub fn compacts(&self) -> bool {
        self.read_log(|l| l.config().cleanup_policy.compacts())
    }

    /// Runs one cleaning pass if one is due (see `LogDriver::clean`).
    pub async fn clean<Fut: std::future::Future<Output = ()>>(
        &self,
        budget: &CleanerBudget,
        throttle: impl FnMut(u64) -> Fut,
    ) -> Option<Result<CleanStats, StorageError>> {
        self.driver().clean(budget, throttle).await
    }

    /// Where the cleaner stands on this log (dirty ratio, last cleaned
    /// offset); None unless the log compacts.
    pub fn cleaner_state(&self) -> Option<CleanerState> {
        self.read_log(|l| {
            l.config()
                .cleanup_policy
                .compacts()
                .then(|| l.cleaner_state(corelog_runtime::now_ms()))
        })
    }

    /// Reads the log (see `LogDriver::read_log`).
    fn read_log<R>(&self, f: impl FnOnce(&PartitionLog<GlommioIo>) -> R) -> R {
        self.log.borrow().read_log(f)
    }

    /// Changes the log (see `LogDriver::with_log`).
    fn with_log<R>(&self, f: impl FnOnce(&mut PartitionLog<GlommioIo>) -> R) -> R {
        self.log.borrow().with_log(f)
    }

    fn bounds_in(&self, log: &PartitionLog<GlommioIo>) -> ReadBounds {
        bounds_of(log, &self.replication.role.borrow())
    }

    /// Every offset below it is committed and may be served.
    pub fn high_watermark(&self) -> Offset {
        self.read_log(|l| self.bounds_in(l).high_watermark)
    }

    /// The bound of a `read_committed` read. Equal to the high watermark
    /// until transactions exist.
    pub fn last_stable_offset(&self) -> Offset {
        self.read_log(|l| self.bounds_in(l).last_stable_offset)
    }

    /// The high watermark, last stable offset and log start, read together.
    pub fn bounds(&self) -> ReadBounds {
        self.read_log(|l| self.bounds_in(l))
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.read_log(|l| l.log_start_offset())
    }

    /// Bytes of the log's segments, as retention counts them: what Kafka
    /// reports as a partition's size (DescribeLogDirs).
    pub fn size_bytes(&self) -> u64 {
        self.read_log(|l| l.size_bytes())
    }

    /// The offset the next append gets; may be ahead of the high watermark.
    pub fn log_end_offset(&self) -> Offset {
        self.read_log(|l| l.next_offset())
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
        self.with_log(|l| l.set_leader_epoch(epoch))
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
        self.read_log(|l| l.end_offset_for_epoch(epoch))
    }

    /// The epoch of the batch holding `offset`, as ListOffsets reports it
    /// (-1 when the log holds no batch at or below it).
    pub fn epoch_at(&self, offset: Offset) -> LeaderEpoch {
        self.read_log(|l| l.epochs().epoch_at(offset).unwrap_or(LeaderEpoch(-1)))
    }

    // ---------------------------------------------------------- replication --

    /// Bumped at each role change; a follower task or a leader driver
    /// started at another generation stops.
    pub fn role_generation(&self) -> u64 {
        self.replication.generation.get()
    }

    /// Whether this node follows the partition (its log is the leader's copy).
    pub fn is_follower(&self) -> bool {
        matches!(*self.replication.role.borrow(), Role::Follower { .. })
    }

    /// The role held, without its state.
    pub fn role_kind(&self) -> RoleKind {
        match &*self.replication.role.borrow() {
            Role::Sole => RoleKind::Sole,
            Role::Leader(_) => RoleKind::Leader(self.replication.led_epoch.get()),
            Role::Follower { leader, .. } => RoleKind::Follower(*leader),
        }
    }

    /// Whether an `acks=all` produce is taken now: the ISR has at least
    /// `min.insync.replicas` members (else NOT_ENOUGH_REPLICAS, as Kafka).
    pub fn accepts_acks_all(&self) -> bool {
        match &*self.replication.role.borrow() {
            Role::Leader(l) => l.accepts_acks_all(),
            _ => true,
        }
    }

    /// Whether this node leads the partition with followers.
    pub fn leads_replicated(&self) -> bool {
        matches!(*self.replication.role.borrow(), Role::Leader(_))
    }

    fn set_role(&self, role: Role) {
        *self.replication.role.borrow_mut() = role;
        self.replication
            .generation
            .set(self.replication.generation.get() + 1);
        self.replication.moved.notify_all();
    }

    /// Marks a replicated partition just opened: its log may end with
    /// batches no other replica got, so only what the checkpoint says was
    /// committed is assumed: the high watermark starts at the checkpoint's
    /// (the last one this replica knew before it stopped, bounded by its
    /// log; the log start when there is none), and only the in-sync
    /// replicas' reports move it (as leader), or the leader's word (as
    /// follower). So consumers of a restarted cluster see what was
    /// committed before, rather than nothing until every in-sync replica
    /// has fetched. Reconcile calls it before the partition's first role.
    pub fn start_replicated(&self) {
        let hw = self.read_log(|l| l.high_watermark().unwrap_or(l.log_start_offset()));
        self.set_role(Role::Follower {
            high_watermark: hw,
            leader: None,
        });
    }

    /// Makes this node the partition's only replica: committed means
    /// durable here again.
    pub fn become_sole(&self) {
        if !matches!(*self.replication.role.borrow(), Role::Sole) {
            self.set_role(Role::Sole);
        }
    }

    /// Makes this node the leader of a replicated partition, from the
    /// controller's view of it. The high watermark starts where this node
    /// knew it (as a follower, or as the only replica) and moves only as
    /// the in-sync followers report their disks.
    pub fn become_leader(&self, me: NodeId, start: LeaderStart, now_ms: u64) {
        let led_epoch = start.leader_epoch;
        let (log_end, durable, hw) = self.read_log(|l| {
            (
                l.next_offset(),
                l.flushed_offset(),
                self.bounds_in(l).high_watermark,
            )
        });
        let leader = Leader::new(
            me,
            Takeover {
                replicas: start.replicas,
                isr: start.isr,
                partition_epoch: start.partition_epoch,
                log_end,
                log_durable: durable,
                high_watermark: hw,
            },
            ReplicationConfig {
                replica_lag_time_max_ms: start.replica_lag_time_max_ms,
                min_insync_replicas: start.min_insync_replicas,
            },
            now_ms,
        );
        self.replication.led_epoch.set(led_epoch);
        self.set_role(Role::Leader(Box::new(leader)));
    }

    /// Makes this node a follower of `leader` (none while the partition
    /// has no leader): clients are no longer served, and only
    /// [`Self::append_replicated`] appends.
    pub fn become_follower(&self, leader: Option<(NodeId, LeaderEpoch)>) {
        let hw = self.high_watermark();
        self.set_role(Role::Follower {
            high_watermark: hw,
            leader,
        });
    }

    /// Steps the leader's machine (no-op in another role) and applies what
    /// it says. Returns the ISR changes it proposes.
    fn step_leader(&self, now_ms: u64, input: LeaderInput) -> Vec<LeaderOutput> {
        let out = match &mut *self.replication.role.borrow_mut() {
            Role::Leader(l) => l.step(now_ms, input),
            _ => return Vec::new(),
        };
        let mut rest = Vec::new();
        for o in out {
            match o {
                LeaderOutput::HighWatermark(hw) => {
                    self.with_log(|l| l.set_high_watermark(hw));
                    self.replication.moved.notify_all();
                }
                other => rest.push(other),
            }
        }
        rest
    }

    /// The leader's own log moved (a write, a sync) or time passed: the
    /// high watermark may advance, and followers may lag. Returns the ISR
    /// changes the leader proposes.
    pub fn leader_progress(&self, now_ms: u64) -> Vec<LeaderOutput> {
        let (end, durable) = self.read_log(|l| (l.next_offset(), l.flushed_offset()));
        let mut out = self.step_leader(now_ms, LeaderInput::LeaderLog { end, durable });
        out.extend(self.step_leader(now_ms, LeaderInput::Tick));
        out
    }

    /// A follower fetched from `offset`, which it fetches only once
    /// everything below is on its disk. Returns `None` when this node does
    /// not lead the partition with `follower` as a replica (its fetch gets
    /// NOT_LEADER_OR_FOLLOWER), else the ISR changes the leader proposes.
    pub fn follower_fetched(
        &self,
        follower: NodeId,
        offset: Offset,
        now_ms: u64,
    ) -> Option<Vec<LeaderOutput>> {
        match &*self.replication.role.borrow() {
            Role::Leader(l) if l.durable_of(follower).is_some() && follower != l.me() => {}
            _ => return None,
        }
        Some(self.step_leader(
            now_ms,
            LeaderInput::FollowerFetch {
                follower,
                durable: offset,
            },
        ))
    }

    /// What this node learned of the partition's ISR: what the controller
    /// committed (its answer, or the metadata), or the fate of a change
    /// this leader proposed (see [`IsrNews`]). Returns the ISR changes the
    /// leader proposes next.
    pub fn isr_answer(&self, now_ms: u64, news: IsrNews) -> Vec<LeaderOutput> {
        let input = match news {
            IsrNews::Committed {
                isr,
                partition_epoch,
            } => LeaderInput::IsrCommitted {
                isr,
                partition_epoch,
            },
            IsrNews::NotApplied {
                isr,
                partition_epoch,
            } => LeaderInput::IsrRefused {
                isr,
                partition_epoch,
            },
            IsrNews::Unknown {
                isr,
                partition_epoch,
            } => LeaderInput::IsrUnknown {
                isr,
                partition_epoch,
            },
        };
        self.step_leader(now_ms, input)
    }

    /// The topic's `min.insync.replicas` as this node's metadata has it,
    /// given to a leader before the ISR the same metadata holds (see
    /// `corelog_replication::Input::MinInsyncReplicas`). Returns the ISR
    /// changes the leader proposes next.
    pub fn set_min_insync_replicas(&self, now_ms: u64, n: usize) -> Vec<LeaderOutput> {
        if !matches!(&*self.replication.role.borrow(), Role::Leader(l) if l.min_insync_replicas() != n)
        {
            return Vec::new();
        }
        self.step_leader(now_ms, LeaderInput::MinInsyncReplicas(n))
    }

    /// The ISR this leader's machine holds, and the change in flight.
    pub fn leader_isr(&self) -> Option<(Vec<NodeId>, Option<Vec<NodeId>>)> {
        match &*self.replication.role.borrow() {
            Role::Leader(l) => Some((l.isr().to_vec(), l.pending_isr().map(<[_]>::to_vec))),
            _ => None,
        }
    }

    /// A follower learned the leader's high watermark.
    pub fn set_follower_high_watermark(&self, hw: Offset) {
        let moved = match &mut *self.replication.role.borrow_mut() {
            Role::Follower { high_watermark, .. } if hw > *high_watermark => {
                *high_watermark = hw;
                true
            }
            _ => false,
        };
        if moved {
            self.with_log(|l| l.set_high_watermark(hw));
            self.replication.moved.notify_all();
        }
    }

    /// A follower's append of a batch as its leader wrote it (offsets and
    /// epoch kept). Durable later, like any append; returns the new log end.
    pub fn append_replicated(&self, batch: ValidBatch) -> Result<Offset, StorageError> {
        let (info, _) = self.log.borrow().append_replicated(batch)?;
        Ok(info.last_offset.plus(1))
    }

    /// Completes once everything below `end` is on disk here, or fails if a
    /// failed write discarded it.
    pub async fn durable(&self, end: Offset) -> Result<(), NotAcknowledged> {
        let generation = self.read_log(|l| l.discard_generation());
        self.driver()
            .wait_flushed(end, generation)
            .await
            .map_err(|Discarded| NotAcknowledged::Discarded)
    }

    /// The log's durable end.
    pub fn durable_end(&self) -> Offset {
        self.read_log(|l| l.flushed_offset())
    }

    /// The log's epochs, as a follower's machine starts from.
    pub fn epoch_cache(&self) -> corelog_model::epochs::EpochCache {
        self.read_log(|l| l.epochs().clone())
    }

    /// A follower's truncation: removes every batch after `offset` (whole
    /// batches; see `PartitionLog::truncate_to`), durably, and returns the
    /// new log end. The log is closed, reopened alone, cut, and started
    /// again; meanwhile its handles read the closed log, which changes no
    /// more. Only a follower's task calls it, never while it appends.
    pub async fn truncate_to(&self, offset: Offset) -> Result<Offset, StorageError> {
        let old = self.driver();
        let config = old.read_log(|l| l.config().clone());
        old.close().await;
        let mut log = self.reopen_log(config).await?;
        let end = log
            .truncate_to(offset, corelog_runtime::partition::now_ms())
            .await;
        *self.log.borrow_mut() = LogDriver::start(log);
        self.replication.moved.notify_all();
        end
    }

    /// Opens this partition's directory again, alone (its driver closed),
    /// with `config`: what a truncation or a reset starts the new driver
    /// from.
    async fn reopen_log(&self, config: LogConfig) -> Result<PartitionLog<GlommioIo>, StorageError> {
        let (log, _) = PartitionLog::open(
            GlommioIo,
            self.reopen.dir.clone(),
            config,
            self.reopen.cache.clone(),
            self.reopen.cache_id,
        )
        .await?;
        Ok(log)
    }

    /// A follower's reset (Kafka's `truncateFullyAndStartAt`): its log ends
    /// below its leader's log start, so nothing it could fetch next exists
    /// any more; the log is replaced by an empty one starting at `start`,
    /// the leader's log start. Only a follower's task calls it, never
    /// while it appends; a follower holds nothing committed that its
    /// leader still has, and is not in the ISR (it lacks what the leader
    /// committed at its log start).
    ///
    /// The old directory is renamed aside (`<dir>.deleted`, removed after,
    /// or at the next start if a crash comes first) before the new one is
    /// made, so a crash leaves the old log or a new one, never a mix;
    /// either way the follower resets again.
    pub async fn reset_to(&self, start: Offset) -> Result<(), StorageError> {
        let old = self.driver();
        let config = old.read_log(|l| l.config().clone());
        old.close().await;
        self.forget_cached();
        let dir = self.reopen.dir.clone();
        let aside = deleted_name(&dir);
        let (from, to) = (dir.clone(), aside.clone());
        let renamed = corelog_runtime::run_blocking(move || {
            let _ = std::fs::remove_dir_all(&to);
            std::fs::rename(&from, &to)?;
            match from.parent() {
                Some(parent) => std::fs::File::open(parent)?.sync_all(),
                None => Ok(()),
            }
        })
        .await;
        if let Err(e) = renamed {
            // The old log is still there: go on with it.
            let log = self.reopen_log(config).await?;
            *self.log.borrow_mut() = LogDriver::start(log);
            return Err(StorageError::Io {
                op: "move the log aside",
                path: dir,
                source: e,
            });
        }
        PartitionLog::create_empty_at(&GlommioIo, &dir, start).await?;
        let log = self.reopen_log(config).await?;
        *self.log.borrow_mut() = LogDriver::start(log);
        self.replication.moved.notify_all();
        if let Err(e) = corelog_runtime::run_blocking(move || std::fs::remove_dir_all(&aside)).await
        {
            tracing::warn!(error = %e, "could not remove a reset follower's old log; it goes at the next start");
        }
        Ok(())
    }

    /// Appends one batch. The returned [`Appended`] carries the assigned
    /// offsets; [`Self::acknowledged`] completes when `acks` is satisfied.
    pub fn append(&self, batch: ValidBatch, acks: Acks) -> Result<Appended, StorageError> {
        let role_generation = self.replication.generation.get();
        let appended = self.log.borrow().append(batch)?;
        Ok(Appended::of(appended, role_generation, acks))
    }

    /// Appends a transaction marker (the coordinator's WriteTxnMarkers):
    /// it ends the producer's transaction here. Returns the point to wait
    /// for with [`Self::committed`]: a marker counts once committed, as an
    /// `acks=all` write does.
    pub fn append_marker(&self, marker: TxnMarker) -> Result<CommitPoint, StorageError> {
        let role_generation = self.replication.generation.get();
        let appended = self
            .log
            .borrow()
            .append_marker(marker, corelog_runtime::now_ms())?;
        Ok(Appended::of(appended, role_generation, Acks::All).commit)
    }

    /// The first offset of `producer_id`'s transaction open on this
    /// partition, if one is (KIP-890 verification asks it before a
    /// transactional batch that would open one).
    pub fn ongoing_transaction(&self, producer_id: ProducerId) -> Option<Offset> {
        self.read_log(|l| l.ongoing_transaction(producer_id))
    }

    /// The producers this partition remembers (DescribeProducers).
    pub fn producer_states(&self) -> Vec<ProducerStateView> {
        self.read_log(|l| l.producer_states())
    }

    /// Appends a group coordinator's transactional batch of offsets
    /// (TxnOffsetCommit), which carries the producer's id and epoch but no
    /// sequence; acknowledged like [`Self::append`] at `acks`.
    pub fn append_from_coordinator(
        &self,
        batch: ValidBatch,
        acks: Acks,
    ) -> Result<Appended, StorageError> {
        let role_generation = self.replication.generation.get();
        let appended = self.log.borrow().append_from_coordinator(batch)?;
        Ok(Appended::of(appended, role_generation, acks))
    }

    /// Completes when `appended` may be acknowledged at its acks level: at
    /// once for `acks=0` and `acks=1`; for `acks=all` once the high
    /// watermark has passed its last offset. Fails if the batch was
    /// discarded by a failed write before it was committed, or if this
    /// node stopped leading before then; it may then never be committed,
    /// and the producer must be told.
    pub async fn acknowledged(&self, appended: &Appended) -> Result<(), NotAcknowledged> {
        match appended.acks {
            Acks::None | Acks::Leader => Ok(()),
            Acks::All => self.committed(appended.commit).await,
        }
    }

    /// The commit point of everything appended so far.
    pub fn end_commit_point(&self) -> CommitPoint {
        let role_generation = self.replication.generation.get();
        self.read_log(|l| CommitPoint {
            end: l.next_offset(),
            generation: l.discard_generation(),
            role_generation,
        })
    }

    /// Completes once every offset below `point` is committed, or fails if
    /// they were discarded by a failed write or this node stopped leading.
    /// First durable here, then (replicated) below the high watermark.
    pub async fn committed(&self, point: CommitPoint) -> Result<(), NotAcknowledged> {
        // The role the offsets were written in, not the one at this call:
        // a produce request waits for its partitions one after another, and
        // a later partition's role may have changed meanwhile.
        let generation = point.role_generation;
        self.driver()
            .wait_flushed(point.end, point.generation)
            .await
            .map_err(|Discarded| NotAcknowledged::Discarded)?;
        loop {
            let moved = self.replication.moved.notified();
            if self.replication.generation.get() != generation {
                return Err(NotAcknowledged::NotLeader);
            }
            if self.read_log(|l| l.discard_generation()) != point.generation {
                return Err(NotAcknowledged::Discarded);
            }
            if self.high_watermark() >= point.end {
                return Ok(());
            }
            moved.await;
        }
    }

    /// Completes after something about the log changed (a write, a sync, a
    /// roll...) or the high watermark moved. Long polls wait on it and
    /// then look again.
    pub async fn changed(&self) {
        let log = self.driver();
        log.changed().or(self.replication.moved.notified()).await
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
        self.read_log(|l| {
            let bounds = self.bounds_in(l);
            let end = bounds.visible_end(isolation);
            (bounds, l.plan_read(offset, max_bytes, end))
        })
    }

    /// Plans a read_committed read from `offset`, as [`Self::plan_read`]
    /// does at [`Isolation::ReadCommitted`], with the aborted transactions
    /// whose records may lie in what it reads (the consumer drops them).
    /// Their number is bounded (`corelog_storage`'s
    /// `ABORTED_TXNS_PER_READ_MAX`); when more lie before the last stable
    /// offset, the read ends where the list stops being complete, so no
    /// aborted record is ever returned without its transaction.
    pub fn plan_read_committed(
        &self,
        offset: Offset,
        max_bytes: usize,
    ) -> (ReadBounds, Result<ReadPlan, StorageError>, Vec<AbortedTxn>) {
        self.read_log(|l| {
            let bounds = self.bounds_in(l);
            let lso = bounds.last_stable_offset;
            let (aborted, complete_below) = l.aborted_transactions_bounded(
                offset,
                lso,
                corelog_storage::ABORTED_TXNS_PER_READ_MAX,
            );
            let end = lso.min(complete_below);
            (bounds, l.plan_read(offset, max_bytes, end), aborted)
        })
    }

    /// Plans a lookup of the first committed record whose timestamp is at
    /// or after `target_ms` (ListOffsets by time).
    pub fn plan_offset_for_timestamp(&self, target_ms: i64) -> TimestampPlan<GlommioIo> {
        self.read_log(|l| l.plan_offset_for_timestamp(target_ms, self.bounds_in(l).high_watermark))
    }

    /// Plans a lookup of the committed record with the newest timestamp
    /// (ListOffsets -3); `None` when nothing is committed.
    pub fn plan_max_timestamp(&self) -> Option<TimestampPlan<GlommioIo>> {
        self.read_log(|l| {
            let hw = self.bounds_in(l).high_watermark;
            l.max_timestamp_ms(hw)
                .map(|max| l.plan_offset_for_timestamp(max, hw))
        })
    }

    /// Moves the log start forward to `up_to` (DeleteRecords, and the
    /// offsets log after a snapshot). Only committed records may be
    /// deleted: an offset past the high watermark is out of range. Returns
    /// the new log start offset.
    pub fn delete_records(&self, up_to: DeleteUpTo) -> Result<Offset, StorageError> {
        self.with_log(|l| {
            let bounds = self.bounds_in(l);
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
        self.read_log(|l| l.config().clone())
    }

    /// Applies new settings to the log.
    pub fn set_log_config(&self, config: LogConfig) -> Result<(), StorageError> {
        self.with_log(|l| l.set_config(config))
    }

    /// Drops the partition's batches from the shard's cache (after it was
    /// deleted).
    pub fn forget_cached(&self) {
        self.read_log(|l| l.cache_remove());
    }

    /// Flushes everything, writes a final checkpoint and stops the driver.
    pub async fn close(&self) {
        self.replication
            .generation
            .set(self.replication.generation.get() + 1);
        self.replication.moved.notify_all();
        self.driver().close().await
    }
}

/// Where a partition directory is moved while it is replaced (see
/// [`Partition::reset_to`]); the broker removes such directories at start.
pub fn deleted_name(dir: &std::path::Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(DELETED_SUFFIX);
    dir.with_file_name(name)
}

/// The suffix of [`deleted_name`].
pub const DELETED_SUFFIX: &str = ".deleted";

/// The single definition of the bounds, from the log's state and this
/// node's role. Everything above reads them through here.
fn bounds_of(log: &PartitionLog<GlommioIo>, role: &Role) -> ReadBounds {
    let flushed = log.flushed_offset();
    let high_watermark = match role {
        Role::Sole => flushed,
        // The leader's high watermark counts its own durable end too; the
        // minimum keeps it within this disk whatever the machine was told.
        Role::Leader(l) => l.high_watermark().min(flushed),
        Role::Follower { high_watermark, .. } => (*high_watermark).min(flushed),
    };
    ReadBounds {
        high_watermark,
        last_stable_offset: log.last_stable_offset(high_watermark),
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.next_offset(),
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
