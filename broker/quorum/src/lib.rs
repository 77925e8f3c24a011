//! Corelog's metadata quorum: a sans-io driver around tikv raft-rs.
//!
//! [`Quorum`] owns one node's `RawNode`. The host feeds it [`Input`]s with
//! the current time through [`Quorum::step`] and performs the [`Output`]s it
//! returns: frames to send to other voters, log writes to make durable,
//! committed entries to apply. It never reads a clock, a socket or a file,
//! and its only randomness (election timeouts) comes from the seed in
//! [`QuorumConfig`], so a seeded simulation replays it exactly.
//!
//! # Durability contract
//!
//! - [`Output::Persist`] carries a snapshot (replace the whole log with it),
//!   then entries (each replaces the entry at its index and every entry
//!   after it), then a hard state (term, vote, commit). The host writes them
//!   in that order, fdatasyncs, and only then steps [`Input::Persisted`] with
//!   the persist's id. Persists complete in the order they were handed out;
//!   reporting id `n` reports every earlier one too.
//! - Frames that must follow persistence (a follower's append and vote
//!   answers, a candidate's vote requests) are held inside the driver and
//!   come out as [`Output::Send`] only after the [`Input::Persisted`] that
//!   covers them. A leader's appends go out at once (Raft thesis 10.2.1):
//!   the leader counts itself toward a quorum only once its own write is
//!   persisted.
//! - An entry is **committed** once a majority of voters has persisted it
//!   in the leader's term (Raft's rule, applied by raft-rs). Committed
//!   entries come out in index order, each once per process lifetime, in
//!   [`Output::Apply`], and only after this node has persisted them itself.
//!   A committed entry is never lost or changed while a majority of voters
//!   keeps its disks; a node that restarts re-applies from its snapshot.
//! - [`Input::Compact`] folds the log up to an applied index into a
//!   snapshot whose data the host has already made durable; the host may
//!   then drop its log entries at or below that index. Followers too far
//!   behind receive that snapshot and get [`Output::RestoreSnapshot`].
//! - On restart the host builds [`Durable`] from what its disk holds and
//!   nothing else: what was handed out in a `Persist` but never reported
//!   persisted may be gone, and the driver makes no assumption about it.
//!
//! # Wire
//!
//! Frames are [`codec`]'s own encoding, decoded with bounds; a frame that
//! fails to decode, is addressed to another node or comes from a node that
//! is not a voter is refused ([`Output::Refused`]) and never stepped.
//!
//! Architecture invariant: this crate touches no executor, clock, socket or
//! file, and never parses protobuf.

pub mod codec;
mod storage;

use std::collections::VecDeque;

use bytes::Bytes;
use corelog_model::NodeId;
use raft::eraftpb::{
    ConfState, Entry, EntryType, HardState as RaftHardState, Message, MessageType,
};
use raft::{RawNode, SnapshotStatus, StateRole};

use storage::LogStore;

/// How one node runs the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node.
    pub id: NodeId,
    /// Every voter, this node included (`controller.quorum.voters`).
    pub voters: Vec<NodeId>,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Ticks without a leader before a follower campaigns (randomized per
    /// term in `[election_ticks, 2 * election_ticks)` from `seed`).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Most bytes of entries in one append message.
    pub max_append_bytes: u64,
    /// Most appends in flight to one follower.
    pub max_inflight: usize,
    /// Seed of the election-timeout randomness.
    pub seed: u64,
    /// Ask for a snapshot ([`Output::SnapshotDue`]) once this many entries
    /// were applied after the last one; 0 never asks.
    pub snapshot_entries: u64,
}

impl QuorumConfig {
    pub fn new(id: NodeId, voters: Vec<NodeId>, seed: u64) -> QuorumConfig {
        QuorumConfig {
            id,
            voters,
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_append_bytes: 1 << 20,
            max_inflight: 64,
            seed,
            snapshot_entries: 10_000,
        }
    }
}

/// Raft's hard state: what must be durable before a vote or append answer
/// leaves this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: u64,
    /// The node voted for in `term`; 0 when none.
    pub vote: u64,
    pub commit: u64,
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Normal,
    /// Configuration changes (raft-rs's V1 and V2): written to the log like
    /// any entry; this increment never proposes one.
    ConfChange,
    ConfChangeV2,
}

/// One log entry as the host stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    pub data: Bytes,
    /// raft-rs's entry context; Corelog leaves it empty.
    pub context: Bytes,
}

/// A snapshot: the state machine's state at `index`, and the voters then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotImage {
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub data: Bytes,
}

/// What the host recovered from its disk on start; `Durable::default()` is
/// a new node.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotImage>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<LogEntry>,
}

/// The id of one [`Output::Persist`].
pub type PersistId = u64;

/// A committed entry, handed out once, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
    /// Empty for a leader's no-op entry and for configuration changes.
    pub data: Bytes,
    /// The id of the [`Input::Propose`] this entry came from, when this
    /// very driver (this process lifetime) proposed it. A proposal is
    /// matched by the index and term its entry got, so an entry proposed
    /// before a restart never answers a proposal made after it.
    pub proposal: Option<u64>,
}

/// Something the host tells the driver.
#[derive(Debug, Clone)]
pub enum Input {
    /// Nothing but the time passing.
    Tick,
    /// A frame from the internal listener.
    Received(Bytes),
    /// A record batch to commit. Only the leader accepts proposals.
    Propose { id: u64, data: Bytes },
    /// Every persist up to this id is durable.
    Persisted(PersistId),
    /// The host's state at applied `index` is durable as `data`: compact.
    Compact { index: u64, data: Bytes },
}

/// Something the driver asks the host to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: NodeId,
        frame: Vec<u8>,
    },
    Persist {
        id: PersistId,
        snapshot: Option<SnapshotImage>,
        entries: Vec<LogEntry>,
        hard_state: Option<HardState>,
    },
    /// Committed entries to apply, in index order.
    Apply(Vec<Committed>),
    /// Replace the state machine with this snapshot (from the leader).
    RestoreSnapshot(SnapshotImage),
    /// The log holds `snapshot_entries` applied entries since the last
    /// snapshot: the host should snapshot its state at `index` (its applied
    /// index once it has applied what came before this output), make it
    /// durable and step [`Input::Compact`]. Asked once until then.
    SnapshotDue {
        index: u64,
    },
    /// Leadership as this node now sees it.
    Role {
        term: u64,
        leader: Option<NodeId>,
        is_leader: bool,
    },
    /// A proposal that will not commit: this node was not the leader (then
    /// `leader` is the leader it knows of, if any), or its entry was
    /// replaced by another leader's.
    ProposalDropped {
        id: u64,
        leader: Option<NodeId>,
    },
    /// A frame refused before stepping: garbage, misaddressed, or from a
    /// node that is not a voter.
    Refused {
        reason: String,
    },
}

/// One node of the metadata quorum.
pub struct Quorum {
    config: QuorumConfig,
    raw: RawNode<LogStore>,
    rng: u64,
    last_tick_at: Option<u64>,
    /// Frames held until the persist with this ready number completes.
    held: VecDeque<(u64, Vec<Message>)>,
    /// Ready numbers handed out as persists, not yet reported.
    outstanding: VecDeque<u64>,
    /// Snapshots sent: reported to raft-rs once the ready is handled.
    snapshots_sent: Vec<u64>,
    /// Messages to this node itself, stepped after the current Ready.
    local: Vec<Message>,
    /// Proposals in the log, not yet committed: index -> (term, id).
    proposals: std::collections::BTreeMap<u64, (u64, u64)>,
    /// The persist holding a snapshot received from the leader, while it
    /// is outstanding. Until it completes, raft-rs's applied index is below
    /// the snapshot while the log before it is gone, and a campaign would
    /// read the missing entries and abort (raft-rs 0.7 `hup` in async
    /// mode): the node neither ticks nor takes MsgTimeoutNow meanwhile.
    snapshot_persist: Option<u64>,
    /// A SnapshotDue is out, and no Compact has come since.
    snapshot_asked: bool,
    applied: u64,
    role: (u64, u64, StateRole),
}

fn to_raft_entry(e: &LogEntry) -> Entry {
    Entry {
        entry_type: match e.kind {
            EntryKind::Normal => EntryType::EntryNormal,
            EntryKind::ConfChange => EntryType::EntryConfChange,
            EntryKind::ConfChangeV2 => EntryType::EntryConfChangeV2,
        },
        index: e.index,
        term: e.term,
        data: e.data.clone(),
        context: e.context.clone(),
        ..Default::default()
    }
}

fn from_raft_entry(e: &Entry) -> LogEntry {
    LogEntry {
        index: e.index,
        term: e.term,
        kind: match e.entry_type {
            EntryType::EntryNormal => EntryKind::Normal,
            EntryType::EntryConfChange => EntryKind::ConfChange,
            EntryType::EntryConfChangeV2 => EntryKind::ConfChangeV2,
        },
        data: e.data.clone(),
        context: e.context.clone(),
    }
}

fn snapshot_image(s: &raft::eraftpb::Snapshot) -> SnapshotImage {
    let md = s.get_metadata();
    SnapshotImage {
        index: md.index,
        term: md.term,
        voters: md.get_conf_state().voters.clone(),
        data: s.data.clone(),
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl Quorum {
    /// Starts a node from what its disk holds (`Durable::default()` for a
    /// new one).
    pub fn start(config: QuorumConfig, durable: Durable) -> Result<Quorum, StartError> {
        let id = config.id.0;
        if id <= 0 || !config.voters.contains(&config.id) {
            return Err(StartError(format!("node {id} is not among the voters")));
        }
        let voters: Vec<u64> = config.voters.iter().map(|v| v.0 as u64).collect();
        let mut store = LogStore {
            hard_state: RaftHardState::default(),
            conf_state: ConfState {
                voters: voters.clone(),
                ..Default::default()
            },
            snapshot: Default::default(),
            entries: Vec::new(),
        };
        let mut applied = 0;
        if let Some(s) = &durable.snapshot {
            let mut snap = raft::eraftpb::Snapshot {
                data: s.data.clone(),
                ..Default::default()
            };
            let md = snap.mut_metadata();
            md.index = s.index;
            md.term = s.term;
            md.set_conf_state(ConfState {
                voters: s.voters.clone(),
                ..Default::default()
            });
            store.apply_snapshot(snap);
            applied = s.index;
        }
        let entries: Vec<Entry> = durable
            .entries
            .iter()
            .filter(|e| e.index > store.snapshot_index())
            .map(to_raft_entry)
            .collect();
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(k, e)| e.index == store.snapshot_index() + 1 + k as u64);
        if !contiguous {
            return Err(StartError(format!(
                "the log on disk does not continue its snapshot at {} without gaps",
                store.snapshot_index()
            )));
        }
        store.append(&entries);
        let hs = durable.hard_state;
        // The commit index on disk may lag the snapshot (they are written
        // separately) and may not pass the log's end.
        store.hard_state = RaftHardState {
            term: hs.term.max(store.hard_state.term),
            vote: hs.vote,
            commit: hs.commit.max(store.hard_state.commit).min(store.last()),
            ..Default::default()
        };
        let election = config.election_ticks.max(2);
        let rc = raft::Config {
            id: id as u64,
            election_tick: election,
            heartbeat_tick: config.heartbeat_ticks.clamp(1, election - 1),
            min_election_tick: election,
            max_election_tick: 2 * election,
            max_size_per_msg: config.max_append_bytes,
            max_inflight_msgs: config.max_inflight.max(1),
            applied,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&rc, store, &logger).map_err(|e| StartError(e.to_string()))?;
        let mut q = Quorum {
            rng: config.seed
                ^ 0x9E37_79B9_7F4A_7C15
                ^ (id as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
            config,
            raw,
            last_tick_at: None,
            held: VecDeque::new(),
            outstanding: VecDeque::new(),
            snapshots_sent: Vec::new(),
            local: Vec::new(),
            proposals: Default::default(),
            snapshot_persist: None,
            snapshot_asked: false,
            applied,
            role: (0, 0, StateRole::Follower),
        };
        q.reseed_election_timeout();
        Ok(q)
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The current term as this node knows it.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        match self.raw.raft.leader_id {
            0 => None,
            l => Some(NodeId(l as i32)),
        }
    }

    /// The highest index handed out in [`Output::Apply`] (or restored).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The highest index this node knows to be committed.
    pub fn commit(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// raft-rs draws each term's election timeout from the thread RNG when
    /// it resets (which also zeroes `election_elapsed`); replace it with a
    /// draw from the seed after every call that may have reset, so runs
    /// replay exactly.
    fn reseed_election_timeout(&mut self) {
        if self.raw.raft.election_elapsed == 0 {
            let e = self.config.election_ticks.max(2);
            let t = e + (self.next_random() % e as u64) as usize;
            self.raw.raft.set_randomized_election_timeout(t);
        }
    }

    /// Advances the clock to `now` (milliseconds, any origin), then handles
    /// `input`. A jump forward counts at most `2 * election_ticks` ticks; a
    /// jump back counts none.
    pub fn step(&mut self, now: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.advance_time(now);
        self.drain(&mut out);
        match input {
            Input::Tick => {}
            Input::Received(frame) => match codec::decode_message(&frame) {
                Err(e) => out.push(Output::Refused {
                    reason: e.to_string(),
                }),
                Ok(m) => {
                    let from_voter = self
                        .config
                        .voters
                        .iter()
                        .any(|v| v.0 > 0 && v.0 as u64 == m.from);
                    if m.to != self.config.id.0 as u64 {
                        out.push(Output::Refused {
                            reason: format!(
                                "frame for node {} arrived at node {}",
                                m.to, self.config.id
                            ),
                        });
                    } else if !from_voter || m.from == m.to {
                        out.push(Output::Refused {
                            reason: format!(
                                "frame from node {} to {} ({:?}), not a voter",
                                m.from, m.to, m.msg_type
                            ),
                        });
                    } else if self.snapshot_persist.is_some()
                        && m.msg_type == MessageType::MsgTimeoutNow
                    {
                        // No campaign before a received snapshot is durable.
                    } else {
                        // Errors here are stale or unknown-peer messages,
                        // which raft-rs drops; nothing to report.
                        let _ = self.raw.step(m);
                        self.reseed_election_timeout();
                    }
                }
            },
            Input::Propose { id, data } => {
                // raft-rs itself refuses while a leadership transfer is under way.
                let accepted =
                    self.is_leader() && self.raw.propose(Vec::new(), data.to_vec()).is_ok();
                if accepted {
                    let index = self.raw.raft.raft_log.last_index();
                    self.proposals.insert(index, (self.raw.raft.term, id));
                } else {
                    out.push(Output::ProposalDropped {
                        id,
                        leader: self.leader(),
                    });
                }
            }
            Input::Persisted(id) => {
                if self.snapshot_persist.is_some_and(|n| n <= id) {
                    self.snapshot_persist = None;
                }
                while self.outstanding.front().is_some_and(|n| *n <= id) {
                    self.outstanding.pop_front();
                }
                self.raw.on_persist_ready(id);
                self.catch_up_applied();
                self.release_held(id, &mut out);
            }
            Input::Compact { index, data } => {
                // Never past what raft-rs counts as applied (which a
                // snapshot still being persisted holds back).
                if index <= self.applied.min(self.raw.raft.raft_log.applied) {
                    self.raw.mut_store().compact(index, data);
                }
                self.snapshot_asked = false;
            }
        }
        self.drain(&mut out);
        out
    }

    fn advance_time(&mut self, now: u64) {
        let tick_ms = self.config.tick_ms.max(1);
        let Some(last) = self.last_tick_at else {
            self.last_tick_at = Some(now);
            return;
        };
        if now <= last {
            return;
        }
        let ticks = (now - last) / tick_ms;
        let cap = 2 * self.config.election_ticks.max(2) as u64;
        if ticks > cap {
            self.last_tick_at = Some(now);
        } else {
            self.last_tick_at = Some(last + ticks * tick_ms);
        }
        if self.snapshot_persist.is_some() {
            return;
        }
        for _ in 0..ticks.min(cap) {
            self.raw.tick();
            self.reseed_election_timeout();
        }
    }

    /// Tells raft-rs what was applied: everything handed out, but never
    /// past what this node has persisted (a snapshot from the leader is
    /// handed out before its persist completes).
    fn catch_up_applied(&mut self) {
        let log = &self.raw.raft.raft_log;
        let to = self.applied.min(log.persisted).min(log.committed);
        if to > log.applied {
            self.raw.advance_apply_to(to);
        }
    }

    fn release_held(&mut self, upto: u64, out: &mut Vec<Output>) {
        while self.held.front().is_some_and(|(n, _)| *n <= upto) {
            let (_, msgs) = self.held.pop_front().unwrap_or_default();
            self.send(msgs, out);
        }
    }

    fn send(&mut self, msgs: Vec<Message>, out: &mut Vec<Output>) {
        for m in msgs {
            if m.to == self.config.id.0 as u64 {
                // raft-rs addresses a candidate's own vote to itself, to
                // be stepped once the vote is persisted.
                self.local.push(m);
                continue;
            }
            if m.msg_type == MessageType::MsgSnapshot {
                self.snapshots_sent.push(m.to);
            }
            out.push(Output::Send {
                to: NodeId(m.to as i32),
                frame: codec::encode_message(&m),
            });
        }
    }

    /// Handles every pending Ready.
    fn drain(&mut self, out: &mut Vec<Output>) {
        loop {
            for m in std::mem::take(&mut self.local) {
                let _ = self.raw.step(m);
                self.reseed_election_timeout();
            }
            if !self.raw.has_ready() {
                break;
            }
            let mut rd = self.raw.ready();
            let number = rd.number();
            if let Some(ss) = rd.ss() {
                let now = (self.raw.raft.term, ss.leader_id, ss.raft_state);
                if now != self.role {
                    self.role = now;
                    out.push(Output::Role {
                        term: now.0,
                        leader: (ss.leader_id != 0).then_some(NodeId(ss.leader_id as i32)),
                        is_leader: ss.raft_state == StateRole::Leader,
                    });
                }
            }
            // A leader's messages may go before its own write is durable.
            let now_msgs = rd.take_messages();
            self.send(now_msgs, out);

            let mut snapshot = None;
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                let image = snapshot_image(&snap);
                self.raw.mut_store().apply_snapshot(snap);
                self.applied = self.applied.max(image.index);
                out.push(Output::RestoreSnapshot(image.clone()));
                let index = image.index;
                snapshot = Some(image);
                self.snapshot_persist = Some(number);
                let gone: Vec<u64> = self
                    .proposals
                    .range(..=index)
                    .map(|(_, (_, id))| *id)
                    .collect();
                self.proposals.retain(|i, _| *i > index);
                for id in gone {
                    out.push(Output::ProposalDropped {
                        id,
                        leader: self.leader(),
                    });
                }
            }
            let committed = rd.take_committed_entries();
            if !committed.is_empty() {
                let mut apply = Vec::with_capacity(committed.len());
                for e in committed {
                    if e.index <= self.applied {
                        continue;
                    }
                    self.applied = e.index;
                    let normal = e.entry_type == EntryType::EntryNormal;
                    let mut proposal = None;
                    while let Some((&index, &(term, id))) = self.proposals.first_key_value() {
                        if index > e.index {
                            break;
                        }
                        self.proposals.remove(&index);
                        if index == e.index && term == e.term {
                            proposal = Some(id);
                        } else {
                            // Another leader's entry took its place.
                            out.push(Output::ProposalDropped {
                                id,
                                leader: self.leader(),
                            });
                        }
                    }
                    apply.push(Committed {
                        index: e.index,
                        term: e.term,
                        data: if normal { e.data.clone() } else { Bytes::new() },
                        proposal,
                    });
                }
                if !apply.is_empty() {
                    out.push(Output::Apply(apply));
                }
                let since = self.applied - self.raw.store().snapshot_index();
                let every = self.config.snapshot_entries;
                if every > 0 && since >= every && !self.snapshot_asked {
                    self.snapshot_asked = true;
                    out.push(Output::SnapshotDue {
                        index: self.applied,
                    });
                }
            }
            let entries = rd.take_entries();
            self.raw.mut_store().append(&entries);
            let hard_state = rd.hs().cloned();
            if let Some(hs) = &hard_state {
                self.raw.mut_store().hard_state = hs.clone();
            }
            let persisted_msgs = rd.take_persisted_messages();
            let needs_write = snapshot.is_some() || !entries.is_empty() || hard_state.is_some();
            if needs_write || (!persisted_msgs.is_empty() && !self.outstanding.is_empty()) {
                self.outstanding.push_back(number);
                if !persisted_msgs.is_empty() {
                    self.held.push_back((number, persisted_msgs));
                }
                out.push(Output::Persist {
                    id: number,
                    snapshot,
                    entries: entries.iter().map(from_raft_entry).collect(),
                    hard_state: hard_state.map(|hs| HardState {
                        term: hs.term,
                        vote: hs.vote,
                        commit: hs.commit,
                    }),
                });
                self.raw.advance_append_async(rd);
            } else {
                // Nothing to write and nothing written before it pending:
                // what must follow persistence may go now.
                self.raw.advance_append_async(rd);
                if self.outstanding.is_empty() {
                    self.raw.on_persist_ready(number);
                }
                self.send(persisted_msgs, out);
            }
            self.catch_up_applied();
            for to in std::mem::take(&mut self.snapshots_sent) {
                // Handing a snapshot to the transport counts as finished:
                // the leader probes again, and sends it anew if it was lost.
                self.raw.report_snapshot(to, SnapshotStatus::Finish);
            }
            self.reseed_election_timeout();
        }
    }
}
