//! The follower side's state: this shard's fetchers by leader broker
//! ([`Fetchers`], owned by the shard) and each followed partition's place
//! in its fetcher ([`Slot`]: its machine and the steps that need no
//! request). The fetcher task that sends the requests is the parent
//! module's.
//!
//! Lives on: the shard that owns the partitions. It names nothing above
//! the shard, so the shard can own the table without an import cycle.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_model::{LeaderEpoch, NodeId, Offset};
use corelog_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use corelog_replication::follower::{Follower, Input, Output};
use corelog_runtime::notify::Doorbell;
use corelog_storage::ValidBatch;

use crate::partition::Partition;

/// The pause before a follower retries after an error (leader unreachable,
/// not leader yet, a failed write).
pub const REPLICA_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// This shard's followers, grouped by the broker they follow: one fetcher
/// task per leader broker, with one connection, one Fetch and one
/// OffsetForLeaderEpoch for every partition it follows there, as Kafka's
/// replica fetchers do. A connection and a long poll per partition cost a
/// node with the 50 replicated offsets partitions about 100 connections
/// and four times the idle CPU (`bench-harness/tools/cluster_idle_cpu.sh`
/// at `d4d05ab`).
///
/// Lives on: the shard (`Shard::fetchers`).
#[derive(Default)]
pub struct Fetchers {
    pub(super) by_leader: RefCell<HashMap<NodeId, Rc<Inbox>>>,
}

impl Fetchers {
    /// The leader brokers this shard fetches from now.
    pub fn leaders(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.by_leader.borrow().keys().copied().collect();
        v.sort();
        v
    }
}

/// What `start_follower` hands a running fetcher.
#[derive(Default)]
pub(super) struct Inbox {
    pub(super) added: RefCell<Vec<Slot>>,
    pub(super) bell: Doorbell,
}

/// One followed partition in its fetcher.
pub(super) struct Slot {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) p: Partition,
    pub(super) leader_epoch: LeaderEpoch,
    /// The partition's role generation when it was added: the slot goes
    /// once the role changes.
    pub(super) generation: u64,
    /// None until the slot (re)starts: a new machine from the log as it is.
    pub(super) machine: Option<Follower>,
    /// What the machine asked for and is not done yet; the head is the
    /// next thing to do.
    pub(super) pending: VecDeque<Output>,
    /// The leader's log start as last fetched: records it no longer holds
    /// (retention, DeleteRecords, an offsets log's snapshots) go from this
    /// copy too, so a failover never brings them back.
    pub(super) leader_log_start: Offset,
    /// After an error: not before then.
    pub(super) retry_at: Option<Instant>,
}

impl Slot {
    pub(super) fn new(
        topic: String,
        partition: i32,
        p: Partition,
        leader_epoch: LeaderEpoch,
    ) -> Slot {
        Slot {
            topic,
            partition,
            generation: p.role_generation(),
            p,
            leader_epoch,
            machine: None,
            pending: VecDeque::new(),
            leader_log_start: Offset::ZERO,
            retry_at: None,
        }
    }

    pub(super) fn current(&self) -> bool {
        self.p.role_generation() == self.generation
    }

    /// Current and not waiting out a backoff at `now`.
    pub(super) fn ready(&self, now: Instant) -> bool {
        self.current() && self.retry_at.is_none_or(|t| t <= now)
    }

    pub(super) fn next(&self) -> Option<&Output> {
        self.pending.front()
    }

    /// Drops the machine: after the backoff the slot starts again from its
    /// log, asking the leader where it diverges.
    pub(super) fn restart(&mut self, now: Instant) {
        self.machine = None;
        self.pending.clear();
        self.retry_at = Some(now + REPLICA_RETRY_BACKOFF);
    }

    pub(super) fn step(&mut self, input: Input) {
        if let Some(m) = self.machine.as_mut() {
            self.pending.extend(m.step(input));
        }
    }

    /// Starts the machine if it has none, then does what needs no request
    /// (truncations, high watermarks), until the next thing is a question
    /// to the leader.
    pub(super) async fn local_steps(&mut self, leader: NodeId) -> Result<(), String> {
        if self.machine.is_none() {
            self.retry_at = None;
            self.leader_log_start = Offset::ZERO;
            let mut machine = Follower::new(
                self.p.epoch_cache(),
                self.p.log_end_offset(),
                self.p.durable_end(),
                self.p.high_watermark(),
            );
            self.pending = machine
                .step(Input::Leader {
                    leader,
                    leader_epoch: self.leader_epoch,
                })
                .into();
            self.machine = Some(machine);
        }
        while let Some(next) = self.pending.front() {
            if !self.current() {
                return Ok(());
            }
            match *next {
                Output::Truncate { to } => {
                    self.pending.pop_front();
                    let end = self
                        .p
                        .truncate_to(to)
                        .await
                        .map_err(|e| format!("truncating to {to}: {e}"))?;
                    tracing::info!(topic = %self.topic, partition = self.partition, to = to.0, end = end.0, "follower log truncated to the leader's");
                }
                Output::HighWatermark(hw) => {
                    self.pending.pop_front();
                    self.p.set_follower_high_watermark(hw);
                }
                Output::AskEpoch { .. } | Output::Fetch { .. } => return Ok(()),
            }
        }
        // The machine always asks for something next; if it did not, a
        // new one from the log will.
        Err("the follower's machine asked for nothing".into())
    }

    /// Moves this copy's log start up to the leader's, as Kafka's
    /// followers do, but never past this replica's high watermark (what
    /// it knows to be committed): a DeleteRecords answered by the leader
    /// then holds after a failover.
    pub(super) fn follow_log_start(&self) {
        let target = self.leader_log_start.min(self.p.high_watermark());
        if target <= self.p.log_start_offset() {
            return;
        }
        if let Err(e) = self
            .p
            .delete_records(crate::partition::DeleteUpTo::Offset(target))
        {
            tracing::warn!(topic = %self.topic, partition = self.partition, to = target.0, error = %e, "follower could not move its log start to the leader's");
        }
    }

    /// Takes the leader's answer to a fetch from `offset`.
    pub(super) async fn fetched(
        &mut self,
        offset: Offset,
        part: Option<&PartitionData>,
    ) -> Result<(), String> {
        let part = part.ok_or("Fetch answered without the partition")?;
        if part.error_code == corelog_protocol::error_code::OFFSET_OUT_OF_RANGE
            && part.log_start_offset > offset.0
        {
            let log_start = Offset(part.log_start_offset);
            tracing::info!(topic = %self.topic, partition = self.partition, end = offset.0, leader_log_start = log_start.0, "follower's log ends below its leader's log start; copying from there into an empty log");
            self.p
                .reset_to(log_start)
                .await
                .map_err(|e| format!("resetting to {}: {e}", log_start.0))?;
            // A new machine, from the new log.
            return Err("reset to the leader's log start".into());
        }
        if part.error_code != 0 {
            return Err(format!("Fetch answered error {}", part.error_code));
        }
        let records = part.records.clone().unwrap_or_default();
        self.leader_log_start = Offset(part.log_start_offset.max(0));
        // The leader's log start may fall inside a batch, which a fetch
        // from it answers whole: it starts below this log's end. A log
        // with nothing in it (just reset to that log start) starts over at
        // the batch's base instead, as Kafka's followers do; its log start
        // then follows the leader's (`follow_log_start`).
        if let Some(base) = first_batch_base(&records) {
            let empty = self.p.log_start_offset() == offset && self.p.log_end_offset() == offset;
            if base < offset && empty {
                self.p
                    .reset_to(base)
                    .await
                    .map_err(|e| format!("resetting to {}: {e}", base.0))?;
            }
        }
        let (end, epochs) = self.append(records, offset)?;
        self.pending.pop_front();
        self.step(Input::Fetched {
            leader_epoch: self.leader_epoch,
            end,
            epochs,
            leader_high_watermark: Offset(part.high_watermark),
        });
        Ok(())
    }

    /// Appends the whole batches of `records`, which start at `offset`.
    /// Returns the log end after them and the epochs they start.
    #[allow(clippy::type_complexity)]
    pub(super) fn append(
        &self,
        records: Bytes,
        offset: Offset,
    ) -> Result<(Offset, Vec<(LeaderEpoch, Offset)>), String> {
        let limits = self.p.log_config().record_limits;
        let mut end = offset;
        let mut epochs: Vec<(LeaderEpoch, Offset)> = Vec::new();
        let mut at = 0usize;
        while records.len() - at >= 12 {
            let length =
                u32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let next = at + 12 + length;
            if next > records.len() {
                // A partial batch at the end of the answer (max_bytes): it
                // comes whole with the next fetch.
                break;
            }
            if !self.current() {
                break;
            }
            let batch = ValidBatch::new(records.slice(at..next), &limits)
                .map_err(|e| format!("a batch from the leader fails its check: {e}"))?;
            let epoch = LeaderEpoch(batch.header().partition_leader_epoch);
            let base = batch.header().base_offset;
            end = self
                .p
                .append_replicated(batch)
                .map_err(|e| format!("appending the leader's batch at {}: {e}", base.0))?;
            if epochs.last().is_none_or(|(e, _)| *e != epoch) {
                epochs.push((epoch, base));
            }
            at = next;
        }
        Ok((end, epochs))
    }
}

/// The base offset of the first batch in a fetch answer's records.
fn first_batch_base(records: &[u8]) -> Option<Offset> {
    let head: [u8; 8] = records.get(..8)?.try_into().ok()?;
    Some(Offset(i64::from_be_bytes(head)))
}
