//! The group coordinators one shard hosts: each offsets partition's
//! sans-io coordinator, its log, its timer and the replies it owes.
//!
//! Lives on: the shard that owns the offsets partition. The shard holds the
//! [`GroupTable`]; this module names nothing of the shard (routing and
//! opening are in the parent module), so the two do not import each other.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corelog_coordination::records::{decode_log, encode_batches, encode_txn_batches, LogEntry};
use corelog_coordination::{
    codes, GroupCoordinator, Input, Output, ReplyId, Request, Response, TopicInfo, TopicsView,
    WriteId,
};
use corelog_runtime::notify::Doorbell;
use corelog_runtime::now_ms;
use corelog_storage::{Offset, RecordLimits, StorageError, ValidBatch};
use futures_lite::FutureExt;

use crate::coordinators::table::CoordinatorTable;
use crate::metadata::ClusterMetadata;
use crate::partition::{Acks, DeleteUpTo, Isolation, Partition};

/// The largest batch the coordinator appends; a larger set of records (a
/// snapshot) is split into several.
const OFFSETS_BATCH_BYTES_MAX: usize = 512 << 10;

/// Bytes read per step when rebuilding a coordinator from its log.
const LOAD_READ_BYTES: usize = 1 << 20;

/// The longest a coordinator's timer sleeps without looking again: a bound
/// on how late a deadline set while it sleeps can fire if no request
/// arrives to wake it.
const TIMER_SLEEP_MAX_MS: i64 = 1_000;

/// How long a coordinator waits before trying again to rebuild from a log
/// that could not be read.
const RELOAD_BACKOFF_MS: u64 = 200;

/// What a handler gets back: the coordinator's answer, or an error code for
/// the whole request (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ...).
pub type GroupReply = Result<Response, i16>;

/// One offsets partition's coordinator and its log.
pub struct GroupPartition {
    index: u32,
    machine: RefCell<GroupCoordinator>,
    log: Partition,
    /// Cluster mode: the role generation of the log's leadership this
    /// coordinator was started for (`Partition::role_generation`). It acts
    /// only while the log keeps it: a coordinator whose node stopped
    /// leading is dropped, and a new leader starts its own from the log.
    /// `None` on a single node, where the coordinator owns its log.
    led_generation: Option<u64>,
    waiters: RefCell<HashMap<ReplyId, futures_channel::oneshot::Sender<GroupReply>>>,
    next_reply: Cell<u64>,
    /// True while the coordinator is being rebuilt from its log.
    loading: Cell<bool>,
    /// The metadata version the coordinator's topic view was taken from.
    topics_version: Cell<u64>,
    timer: Doorbell,
    closed: Cell<bool>,
}

/// The group coordinators of the offsets partitions one shard owns, by
/// partition. Lives on: that shard.
pub type GroupTable = CoordinatorTable<GroupPartition>;

impl GroupTable {
    /// How many groups this shard's coordinators hold together (the count
    /// `groups.groups_per_shard_max` bounds).
    pub fn group_count(&self) -> usize {
        self.sum_by(|gp| gp.machine.borrow().group_count())
    }

    /// The committed offsets of this shard's coordinators, at most `limit`
    /// of them (for the lag metrics).
    pub fn committed_offsets(
        &self,
        limit: usize,
    ) -> Vec<(String, corelog_model::TopicPartition, i64)> {
        let mut out = Vec::new();
        for index in self.indexes() {
            if let Some(gp) = self.get(index) {
                let left = limit.saturating_sub(out.len());
                out.extend(gp.machine.borrow().committed_offsets(left));
            }
        }
        out
    }
}

pub(super) fn seed(index: u32) -> u64 {
    (now_ms() as u64) << 16 ^ index as u64 ^ std::process::id() as u64
}

/// How long a load waits for the log's end to be committed before it
/// gives up and tries again.
const LOAD_COMMIT_WAIT: Duration = Duration::from_secs(10);

/// Rebuilds a coordinator from its log: every record from the log start to
/// the log end, in order, once all of them are committed.
///
/// Why wait: a new leader's log may end with records of the previous
/// leader that only some replicas hold yet, the last acknowledged commits
/// among them (the previous leader's high watermark may be ahead of what
/// this one learned). A leader never cuts its own log, so they become
/// committed once the in-sync followers have them; reading to the high
/// watermark before that would lose acknowledged offsets from the
/// coordinator's view. On a single node the end is committed once flushed.
pub(super) async fn load(
    log: &Partition,
    config: corelog_coordination::CoordinatorConfig,
    seed: u64,
) -> Result<GroupCoordinator, String> {
    let mut machine = GroupCoordinator::new(config, seed);
    let end = log.end_commit_point();
    let committed = async { Some(log.committed(end).await) };
    let timeout = async {
        glommio::timer::sleep(LOAD_COMMIT_WAIT).await;
        None
    };
    match committed.or(timeout).await {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(format!("the log's end was not committed: {e:?}")),
        None => {
            return Err(format!(
                "the log's end was not committed within {LOAD_COMMIT_WAIT:?}"
            ))
        }
    }
    let bounds = log.bounds();
    let (mut offset, end) = (bounds.log_start_offset, bounds.high_watermark);
    let mut skipped = 0usize;
    while offset < end {
        let (_, plan) = log.plan_read(offset, LOAD_READ_BYTES, Isolation::ReadUncommitted);
        let plan = plan.map_err(|e| e.to_string())?;
        let chunks = plan.execute().await.map_err(|e| e.to_string())?;
        if chunks.is_empty() {
            break;
        }
        let bytes = Bytes::from(chunks.to_vec());
        for entry in decode_log(bytes)? {
            match entry {
                LogEntry::Record { offset: at, .. } | LogEntry::Marker { offset: at, .. }
                    if at < offset.0 => {}
                LogEntry::Record { record: Err(_), .. } => skipped += 1,
                LogEntry::Record {
                    record: Ok(r),
                    txn: None,
                    ..
                } => machine.load(r),
                LogEntry::Record {
                    record: Ok(r),
                    txn: Some((producer_id, producer_epoch)),
                    ..
                } => machine.load_txn_record(producer_id, producer_epoch, r),
                LogEntry::Marker {
                    producer_id,
                    commit,
                    ..
                } => machine.load_marker(producer_id, commit),
            }
        }
        offset = chunks.next_offset;
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "offsets log records that did not parse were skipped"
        );
    }
    machine.finish_load(now_ms());
    Ok(machine)
}

impl GroupPartition {
    /// Wraps a coordinator rebuilt from `log`, which it owns (a single
    /// node), and starts its timer.
    pub(super) fn start(
        index: u32,
        machine: GroupCoordinator,
        log: Partition,
    ) -> Rc<GroupPartition> {
        Self::with_timer(index, machine, log, None, false)
    }

    /// A coordinator with its timer running.
    fn with_timer(
        index: u32,
        machine: GroupCoordinator,
        log: Partition,
        led_generation: Option<u64>,
        loading: bool,
    ) -> Rc<GroupPartition> {
        let gp = Rc::new(GroupPartition {
            index,
            machine: RefCell::new(machine),
            log,
            led_generation,
            waiters: RefCell::new(HashMap::new()),
            next_reply: Cell::new(0),
            loading: Cell::new(loading),
            topics_version: Cell::new(u64::MAX),
            timer: Doorbell::default(),
            closed: Cell::new(false),
        });
        glommio::spawn_local(run_timer(gp.clone())).detach();
        gp
    }

    /// Cluster mode: a coordinator for the offsets partition whose log
    /// this node has just started to lead (role generation `generation`).
    /// It answers COORDINATOR_LOAD_IN_PROGRESS until it is rebuilt from
    /// the log ([`load`]), which starts now.
    pub(super) fn start_leading(
        index: u32,
        config: corelog_coordination::CoordinatorConfig,
        log: Partition,
        generation: u64,
    ) -> Rc<GroupPartition> {
        let machine = GroupCoordinator::new(config, seed(index));
        let gp = Self::with_timer(index, machine, log, Some(generation), true);
        gp.spawn_reload(0);
        gp
    }

    /// The role generation of the log's leadership this coordinator serves
    /// (`None`: a single node's, which owns its log).
    pub(super) fn led_generation(&self) -> Option<u64> {
        self.led_generation
    }

    /// Whether this coordinator may no longer act: closed, or (cluster
    /// mode) its node no longer leads the log in the role it started for.
    fn stale(&self) -> bool {
        self.closed.get()
            || self
                .led_generation
                .is_some_and(|g| g != self.log.role_generation())
    }

    /// Cluster mode: this node stopped leading the log. Every owed reply
    /// gets NOT_COORDINATOR (clients find the new coordinator and retry
    /// there) and the coordinator stops; the log stays open, a follower's
    /// copy now.
    pub(super) fn abandon(&self) {
        self.closed.set(true);
        self.timer.ring();
        self.fail_owed();
    }

    /// Answers every owed reply NOT_COORDINATOR: clients look the
    /// coordinator up again and retry.
    fn fail_owed(&self) {
        let _ = self.machine.borrow_mut().fail_pending();
        for (_, tx) in self.waiters.borrow_mut().drain() {
            let _ = tx.send(Err(codes::NOT_COORDINATOR));
        }
    }

    /// Hands `request` to the coordinator and waits for its answer (which
    /// may wait for the offsets log to be durable). `groups_full`: the
    /// shard holds `groups.groups_per_shard_max` groups, so the request may
    /// not create another.
    pub(super) async fn submit(
        self: &Rc<Self>,
        md: &ClusterMetadata,
        request: Request,
        groups_full: bool,
    ) -> GroupReply {
        if self.stale() {
            return Err(codes::NOT_COORDINATOR);
        }
        if self.loading.get() {
            return Err(codes::COORDINATOR_LOAD_IN_PROGRESS);
        }
        self.refresh_topics(md);
        let id = ReplyId(self.next_reply.get());
        self.next_reply.set(id.0 + 1);
        let (tx, rx) = futures_channel::oneshot::channel();
        self.waiters.borrow_mut().insert(id, tx);
        let outputs = {
            let mut machine = self.machine.borrow_mut();
            machine.set_groups_full(groups_full);
            machine.step(now_ms(), Input::Request(id, Box::new(request)))
        };
        self.perform(outputs);
        self.timer.ring();
        rx.await.unwrap_or(Err(codes::NOT_COORDINATOR))
    }

    /// Appends a transaction marker to the offsets log and, once it is
    /// committed, steps the coordinator with [`Input::TxnCompleted`], so
    /// the transaction's offsets become visible (or are dropped) exactly
    /// when the log says so. 0, or the error code for the transaction
    /// coordinator (which retries).
    pub(super) async fn write_marker(self: &Rc<Self>, marker: corelog_storage::TxnMarker) -> i16 {
        if self.stale() {
            return codes::NOT_COORDINATOR;
        }
        if self.loading.get() {
            return codes::COORDINATOR_LOAD_IN_PROGRESS;
        }
        let point = match self.log.append_marker(marker) {
            Ok(point) => point,
            Err(e) => {
                tracing::warn!(partition = self.index, error = %e, "transaction marker refused by the offsets log");
                return crate::error::ServerError::code_of_storage(&e);
            }
        };
        if self.log.committed(point).await.is_err() {
            if !self.stale() {
                self.fail();
            }
            return codes::NOT_COORDINATOR;
        }
        if self.loading.get() || self.stale() {
            // Rebuilt from the log meanwhile: the load read the marker.
            return codes::NONE;
        }
        let outputs = self.machine.borrow_mut().step(
            now_ms(),
            Input::TxnCompleted {
                producer_id: marker.producer_id,
                commit: marker.kind == corelog_storage::MarkerKind::Commit,
            },
        );
        self.perform(outputs);
        codes::NONE
    }

    /// Stops the timer and flushes the log if it owns it (a cluster
    /// node's offsets logs are closed with its other partitions).
    pub(super) async fn close(&self) {
        self.closed.set(true);
        self.timer.ring();
        if self.led_generation.is_none() {
            self.log.close().await;
        }
    }

    /// Gives the coordinator the current topics when the metadata changed.
    fn refresh_topics(&self, md: &ClusterMetadata) {
        if self.topics_version.get() == md.version {
            return;
        }
        let view: TopicsView = md
            .topics
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    TopicInfo {
                        id: t.uuid(),
                        partitions: t.partitions.len() as u32,
                    },
                )
            })
            .collect();
        self.machine.borrow_mut().set_topics(Arc::new(view));
        self.topics_version.set(md.version);
    }

    fn perform(self: &Rc<Self>, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Reply(id, response) => {
                    if let Some(tx) = self.waiters.borrow_mut().remove(&id) {
                        let _ = tx.send(Ok(response));
                    }
                }
                Output::Append {
                    write,
                    records,
                    compacts,
                } => {
                    let batches = encode_batches(&records, now_ms(), OFFSETS_BATCH_BYTES_MAX);
                    if !self.append(write, batches, compacts, false) {
                        return;
                    }
                }
                Output::AppendTxn {
                    write,
                    producer_id,
                    producer_epoch,
                    records,
                } => {
                    let batches = encode_txn_batches(
                        &records,
                        producer_id,
                        producer_epoch,
                        now_ms(),
                        OFFSETS_BATCH_BYTES_MAX,
                    );
                    if !self.append(write, batches, false, true) {
                        return;
                    }
                }
            }
        }
    }

    /// Appends a write's batches to the offsets log and steps the machine
    /// with [`Input::AppendDone`] once they are committed. `false` when the
    /// append failed and the coordinator is being rebuilt (the step's
    /// remaining outputs are moot).
    /// `for_producer`: the batches are a producer's transactional offsets,
    /// appended as a coordinator's (no sequence).
    fn append(
        self: &Rc<Self>,
        write: WriteId,
        batches: Vec<Bytes>,
        compacts: bool,
        for_producer: bool,
    ) -> bool {
        // A leader whose ISR is below min.insync.replicas commits nothing:
        // fail now rather than leave the replies waiting (Kafka answers
        // such a commit NOT_ENOUGH_REPLICAS, which clients see as
        // COORDINATOR_NOT_AVAILABLE, and retry).
        if !self.log.accepts_acks_all() {
            tracing::warn!(
                partition = self.index,
                "offsets partition's ISR is below min.insync.replicas; its coordinator waits"
            );
            self.fail();
            return false;
        }
        let mut first: Option<Offset> = None;
        // With no batches the write completes behind every write before
        // it, as it would with some.
        let mut commit = self.log.end_commit_point();
        let end_before = self.log.log_end_offset();
        for batch in batches {
            // The coordinator's own batches are checked like any other:
            // nothing enters a log unchecked.
            let checked =
                ValidBatch::new(batch, &RecordLimits::default()).map_err(StorageError::from);
            let appended = checked.and_then(|b| {
                if for_producer {
                    self.log.append_from_coordinator(b, Acks::All)
                } else {
                    self.log.append(b, Acks::All)
                }
            });
            match appended {
                Ok(appended) => {
                    first.get_or_insert(appended.base_offset);
                    commit = appended.commit;
                }
                Err(e) => {
                    tracing::error!(partition = self.index, error = %e, "offsets log append failed");
                    self.fail();
                    return false;
                }
            }
        }
        let first = DeleteUpTo::Offset(first.unwrap_or(end_before));
        let gp = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = gp.log.committed(commit).await {
                if !gp.stale() {
                    tracing::error!(partition = gp.index, error = ?e, "offsets log write failed");
                }
                gp.fail();
                return;
            }
            if gp.loading.get() || gp.stale() {
                return;
            }
            if compacts {
                // The snapshot holds the whole live state: what came
                // before it is superseded.
                let _ = gp.log.delete_records(first);
            }
            let outputs = gp
                .machine
                .borrow_mut()
                .step(now_ms(), Input::AppendDone(write));
            gp.perform(outputs);
        })
        .detach();
        true
    }

    /// An append failed, or its node stopped leading the log: memory may
    /// be ahead of the log. Fail every owed reply with NOT_COORDINATOR
    /// (clients look the coordinator up again and retry) and rebuild the
    /// coordinator from what is committed, unless it is stale.
    fn fail(self: &Rc<Self>) {
        if self.loading.replace(true) {
            return;
        }
        self.fail_owed();
        self.spawn_reload(RELOAD_BACKOFF_MS);
    }

    /// Rebuilds the coordinator from its log, after `delay_ms` and then
    /// every [`RELOAD_BACKOFF_MS`] until it succeeds or is stale.
    fn spawn_reload(self: &Rc<Self>, delay_ms: u64) {
        let gp = self.clone();
        glommio::spawn_local(async move {
            let mut delay_ms = delay_ms;
            loop {
                if delay_ms > 0 {
                    glommio::timer::sleep(Duration::from_millis(delay_ms)).await;
                }
                delay_ms = RELOAD_BACKOFF_MS;
                if gp.stale() {
                    return;
                }
                let config = gp.machine.borrow().config().clone();
                match load(&gp.log, config, seed(gp.index)).await {
                    Ok(_) if gp.stale() => return,
                    Ok(m) => {
                        *gp.machine.borrow_mut() = m;
                        gp.topics_version.set(u64::MAX);
                        gp.loading.set(false);
                        gp.timer.ring();
                        tracing::info!(partition = gp.index, "group coordinator loaded from its log");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(partition = gp.index, error = %e, "rebuilding group coordinator failed; retrying")
                    }
                }
            }
        })
        .detach();
    }
}

/// Wakes the coordinator at its next deadline (session and rebalance
/// timeouts, offset expiry) and feeds it a tick.
async fn run_timer(gp: Rc<GroupPartition>) {
    loop {
        if gp.stale() {
            return;
        }
        if gp.loading.get() {
            // A machine not loaded yet has no deadlines worth keeping.
            let sleep = async {
                glommio::timer::sleep(Duration::from_millis(RELOAD_BACKOFF_MS)).await;
            };
            sleep.or(gp.timer.wait()).await;
            continue;
        }
        let now = now_ms();
        let deadline = gp.machine.borrow().next_deadline_ms();
        let wait_ms = deadline.map_or(TIMER_SLEEP_MAX_MS, |d| {
            d.saturating_sub(now).clamp(0, TIMER_SLEEP_MAX_MS)
        });
        if wait_ms > 0 {
            let sleep = async {
                glommio::timer::sleep(Duration::from_millis(wait_ms as u64)).await;
            };
            sleep.or(gp.timer.wait()).await;
            continue;
        }
        let outputs = gp.machine.borrow_mut().step(now_ms(), Input::Tick);
        gp.perform(outputs);
        if gp
            .machine
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now)
        {
            // A deadline the tick did not clear must not spin the shard.
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}
