//! A seeded, deterministic simulation of the transaction coordinator.
//!
//! Producers (several per transactional id, so that a newer instance
//! fences an older one) run InitProducerId / AddPartitions / EndTxn loops,
//! sleep past their transaction timeouts, re-initialise with KIP-360's
//! expected epoch, and retry whatever was not answered. The clock moves
//! in random steps; appends to the state log complete late, fail, or fail
//! after all reaching the log; marker writes fail and are retried; the
//! coordinator crashes and a new one is rebuilt from the durable log only
//! (through v2 batches), then `finish_load`. A model of the data
//! partitions records the open transaction of each producer and every
//! marker written.
//!
//! Invariants checked:
//! - a transaction is committed or aborted everywhere, never both, and as
//!   its EndTxn said when that was answered NONE;
//! - a producer's earlier transaction on a partition is closed by a marker
//!   before its next one opens there, and a CompleteCommit/CompleteAbort
//!   reaches the log only once no partition holds an open transaction of
//!   that producer id;
//! - a fenced epoch never gets NONE on AddPartitions or EndTxn (fenced: a
//!   newer InitProducerId was granted, or an abort marker with a higher
//!   epoch was written);
//! - the producer id and epoch of an id never go back across restarts
//!   (granted ones and those used in markers), and grants only go forward;
//! - every request is answered exactly once, or named by `fail_pending`;
//! - after the faults stop and time passes, nothing is left open.
//!
//! `cargo test -p corelog-coordination --test txn_sim` runs `SIM_SEEDS`
//! seeds (default 300) from `SIM_SEED_BASE` (default 0); `SIM_SEED=N`
//! replays one, `SIM_TRACE=1` prints its events.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use corelog_coordination::codes;
use corelog_coordination::txn::records::{decode_txn_log_batches, encode_txn_log_batches};
use corelog_coordination::txn::*;
use corelog_model::rng::SplitMix64;
use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

const STEPS: usize = 1_500;
const TOPICS: &[&str] = &["a", "b"];
const PARTITIONS: i32 = 3;

fn config() -> TxnConfig {
    TxnConfig {
        transaction_max_timeout_ms: 60_000,
        transactional_id_expiration_ms: 120_000,
        abort_timed_out_check_interval_ms: 1_000,
        transactional_ids_max: 100,
        partitions_per_txn_max: 5,
        snapshot_min_bytes: 3_000,
        remove_expired_check_interval_ms: 10_000,
    }
}

#[derive(Debug, Clone)]
enum Req {
    Init(Option<(i64, i16)>),
    Add(Vec<TopicPartition>),
    End(bool),
}

struct Client {
    tid: String,
    /// The producer id and epoch this instance holds.
    pe: Option<(i64, i16)>,
    /// KIP-360: the next InitProducerId names this.
    expected: Option<(i64, i16)>,
    /// The current transaction's key once a partition was added.
    txn: Option<u64>,
    adds: u32,
    inflight: Option<(ReplyId, Req)>,
    /// A request to send again (its answer was lost or said retry).
    retry: Option<Req>,
    wake_at: i64,
}

#[derive(Default)]
struct Partition {
    /// Open transaction per producer id: its key and data epoch.
    open: BTreeMap<i64, (u64, i16)>,
    /// Last marker per producer id: epoch and decision.
    last_marker: BTreeMap<i64, (i16, bool)>,
}

struct MarkerCall {
    id: MarkerWriteId,
    pid: i64,
    epoch: i16,
    commit: bool,
    partitions: Vec<TopicPartition>,
}

struct World {
    seed: u64,
    rng: SplitMix64,
    now: i64,
    c: TransactionCoordinator,
    coordinator_epoch: i32,
    next_reply: u64,
    next_pid: i64,
    next_key: u64,
    clients: Vec<Client>,
    outstanding: BTreeMap<ReplyId, usize>,
    appends: VecDeque<(WriteId, Vec<TxnLogRecord>, bool)>,
    markers: Vec<MarkerCall>,
    /// The durable state log.
    log: Vec<TxnLogRecord>,
    parts: BTreeMap<TopicPartition, Partition>,
    /// Decision per transaction key, from markers.
    decisions: BTreeMap<u64, bool>,
    /// Decision per transaction key, from EndTxn answered NONE.
    client_decisions: BTreeMap<u64, bool>,
    /// Last InitProducerId granted per transactional id.
    grants: BTreeMap<String, (i64, i16)>,
    /// Highest marker epoch per producer id.
    marker_epochs: BTreeMap<i64, i16>,
    faults: bool,
    trace: bool,
    events: VecDeque<String>,
    stats: Stats,
}

#[derive(Default, Clone, Copy)]
struct Stats {
    commits: usize,
    aborts: usize,
    crashes: usize,
    fenced: usize,
    snapshots: usize,
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = SplitMix64::new(seed);
        let ids = 2 + rng.below(3) as usize;
        let mut clients = Vec::new();
        for i in 0..ids {
            let instances = 1 + rng.below(2) as usize;
            for _ in 0..instances {
                clients.push(Client {
                    tid: format!("tx-{i}"),
                    pe: None,
                    expected: None,
                    txn: None,
                    adds: 0,
                    inflight: None,
                    retry: None,
                    wake_at: 0,
                });
            }
        }
        let mut c = TransactionCoordinator::new(config(), 0);
        assert!(c.finish_load(0).is_empty());
        World {
            seed,
            rng,
            now: 0,
            c,
            coordinator_epoch: 0,
            next_reply: 0,
            next_pid: 1000,
            next_key: 0,
            clients,
            outstanding: BTreeMap::new(),
            appends: VecDeque::new(),
            markers: Vec::new(),
            log: Vec::new(),
            parts: BTreeMap::new(),
            decisions: BTreeMap::new(),
            client_decisions: BTreeMap::new(),
            grants: BTreeMap::new(),
            marker_epochs: BTreeMap::new(),
            faults: true,
            trace: std::env::var("SIM_TRACE").is_ok(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    fn event(&mut self, e: String) {
        if self.trace {
            eprintln!("[{}] {e}", self.now);
        }
        self.events.push_back(e);
        if self.events.len() > 60 {
            self.events.pop_front();
        }
    }

    fn fail(&self, what: &str) -> ! {
        let recent: Vec<&String> = self.events.iter().collect();
        panic!(
            "seed {} failed at {} ms: {what}\nrecent events:\n{recent:#?}\nreplay: SIM_SEED={} SIM_TRACE=1 cargo test -p corelog-coordination --test txn_sim -- --nocapture",
            self.seed, self.now, self.seed
        );
    }

    fn run(&mut self) {
        for _ in 0..STEPS {
            let roll = self.rng.below(1000);
            match roll {
                0..=399 => self.client_action(),
                400..=649 => self.complete_append(),
                650..=799 => self.complete_markers(),
                800..=994 => self.advance(),
                _ => self.crash(),
            }
        }
        self.quiesce();
    }

    // ------------------------------------------------------------ driving --

    fn step(&mut self, input: TxnInput) {
        let out = self.c.step(self.now, input);
        self.absorb(out);
    }

    fn absorb(&mut self, out: Vec<TxnOutput>) {
        for o in out {
            match o {
                TxnOutput::Reply(r, x) => self.on_reply(r, x),
                TxnOutput::Append {
                    write,
                    records,
                    compacts,
                } => {
                    if compacts {
                        self.stats.snapshots += 1;
                    }
                    self.appends.push_back((write, records, compacts));
                }
                TxnOutput::WriteMarkers {
                    id,
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                    commit,
                    partitions,
                } => {
                    if coordinator_epoch != self.coordinator_epoch {
                        self.fail("markers with another coordinator epoch");
                    }
                    self.event(format!(
                        "markers {id:?} {transactional_id} pid {producer_id} epoch {producer_epoch} commit {commit} {partitions:?}"
                    ));
                    let e = self
                        .marker_epochs
                        .entry(producer_id.0)
                        .or_insert(producer_epoch.0);
                    *e = (*e).max(producer_epoch.0);
                    self.markers.push(MarkerCall {
                        id,
                        pid: producer_id.0,
                        epoch: producer_epoch.0,
                        commit,
                        partitions,
                    });
                }
            }
        }
    }

    fn tick_if_due(&mut self) {
        if self.c.next_deadline_ms().is_some_and(|d| d <= self.now) {
            self.step(TxnInput::Tick);
        }
    }

    fn advance(&mut self) {
        let dt = if self.rng.chance(100) {
            1 + self.rng.below(20_000) as i64
        } else {
            1 + self.rng.below(800) as i64
        };
        self.now += dt;
        self.tick_if_due();
    }

    // ------------------------------------------------------------ clients --

    fn client_action(&mut self) {
        let i = self.rng.below(self.clients.len() as u64) as usize;
        if self.clients[i].inflight.is_some() || self.clients[i].wake_at > self.now {
            return;
        }
        let req = match self.clients[i].retry.take() {
            Some(r) => r,
            None => self.next_request(i),
        };
        self.send(i, req);
    }

    fn next_request(&mut self, i: usize) -> Req {
        let c = &self.clients[i];
        match (c.pe, c.txn) {
            (None, _) => Req::Init(c.expected),
            (Some(pe), None) => {
                if self.rng.chance(60) {
                    Req::Init(Some(pe))
                } else {
                    Req::Add(self.some_partitions())
                }
            }
            (Some(_), Some(_)) => {
                if c.adds < 4 && self.rng.chance(300) {
                    Req::Add(self.some_partitions())
                } else {
                    Req::End(self.rng.chance(700))
                }
            }
        }
    }

    fn some_partitions(&mut self) -> Vec<TopicPartition> {
        let n = 1 + self.rng.below(3);
        let mut out = BTreeSet::new();
        for _ in 0..n {
            let t = TOPICS[self.rng.below(TOPICS.len() as u64) as usize];
            out.insert(tp(t, self.rng.below(PARTITIONS as u64) as i32));
        }
        out.into_iter().collect()
    }

    fn send(&mut self, i: usize, req: Req) {
        self.next_reply += 1;
        let r = ReplyId(self.next_reply);
        let c = &self.clients[i];
        let tid = c.tid.clone();
        let request = match &req {
            Req::Init(expected) => {
                self.next_pid += 1;
                TxnRequest::InitProducerId {
                    transactional_id: tid.clone(),
                    transaction_timeout_ms: 2_000 + self.rng.below(15_000) as i32,
                    expected: expected.map(|(p, e)| (ProducerId(p), ProducerEpoch(e))),
                    fresh_producer_id: ProducerId(self.next_pid),
                }
            }
            Req::Add(parts) => {
                let (p, e) = c.pe.expect("adds with an id");
                TxnRequest::AddPartitions {
                    transactional_id: tid.clone(),
                    producer_id: ProducerId(p),
                    producer_epoch: ProducerEpoch(e),
                    partitions: parts.clone(),
                }
            }
            Req::End(commit) => {
                let (p, e) = c.pe.expect("ends with an id");
                TxnRequest::EndTxn {
                    transactional_id: tid.clone(),
                    producer_id: ProducerId(p),
                    producer_epoch: ProducerEpoch(e),
                    commit: *commit,
                }
            }
        };
        self.event(format!(
            "client {i} ({tid}, {:?}) sends {r:?} {req:?}",
            c.pe
        ));
        self.clients[i].inflight = Some((r, req));
        self.outstanding.insert(r, i);
        self.step(TxnInput::Request(r, Box::new(request)));
    }

    fn on_reply(&mut self, r: ReplyId, x: TxnResponse) {
        let Some(i) = self.outstanding.remove(&r) else {
            self.fail(&format!("reply to {r:?}, which is not outstanding: {x:?}"));
        };
        let Some((rr, req)) = self.clients[i].inflight.take() else {
            self.fail("reply to a client with nothing in flight");
        };
        assert_eq!(rr, r);
        self.event(format!("client {i} gets {r:?} {x:?}"));
        let tid = self.clients[i].tid.clone();
        let retriable = |code: i16| {
            code == codes::CONCURRENT_TRANSACTIONS
                || code == APPEND_FAILED_ERROR
                || code == codes::NOT_COORDINATOR
        };
        match (req, x) {
            (
                Req::Init(expected),
                TxnResponse::InitProducerId {
                    error,
                    producer_id,
                    producer_epoch,
                },
            ) => {
                if error == codes::NONE {
                    let got = (producer_id.0, producer_epoch.0);
                    if let Some(prev) = self.grants.get(&tid) {
                        let retry_of_bump = expected.is_some() && got == *prev;
                        if got < *prev || (got == *prev && !retry_of_bump) {
                            self.fail(&format!("{tid}: granted {got:?} after {prev:?}"));
                        }
                    }
                    self.grants.insert(tid, got);
                    let c = &mut self.clients[i];
                    c.pe = Some(got);
                    c.expected = None;
                    c.txn = None;
                    c.adds = 0;
                } else if retriable(error) {
                    self.clients[i].retry = Some(Req::Init(expected));
                    self.clients[i].wake_at = self.now + 50;
                } else if error == codes::PRODUCER_FENCED {
                    self.fenced(i);
                } else {
                    self.fail(&format!("InitProducerId answered {error}"));
                }
            }
            (Req::Add(parts), TxnResponse::AddPartitions { results }) => {
                let error = results[0].1;
                if results.iter().any(|(_, c)| *c != error) {
                    self.fail("AddPartitions answered unevenly");
                }
                if error == codes::NONE {
                    let pe = self.clients[i].pe.expect("in a transaction");
                    self.check_not_fenced(&tid, pe, "AddPartitions");
                    let key = match self.clients[i].txn {
                        Some(k) => k,
                        None => {
                            self.next_key += 1;
                            self.next_key
                        }
                    };
                    let c = &mut self.clients[i];
                    c.txn = Some(key);
                    c.adds += 1;
                    // The producer writes its data at once.
                    for p in parts {
                        let part = self.parts.entry(p.clone()).or_default();
                        match part.open.get(&pe.0) {
                            Some((k, _)) if *k != key => {
                                let what = format!(
                                    "{p}: transaction {key} of pid {} opens while {k} is still open",
                                    pe.0
                                );
                                self.fail(&what);
                            }
                            _ => {
                                part.open.insert(pe.0, (key, pe.1));
                            }
                        }
                    }
                    if self.rng.chance(40) {
                        // Sleeps past its timeout now and then.
                        self.clients[i].wake_at = self.now + 5_000 + self.rng.below(20_000) as i64;
                    }
                } else if error == TXN_PARTITIONS_FULL && self.clients[i].txn.is_some() {
                    // The bound: end the transaction instead.
                    self.clients[i].adds = u32::MAX;
                } else if retriable(error) {
                    self.clients[i].retry = Some(Req::Add(parts));
                    self.clients[i].wake_at = self.now + 50;
                } else if error == codes::PRODUCER_FENCED
                    || error == codes::INVALID_PRODUCER_ID_MAPPING
                {
                    self.fenced(i);
                } else {
                    self.fail(&format!("AddPartitions answered {error}"));
                }
            }
            (Req::End(commit), TxnResponse::EndTxn { error }) => {
                if error == codes::NONE {
                    let pe = self.clients[i].pe.expect("in a transaction");
                    self.check_not_fenced(&tid, pe, "EndTxn");
                    let key = self.clients[i].txn.expect("ends a transaction");
                    if let Some(d) = self.decisions.get(&key) {
                        if *d != commit {
                            self.fail(&format!(
                                "EndTxn({commit}) answered NONE for a transaction marked {d}"
                            ));
                        }
                    }
                    self.client_decisions.insert(key, commit);
                    if commit {
                        self.stats.commits += 1;
                    } else {
                        self.stats.aborts += 1;
                    }
                    let c = &mut self.clients[i];
                    c.txn = None;
                    c.adds = 0;
                    if self.rng.chance(50) {
                        // Idle long enough for the id to expire now and then.
                        self.clients[i].wake_at =
                            self.now + 100_000 + self.rng.below(60_000) as i64;
                    }
                } else if retriable(error) {
                    self.clients[i].retry = Some(Req::End(commit));
                    self.clients[i].wake_at = self.now + 50;
                } else if error == codes::PRODUCER_FENCED
                    || error == codes::INVALID_PRODUCER_ID_MAPPING
                {
                    self.fenced(i);
                } else {
                    self.fail(&format!("EndTxn({commit}) answered {error}"));
                }
            }
            (req, x) => self.fail(&format!("{req:?} answered {x:?}")),
        }
    }

    /// The instance is fenced: it starts over as a new one.
    fn fenced(&mut self, i: usize) {
        self.stats.fenced += 1;
        let c = &mut self.clients[i];
        c.pe = None;
        c.expected = None;
        c.txn = None;
        c.adds = 0;
        c.retry = None;
    }

    fn check_not_fenced(&self, tid: &str, pe: (i64, i16), what: &str) {
        if self.grants.get(tid) != Some(&pe) {
            self.fail(&format!(
                "{what} answered NONE to {tid} {pe:?}, fenced by the grant of {:?}",
                self.grants.get(tid)
            ));
        }
        if self.marker_epochs.get(&pe.0).is_some_and(|e| *e > pe.1) {
            self.fail(&format!(
                "{what} answered NONE to {tid} {pe:?} after markers of epoch {:?}",
                self.marker_epochs.get(&pe.0)
            ));
        }
    }

    // --------------------------------------------------------------- log --

    fn complete_append(&mut self) {
        let Some((w, records, compacts)) = self.appends.pop_front() else {
            return;
        };
        let roll = if self.faults { self.rng.below(100) } else { 0 };
        let durable = !(80..92).contains(&roll);
        if durable {
            self.make_durable(records, compacts);
        }
        if roll < 80 {
            self.event(format!("append {w:?} done"));
            self.step(TxnInput::AppendDone(w));
        } else {
            self.event(format!("append {w:?} failed (durable: {durable})"));
            self.step(TxnInput::AppendFailed(w));
        }
    }

    fn make_durable(&mut self, records: Vec<TxnLogRecord>, compacts: bool) {
        if compacts {
            self.log.clear();
        }
        for r in records {
            if let Some(v) = &r.value {
                if matches!(v.state, TxnState::CompleteCommit | TxnState::CompleteAbort) {
                    for (p, part) in &self.parts {
                        if let Some((key, _)) = part.open.get(&v.producer_id) {
                            let what = format!(
                                "{} {:?} is durable while {p} has transaction {key} of pid {} open",
                                r.transactional_id, v.state, v.producer_id
                            );
                            self.fail(&what);
                        }
                    }
                }
            }
            self.log.push(r);
        }
    }

    // ----------------------------------------------------------- markers --

    fn complete_markers(&mut self) {
        if self.markers.is_empty() {
            return;
        }
        let k = self.rng.below(self.markers.len() as u64) as usize;
        let call = self.markers.swap_remove(k);
        let mut results = Vec::new();
        for p in &call.partitions {
            let roll = if self.faults { self.rng.below(100) } else { 0 };
            let code = if roll < 85 {
                self.write_marker(p, call.pid, call.epoch, call.commit);
                codes::NONE
            } else if roll < 95 {
                codes::NOT_LEADER_OR_FOLLOWER
            } else {
                // Written, but the answer says it timed out.
                self.write_marker(p, call.pid, call.epoch, call.commit);
                codes::REQUEST_TIMED_OUT
            };
            results.push((p.clone(), code));
        }
        self.event(format!("markers {:?} answered {results:?}", call.id));
        self.step(TxnInput::MarkersDone(call.id, results));
    }

    fn write_marker(&mut self, p: &TopicPartition, pid: i64, epoch: i16, commit: bool) {
        let part = self.parts.entry(p.clone()).or_default();
        let opened = part.open.remove(&pid);
        let last = part.last_marker.insert(pid, (epoch, commit));
        match opened {
            Some((key, data_epoch)) => {
                if epoch < data_epoch {
                    self.fail(&format!(
                        "{p}: marker epoch {epoch} below the data's {data_epoch}"
                    ));
                }
                if let Some(d) = self.decisions.insert(key, commit) {
                    if d != commit {
                        self.fail(&format!(
                            "transaction {key} both committed and aborted ({p})"
                        ));
                    }
                }
                if let Some(d) = self.client_decisions.get(&key) {
                    if *d != commit {
                        self.fail(&format!(
                            "transaction {key} ended {d} by EndTxn but marked {commit} on {p}"
                        ));
                    }
                }
            }
            None => {
                // A marker written again (after a restart or a lost answer):
                // the same decision as before for that epoch.
                if let Some((e, d)) = last {
                    if e == epoch && d != commit {
                        self.fail(&format!(
                            "{p}: pid {pid} epoch {epoch} marked {d} then {commit}"
                        ));
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------- crash --

    fn crash(&mut self) {
        if !self.faults {
            return;
        }
        self.stats.crashes += 1;
        let failed = self.c.fail_pending();
        self.event(format!("crash; fail_pending {failed:?}"));
        for r in failed {
            let Some(i) = self.outstanding.remove(&r) else {
                self.fail(&format!(
                    "fail_pending names {r:?}, which is not outstanding"
                ));
            };
            let (_, req) = self.clients[i].inflight.take().expect("in flight");
            // NOT_COORDINATOR: the client finds the coordinator again and
            // sends the same request.
            self.clients[i].retry = Some(req);
        }
        if !self.outstanding.is_empty() {
            self.fail(&format!("replies lost: {:?}", self.outstanding));
        }
        // Appends in flight: a prefix reached the log.
        let n = self.rng.below(self.appends.len() as u64 + 1) as usize;
        let appends: Vec<_> = self.appends.drain(..).collect();
        for (_, records, compacts) in appends.into_iter().take(n) {
            self.make_durable(records, compacts);
        }
        // Markers in flight: written or not.
        let markers = std::mem::take(&mut self.markers);
        for call in markers {
            if self.rng.chance(500) {
                for p in &call.partitions {
                    self.write_marker(p, call.pid, call.epoch, call.commit);
                }
            }
        }
        self.coordinator_epoch += 1;
        let mut c = TransactionCoordinator::new(config(), self.coordinator_epoch);
        for b in encode_txn_log_batches(&self.log, self.now, 1024) {
            for (_, r) in decode_txn_log_batches(b).expect("batches decode") {
                c.load(r.expect("records decode"));
            }
        }
        self.c = c;
        let out = self.c.finish_load(self.now);
        self.absorb(out);
        // The epochs granted or used in markers never go back.
        let grants: Vec<(String, (i64, i16))> =
            self.grants.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (tid, granted) in grants {
            self.next_reply += 1;
            let r = ReplyId(self.next_reply);
            let out = self.c.step(
                self.now,
                TxnInput::Request(
                    r,
                    Box::new(TxnRequest::Describe {
                        transactional_ids: vec![tid.clone()],
                    }),
                ),
            );
            let Some(TxnOutput::Reply(_, TxnResponse::Describe { states })) = out.first() else {
                self.fail("describe");
            };
            let d = &states[0];
            if d.error != codes::NONE {
                continue; // expired
            }
            let loaded = (d.producer_id.0, d.producer_epoch.0);
            if loaded < granted {
                self.fail(&format!(
                    "{tid}: loaded {loaded:?} after granting {granted:?}"
                ));
            }
            if let Some(e) = self.marker_epochs.get(&loaded.0) {
                if loaded.1 < *e {
                    self.fail(&format!(
                        "{tid}: loaded {loaded:?} after markers of epoch {e}"
                    ));
                }
            }
        }
    }

    // ----------------------------------------------------------- the end --

    fn quiesce(&mut self) {
        self.faults = false;
        for c in &mut self.clients {
            c.retry = None;
        }
        // Past every transaction timeout (at most 60 s), with markers and
        // appends all succeeding.
        for _ in 0..100 {
            while !self.appends.is_empty() {
                self.complete_append();
            }
            while !self.markers.is_empty() {
                self.complete_markers();
            }
            self.now += 1_000;
            self.tick_if_due();
        }
        if !self.outstanding.is_empty() {
            self.fail(&format!("unanswered at the end: {:?}", self.outstanding));
        }
        for (p, part) in &self.parts {
            if !part.open.is_empty() {
                self.fail(&format!("{p} still has open transactions {:?}", part.open));
            }
        }
        for (key, d) in &self.client_decisions {
            if self.decisions.get(key).is_some_and(|m| m != d) {
                self.fail(&format!("transaction {key}: EndTxn {d}, markers otherwise"));
            }
        }
        self.next_reply += 1;
        let out = self.c.step(
            self.now,
            TxnInput::Request(
                ReplyId(self.next_reply),
                Box::new(TxnRequest::List {
                    states: vec![],
                    producer_ids: vec![],
                    duration_ms: -1,
                }),
            ),
        );
        if let Some(TxnOutput::Reply(_, TxnResponse::List { states, .. })) = out.first() {
            for l in states {
                if !matches!(
                    l.state.as_str(),
                    "Empty" | "CompleteCommit" | "CompleteAbort"
                ) {
                    self.fail(&format!("{} left in {}", l.transactional_id, l.state));
                }
            }
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn transactions_survive_seeded_faults() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        World::new(seed).run();
        return;
    }
    let base = env_u64("SIM_SEED_BASE", 0);
    let seeds = env_u64("SIM_SEEDS", 300);
    let mut total = Stats::default();
    let mut markers_decided = 0;
    for seed in base..base + seeds {
        let mut w = World::new(seed);
        w.run();
        let s = w.stats;
        total.commits += s.commits;
        total.aborts += s.aborts;
        total.crashes += s.crashes;
        total.fenced += s.fenced;
        total.snapshots += s.snapshots;
        markers_decided += w.decisions.len();
    }
    eprintln!(
        "{seeds} seeds from {base}: {} commits and {} aborts answered, {markers_decided} transactions marked, {} crashes, {} fenced answers, {} snapshots",
        total.commits, total.aborts, total.crashes, total.fenced, total.snapshots
    );
    let n = seeds as usize;
    assert!(total.commits > n, "too few commits: {}", total.commits);
    assert!(total.aborts > n / 4, "too few aborts: {}", total.aborts);
    assert!(total.crashes > n, "too few crashes: {}", total.crashes);
    assert!(
        total.fenced > n / 2,
        "too few fenced answers: {}",
        total.fenced
    );
    assert!(total.snapshots > 0, "no snapshot");
}
