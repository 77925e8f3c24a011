//! The transaction coordinator of one `__transaction_state` partition.
//!
//! Each transactional id has its metadata (`Meta`): the state as of its
//! last acknowledged transition (`cur`), and at most one pending
//! transition (`Pending`: the value written to the log and what to do once
//! it is durable). While markers are being written for a prepared
//! transaction (`Markers`), the id also counts as busy, as in Kafka, where
//! `prepareComplete` sets the pending state to CompleteCommit/CompleteAbort
//! for the whole time the markers are out.

use std::collections::{BTreeMap, BTreeSet};

use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

use super::records::{TxnLogRecord, TxnState, TxnValue};
use super::*;
use crate::codes;

/// What a request whose transition could not be appended is answered:
/// COORDINATOR_NOT_AVAILABLE, as Kafka answers when the state-log append
/// fails with NOT_ENOUGH_REPLICAS or REQUEST_TIMED_OUT. Clients look the
/// coordinator up again and retry. (Kafka keeps the pending state after
/// such a failure and rolls back only on NOT_COORDINATOR; this machine
/// always rolls back, so the retry is not refused with
/// CONCURRENT_TRANSACTIONS until leadership moves.)
pub const APPEND_FAILED_ERROR: i16 = codes::COORDINATOR_NOT_AVAILABLE;

/// How long a marker write that failed with a retriable error waits before
/// it is sent again (Kafka resends on its next marker-channel round, every
/// `retry.backoff.ms` or so); also the wait before a failed
/// CompleteCommit/CompleteAbort append is tried again. Forever, as Kafka.
pub const MARKER_RETRY_BACKOFF_MS: i64 = 300;

/// Kafka's `transaction.remove.expired.transaction.cleanup.interval.ms`
/// default.
pub const REMOVE_EXPIRED_CHECK_INTERVAL_MS: i64 = 3_600_000;

/// What InitProducerId for a new transactional id is answered while the
/// coordinator holds `transactional_ids_max` ids. Kafka has no bound and
/// so no code; POLICY_VIOLATION is not retriable, so the Java producer
/// fails `initTransactions()` with it ("Unexpected error in
/// InitProducerIdResponse") instead of retrying forever, and it names the
/// right kind of thing: a configured limit.
pub const TRANSACTIONAL_IDS_FULL: i16 = codes::POLICY_VIOLATION;

/// What every partition of an AddPartitions that would take the
/// transaction past `partitions_per_txn_max` is answered (nothing is
/// added): POLICY_VIOLATION, for the reasons of [`TRANSACTIONAL_IDS_FULL`].
pub const TXN_PARTITIONS_FULL: i16 = codes::POLICY_VIOLATION;

const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionMetadata.isEpochExhausted`.
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The persisted fields of an id (Kafka's `TxnTransitMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    producer_id: i64,
    last_producer_id: i64,
    producer_epoch: i16,
    last_producer_epoch: i16,
    timeout_ms: i32,
    state: TxnState,
    partitions: BTreeSet<TopicPartition>,
    start_ms: i64,
    update_ms: i64,
}

impl Fields {
    fn value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            last_producer_id: self.last_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: TxnValue::group_partitions(&self.partitions),
            start_ms: self.start_ms,
            update_ms: self.update_ms,
        }
    }

    fn from_value(v: &TxnValue) -> Fields {
        Fields {
            producer_id: v.producer_id,
            last_producer_id: v.last_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: v.last_producer_epoch,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v.topic_partitions().into_iter().collect(),
            start_ms: v.start_ms,
            update_ms: v.update_ms,
        }
    }
}

/// Who asked for a PrepareCommit/PrepareAbort, so who is answered once it
/// is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndBy {
    /// EndTxn: answered NONE.
    Client(ReplyId),
    /// InitProducerId on an ongoing transaction: the transaction is
    /// aborted with a bumped epoch and the request answered
    /// CONCURRENT_TRANSACTIONS, so the client retries (Kafka's
    /// `sendRetriableErrorCallback`).
    InitFence(ReplyId),
    /// The transaction timed out (Kafka's `abortTimedOutTransactions`).
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    Init(ReplyId),
    Add(ReplyId, Vec<TopicPartition>),
    End { by: EndBy, fence: bool },
    Complete,
    Expire,
}

#[derive(Debug, Clone)]
struct Pending {
    write: WriteId,
    /// None: a tombstone (the id expires).
    target: Option<Fields>,
    effect: Effect,
}

/// Markers out for a prepared transaction.
#[derive(Debug, Clone, Default)]
struct Markers {
    in_flight: BTreeMap<MarkerWriteId, BTreeSet<TopicPartition>>,
    to_retry: BTreeSet<TopicPartition>,
    retry_at: Option<i64>,
    /// All markers are written but the CompleteX append failed: try again.
    complete_retry_at: Option<i64>,
    /// A partition answered TRANSACTION_COORDINATOR_FENCED or
    /// INVALID_PRODUCER_EPOCH: a newer coordinator owns this transaction.
    /// As Kafka (`TransactionMarkerRequestCompletionHandler`), this one
    /// stops sending and never completes it; the id stays busy until the
    /// server replaces this machine.
    abandoned: bool,
}

#[derive(Debug, Clone)]
struct Meta {
    cur: Fields,
    /// Whether `cur` (or an earlier value) is in the log: false for an id
    /// whose first InitProducerId is still being written.
    in_log: bool,
    pending: Option<Pending>,
    /// Kafka's `hasFailedEpochFence`: an epoch fence whose append failed
    /// keeps its bumped epoch in memory (so the fenced producer stays
    /// fenced), and the next fence does not bump again.
    failed_epoch_fence: bool,
    markers: Option<Markers>,
}

impl Meta {
    /// Kafka's `pendingTransitionInProgress`, counting markers out as the
    /// pending CompleteCommit/CompleteAbort they are in Kafka.
    fn busy(&self) -> bool {
        self.pending.is_some() || self.markers.is_some()
    }

    /// Whether the previous transaction is being completed: decided
    /// (PrepareCommit/PrepareAbort) with its markers not all written, or
    /// its CompleteX not yet durable. A held AddPartitionsToTxn waits for
    /// this to end.
    fn completing(&self) -> bool {
        self.markers.is_some()
            || matches!(
                self.cur.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            )
    }

    fn pid(&self) -> ProducerId {
        ProducerId(self.cur.producer_id)
    }

    fn epoch(&self) -> ProducerEpoch {
        ProducerEpoch(self.cur.producer_epoch)
    }
}

/// The longest an AddPartitionsToTxn waits inside the coordinator for the
/// producer's previous transaction to complete (its markers written and
/// CompleteCommit/CompleteAbort durable) before it is answered
/// CONCURRENT_TRANSACTIONS as Kafka answers it at once.
///
/// Why wait at all: a producer that commits and begins its next transaction
/// at once finds the markers still being written, and clients then back off
/// 20 ms before they retry (Kafka's producer and librdkafka alike). The
/// markers take about a millisecond here, so every transaction cost a
/// 20 ms pause: measured with the load generator's transactional producers,
/// 60 to 90 transactions per second per producer whatever their size
/// (`perf-reports/2026-12-07-issue19-transactions/`). Held here, the request
/// is answered as soon as the previous transaction completes. The bound
/// keeps a request from waiting on markers that cannot be written (a
/// partition without a leader): then the client's own retry goes on as
/// in Kafka.
pub const ADD_PARTITIONS_WAIT_MAX_MS: i64 = 200;

/// The most AddPartitionsToTxn requests of one transactional id held at
/// once (a named bound; more are answered CONCURRENT_TRANSACTIONS at once).
pub const ADD_PARTITIONS_HELD_PER_ID_MAX: usize = 8;

/// An AddPartitionsToTxn held until the previous transaction completes.
#[derive(Debug, Clone)]
struct HeldAdd {
    reply: ReplyId,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    partitions: Vec<TopicPartition>,
    until_ms: i64,
}

pub struct TransactionCoordinator {
    config: TxnConfig,
    /// AddPartitionsToTxn requests waiting for their id's previous
    /// transaction to complete (see [`ADD_PARTITIONS_WAIT_MAX_MS`]).
    held_adds: BTreeMap<String, Vec<HeldAdd>>,
    coordinator_epoch: i32,
    txns: BTreeMap<String, Meta>,
    /// Ids whose pending transition each outstanding append carries.
    writes: BTreeMap<WriteId, Vec<String>>,
    marker_writes: BTreeMap<MarkerWriteId, String>,
    next_write: u64,
    next_marker: u64,
    loaded: bool,
    next_abort_check_ms: i64,
    next_expire_check_ms: i64,
    bytes_since_snapshot: u64,
    snapshot_in_flight: Option<WriteId>,
    // What the current step has produced.
    now_ms: i64,
    step_write: Option<WriteId>,
    step_records: Vec<TxnLogRecord>,
    out: Vec<TxnOutput>,
}

impl TransactionCoordinator {
    /// A coordinator with no transactional ids. `coordinator_epoch` is the
    /// state-log partition's leader epoch; markers carry it.
    pub fn new(config: TxnConfig, coordinator_epoch: i32) -> Self {
        TransactionCoordinator {
            config,
            held_adds: BTreeMap::new(),
            coordinator_epoch,
            txns: BTreeMap::new(),
            writes: BTreeMap::new(),
            marker_writes: BTreeMap::new(),
            next_write: 0,
            next_marker: 0,
            loaded: false,
            next_abort_check_ms: i64::MAX,
            next_expire_check_ms: i64::MAX,
            bytes_since_snapshot: 0,
            snapshot_in_flight: None,
            now_ms: 0,
            step_write: None,
            step_records: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// How many transactional ids this coordinator holds.
    pub fn transactional_id_count(&self) -> usize {
        self.txns.len()
    }

    /// Applies one record read back from the log, in log order, before
    /// [`Self::finish_load`]. A later record for an id replaces an earlier
    /// one; a tombstone removes it.
    pub fn load(&mut self, record: TxnLogRecord) {
        self.bytes_since_snapshot += record.approx_bytes() as u64;
        match record.value {
            // Kafka never writes a Dead value (expiration writes a
            // tombstone); should one appear, the id is gone all the same.
            Some(v) if v.state != TxnState::Dead => {
                let mut cur = Fields::from_value(&v);
                // This machine never writes PrepareEpochFence (as Kafka, the
                // fence goes to the log as PrepareAbort with the bumped
                // epoch); one read back is resumed as that abort.
                if cur.state == TxnState::PrepareEpochFence {
                    cur.state = TxnState::PrepareAbort;
                }
                self.txns.insert(
                    record.transactional_id,
                    Meta {
                        cur,
                        in_log: true,
                        pending: None,
                        failed_epoch_fence: false,
                        markers: None,
                    },
                );
            }
            _ => {
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    /// Ends the load: requests are served from now on, and transactions
    /// read back in PrepareCommit/PrepareAbort have their markers written
    /// again (Kafka's `loadTransactionsForTxnTopicPartition` resending
    /// markers of prepared transactions), then complete.
    pub fn finish_load(&mut self, now_ms: i64) -> Vec<TxnOutput> {
        self.now_ms = now_ms;
        self.loaded = true;
        self.next_abort_check_ms = now_ms + self.config.abort_timed_out_check_interval_ms;
        self.next_expire_check_ms = now_ms + self.config.remove_expired_check_interval_ms;
        let prepared: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                matches!(
                    m.cur.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                )
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in prepared {
            self.start_markers(&id);
        }
        self.finish_step()
    }

    /// Handles one input at time `now_ms` and returns what to do.
    pub fn step(&mut self, now_ms: i64, input: TxnInput) -> Vec<TxnOutput> {
        self.now_ms = now_ms;
        match input {
            TxnInput::Request(reply, request) => self.handle(reply, *request),
            TxnInput::AppendDone(write) => self.append_done(write),
            TxnInput::AppendFailed(write) => self.append_failed(write),
            TxnInput::MarkersDone(id, results) => self.markers_done(id, results),
            TxnInput::Tick => self.tick(),
        }
        self.finish_step()
    }

    /// The earliest time at which [`TxnInput::Tick`] has something to do.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        if !self.loaded {
            return None;
        }
        let mut d: Option<i64> = None;
        let mut at = |t: i64| d = Some(d.map_or(t, |d| d.min(t)));
        let mut ongoing = false;
        let mut idle = false;
        for m in self.txns.values() {
            match m.cur.state {
                TxnState::Ongoing => ongoing = true,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => idle = true,
                _ => {}
            }
            if let Some(mk) = &m.markers {
                if mk.abandoned {
                    continue;
                }
                if let Some(t) = mk.retry_at {
                    at(t);
                }
                if let Some(t) = mk.complete_retry_at {
                    at(t);
                }
            }
        }
        if ongoing {
            at(self.next_abort_check_ms);
        }
        for held in self.held_adds.values().flatten() {
            at(held.until_ms);
        }
        if idle {
            at(self.next_expire_check_ms);
        }
        d
    }

    /// Every reply the coordinator still owes (requests whose transition is
    /// being appended). The server answers them NOT_COORDINATOR when the
    /// log was lost or leadership moved, and drops this machine: pending
    /// transitions are abandoned here and the next coordinator rebuilds
    /// from the log.
    pub fn fail_pending(&mut self) -> Vec<ReplyId> {
        let mut ids: Vec<ReplyId> = std::mem::take(&mut self.held_adds)
            .into_values()
            .flatten()
            .map(|h| h.reply)
            .collect();
        let mut unlogged = Vec::new();
        for (id, m) in self.txns.iter_mut() {
            if let Some(p) = m.pending.take() {
                match p.effect {
                    Effect::Init(r) | Effect::Add(r, _) => ids.push(r),
                    Effect::End {
                        by: EndBy::Client(r) | EndBy::InitFence(r),
                        ..
                    } => ids.push(r),
                    _ => {}
                }
            }
            if !m.in_log {
                unlogged.push(id.clone());
            }
        }
        for id in unlogged {
            self.txns.remove(&id);
        }
        self.writes.clear();
        self.marker_writes.clear();
        self.snapshot_in_flight = None;
        ids.sort();
        ids
    }

    /// Every live record: for each id, the value last written for it
    /// (pending or durable). A compacting snapshot holds exactly these.
    pub fn live_records(&self) -> Vec<TxnLogRecord> {
        let mut out = Vec::new();
        for (id, m) in &self.txns {
            let fields = match &m.pending {
                Some(p) => p.target.as_ref(),
                None if m.in_log => Some(&m.cur),
                None => None,
            };
            if let Some(f) = fields {
                out.push(TxnLogRecord {
                    transactional_id: id.clone(),
                    value: Some(f.value()),
                });
            }
        }
        out
    }

    // ----------------------------------------------------------- plumbing --

    fn reply(&mut self, to: ReplyId, response: TxnResponse) {
        self.out.push(TxnOutput::Reply(to, response));
    }

    /// Starts a transition of `id` to `target` (None: a tombstone): the
    /// record goes into this step's append, and `effect` happens once it
    /// is durable.
    fn pend(&mut self, id: &str, target: Option<Fields>, effect: Effect) {
        let write = match self.step_write {
            Some(w) => w,
            None => {
                let w = self.new_write();
                self.step_write = Some(w);
                w
            }
        };
        self.step_records.push(TxnLogRecord {
            transactional_id: id.to_string(),
            value: target.as_ref().map(Fields::value),
        });
        self.writes.entry(write).or_default().push(id.to_string());
        let m = self.txns.get_mut(id).expect("pending on a known id");
        debug_assert!(m.pending.is_none(), "one pending transition per id");
        m.pending = Some(Pending {
            write,
            target,
            effect,
        });
    }

    fn new_write(&mut self) -> WriteId {
        self.next_write += 1;
        WriteId(self.next_write)
    }

    fn finish_step(&mut self) -> Vec<TxnOutput> {
        self.release_held_adds();
        let mut out = std::mem::take(&mut self.out);
        let records = std::mem::take(&mut self.step_records);
        if let Some(write) = self.step_write.take() {
            self.bytes_since_snapshot +=
                records.iter().map(|r| r.approx_bytes() as u64).sum::<u64>();
            out.push(TxnOutput::Append {
                write,
                records,
                compacts: false,
            });
            if self.wants_snapshot() {
                // Taken after this step's records, with every pending
                // transition as it will be once durable; see live_records.
                let write = self.new_write();
                self.snapshot_in_flight = Some(write);
                self.bytes_since_snapshot = 0;
                out.push(TxnOutput::Append {
                    write,
                    records: self.live_records(),
                    compacts: true,
                });
            }
        }
        out
    }

    /// Serves the held AddPartitionsToTxn requests whose id's previous
    /// transaction completed (or whose id is gone) as if they arrived now,
    /// and answers CONCURRENT_TRANSACTIONS to those past their deadline.
    fn release_held_adds(&mut self) {
        if self.held_adds.is_empty() {
            return;
        }
        let ready: Vec<String> = self
            .held_adds
            .iter()
            .filter(|(id, held)| {
                let completing = self.txns.get(*id).is_some_and(Meta::completing);
                !completing || held.iter().any(|h| h.until_ms <= self.now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            let Some(held) = self.held_adds.remove(&id) else {
                continue;
            };
            let completing = self.txns.get(&id).is_some_and(Meta::completing);
            let mut still = Vec::new();
            for h in held {
                if !completing {
                    self.add_partitions(
                        h.reply,
                        &id,
                        h.producer_id,
                        h.producer_epoch,
                        h.partitions,
                    );
                } else if h.until_ms <= self.now_ms {
                    let results = h
                        .partitions
                        .iter()
                        .map(|tp| (tp.clone(), codes::CONCURRENT_TRANSACTIONS))
                        .collect();
                    self.reply(h.reply, TxnResponse::AddPartitions { results });
                } else {
                    still.push(h);
                }
            }
            if !still.is_empty() {
                self.held_adds.entry(id).or_default().extend(still);
            }
        }
    }

    fn wants_snapshot(&self) -> bool {
        if self.snapshot_in_flight.is_some() {
            return false;
        }
        let live = self.txns.len() as u64 * 256;
        self.bytes_since_snapshot > self.config.snapshot_min_bytes.max(4 * live)
    }

    // --------------------------------------------------------- completions --

    fn append_done(&mut self, write: WriteId) {
        if self.snapshot_in_flight == Some(write) {
            self.snapshot_in_flight = None;
        }
        let Some(ids) = self.writes.remove(&write) else {
            return;
        };
        for id in ids {
            let Some(m) = self.txns.get_mut(&id) else {
                continue;
            };
            let Some(p) = m.pending.take_if(|p| p.write == write) else {
                continue;
            };
            let Some(target) = p.target else {
                // The tombstone is durable: the id is gone (Kafka's
                // removal of expired ids once `Dead` is written).
                self.txns.remove(&id);
                continue;
            };
            m.cur = target;
            m.in_log = true;
            match p.effect {
                Effect::Init(r) => {
                    let (pid, epoch) = (m.pid(), m.epoch());
                    self.reply(
                        r,
                        TxnResponse::InitProducerId {
                            error: codes::NONE,
                            producer_id: pid,
                            producer_epoch: epoch,
                        },
                    );
                }
                Effect::Add(r, parts) => {
                    let results = parts.into_iter().map(|tp| (tp, codes::NONE)).collect();
                    self.reply(r, TxnResponse::AddPartitions { results });
                }
                Effect::End { by, .. } => {
                    // Kafka's prepareComplete clears a failed epoch fence
                    // once a prepare is durable.
                    m.failed_epoch_fence = false;
                    match by {
                        EndBy::Client(r) => {
                            self.reply(r, TxnResponse::EndTxn { error: codes::NONE })
                        }
                        EndBy::InitFence(r) => {
                            self.reply(r, init_error(codes::CONCURRENT_TRANSACTIONS))
                        }
                        EndBy::Timeout => {}
                    }
                    self.start_markers(&id);
                }
                Effect::Complete => {
                    m.markers = None;
                }
                Effect::Expire => {}
            }
        }
    }

    fn append_failed(&mut self, write: WriteId) {
        if self.snapshot_in_flight == Some(write) {
            self.snapshot_in_flight = None;
        }
        let Some(ids) = self.writes.remove(&write) else {
            return;
        };
        for id in ids {
            let Some(m) = self.txns.get_mut(&id) else {
                continue;
            };
            let Some(p) = m.pending.take_if(|p| p.write == write) else {
                continue;
            };
            tracing::debug!(transactional_id = %id, ?p.effect, "transaction log append failed; transition rolled back");
            match p.effect {
                Effect::Init(r) => {
                    if !m.in_log {
                        // A new id whose first record never made it: as if
                        // it had never been asked for.
                        self.txns.remove(&id);
                    }
                    self.reply(r, init_error(APPEND_FAILED_ERROR));
                }
                Effect::Add(r, parts) => {
                    let results = parts
                        .into_iter()
                        .map(|tp| (tp, APPEND_FAILED_ERROR))
                        .collect();
                    self.reply(r, TxnResponse::AddPartitions { results });
                }
                Effect::End { by, fence } => {
                    if fence {
                        // The bumped epoch stays in `cur` (Kafka's
                        // hasFailedEpochFence).
                        m.failed_epoch_fence = true;
                    }
                    match by {
                        EndBy::Client(r) => self.reply(
                            r,
                            TxnResponse::EndTxn {
                                error: APPEND_FAILED_ERROR,
                            },
                        ),
                        EndBy::InitFence(r) => self.reply(r, init_error(APPEND_FAILED_ERROR)),
                        EndBy::Timeout => {}
                    }
                }
                Effect::Complete => {
                    // Kafka retries the CompleteX append
                    // (TransactionMarkerChannelManager's txnLogAppendRetryQueue).
                    let now = self.now_ms;
                    if let Some(mk) = m.markers.as_mut() {
                        mk.complete_retry_at = Some(now + MARKER_RETRY_BACKOFF_MS);
                    }
                }
                Effect::Expire => {}
            }
        }
    }

    /// Sends the markers of a transaction whose PrepareCommit/PrepareAbort
    /// is durable, or completes it at once if it has no partitions.
    fn start_markers(&mut self, id: &str) {
        let Some(m) = self.txns.get_mut(id) else {
            return;
        };
        let parts: BTreeSet<TopicPartition> = m.cur.partitions.clone();
        m.markers = Some(Markers::default());
        if parts.is_empty() {
            self.complete(id);
        } else {
            self.send_markers(id, parts);
        }
    }

    fn send_markers(&mut self, id: &str, parts: BTreeSet<TopicPartition>) {
        self.next_marker += 1;
        let mid = MarkerWriteId(self.next_marker);
        let m = self.txns.get_mut(id).expect("markers for a known id");
        let commit = m.cur.state == TxnState::PrepareCommit;
        let (pid, epoch) = (m.pid(), m.epoch());
        let mk = m.markers.as_mut().expect("markers started");
        mk.in_flight.insert(mid, parts.clone());
        self.marker_writes.insert(mid, id.to_string());
        self.out.push(TxnOutput::WriteMarkers {
            id: mid,
            transactional_id: id.to_string(),
            producer_id: pid,
            producer_epoch: epoch,
            coordinator_epoch: self.coordinator_epoch,
            commit,
            partitions: parts.into_iter().collect(),
        });
    }

    /// Every marker is written: CompleteCommit/CompleteAbort goes to the
    /// log (Kafka's `prepareComplete`: the partitions are cleared).
    fn complete(&mut self, id: &str) {
        let now = self.now_ms;
        let Some(m) = self.txns.get_mut(id) else {
            return;
        };
        if let Some(mk) = m.markers.as_mut() {
            mk.complete_retry_at = None;
        }
        let mut target = m.cur.clone();
        target.state = match m.cur.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        target.partitions.clear();
        target.update_ms = now;
        self.pend(id, Some(target), Effect::Complete);
    }

    fn markers_done(&mut self, mid: MarkerWriteId, results: Vec<(TopicPartition, i16)>) {
        let Some(id) = self.marker_writes.remove(&mid) else {
            return;
        };
        let now = self.now_ms;
        let Some(m) = self.txns.get_mut(&id) else {
            return;
        };
        let Some(mk) = m.markers.as_mut() else {
            return;
        };
        let Some(parts) = mk.in_flight.remove(&mid) else {
            return;
        };
        for tp in parts {
            let code = results
                .iter()
                .find(|(p, _)| *p == tp)
                .map_or(codes::REQUEST_TIMED_OUT, |(_, c)| *c);
            match marker_outcome(code) {
                MarkerOutcome::Done => {}
                MarkerOutcome::Fenced => {
                    tracing::warn!(transactional_id = %id, partition = %tp, code,
                        "a newer coordinator owns this transaction; its markers are no longer sent from here");
                    mk.abandoned = true;
                }
                MarkerOutcome::Retry => {
                    mk.to_retry.insert(tp);
                }
            }
        }
        if mk.abandoned {
            mk.to_retry.clear();
            mk.retry_at = None;
            return;
        }
        if !mk.to_retry.is_empty() && mk.retry_at.is_none() {
            mk.retry_at = Some(now + MARKER_RETRY_BACKOFF_MS);
        }
        if mk.in_flight.is_empty() && mk.to_retry.is_empty() && m.pending.is_none() {
            self.complete(&id);
        }
    }

    // ------------------------------------------------------------- time --

    fn tick(&mut self) {
        if !self.loaded {
            return;
        }
        let now = self.now_ms;
        // Marker retries and CompleteX retries.
        let mut resend: Vec<(String, BTreeSet<TopicPartition>)> = Vec::new();
        let mut recomplete: Vec<String> = Vec::new();
        for (id, m) in self.txns.iter_mut() {
            let pending = m.pending.is_some();
            let Some(mk) = m.markers.as_mut() else {
                continue;
            };
            if mk.abandoned {
                continue;
            }
            if mk.retry_at.is_some_and(|t| t <= now) {
                mk.retry_at = None;
                resend.push((id.clone(), std::mem::take(&mut mk.to_retry)));
            }
            if !pending && mk.complete_retry_at.is_some_and(|t| t <= now) {
                recomplete.push(id.clone());
            }
        }
        for (id, parts) in resend {
            if !parts.is_empty() {
                self.send_markers(&id, parts);
            }
        }
        for id in recomplete {
            self.complete(&id);
        }
        if now >= self.next_abort_check_ms {
            self.next_abort_check_ms = now + self.config.abort_timed_out_check_interval_ms;
            self.abort_timed_out();
        }
        if now >= self.next_expire_check_ms {
            self.next_expire_check_ms = now + self.config.remove_expired_check_interval_ms;
            self.expire();
        }
    }

    /// Kafka's `abortTimedOutTransactions`: an Ongoing transaction with no
    /// pending transition whose start + timeout is past is aborted with a
    /// bumped epoch, so the producer that started it is fenced.
    fn abort_timed_out(&mut self) {
        let now = self.now_ms;
        let due: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                m.cur.state == TxnState::Ongoing
                    && !m.busy()
                    && m.cur.start_ms.saturating_add(m.cur.timeout_ms as i64) < now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            tracing::info!(transactional_id = %id, "aborting a timed-out transaction");
            self.fence_and_abort(&id, EndBy::Timeout);
        }
    }

    /// Kafka's `prepareFenceProducerEpoch` followed by `endTransaction(ABORT,
    /// isFromClient = false)`: the epoch is bumped in memory at once (unless
    /// an earlier fence failed to be written, which bumped it already) and
    /// the last epoch forgotten, then PrepareAbort with that epoch is
    /// appended. PrepareEpochFence itself is never written.
    fn fence_and_abort(&mut self, id: &str, by: EndBy) {
        let now = self.now_ms;
        let m = self.txns.get_mut(id).expect("fencing a known id");
        if !m.failed_epoch_fence {
            debug_assert!(
                m.cur.producer_epoch < i16::MAX,
                "a client never holds i16::MAX"
            );
            m.cur.producer_epoch = m.cur.producer_epoch.saturating_add(1);
        }
        m.cur.last_producer_epoch = NO_PRODUCER_EPOCH;
        let mut target = m.cur.clone();
        target.state = TxnState::PrepareAbort;
        target.update_ms = now;
        self.pend(id, Some(target), Effect::End { by, fence: true });
    }

    /// Kafka's `removeExpiredTransactionalIds`: an id in Empty,
    /// CompleteCommit or CompleteAbort not updated for
    /// `transactional.id.expiration.ms` gets a tombstone.
    fn expire(&mut self) {
        let horizon = self
            .now_ms
            .saturating_sub(self.config.transactional_id_expiration_ms);
        let due: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                matches!(
                    m.cur.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && !m.busy()
                    && m.in_log
                    && m.cur.update_ms <= horizon
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.pend(&id, None, Effect::Expire);
        }
    }

    // ------------------------------------------------------------ requests --

    fn handle(&mut self, reply: ReplyId, request: TxnRequest) {
        if !self.loaded {
            let code = codes::COORDINATOR_LOAD_IN_PROGRESS;
            let response = refusal(&request, code);
            self.reply(reply, response);
            return;
        }
        match request {
            TxnRequest::InitProducerId {
                transactional_id,
                transaction_timeout_ms,
                expected,
                fresh_producer_id,
            } => self.init_producer_id(
                reply,
                &transactional_id,
                transaction_timeout_ms,
                expected,
                fresh_producer_id,
            ),
            TxnRequest::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            } => self.add_partitions(
                reply,
                &transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            ),
            TxnRequest::VerifyPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            } => {
                let results = self.verify_partitions(
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions,
                );
                self.reply(reply, TxnResponse::VerifyPartitions { results });
            }
            TxnRequest::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
            } => self.end_txn(
                reply,
                &transactional_id,
                producer_id,
                producer_epoch,
                commit,
            ),
            TxnRequest::Describe { transactional_ids } => {
                let states = transactional_ids
                    .iter()
                    .map(|id| self.describe(id))
                    .collect();
                self.reply(reply, TxnResponse::Describe { states });
            }
            TxnRequest::List {
                states,
                producer_ids,
                duration_ms,
            } => {
                let response = self.list(&states, &producer_ids, duration_ms);
                self.reply(reply, response);
            }
        }
    }

    /// Kafka's `handleInitProducerId` and `prepareInitProducerIdTransit`.
    fn init_producer_id(
        &mut self,
        reply: ReplyId,
        id: &str,
        timeout_ms: i32,
        expected: Option<(ProducerId, ProducerEpoch)>,
        fresh: ProducerId,
    ) {
        if id.is_empty() {
            return self.reply(reply, init_error(codes::INVALID_REQUEST));
        }
        // isValidTransactionTimeoutMs
        if timeout_ms <= 0 || timeout_ms > self.config.transaction_max_timeout_ms {
            return self.reply(reply, init_error(codes::INVALID_TRANSACTION_TIMEOUT));
        }
        let now = self.now_ms;
        if !self.txns.contains_key(id) {
            if self.txns.len() >= self.config.transactional_ids_max {
                return self.reply(reply, init_error(TRANSACTIONAL_IDS_FULL));
            }
            // Kafka creates the metadata with the fresh id and no epoch, then
            // bumps it to 0 below.
            self.txns.insert(
                id.to_string(),
                Meta {
                    cur: Fields {
                        producer_id: fresh.0,
                        last_producer_id: NO_PRODUCER_ID,
                        producer_epoch: NO_PRODUCER_EPOCH,
                        last_producer_epoch: NO_PRODUCER_EPOCH,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        start_ms: -1,
                        update_ms: now,
                    },
                    in_log: false,
                    pending: None,
                    failed_epoch_fence: false,
                    markers: None,
                },
            );
        }
        let m = &self.txns[id];
        if m.busy() {
            return self.reply(reply, init_error(codes::CONCURRENT_TRANSACTIONS));
        }
        // isValidProducerId: the id was just created (no epoch), or the
        // expected producer id is the current one (its epoch is checked
        // below), or it is the one before a rotation and its epoch was
        // exhausted (a retry of the rotation).
        if let Some((pid, epoch)) = expected {
            let valid = m.cur.producer_epoch == NO_PRODUCER_EPOCH
                || pid.0 == m.cur.producer_id
                || (pid.0 == m.cur.last_producer_id && epoch_exhausted(epoch.0));
            if !valid {
                return self.reply(reply, init_error(codes::PRODUCER_FENCED));
            }
        }
        match m.cur.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                self.reply(reply, init_error(codes::CONCURRENT_TRANSACTIONS))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let cur = &m.cur;
                let mut target = cur.clone();
                target.state = TxnState::Empty;
                target.timeout_ms = timeout_ms;
                target.partitions.clear();
                target.start_ms = -1;
                target.update_ms = now;
                if epoch_exhausted(cur.producer_epoch)
                    && expected.is_none_or(|(_, e)| e.0 == cur.producer_epoch)
                {
                    // prepareProducerIdRotation
                    target.producer_id = fresh.0;
                    target.last_producer_id = cur.producer_id;
                    target.producer_epoch = 0;
                    target.last_producer_epoch = if expected.is_some() {
                        cur.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    // prepareIncrementProducerEpoch
                    let bumped = cur.producer_epoch + 1;
                    let (epoch, last) = match expected {
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some((_, e))
                            if cur.producer_epoch == NO_PRODUCER_EPOCH
                                || e.0 == cur.producer_epoch =>
                        {
                            (bumped, cur.producer_epoch)
                        }
                        // A retry of a bump whose answer was lost: the
                        // current epoch again, not bumped.
                        Some((_, e)) if e.0 == cur.last_producer_epoch => {
                            (cur.producer_epoch, cur.last_producer_epoch)
                        }
                        Some(_) => {
                            return self.reply(reply, init_error(codes::PRODUCER_FENCED));
                        }
                    };
                    target.producer_epoch = epoch;
                    target.last_producer_epoch = last;
                }
                self.pend(id, Some(target), Effect::Init(reply));
            }
            TxnState::Ongoing => {
                // Abort the ongoing transaction with a bumped epoch (never
                // returned to anyone) and answer CONCURRENT_TRANSACTIONS;
                // the client's retry bumps the epoch once more (or rotates
                // the producer id if the fence exhausted the epochs).
                self.fence_and_abort(id, EndBy::InitFence(reply));
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                // Never a current state here (Kafka: fatal).
                self.reply(reply, init_error(codes::CONCURRENT_TRANSACTIONS))
            }
        }
    }

    /// Kafka's `handleAddPartitionsToTransaction` (not verify-only).
    fn add_partitions(
        &mut self,
        reply: ReplyId,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        partitions: Vec<TopicPartition>,
    ) {
        let all = |code: i16, parts: &[TopicPartition]| TxnResponse::AddPartitions {
            results: parts.iter().map(|tp| (tp.clone(), code)).collect(),
        };
        if id.is_empty() {
            return self.reply(reply, all(codes::INVALID_REQUEST, &partitions));
        }
        if partitions.is_empty() {
            return self.reply(reply, all(codes::NONE, &partitions));
        }
        let Some(m) = self.txns.get(id) else {
            return self.reply(reply, all(codes::INVALID_PRODUCER_ID_MAPPING, &partitions));
        };
        let code = if m.pid() != pid {
            codes::INVALID_PRODUCER_ID_MAPPING
        } else if m.epoch() != epoch {
            codes::PRODUCER_FENCED
        } else if m.busy()
            || matches!(
                m.cur.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        {
            let completing = m.completing();
            let held = self.held_adds.entry(id.to_string()).or_default();
            if completing && held.len() < ADD_PARTITIONS_HELD_PER_ID_MAX {
                // Answered when the previous transaction completes
                // (`release_held_adds`), or at the deadline.
                held.push(HeldAdd {
                    reply,
                    producer_id: pid,
                    producer_epoch: epoch,
                    partitions,
                    until_ms: self.now_ms + ADD_PARTITIONS_WAIT_MAX_MS,
                });
                return;
            }
            if held.is_empty() {
                self.held_adds.remove(id);
            }
            codes::CONCURRENT_TRANSACTIONS
        } else if m.cur.state == TxnState::Ongoing
            && partitions.iter().all(|tp| m.cur.partitions.contains(tp))
        {
            // Kafka answers at once when nothing is new.
            return self.reply(reply, all(codes::NONE, &partitions));
        } else {
            let new = partitions
                .iter()
                .filter(|tp| !m.cur.partitions.contains(tp))
                .collect::<BTreeSet<_>>()
                .len();
            if m.cur.partitions.len() + new > self.config.partitions_per_txn_max {
                TXN_PARTITIONS_FULL
            } else {
                codes::NONE
            }
        };
        if code != codes::NONE {
            return self.reply(reply, all(code, &partitions));
        }
        // prepareAddPartitions
        let mut target = m.cur.clone();
        if matches!(
            m.cur.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) {
            target.start_ms = self.now_ms;
        }
        target.state = TxnState::Ongoing;
        target.partitions.extend(partitions.iter().cloned());
        target.update_ms = self.now_ms;
        self.pend(id, Some(target), Effect::Add(reply, partitions));
    }

    /// Kafka's `handleVerifyPartitionsInTransaction`: the durable state
    /// answers; a pending transition is not looked at.
    fn verify_partitions(
        &self,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, i16)> {
        let code = if id.is_empty() {
            Some(codes::INVALID_REQUEST)
        } else {
            match self.txns.get(id) {
                None => Some(codes::INVALID_PRODUCER_ID_MAPPING),
                Some(m) if m.pid() != pid => Some(codes::INVALID_PRODUCER_ID_MAPPING),
                Some(m) if m.epoch() != epoch => Some(codes::PRODUCER_FENCED),
                Some(m)
                    if matches!(
                        m.cur.state,
                        TxnState::PrepareCommit | TxnState::PrepareAbort
                    ) =>
                {
                    Some(codes::CONCURRENT_TRANSACTIONS)
                }
                Some(_) => None,
            }
        };
        let m = self.txns.get(id);
        partitions
            .into_iter()
            .map(|tp| {
                let c = code.unwrap_or_else(|| {
                    if m.is_some_and(|m| m.cur.partitions.contains(&tp)) {
                        codes::NONE
                    } else {
                        codes::INVALID_TXN_STATE
                    }
                });
                (tp, c)
            })
            .collect()
    }

    /// Kafka's `endTransaction` with `isFromClient = true`.
    fn end_txn(
        &mut self,
        reply: ReplyId,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        commit: bool,
    ) {
        let code = |c: i16| TxnResponse::EndTxn { error: c };
        if id.is_empty() {
            return self.reply(reply, code(codes::INVALID_REQUEST));
        }
        let Some(m) = self.txns.get(id) else {
            return self.reply(reply, code(codes::INVALID_PRODUCER_ID_MAPPING));
        };
        let error = if m.pid() != pid {
            codes::INVALID_PRODUCER_ID_MAPPING
        } else if m.epoch() != epoch {
            // Strict equality for client requests.
            codes::PRODUCER_FENCED
        } else if m.busy() {
            codes::CONCURRENT_TRANSACTIONS
        } else {
            match (m.cur.state, commit) {
                (TxnState::Ongoing, _) => {
                    let mut target = m.cur.clone();
                    target.state = if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    };
                    target.update_ms = self.now_ms;
                    return self.pend(
                        id,
                        Some(target),
                        Effect::End {
                            by: EndBy::Client(reply),
                            fence: false,
                        },
                    );
                }
                // A retry of the decision already made.
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => codes::NONE,
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    codes::CONCURRENT_TRANSACTIONS
                }
                // Empty, or the opposite decision.
                _ => codes::INVALID_TXN_STATE,
            }
        };
        self.reply(reply, code(error));
    }

    /// Kafka's `handleDescribeTransactions`, for one id.
    fn describe(&self, id: &str) -> TxnDescription {
        match self.txns.get(id) {
            Some(m) if m.cur.state != TxnState::Dead => TxnDescription {
                transactional_id: id.to_string(),
                error: codes::NONE,
                state: m.cur.state.name().to_string(),
                timeout_ms: m.cur.timeout_ms,
                start_ms: m.cur.start_ms,
                producer_id: m.pid(),
                producer_epoch: m.epoch(),
                partitions: m.cur.partitions.iter().cloned().collect(),
            },
            _ => TxnDescription {
                transactional_id: id.to_string(),
                error: codes::TRANSACTIONAL_ID_NOT_FOUND,
                state: String::new(),
                timeout_ms: 0,
                start_ms: -1,
                producer_id: ProducerId::NONE,
                producer_epoch: ProducerEpoch::NONE,
                partitions: Vec::new(),
            },
        }
    }

    /// Kafka's `TransactionStateManager.listTransactionStates`.
    fn list(
        &self,
        states: &[String],
        producer_ids: &[ProducerId],
        duration_ms: i64,
    ) -> TxnResponse {
        let mut filter_states = Vec::new();
        let mut unknown_state_filters = Vec::new();
        for s in states {
            match TxnState::from_name(s) {
                Some(st) => filter_states.push(st),
                None => unknown_state_filters.push(s.clone()),
            }
        }
        let now = self.now_ms;
        let listed = self
            .txns
            .iter()
            .filter(|(_, m)| {
                m.cur.state != TxnState::Dead
                    && (producer_ids.is_empty() || producer_ids.contains(&m.pid()))
                    && (states.is_empty() || filter_states.contains(&m.cur.state))
                    && !(duration_ms >= 0 && now - m.cur.start_ms <= duration_ms)
            })
            .map(|(id, m)| TxnListing {
                transactional_id: id.clone(),
                producer_id: m.pid(),
                state: m.cur.state.name().to_string(),
            })
            .collect();
        TxnResponse::List {
            error: codes::NONE,
            states: listed,
            unknown_state_filters,
        }
    }
}

fn init_error(error: i16) -> TxnResponse {
    TxnResponse::InitProducerId {
        error,
        producer_id: ProducerId::NONE,
        producer_epoch: ProducerEpoch::NONE,
    }
}

/// The answer to a request refused as a whole with `code`.
fn refusal(request: &TxnRequest, code: i16) -> TxnResponse {
    let all = |parts: &[TopicPartition]| parts.iter().map(|tp| (tp.clone(), code)).collect();
    match request {
        TxnRequest::InitProducerId { .. } => init_error(code),
        TxnRequest::AddPartitions { partitions, .. } => TxnResponse::AddPartitions {
            results: all(partitions),
        },
        TxnRequest::VerifyPartitions { partitions, .. } => TxnResponse::VerifyPartitions {
            results: all(partitions),
        },
        TxnRequest::EndTxn { .. } => TxnResponse::EndTxn { error: code },
        TxnRequest::Describe { transactional_ids } => TxnResponse::Describe {
            states: transactional_ids
                .iter()
                .map(|id| TxnDescription {
                    transactional_id: id.clone(),
                    error: code,
                    state: String::new(),
                    timeout_ms: 0,
                    start_ms: -1,
                    producer_id: ProducerId::NONE,
                    producer_epoch: ProducerEpoch::NONE,
                    partitions: Vec::new(),
                })
                .collect(),
        },
        TxnRequest::List { .. } => TxnResponse::List {
            error: code,
            states: Vec::new(),
            unknown_state_filters: Vec::new(),
        },
    }
}

enum MarkerOutcome {
    Done,
    Retry,
    Fenced,
}

/// How Kafka's `TransactionMarkerRequestCompletionHandler` treats a
/// partition's marker answer. Kafka throws on CORRUPT_MESSAGE,
/// MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE and INVALID_REQUIRED_ACKS and
/// on codes it does not expect; a state machine cannot crash the broker,
/// so those are retried like the retriable ones (and logged).
fn marker_outcome(code: i16) -> MarkerOutcome {
    match code {
        codes::NONE
        // The topic was deleted (Kafka drops a partition whose leader it
        // cannot find for that reason).
        | codes::UNKNOWN_TOPIC_OR_PARTITION
        // The partition cannot hold markers; Kafka skips it.
        | codes::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | codes::UNSUPPORTED_VERSION => MarkerOutcome::Done,
        codes::INVALID_PRODUCER_EPOCH | codes::TRANSACTION_COORDINATOR_FENCED => {
            MarkerOutcome::Fenced
        }
        codes::NOT_LEADER_OR_FOLLOWER
        | codes::NOT_ENOUGH_REPLICAS
        | codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | codes::REQUEST_TIMED_OUT
        | codes::KAFKA_STORAGE_ERROR
        | codes::COORDINATOR_LOAD_IN_PROGRESS => MarkerOutcome::Retry,
        other => {
            tracing::error!(code = other, "unexpected error writing a transaction marker; retrying");
            MarkerOutcome::Retry
        }
    }
}

impl TransactionCoordinator {
    /// Whether [`Self::finish_load`] has run: before, every request is
    /// answered COORDINATOR_LOAD_IN_PROGRESS.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }
}
