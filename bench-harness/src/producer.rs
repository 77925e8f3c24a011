//! The load generator's producers: state machines multiplexed on a few
//! worker threads, thread-per-core like the broker. Each worker owns its
//! producers' non-blocking sockets and runs one `ppoll` loop, so 50
//! producers cost 50 sockets and no extra threads, and a single generator
//! core can drive the broker on the other core.
//!
//! Lives on: the worker thread that owns the producer. Workers share only
//! the acknowledged-message counter and the interval collector.
//!
//! Schedules (per producer):
//! - closed loop (`rate = None`): a request of `records_per_batch` records
//!   whenever fewer than `max_in_flight` are outstanding; latency runs from
//!   the request's send.
//! - open loop, `linger = 0`: every `records_per_batch / rate` seconds the
//!   application hands over `records_per_batch` records at once, and they go
//!   out as one request;
//! - open loop, `linger > 0`: records arrive one by one at `rate`; a request
//!   leaves when `records_per_batch` are waiting or the oldest has waited
//!   `linger`, like a Kafka producer's `batch.size` and `linger.ms`.
//!
//! In the open loop every record's latency runs from its *intended* arrival
//! time, so a stall that delays later sends is charged to them
//! (no coordinated omission), and the value carries that time too.
//!
//! Routing, as a Kafka client does it: each partition's records go to its
//! leader, as the run's Metadata named it ([`Leaders`]; a partition without
//! a known leader goes to the bootstrap address). A producer holds one
//! connection per distinct leader endpoint, and one request to a leader
//! holds only the partitions it leads. Against a single broker (every
//! partition led by one endpoint) that is one connection per producer and
//! one request per send, as before routing existed. A partition answered
//! with NOT_LEADER_OR_FOLLOWER makes the worker read Metadata again from the
//! bootstrap address (at most every [`METADATA_REFRESH_MIN`]) and route later
//! requests to the new leaders; the refused batches are counted as
//! `produce_error_6` (one per partition answered so), not retried. An I/O
//! error on any of a producer's connections ends that producer, as it did
//! with one connection.
//!
//! Idempotent producers (a producer id and epoch from InitProducerId, read
//! before the run) stamp every batch with them and with a base sequence per
//! partition, numbered as Kafka's producer numbers them. Transactional
//! producers (their own transactional id each) do that too, inside
//! transactions of `transaction_records` records: AddPartitionsToTxn to
//! their coordinator for every partition the transaction's sends will reach,
//! once, before its first batch; transactional batches; then, once every
//! batch is acknowledged, EndTxn(commit), whose round trip is the commit
//! latency. An AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS (the
//! coordinator still writes the previous transaction's markers) is sent
//! again after a short backoff ([`ADD_PARTITIONS_RETRY_BACKOFF`] unless the
//! scenario says otherwise), as Kafka's producer does.
//! Neither kind retries a refused batch: its sequence would leave a gap, so
//! a refused batch (or any transaction error) ends the producer, counted.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    AddPartitionsToTxnResponse, ApiKey, EndTxnResponse, ProduceResponse, ResponseHeader,
};
use kafka_protocol::protocol::Decodable;

use crate::compression::Codec;
use crate::hist::{IntervalCollector, LatencyRecorder};
use crate::kafka_client::{
    add_partitions_to_txn_errors, add_partitions_to_txn_request, encode_request, end_txn_request,
    produce_request_txn, retriable_coordinator_error, take_frame, KafkaClient, Leaders,
    ADD_PARTITIONS_TO_TXN_VERSION, CONCURRENT_TRANSACTIONS, END_TXN_VERSION,
    NOT_LEADER_OR_FOLLOWER, PRODUCE_VERSION,
};
use crate::records::{
    encode_batch_stamped, key_bytes, next_sequence, partition_for_key, KeyChooser, KeyMode,
    ProducerStamp, RecordSpec, Rng,
};

/// How long after the end an open-loop producer still sends what was due
/// before the end; what is still unsent then is `open_loop_behind_schedule`.
pub const SCHEDULE_GRACE: Duration = Duration::from_secs(1);
/// How long after the end (and the grace) producers wait for outstanding
/// acknowledgements before counting them as `produce_timeout`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a producer may have queued but not yet written to its socket:
/// the flow control of acks=0, which has no responses to wait for.
const OUT_BYTES_MAX: usize = 4 << 20;
/// Longest single wait in the poll loop.
const POLL_WAIT_MAX: Duration = Duration::from_millis(100);
/// Produce request timeout sent to the broker.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Shortest time between two Metadata refreshes of a worker: a burst of
/// NOT_LEADER_OR_FOLLOWER answers (every request in flight) costs one
/// refresh, as Kafka's `retry.backoff.ms` (100 ms) spaces a client's.
pub const METADATA_REFRESH_MIN: Duration = Duration::from_millis(100);
/// Connect timeout, also of the Metadata refresh's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before AddPartitionsToTxn again after CONCURRENT_TRANSACTIONS (or a
/// coordinator loading): Kafka's producer's `ADD_PARTITIONS_RETRY_BACKOFF_MS`.
pub const ADD_PARTITIONS_RETRY_BACKOFF: Duration = Duration::from_millis(20);
/// Wait before EndTxn again after a retriable answer: Kafka's
/// `retry.backoff.ms` default.
pub const END_TXN_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Maps `Instant`s to wall-clock microseconds with one shared reference, so
/// producer and consumer timestamps agree.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    unix_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            instant: Instant::now(),
            unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        }
    }
    pub fn us(&self, t: Instant) -> u64 {
        self.unix_us + t.saturating_duration_since(self.instant).as_micros() as u64
    }
    pub fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }
    /// The wall-clock time of `t`.
    pub fn wall(&self, t: Instant) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.us(t))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The run's time line, shared by all workers.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub clock: Clock,
    /// When producers start sending.
    pub start: Instant,
    /// Records intended before this are warmup and not measured.
    pub warmup_end: Instant,
    /// Records intended from this on are not sent.
    pub end: Instant,
}

/// What every producer of a run does.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    /// The topics written, each with the same `partitions`.
    pub topics: Vec<String>,
    /// Each topic's partitions used by the run, sorted.
    pub partitions: Vec<i32>,
    pub acks: i16,
    pub records_per_batch: u32,
    pub record_bytes: usize,
    pub codec: Codec,
    pub keys: KeyMode,
    pub key_space: u64,
    pub linger: Duration,
    pub max_in_flight: usize,
    /// Records per second for each producer; `None` is the closed loop.
    pub rate_per_producer: Option<f64>,
    /// Idempotent or transactional producers: each producer's identity,
    /// indexed by producer id. Empty: plain producers (no producer id).
    pub identities: Vec<ProducerIdentity>,
    /// Records per transaction (transactional identities); 0 otherwise.
    pub transaction_records: u64,
    /// Wait before AddPartitionsToTxn again after CONCURRENT_TRANSACTIONS.
    pub add_partitions_backoff: Duration,
}

/// What InitProducerId gave a producer before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
    /// A transactional producer's transactional id and its coordinator's
    /// endpoint (`host:port`).
    pub transactional: Option<(String, String)>,
}

impl ProducerSpec {
    fn rpb(&self) -> u64 {
        u64::from(self.records_per_batch.max(1))
    }

    /// Most sends one transaction may take: a send holds at least one
    /// record, and in the closed loop and the burst schedule it holds a
    /// whole batch (`records_per_batch`, or what is left of the
    /// transaction).
    fn txn_sends_max(&self) -> u64 {
        let n = self.transaction_records.max(1);
        if self.linger.is_zero() {
            n.div_ceil(self.rpb())
        } else {
            n
        }
    }

    /// Open loop: nanoseconds between records (smooth) or batches (burst).
    /// Whole nanoseconds, so that schedule positions and the counts derived
    /// from them agree exactly (no floating-point off-by-one at the window
    /// edges).
    fn step_ns(&self) -> Option<u64> {
        let rate = self.rate_per_producer?;
        let per_record_ns = 1e9 / rate.max(1e-9);
        let step = if self.linger.is_zero() {
            per_record_ns * self.rpb() as f64
        } else {
            per_record_ns
        };
        Some((step.round() as u64).max(1))
    }

    /// Open loop: the intended time of record `i`.
    fn intended(&self, w: &Window, i: u64) -> Instant {
        let step = self.step_ns().unwrap_or(0);
        let slot = if self.linger.is_zero() {
            i / self.rpb()
        } else {
            i
        };
        w.start + Duration::from_nanos(step.saturating_mul(slot))
    }

    /// Open loop: how many records are intended strictly before `t`.
    fn records_before(&self, w: &Window, t: Instant) -> u64 {
        let Some(step) = self.step_ns() else { return 0 };
        let elapsed = t.saturating_duration_since(w.start).as_nanos();
        let slots = elapsed.div_ceil(u128::from(step)) as u64;
        if self.linger.is_zero() {
            slots * self.rpb()
        } else {
            slots
        }
    }

    /// Open loop: when the request holding record `sent` (the next unsent)
    /// is due.
    fn next_due(&self, w: &Window, sent: u64) -> Instant {
        let first = self.intended(w, sent);
        if self.linger.is_zero() {
            first
        } else {
            (first + self.linger).min(self.intended(w, sent + self.rpb() - 1))
        }
    }
}

/// What one worker measured.
#[derive(Debug, Default)]
pub struct WorkerResult {
    /// Publish latency (none for acks=0).
    pub latency: Option<LatencyRecorder>,
    /// Commit latency (EndTxn request to response) of the transactions
    /// whose EndTxn was sent in the measured window; none without
    /// transactions.
    pub commit: Option<LatencyRecorder>,
    /// Time from a transaction's first AddPartitionsToTxn to the answer
    /// that opened it (backoffs and retries included), for the
    /// transactions whose first AddPartitionsToTxn went out in the measured
    /// window; none without transactions.
    pub add_partitions: Option<LatencyRecorder>,
    /// Transactions committed whose EndTxn was sent in the measured window.
    pub commits: u64,
    /// AddPartitionsToTxn requests sent in the measured window that were
    /// answered CONCURRENT_TRANSACTIONS (or a coordinator loading), and so
    /// sent again.
    pub add_partitions_retries: u64,
    pub messages: u64,
    pub bytes: u64,
    pub errors: BTreeMap<String, u64>,
}

/// The targets (`topic index * partitions + partition index`, in the
/// spec's topics and partitions) that a transaction of at most `sends`
/// sends, starting at round-robin position `rr`, writes: the next `sends`
/// targets round robin, or with keyed records every partition of the next
/// `sends` topics (a key may pick any of them). Sorted, each once.
pub fn txn_targets(
    rr: usize,
    sends: u64,
    topics: usize,
    partitions: usize,
    keyed: bool,
) -> Vec<usize> {
    let (topics, partitions) = (topics.max(1), partitions.max(1));
    let mut out: Vec<usize> = if keyed {
        let n = sends.min(topics as u64) as usize;
        (0..n)
            .flat_map(|k| {
                let t = (rr + k) % topics;
                (0..partitions).map(move |i| t * partitions + i)
            })
            .collect()
    } else {
        let all = topics * partitions;
        let n = sends.min(all as u64) as usize;
        (0..n).map(|k| (rr + k) % all).collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// What a request in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Produce,
    AddPartitions,
    /// EndTxn(commit); the transaction's first EndTxn was sent at `started`.
    EndTxn {
        started: Instant,
    },
}

impl Kind {
    fn response_header_version(self) -> i16 {
        match self {
            Kind::Produce => ApiKey::Produce.response_header_version(PRODUCE_VERSION),
            Kind::AddPartitions => {
                ApiKey::AddPartitionsToTxn.response_header_version(ADD_PARTITIONS_TO_TXN_VERSION)
            }
            Kind::EndTxn { .. } => ApiKey::EndTxn.response_header_version(END_TXN_VERSION),
        }
    }
}

struct Pending {
    kind: Kind,
    correlation_id: i32,
    /// Intended time of the send's first record.
    first: Instant,
    /// Time between its records' intended times (zero: all the same).
    step: Duration,
    records: u32,
    /// With `step`: the positions (in the send) of this request's records
    /// when a send was split between leaders; empty when the request holds
    /// the send's records `0..records`.
    positions: Vec<u32>,
}

/// One connection of a producer, to one leader endpoint.
struct Conn {
    stream: TcpStream,
    out: BytesMut,
    inb: BytesMut,
    in_flight: VecDeque<Pending>,
    next_correlation_id: i32,
}

impl Conn {
    fn open(endpoint: &str) -> Result<Conn> {
        Ok(Conn {
            stream: connect(endpoint)?,
            out: BytesMut::with_capacity(64 * 1024),
            inb: BytesMut::with_capacity(64 * 1024),
            in_flight: VecDeque::new(),
            next_correlation_id: 1,
        })
    }
}

/// An idempotent producer's id, epoch and next sequence per target.
struct Idempotence {
    producer_id: i64,
    epoch: i16,
    /// Next base sequence of each target (`topic index * partitions +
    /// partition index`): they continue across transactions, as the epoch
    /// stays the same.
    sequences: Vec<i32>,
}

impl Idempotence {
    /// The stamp of a batch of `records` records to `target`, and the
    /// target's sequence moved past them.
    fn stamp(&mut self, target: usize, records: u32, transactional: bool) -> ProducerStamp {
        let base_sequence = self.sequences[target];
        self.sequences[target] = next_sequence(base_sequence, records);
        ProducerStamp {
            producer_id: self.producer_id,
            epoch: self.epoch,
            base_sequence,
            transactional,
        }
    }
}

/// Where a transactional producer's transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// None open: the next one starts when the producer may send again.
    Idle,
    /// AddPartitionsToTxn in flight.
    Adding,
    /// AddPartitionsToTxn again at this time.
    AddAgainAt(Instant),
    /// Partitions added: batches go out until the transaction holds its
    /// records, then (all acknowledged) EndTxn.
    Open,
    /// EndTxn in flight.
    Committing,
    /// EndTxn again at this time; the first was sent at `started`.
    CommitAgainAt { at: Instant, started: Instant },
}

struct Transaction {
    id: String,
    /// Endpoint index of its coordinator.
    coordinator: usize,
    phase: Phase,
    /// Records handed to sends in the open transaction.
    records: u64,
    /// Targets added to the open transaction, sorted.
    targets: Vec<usize>,
    /// When the open transaction's first AddPartitionsToTxn went out.
    add_started: Instant,
}

struct Producer {
    /// Connections by endpoint index ([`Routes::endpoints`]); `None` for an
    /// endpoint this producer has not sent to (one that became a leader
    /// after a refresh).
    conns: Vec<Option<Conn>>,
    idempotence: Option<Idempotence>,
    txn: Option<Transaction>,
    /// Round-robin position over topics and partitions (starts at the
    /// producer's id).
    rr: usize,
    rng: Rng,
    /// Records handed to requests so far.
    sent: u64,
    failed: bool,
    filler_at: usize,
}

/// Where a worker's producers send each partition: the index of its
/// leader's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// Distinct endpoints (`host:port`) in order of first use. A rebuild
    /// only appends, so an index names the same endpoint (and each
    /// producer's connection to it) for the whole run.
    endpoints: Vec<String>,
    /// Endpoint index of each target, `topic index * partitions + partition
    /// index` (the order of the spec's topics and partitions).
    by_target: Vec<usize>,
    /// Partitions of each topic.
    partitions: usize,
}

impl Routes {
    /// Routes for the spec's partitions from `leaders`; partitions without
    /// a known leader go to `bootstrap`.
    pub fn new(spec: &ProducerSpec, leaders: &Leaders, bootstrap: &str) -> Routes {
        let mut routes = Routes {
            endpoints: Vec::new(),
            by_target: Vec::new(),
            partitions: spec.partitions.len(),
        };
        routes.rebuild(spec, leaders, bootstrap);
        routes
    }

    /// Routes again from newer `leaders`, keeping the known endpoints'
    /// indexes.
    pub fn rebuild(&mut self, spec: &ProducerSpec, leaders: &Leaders, bootstrap: &str) {
        self.by_target.clear();
        for topic in &spec.topics {
            for &partition in &spec.partitions {
                let endpoint = leaders.endpoint(topic, partition).unwrap_or(bootstrap);
                let index = match self.endpoints.iter().position(|e| e == endpoint) {
                    Some(i) => i,
                    None => {
                        self.endpoints.push(endpoint.to_string());
                        self.endpoints.len() - 1
                    }
                };
                self.by_target.push(index);
            }
        }
    }

    /// The endpoints, by index.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The index of `endpoint` (a transaction coordinator's), added if new.
    pub fn endpoint_index(&mut self, endpoint: &str) -> usize {
        match self.endpoints.iter().position(|e| e == endpoint) {
            Some(i) => i,
            None => {
                self.endpoints.push(endpoint.to_string());
                self.endpoints.len() - 1
            }
        }
    }

    /// The endpoint index of partition `partition_index` (a position in
    /// the spec's partitions) of topic `topic_index`.
    pub fn endpoint_of(&self, topic_index: usize, partition_index: usize) -> usize {
        self.by_target[topic_index * self.partitions + partition_index]
    }
}

struct Worker<'a> {
    spec: &'a ProducerSpec,
    w: Window,
    keys: KeyChooser,
    acked: &'a AtomicU64,
    intervals: &'a IntervalCollector,
    commit_intervals: &'a IntervalCollector,
    interval_slot: u64,
    rec: LatencyRecorder,
    /// Commit latency, and its interval slot.
    commit_rec: LatencyRecorder,
    commit_slot: u64,
    /// AddPartitionsToTxn to an open transaction.
    add_rec: LatencyRecorder,
    result: WorkerResult,
    routes: Routes,
    /// Where Metadata is read again after NOT_LEADER_OR_FOLLOWER.
    bootstrap: &'a str,
    /// A response said NOT_LEADER_OR_FOLLOWER since the last refresh.
    refresh_wanted: bool,
    refreshed_at: Option<Instant>,
}

fn bump(errors: &mut BTreeMap<String, u64>, kind: &str, n: u64) {
    *errors.entry(kind.to_string()).or_default() += n;
}

/// The interval logs the workers write into.
pub struct Intervals<'a> {
    pub publish: &'a IntervalCollector,
    /// Commit latency (transactional producers).
    pub commit: &'a IntervalCollector,
}

/// Connects the producers with the given ids to the leaders of their
/// partitions (`leaders`, from the run's Metadata; `bootstrap` for a
/// partition without a known leader, and for Metadata refreshes) and to
/// their transaction coordinators, and runs them to the end of the window;
/// returns what they measured.
pub fn run_worker(
    ids: &[u32],
    spec: &ProducerSpec,
    w: Window,
    bootstrap: &str,
    leaders: &Leaders,
    acked: &AtomicU64,
    intervals: Intervals<'_>,
) -> WorkerResult {
    let mut worker = Worker {
        spec,
        w,
        keys: KeyChooser::new(spec.keys, spec.key_space),
        acked,
        intervals: intervals.publish,
        commit_intervals: intervals.commit,
        interval_slot: 0,
        rec: LatencyRecorder::new(),
        commit_rec: LatencyRecorder::new(),
        commit_slot: 0,
        add_rec: LatencyRecorder::new(),
        result: WorkerResult::default(),
        routes: Routes::new(spec, leaders, bootstrap),
        bootstrap,
        refresh_wanted: false,
        refreshed_at: None,
    };
    // Transactional producers also talk to their coordinators.
    let coordinators: Vec<Option<usize>> = ids
        .iter()
        .map(|&id| {
            let identity = spec.identities.get(id as usize)?;
            let (_, coordinator) = identity.transactional.as_ref()?;
            Some(worker.routes.endpoint_index(coordinator))
        })
        .collect();
    let targets = spec.topics.len() * spec.partitions.len();
    let mut producers = Vec::new();
    for (&id, coordinator) in ids.iter().zip(coordinators) {
        let identity = spec.identities.get(id as usize);
        let idempotence = identity.map(|i| Idempotence {
            producer_id: i.producer_id,
            epoch: i.epoch,
            sequences: vec![0; targets],
        });
        let txn = identity
            .and_then(|i| i.transactional.as_ref())
            .zip(coordinator)
            .filter(|_| spec.transaction_records > 0)
            .map(|((tid, _), coordinator)| Transaction {
                id: tid.clone(),
                coordinator,
                phase: Phase::Idle,
                records: 0,
                targets: Vec::new(),
                add_started: Instant::now(),
            });
        // Every producer writes every partition (round robin from its id),
        // so it connects to every leader before the run starts.
        let conns: Result<Vec<Option<Conn>>> = worker
            .routes
            .endpoints()
            .iter()
            .map(|e| Conn::open(e).map(Some))
            .collect();
        match conns {
            Ok(conns) => producers.push(Producer {
                conns,
                idempotence,
                txn,
                rr: id as usize,
                rng: Rng::new(u64::from(id) + 1),
                sent: 0,
                failed: false,
                filler_at: id as usize * 4099,
            }),
            Err(_) => bump(&mut worker.result.errors, "produce_connect", 1),
        }
    }
    worker.run(&mut producers);
    worker.finish(&producers)
}

fn connect(endpoint: &str) -> Result<TcpStream> {
    let addr = endpoint
        .to_socket_addrs()
        .with_context(|| format!("resolving {endpoint}"))?
        .next()
        .ok_or_else(|| anyhow!("{endpoint} resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// The records of one send bound for one leader: its partitions' batches,
/// how many records they hold, and (when the send was split between
/// leaders) their positions in the send.
struct LeaderPart {
    endpoint: usize,
    batches: Vec<(i32, Bytes)>,
    records: u32,
    positions: Vec<u32>,
}

impl Worker<'_> {
    fn closed_loop(&self) -> bool {
        self.spec.rate_per_producer.is_none()
    }

    fn sending_done(&self, p: &Producer, now: Instant) -> bool {
        if self.closed_loop() {
            now >= self.w.end
        } else {
            p.sent >= self.spec.records_before(&self.w, self.w.end)
                || now >= self.w.end + SCHEDULE_GRACE
        }
    }

    /// Whether every connection of `p` can take another request: a send may
    /// reach any of them (keyed records go to every partition). With one
    /// leader this is the single connection's room.
    fn has_room(&self, p: &Producer) -> bool {
        p.conns.iter().flatten().all(|c| {
            c.out.len() < OUT_BYTES_MAX
                && (self.spec.acks == 0 || c.in_flight.len() < self.spec.max_in_flight)
        })
    }

    /// When producer `p` next wants to send, if it has room to (and, a
    /// transactional producer, an open transaction with records to go).
    fn wants_send_at(&self, p: &Producer, now: Instant) -> Option<Instant> {
        if p.failed || self.sending_done(p, now) || !self.has_room(p) {
            return None;
        }
        if let Some(t) = &p.txn {
            if t.phase != Phase::Open || t.records >= self.spec.transaction_records {
                return None;
            }
        }
        Some(if self.closed_loop() {
            now
        } else {
            self.spec.next_due(&self.w, p.sent)
        })
    }

    fn finished(&self, p: &Producer, now: Instant) -> bool {
        p.failed
            || (self.sending_done(p, now)
                && p.txn.as_ref().is_none_or(|t| t.phase == Phase::Idle)
                && p.conns
                    .iter()
                    .flatten()
                    .all(|c| c.in_flight.is_empty() && c.out.is_empty()))
    }

    /// Moves producer `p`'s transaction on: starts the next one (its
    /// AddPartitionsToTxn), sends a retry that is due, or commits a
    /// transaction that holds its records (or the last one, once sending
    /// is done) when every batch of it is acknowledged. Returns when it
    /// next wants to be called, for a retry.
    fn txn_step(&mut self, p: &mut Producer, now: Instant) -> Option<Instant> {
        if p.failed {
            return None;
        }
        let spec = self.spec;
        let done = self.sending_done(p, now);
        let idle = p.conns.iter().flatten().all(|c| c.in_flight.is_empty());
        let t = p.txn.as_mut()?;
        match t.phase {
            Phase::Idle if !done => {
                t.targets = txn_targets(
                    p.rr,
                    spec.txn_sends_max(),
                    spec.topics.len(),
                    spec.partitions.len(),
                    self.keys.mode() != KeyMode::None,
                );
                t.records = 0;
                t.add_started = now;
                self.send_add_partitions(p);
            }
            Phase::AddAgainAt(at) if now >= at => self.send_add_partitions(p),
            Phase::AddAgainAt(at) => return Some(at),
            Phase::Open if idle && (t.records >= spec.transaction_records || done) => {
                self.send_end_txn(p, now)
            }
            Phase::CommitAgainAt { at, started } if now >= at => self.send_end_txn(p, started),
            Phase::CommitAgainAt { at, .. } => return Some(at),
            _ => {}
        }
        None
    }

    /// Queues AddPartitionsToTxn for the open transaction's targets.
    fn send_add_partitions(&mut self, p: &mut Producer) {
        let Some(t) = p.txn.as_mut() else { return };
        let (spec, np) = (self.spec, self.spec.partitions.len());
        let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
        for &target in &t.targets {
            let topic = &spec.topics[target / np];
            let partition = spec.partitions[target % np];
            match by_topic.iter_mut().find(|(name, _)| name == topic) {
                Some((_, ps)) => ps.push(partition),
                None => by_topic.push((topic.clone(), vec![partition])),
            }
        }
        t.phase = Phase::Adding;
        let identity = p
            .idempotence
            .as_ref()
            .map_or((-1, -1), |i| (i.producer_id, i.epoch));
        let req = add_partitions_to_txn_request(&t.id, identity.0, identity.1, &by_topic);
        let coordinator = t.coordinator;
        let now = Instant::now();
        self.queue_txn(
            p,
            coordinator,
            Kind::AddPartitions,
            ApiKey::AddPartitionsToTxn,
            ADD_PARTITIONS_TO_TXN_VERSION,
            &req,
            now,
        );
    }

    /// Queues EndTxn(commit); the transaction's first EndTxn went out at
    /// `started` (now, unless this is a retry).
    fn send_end_txn(&mut self, p: &mut Producer, started: Instant) {
        let Some(t) = p.txn.as_mut() else { return };
        t.phase = Phase::Committing;
        let identity = p
            .idempotence
            .as_ref()
            .map_or((-1, -1), |i| (i.producer_id, i.epoch));
        let req = end_txn_request(&t.id, identity.0, identity.1, true);
        let coordinator = t.coordinator;
        self.queue_txn(
            p,
            coordinator,
            Kind::EndTxn { started },
            ApiKey::EndTxn,
            END_TXN_VERSION,
            &req,
            started,
        );
    }

    /// Queues one transaction request on producer `p`'s connection to its
    /// coordinator.
    #[allow(clippy::too_many_arguments)]
    fn queue_txn<R: kafka_protocol::protocol::Encodable>(
        &mut self,
        p: &mut Producer,
        coordinator: usize,
        kind: Kind,
        api_key: ApiKey,
        version: i16,
        req: &R,
        first: Instant,
    ) {
        let Some(c) = self.conn(p, coordinator) else {
            return;
        };
        let correlation_id = c.next_correlation_id;
        c.next_correlation_id = c.next_correlation_id.wrapping_add(1);
        match encode_request(api_key, version, correlation_id, req) {
            Ok(frame) => c.out.extend_from_slice(&frame),
            Err(_) => {
                bump(&mut self.result.errors, "txn_encode", 1);
                p.failed = true;
                return;
            }
        }
        c.in_flight.push_back(Pending {
            kind,
            correlation_id,
            first,
            step: Duration::ZERO,
            records: 0,
            positions: Vec::new(),
        });
    }

    /// Takes an AddPartitionsToTxn answer: the transaction is open, or
    /// asked again shortly (CONCURRENT_TRANSACTIONS), or the producer ends.
    fn on_add_partitions(&mut self, p: &mut Producer, mut body: Bytes, sent: Instant, at: Instant) {
        let codes: Vec<i16> =
            match AddPartitionsToTxnResponse::decode(&mut body, ADD_PARTITIONS_TO_TXN_VERSION) {
                Ok(r) => add_partitions_to_txn_errors(&r)
                    .into_iter()
                    .map(|(_, _, code)| code)
                    .collect(),
                Err(_) => {
                    bump(&mut self.result.errors, "txn_decode", 1);
                    return self.stop(p);
                }
            };
        let Some(t) = p.txn.as_mut() else { return };
        if codes.is_empty() {
            bump(&mut self.result.errors, "add_partitions_empty_response", 1);
            return self.stop(p);
        }
        if codes.iter().all(|&c| c == 0) {
            t.phase = Phase::Open;
            if t.add_started >= self.w.warmup_end && t.add_started < self.w.end {
                self.add_rec
                    .record_us(at.saturating_duration_since(t.add_started).as_micros() as u64);
            }
            return;
        }
        // OPERATION_NOT_ATTEMPTED (55) stands beside the partitions that
        // failed, for the others.
        let real: Vec<i16> = codes.into_iter().filter(|&c| c != 0 && c != 55).collect();
        if real
            .iter()
            .all(|&c| c == CONCURRENT_TRANSACTIONS || retriable_coordinator_error(c))
        {
            t.phase = Phase::AddAgainAt(at + self.spec.add_partitions_backoff);
            if sent >= self.w.warmup_end && sent < self.w.end {
                self.result.add_partitions_retries += 1;
            }
            return;
        }
        let code = real.first().copied().unwrap_or(-1);
        bump(
            &mut self.result.errors,
            &format!("add_partitions_error_{code}"),
            1,
        );
        self.stop(p);
    }

    /// Takes an EndTxn answer: committed (its latency recorded when the
    /// first EndTxn went out in the measured window), asked again shortly,
    /// or the producer ends.
    fn on_end_txn(&mut self, p: &mut Producer, mut body: Bytes, started: Instant, at: Instant) {
        let code = match EndTxnResponse::decode(&mut body, END_TXN_VERSION) {
            Ok(r) => r.error_code,
            Err(_) => {
                bump(&mut self.result.errors, "txn_decode", 1);
                return self.stop(p);
            }
        };
        let Some(t) = p.txn.as_mut() else { return };
        if code == 0 {
            t.phase = Phase::Idle;
            t.records = 0;
            t.targets.clear();
            if started >= self.w.warmup_end && started < self.w.end {
                self.commit_rec
                    .record_us(at.saturating_duration_since(started).as_micros() as u64);
                self.result.commits += 1;
            }
            return;
        }
        if code == CONCURRENT_TRANSACTIONS || retriable_coordinator_error(code) {
            t.phase = Phase::CommitAgainAt {
                at: at + END_TXN_RETRY_BACKOFF,
                started,
            };
            return;
        }
        bump(&mut self.result.errors, &format!("end_txn_error_{code}"), 1);
        self.stop(p);
    }

    /// Ends an idempotent or transactional producer whose batch was
    /// refused or whose transaction failed: its sequences or its
    /// transaction can no longer go on. What it has in flight is dropped.
    fn stop(&mut self, p: &mut Producer) {
        if !p.failed {
            bump(&mut self.result.errors, "producer_stopped", 1);
            p.failed = true;
            for c in p.conns.iter_mut().flatten() {
                c.in_flight.clear();
            }
        }
    }

    fn run(&mut self, producers: &mut [Producer]) {
        let now = Instant::now();
        if self.w.start > now {
            std::thread::sleep(self.w.start - now);
        }
        let drain_deadline = self.w.end + SCHEDULE_GRACE + DRAIN_TIMEOUT;
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(producers.len());
        // (producer, connection) of each entry of `fds`.
        let mut polled: Vec<(usize, usize)> = Vec::with_capacity(producers.len());
        loop {
            let now = Instant::now();
            self.intervals
                .drain(&mut self.rec, &mut self.interval_slot, now, false);
            self.commit_intervals
                .drain(&mut self.commit_rec, &mut self.commit_slot, now, false);
            if producers.iter().all(|p| self.finished(p, now)) {
                break;
            }
            if now >= drain_deadline {
                for p in producers.iter().filter(|p| !p.failed) {
                    let pending = p.conns.iter().flatten().flat_map(|c| c.in_flight.iter());
                    let (produce, txn): (Vec<_>, Vec<_>) =
                        pending.partition(|q| q.kind == Kind::Produce);
                    bump(
                        &mut self.result.errors,
                        "produce_timeout",
                        produce.len() as u64,
                    );
                    if !txn.is_empty() {
                        bump(&mut self.result.errors, "txn_timeout", txn.len() as u64);
                    } else if p.txn.as_ref().is_some_and(|t| t.phase != Phase::Idle) {
                        // Waiting to retry when time ran out.
                        bump(&mut self.result.errors, "txn_unfinished", 1);
                    }
                }
                break;
            }
            if self.refresh_wanted
                && self
                    .refreshed_at
                    .is_none_or(|t| now >= t + METADATA_REFRESH_MIN)
            {
                self.refresh_routes();
            }
            // Send what is due, then write it out at once.
            let mut wake = now + POLL_WAIT_MAX;
            for p in producers.iter_mut() {
                if let Some(at) = self.txn_step(p, now) {
                    wake = wake.min(at);
                }
                while let Some(at) = self.wants_send_at(p, now) {
                    if at > now {
                        wake = wake.min(at);
                        break;
                    }
                    self.send(p, now);
                }
                for ci in 0..p.conns.len() {
                    if p.failed {
                        break;
                    }
                    if p.conns[ci].as_ref().is_some_and(|c| !c.out.is_empty()) {
                        self.flush(p, ci);
                    }
                }
            }
            if self.refresh_wanted {
                // Come back when the next refresh is allowed.
                if let Some(t) = self.refreshed_at {
                    wake = wake.min(t + METADATA_REFRESH_MIN);
                }
            }
            fds.clear();
            polled.clear();
            for (i, p) in producers.iter().enumerate() {
                if p.failed {
                    continue;
                }
                for (ci, c) in p.conns.iter().enumerate() {
                    let Some(c) = c else { continue };
                    let mut events = libc::POLLIN;
                    if !c.out.is_empty() {
                        events |= libc::POLLOUT;
                    }
                    fds.push(libc::pollfd {
                        fd: c.stream.as_raw_fd(),
                        events,
                        revents: 0,
                    });
                    polled.push((i, ci));
                }
            }
            let wait = wake
                .min(drain_deadline)
                .saturating_duration_since(Instant::now());
            let ts = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `fds` is a valid, exclusively borrowed array of
            // `fds.len()` pollfd structures for the duration of the call.
            let rc = unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                )
            };
            if rc <= 0 {
                continue; // timeout or EINTR: re-evaluate the schedule
            }
            for (fd, &(i, ci)) in fds.iter().zip(&polled) {
                let p = &mut producers[i];
                if p.failed {
                    continue;
                }
                if fd.revents & libc::POLLOUT != 0 {
                    self.flush(p, ci);
                }
                if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read(p, ci);
                }
            }
        }
    }

    /// Reads Metadata from the bootstrap address again and routes later
    /// requests to the leaders it names. Blocking, but only after a
    /// NOT_LEADER_OR_FOLLOWER answer, at most every METADATA_REFRESH_MIN.
    fn refresh_routes(&mut self) {
        self.refresh_wanted = false;
        self.refreshed_at = Some(Instant::now());
        let read = KafkaClient::connect(self.bootstrap, CONNECT_TIMEOUT)
            .and_then(|mut c| c.metadata(&self.spec.topics));
        match read {
            Ok(resp) => {
                let leaders = Leaders::from_metadata(&resp);
                self.routes.rebuild(self.spec, &leaders, self.bootstrap);
            }
            Err(_) => bump(&mut self.result.errors, "metadata_refresh", 1),
        }
    }

    /// Builds and queues the Produce request(s) of one send of producer
    /// `p`: one per leader its records go to.
    fn send(&mut self, p: &mut Producer, now: Instant) {
        let spec = self.spec;
        let rpb = spec.rpb();
        let (first, step, n) = match spec.step_ns() {
            None => (now, Duration::ZERO, rpb),
            Some(step_ns) => {
                let first = spec.intended(&self.w, p.sent);
                let left = spec
                    .records_before(&self.w, self.w.end)
                    .saturating_sub(p.sent);
                if spec.linger.is_zero() {
                    (first, Duration::ZERO, rpb.min(left).max(1))
                } else {
                    // Every record that has arrived by now, up to a batch.
                    let arrived = spec
                        .records_before(&self.w, now + Duration::from_nanos(1))
                        .saturating_sub(p.sent);
                    let n = arrived.clamp(1, rpb).min(left.max(1));
                    (first, Duration::from_nanos(step_ns), n)
                }
            }
        };
        // A transaction takes no more records than it has left.
        let n = match &p.txn {
            Some(t) => n
                .min(spec.transaction_records.saturating_sub(t.records))
                .max(1),
            None => n,
        };
        // Unkeyed: the next (topic, partition) round robin. Keyed: the next
        // topic round robin, and each record's partition from its key.
        // Records are grouped by the partition's position in the spec.
        let mut by_partition: BTreeMap<usize, (Vec<RecordSpec>, Vec<u32>)> = BTreeMap::new();
        let parts = &spec.partitions;
        let keyed = self.keys.mode() != KeyMode::None;
        let (topic_index, unkeyed_partition) = if keyed {
            (p.rr % spec.topics.len(), 0)
        } else {
            let target = p.rr % (spec.topics.len() * parts.len());
            (target / parts.len(), target % parts.len())
        };
        let topic = &spec.topics[topic_index];
        p.rr += 1;
        // Positions are needed only where a send's records, spread over
        // several leaders, have intended times of their own (linger).
        let track_positions = !step.is_zero() && self.routes.endpoints().len() > 1;
        for j in 0..n {
            let key = self.keys.next(&mut p.rng);
            let partition = match key {
                Some(k) => partition_for_key(&key_bytes(k), parts.len()),
                None => unkeyed_partition,
            };
            let (records, positions) = by_partition.entry(partition).or_default();
            records.push(RecordSpec {
                send_us: self.w.clock.us(first + step * j as u32),
                key,
            });
            if track_positions {
                positions.push(j as u32);
            }
        }
        // Against a single broker every partition has one leader: the send
        // is one request, built as before routing, with nothing grouped.
        let mut endpoints = by_partition
            .keys()
            .map(|&i| self.routes.endpoint_of(topic_index, i));
        let first_endpoint = endpoints.next().unwrap_or(0);
        let split = endpoints.any(|e| e != first_endpoint);
        let mut whole = Vec::with_capacity(if split { 0 } else { by_partition.len() });
        let mut leader_parts: Vec<LeaderPart> = Vec::new();
        let transactional = p.txn.is_some();
        for (partition, (records, positions)) in by_partition {
            let target = topic_index * parts.len() + partition;
            if let Some(t) = &p.txn {
                if t.targets.binary_search(&target).is_err() {
                    // txn_targets missed a partition this send writes: the
                    // broker would refuse the batch.
                    bump(&mut self.result.errors, "txn_partition_not_added", 1);
                }
            }
            let stamp = p
                .idempotence
                .as_mut()
                .map(|i| i.stamp(target, records.len() as u32, transactional));
            let encoded =
                encode_batch_stamped(&records, spec.record_bytes, spec.codec, p.filler_at, stamp);
            let batch = match encoded {
                Ok(b) => Bytes::from(b),
                Err(_) => {
                    bump(&mut self.result.errors, "produce_encode", 1);
                    p.failed = true;
                    return;
                }
            };
            p.filler_at = p.filler_at.wrapping_add(records.len() * 131);
            if !split {
                whole.push((parts[partition], batch));
                continue;
            }
            let endpoint = self.routes.endpoint_of(topic_index, partition);
            let part = match leader_parts.iter_mut().position(|l| l.endpoint == endpoint) {
                Some(i) => &mut leader_parts[i],
                None => {
                    leader_parts.push(LeaderPart {
                        endpoint,
                        batches: Vec::new(),
                        records: 0,
                        positions: Vec::new(),
                    });
                    leader_parts.last_mut().expect("just pushed")
                }
            };
            part.batches.push((parts[partition], batch));
            part.records += records.len() as u32;
            part.positions.extend(positions);
        }
        let queued = if split {
            leader_parts.into_iter().all(|part| {
                let request = (part.batches, part.records, part.positions);
                self.queue(p, part.endpoint, topic, request, first, step)
            })
        } else {
            // One request holds the whole send: positions 0..n.
            self.queue(
                p,
                first_endpoint,
                topic,
                (whole, n as u32, Vec::new()),
                first,
                step,
            )
        };
        if queued {
            p.sent += n;
            if let Some(t) = p.txn.as_mut() {
                t.records += n;
            }
        }
    }

    /// Queues one Produce request of `topic` on producer `p`'s connection
    /// to endpoint `endpoint`: `request` is its batches, how many records
    /// they hold and their positions in the send (empty: `0..records`).
    /// Returns false (and the producer failed) when it could not.
    fn queue(
        &mut self,
        p: &mut Producer,
        endpoint: usize,
        topic: &str,
        request: (Vec<(i32, Bytes)>, u32, Vec<u32>),
        first: Instant,
        step: Duration,
    ) -> bool {
        let (batches, records, positions) = request;
        let acks = self.spec.acks;
        let transactional_id = p.txn.as_ref().map(|t| t.id.as_str());
        let req = produce_request_txn(topic, acks, PRODUCE_TIMEOUT_MS, batches, transactional_id);
        let Some(c) = self.conn(p, endpoint) else {
            return false;
        };
        let correlation_id = c.next_correlation_id;
        c.next_correlation_id = c.next_correlation_id.wrapping_add(1);
        match encode_request(ApiKey::Produce, PRODUCE_VERSION, correlation_id, &req) {
            Ok(frame) => c.out.extend_from_slice(&frame),
            Err(_) => {
                bump(&mut self.result.errors, "produce_encode", 1);
                p.failed = true;
                return false;
            }
        }
        let pending = Pending {
            kind: Kind::Produce,
            correlation_id,
            first,
            step,
            records,
            positions,
        };
        if acks == 0 {
            // Nothing comes back: count it as sent, with no latency.
            self.account(&pending, None);
        } else {
            c.in_flight.push_back(pending);
        }
        true
    }

    /// Producer `p`'s connection to endpoint `index`, opened now if the
    /// endpoint became a leader after the producer connected; `None` (and
    /// the producer failed) when it cannot be opened.
    fn conn<'p>(&mut self, p: &'p mut Producer, index: usize) -> Option<&'p mut Conn> {
        if p.conns.len() <= index {
            p.conns.resize_with(index + 1, || None);
        }
        if p.conns[index].is_none() {
            match Conn::open(&self.routes.endpoints()[index]) {
                Ok(c) => p.conns[index] = Some(c),
                Err(_) => {
                    bump(&mut self.result.errors, "produce_connect", 1);
                    self.fail(p);
                    return None;
                }
            }
        }
        p.conns[index].as_mut()
    }

    /// Counts the measured records of an acknowledged (or, for acks=0, sent)
    /// request, and their latency when `acked_at` is given.
    fn account(&mut self, pending: &Pending, acked_at: Option<Instant>) {
        let (warm, end) = (self.w.warmup_end, self.w.end);
        let bytes_per = self.spec.record_bytes as u64;
        let mut counted = 0u64;
        if pending.step.is_zero() {
            if pending.first >= warm && pending.first < end {
                counted = u64::from(pending.records);
                if let Some(at) = acked_at {
                    let us = at.saturating_duration_since(pending.first).as_micros() as u64;
                    self.rec.record_n_us(us, counted);
                }
            }
        } else {
            for k in 0..pending.records {
                let j = if pending.positions.is_empty() {
                    k
                } else {
                    pending.positions[k as usize]
                };
                let t = pending.first + pending.step * j;
                if t >= warm && t < end {
                    counted += 1;
                    if let Some(at) = acked_at {
                        self.rec
                            .record_us(at.saturating_duration_since(t).as_micros() as u64);
                    }
                }
            }
        }
        self.result.messages += counted;
        self.result.bytes += counted * bytes_per;
        self.acked.fetch_add(counted, Ordering::Relaxed);
    }

    fn fail(&mut self, p: &mut Producer) {
        if !p.failed {
            let in_flight: usize = p.conns.iter().flatten().map(|c| c.in_flight.len()).sum();
            bump(
                &mut self.result.errors,
                "produce_io",
                in_flight.max(1) as u64,
            );
            p.failed = true;
            for c in p.conns.iter_mut().flatten() {
                c.in_flight.clear();
            }
        }
    }

    fn flush(&mut self, p: &mut Producer, ci: usize) {
        let Some(c) = p.conns[ci].as_mut() else {
            return;
        };
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => return self.fail(p),
                Ok(n) => c.out.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(p),
            }
        }
    }

    fn read(&mut self, p: &mut Producer, ci: usize) {
        let mut chunk = [0u8; 64 * 1024];
        let Some(c) = p.conns[ci].as_mut() else {
            return;
        };
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => return self.fail(p),
                Ok(n) => c.inb.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(p),
            }
        }
        let at = Instant::now();
        loop {
            let Some(c) = p.conns[ci].as_mut() else {
                return;
            };
            let mut frame = match take_frame(&mut c.inb) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(_) => return self.fail(p),
            };
            let Some(pending) = c.in_flight.pop_front() else {
                bump(&mut self.result.errors, "produce_unexpected_response", 1);
                return self.fail(p);
            };
            match ResponseHeader::decode(&mut frame, pending.kind.response_header_version()) {
                Ok(h) if h.correlation_id == pending.correlation_id => {}
                _ => {
                    bump(&mut self.result.errors, "produce_decode", 1);
                    return self.fail(p);
                }
            }
            match pending.kind {
                Kind::Produce => {
                    if self.response_ok(frame) {
                        self.account(&pending, Some(at));
                    } else if p.idempotence.is_some() {
                        // A refused batch leaves a gap in its partition's
                        // sequences: the next batch would be refused too.
                        return self.stop(p);
                    }
                }
                Kind::AddPartitions => self.on_add_partitions(p, frame, pending.first, at),
                Kind::EndTxn { started } => self.on_end_txn(p, frame, started, at),
            }
            if p.failed {
                return;
            }
        }
    }

    /// Whether a Produce response acknowledges every partition; counts the
    /// errors it carries, and asks for a Metadata refresh when a partition's
    /// leader moved.
    fn response_ok(&mut self, mut body: Bytes) -> bool {
        let r = match ProduceResponse::decode(&mut body, PRODUCE_VERSION) {
            Ok(r) => r,
            Err(_) => {
                bump(&mut self.result.errors, "produce_decode", 1);
                return false;
            }
        };
        let mut any = false;
        let mut ok = true;
        for part in r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
        {
            any = true;
            if part.error_code != 0 {
                bump(
                    &mut self.result.errors,
                    &format!("produce_error_{}", part.error_code),
                    1,
                );
                ok = false;
                if part.error_code == NOT_LEADER_OR_FOLLOWER {
                    self.refresh_wanted = true;
                }
            }
        }
        if !any {
            bump(&mut self.result.errors, "produce_empty_response", 1);
        }
        ok && any
    }

    fn finish(mut self, producers: &[Producer]) -> WorkerResult {
        self.intervals
            .drain(&mut self.rec, &mut self.interval_slot, Instant::now(), true);
        self.commit_intervals.drain(
            &mut self.commit_rec,
            &mut self.commit_slot,
            Instant::now(),
            true,
        );
        if self.spec.transaction_records > 0 {
            self.result.commit = Some(std::mem::take(&mut self.commit_rec));
            self.result.add_partitions = Some(std::mem::take(&mut self.add_rec));
        }
        // Open loop: a producer that fell behind its schedule stops with
        // records still due. Those due inside the measured window are
        // reported, so a missed rate cannot pass as a clean run.
        if !self.closed_loop() {
            let spec = self.spec;
            let (from, to) = (
                spec.records_before(&self.w, self.w.warmup_end),
                spec.records_before(&self.w, self.w.end),
            );
            for p in producers {
                let missed = to.saturating_sub(p.sent.max(from));
                if missed > 0 {
                    bump(&mut self.result.errors, "open_loop_behind_schedule", missed);
                }
            }
        }
        if self.spec.acks != 0 {
            self.result.latency = Some(self.rec);
        }
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linger_ms: u64, rate: Option<f64>) -> ProducerSpec {
        ProducerSpec {
            topics: vec!["t".into()],
            partitions: vec![0, 1],
            acks: -1,
            records_per_batch: 10,
            record_bytes: 100,
            codec: Codec::None,
            keys: KeyMode::None,
            key_space: 1,
            linger: Duration::from_millis(linger_ms),
            max_in_flight: 5,
            rate_per_producer: rate,
            identities: Vec::new(),
            transaction_records: 0,
            add_partitions_backoff: ADD_PARTITIONS_RETRY_BACKOFF,
        }
    }

    fn window() -> Window {
        let start = Instant::now();
        Window {
            clock: Clock::new(),
            start,
            warmup_end: start + Duration::from_secs(1),
            end: start + Duration::from_secs(3),
        }
    }

    fn two_broker_leaders(spec: &ProducerSpec) -> Leaders {
        let resp = crate::kafka_client::testutil::metadata(
            &[(0, "127.0.0.1", 9092), (1, "127.0.0.1", 9093)],
            &spec.topics[0],
            &[(0, 0), (1, 1)],
        );
        Leaders::from_metadata(&resp)
    }

    #[test]
    fn routes_send_each_partition_to_its_leader() {
        // Two topics of partitions 0 and 1; topic "t" is led by two
        // brokers, topic "u" is not in the metadata (bootstrap).
        let mut s = spec(0, None);
        s.topics = vec!["t".into(), "u".into()];
        let leaders = two_broker_leaders(&s);
        let routes = Routes::new(&s, &leaders, "bootstrap:1");
        assert_eq!(
            routes.endpoints(),
            ["127.0.0.1:9092", "127.0.0.1:9093", "bootstrap:1"]
        );
        assert_eq!(routes.endpoint_of(0, 0), 0);
        assert_eq!(routes.endpoint_of(0, 1), 1);
        assert_eq!(routes.endpoint_of(1, 0), 2);
        assert_eq!(routes.endpoint_of(1, 1), 2);

        // One broker leading everything (today's single node): one
        // endpoint, hence one connection per producer.
        let single = Leaders::from_metadata(&crate::kafka_client::testutil::metadata(
            &[(0, "127.0.0.1", 9092)],
            "t",
            &[(0, 0), (1, 0)],
        ));
        let one = Routes::new(&spec(0, None), &single, "127.0.0.1:9092");
        assert_eq!(one.endpoints(), ["127.0.0.1:9092"]);

        // A refresh where broker 1 took partition 0 too keeps the indexes.
        let mut moved = Routes::new(&spec(0, None), &leaders, "bootstrap:1");
        let after = Leaders::from_metadata(&crate::kafka_client::testutil::metadata(
            &[(1, "127.0.0.1", 9093), (2, "127.0.0.1", 9094)],
            "t",
            &[(0, 1), (1, 2)],
        ));
        moved.rebuild(&spec(0, None), &after, "bootstrap:1");
        assert_eq!(
            moved.endpoints(),
            ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"]
        );
        assert_eq!((moved.endpoint_of(0, 0), moved.endpoint_of(0, 1)), (1, 2));
    }

    /// Runs producers 0 and 1 of `s` for 1.2 s (0.2 s warmup) with the
    /// given leaders and bootstrap address.
    fn run_two_producers(s: &ProducerSpec, bootstrap: &str, leaders: &Leaders) -> WorkerResult {
        let start = Instant::now() + Duration::from_millis(100);
        let w = Window {
            clock: Clock::new(),
            start,
            warmup_end: start + Duration::from_millis(200),
            end: start + Duration::from_millis(1200),
        };
        let intervals = IntervalCollector::new(
            w.warmup_end,
            w.clock.wall(w.warmup_end),
            Duration::from_secs(1),
        );
        let commits = IntervalCollector::new(
            w.warmup_end,
            w.clock.wall(w.warmup_end),
            Duration::from_secs(1),
        );
        let acked = AtomicU64::new(0);
        let intervals = Intervals {
            publish: &intervals,
            commit: &commits,
        };
        run_worker(&[0, 1], s, w, bootstrap, leaders, &acked, intervals)
    }

    /// High watermarks of partitions 0 and 1 of `topic` on a sink.
    fn sink_offsets(addr: &str, topic: &str) -> (i64, i64) {
        let mut c = KafkaClient::connect(addr, Duration::from_secs(5)).expect("connect");
        let f = c
            .fetch(topic, &[(0, 0), (1, 0)], 0, 1, 1 << 20)
            .expect("fetch");
        let hw = |p: i32| {
            f.responses[0]
                .partitions
                .iter()
                .find(|d| d.partition_index == p)
                .map_or(-1, |d| d.high_watermark)
        };
        (hw(0), hw(1))
    }

    #[test]
    fn producers_send_each_partition_to_its_leaders_connection() {
        let a = crate::sink::spawn("127.0.0.1:0", 2).expect("sink a");
        let b = crate::sink::spawn("127.0.0.1:0", 2).expect("sink b");
        // Unkeyed in whole batches; keyed with linger, where one send's
        // records go to both leaders, each request with its own part.
        for (topic, keys, linger_ms) in
            [("plain", KeyMode::None, 0), ("keyed", KeyMode::Uniform, 2)]
        {
            let mut s = spec(linger_ms, Some(2000.0));
            s.topics = vec![topic.into()];
            s.acks = 1;
            s.records_per_batch = 4;
            s.keys = keys;
            s.key_space = 100;
            let leaders = Leaders::from_metadata(&crate::kafka_client::testutil::metadata(
                &[
                    (0, "127.0.0.1", i32::from(a.port())),
                    (1, "127.0.0.1", i32::from(b.port())),
                ],
                topic,
                &[(0, 0), (1, 1)],
            ));
            let r = run_two_producers(&s, &a.to_string(), &leaders);
            assert!(r.errors.is_empty(), "{topic}: {:?}", r.errors);
            // 2,000 records/s each for the 1 s measured.
            assert_eq!(r.messages, 4000, "{topic}");
            assert_eq!(r.latency.as_ref().expect("latency").total().len(), 4000);
            // Each sink saw only the partition it leads: all 2 x 2,400
            // records sent (warmup included) between them.
            let (a0, a1) = sink_offsets(&a.to_string(), topic);
            let (b0, b1) = sink_offsets(&b.to_string(), topic);
            assert_eq!((a1, b0), (0, 0), "{topic}");
            assert!(a0 > 0 && b1 > 0, "{topic}: {a0} {b1}");
            assert_eq!(a0 + b1, 4800, "{topic}");
        }
    }

    /// A broker that answers every Produce with NOT_LEADER_OR_FOLLOWER for
    /// every partition; returns its address and a count of its requests.
    fn not_leader_broker() -> (std::net::SocketAddr, std::sync::Arc<AtomicU64>) {
        use kafka_protocol::messages::produce_response::{
            PartitionProduceResponse, TopicProduceResponse,
        };
        use kafka_protocol::messages::{ProduceRequest, RequestHeader};
        use kafka_protocol::protocol::Encodable;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = std::sync::Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let counted = counted.clone();
                std::thread::spawn(move || loop {
                    let mut size = [0u8; 4];
                    if stream.read_exact(&mut size).is_err() {
                        return;
                    }
                    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                    if stream.read_exact(&mut body).is_err() {
                        return;
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                    let mut body = Bytes::from(body);
                    let hv = ApiKey::Produce.request_header_version(PRODUCE_VERSION);
                    let header = RequestHeader::decode(&mut body, hv).expect("header");
                    let req = ProduceRequest::decode(&mut body, PRODUCE_VERSION).expect("produce");
                    let resp = ProduceResponse::default().with_responses(
                        req.topic_data
                            .into_iter()
                            .map(|t| {
                                TopicProduceResponse::default()
                                    .with_name(t.name)
                                    .with_partition_responses(
                                        t.partition_data
                                            .iter()
                                            .map(|p| {
                                                PartitionProduceResponse::default()
                                                    .with_index(p.index)
                                                    .with_error_code(NOT_LEADER_OR_FOLLOWER)
                                                    .with_base_offset(-1)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                    let rh = ResponseHeader::default().with_correlation_id(header.correlation_id);
                    let mut out = BytesMut::new();
                    rh.encode(&mut out, 1).expect("encode header");
                    resp.encode(&mut out, PRODUCE_VERSION).expect("encode");
                    let mut frame = (out.len() as i32).to_be_bytes().to_vec();
                    frame.extend_from_slice(&out);
                    if stream.write_all(&frame).is_err() {
                        return;
                    }
                });
            }
        });
        (addr, requests)
    }

    #[test]
    fn not_leader_answers_refresh_the_metadata_and_reroute() {
        // Both partitions' leader, as first read, refuses; the bootstrap
        // address (a sink, which names itself leader of everything) then
        // takes them, on connections opened after the refresh.
        let sink = crate::sink::spawn("127.0.0.1:0", 2).expect("sink");
        let (old, refused) = not_leader_broker();
        let mut s = spec(0, Some(2000.0));
        s.topics = vec!["moved".into()];
        s.acks = 1;
        s.records_per_batch = 4;
        let leaders = Leaders::from_metadata(&crate::kafka_client::testutil::metadata(
            &[(1, "127.0.0.1", i32::from(old.port()))],
            "moved",
            &[(0, 1), (1, 1)],
        ));
        assert_eq!(
            Routes::new(&s, &leaders, &sink.to_string()).endpoints(),
            [old.to_string()]
        );
        let r = run_two_producers(&s, &sink.to_string(), &leaders);
        let refused_n = refused.load(Ordering::Relaxed);
        let errors_6 = r.errors.get("produce_error_6").copied().unwrap_or(0);
        // Only what was in flight to the old leader before the refresh was
        // refused; nothing else failed.
        assert!(
            refused_n >= 1 && errors_6 == refused_n,
            "{refused_n} {:?}",
            r.errors
        );
        assert!(refused_n <= 20, "{refused_n} requests refused: no reroute?");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let (p0, p1) = sink_offsets(&sink.to_string(), "moved");
        assert!(p0 > 1000 && p1 > 1000, "{p0} {p1}");
        assert!(r.messages > 3500, "{}", r.messages);
    }

    #[test]
    fn a_transaction_adds_the_partitions_its_sends_reach() {
        // Round robin over 2 topics x 3 partitions (targets 0..6) from
        // position 4: one send reaches target 4, three reach 4, 5 and 0.
        assert_eq!(txn_targets(4, 1, 2, 3, false), vec![4]);
        assert_eq!(txn_targets(4, 3, 2, 3, false), vec![0, 4, 5]);
        // More sends than targets: each target once.
        assert_eq!(txn_targets(4, 100, 2, 3, false), vec![0, 1, 2, 3, 4, 5]);
        // Keyed: every partition of each topic the sends reach (topic
        // round robin from position 4: topic 0, then topic 1).
        assert_eq!(txn_targets(4, 1, 2, 3, true), vec![0, 1, 2]);
        assert_eq!(txn_targets(5, 1, 2, 3, true), vec![3, 4, 5]);
        assert_eq!(txn_targets(5, 7, 2, 3, true), vec![0, 1, 2, 3, 4, 5]);

        // How many sends a transaction may take: whole batches in the
        // closed loop and the burst schedule, single records with linger.
        let mut s = spec(0, None);
        s.transaction_records = 100;
        assert_eq!(s.txn_sends_max(), 10);
        s.transaction_records = 105;
        assert_eq!(s.txn_sends_max(), 11);
        s.transaction_records = 5;
        assert_eq!(s.txn_sends_max(), 1);
        let mut lingering = spec(5, Some(1000.0));
        lingering.transaction_records = 30;
        assert_eq!(lingering.txn_sends_max(), 30);
    }

    #[test]
    fn sequences_continue_per_partition_across_transactions() {
        // Two targets; transactions of 25 records in batches of 10 write
        // batches of 10, 10 and 5: the sequences run on per target, across
        // the transactions' boundaries, as the epoch stays.
        let mut idem = Idempotence {
            producer_id: 9,
            epoch: 3,
            sequences: vec![0; 2],
        };
        let mut stamps = Vec::new();
        let mut rr = 0usize;
        for _txn in 0..2 {
            let mut left = 25u32;
            while left > 0 {
                let n = left.min(10);
                stamps.push((rr % 2, idem.stamp(rr % 2, n, true)));
                rr += 1;
                left -= n;
            }
        }
        let seqs: Vec<(usize, i32)> = stamps.iter().map(|(t, s)| (*t, s.base_sequence)).collect();
        // Transaction 1: target 0 at 0 (10), target 1 at 0 (10), target 0
        // at 10 (5); transaction 2: target 1 at 10, target 0 at 15, target
        // 1 at 20.
        assert_eq!(seqs, [(0, 0), (1, 0), (0, 10), (1, 10), (0, 15), (1, 20)]);
        assert!(stamps
            .iter()
            .all(|(_, s)| s.producer_id == 9 && s.epoch == 3 && s.transactional));
        assert_eq!(idem.sequences, vec![25, 25]);
    }

    #[test]
    fn burst_schedule_hands_over_whole_batches() {
        // 1,000 records/s in batches of 10: a batch every 10 ms.
        let (s, w) = (spec(0, Some(1000.0)), window());
        assert_eq!(s.intended(&w, 9), w.start);
        assert_eq!(s.intended(&w, 10), w.start + Duration::from_millis(10));
        assert_eq!(s.next_due(&w, 10), w.start + Duration::from_millis(10));
        assert_eq!(s.records_before(&w, w.end), 3000);
        assert_eq!(
            s.records_before(&w, w.start + Duration::from_millis(15)),
            20
        );
    }

    #[test]
    fn linger_schedule_sends_when_full_or_when_the_oldest_waited() {
        // 1,000 records/s one by one, batches of 10, linger 5 ms: the
        // oldest record waits 5 ms, before the batch could fill (9 ms).
        let (s, w) = (spec(5, Some(1000.0)), window());
        assert_eq!(s.intended(&w, 3), w.start + Duration::from_millis(3));
        assert_eq!(s.next_due(&w, 0), w.start + Duration::from_millis(5));
        // Linger 50 ms: the batch fills first, at the 10th record (9 ms).
        let s = spec(50, Some(1000.0));
        assert_eq!(s.next_due(&w, 0), w.start + Duration::from_millis(9));
        assert_eq!(
            s.records_before(&w, w.start + Duration::from_micros(4500)),
            5
        );
    }
}
