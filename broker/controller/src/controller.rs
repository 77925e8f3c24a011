//! The controller as a sans-io state machine: requests in, record
//! proposals and replies out. See the crate docs for the contract.

use std::collections::{BTreeMap, BTreeSet};

use corelog_model::{LeaderEpoch, NodeId, TopicId, TopicPartition};

use crate::codes::{self, ApiError};
use crate::image::{MetadataImage, ProducerIdBlock};
use crate::records::{decode_batch, encode_batch, Endpoint, Record, STRING_BYTES_MAX};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node.
    pub node: NodeId,
    /// A broker that has not heartbeated for this long is fenced
    /// (`broker.session.timeout.ms`, 9 s by default as in Kafka).
    pub session_timeout_ms: u64,
    /// Producer ids per block (Kafka's 1000).
    pub producer_id_block: i64,
    /// `num.partitions` and `default.replication.factor` for a CreateTopics
    /// that leaves them at -1.
    pub default_partitions: i32,
    pub default_replication_factor: i16,
    /// Most partitions one topic may have.
    pub partitions_max: i32,
    /// Seed of topic ids.
    pub seed: u64,
    /// How often the active controller looks for brokers that lead too
    /// few of the partitions they are the preferred replica of, and gives
    /// those partitions back to them (Kafka's `auto.leader.rebalance.enable`
    /// with `leader.imbalance.check.interval.seconds`); 0 turns it off.
    pub leader_imbalance_check_interval_ms: u64,
    /// A broker's share, in percent, of its preferred partitions led by
    /// others above which they are given back (Kafka's
    /// `leader.imbalance.per.broker.percentage`).
    pub leader_imbalance_per_broker_percentage: u32,
}

impl ControllerConfig {
    pub fn new(node: NodeId, seed: u64) -> ControllerConfig {
        ControllerConfig {
            node,
            session_timeout_ms: 9_000,
            producer_id_block: 1_000,
            default_partitions: 1,
            default_replication_factor: 1,
            partitions_max: 10_000,
            seed,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// Who is waiting for a reply: the host's handle, opaque here.
pub type ReplyId = u64;

/// Topic configs the controller accepts by name; their values are checked
/// by the broker's own config code before it asks.
pub const TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    // Corelog's own: when a partition's appends are fdatasync'd.
    "flush.policy",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// A request to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    RegisterBroker {
        broker: NodeId,
        incarnation: [u8; 16],
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    Heartbeat {
        broker: NodeId,
        epoch: i64,
    },
    /// One topic of a CreateTopics request. `partitions` and
    /// `replication_factor` are -1 for the defaults or when `assignment`
    /// (Kafka's `replica_assignment`, one replica list per partition) is
    /// given.
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Vec<Vec<NodeId>>>,
        configs: Vec<(String, String)>,
        validate_only: bool,
    },
    /// One topic of CreatePartitions: grow to `count` partitions.
    CreatePartitions {
        name: String,
        count: i32,
        assignment: Option<Vec<Vec<NodeId>>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Set (`Some`) or remove (`None`) topic configs.
    AlterConfigs {
        topic: String,
        changes: Vec<(String, Option<String>)>,
    },
    AllocateProducerIds {
        broker: NodeId,
        epoch: i64,
    },
    /// Kafka's AlterPartition, from a partition leader's broker: for each
    /// change, make its `isr` the partition's ISR. Fenced by the broker
    /// epoch (the whole request), and each change by the leader epoch and
    /// the partition epoch its leader knows. The changes that pass are
    /// committed together, in one metadata record batch: a broker that
    /// rejoins the ISRs of many partitions at once waits for one commit,
    /// not one per partition.
    AlterPartitions {
        broker: NodeId,
        broker_epoch: i64,
        changes: Vec<IsrChange>,
    },
    /// Kafka's ElectLeaders: for each partition (every partition when
    /// `None`), elect its preferred replica (the first of its replicas) if
    /// it is a live member of the ISR, or, for an unclean election, a
    /// leader for a partition that has none (a live ISR member first, else
    /// any live replica, which then leads an ISR of itself alone).
    ElectLeaders {
        election: Election,
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Kafka's AlterPartitionReassignments: for each partition, move it to
    /// the replicas named (`Some`), or cancel its reassignment in progress
    /// (`None`). A move adds the new replicas at once (they start
    /// following) and removes the old ones once every target replica is in
    /// the ISR; leadership moves to a target replica then if its leader is
    /// not one.
    AlterReassignments {
        partitions: Vec<(TopicPartition, Option<Vec<NodeId>>)>,
    },
    /// Kafka's ListPartitionReassignments: the reassignments in progress,
    /// of the partitions named, or of all (`None`).
    ListReassignments {
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Creates the internal offsets topic ([`OFFSETS_TOPIC`]) with
    /// `partitions` partitions of `replication_factor` replicas each,
    /// placed like any topic's, unless it exists. Answered with
    /// `TopicCreated` either way (the existing topic's id and replicas), so
    /// brokers may ask at once. As in Kafka, it is not created while fewer
    /// brokers are live than the replication factor asks for
    /// (INVALID_REPLICATION_FACTOR): groups wait for the cluster to form
    /// rather than keep their offsets on fewer replicas than configured.
    EnsureOffsetsTopic {
        partitions: i32,
        replication_factor: i32,
    },
}

/// Which leader an ElectLeaders request elects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The first replica, if it is a live member of the ISR.
    Preferred,
    /// A leader for a partition without one, even from outside the ISR.
    Unclean,
}

/// One partition's reassignment in progress, as ListPartitionReassignments
/// answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<NodeId>,
    pub adding: Vec<NodeId>,
    pub removing: Vec<NodeId>,
}

/// The outcome of one partition's election (`None`: elected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ApiError>,
}

/// Kafka's internal offsets topic: users cannot create it; brokers ask
/// for it with [`Request::EnsureOffsetsTopic`] when a group first needs a
/// coordinator.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
    },
    TopicCreated {
        id: TopicId,
        assignment: Vec<Vec<NodeId>>,
    },
    PartitionsCreated,
    TopicDeleted {
        id: TopicId,
    },
    ConfigsAltered,
    ProducerIds(ProducerIdBlock),
    /// Each partition's election, in the order asked (for every partition,
    /// only those whose election was needed).
    LeadersElected {
        results: Vec<ElectionResult>,
    },
    /// Each partition's AlterPartitionReassignments outcome, in the order
    /// asked (`None`: accepted).
    ReassignmentsAltered {
        results: Vec<ElectionResult>,
    },
    /// The reassignments in progress.
    Reassignments(Vec<Reassignment>),
    /// Each change's outcome, in the order asked.
    PartitionsAltered(Vec<Result<PartitionState, ApiError>>),
}

/// One partition's ISR change in an AlterPartitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// A partition's leadership state after an ISR change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub isr: Vec<NodeId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

/// An entry the quorum committed, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEntry {
    pub index: u64,
    pub data: Vec<u8>,
    /// The proposal id, when this node proposed it.
    pub proposal: Option<u64>,
}

/// Something the host tells the controller.
#[derive(Debug, Clone)]
pub enum Input {
    Request {
        reply: ReplyId,
        request: Request,
    },
    Committed(Vec<CommittedEntry>),
    /// Replace the image with a snapshot's (from the leader, or on start).
    RestoreSnapshot {
        data: Vec<u8>,
    },
    /// This node became leader of `term` or stopped being it.
    Leadership {
        is_leader: bool,
        term: u64,
    },
    /// The quorum refused a proposal (this node is no longer leader).
    ProposalDropped {
        id: u64,
    },
    /// Nothing but the time passing (session timeouts).
    Tick,
}

/// Something the controller asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Propose this batch to the quorum with this id.
    Propose { id: u64, data: Vec<u8> },
    Reply {
        reply: ReplyId,
        result: Result<Response, ApiError>,
    },
    /// A committed entry that did not decode, or a snapshot that did not:
    /// skipped alike on every node; the host logs it loudly.
    Corrupt { index: u64, reason: String },
}

#[derive(Debug)]
enum Pending {
    Register {
        reply: ReplyId,
        broker: NodeId,
    },
    CreateTopic {
        reply: ReplyId,
        name: String,
        id: TopicId,
        assignment: Vec<Vec<NodeId>>,
    },
    Other {
        reply: ReplyId,
        ok: Response,
    },
    ProducerIds {
        reply: ReplyId,
    },
    Fence {
        broker: NodeId,
    },
    Unfence {
        broker: NodeId,
    },
    /// The periodic preferred-leader elections.
    Rebalance,
    /// The completion of reassignments whose target replicas are all in
    /// sync.
    Reassign,
}

/// The cluster controller of one node. Every node applies committed
/// records; only the leader answers requests and proposes.
pub struct Controller {
    config: ControllerConfig,
    image: MetadataImage,
    leader_term: Option<u64>,
    next_proposal: u64,
    topic_ids_made: u64,
    pending: BTreeMap<u64, Pending>,
    /// Names of topics whose creation is in flight.
    creating: BTreeSet<String>,
    /// Brokers whose fence or unfence is in flight.
    changing: BTreeSet<NodeId>,
    /// The next producer id after the blocks in flight.
    pid_next: Option<i64>,
    /// Leader only: when each live broker's session ends.
    sessions: BTreeMap<NodeId, u64>,
    /// Leader only: when leadership balance is next looked at, and whether
    /// a rebalance is in flight.
    next_rebalance_ms: Option<u64>,
    rebalancing: bool,
    /// A proposal completing reassignments is in flight.
    completing: bool,
    /// The image's applied index at the last look for reassignments to
    /// complete: only a committed entry can complete one, so the look
    /// (over every partition) runs once per entry, not once per step.
    reassignments_checked_at: Option<u64>,
}

fn not_controller() -> ApiError {
    ApiError::new(
        codes::NOT_CONTROLLER,
        "this node is not the active controller",
    )
}

/// Kafka's topic name rule (and the offsets log's name is reserved).
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(codes::INVALID_TOPIC_EXCEPTION, why));
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == "__consumer_offsets" {
        return invalid(format!("{name} is the internal offsets topic"));
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name cannot be {name:?}"));
    }
    if name.len() > 249 {
        return invalid("topic name is longer than 249 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "topic name {name:?} contains characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Controller {
        Controller {
            config,
            image: MetadataImage::default(),
            leader_term: None,
            next_proposal: 1,
            topic_ids_made: 0,
            pending: BTreeMap::new(),
            creating: BTreeSet::new(),
            changing: BTreeSet::new(),
            pid_next: None,
            sessions: BTreeMap::new(),
            next_rebalance_ms: None,
            rebalancing: false,
            completing: false,
            reassignments_checked_at: None,
        }
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn is_leader(&self) -> bool {
        self.leader_term.is_some()
    }

    /// Handles one input at `now` (milliseconds, any origin).
    pub fn step(&mut self, now: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Request { reply, request } => {
                if self.leader_term.is_none() {
                    out.push(Output::Reply {
                        reply,
                        result: Err(not_controller()),
                    });
                } else if let Err(e) = self.request(now, reply, request, &mut out) {
                    out.push(Output::Reply {
                        reply,
                        result: Err(e),
                    });
                }
            }
            Input::Committed(entries) => {
                for e in entries {
                    self.apply(now, e, &mut out);
                }
            }
            Input::RestoreSnapshot { data } => match MetadataImage::decode_snapshot(&data) {
                Ok(image) => {
                    if image.applied_index() >= self.image.applied_index() {
                        self.image = image;
                    }
                }
                Err(e) => out.push(Output::Corrupt {
                    index: self.image.applied_index(),
                    reason: format!("snapshot: {e}"),
                }),
            },
            Input::Leadership { is_leader, term } => {
                self.step_down(&mut out);
                if is_leader {
                    self.leader_term = Some(term);
                    let deadline = now + self.config.session_timeout_ms;
                    self.sessions = self
                        .image
                        .live_brokers()
                        .map(|b| (b.id, deadline))
                        .collect();
                }
            }
            Input::ProposalDropped { id } => {
                if let Some(p) = self.pending.remove(&id) {
                    self.forget(&p);
                    if let Some(reply) = reply_of(&p) {
                        out.push(Output::Reply {
                            reply,
                            result: Err(not_controller()),
                        });
                    }
                }
            }
            Input::Tick => {}
        }
        if self.leader_term.is_some() {
            self.check_sessions(now, &mut out);
            self.check_leader_balance(now, &mut out);
            self.check_reassignments(&mut out);
        }
        out
    }

    fn step_down(&mut self, out: &mut Vec<Output>) {
        for (_, p) in std::mem::take(&mut self.pending) {
            if let Some(reply) = reply_of(&p) {
                out.push(Output::Reply {
                    reply,
                    result: Err(not_controller()),
                });
            }
        }
        self.leader_term = None;
        self.creating.clear();
        self.changing.clear();
        self.pid_next = None;
        self.sessions.clear();
        self.next_rebalance_ms = None;
        self.rebalancing = false;
        self.completing = false;
        self.reassignments_checked_at = None;
    }

    fn forget(&mut self, p: &Pending) {
        match p {
            Pending::CreateTopic { name, .. } => {
                self.creating.remove(name);
            }
            Pending::Fence { broker } | Pending::Unfence { broker } => {
                self.changing.remove(broker);
            }
            Pending::Rebalance => self.rebalancing = false,
            Pending::Reassign => self.completing = false,
            _ => {}
        }
        if self
            .pending
            .values()
            .all(|p| !matches!(p, Pending::ProducerIds { .. }))
        {
            self.pid_next = None;
        }
    }

    /// Proposes a new topic: its record, one per partition placed as
    /// `placed`, and its configs, all in one batch.
    fn propose_topic(
        &mut self,
        reply: ReplyId,
        name: String,
        placed: Vec<Vec<NodeId>>,
        configs: Vec<(String, String)>,
        out: &mut Vec<Output>,
    ) {
        let id = self.new_topic_id();
        let mut batch = vec![Record::Topic {
            name: name.clone(),
            id,
        }];
        for (i, replicas) in placed.iter().enumerate() {
            batch.push(Record::Partition(self.image.new_partition(
                id,
                i as i32,
                replicas.clone(),
            )));
        }
        for (k, v) in configs {
            batch.push(Record::Config {
                topic: name.clone(),
                name: k,
                value: Some(v),
            });
        }
        self.creating.insert(name.clone());
        self.propose(
            &batch,
            Pending::CreateTopic {
                reply,
                name,
                id,
                assignment: placed,
            },
            out,
        );
    }

    /// Refuses a broker's request made at an epoch that is not the
    /// broker's current one.
    fn check_broker_epoch(&self, broker: NodeId, epoch: i64) -> Result<(), ApiError> {
        match self.image.broker(broker) {
            None => Err(ApiError::new(
                codes::BROKER_ID_NOT_REGISTERED,
                format!("broker {broker} is not registered"),
            )),
            Some(b) if b.epoch != epoch => Err(ApiError::new(
                codes::STALE_BROKER_EPOCH,
                format!("broker {broker} is at epoch {}, not {epoch}", b.epoch),
            )),
            Some(_) => Ok(()),
        }
    }

    fn propose(&mut self, batch: &[Record], pending: Pending, out: &mut Vec<Output>) {
        let id = self.next_proposal;
        self.next_proposal += 1;
        self.pending.insert(id, pending);
        out.push(Output::Propose {
            id,
            data: encode_batch(batch),
        });
    }

    fn check_sessions(&mut self, now: u64, out: &mut Vec<Output>) {
        let mut expired = Vec::new();
        for b in self.image.live_brokers() {
            let deadline = *self
                .sessions
                .entry(b.id)
                .or_insert(now + self.config.session_timeout_ms);
            if deadline <= now && !self.changing.contains(&b.id) {
                expired.push((b.id, b.epoch));
            }
        }
        for (broker, epoch) in expired {
            self.changing.insert(broker);
            self.propose(
                &[Record::FenceBroker { broker, epoch }],
                Pending::Fence { broker },
                out,
            );
        }
    }

    /// Kafka's automatic leader rebalance: every
    /// `leader_imbalance_check_interval_ms`, a broker whose preferred
    /// partitions (it is their first replica) are led by others more than
    /// `leader_imbalance_per_broker_percentage` of the time gets back those
    /// it can lead (it is live and in their ISR). So leadership returns to
    /// a broker after a failover, and load spreads as placement meant.
    fn check_leader_balance(&mut self, now: u64, out: &mut Vec<Output>) {
        let interval = self.config.leader_imbalance_check_interval_ms;
        if interval == 0 || self.rebalancing {
            return;
        }
        let next = *self.next_rebalance_ms.get_or_insert(now + interval);
        if now < next {
            return;
        }
        self.next_rebalance_ms = Some(now + interval);
        let mut preferred: BTreeMap<NodeId, (usize, usize)> = BTreeMap::new();
        for t in self.image.topics().values() {
            for p in &t.partitions {
                if let Some(&first) = p.replicas.first() {
                    let e = preferred.entry(first).or_default();
                    e.0 += 1;
                    if p.leader != first {
                        e.1 += 1;
                    }
                }
            }
        }
        let threshold = u64::from(self.config.leader_imbalance_per_broker_percentage);
        let imbalanced: BTreeSet<NodeId> = preferred
            .into_iter()
            .filter(|(_, (all, others))| *others as u64 * 100 > threshold * *all as u64)
            .map(|(b, _)| b)
            .collect();
        if imbalanced.is_empty() {
            return;
        }
        let mut records = Vec::new();
        for t in self.image.topics().values() {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.replicas.first().is_some_and(|f| imbalanced.contains(f)) {
                    if let Ok(r) = self.preferred_election(t.id, i as i32, p) {
                        records.push(r);
                    }
                }
            }
        }
        if !records.is_empty() {
            self.rebalancing = true;
            self.propose(&records, Pending::Rebalance, out);
        }
    }

    /// Completes the reassignments whose target replicas are all in the
    /// ISR: the removed replicas go, and a leader that is one of them
    /// hands over to a target replica in the ISR (the first live one).
    fn check_reassignments(&mut self, out: &mut Vec<Output>) {
        let at = self.image.applied_index();
        if self.completing || self.reassignments_checked_at == Some(at) {
            return;
        }
        self.reassignments_checked_at = Some(at);
        let mut records = Vec::new();
        for t in self.image.topics().values() {
            for (i, p) in t.partitions.iter().enumerate() {
                if !p.reassigning() {
                    continue;
                }
                let target = p.target_replicas();
                if !target.iter().all(|r| p.isr.contains(r)) {
                    continue;
                }
                records.push(self.reassign_record(
                    t.id,
                    i as i32,
                    p,
                    target,
                    Vec::new(),
                    Vec::new(),
                ));
            }
        }
        if !records.is_empty() {
            self.completing = true;
            self.propose(&records, Pending::Reassign, out);
        }
    }

    /// The record giving `p` the replica set `replicas` (with `adding` and
    /// `removing` in progress): the ISR keeps its members that stay
    /// replicas; the leader stays if it is one of them, else the first
    /// live member of that ISR in `replicas`' order leads (none: no
    /// leader, until one returns). Next leader and partition epochs.
    fn reassign_record(
        &self,
        topic_id: TopicId,
        partition: i32,
        p: &crate::image::PartitionInfo,
        replicas: Vec<NodeId>,
        adding: Vec<NodeId>,
        removing: Vec<NodeId>,
    ) -> Record {
        let isr: Vec<NodeId> = p
            .isr
            .iter()
            .copied()
            .filter(|r| replicas.contains(r))
            .collect();
        let leader = if isr.contains(&p.leader) {
            p.leader
        } else {
            replicas
                .iter()
                .copied()
                .find(|r| isr.contains(r) && self.image.is_live(*r))
                .unwrap_or(crate::image::NO_LEADER)
        };
        // With no leader the ISR stays as it was, less the replicas that
        // go: the next election picks from it.
        Record::Reassign {
            topic_id,
            partition,
            replicas,
            adding,
            removing,
            isr,
            leader,
            leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
            partition_epoch: p.partition_epoch + 1,
        }
    }

    /// The record starting, replacing or cancelling (`target` `None`)
    /// `p`'s reassignment, `None` when `p` has those replicas already and
    /// no move is in progress (nothing to do), or why not.
    fn reassignment(
        &self,
        topic_id: TopicId,
        partition: i32,
        p: &crate::image::PartitionInfo,
        target: Option<Vec<NodeId>>,
    ) -> Result<Option<Record>, ApiError> {
        let original = p.original_replicas();
        let Some(target) = target else {
            if !p.reassigning() {
                return Err(ApiError::new(
                    codes::NO_REASSIGNMENT_IN_PROGRESS,
                    "no reassignment is in progress for this partition",
                ));
            }
            return Ok(Some(self.reassign_record(
                topic_id,
                partition,
                p,
                original,
                Vec::new(),
                Vec::new(),
            )));
        };
        if target.is_empty() || !crate::image::distinct(&target) {
            return Err(ApiError::new(
                codes::INVALID_REPLICA_ASSIGNMENT,
                "the replicas must be distinct, and at least one",
            ));
        }
        if let Some(r) = target
            .iter()
            .find(|r| !self.image.brokers().contains_key(r))
        {
            return Err(ApiError::new(
                codes::INVALID_REPLICA_ASSIGNMENT,
                format!("broker {} is not registered", r.0),
            ));
        }
        // A reassignment in progress is replaced: the new one starts from
        // the replicas before it.
        let adding: Vec<NodeId> = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        let removing: Vec<NodeId> = original
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        let mut replicas = target;
        replicas.extend(removing.iter().copied());
        // The same replicas in the same order: nothing to add (the target
        // is the replicas) and nothing to remove.
        if removing.is_empty() && replicas == p.replicas && !p.reassigning() {
            return Ok(None);
        }
        Ok(Some(self.reassign_record(
            topic_id, partition, p, replicas, adding, removing,
        )))
    }

    /// Partition `partition` of `topic` in the image, with its topic's id,
    /// or UNKNOWN_TOPIC_OR_PARTITION.
    fn find_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(TopicId, &crate::image::PartitionInfo), ApiError> {
        self.image
            .topic(topic)
            .and_then(|t| Some((t.id, t.partitions.get(usize::try_from(partition).ok()?)?)))
            .ok_or_else(|| {
                ApiError::new(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("partition {partition} of {topic} does not exist"),
                )
            })
    }

    /// Answers `ok` at once when `records` is empty, else once they are
    /// committed.
    /// The record making `change` (asked by `broker`) and the partition's
    /// state after it, or why not.
    fn isr_change(
        &self,
        broker: NodeId,
        change: IsrChange,
    ) -> Result<(Record, PartitionState), ApiError> {
        let IsrChange {
            topic_id,
            partition,
            leader_epoch,
            partition_epoch,
            isr,
        } = change;
        let p = self
            .image
            .topic_name(topic_id)
            .and_then(|name| self.image.topic(name))
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .ok_or_else(|| {
                ApiError::new(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("partition {partition} of topic id {topic_id:?} does not exist"),
                )
            })?;
        if p.leader != broker {
            return Err(ApiError::new(
                codes::NOT_LEADER_OR_FOLLOWER,
                format!("broker {broker} does not lead the partition"),
            ));
        }
        if p.leader_epoch != leader_epoch {
            return Err(ApiError::new(
                codes::FENCED_LEADER_EPOCH,
                format!("leader epoch {leader_epoch:?}, not {:?}", p.leader_epoch),
            ));
        }
        if p.partition_epoch != partition_epoch {
            return Err(ApiError::new(
                codes::INVALID_UPDATE_VERSION,
                format!(
                    "partition epoch {partition_epoch}, not {}",
                    p.partition_epoch
                ),
            ));
        }
        if !crate::image::isr_fits(&isr, &p.replicas, broker) {
            return Err(ApiError::new(
                codes::INVALID_REQUEST,
                "the ISR must be replicas of the partition, the leader among them",
            ));
        }
        // A member joining must be a live broker (Kafka's
        // INELIGIBLE_REPLICA); one leaving may be anything.
        if let Some(bad) = isr
            .iter()
            .find(|r| !p.isr.contains(r) && self.image.broker(**r).is_none_or(|b| b.fenced))
        {
            return Err(ApiError::new(
                codes::INELIGIBLE_REPLICA,
                format!("broker {bad} is fenced or not registered"),
            ));
        }
        let record = Record::PartitionChange {
            topic_id,
            partition,
            isr: isr.clone(),
            leader: broker,
            leader_epoch,
            partition_epoch: partition_epoch + 1,
        };
        let state = PartitionState {
            isr,
            leader_epoch,
            partition_epoch: partition_epoch + 1,
        };
        Ok((record, state))
    }

    fn reply_or_propose(
        &mut self,
        reply: ReplyId,
        records: Vec<Record>,
        ok: Response,
        out: &mut Vec<Output>,
    ) {
        if records.is_empty() {
            out.push(Output::Reply {
                reply,
                result: Ok(ok),
            });
        } else {
            self.propose(&records, Pending::Other { reply, ok }, out);
        }
    }

    /// The record electing `p`'s preferred replica, or why not.
    fn preferred_election(
        &self,
        topic_id: TopicId,
        partition: i32,
        p: &crate::image::PartitionInfo,
    ) -> Result<Record, ApiError> {
        let Some(&first) = p.replicas.first() else {
            return Err(ApiError::new(codes::INVALID_REQUEST, "no replicas"));
        };
        if p.leader == first {
            return Err(ApiError::new(
                codes::ELECTION_NOT_NEEDED,
                "the preferred replica leads already",
            ));
        }
        if !p.isr.contains(&first) || !self.image.is_live(first) {
            return Err(ApiError::new(
                codes::PREFERRED_LEADER_NOT_AVAILABLE,
                format!("the preferred replica {first} is not a live member of the ISR"),
            ));
        }
        Ok(Record::ElectLeader {
            topic_id,
            partition,
            leader: first,
            leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
            partition_epoch: p.partition_epoch + 1,
            isr: p.isr.clone(),
        })
    }

    /// The record of an unclean election for `p`, or why not.
    fn unclean_election(
        &self,
        topic_id: TopicId,
        partition: i32,
        p: &crate::image::PartitionInfo,
    ) -> Result<Record, ApiError> {
        if p.leader != crate::image::NO_LEADER {
            return Err(ApiError::new(
                codes::ELECTION_NOT_NEEDED,
                "the partition has a leader",
            ));
        }
        // A live member of the ISR or an eligible leader replica first:
        // an unclean election only when neither is live.
        let (leader, isr) = match self.image.elect(p, None) {
            l if p.isr.contains(&l) => (l, p.isr.clone()),
            crate::image::NO_LEADER => match self.image.elect_unclean(p, None) {
                crate::image::NO_LEADER => {
                    return Err(ApiError::new(
                        codes::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                        "no replica of the partition is live",
                    ))
                }
                l => (l, vec![l]),
            },
            eligible => (eligible, vec![eligible]),
        };
        Ok(Record::ElectLeader {
            topic_id,
            partition,
            leader,
            leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
            partition_epoch: p.partition_epoch + 1,
            isr,
        })
    }

    fn new_topic_id(&mut self) -> TopicId {
        self.topic_ids_made += 1;
        let term = self.leader_term.unwrap_or(0);
        let a = mix(self.config.seed ^ mix(term ^ ((self.config.node.0 as u64) << 48)));
        let b = mix(a ^ self.topic_ids_made);
        let c = mix(b);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&b.to_le_bytes());
        id[8..].copy_from_slice(&c.to_le_bytes());
        TopicId(id)
    }

    fn check_assignment(
        &self,
        assignment: &[Vec<NodeId>],
        rf: Option<usize>,
    ) -> Result<(), ApiError> {
        let bad = |why: String| Err(ApiError::new(codes::INVALID_REPLICA_ASSIGNMENT, why));
        let rf = rf.or(assignment.first().map(Vec::len)).unwrap_or(0);
        for (i, replicas) in assignment.iter().enumerate() {
            if replicas.is_empty() {
                return bad(format!("partition {i} has no replicas"));
            }
            if replicas.len() != rf {
                return bad("all partitions must have the same number of replicas".into());
            }
            let mut sorted = replicas.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != replicas.len() {
                return bad(format!("partition {i} names a broker twice"));
            }
            if let Some(r) = replicas.iter().find(|r| self.image.broker(**r).is_none()) {
                return bad(format!("broker {r} is not registered"));
            }
        }
        Ok(())
    }

    fn check_configs<'a>(
        &self,
        names: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<(), ApiError> {
        let mut seen = BTreeSet::new();
        for (name, value) in names {
            if !TOPIC_CONFIGS.contains(&name) {
                return Err(ApiError::new(
                    codes::INVALID_CONFIG,
                    format!("Unknown topic config name: {name}"),
                ));
            }
            if value.is_some_and(|v| v.len() > STRING_BYTES_MAX) {
                return Err(ApiError::new(
                    codes::INVALID_CONFIG,
                    format!("{name} is too long"),
                ));
            }
            if !seen.insert(name) {
                return Err(ApiError::new(
                    codes::INVALID_REQUEST,
                    format!("config {name} appears twice"),
                ));
            }
        }
        Ok(())
    }

    fn request(
        &mut self,
        now: u64,
        reply: ReplyId,
        request: Request,
        out: &mut Vec<Output>,
    ) -> Result<(), ApiError> {
        match request {
            Request::RegisterBroker {
                broker,
                incarnation,
                endpoints,
                rack,
            } => {
                if broker.0 < 0 {
                    return Err(ApiError::new(codes::INVALID_REQUEST, "negative broker id"));
                }
                if let Some(b) = self.image.broker(broker) {
                    let alive = self.sessions.get(&broker).is_some_and(|d| *d > now);
                    if !b.fenced && alive && b.incarnation != incarnation {
                        return Err(ApiError::new(
                            codes::DUPLICATE_BROKER_REGISTRATION,
                            format!("broker {broker} is registered by another live incarnation"),
                        ));
                    }
                }
                let rec = Record::RegisterBroker {
                    broker,
                    incarnation,
                    endpoints,
                    rack,
                };
                self.propose(&[rec], Pending::Register { reply, broker }, out);
            }
            Request::Heartbeat { broker, epoch } => {
                let Some(b) = self.image.broker(broker) else {
                    return Err(ApiError::new(
                        codes::BROKER_ID_NOT_REGISTERED,
                        format!("broker {broker} is not registered"),
                    ));
                };
                if b.epoch != epoch {
                    return Err(ApiError::new(
                        codes::STALE_BROKER_EPOCH,
                        format!("broker {broker} is at epoch {}, not {epoch}", b.epoch),
                    ));
                }
                let fenced = b.fenced;
                self.sessions
                    .insert(broker, now + self.config.session_timeout_ms);
                if fenced && self.changing.insert(broker) {
                    self.propose(
                        &[Record::UnfenceBroker { broker, epoch }],
                        Pending::Unfence { broker },
                        out,
                    );
                }
                out.push(Output::Reply {
                    reply,
                    result: Ok(Response::Heartbeat { fenced }),
                });
            }
            Request::CreateTopic {
                name,
                partitions,
                replication_factor,
                assignment,
                configs,
                validate_only,
            } => {
                validate_topic_name(&name)?;
                if self.image.topic(&name).is_some() || self.creating.contains(&name) {
                    return Err(ApiError::new(
                        codes::TOPIC_ALREADY_EXISTS,
                        format!("Topic '{name}' already exists."),
                    ));
                }
                self.check_configs(configs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))))?;
                let placed = match assignment {
                    Some(a) => {
                        if partitions != -1 || replication_factor != -1 {
                            return Err(ApiError::new(
                                codes::INVALID_REQUEST,
                                "Both numPartitions or replicationFactor and replicasAssignment were set. Both cannot be used at the same time.",
                            ));
                        }
                        if a.is_empty() || a.len() > self.config.partitions_max as usize {
                            return Err(ApiError::new(
                                codes::INVALID_PARTITIONS,
                                format!("{} partitions is out of range", a.len()),
                            ));
                        }
                        self.check_assignment(&a, None)?;
                        a
                    }
                    None => {
                        let partitions = if partitions == -1 {
                            self.config.default_partitions
                        } else {
                            partitions
                        };
                        let rf = if replication_factor == -1 {
                            self.config.default_replication_factor
                        } else {
                            replication_factor
                        };
                        if partitions < 1 {
                            return Err(ApiError::new(
                                codes::INVALID_PARTITIONS,
                                "Number of partitions was set to an invalid non-positive value.",
                            ));
                        }
                        if partitions > self.config.partitions_max {
                            return Err(ApiError::new(
                                codes::INVALID_PARTITIONS,
                                format!(
                                    "{partitions} partitions is more than the most allowed, {}",
                                    self.config.partitions_max
                                ),
                            ));
                        }
                        if rf < 1 {
                            return Err(ApiError::new(
                                codes::INVALID_REPLICATION_FACTOR,
                                "Replication factor must be larger than 0.",
                            ));
                        }
                        self.image.place(partitions as usize, rf as usize)?
                    }
                };
                if validate_only {
                    out.push(Output::Reply {
                        reply,
                        result: Ok(Response::TopicCreated {
                            id: TopicId::default(),
                            assignment: placed,
                        }),
                    });
                    return Ok(());
                }
                self.propose_topic(reply, name, placed, configs, out);
            }
            Request::EnsureOffsetsTopic {
                partitions,
                replication_factor,
            } => {
                let name = OFFSETS_TOPIC.to_string();
                if let Some(t) = self.image.topic(&name) {
                    let assignment = t.partitions.iter().map(|p| p.replicas.clone()).collect();
                    out.push(Output::Reply {
                        reply,
                        result: Ok(Response::TopicCreated {
                            id: t.id,
                            assignment,
                        }),
                    });
                    return Ok(());
                }
                if self.creating.contains(&name) {
                    // Another broker's request is committing it; this one
                    // asks again and then finds it.
                    return Err(ApiError::new(
                        codes::REQUEST_TIMED_OUT,
                        "the offsets topic is being created",
                    ));
                }
                if partitions < 1 || partitions > self.config.partitions_max {
                    return Err(ApiError::new(
                        codes::INVALID_PARTITIONS,
                        format!("{partitions} offsets partitions is out of range"),
                    ));
                }
                let placed = self
                    .image
                    .place(partitions as usize, replication_factor.max(0) as usize)?;
                self.propose_topic(reply, name, placed, Vec::new(), out);
            }
            Request::CreatePartitions {
                name,
                count,
                assignment,
            } => {
                if name == OFFSETS_TOPIC {
                    // Its partition count decides which partition, and so
                    // which broker, coordinates each group.
                    return Err(ApiError::new(
                        codes::INVALID_TOPIC_EXCEPTION,
                        format!(
                            "{name} is the internal offsets topic; its partition count is fixed"
                        ),
                    ));
                }
                let Some(t) = self.image.topic(&name) else {
                    return Err(ApiError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("Topic '{name}' does not exist."),
                    ));
                };
                let have = t.partitions.len() as i32;
                let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
                let id = t.id;
                if count <= have {
                    return Err(ApiError::new(
                        codes::INVALID_PARTITIONS,
                        format!("Topic currently has {have} partitions, which is higher than or equal to the requested {count}."),
                    ));
                }
                if count > self.config.partitions_max {
                    return Err(ApiError::new(
                        codes::INVALID_PARTITIONS,
                        format!("{count} partitions is more than the most allowed"),
                    ));
                }
                let new = (count - have) as usize;
                let placed = match assignment {
                    Some(a) => {
                        if a.len() != new {
                            return Err(ApiError::new(
                                codes::INVALID_REPLICA_ASSIGNMENT,
                                format!("Increasing the number of partitions by {new} but {} assignments provided.", a.len()),
                            ));
                        }
                        self.check_assignment(&a, Some(rf))?;
                        a
                    }
                    None => self.image.place(new, rf)?,
                };
                let batch: Vec<Record> = placed
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| {
                        Record::Partition(self.image.new_partition(id, have + i as i32, r))
                    })
                    .collect();
                self.propose(
                    &batch,
                    Pending::Other {
                        reply,
                        ok: Response::PartitionsCreated,
                    },
                    out,
                );
            }
            Request::DeleteTopic { name } => {
                if name == OFFSETS_TOPIC {
                    return Err(ApiError::new(
                        codes::INVALID_TOPIC_EXCEPTION,
                        format!("{name} is the internal offsets topic; it cannot be deleted"),
                    ));
                }
                let Some(t) = self.image.topic(&name) else {
                    return Err(ApiError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("Topic '{name}' does not exist."),
                    ));
                };
                let id = t.id;
                self.propose(
                    &[Record::RemoveTopic { id }],
                    Pending::Other {
                        reply,
                        ok: Response::TopicDeleted { id },
                    },
                    out,
                );
            }
            Request::AlterConfigs { topic, changes } => {
                if self.image.topic(&topic).is_none() {
                    return Err(ApiError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("Topic '{topic}' does not exist."),
                    ));
                }
                self.check_configs(changes.iter().map(|(k, v)| (k.as_str(), v.as_deref())))?;
                let batch: Vec<Record> = changes
                    .into_iter()
                    .map(|(name, value)| Record::Config {
                        topic: topic.clone(),
                        name,
                        value,
                    })
                    .collect();
                if batch.is_empty() {
                    out.push(Output::Reply {
                        reply,
                        result: Ok(Response::ConfigsAltered),
                    });
                    return Ok(());
                }
                self.propose(
                    &batch,
                    Pending::Other {
                        reply,
                        ok: Response::ConfigsAltered,
                    },
                    out,
                );
            }
            Request::AlterPartitions {
                broker,
                broker_epoch,
                changes,
            } => {
                self.check_broker_epoch(broker, broker_epoch)?;
                let mut records = Vec::new();
                let mut results = Vec::with_capacity(changes.len());
                let mut seen = BTreeSet::new();
                for change in changes {
                    // Two changes of one partition in one batch would both
                    // be checked against the same partition epoch.
                    let outcome = if seen.insert((change.topic_id, change.partition)) {
                        self.isr_change(broker, change)
                    } else {
                        Err(ApiError::new(
                            codes::INVALID_REQUEST,
                            "the partition is named twice in one request",
                        ))
                    };
                    results.push(outcome.map(|(record, state)| {
                        records.push(record);
                        state
                    }));
                }
                let ok = Response::PartitionsAltered(results);
                self.reply_or_propose(reply, records, ok, out);
            }
            Request::ElectLeaders {
                election,
                partitions,
            } => {
                let all = partitions.is_none();
                let asked: Vec<TopicPartition> = match partitions {
                    Some(list) => {
                        let mut seen = BTreeSet::new();
                        list.into_iter()
                            .filter(|tp| seen.insert(tp.clone()))
                            .collect()
                    }
                    None => self
                        .image
                        .topics()
                        .iter()
                        .filter(|(name, _)| name.as_str() != OFFSETS_TOPIC)
                        .flat_map(|(name, t)| {
                            (0..t.partitions.len())
                                .map(move |i| TopicPartition::new(name.clone(), i as i32))
                        })
                        .collect(),
                };
                let mut records = Vec::new();
                let mut results = Vec::new();
                for TopicPartition { topic, partition } in asked {
                    let outcome =
                        self.find_partition(&topic, partition)
                            .and_then(|(id, p)| match election {
                                Election::Preferred => self.preferred_election(id, partition, p),
                                Election::Unclean => self.unclean_election(id, partition, p),
                            });
                    let error = match outcome {
                        Ok(r) => {
                            records.push(r);
                            None
                        }
                        // Asked for every partition: only those that
                        // needed one are answered, as Kafka does.
                        Err(e) if all && e.code == codes::ELECTION_NOT_NEEDED => continue,
                        Err(e) => Some(e),
                    };
                    results.push(ElectionResult {
                        topic,
                        partition,
                        error,
                    });
                }
                let ok = Response::LeadersElected { results };
                self.reply_or_propose(reply, records, ok, out);
            }
            Request::AlterReassignments { partitions } => {
                let mut records = Vec::new();
                let mut results = Vec::new();
                let mut seen = BTreeSet::new();
                for (tp, target) in partitions {
                    let outcome = if !seen.insert(tp.clone()) {
                        Err(ApiError::new(
                            codes::INVALID_REQUEST,
                            "the partition is named twice",
                        ))
                    } else {
                        self.find_partition(&tp.topic, tp.partition)
                            .and_then(|(id, p)| self.reassignment(id, tp.partition, p, target))
                    };
                    let TopicPartition { topic, partition } = tp;
                    let error = match outcome {
                        Ok(r) => {
                            // None: already so, nothing to do, no error.
                            records.extend(r);
                            None
                        }
                        Err(e) => Some(e),
                    };
                    results.push(ElectionResult {
                        topic,
                        partition,
                        error,
                    });
                }
                let ok = Response::ReassignmentsAltered { results };
                self.reply_or_propose(reply, records, ok, out);
            }
            Request::ListReassignments { partitions } => {
                let mut list = Vec::new();
                for (name, t) in self.image.topics() {
                    for (i, p) in t.partitions.iter().enumerate() {
                        let asked = partitions.as_ref().is_none_or(|l| {
                            l.iter()
                                .any(|tp| tp.topic == *name && tp.partition == i as i32)
                        });
                        if asked && p.reassigning() {
                            list.push(Reassignment {
                                topic: name.clone(),
                                partition: i as i32,
                                replicas: p.replicas.clone(),
                                adding: p.adding.clone(),
                                removing: p.removing.clone(),
                            });
                        }
                    }
                }
                out.push(Output::Reply {
                    reply,
                    result: Ok(Response::Reassignments(list)),
                });
            }
            Request::AllocateProducerIds { broker, epoch } => {
                self.check_broker_epoch(broker, epoch)?;
                let start = self
                    .pid_next
                    .unwrap_or(0)
                    .max(self.image.next_producer_id());
                let len = self.config.producer_id_block;
                self.pid_next = Some(start + len);
                self.propose(
                    &[Record::ProducerIds {
                        broker,
                        epoch,
                        start,
                        len,
                    }],
                    Pending::ProducerIds { reply },
                    out,
                );
            }
        }
        Ok(())
    }

    fn apply(&mut self, now: u64, e: CommittedEntry, out: &mut Vec<Output>) {
        if e.index <= self.image.applied_index() {
            return;
        }
        let pending = e.proposal.and_then(|id| self.pending.remove(&id));
        if let Some(p) = &pending {
            self.forget(p);
        }
        if e.data.is_empty() {
            self.image.skip(e.index);
            return;
        }
        let result = match decode_batch(&e.data) {
            Ok(batch) => self.image.apply(e.index, &batch),
            Err(err) => {
                self.image.skip(e.index);
                out.push(Output::Corrupt {
                    index: e.index,
                    reason: err.to_string(),
                });
                Err(ApiError::new(codes::UNKNOWN_SERVER_ERROR, err.to_string()))
            }
        };
        let Some(p) = pending else { return };
        let (reply, result) = match p {
            Pending::Register { reply, broker } => {
                if result.is_ok() {
                    self.sessions
                        .insert(broker, now + self.config.session_timeout_ms);
                }
                (
                    reply,
                    result.and_then(|a| {
                        a.broker_epoch
                            .map(|epoch| Response::Registered { epoch })
                            .ok_or_else(|| ApiError::new(codes::UNKNOWN_SERVER_ERROR, "no epoch"))
                    }),
                )
            }
            Pending::CreateTopic {
                reply,
                id,
                assignment,
                ..
            } => (
                reply,
                result.map(|_| Response::TopicCreated { id, assignment }),
            ),
            Pending::Other { reply, ok } => (reply, result.map(|_| ok)),
            Pending::ProducerIds { reply } => (
                reply,
                result.and_then(|a| {
                    a.producer_ids
                        .map(Response::ProducerIds)
                        .ok_or_else(|| ApiError::new(codes::UNKNOWN_SERVER_ERROR, "no block"))
                }),
            ),
            Pending::Fence { .. }
            | Pending::Unfence { .. }
            | Pending::Rebalance
            | Pending::Reassign => return,
        };
        out.push(Output::Reply { reply, result });
    }
}

fn reply_of(p: &Pending) -> Option<ReplyId> {
    match p {
        Pending::Register { reply, .. }
        | Pending::CreateTopic { reply, .. }
        | Pending::Other { reply, .. }
        | Pending::ProducerIds { reply } => Some(*reply),
        Pending::Fence { .. }
        | Pending::Unfence { .. }
        | Pending::Rebalance
        | Pending::Reassign => None,
    }
}
