//! Seeded deterministic simulation of partition replication with the
//! controller: three brokers replicate one partition (replication factor
//! 3) with `corelog_replication`'s [`Leader`] and [`Follower`] machines,
//! and the real `corelog_controller::Controller` registers, fences and
//! re-elects, gives leadership back to preferred replicas (every 3 s here),
//! and commits ISR changes (AlterPartition).
//!
//! The brokers here are models of the server's host code, written to do
//! what `broker/server` does with these machines, step for step:
//! - the log keeps the storage layer's epoch rules (`set_leader_epoch`
//!   records the leader's epoch at the log end; a replicated batch older
//!   than the latest epoch is refused; a follower's truncation closes and
//!   reopens the log, so a recovery runs first, then cuts the epochs that
//!   started in the removed range); a crash loses what was not fdatasync'd;
//! - the role follows the metadata view as `controller::follow_role` does
//!   (a leader that stays leader only takes the committed ISR; a follower
//!   whose leader or epoch changed starts over);
//! - a follower's task is `replica::FollowerTask::run`: OffsetForLeaderEpoch
//!   and truncation first, then fetches whose offset is the durable end,
//!   a restart of the whole task (a new machine from the log) after any
//!   error, 200 ms later;
//! - a leader answers OffsetForLeaderEpoch and Fetch as the handlers do,
//!   with the `current_leader_epoch` check first.
//!
//! The controller is one node whose proposals commit at once (the metadata
//! quorum has its own simulation, `corelog-controller`'s `tests/sim.rs`);
//! each broker learns the image late, or not at all while cut off.
//!
//! Faults: a broker crashes (losing what it did not fdatasync) and
//! restarts; links are cut one way or both, between brokers and between a
//! broker and the controller; messages are lost and delayed; fdatasyncs
//! come late. Producers write to whichever broker they believe leads, with
//! `acks=all` (recorded when answered) or `acks=1` (which leaves divergent
//! tails on deposed leaders); two idempotent producers send each sequence
//! until a leader acknowledges it, retrying the same batch on whichever
//! broker they try next, and a leader dedupes them with the producer state
//! its own log makes (what storage keeps, and rebuilds on truncation).
//!
//! Invariants, checked as the run goes:
//! - one leader per leader epoch in the controller's image;
//! - a leader's high watermark advances only while its ISR has at least
//!   `min.insync.replicas` members, and only over offsets that every member
//!   of its (maximal) ISR holds on disk, identical to its own;
//! - no offset below any high watermark ever announced is later replaced
//!   (the committed history only grows), and a newly elected leader holds
//!   all of it;
//! - no two acknowledged writes share an offset, and every acknowledged
//!   write is in the committed history at its offset;
//! - each idempotent producer's batches in the committed history are its
//!   sequences 0, 1, 2, ... once each (no retry duplicated on a new
//!   leader, none lost), and the leader the controller elected last never
//!   finds a producer out of order (it holds every acknowledged sequence).
//!
//! After the faults heal (all brokers up, every link whole, no more
//! writes), within a bounded time: a leader, all three replicas in its ISR,
//! every log equal to the leader's, the high watermark at the log end, and
//! every acknowledged write in it.
//!
//! `cargo test -p corelog-replication --test sim` runs `SIM_SEEDS` seeds
//! (default 10,000) from `SIM_SEED_BASE` (default 0); `SIM_SEED=N` replays
//! one, and `SIM_TRACE=1` prints its events. A failing seed panics with its
//! number.
//!
//! Not modelled: retention, more than one partition, more than one batch
//! in flight per producer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use corelog_controller as ctl;
use corelog_model::rng::SplitMix64 as Rng;
use corelog_model::{LeaderEpoch, NodeId, Offset};
use corelog_replication::epochs::EpochCache;
use corelog_replication::follower::{self, Follower};
use corelog_replication::{self as repl, Leader, ReplicationConfig, Takeover};

// ----------------------------------------------------------------- random --

/// A broker id, uniformly.
fn random_node(rng: &mut Rng) -> NodeId {
    NodeId(1 + rng.below(NODES as u64) as i32)
}

// ------------------------------------------------------------- constants --

const NODES: usize = 3;
const TOPIC: &str = "t";
/// The server's `REPLICA_RETRY_BACKOFF`.
const RETRY_BACKOFF_MS: u64 = 200;
/// A request without an answer for this long fails (the server's
/// `REPLICA_REQUEST_TIMEOUT`, shortened to the simulation's scale).
const REQUEST_TIMEOUT_MS: u64 = 1_000;
const SESSION_TIMEOUT_MS: u64 = 2_000;
const HEARTBEAT_MS: u64 = 250;
const LAG_TIME_MAX_MS: u64 = 1_000;
const LEADER_TICK_MS: u64 = 250;
/// How often the controller's image reaches each broker again (the
/// quorum's own replication, which repeats until it lands).
const PUBLISH_MS: u64 = 300;
/// Batches per replica fetch.
const FETCH_BATCHES_MAX: usize = 4;
/// Simulated time of the faulty part of a run, and of the quiet part
/// after it in which everything must converge.
const FAULTY_MS: u64 = 30_000;
const QUIET_MS: u64 = 30_000;

// -------------------------------------------------------------------- log --

/// One batch of one record; its offset is its index in the log.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry {
    epoch: LeaderEpoch,
    value: u64,
    /// An idempotent producer's `(producer id, sequence)`.
    producer: Option<(u8, u32)>,
}

impl std::fmt::Debug for Entry {
    /// `e<epoch>:<value>` (`@p<id>s<seq>` for an idempotent producer's), so
    /// that a log fits on a line of a failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "e{}:{}", self.epoch.0, self.value)?;
        if let Some((p, seq)) = self.producer {
            write!(f, "@p{p}s{seq}")?;
        }
        Ok(())
    }
}

/// A partition log with the storage layer's rules for leader epochs.
#[derive(Debug, Clone, Default)]
struct Log {
    entries: Vec<Entry>,
    /// `entries[..durable]` are on disk.
    durable: usize,
    cache: EpochCache,
    /// The epoch appended batches are stamped with (`PartitionLog::leader_epoch`).
    leader_epoch: LeaderEpoch,
    /// The high watermark in the last checkpoint (`PartitionLog::high_watermark`).
    checkpointed_hw: Option<Offset>,
}

#[derive(Debug)]
enum AppendError {
    OffsetMismatch,
    EpochBehind,
}

impl Log {
    fn end(&self) -> Offset {
        Offset(self.entries.len() as i64)
    }
    fn durable_end(&self) -> Offset {
        Offset(self.durable as i64)
    }

    /// `PartitionLog::set_leader_epoch`.
    fn set_leader_epoch(&mut self, epoch: LeaderEpoch) -> bool {
        if epoch.0 < 0 || self.cache.latest().is_some_and(|l| epoch < l) {
            return false;
        }
        if self.cache.latest() != Some(epoch) {
            self.cache.assign(epoch, self.end());
        }
        self.leader_epoch = epoch;
        true
    }

    /// `PartitionLog::append` on a leader. An idempotent producer's batch
    /// is checked against the producer state the log's own batches make
    /// (which is what storage keeps, rebuilt on truncation): the sequence
    /// after its last one is appended; its last one again is a retry,
    /// answered with the offset it already has; any other is out of order.
    fn append(&mut self, value: u64, producer: Option<(u8, u32)>) -> Result<Offset, Offset> {
        if let Some((id, seq)) = producer {
            let last = self
                .entries
                .iter()
                .enumerate()
                .rev()
                .find(|(_, e)| e.producer.is_some_and(|(p, _)| p == id));
            match last {
                Some((at, e)) if e.producer == Some((id, seq)) => {
                    return Err(Offset(at as i64));
                }
                Some((_, e)) if e.producer.is_some_and(|(_, s)| s + 1 != seq) => {
                    return Err(Offset(-1));
                }
                None if seq != 0 => return Err(Offset(-1)),
                _ => {}
            }
        }
        if self.cache.latest() != Some(self.leader_epoch) {
            self.cache.assign(self.leader_epoch, self.end());
        }
        let offset = self.end();
        self.entries.push(Entry {
            epoch: self.leader_epoch,
            value,
            producer,
        });
        Ok(offset)
    }

    /// `PartitionLog::append_replicated`.
    fn append_replicated(&mut self, offset: Offset, e: Entry) -> Result<(), AppendError> {
        if offset != self.end() {
            return Err(AppendError::OffsetMismatch);
        }
        if e.epoch.0 < 0
            || self
                .cache
                .latest_before(offset)
                .is_some_and(|l| e.epoch < l)
        {
            return Err(AppendError::EpochBehind);
        }
        self.cache.assign(e.epoch, offset);
        self.entries.push(e);
        Ok(())
    }

    /// `PartitionLog::open` after a crash or a close: what is on disk, the
    /// epochs its batches carry, the latest of them as the log's own.
    fn recover(&mut self) {
        self.entries.truncate(self.durable);
        let end = self.end();
        self.cache.truncate_from(end);
        for (i, e) in self.entries.iter().enumerate() {
            self.cache.assign(e.epoch, Offset(i as i64));
        }
        if let Some(latest) = self.cache.latest() {
            self.leader_epoch = latest;
        }
    }

    /// `Partition::truncate_to`: close (which completes the writes in
    /// flight), reopen, then `PartitionLog::truncate_to`, which cuts the
    /// epochs that started in the removed range.
    fn truncate_to(&mut self, to: Offset) {
        self.durable = self.entries.len();
        self.recover();
        let to = (to.0.max(0) as usize).min(self.entries.len());
        self.entries.truncate(to);
        self.durable = self.durable.min(to);
        let end = self.end();
        self.cache.truncate_from(end);
        // The close checkpointed the high watermark; the cut bounds it.
        self.checkpointed_hw = self.checkpointed_hw.map(|hw| hw.min(end));
    }
}

// ---------------------------------------------------------------- network --

/// A party: the controller (0) or a broker (1..=3).
type Party = i32;
const CONTROLLER: Party = 0;

#[derive(Debug, Clone)]
enum Body {
    Register {
        incarnation: u64,
    },
    Heartbeat {
        epoch: i64,
    },
    AlterPartition {
        broker_epoch: i64,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        isr: Vec<NodeId>,
        generation: u64,
        proposal: u64,
    },
    Registered {
        epoch: i64,
    },
    SessionAnswer {
        /// STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED: register again.
        stale: bool,
    },
    IsrAnswer {
        generation: u64,
        proposal: u64,
        answer: IsrReply,
    },
    View(View),
    AskEpoch {
        task: u64,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    },
    EpochAnswer {
        task: u64,
        answer: Result<(LeaderEpoch, Offset), &'static str>,
    },
    Fetch {
        task: u64,
        current_leader_epoch: LeaderEpoch,
        offset: Offset,
    },
    FetchAnswer {
        task: u64,
        answer: Result<(Vec<Entry>, Offset), &'static str>,
    },
}

/// The controller's answer to an AlterPartition, as the host sorts it.
#[derive(Debug, Clone)]
enum IsrReply {
    /// Applied: the host waits for the view that holds it.
    Committed,
    /// Refused after checking at the leader's partition epoch.
    NotApplied,
    /// No answer, or a refusal a commit of this proposal could explain.
    Unknown,
}

#[derive(Debug, Clone)]
struct Msg {
    from: Party,
    to: Party,
    /// A reply goes to one incarnation of a broker (its connection dies
    /// with the process).
    to_incarnation: Option<u64>,
    due: u64,
    body: Body,
}

/// A broker's view of the metadata.
#[derive(Debug, Clone)]
struct View {
    applied_index: u64,
    partition: ctl::PartitionInfo,
    min_insync_replicas: usize,
    /// Each broker's registration (its broker epoch) in the image.
    registrations: BTreeMap<NodeId, i64>,
}

// ----------------------------------------------------------------- broker --

#[derive(Debug)]
enum Role {
    Leader(Box<Leader>),
    Follower {
        high_watermark: Offset,
        leader: Option<(NodeId, LeaderEpoch)>,
    },
}

#[derive(Debug)]
enum Wait {
    Nothing,
    Reply { sent_ms: u64 },
    Durable(Offset),
    Backoff { until_ms: u64 },
}

/// `replica::FollowerTask`.
#[derive(Debug)]
struct Task {
    id: u64,
    leader: NodeId,
    leader_epoch: LeaderEpoch,
    machine: Follower,
    queue: VecDeque<follower::Output>,
    wait: Wait,
}

#[derive(Debug)]
struct Broker {
    id: NodeId,
    up: bool,
    incarnation: u64,
    log: Log,
    /// `Partition::leader_epoch`, what requests are fenced against.
    partition_epoch_cell: LeaderEpoch,
    /// The epoch of the leader's role, while it holds one.
    led_epoch: LeaderEpoch,
    role: Role,
    generation: u64,
    task: Option<Task>,
    view: Option<View>,
    broker_epoch: Option<i64>,
    next_heartbeat_ms: u64,
    /// The session's request in flight (`broker_task` sends one at a time).
    session_request_ms: Option<u64>,
    next_leader_tick_ms: u64,
    /// An AlterPartition in flight: its role generation and when it went.
    /// AlterPartition requests in flight, by proposal id: when each went
    /// (each is its own task in the server, waiting for its own answer).
    proposing: BTreeMap<u64, (u64, Vec<NodeId>, i32)>,
    /// A refused ISR change is proposed again at this time.
    /// A change the controller did not settle goes to the machine again
    /// at this time, with what the host learned of it.
    isr_retry: Vec<(u64, u64, repl::Input)>,
}

impl Broker {
    fn high_watermark(&self) -> Offset {
        match &self.role {
            Role::Leader(l) => l.high_watermark(),
            Role::Follower { high_watermark, .. } => *high_watermark,
        }
    }
}

// -------------------------------------------------------------- the world --

struct PendingAck {
    node: NodeId,
    incarnation: u64,
    generation: u64,
    offset: Offset,
    value: u64,
    /// The idempotent producer that waits for it.
    producer: Option<u8>,
}

/// An idempotent producer (`enable.idempotence`, one batch in flight):
/// it sends its next sequence until a leader acknowledges it, retrying the
/// same batch on whichever broker it tries next.
#[derive(Debug, Default)]
struct Producer {
    next_seq: u32,
    /// The batch being sent: its value, and whether a leader holds it in a
    /// pending acknowledgement.
    in_flight: Option<(u64, bool)>,
}

const PRODUCERS: usize = 2;

struct World {
    seed: u64,
    rng: Rng,
    now: u64,
    trace: bool,
    ctrl: ctl::Controller,
    ctrl_index: u64,
    next_reply: u64,
    /// Which broker each controller reply goes to.
    replies: BTreeMap<u64, (NodeId, Asked)>,
    brokers: Vec<Broker>,
    net: Vec<Msg>,
    /// Directed links that drop everything.
    cut: BTreeSet<(Party, Party)>,
    loss_per_mille: u64,
    next_task: u64,
    next_value: u64,
    min_insync_replicas: usize,
    // The checker's state.
    committed: Vec<Entry>,
    acked: BTreeMap<Offset, u64>,
    pending_acks: Vec<PendingAck>,
    producers: Vec<Producer>,
    /// The sequence each producer's next committed batch must have.
    committed_next_seq: [u32; PRODUCERS],
    leaders_by_epoch: BTreeMap<LeaderEpoch, NodeId>,
    /// The partition as the image held it after the previous record.
    last_partition: Option<ctl::PartitionInfo>,
    /// Leaders elected from the eligible leader replicas (KIP-966).
    elr_elections: usize,
    /// How much of the committed history there was at each election.
    elected_with: BTreeMap<LeaderEpoch, usize>,
    next_publish_ms: u64,
}

/// What a controller reply answers.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// The broker session's request (register or heartbeat).
    Session,
    /// An AlterPartition of this role generation, with its proposal id.
    Isr(u64, u64),
}

fn idx(n: NodeId) -> usize {
    (n.0 - 1) as usize
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let min_insync_replicas = match rng.below(10) {
            0 => 1,
            1 => 3,
            _ => 2,
        };
        let loss_per_mille = [0, 0, 10, 50][rng.below(4) as usize];
        let mut ctrl = ctl::Controller::new(ctl::ControllerConfig {
            session_timeout_ms: SESSION_TIMEOUT_MS,
            // Leadership goes back to the preferred replica often here, so
            // that clean handovers mix with the failovers.
            leader_imbalance_check_interval_ms: 3_000,
            ..ctl::ControllerConfig::new(NodeId(0), seed)
        });
        ctrl.step(
            0,
            ctl::Input::Leadership {
                is_leader: true,
                term: 1,
            },
        );
        let brokers = (1..=NODES as i32)
            .map(|i| Broker {
                id: NodeId(i),
                up: true,
                incarnation: 1,
                log: Log::default(),
                partition_epoch_cell: LeaderEpoch(0),
                led_epoch: LeaderEpoch(-1),
                role: Role::Follower {
                    high_watermark: Offset(0),
                    leader: None,
                },
                generation: 0,
                task: None,
                view: None,
                broker_epoch: None,
                next_heartbeat_ms: 0,
                session_request_ms: None,
                next_leader_tick_ms: 0,
                proposing: BTreeMap::new(),
                isr_retry: Vec::new(),
            })
            .collect();
        let mut w = World {
            seed,
            rng,
            now: 0,
            trace: std::env::var("SIM_TRACE").is_ok(),
            ctrl,
            ctrl_index: 0,
            next_reply: 1,
            replies: BTreeMap::new(),
            brokers,
            net: Vec::new(),
            cut: BTreeSet::new(),
            loss_per_mille,
            next_task: 1,
            next_value: 1,
            min_insync_replicas,
            committed: Vec::new(),
            acked: BTreeMap::new(),
            pending_acks: Vec::new(),
            producers: (0..PRODUCERS).map(|_| Producer::default()).collect(),
            committed_next_seq: [0; PRODUCERS],
            leaders_by_epoch: BTreeMap::new(),
            last_partition: None,
            elr_elections: 0,
            elected_with: BTreeMap::new(),
            next_publish_ms: 0,
        };
        // Registered, unfenced, and the topic created before the run.
        for i in 1..=NODES as i32 {
            let epoch = match w.ask(ctl::Request::RegisterBroker {
                broker: NodeId(i),
                incarnation: [i as u8; 16],
                endpoints: vec![ctl::Endpoint {
                    name: "PLAINTEXT".into(),
                    host: format!("b{i}"),
                    port: 9092,
                }],
                rack: None,
            }) {
                Ok(ctl::Response::Registered { epoch }) => epoch,
                other => panic!("seed {seed}: registration answered {other:?}"),
            };
            w.brokers[idx(NodeId(i))].broker_epoch = Some(epoch);
            w.ask(ctl::Request::Heartbeat {
                broker: NodeId(i),
                epoch,
            })
            .expect("heartbeat");
        }
        let first = 1 + w.rng.below(NODES as u64) as i32;
        let replicas: Vec<NodeId> = (0..NODES as i32)
            .map(|k| NodeId(1 + (first - 1 + k) % NODES as i32))
            .collect();
        w.ask(ctl::Request::CreateTopic {
            name: TOPIC.into(),
            partitions: -1,
            replication_factor: -1,
            assignment: Some(vec![replicas]),
            configs: vec![(
                "min.insync.replicas".into(),
                min_insync_replicas.to_string(),
            )],
            validate_only: false,
        })
        .expect("create topic");
        w
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{:>6} ms] {}", self.now, what());
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {} failed at {} ms: {what}\nreplay: SIM_SEED={} SIM_TRACE=1 cargo test -p corelog-replication --test sim -- --nocapture",
            self.seed, self.now, self.seed
        )
    }

    // ------------------------------------------------------- controller --

    /// Runs controller outputs: proposals commit at once; replies go out
    /// as messages (or come back, for the set-up's own requests).
    fn run_controller(&mut self, mut outs: Vec<ctl::Output>) -> Vec<(u64, ctl::Response)> {
        let mut local = Vec::new();
        while let Some(o) = outs.pop() {
            match o {
                ctl::Output::Propose { id, data } => {
                    self.ctrl_index += 1;
                    let more = self.ctrl.step(
                        self.now,
                        ctl::Input::Committed(vec![ctl::CommittedEntry {
                            index: self.ctrl_index,
                            data,
                            proposal: Some(id),
                        }]),
                    );
                    outs.extend(more);
                    self.after_commit();
                }
                ctl::Output::Reply { reply, result } => match self.replies.remove(&reply) {
                    Some((node, asked)) => self.reply_from_controller(node, asked, result),
                    None => match result {
                        Ok(r) => local.push((reply, r)),
                        Err(e) => self.fail(format!("a set-up request was refused: {e:?}")),
                    },
                },
                ctl::Output::Corrupt { reason, .. } => {
                    self.fail(format!("corrupt entry: {reason}"))
                }
            }
        }
        local
    }

    /// A request made by the set-up, answered at once.
    fn ask(&mut self, request: ctl::Request) -> Result<ctl::Response, String> {
        let reply = self.next_reply;
        self.next_reply += 1;
        let outs = self
            .ctrl
            .step(self.now, ctl::Input::Request { reply, request });
        let local = self.run_controller(outs);
        local
            .into_iter()
            .find(|(r, _)| *r == reply)
            .map(|(_, resp)| resp)
            .ok_or_else(|| "no answer".to_string())
    }

    fn reply_from_controller(
        &mut self,
        node: NodeId,
        asked: Asked,
        result: Result<ctl::Response, ctl::ApiError>,
    ) {
        // A change alone in its request: its own outcome is the answer.
        let result = match result {
            Ok(ctl::Response::PartitionsAltered(mut one)) if one.len() == 1 => one
                .pop()
                .expect("one")
                .map(|_| ctl::Response::PartitionsAltered(Vec::new())),
            other => other,
        };
        let body = match (asked, result) {
            (Asked::Session, Ok(ctl::Response::Registered { epoch })) => Body::Registered { epoch },
            (Asked::Session, Ok(_)) => Body::SessionAnswer { stale: false },
            (Asked::Session, Err(e)) => Body::SessionAnswer {
                stale: e.code == ctl::codes::STALE_BROKER_EPOCH
                    || e.code == ctl::codes::BROKER_ID_NOT_REGISTERED,
            },
            (Asked::Isr(generation, proposal), Ok(ctl::Response::PartitionsAltered(_))) => {
                Body::IsrAnswer {
                    generation,
                    proposal,
                    answer: IsrReply::Committed,
                }
            }
            (Asked::Isr(generation, proposal), Err(e))
                if e.code == ctl::codes::INELIGIBLE_REPLICA
                    || e.code == ctl::codes::INVALID_REQUEST =>
            {
                Body::IsrAnswer {
                    generation,
                    proposal,
                    answer: IsrReply::NotApplied,
                }
            }
            (Asked::Isr(generation, proposal), _) => Body::IsrAnswer {
                generation,
                proposal,
                answer: IsrReply::Unknown,
            },
        };
        let to_incarnation = Some(self.brokers[idx(node)].incarnation);
        self.send(CONTROLLER, node.0, to_incarnation, body);
    }

    /// After every committed record: one leader per epoch, and the image
    /// goes out to the brokers.
    fn after_commit(&mut self) {
        if let Some(p) = self.image_partition() {
            if p.leader.0 >= 0 {
                match self.leaders_by_epoch.get(&p.leader_epoch) {
                    Some(l) if *l != p.leader => self.fail(format!(
                        "two leaders in epoch {}: {} and {}",
                        p.leader_epoch.0, l.0, p.leader.0
                    )),
                    Some(_) => {}
                    None => {
                        // Elected from the ISR: it must hold everything
                        // committed, on disk.
                        let log = &self.brokers[idx(p.leader)].log;
                        let c = self.committed.len();
                        if log.durable < c || log.entries[..c] != self.committed[..] {
                            self.fail(format!(
                                "the controller elected broker {} in epoch {} without the committed history on its disk\n  log {:?} (durable {})\n  committed {:?}",
                                p.leader.0, p.leader_epoch.0, log.entries, log.durable, self.committed
                            ));
                        }
                        self.leaders_by_epoch.insert(p.leader_epoch, p.leader);
                        self.elected_with.insert(p.leader_epoch, c);
                        if self.last_partition.as_ref().is_some_and(|l| {
                            l.elr.contains(&p.leader) && !l.isr.contains(&p.leader)
                        }) {
                            self.elr_elections += 1;
                        }
                    }
                }
            }
        }
        self.last_partition = self.image_partition();
        self.publish();
    }

    fn image_partition(&self) -> Option<ctl::PartitionInfo> {
        self.ctrl
            .image()
            .topic(TOPIC)
            .and_then(|t| t.partitions.first())
            .cloned()
    }

    fn publish(&mut self) {
        let Some(partition) = self.image_partition() else {
            return;
        };
        let view = View {
            applied_index: self.ctrl.image().applied_index(),
            partition,
            min_insync_replicas: self.min_insync_replicas,
            registrations: self
                .ctrl
                .image()
                .brokers()
                .iter()
                .map(|(id, b)| (*id, b.epoch))
                .collect(),
        };
        for i in 1..=NODES as i32 {
            self.send(CONTROLLER, i, None, Body::View(view.clone()));
        }
    }

    fn controller_receives(&mut self, from: NodeId, body: Body) {
        let reply = self.next_reply;
        self.next_reply += 1;
        let b = &self.brokers[idx(from)];
        let request = match body {
            Body::Register { incarnation } => {
                self.replies.insert(reply, (from, Asked::Session));
                ctl::Request::RegisterBroker {
                    broker: from,
                    incarnation: [incarnation as u8; 16],
                    endpoints: vec![ctl::Endpoint {
                        name: "PLAINTEXT".into(),
                        host: format!("b{}", from.0),
                        port: 9092,
                    }],
                    rack: None,
                }
            }
            Body::Heartbeat { epoch } => {
                self.replies.insert(reply, (from, Asked::Session));
                ctl::Request::Heartbeat {
                    broker: from,
                    epoch,
                }
            }
            Body::AlterPartition {
                broker_epoch,
                leader_epoch,
                partition_epoch,
                isr,
                generation,
                proposal,
            } => {
                self.replies
                    .insert(reply, (from, Asked::Isr(generation, proposal)));
                let _ = b;
                let topic_id = self
                    .ctrl
                    .image()
                    .topic(TOPIC)
                    .map(|t| t.id)
                    .unwrap_or_default();
                ctl::Request::AlterPartitions {
                    broker: from,
                    broker_epoch,
                    changes: vec![ctl::IsrChange {
                        topic_id,
                        partition: 0,
                        leader_epoch,
                        partition_epoch,
                        isr,
                    }],
                }
            }
            other => self.fail(format!("the controller got {other:?}")),
        };
        let outs = self
            .ctrl
            .step(self.now, ctl::Input::Request { reply, request });
        self.run_controller(outs);
    }

    // ---------------------------------------------------------- network --

    fn send(&mut self, from: Party, to: Party, to_incarnation: Option<u64>, body: Body) {
        let delay = match &body {
            // A long poll with nothing to return waits at the leader.
            Body::FetchAnswer {
                answer: Ok((entries, _)),
                ..
            } if entries.is_empty() => 50 + self.rng.below(200),
            _ => 1 + self.rng.below(30),
        };
        let due = self.now + delay;
        self.net.push(Msg {
            from,
            to,
            to_incarnation,
            due,
            body,
        });
    }

    /// Delivers one message that is due, if any (a random one: messages of
    /// different connections overtake each other).
    fn deliver_one(&mut self) -> bool {
        let due: Vec<usize> = (0..self.net.len())
            .filter(|&i| self.net[i].due <= self.now)
            .collect();
        if due.is_empty() {
            return false;
        }
        let i = due[self.rng.below(due.len() as u64) as usize];
        let m = self.net.swap_remove(i);
        if self.cut.contains(&(m.from, m.to)) || self.rng.chance(self.loss_per_mille) {
            self.trace(|| format!("lost {} -> {}: {:?}", m.from, m.to, short(&m.body)));
            return true;
        }
        if m.from != CONTROLLER && !self.brokers[idx(NodeId(m.from))].up {
            // Sent by a process that died since: the connection is gone.
            return true;
        }
        if m.to == CONTROLLER {
            self.controller_receives(NodeId(m.from), m.body);
            return true;
        }
        let b = &self.brokers[idx(NodeId(m.to))];
        if !b.up || m.to_incarnation.is_some_and(|inc| inc != b.incarnation) {
            return true;
        }
        self.broker_receives(NodeId(m.to), NodeId(m.from), m.body);
        true
    }

    // ----------------------------------------------------------- broker --

    fn broker_receives(&mut self, me: NodeId, from: NodeId, body: Body) {
        match body {
            Body::Registered { epoch } => {
                let b = &mut self.brokers[idx(me)];
                b.broker_epoch = Some(epoch);
                b.session_request_ms = None;
                // Heartbeat at once: the first one unfences.
                b.next_heartbeat_ms = self.now + 10;
            }
            Body::SessionAnswer { stale } => {
                let b = &mut self.brokers[idx(me)];
                b.session_request_ms = None;
                if stale {
                    b.broker_epoch = None;
                }
            }
            Body::View(view) => {
                let b = &mut self.brokers[idx(me)];
                if b.view
                    .as_ref()
                    .is_some_and(|v| v.applied_index >= view.applied_index)
                {
                    return;
                }
                b.view = Some(view);
                self.follow_role(me);
            }
            Body::IsrAnswer {
                generation,
                proposal,
                answer,
            } => {
                self.trace(|| format!("broker {} hears {answer:?}", me.0));
                let b = &mut self.brokers[idx(me)];
                let Some((_, isr, partition_epoch)) = b.proposing.remove(&proposal) else {
                    // Timed out already.
                    return;
                };
                if b.generation != generation {
                    // For a role this broker left.
                    return;
                }
                match answer {
                    // The ISR comes with the next view, together with the
                    // min.insync.replicas the controller judged it by (the
                    // server's `replica::propose`). Taken from the answer,
                    // before a raised setting, it let a leader advance the
                    // high watermark past replicas the controller had made
                    // eligible, and elect one (seed 3722).
                    IsrReply::Committed => {}
                    // Proposed again after the backoff.
                    IsrReply::NotApplied => b.isr_retry.push((
                        self.now + RETRY_BACKOFF_MS,
                        generation,
                        repl::Input::IsrRefused {
                            isr,
                            partition_epoch,
                        },
                    )),
                    IsrReply::Unknown => b.isr_retry.push((
                        self.now + RETRY_BACKOFF_MS,
                        generation,
                        repl::Input::IsrUnknown {
                            isr,
                            partition_epoch,
                        },
                    )),
                }
            }
            Body::AskEpoch {
                task,
                current_leader_epoch,
                epoch,
            } => {
                // The handler answers only where the node's metadata names
                // it leader (`PartitionMeta::serving_shard`), which is where
                // it holds the leader's role; then the epoch check.
                let b = &self.brokers[idx(me)];
                let answer = if matches!(b.role, Role::Leader(_)) {
                    check_leader_epoch(b.partition_epoch_cell, current_leader_epoch).map(|()| {
                        b.log
                            .cache
                            .answer_offset_for_leader_epoch(epoch, b.log.end())
                    })
                } else {
                    Err("NOT_LEADER_OR_FOLLOWER")
                };
                let inc = self.brokers[idx(from)].incarnation;
                self.send(me.0, from.0, Some(inc), Body::EpochAnswer { task, answer });
            }
            Body::Fetch {
                task,
                current_leader_epoch,
                offset,
            } => {
                let answer = self.leader_serves_fetch(me, from, current_leader_epoch, offset);
                let inc = self.brokers[idx(from)].incarnation;
                self.send(me.0, from.0, Some(inc), Body::FetchAnswer { task, answer });
            }
            Body::EpochAnswer { task, answer } => {
                let Some(t) = self.brokers[idx(me)].task.as_mut().filter(|t| t.id == task) else {
                    return;
                };
                if !matches!(t.wait, Wait::Reply { .. }) {
                    return;
                }
                t.wait = Wait::Nothing;
                match answer {
                    Ok(answer) => {
                        let leader_epoch = t.leader_epoch;
                        let out = t.machine.step(follower::Input::EpochAnswer {
                            leader_epoch,
                            answer,
                        });
                        t.queue.extend(out);
                        self.drive_task(me);
                    }
                    Err(_) => self.task_failed(me),
                }
            }
            Body::FetchAnswer { task, answer } => {
                let Some(t) = self.brokers[idx(me)].task.as_ref().filter(|t| t.id == task) else {
                    return;
                };
                if !matches!(t.wait, Wait::Reply { .. }) {
                    return;
                }
                match answer {
                    Ok((entries, hw)) => self.follower_appends(me, entries, hw),
                    Err(_) => self.task_failed(me),
                }
            }
            other => self.fail(format!("broker {} got {other:?}", me.0)),
        }
    }

    /// The Fetch handler on the leader's side, for a replica.
    fn leader_serves_fetch(
        &mut self,
        me: NodeId,
        follower: NodeId,
        current_leader_epoch: LeaderEpoch,
        offset: Offset,
    ) -> Result<(Vec<Entry>, Offset), &'static str> {
        let now = self.now;
        let b = &mut self.brokers[idx(me)];
        check_leader_epoch(b.partition_epoch_cell, current_leader_epoch)?;
        let outs = match &mut b.role {
            Role::Leader(l) if l.durable_of(follower).is_some() && follower != l.me() => {
                let before = l.high_watermark();
                let outs = l.step(
                    now,
                    repl::Input::FollowerFetch {
                        follower,
                        durable: offset,
                    },
                );
                (before, outs)
            }
            _ => return Err("NOT_LEADER_OR_FOLLOWER"),
        };
        self.after_leader_step(me, outs.0, outs.1);
        let b = &self.brokers[idx(me)];
        if offset > b.log.end() || offset.0 < 0 {
            return Err("OFFSET_OUT_OF_RANGE");
        }
        let from = offset.0 as usize;
        let to = (from + FETCH_BATCHES_MAX).min(b.log.entries.len());
        Ok((b.log.entries[from..to].to_vec(), b.high_watermark()))
    }

    /// `controller::follow_role`, after the view changed.
    fn follow_role(&mut self, me: NodeId) {
        let now = self.now;
        let b = &mut self.brokers[idx(me)];
        let Some(view) = b.view.clone() else { return };
        let p = &view.partition;
        // A broker leads only as the registration the view knows: a
        // restarted one whose new registration the view does not hold yet
        // sees its previous life's leadership, in an epoch whose unsynced
        // tail it lost (the server's `ReplicaMeta::leads`).
        let current =
            b.broker_epoch.is_some() && view.registrations.get(&me) == b.broker_epoch.as_ref();
        if p.leader == me && current {
            if p.leader_epoch != b.partition_epoch_cell {
                b.partition_epoch_cell = p.leader_epoch;
                b.log.set_leader_epoch(p.leader_epoch);
            }
            // The same epoch: only the ISR is news. A newer one (this
            // broker missed the epochs between) starts a new machine, as
            // `follow_role` does.
            if matches!(b.role, Role::Leader(_)) && b.led_epoch == p.leader_epoch {
                // The topic's setting first, then the ISR of the same view.
                self.isr_answer(me, repl::Input::MinInsyncReplicas(view.min_insync_replicas));
                self.isr_answer(
                    me,
                    repl::Input::IsrCommitted {
                        isr: p.isr.clone(),
                        partition_epoch: p.partition_epoch,
                    },
                );
                return;
            }
            // It held everything committed when the controller elected it
            // (checked then); it may learn of it late, after a newer
            // leader committed more, as a zombie of its epoch. What it held
            // then, it still holds.
            let c = self
                .elected_with
                .get(&p.leader_epoch)
                .copied()
                .unwrap_or(self.committed.len());
            let holds = b.log.entries.len() >= c && b.log.entries[..c] == self.committed[..c];
            if !holds {
                let (log, committed) = (b.log.entries.clone(), self.committed.clone());
                self.fail(format!(
                    "broker {} leads epoch {} without the committed history\n  log {log:?}\n  committed {committed:?}",
                    me.0, p.leader_epoch.0
                ));
            }
            let b = &mut self.brokers[idx(me)];
            let leader = Leader::new(
                me,
                Takeover {
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    partition_epoch: p.partition_epoch,
                    log_end: b.log.end(),
                    log_durable: b.log.durable_end(),
                    high_watermark: b.high_watermark(),
                },
                ReplicationConfig {
                    replica_lag_time_max_ms: LAG_TIME_MAX_MS,
                    min_insync_replicas: view.min_insync_replicas,
                },
                now,
            );
            b.role = Role::Leader(Box::new(leader));
            b.led_epoch = p.leader_epoch;
            b.generation += 1;
            b.task = None;
            b.proposing.clear();
            b.isr_retry.clear();
            self.trace(|| format!("broker {} leads epoch {}", me.0, p.leader_epoch.0));
            self.leader_progress(me);
            return;
        }
        let leader = (p.leader.0 >= 0 && p.leader != me).then_some((p.leader, p.leader_epoch));
        if let Role::Follower { leader: l, .. } = &b.role {
            if *l == leader {
                return;
            }
        }
        let hw = b.high_watermark();
        b.role = Role::Follower {
            high_watermark: hw,
            leader,
        };
        b.generation += 1;
        b.task = None;
        b.proposing.clear();
        b.isr_retry.clear();
        if let Some((leader, leader_epoch)) = leader {
            self.trace(|| {
                format!(
                    "broker {} follows {} in epoch {}",
                    me.0, leader.0, leader_epoch.0
                )
            });
            self.start_task(me, leader, leader_epoch);
        }
    }

    fn start_task(&mut self, me: NodeId, leader: NodeId, leader_epoch: LeaderEpoch) {
        let id = self.next_task;
        self.next_task += 1;
        let b = &mut self.brokers[idx(me)];
        let mut machine = Follower::new(
            b.log.cache.clone(),
            b.log.end(),
            b.log.durable_end(),
            b.high_watermark(),
        );
        let queue = machine
            .step(follower::Input::Leader {
                leader,
                leader_epoch,
            })
            .into();
        b.task = Some(Task {
            id,
            leader,
            leader_epoch,
            machine,
            queue,
            wait: Wait::Nothing,
        });
        self.drive_task(me);
    }

    /// A request failed: the task starts over after the backoff.
    fn task_failed(&mut self, me: NodeId) {
        let until_ms = self.now + RETRY_BACKOFF_MS;
        if let Some(t) = self.brokers[idx(me)].task.as_mut() {
            t.wait = Wait::Backoff { until_ms };
            t.queue.clear();
        }
    }

    /// Runs the follower task's queued outputs until it waits.
    fn drive_task(&mut self, me: NodeId) {
        loop {
            let now = self.now;
            let b = &mut self.brokers[idx(me)];
            let Some(t) = b.task.as_mut() else { return };
            if !matches!(t.wait, Wait::Nothing) {
                return;
            }
            let Some(o) = t.queue.pop_front() else { return };
            match o {
                follower::Output::Truncate { to } => {
                    let before = b.log.entries.clone();
                    b.log.truncate_to(to);
                    let after = b.log.end();
                    self.trace(|| {
                        format!(
                            "broker {} truncates to {} (from {})",
                            me.0,
                            after.0,
                            before.len()
                        )
                    });
                    self.check_no_committed_lost_by(me, &before);
                }
                follower::Output::HighWatermark(hw) => {
                    if let Role::Follower { high_watermark, .. } = &mut b.role {
                        if hw > *high_watermark {
                            *high_watermark = hw;
                        }
                    }
                }
                follower::Output::AskEpoch {
                    leader,
                    leader_epoch,
                    epoch,
                } => {
                    let task = t.id;
                    t.wait = Wait::Reply { sent_ms: now };
                    self.send(
                        me.0,
                        leader.0,
                        None,
                        Body::AskEpoch {
                            task,
                            current_leader_epoch: leader_epoch,
                            epoch,
                        },
                    );
                }
                follower::Output::Fetch {
                    leader,
                    leader_epoch,
                    offset,
                    ..
                } => {
                    if b.log.durable_end() < offset {
                        t.wait = Wait::Durable(offset);
                        // Put it back: it goes once the log is durable.
                        t.queue.push_front(follower::Output::Fetch {
                            leader,
                            leader_epoch,
                            offset,
                            durable: offset,
                        });
                        return;
                    }
                    t.machine.step(follower::Input::Durable(offset));
                    let task = t.id;
                    t.wait = Wait::Reply { sent_ms: now };
                    self.send(
                        me.0,
                        leader.0,
                        None,
                        Body::Fetch {
                            task,
                            current_leader_epoch: leader_epoch,
                            offset,
                        },
                    );
                }
            }
        }
    }

    /// The replicated batches came: append them as they are.
    fn follower_appends(&mut self, me: NodeId, entries: Vec<Entry>, hw: Offset) {
        let b = &mut self.brokers[idx(me)];
        let Some(t) = b.task.as_mut() else { return };
        let mut epochs = Vec::new();
        let mut last_epoch = None;
        for e in entries {
            let offset = b.log.end();
            if let Err(err) = b.log.append_replicated(offset, e) {
                self.trace(|| format!("broker {} refuses a replicated batch: {err:?}", me.0));
                self.task_failed(me);
                return;
            }
            if last_epoch != Some(e.epoch) {
                epochs.push((e.epoch, offset));
                last_epoch = Some(e.epoch);
            }
        }
        t.wait = Wait::Nothing;
        let leader_epoch = t.leader_epoch;
        let out = t.machine.step(follower::Input::Fetched {
            leader_epoch,
            end: b.log.end(),
            epochs,
            leader_high_watermark: hw,
        });
        t.queue.extend(out);
        self.drive_task(me);
    }

    /// `Partition::leader_progress`: the leader's log moved or time passed.
    fn leader_progress(&mut self, me: NodeId) {
        let now = self.now;
        let b = &mut self.brokers[idx(me)];
        let (end, durable) = (b.log.end(), b.log.durable_end());
        let Role::Leader(l) = &mut b.role else { return };
        let before = l.high_watermark();
        let mut outs = l.step(now, repl::Input::LeaderLog { end, durable });
        outs.extend(l.step(now, repl::Input::Tick));
        self.after_leader_step(me, before, outs);
    }

    fn isr_answer(&mut self, me: NodeId, input: repl::Input) {
        let now = self.now;
        let b = &mut self.brokers[idx(me)];
        let Role::Leader(l) = &mut b.role else { return };
        let before = l.high_watermark();
        let outs = l.step(now, input);
        self.after_leader_step(me, before, outs);
    }

    /// Checks a high-watermark advance, and sends ISR proposals.
    fn after_leader_step(&mut self, me: NodeId, before: Offset, outs: Vec<repl::Output>) {
        let b = &self.brokers[idx(me)];
        let Role::Leader(l) = &b.role else { return };
        let hw = l.high_watermark();
        if hw > before {
            self.check_advance(me, hw);
        }
        for o in outs {
            if let repl::Output::ProposeIsr {
                isr,
                partition_epoch,
            } = o
            {
                let b = &mut self.brokers[idx(me)];
                let generation = b.generation;
                match b.broker_epoch {
                    Some(broker_epoch) => {
                        let proposal = self.next_task;
                        self.next_task += 1;
                        let b = &mut self.brokers[idx(me)];
                        b.proposing
                            .insert(proposal, (self.now, isr.clone(), partition_epoch));
                        let leader_epoch = b.partition_epoch_cell;
                        self.trace(|| format!("broker {} proposes ISR {isr:?}", me.0));
                        self.send(
                            me.0,
                            CONTROLLER,
                            None,
                            Body::AlterPartition {
                                broker_epoch,
                                leader_epoch,
                                partition_epoch,
                                isr,
                                generation,
                                proposal,
                            },
                        );
                    }
                    // Not registered yet: refused, proposed again later.
                    None => b.isr_retry.push((
                        self.now + RETRY_BACKOFF_MS,
                        generation,
                        repl::Input::IsrRefused {
                            isr,
                            partition_epoch,
                        },
                    )),
                }
            }
        }
    }

    /// A leader's high watermark advanced to `hw`.
    fn check_advance(&mut self, me: NodeId, hw: Offset) {
        let b = &self.brokers[idx(me)];
        let Role::Leader(l) = &b.role else { return };
        if l.isr().len() < l.min_insync_replicas() {
            self.fail(format!(
                "broker {} advanced the high watermark to {} with ISR {:?} (min.insync.replicas {})",
                me.0, hw.0, l.isr(), l.min_insync_replicas()
            ));
        }
        let h = hw.0 as usize;
        let mine = &b.log.entries[..h.min(b.log.entries.len())];
        if mine.len() < h || b.log.durable < h {
            self.fail(format!(
                "broker {} advanced the high watermark to {h} past its own disk",
                me.0
            ));
        }
        for m in l.maximal_isr() {
            let other = &self.brokers[idx(m)].log;
            if other.durable < h || other.entries[..h] != *mine {
                self.fail(format!(
                    "broker {} advanced the high watermark to {h}, but ISR member {} does not hold it on disk\n  leader {:?}\n  member {:?} (durable {})",
                    me.0, m.0, mine, other.entries, other.durable
                ));
            }
        }
        let c = self.committed.len();
        let common = c.min(h);
        if mine[..common] != self.committed[..common] {
            self.fail(format!(
                "broker {} committed offsets that replace committed ones\n  leader {:?}\n  committed {:?}",
                me.0, mine, self.committed
            ));
        }
        if h > c {
            self.committed.extend_from_slice(&mine[c..h]);
            let (isr, pending) = (l.isr().to_vec(), l.pending_isr().map(<[NodeId]>::to_vec));
            self.trace(|| {
                format!(
                    "committed up to {h} (by broker {}, ISR {isr:?}, pending {pending:?})",
                    me.0
                )
            });
            self.check_producers_in_committed(c);
        }
    }

    /// A truncation never cuts what the log held of the committed
    /// history: it keeps at least the prefix the log shared with it. (What
    /// remains may still differ from the committed history after that
    /// prefix: a follower of a deposed leader it has not heard is deposed
    /// yet matches that leader's log, which holds uncommitted batches of
    /// its own epoch where the new leader committed others.)
    fn check_no_committed_lost_by(&self, me: NodeId, before: &[Entry]) {
        let log = &self.brokers[idx(me)].log.entries;
        let shared = before
            .iter()
            .zip(&self.committed)
            .take_while(|(a, b)| a == b)
            .count();
        if log.len() < shared {
            self.fail(format!(
                "broker {} cut committed entries: it held {shared} of them\n  before {before:?}\n  after {log:?}\n  committed {:?}",
                me.0, self.committed
            ));
        }
    }

    // ---------------------------------------------------------- actions --

    fn produce(&mut self) {
        let n = random_node(&mut self.rng);
        // An idempotent producer's batch (acks=all), or a plain one with
        // acks=all or acks=1.
        let idempotent = self
            .rng
            .chance(400)
            .then(|| self.rng.below(PRODUCERS as u64) as u8);
        let acks_all = idempotent.is_some() || !self.rng.chance(150);
        let (value, producer) = match idempotent {
            Some(id) => {
                let p = &mut self.producers[id as usize];
                let value = match p.in_flight {
                    // Still waiting on a leader's answer for it.
                    Some((_, true)) => return,
                    Some((v, false)) => v,
                    None => {
                        let v = self.next_value;
                        self.next_value += 1;
                        p.in_flight = Some((v, false));
                        v
                    }
                };
                (value, Some((id, self.producers[id as usize].next_seq)))
            }
            None => {
                self.next_value += 1;
                (self.next_value - 1, None)
            }
        };
        let b = &mut self.brokers[idx(n)];
        if !b.up {
            return;
        }
        let Role::Leader(l) = &b.role else { return };
        if acks_all && !l.accepts_acks_all() {
            return;
        }
        let offset = match b.log.append(value, producer) {
            Ok(offset) => offset,
            // A retry this leader already holds: answered once committed.
            Err(at) if at.0 >= 0 => at,
            Err(_) => {
                // OUT_OF_ORDER_SEQUENCE_NUMBER: right from a deposed leader
                // that lacks what its successor acknowledged (the producer
                // sends again elsewhere), but the leader the controller
                // elected last holds every acknowledged sequence.
                let epoch = b.partition_epoch_cell;
                let current = self
                    .image_partition()
                    .is_some_and(|p| p.leader == n && p.leader_epoch == epoch);
                if current {
                    let (log, id) = (self.brokers[idx(n)].log.entries.clone(), producer);
                    self.fail(format!(
                        "producer {id:?} is out of order at broker {}, the current leader, whose log is {log:?}",
                        n.0
                    ))
                }
                return;
            }
        };
        if acks_all {
            let b = &self.brokers[idx(n)];
            self.pending_acks.push(PendingAck {
                node: n,
                incarnation: b.incarnation,
                generation: b.generation,
                offset,
                value,
                producer: producer.map(|(id, _)| id),
            });
            if let Some((id, _)) = producer {
                self.producers[id as usize].in_flight = Some((value, true));
            }
        }
        self.leader_progress(n);
    }

    /// Answers `acks=all` produces whose offset the leader committed.
    fn settle_acks(&mut self) {
        let mut keep = Vec::new();
        for a in std::mem::take(&mut self.pending_acks) {
            let b = &self.brokers[idx(a.node)];
            if !b.up || b.incarnation != a.incarnation || b.generation != a.generation {
                // NOT_LEADER_OR_FOLLOWER or a dead connection: not
                // answered; an idempotent producer sends it again.
                if let Some(id) = a.producer {
                    self.producers[id as usize].in_flight = Some((a.value, false));
                }
                continue;
            }
            if b.high_watermark() <= a.offset {
                keep.push(a);
                continue;
            }
            let at = a.offset.0 as usize;
            if self.committed.get(at).map(|e| e.value) != Some(a.value) {
                self.fail(format!(
                    "acknowledged value {} at offset {at} is not committed there (committed {:?})",
                    a.value, self.committed
                ));
            }
            if let Some(v) = self.acked.insert(a.offset, a.value) {
                if v != a.value {
                    self.fail(format!(
                        "two acknowledged writes at offset {at}: {v} and {}",
                        a.value
                    ));
                }
            }
            if let Some(id) = a.producer {
                let p = &mut self.producers[id as usize];
                p.in_flight = None;
                p.next_seq += 1;
            }
        }
        self.pending_acks = keep;
    }

    /// Each idempotent producer's batches in the committed history are its
    /// sequences 0, 1, 2, ... once each, in order: nothing duplicated by a
    /// retry on a new leader, nothing skipped. Checked on the entries newly
    /// committed from `from`.
    fn check_producers_in_committed(&mut self, from: usize) {
        for at in from..self.committed.len() {
            if let Some((id, seq)) = self.committed[at].producer {
                let next = self.committed_next_seq[id as usize];
                if seq != next {
                    self.fail(format!(
                        "producer {id} has sequence {seq} at committed offset {at}, expected {next}\n  committed {:?}",
                        self.committed
                    ));
                }
                self.committed_next_seq[id as usize] += 1;
            }
        }
    }

    fn flush(&mut self, n: NodeId) {
        let b = &mut self.brokers[idx(n)];
        if !b.up {
            return;
        }
        b.log.durable = b.log.entries.len();
        if self.rng.chance(500) {
            // The periodic checkpoint, with the high watermark last reported.
            let b = &mut self.brokers[idx(n)];
            b.log.checkpointed_hw = Some(b.high_watermark());
        }
        self.leader_progress(n);
        self.wake_durable_waiter(n);
    }

    fn wake_durable_waiter(&mut self, n: NodeId) {
        let b = &mut self.brokers[idx(n)];
        let durable = b.log.durable_end();
        if let Some(t) = b.task.as_mut() {
            if matches!(t.wait, Wait::Durable(o) if o <= durable) {
                t.wait = Wait::Nothing;
                self.drive_task(n);
            }
        }
    }

    fn crash(&mut self, n: NodeId) {
        let b = &mut self.brokers[idx(n)];
        if !b.up {
            return;
        }
        self.trace(|| format!("broker {} crashes", n.0));
        let b = &mut self.brokers[idx(n)];
        b.up = false;
        b.log.recover();
        b.task = None;
        b.view = None;
        b.broker_epoch = None;
        b.session_request_ms = None;
        b.proposing.clear();
        b.isr_retry.clear();
    }

    fn restart(&mut self, n: NodeId) {
        let now = self.now;
        let b = &mut self.brokers[idx(n)];
        if b.up {
            return;
        }
        b.up = true;
        b.incarnation += 1;
        b.generation += 1;
        // `start_replicated`: the checkpoint's high watermark, bounded by
        // the log, until the quorum's view arrives.
        let hw = b.log.checkpointed_hw.unwrap_or(Offset(0)).min(b.log.end());
        b.role = Role::Follower {
            high_watermark: hw,
            leader: None,
        };
        b.partition_epoch_cell = b.log.leader_epoch;
        b.next_heartbeat_ms = now;
        self.trace(|| format!("broker {} restarts", n.0));
    }

    /// The timers of every broker: heartbeats, the leader's tick, ISR
    /// retries, request timeouts, task backoffs.
    fn timers(&mut self) {
        let now = self.now;
        if now >= self.next_publish_ms {
            self.next_publish_ms = now + PUBLISH_MS;
            self.publish();
        }
        let outs = self.ctrl.step(now, ctl::Input::Tick);
        self.run_controller(outs);
        for i in 1..=NODES as i32 {
            let n = NodeId(i);
            if !self.brokers[idx(n)].up {
                continue;
            }
            let b = &mut self.brokers[idx(n)];
            if b.session_request_ms
                .is_some_and(|sent| now >= sent + REQUEST_TIMEOUT_MS)
            {
                b.session_request_ms = None;
            }
            if now >= b.next_heartbeat_ms && b.session_request_ms.is_none() {
                b.next_heartbeat_ms = now + HEARTBEAT_MS;
                b.session_request_ms = Some(now);
                match b.broker_epoch {
                    Some(epoch) => self.send(i, CONTROLLER, None, Body::Heartbeat { epoch }),
                    None => {
                        let incarnation = b.incarnation;
                        self.send(i, CONTROLLER, None, Body::Register { incarnation });
                    }
                }
            }
            let b = &mut self.brokers[idx(n)];
            if now >= b.next_leader_tick_ms {
                b.next_leader_tick_ms = now + LEADER_TICK_MS;
                self.leader_progress(n);
            }
            let b = &mut self.brokers[idx(n)];
            let generation = b.generation;
            let timed_out: Vec<u64> = b
                .proposing
                .iter()
                .filter(|(_, (sent, _, _))| now >= *sent + REQUEST_TIMEOUT_MS)
                .map(|(id, _)| *id)
                .collect();
            for id in timed_out {
                // No answer: its fate is unknown.
                if let Some((_, isr, partition_epoch)) = b.proposing.remove(&id) {
                    b.isr_retry.push((
                        now,
                        generation,
                        repl::Input::IsrUnknown {
                            isr,
                            partition_epoch,
                        },
                    ));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut b.isr_retry)
                .into_iter()
                .partition(|(t, _, _)| now >= *t);
            b.isr_retry = later;
            for (_, g, input) in due {
                if g == self.brokers[idx(n)].generation {
                    self.isr_answer(n, input);
                }
            }
            let b = &mut self.brokers[idx(n)];
            let Some(t) = b.task.as_mut() else { continue };
            match t.wait {
                Wait::Reply { sent_ms } if now >= sent_ms + REQUEST_TIMEOUT_MS => {
                    self.task_failed(n);
                }
                Wait::Backoff { until_ms } if now >= until_ms => {
                    let (leader, leader_epoch) = (t.leader, t.leader_epoch);
                    // `FollowerTask::run` again: a new machine from the log.
                    self.start_task(n, leader, leader_epoch);
                }
                _ => {}
            }
        }
    }

    fn fault(&mut self) {
        match self.rng.below(9) {
            8 => {
                // An operator changes the topic's min.insync.replicas.
                let m = 1 + self.rng.below(NODES as u64) as usize;
                self.min_insync_replicas = m;
                self.ask(ctl::Request::AlterConfigs {
                    topic: TOPIC.into(),
                    changes: vec![("min.insync.replicas".into(), Some(m.to_string()))],
                })
                .expect("alter configs");
                self.trace(|| format!("min.insync.replicas set to {m}"));
            }
            0 | 1 => {
                let n = random_node(&mut self.rng);
                self.crash(n);
            }
            2 => {
                let n = random_node(&mut self.rng);
                self.restart(n);
            }
            3 => {
                // Cut a broker off from everyone.
                let n = random_node(&mut self.rng).0;
                for p in 0..=NODES as i32 {
                    if p != n {
                        self.cut.insert((n, p));
                        self.cut.insert((p, n));
                    }
                }
                self.trace(|| format!("broker {n} isolated"));
            }
            4 => {
                // One way only.
                let a = self.rng.below(NODES as u64 + 1) as i32;
                let b = self.rng.below(NODES as u64 + 1) as i32;
                if a != b {
                    self.cut.insert((a, b));
                    self.trace(|| format!("link {a} -> {b} cut"));
                }
            }
            5 => {
                // A broker cut off from the controller only: a zombie
                // leader in the making.
                let n = random_node(&mut self.rng).0;
                self.cut.insert((n, CONTROLLER));
                self.cut.insert((CONTROLLER, n));
                self.trace(|| format!("broker {n} cut from the controller"));
            }
            _ => {
                self.cut.clear();
                self.trace(|| "links healed".into());
            }
        }
    }

    fn step(&mut self, faults: bool) {
        self.now += self.rng.below(15);
        while self.deliver_one() {
            if self.rng.chance(300) {
                break;
            }
        }
        self.timers();
        if faults && self.rng.chance(8) {
            self.fault();
        }
        if faults && self.rng.chance(20) {
            for i in 1..=NODES as i32 {
                self.restart(NodeId(i));
            }
        }
        if faults && self.rng.chance(250) {
            self.produce();
        }
        if self.rng.chance(300) {
            let n = random_node(&mut self.rng);
            self.flush(n);
        }
        self.settle_acks();
    }

    fn run(&mut self) {
        while self.now < FAULTY_MS {
            self.step(true);
        }
        self.trace(|| "healed: all up, links whole, no more writes".into());
        self.cut.clear();
        self.loss_per_mille = 0;
        for i in 1..=NODES as i32 {
            self.restart(NodeId(i));
        }
        let end = self.now + QUIET_MS;
        while self.now < end {
            self.step(false);
        }
        self.check_converged();
    }

    fn check_converged(&self) {
        let Some(p) = self.image_partition() else {
            self.fail("no partition".into())
        };
        if p.leader.0 < 0 {
            self.fail(format!("no leader after healing: {p:?}"));
        }
        let leader = &self.brokers[idx(p.leader)];
        let Role::Leader(l) = &leader.role else {
            self.fail(format!("broker {} does not lead after healing", p.leader.0))
        };
        if p.isr.len() != NODES {
            if self.trace {
                for b in &self.brokers {
                    eprintln!(
                        "broker {}: generation {} proposing {:?} retry {:?} session {:?} epoch {:?} role {:?}",
                        b.id.0, b.generation, b.proposing, b.isr_retry, b.session_request_ms, b.broker_epoch,
                        match &b.role { Role::Leader(l) => format!("leader isr {:?} pending {:?} pe {}", l.isr(), l.pending_isr(), l.partition_epoch()), Role::Follower { leader, .. } => format!("follower of {leader:?}") }
                    );
                }
            }
            self.fail(format!(
                "the ISR is {:?} after healing (leader {}, logs {:?})",
                p.isr,
                p.leader.0,
                self.brokers
                    .iter()
                    .map(|b| b.log.entries.len())
                    .collect::<Vec<_>>()
            ));
        }
        for b in &self.brokers {
            if b.log.entries != leader.log.entries {
                self.fail(format!(
                    "broker {} differs from the leader {} after healing\n  {:?}\n  {:?}",
                    b.id.0, p.leader.0, b.log.entries, leader.log.entries
                ));
            }
        }
        if l.high_watermark() != leader.log.end() {
            self.fail(format!(
                "the high watermark {} is not at the log end {} after healing",
                l.high_watermark().0,
                leader.log.end().0
            ));
        }
        for (offset, value) in &self.acked {
            if leader.log.entries.get(offset.0 as usize).map(|e| e.value) != Some(*value) {
                self.fail(format!("acknowledged {value} at {} is gone", offset.0));
            }
        }
    }
}

fn check_leader_epoch(mine: LeaderEpoch, current: LeaderEpoch) -> Result<(), &'static str> {
    if current.0 < 0 || current == mine {
        Ok(())
    } else if current < mine {
        Err("FENCED_LEADER_EPOCH")
    } else {
        Err("UNKNOWN_LEADER_EPOCH")
    }
}

fn short(b: &Body) -> String {
    let s = format!("{b:?}");
    s.chars().take(120).collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn replication_survives_seeded_faults() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        World::new(seed).run();
        return;
    }
    let base = env_u64("SIM_SEED_BASE", 0);
    let seeds = env_u64("SIM_SEEDS", 10_000);
    let mut stats = (0usize, 0usize, 0usize, 0usize);
    for seed in base..base + seeds {
        let mut w = World::new(seed);
        w.run();
        stats.0 += w.acked.len();
        stats.1 += w.leaders_by_epoch.len();
        stats.2 += w.committed_next_seq.iter().sum::<u32>() as usize;
        stats.3 += w.elr_elections;
    }
    eprintln!(
        "{seeds} seeds from {base}: {} acknowledged writes ({} idempotent), {} leader epochs ({} leaders from the eligible replicas)",
        stats.0, stats.2, stats.1, stats.3
    );
    assert!(
        stats.2 > seeds as usize,
        "too few idempotent writes: {}",
        stats.2
    );
    // The runs did something: writes were acknowledged and leaders changed.
    assert!(
        stats.0 > seeds as usize,
        "too few acknowledged writes: {}",
        stats.0
    );
    assert!(
        stats.3 > 0,
        "no leader was elected from the eligible leader replicas"
    );
    assert!(
        stats.1 > 2 * seeds as usize,
        "too few leader changes: {}",
        stats.1
    );
}
