//! The metadata quorum in a broker process (issue 17, in progress).
//!
//! Lives on: shard 0, and only in cluster mode (`node_id`,
//! `cluster_listen` and `controller_quorum_voters` set). Without those
//! settings nothing here runs and the broker is the single-node broker.
//!
//! One [`Host`] per process owns the quorum driver (`corelog_quorum`), the
//! controller (`corelog_controller`) and, through the disk task, the
//! quorum's durable log (`corelog_storage::quorum_log` in
//! `<data_dir>/__cluster_metadata/`). It is the glue
//! `broker/controller/tests/sim.rs` describes, with real time, sockets and
//! disks:
//!
//! - **Ticks**: a timer steps the quorum (and the controller's session
//!   timeouts) every [`TICK_MS`].
//! - **Persists**: each `Output::Persist` goes to the disk task, which
//!   runs one `QuorumLog::persist` at a time on the blocking pool (one
//!   fdatasync each) and then steps `Persisted(id)`. The driver holds every
//!   frame that must follow that persist until then; the host never sends
//!   around it. A failed persist or compaction stops the broker (the log
//!   refuses writes until reopened, from a new process).
//! - **Apply**: committed entries go to the controller, which applies them
//!   to its `MetadataImage`; `SnapshotDue` snapshots the image and
//!   compacts the log on the disk task, then steps `Compact`.
//! - **Network**: [`net`] runs the internal listener and one outgoing
//!   connection per peer (frames in [`wire`]).
//! - **This node's broker** registers with the active controller and
//!   heartbeats every `broker_heartbeat_interval_ms`: locally when this
//!   node leads the quorum, otherwise forwarded to the leader's internal
//!   listener (a `REQUEST` frame), whose controller answers once the
//!   records are committed.
//!
//! - **Topics**: admin changes and producer-id blocks go to the active
//!   controller, and this node's topic table follows the image, through
//!   `crate::controller::cluster`, which sits above the shard
//!   (`broker/ARCHITECTURE.md`, "Topics from the quorum"). This module
//!   names nothing of the shard.

pub mod net;
pub mod wire;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_controller as ctl;
use corelog_quorum as q;
use corelog_storage::quorum_log::{self as qlog, QuorumLog};
use futures_channel::{mpsc, oneshot};
use futures_lite::{FutureExt, StreamExt};

use crate::config::{ClusterSettings, ServerConfig};
use crate::log_limit::RateLimited;
use crate::metadata::{BrokerMeta, ClusterView, PartitionView, TopicView};
use crate::{NodeId, TopicPartition};

use wire::{BrokerStatus, ControlRequest, ControlResponse, NodeStatus};

/// The quorum's directory under the data directory. No `-<n>` suffix, so
/// the orphan-partition sweep at start never takes it for a partition.
pub const QUORUM_DIR: &str = "__cluster_metadata";
/// Milliseconds per Raft tick: heartbeats every 2 ticks, elections after
/// 10 to 20 ticks without a leader (1 to 2 s).
pub const TICK_MS: u64 = 100;
/// How long a controller request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Rate limit of the host's warnings (dropped frames, refused frames).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A write for the disk task, in the order the driver handed them out.
enum DiskOp {
    Persist {
        id: q::PersistId,
        snapshot: Option<qlog::Snapshot>,
        entries: Vec<qlog::Entry>,
        hard_state: Option<qlog::HardState>,
    },
    Compact(qlog::Snapshot),
}

enum Work {
    Quorum(q::Input),
    Controller(ctl::Input),
    /// Snapshot the image and compact (the quorum asked).
    Compact,
}

type Reply = Result<ctl::Response, ctl::ApiError>;

/// The quorum, the controller and what connects them, on shard 0.
pub struct Host {
    settings: ClusterSettings,
    started: Instant,
    quorum: q::Quorum,
    ctrl: ctl::Controller,
    /// Each peer's bounded send queue (its connection task drains it).
    peers: HashMap<i32, mpsc::Sender<Vec<u8>>>,
    disk: mpsc::UnboundedSender<DiskOp>,
    replies: HashMap<u64, oneshot::Sender<Reply>>,
    next_reply: u64,
    /// The term of the entry at the quorum's applied index.
    applied_term: u64,
    /// This node's broker epoch, once registered.
    own_epoch: Option<i64>,
    role: (u64, Option<NodeId>),
    dropped_log: RateLimited,
    dropped: u64,
    refused_log: RateLimited,
    stop: Arc<AtomicBool>,
    /// Wakes the publisher when committed entries or a snapshot changed
    /// the image (capacity 1: wake-ups coalesce).
    image_changed: mpsc::Sender<()>,
    /// The applied index of the last table the publisher handed to every
    /// shard.
    published_index: u64,
}

fn to_qlog_entry(e: &q::LogEntry) -> qlog::Entry {
    qlog::Entry {
        index: e.index,
        term: e.term,
        kind: match e.kind {
            q::EntryKind::Normal => 0,
            q::EntryKind::ConfChange => 1,
            q::EntryKind::ConfChangeV2 => 2,
        },
        data: e.data.clone(),
        context: e.context.clone(),
    }
}

fn from_qlog_entry(e: &qlog::Entry) -> Result<q::LogEntry, StartError> {
    Ok(q::LogEntry {
        index: e.index,
        term: e.term,
        kind: match e.kind {
            0 => q::EntryKind::Normal,
            1 => q::EntryKind::ConfChange,
            2 => q::EntryKind::ConfChangeV2,
            k => {
                return Err(StartError::UnknownEntryKind {
                    index: e.index,
                    kind: k,
                })
            }
        },
        data: e.data.clone(),
        context: e.context.clone(),
    })
}

fn to_qlog_snapshot(s: &q::SnapshotImage) -> qlog::Snapshot {
    qlog::Snapshot {
        index: s.index,
        term: s.term,
        voters: s.voters.clone(),
        data: s.data.clone(),
    }
}

fn to_qlog_hard_state(h: q::HardState) -> qlog::HardState {
    qlog::HardState {
        term: h.term,
        vote: h.vote,
        commit: h.commit,
    }
}

/// What the disk holds, as the driver takes it on start.
fn durable_from(rec: &qlog::Recovered) -> Result<q::Durable, StartError> {
    Ok(q::Durable {
        hard_state: q::HardState {
            term: rec.hard_state.term,
            vote: rec.hard_state.vote,
            commit: rec.hard_state.commit,
        },
        snapshot: rec.snapshot.as_ref().map(|s| q::SnapshotImage {
            index: s.index,
            term: s.term,
            voters: s.voters.clone(),
            data: s.data.clone(),
        }),
        entries: rec
            .entries
            .iter()
            .map(from_qlog_entry)
            .collect::<Result<_, _>>()?,
    })
}

impl Host {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    pub fn is_leader(&self) -> bool {
        self.quorum.is_leader()
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.quorum.leader()
    }

    /// The voter address of node `id`.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.settings
            .voters
            .iter()
            .find(|v| v.id == id.0)
            .map(|v| v.address())
    }

    pub fn is_voter(&self, id: i32) -> bool {
        self.settings.voters.iter().any(|v| v.id == id)
    }

    fn feed(&mut self, first: Work) {
        let mut work = VecDeque::from([first]);
        while let Some(w) = work.pop_front() {
            let now = self.now();
            match w {
                Work::Compact => self.compact(),
                Work::Quorum(input) => {
                    for o in self.quorum.step(now, input) {
                        self.quorum_output(o, &mut work);
                    }
                }
                Work::Controller(input) => {
                    for o in self.ctrl.step(now, input) {
                        match o {
                            ctl::Output::Propose { id, data } => {
                                work.push_back(Work::Quorum(q::Input::Propose {
                                    id,
                                    data: Bytes::from(data),
                                }))
                            }
                            ctl::Output::Reply { reply, result } => {
                                if let Some(tx) = self.replies.remove(&reply) {
                                    let _ = tx.send(result);
                                }
                            }
                            ctl::Output::Corrupt { index, reason } => tracing::error!(
                                index,
                                reason,
                                "metadata log entry skipped: it does not decode (alike on every node)"
                            ),
                        }
                    }
                }
            }
        }
    }

    fn quorum_output(&mut self, o: q::Output, work: &mut VecDeque<Work>) {
        match o {
            q::Output::Send { to, frame } => {
                let Some(tx) = self.peers.get_mut(&to.0) else {
                    return;
                };
                if tx.try_send(frame).is_err() {
                    // Full (the peer is slow or gone): Raft retransmits.
                    self.dropped += 1;
                    if let Some(suppressed) = self.dropped_log.due() {
                        tracing::warn!(
                            peer = to.0,
                            dropped = self.dropped,
                            suppressed,
                            "quorum frames dropped: the peer's send queue is full"
                        );
                    }
                }
            }
            q::Output::Persist {
                id,
                snapshot,
                entries,
                hard_state,
            } => {
                let op = DiskOp::Persist {
                    id,
                    snapshot: snapshot.as_ref().map(to_qlog_snapshot),
                    entries: entries.iter().map(to_qlog_entry).collect(),
                    hard_state: hard_state.map(to_qlog_hard_state),
                };
                // The disk task lives as long as the host; if it stopped
                // after a failed write, the persist never completes and
                // nothing that depends on it is sent.
                let _ = self.disk.unbounded_send(op);
            }
            q::Output::Apply(entries) => {
                if let Some(last) = entries.last() {
                    self.applied_term = last.term;
                }
                let _ = self.image_changed.try_send(());
                let committed = entries
                    .into_iter()
                    .map(|e| ctl::CommittedEntry {
                        index: e.index,
                        data: e.data.to_vec(),
                        proposal: e.proposal,
                    })
                    .collect();
                work.push_back(Work::Controller(ctl::Input::Committed(committed)));
            }
            q::Output::RestoreSnapshot(s) => {
                tracing::info!(
                    index = s.index,
                    term = s.term,
                    "metadata snapshot from the leader"
                );
                self.applied_term = s.term;
                let _ = self.image_changed.try_send(());
                work.push_back(Work::Controller(ctl::Input::RestoreSnapshot {
                    data: s.data.to_vec(),
                }));
            }
            q::Output::SnapshotDue { .. } => work.push_back(Work::Compact),
            q::Output::Role {
                term,
                leader,
                is_leader,
            } => {
                if self.role != (term, leader) {
                    self.role = (term, leader);
                    tracing::info!(
                        term,
                        leader = leader.map(|l| l.0),
                        is_leader,
                        "metadata quorum leadership"
                    );
                }
                work.push_back(Work::Controller(ctl::Input::Leadership { is_leader, term }));
            }
            q::Output::ProposalDropped { id, .. } => {
                work.push_back(Work::Controller(ctl::Input::ProposalDropped { id }));
            }
            q::Output::Refused { reason } => {
                if let Some(suppressed) = self.refused_log.due() {
                    tracing::warn!(reason, suppressed, "quorum frame refused");
                }
            }
        }
    }

    /// Snapshots the image at the applied index and hands the compaction
    /// to the disk task (after every persist before it).
    fn compact(&mut self) {
        let index = self.quorum.applied();
        if self.ctrl.image().applied_index() != index || index == 0 {
            return;
        }
        let snapshot = qlog::Snapshot {
            index,
            term: self.applied_term,
            voters: self.settings.voters.iter().map(|v| v.id as u64).collect(),
            data: Bytes::from(self.ctrl.image().encode_snapshot()),
        };
        let _ = self.disk.unbounded_send(DiskOp::Compact(snapshot));
    }

    fn tick(&mut self) {
        self.feed(Work::Quorum(q::Input::Tick));
        self.feed(Work::Controller(ctl::Input::Tick));
    }

    /// A frame from voter `from`'s connection.
    pub fn received(&mut self, frame: Bytes) {
        self.feed(Work::Quorum(q::Input::Received(frame)));
    }

    /// Hands `request` to this node's controller; the answer comes on the
    /// receiver (NOT_CONTROLLER at once on a follower).
    fn request(&mut self, request: ctl::Request) -> (u64, oneshot::Receiver<Reply>) {
        let id = self.next_reply;
        self.next_reply += 1;
        let (tx, rx) = oneshot::channel();
        self.replies.insert(id, tx);
        self.feed(Work::Controller(ctl::Input::Request { reply: id, request }));
        (id, rx)
    }

    /// What the shards take from the image: the live brokers (their
    /// PLAINTEXT endpoint) and every topic.
    ///
    /// A partition the image says this node leads shows no leader until
    /// the image holds this process's own registration. A restarted node
    /// catches up with a log in which its previous life still leads, in an
    /// epoch whose unsynced tail that life lost; leading it again would
    /// write other batches at offsets its followers already hold in the
    /// same epoch, which no truncation detects. Its registration makes the
    /// controller elect again (a new epoch), so this lasts only until the
    /// registration is applied here. (The seeded simulation in
    /// `corelog-replication`'s `tests/sim.rs` found it.)
    pub fn view(&self) -> ClusterView {
        let image = self.ctrl.image();
        let me = self.settings.node_id;
        let registered_here = image
            .broker(corelog_model::NodeId(me))
            .is_some_and(|b| Some(b.epoch) == self.own_epoch);
        let brokers = image
            .live_brokers()
            .filter_map(|b| {
                let e = b
                    .endpoints
                    .iter()
                    .find(|e| e.name == "PLAINTEXT")
                    .or(b.endpoints.first())?;
                Some(BrokerMeta {
                    id: b.id.0,
                    host: e.host.clone(),
                    port: e.port,
                    rack: b.rack.clone(),
                })
            })
            .collect();
        let topics = image
            .topics()
            .iter()
            .map(|(name, t)| {
                let view = TopicView {
                    id: topic_id_hex(t.id),
                    configs: t.configs.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| PartitionView {
                            leader: if p.leader.0 == me && !registered_here {
                                ctl::NO_LEADER.0
                            } else {
                                p.leader.0
                            },
                            leader_epoch: p.leader_epoch.0,
                            partition_epoch: p.partition_epoch,
                            replicas: p.replicas.iter().map(|n| n.0).collect(),
                            isr: p.isr.iter().map(|n| n.0).collect(),
                            elr: p.elr.iter().map(|n| n.0).collect(),
                        })
                        .collect(),
                };
                (name.clone(), view)
            })
            .collect();
        ClusterView {
            applied_index: image.applied_index(),
            brokers,
            topics,
        }
    }

    /// This node's broker epoch, once registered.
    pub fn own_epoch(&self) -> Option<i64> {
        self.own_epoch
    }

    /// Set when the broker stops.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The applied index of the last topic table every shard holds.
    pub fn published_index(&self) -> u64 {
        self.published_index
    }

    pub fn set_published_index(&mut self, index: u64) {
        self.published_index = index;
    }

    /// This node's view, for `corelog cluster status`.
    pub fn status(&self) -> NodeStatus {
        let leader = self.quorum.leader();
        let role = if self.quorum.is_leader() {
            "leader"
        } else if leader.is_some() {
            "follower"
        } else {
            "candidate"
        };
        let image = self.ctrl.image();
        NodeStatus {
            node_id: self.settings.node_id,
            role: role.into(),
            term: self.quorum.term(),
            leader: leader.map(|l| l.0),
            commit_index: self.quorum.commit(),
            applied_index: self.quorum.applied(),
            voters: self
                .settings
                .voters
                .iter()
                .map(|v| (v.id, v.address()))
                .collect(),
            brokers: image
                .brokers()
                .values()
                .map(|b| BrokerStatus {
                    id: b.id.0,
                    epoch: b.epoch,
                    fenced: b.fenced,
                    endpoints: b
                        .endpoints
                        .iter()
                        .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
                        .collect(),
                    rack: b.rack.clone(),
                })
                .collect(),
            own_broker_epoch: self.own_epoch,
        }
    }
}

fn to_ctl_request(r: ControlRequest) -> ctl::Request {
    match r {
        ControlRequest::Register {
            broker,
            incarnation,
            endpoints,
            rack,
        } => ctl::Request::RegisterBroker {
            broker: NodeId(broker),
            incarnation,
            endpoints: endpoints
                .into_iter()
                .map(|(name, host, port)| ctl::Endpoint { name, host, port })
                .collect(),
            rack,
        },
        ControlRequest::Heartbeat { broker, epoch } => ctl::Request::Heartbeat {
            broker: NodeId(broker),
            epoch,
        },
        ControlRequest::CreateTopic {
            name,
            partitions,
            replication_factor,
            assignment,
            configs,
            validate_only,
        } => ctl::Request::CreateTopic {
            name,
            partitions,
            replication_factor,
            assignment: assignment.map(to_nodes),
            configs,
            validate_only,
        },
        ControlRequest::CreatePartitions {
            name,
            count,
            assignment,
        } => ctl::Request::CreatePartitions {
            name,
            count,
            assignment: assignment.map(to_nodes),
        },
        ControlRequest::DeleteTopic { name } => ctl::Request::DeleteTopic { name },
        ControlRequest::AlterConfigs { topic, changes } => {
            ctl::Request::AlterConfigs { topic, changes }
        }
        ControlRequest::AllocateProducerIds { broker, epoch } => {
            ctl::Request::AllocateProducerIds {
                broker: NodeId(broker),
                epoch,
            }
        }
        ControlRequest::ElectLeaders {
            unclean,
            partitions,
        } => ctl::Request::ElectLeaders {
            election: if unclean {
                ctl::Election::Unclean
            } else {
                ctl::Election::Preferred
            },
            partitions,
        },
        ControlRequest::AlterReassignments { partitions } => ctl::Request::AlterReassignments {
            partitions: partitions
                .into_iter()
                .map(|a| {
                    (
                        a.partition,
                        a.target.map(|r| r.into_iter().map(NodeId).collect()),
                    )
                })
                .collect(),
        },
        ControlRequest::ListReassignments { partitions } => {
            ctl::Request::ListReassignments { partitions }
        }
        ControlRequest::EnsureOffsetsTopic {
            partitions,
            replication_factor,
        } => ctl::Request::EnsureOffsetsTopic {
            partitions,
            replication_factor,
        },
        ControlRequest::AlterPartitions {
            broker,
            broker_epoch,
            changes,
        } => ctl::Request::AlterPartitions {
            broker: NodeId(broker),
            broker_epoch,
            changes: changes
                .into_iter()
                .map(|c| ctl::IsrChange {
                    topic_id: corelog_model::TopicId(
                        *uuid::Uuid::parse_str(&c.topic_id)
                            .unwrap_or_default()
                            .as_bytes(),
                    ),
                    partition: c.partition,
                    leader_epoch: corelog_model::LeaderEpoch(c.leader_epoch),
                    partition_epoch: c.partition_epoch,
                    isr: c.isr.into_iter().map(NodeId).collect(),
                })
                .collect(),
        },
    }
}

fn to_nodes(a: Vec<Vec<i32>>) -> Vec<Vec<NodeId>> {
    a.into_iter()
        .map(|r| r.into_iter().map(NodeId).collect())
        .collect()
}

fn from_nodes(a: Vec<Vec<NodeId>>) -> Vec<Vec<i32>> {
    a.into_iter()
        .map(|r| r.into_iter().map(|n| n.0).collect())
        .collect()
}

fn topic_id_hex(id: corelog_model::TopicId) -> String {
    uuid::Uuid::from_bytes(id.0).simple().to_string()
}

fn from_ctl_response(r: ctl::Response) -> ControlResponse {
    match r {
        ctl::Response::Registered { epoch } => ControlResponse::Registered { epoch },
        ctl::Response::Heartbeat { fenced } => ControlResponse::Heartbeat { fenced },
        ctl::Response::TopicCreated { id, assignment } => ControlResponse::TopicCreated {
            id: topic_id_hex(id),
            assignment: from_nodes(assignment),
        },
        ctl::Response::PartitionsCreated => ControlResponse::PartitionsCreated,
        ctl::Response::TopicDeleted { id } => ControlResponse::TopicDeleted {
            id: topic_id_hex(id),
        },
        ctl::Response::ConfigsAltered => ControlResponse::ConfigsAltered,
        ctl::Response::ProducerIds(b) => ControlResponse::ProducerIds {
            start: b.start,
            len: b.len,
        },
        ctl::Response::PartitionsAltered(results) => ControlResponse::PartitionsAltered {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(s) => wire::IsrOutcome::Altered {
                        isr: s.isr.into_iter().map(|n| n.0).collect(),
                        leader_epoch: s.leader_epoch.0,
                        partition_epoch: s.partition_epoch,
                    },
                    Err(e) => wire::IsrOutcome::Refused {
                        code: e.code,
                        message: e.message,
                    },
                })
                .collect(),
        },
        ctl::Response::LeadersElected { results } => ControlResponse::LeadersElected {
            results: outcomes(results),
        },
        ctl::Response::ReassignmentsAltered { results } => ControlResponse::ReassignmentsAltered {
            results: outcomes(results),
        },
        ctl::Response::Reassignments(list) => ControlResponse::Reassignments {
            list: list
                .into_iter()
                .map(|r| {
                    let ids = |l: Vec<NodeId>| l.into_iter().map(|n| n.0).collect();
                    wire::ReassignmentStatus {
                        partition: TopicPartition::new(r.topic, r.partition),
                        replicas: ids(r.replicas),
                        adding: ids(r.adding),
                        removing: ids(r.removing),
                    }
                })
                .collect(),
        },
    }
}

/// Per-partition outcomes as the wire carries them.
fn outcomes(results: Vec<ctl::ElectionResult>) -> Vec<wire::PartitionOutcome> {
    results
        .into_iter()
        .map(|r| {
            let (code, message) = r.error.map_or((0, None), |e| (e.code, Some(e.message)));
            wire::PartitionOutcome {
                partition: TopicPartition::new(r.topic, r.partition),
                code,
                message,
            }
        })
        .collect()
}

/// Answers `request` with this node's controller: the answer once the
/// records are committed, NOT_CONTROLLER (with the leader known) on a
/// follower, REQUEST_TIMED_OUT after [`REQUEST_TIMEOUT`].
pub async fn local_request(host: &Rc<RefCell<Host>>, request: ControlRequest) -> ControlResponse {
    let (id, rx) = host.borrow_mut().request(to_ctl_request(request));
    let answer = async { Some(rx.await) }
        .or(async {
            glommio::timer::sleep(REQUEST_TIMEOUT).await;
            None
        })
        .await;
    let leader = host.borrow().leader().map(|l| l.0);
    match answer {
        Some(Ok(Ok(response))) => from_ctl_response(response),
        Some(Ok(Err(e))) => ControlResponse::Error {
            code: e.code,
            message: e.message,
            leader,
        },
        Some(Err(_)) | None => {
            host.borrow_mut().replies.remove(&id);
            ControlResponse::Error {
                code: ctl::codes::REQUEST_TIMED_OUT,
                message: "the controller did not answer in time".into(),
                leader,
            }
        }
    }
}

/// Why a request could not reach the active controller. The caller tries
/// again while its deadline lasts; a client is then answered
/// REQUEST_TIMED_OUT (`ServerError::ControllerUnreachable`).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the metadata quorum has no leader")]
    NoLeader,
    #[error("leader {0} is not a known voter")]
    UnknownLeader(i32),
    #[error(transparent)]
    Link(#[from] net::LinkError),
}

/// Sends `request` to the active controller: this node's when it leads,
/// else the leader's internal listener.
pub(crate) async fn to_controller(
    host: &Rc<RefCell<Host>>,
    request: ControlRequest,
) -> Result<ControlResponse, ForwardError> {
    let (me, is_leader, leader) = {
        let h = host.borrow();
        (h.settings.node_id, h.is_leader(), h.leader())
    };
    if is_leader {
        return Ok(local_request(host, request).await);
    }
    let Some(leader) = leader else {
        return Err(ForwardError::NoLeader);
    };
    let Some(addr) = host.borrow().address_of(leader) else {
        return Err(ForwardError::UnknownLeader(leader.0));
    };
    Ok(net::forward(&addr, me, &request).await?)
}

/// This node's broker: register, then heartbeat; register again when the
/// controller no longer knows the epoch.
async fn broker_task(host: Rc<RefCell<Host>>, config: Rc<ServerConfig>) {
    let (me, interval, stop) = {
        let h = host.borrow();
        (
            h.settings.node_id,
            Duration::from_millis(h.settings.heartbeat_interval_ms),
            h.stop.clone(),
        )
    };
    let incarnation = *uuid::Uuid::new_v4().as_bytes();
    let (adv_host, adv_port) = config.advertised();
    let mut epoch: Option<i64> = None;
    let mut fenced: Option<bool> = None;
    let mut failed_log = RateLimited::new(LOG_INTERVAL);
    while !stop.load(Ordering::Relaxed) {
        let request = match epoch {
            None => ControlRequest::Register {
                broker: me,
                incarnation,
                endpoints: vec![("PLAINTEXT".into(), adv_host.clone(), adv_port)],
                rack: None,
            },
            Some(e) => ControlRequest::Heartbeat {
                broker: me,
                epoch: e,
            },
        };
        let wait = match to_controller(&host, request).await {
            Ok(ControlResponse::Registered { epoch: e }) => {
                tracing::info!(
                    broker = me,
                    epoch = e,
                    "broker registered with the controller"
                );
                epoch = Some(e);
                host.borrow_mut().own_epoch = Some(e);
                // Heartbeat at once: the first one unfences.
                Duration::from_millis(10)
            }
            Ok(ControlResponse::Heartbeat { fenced: f }) => {
                if fenced != Some(f) {
                    tracing::info!(broker = me, fenced = f, "broker heartbeat");
                    fenced = Some(f);
                }
                interval
            }
            Ok(
                other @ (ControlResponse::TopicCreated { .. }
                | ControlResponse::PartitionsCreated
                | ControlResponse::TopicDeleted { .. }
                | ControlResponse::ConfigsAltered
                | ControlResponse::PartitionsAltered { .. }
                | ControlResponse::LeadersElected { .. }
                | ControlResponse::ReassignmentsAltered { .. }
                | ControlResponse::Reassignments { .. }
                | ControlResponse::ProducerIds { .. }),
            ) => {
                tracing::warn!(broker = me, answer = ?other, "controller answered a broker request with another kind");
                Duration::from_millis(500)
            }
            Ok(ControlResponse::Error { code, message, .. }) => {
                if code == ctl::codes::STALE_BROKER_EPOCH
                    || code == ctl::codes::BROKER_ID_NOT_REGISTERED
                {
                    epoch = None;
                    host.borrow_mut().own_epoch = None;
                }
                if let Some(suppressed) = failed_log.due() {
                    tracing::info!(
                        broker = me,
                        code,
                        message,
                        suppressed,
                        "controller request failed; retrying"
                    );
                }
                Duration::from_millis(500)
            }
            Err(e) => {
                if let Some(suppressed) = failed_log.due() {
                    tracing::info!(
                        broker = me,
                        error = %e,
                        suppressed,
                        "controller unreachable; retrying"
                    );
                }
                Duration::from_millis(500)
            }
        };
        glommio::timer::sleep(wait.min(interval)).await;
    }
}

async fn tick_task(host: Rc<RefCell<Host>>) {
    let stop = host.borrow().stop.clone();
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(TICK_MS)).await;
        host.borrow_mut().tick();
    }
}

/// Runs the quorum's writes one at a time on the blocking pool, each
/// followed by the step that reports it.
async fn disk_task(
    host: Rc<RefCell<Host>>,
    log: Arc<Mutex<QuorumLog>>,
    mut ops: mpsc::UnboundedReceiver<DiskOp>,
) {
    while let Some(op) = ops.next().await {
        let log = log.clone();
        let (done, what) = match op {
            DiskOp::Persist {
                id,
                snapshot,
                entries,
                hard_state,
            } => {
                let res = corelog_runtime::run_blocking(move || {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.persist(snapshot.as_ref(), &entries, hard_state)
                })
                .await;
                (res.map(|()| q::Input::Persisted(id)), "persist")
            }
            DiskOp::Compact(snapshot) => {
                let (index, data) = (snapshot.index, snapshot.data.clone());
                let res = corelog_runtime::run_blocking(move || {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.compact(&snapshot)
                })
                .await;
                (res.map(|_| q::Input::Compact { index, data }), "compaction")
            }
        };
        match done {
            Ok(input) => host.borrow_mut().feed(Work::Quorum(input)),
            Err(e) => {
                // The log refuses writes until reopened: stop the broker,
                // whose next start recovers what the disk holds.
                tracing::error!(error = %e, "metadata quorum log {what} failed; stopping the broker");
                host.borrow().stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Why the cluster host could not start (and the broker with it).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The metadata quorum's log did not open (I/O, or what it holds is
    /// corrupt).
    #[error("metadata quorum log {}: {source}", dir.display())]
    QuorumLog {
        dir: std::path::PathBuf,
        source: qlog::QuorumLogError,
    },
    /// The quorum log holds an entry of a kind this version does not know.
    #[error("entry {index} has unknown kind {kind}")]
    UnknownEntryKind { index: u64, kind: u8 },
    /// The quorum refused its configuration or what the disk holds.
    #[error("metadata quorum: {0}")]
    Quorum(q::StartError),
    #[error("cluster_listen: cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: glommio::GlommioError<()>,
    },
}

/// Starts the cluster host on shard 0: opens the quorum log, binds the
/// internal listener and spawns the host's tasks. An error stops the
/// broker before it serves.
pub async fn start(
    config: Rc<ServerConfig>,
    settings: ClusterSettings,
    stop: Arc<AtomicBool>,
) -> Result<Started, StartError> {
    let dir = config.data_dir.join(QUORUM_DIR);
    let (log, recovered) = corelog_runtime::run_blocking({
        let dir = dir.clone();
        move || QuorumLog::open(&dir)
    })
    .await
    .map_err(|source| StartError::QuorumLog {
        dir: dir.clone(),
        source,
    })?;
    if recovered.truncated_bytes > 0 {
        tracing::warn!(
            bytes = recovered.truncated_bytes,
            "metadata quorum log: an unfinished write was cut from its tail"
        );
    }
    let durable = durable_from(&recovered)?;
    let node = NodeId(settings.node_id);
    let voters: Vec<NodeId> = settings.voters.iter().map(|v| NodeId(v.id)).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ ((std::process::id() as u64) << 32);
    let mut qc = q::QuorumConfig::new(node, voters, seed);
    qc.tick_ms = TICK_MS;
    let quorum = q::Quorum::start(qc, durable).map_err(StartError::Quorum)?;
    let mut cc = ctl::ControllerConfig::new(node, seed);
    cc.session_timeout_ms = settings.session_timeout_ms;
    cc.leader_imbalance_check_interval_ms = settings.leader_imbalance_check_interval_ms;
    cc.leader_imbalance_per_broker_percentage = settings.leader_imbalance_per_broker_percentage;
    cc.default_partitions = config.default_partitions as i32;
    cc.partitions_max = i32::try_from(config.partitions_per_topic_max).unwrap_or(i32::MAX);
    let ctrl = ctl::Controller::new(cc);
    let listener = glommio::net::TcpListener::bind(settings.cluster_listen).map_err(|source| {
        StartError::Listen {
            addr: settings.cluster_listen,
            source,
        }
    })?;
    let (disk_tx, disk_rx) = mpsc::unbounded();
    let (changed_tx, changed_rx) = mpsc::channel(1);
    let mut peers = HashMap::new();
    let mut peer_tasks = Vec::new();
    for v in settings.voters.iter().filter(|v| v.id != settings.node_id) {
        let (tx, rx) = mpsc::channel(net::SEND_QUEUE_FRAMES);
        peers.insert(v.id, tx);
        peer_tasks.push((v.id, v.address(), rx));
    }
    tracing::info!(
        node_id = settings.node_id,
        cluster_listen = %settings.cluster_listen,
        voters = settings.voters.len(),
        term = recovered.hard_state.term,
        commit = recovered.hard_state.commit,
        snapshot = recovered.snapshot.as_ref().map_or(0, |s| s.index),
        entries = recovered.entries.len(),
        "metadata quorum starting"
    );
    let snapshot = recovered.snapshot;
    let host = Rc::new(RefCell::new(Host {
        started: Instant::now(),
        quorum,
        ctrl,
        peers,
        disk: disk_tx,
        replies: HashMap::new(),
        next_reply: 1,
        applied_term: snapshot.as_ref().map_or(0, |s| s.term),
        own_epoch: None,
        role: (0, None),
        dropped_log: RateLimited::new(LOG_INTERVAL),
        dropped: 0,
        refused_log: RateLimited::new(LOG_INTERVAL),
        stop,
        settings,
        image_changed: changed_tx,
        published_index: 0,
    }));
    {
        let mut h = host.borrow_mut();
        if let Some(s) = snapshot {
            h.feed(Work::Controller(ctl::Input::RestoreSnapshot {
                data: s.data.to_vec(),
            }));
        }
        // raft-rs re-applies the committed entries after the snapshot.
        h.feed(Work::Quorum(q::Input::Tick));
    }
    // The log travels to a blocking-pool thread for each write, so it needs
    // `Send` shared ownership. The disk task runs one write at a time, so the
    // lock is never contended, and it is off the data path (metadata writes
    // only).
    let log = Arc::new(Mutex::new(log));
    glommio::spawn_local(disk_task(host.clone(), log, disk_rx)).detach();
    glommio::spawn_local(tick_task(host.clone())).detach();
    for (id, addr, rx) in peer_tasks {
        let stop = host.borrow().stop.clone();
        let me = host.borrow().settings.node_id;
        glommio::spawn_local(net::peer_task(me, id, addr, rx, stop)).detach();
    }
    glommio::spawn_local(net::listen_task(host.clone(), listener)).detach();
    glommio::spawn_local(broker_task(host.clone(), config)).detach();
    Ok(Started {
        host,
        image_changed: changed_rx,
    })
}

/// A started host, for the caller to attach to shard 0: the controller
/// module runs the publisher on `image_changed` and asks through `host`.
pub struct Started {
    pub host: Rc<RefCell<Host>>,
    /// Woken when committed entries or a snapshot changed the image.
    pub image_changed: mpsc::Receiver<()>,
}
