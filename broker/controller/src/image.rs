//! The metadata image: the state the committed records build, the same on
//! every node that applied the same prefix of the log.
//!
//! [`MetadataImage::apply`] is deterministic: it reads nothing but the
//! image, the batch and the entry's index, and iterates only ordered maps.
//! A batch applies whole or not at all; a batch that does not fit the image
//! (a second topic with a taken name, a producer-id block that does not
//! start at the next free id, a fence of a stale broker epoch) is refused
//! by every node alike and changes nothing but the applied index. That is
//! what keeps names unique and producer-id blocks disjoint even when a
//! deposed leader's proposals race a new leader's.
//!
//! Snapshots ([`MetadataImage::encode_snapshot`]) hold the whole image with
//! its applied index, versioned like the records and decoded as boundedly.

use std::collections::BTreeMap;

use corelog_model::{LeaderEpoch, NodeId, TopicId};

use crate::codec::{DecodeError, Reader, Writer};
use crate::codes::{self, ApiError};
use crate::records::{
    get_endpoints, get_nodes, get_partition, put_endpoints, put_nodes, put_partition, Endpoint,
    PartitionRecord, Record, LIST_MAX, STRING_BYTES_MAX,
};

/// The snapshot encoding's version.
pub const SNAPSHOT_VERSION: u8 = 3;
/// Most brokers, topics, or partitions of one topic a snapshot may hold.
pub const SNAPSHOT_ITEMS_MAX: usize = 1_000_000;

/// No leader: every replica is fenced.
pub const NO_LEADER: NodeId = NodeId(-1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: NodeId,
    pub incarnation: [u8; 16],
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// The log index of its latest registration.
    pub epoch: i64,
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// Eligible leader replicas (KIP-966): replicas outside the ISR that
    /// hold every committed offset on disk, so one may lead when no member
    /// of the ISR is live. A replica enters it when it leaves an ISR that
    /// is then smaller than the topic's `min.insync.replicas`: the high
    /// watermark cannot advance past what it holds while the ISR stays that
    /// small, and the list is emptied as soon as the ISR is large enough
    /// again. Derived from the records by [`PartitionInfo::set_isr`], so
    /// every node's image holds the same list; kept in snapshots.
    pub elr: Vec<NodeId>,
    /// A reassignment in progress (KIP-455): the replicas being added, not
    /// yet in sync, and those to remove once they are. Both empty when
    /// none is; then `replicas` is the target.
    pub adding: Vec<NodeId>,
    pub removing: Vec<NodeId>,
}

impl PartitionInfo {
    /// Whether a change decided at the partition's current epochs would
    /// be at `leader_epoch` and `partition_epoch`: the next of each. A
    /// change decided before another was applied is refused by this.
    fn follows_at(&self, leader_epoch: LeaderEpoch, partition_epoch: i32) -> bool {
        partition_epoch == self.partition_epoch + 1 && leader_epoch.0 == self.leader_epoch.0 + 1
    }

    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition is to have: all of them, less those
    /// being removed.
    pub fn target_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// The replicas before the reassignment in progress: all of them, less
    /// those being added.
    pub fn original_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }

    /// Replaces the ISR and keeps the eligible leader replicas true to it:
    /// members that leave an ISR now below `min_isr` become eligible,
    /// members of the ISR are not listed, and an ISR of at least `min_isr`
    /// members empties the list (the high watermark may advance past what
    /// the others hold from now on).
    fn set_isr(&mut self, isr: Vec<NodeId>, min_isr: usize) {
        if isr.len() < min_isr {
            for r in &self.isr {
                if !isr.contains(r) && !self.elr.contains(r) {
                    self.elr.push(*r);
                }
            }
            self.elr.retain(|r| !isr.contains(r));
        } else {
            self.elr.clear();
        }
        self.isr = isr;
    }
}

/// A topic's `min.insync.replicas` as the image knows it: its override, or
/// 1, Kafka's default and the broker's. A broker default above 1 would only
/// make the image's value lower than the leaders', which keeps the list of
/// eligible leader replicas shorter, never wrong.
fn min_isr(configs: &BTreeMap<String, String>) -> usize {
    configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicId,
    pub partitions: Vec<PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

/// A block of producer ids handed to one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub broker: NodeId,
    pub start: i64,
    pub len: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataImage {
    applied_index: u64,
    brokers: BTreeMap<NodeId, BrokerInfo>,
    topics: BTreeMap<String, TopicInfo>,
    topic_names: BTreeMap<TopicId, String>,
    next_producer_id: i64,
    last_block: BTreeMap<NodeId, ProducerIdBlock>,
}

/// How [`MetadataImage::reelect`] chose a partition's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Election {
    /// From the ISR, or from the eligible leader replicas.
    Clean,
    /// From outside both (`unclean.leader.election.enable`).
    Unclean,
}

/// What a successfully applied batch did that its proposer answers with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    pub broker_epoch: Option<i64>,
    pub producer_ids: Option<ProducerIdBlock>,
}

impl MetadataImage {
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
    pub fn brokers(&self) -> &BTreeMap<NodeId, BrokerInfo> {
        &self.brokers
    }
    pub fn broker(&self, id: NodeId) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }
    pub fn topics(&self) -> &BTreeMap<String, TopicInfo> {
        &self.topics
    }
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }
    pub fn topic_name(&self, id: TopicId) -> Option<&str> {
        self.topic_names.get(&id).map(String::as_str)
    }
    /// The first producer id no block has been given yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }
    /// Each broker's latest producer-id block.
    pub fn last_producer_blocks(&self) -> &BTreeMap<NodeId, ProducerIdBlock> {
        &self.last_block
    }
    /// Unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Applies the batch committed at `index`, whole or not at all. The
    /// applied index moves to `index` either way.
    pub fn apply(&mut self, index: u64, batch: &[Record]) -> Result<Applied, ApiError> {
        let result = if batch.len() == 1 {
            // Each record checks before it changes anything.
            self.apply_one(index, &batch[0])
        } else {
            let mut next = self.clone();
            let mut applied = Applied::default();
            let mut result = Ok(());
            for rec in batch {
                match next.apply_one(index, rec) {
                    Ok(a) => {
                        applied.broker_epoch = applied.broker_epoch.or(a.broker_epoch);
                        applied.producer_ids = applied.producer_ids.or(a.producer_ids);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result.map(|()| {
                *self = next;
                applied
            })
        };
        self.applied_index = self.applied_index.max(index);
        result
    }

    /// Moves the applied index past an entry that holds no records (a
    /// leader's no-op, an undecodable entry).
    pub fn skip(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// A clean election: the first live replica (not `without`) in the
    /// ISR, else the first live eligible leader replica, else
    /// [`NO_LEADER`]. One from the eligible replicas leads an ISR of itself.
    pub fn elect(&self, p: &PartitionInfo, without: Option<NodeId>) -> NodeId {
        let live = |r: &NodeId| Some(*r) != without && self.is_live(*r);
        p.replicas
            .iter()
            .copied()
            .filter(|r| p.isr.contains(r))
            .find(live)
            .or_else(|| {
                // No member of the ISR is live: an eligible leader replica
                // holds everything committed just the same (KIP-966).
                p.replicas
                    .iter()
                    .copied()
                    .filter(|r| p.elr.contains(r))
                    .find(live)
            })
            .unwrap_or(NO_LEADER)
    }

    /// Whether `broker` is registered and not fenced.
    pub fn is_live(&self, broker: NodeId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// An unclean election (Kafka's, for `unclean.leader.election.enable`):
    /// the first live replica, not `without`, when no member of the ISR is
    /// live. It leads an ISR of itself alone; what it lacks of the offsets
    /// committed before is lost, which is what the setting accepts.
    pub fn elect_unclean(&self, p: &PartitionInfo, without: Option<NodeId>) -> NodeId {
        p.replicas
            .iter()
            .copied()
            .filter(|r| Some(*r) != without)
            .find(|r| self.is_live(*r))
            .unwrap_or(NO_LEADER)
    }

    /// Re-elects every partition led by `gone` (now fenced) or without a
    /// leader; bumps the epochs of those whose leader changes. A fenced
    /// broker also leaves every ISR it is in, unless it is the last
    /// member (as Kafka's controller does): the rest of the ISR holds
    /// everything committed, and a leader whose ISR kept a dead member
    /// could never advance its high watermark. The last member stays, so
    /// that only a replica holding every committed offset can lead again:
    /// it, or an eligible leader replica (KIP-966), which also holds them.
    fn reelect(&mut self, gone: Option<NodeId>) {
        let mut changes = Vec::new();
        for (name, t) in &self.topics {
            let unclean = t
                .configs
                .get("unclean.leader.election.enable")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            for (i, p) in t.partitions.iter().enumerate() {
                let leaves_isr = gone.is_some_and(|g| p.isr.contains(&g) && p.isr.len() > 1);
                let mut how = Election::Clean;
                let leader = if Some(p.leader) == gone || p.leader == NO_LEADER {
                    match self.elect(p, gone) {
                        NO_LEADER if unclean => {
                            let l = self.elect_unclean(p, gone);
                            if l != NO_LEADER {
                                how = Election::Unclean;
                            }
                            l
                        }
                        l => l,
                    }
                } else {
                    p.leader
                };
                if leader != p.leader || leaves_isr {
                    changes.push((name.clone(), i, leader, leaves_isr, how));
                }
            }
        }
        for (name, i, leader, leaves_isr, how) in changes {
            let Some(t) = self.topics.get_mut(&name) else {
                continue;
            };
            let min = min_isr(&t.configs);
            let Some(p) = t.partitions.get_mut(i) else {
                continue;
            };
            if leader != p.leader {
                p.leader = leader;
                p.leader_epoch = LeaderEpoch(p.leader_epoch.0 + 1);
            }
            if leaves_isr {
                let isr = p.isr.iter().copied().filter(|r| Some(*r) != gone).collect();
                p.set_isr(isr, min);
            }
            match how {
                Election::Unclean => {
                    // The new leader's log is the history from now on: no
                    // other replica is known to hold what it does.
                    p.isr = vec![leader];
                    p.elr.clear();
                }
                Election::Clean if leader != NO_LEADER && !p.isr.contains(&leader) => {
                    // An eligible leader replica: it leads an ISR of
                    // itself, and the members it replaces, which hold
                    // everything committed too, become eligible.
                    p.set_isr(vec![leader], min);
                }
                Election::Clean => {}
            }
            p.partition_epoch += 1;
        }
    }

    /// The partition a record names, for changing it, and its topic's
    /// `min.insync.replicas` ([`min_isr`]).
    fn partition_mut(
        &mut self,
        topic_id: TopicId,
        partition: i32,
    ) -> Result<(&mut PartitionInfo, usize), ApiError> {
        let unknown = || {
            ApiError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                "unknown topic id or partition",
            )
        };
        let name = self.topic_names.get(&topic_id).ok_or_else(unknown)?;
        let t = self.topics.get_mut(name).ok_or_else(unknown)?;
        let min = min_isr(&t.configs);
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get_mut(i))
            .map(|p| (p, min))
            .ok_or_else(unknown)
    }

    fn apply_one(&mut self, index: u64, rec: &Record) -> Result<Applied, ApiError> {
        let stale = |what: String| Err(ApiError::new(codes::STALE_BROKER_EPOCH, what));
        match rec {
            Record::RegisterBroker {
                broker,
                incarnation,
                endpoints,
                rack,
            } => {
                if broker.0 < 0 {
                    return Err(ApiError::new(codes::INVALID_REQUEST, "negative broker id"));
                }
                let was_live = self.brokers.get(broker).is_some_and(|b| !b.fenced);
                self.brokers.insert(
                    *broker,
                    BrokerInfo {
                        id: *broker,
                        incarnation: *incarnation,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        epoch: index as i64,
                        fenced: true,
                    },
                );
                if was_live {
                    self.reelect(Some(*broker));
                }
                Ok(Applied {
                    broker_epoch: Some(index as i64),
                    ..Default::default()
                })
            }
            Record::FenceBroker { broker, epoch } | Record::UnfenceBroker { broker, epoch } => {
                let fence = matches!(rec, Record::FenceBroker { .. });
                let Some(b) = self.brokers.get_mut(broker) else {
                    return Err(ApiError::new(
                        codes::BROKER_ID_NOT_REGISTERED,
                        format!("broker {broker} is not registered"),
                    ));
                };
                if b.epoch != *epoch {
                    return stale(format!(
                        "broker {broker} is at epoch {}, not {epoch}",
                        b.epoch
                    ));
                }
                if b.fenced == fence {
                    return Ok(Applied::default());
                }
                b.fenced = fence;
                self.reelect(fence.then_some(*broker));
                Ok(Applied::default())
            }
            Record::Topic { name, id } => {
                if self.topics.contains_key(name) {
                    return Err(ApiError::new(
                        codes::TOPIC_ALREADY_EXISTS,
                        format!("Topic '{name}' already exists."),
                    ));
                }
                if self.topic_names.contains_key(id) || *id == TopicId::default() {
                    return Err(ApiError::new(codes::INVALID_REQUEST, "topic id is taken"));
                }
                self.topics.insert(
                    name.clone(),
                    TopicInfo {
                        id: *id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    },
                );
                self.topic_names.insert(*id, name.clone());
                Ok(Applied::default())
            }
            Record::Partition(p) => {
                let unknown =
                    || ApiError::new(codes::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic id");
                let name = self.topic_names.get(&p.topic_id).ok_or_else(unknown)?;
                let count = self.topics.get(name).map_or(0, |t| t.partitions.len());
                let mut seen = p.replicas.clone();
                seen.sort();
                seen.dedup();
                let valid = p.partition as usize == count
                    && !p.replicas.is_empty()
                    && seen.len() == p.replicas.len()
                    && p.replicas.iter().all(|r| self.brokers.contains_key(r))
                    && p.isr.iter().all(|r| p.replicas.contains(r))
                    && (p.leader == NO_LEADER || p.replicas.contains(&p.leader));
                if !valid {
                    return Err(ApiError::new(
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        format!("partition {} of {name} does not fit the image", p.partition),
                    ));
                }
                let name = name.clone();
                if let Some(t) = self.topics.get_mut(&name) {
                    t.partitions.push(PartitionInfo {
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                        elr: Vec::new(),
                        adding: Vec::new(),
                        removing: Vec::new(),
                    });
                }
                Ok(Applied::default())
            }
            Record::PartitionChange {
                topic_id,
                partition,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let (p, min) = self.partition_mut(*topic_id, *partition)?;
                if *partition_epoch != p.partition_epoch + 1 {
                    return Err(ApiError::new(
                        codes::INVALID_UPDATE_VERSION,
                        format!(
                            "partition epoch {partition_epoch} does not follow {}",
                            p.partition_epoch
                        ),
                    ));
                }
                if *leader != p.leader || *leader_epoch != p.leader_epoch {
                    return Err(ApiError::new(
                        codes::FENCED_LEADER_EPOCH,
                        "the leader or its epoch changed",
                    ));
                }
                if !isr_fits(isr, &p.replicas, *leader) {
                    return Err(ApiError::new(
                        codes::INVALID_REQUEST,
                        "the ISR must be replicas of the partition, the leader among them",
                    ));
                }
                p.set_isr(isr.clone(), min);
                p.partition_epoch = *partition_epoch;
                Ok(Applied::default())
            }
            Record::ElectLeader {
                topic_id,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let (p, min) = self.partition_mut(*topic_id, *partition)?;
                if !p.follows_at(*leader_epoch, *partition_epoch) {
                    return Err(ApiError::new(
                        codes::INVALID_UPDATE_VERSION,
                        "the partition changed since the election was decided",
                    ));
                }
                if !isr_fits(isr, &p.replicas, *leader) {
                    return Err(ApiError::new(
                        codes::INVALID_REQUEST,
                        "the ISR must be replicas of the partition, the leader among them",
                    ));
                }
                if p.isr.contains(leader) || p.elr.contains(leader) {
                    p.set_isr(isr.clone(), min);
                } else {
                    // Unclean: the new leader's log is the history now.
                    p.isr = isr.clone();
                    p.elr.clear();
                }
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                p.partition_epoch = *partition_epoch;
                Ok(Applied::default())
            }
            Record::Reassign {
                topic_id,
                partition,
                replicas,
                adding,
                removing,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let (p, min) = self.partition_mut(*topic_id, *partition)?;
                if !p.follows_at(*leader_epoch, *partition_epoch) {
                    return Err(ApiError::new(
                        codes::INVALID_UPDATE_VERSION,
                        "the partition changed since the reassignment was decided",
                    ));
                }
                let within = |l: &[NodeId]| l.iter().all(|r| replicas.contains(r));
                let leaderless = *leader == NO_LEADER && isr.iter().all(|r| replicas.contains(r));
                if replicas.is_empty()
                    || !distinct(replicas)
                    || !within(adding)
                    || !within(removing)
                    || adding.iter().any(|r| removing.contains(r))
                    || !(leaderless || isr_fits(isr, replicas, *leader))
                {
                    return Err(ApiError::new(
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        "a reassignment must name distinct replicas holding the ISR and the leader",
                    ));
                }
                p.replicas = replicas.clone();
                p.adding = adding.clone();
                p.removing = removing.clone();
                p.elr.retain(|r| replicas.contains(r));
                p.set_isr(isr.clone(), min);
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                p.partition_epoch = *partition_epoch;
                Ok(Applied::default())
            }
            Record::RemoveTopic { id } => {
                let Some(name) = self.topic_names.remove(id) else {
                    return Err(ApiError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        "unknown topic id",
                    ));
                };
                self.topics.remove(&name);
                Ok(Applied::default())
            }
            Record::Config { topic, name, value } => {
                let Some(t) = self.topics.get_mut(topic) else {
                    return Err(ApiError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("unknown topic {topic}"),
                    ));
                };
                match value {
                    Some(v) => {
                        t.configs.insert(name.clone(), v.clone());
                    }
                    None => {
                        t.configs.remove(name);
                    }
                }
                if name == "min.insync.replicas" {
                    // Lowered to the ISR's size or below: the high
                    // watermark may now advance past the eligible
                    // replicas, which are eligible no longer.
                    let min = min_isr(&t.configs);
                    for p in &mut t.partitions {
                        if p.isr.len() >= min {
                            p.elr.clear();
                        }
                    }
                }
                if name == "unclean.leader.election.enable" {
                    // Allowed now: a partition left without a leader gets
                    // one at once, as Kafka's controller does.
                    self.reelect(None);
                }
                Ok(Applied::default())
            }
            Record::ProducerIds {
                broker,
                epoch,
                start,
                len,
            } => {
                match self.brokers.get(broker) {
                    None => {
                        return Err(ApiError::new(
                            codes::BROKER_ID_NOT_REGISTERED,
                            format!("broker {broker} is not registered"),
                        ))
                    }
                    Some(b) if b.epoch != *epoch => {
                        return stale(format!("broker {broker} is at epoch {}", b.epoch))
                    }
                    Some(_) => {}
                }
                if *start != self.next_producer_id || *len <= 0 || start.checked_add(*len).is_none()
                {
                    return Err(ApiError::new(
                        codes::UNKNOWN_SERVER_ERROR,
                        "producer-id block does not start at the next free id",
                    ));
                }
                let block = ProducerIdBlock {
                    broker: *broker,
                    start: *start,
                    len: *len,
                };
                self.next_producer_id = start + len;
                self.last_block.insert(*broker, block);
                Ok(Applied {
                    producer_ids: Some(block),
                    ..Default::default()
                })
            }
        }
    }

    /// Places `partitions` new partitions with `replication_factor`
    /// replicas on the unfenced brokers, balanced: each partition's leader
    /// (its first replica) is the live broker leading the fewest
    /// partitions, then holding the fewest replicas, then the lowest id;
    /// followers are the brokers with the fewest replicas, preferring racks
    /// the partition does not use yet.
    pub fn place(
        &self,
        partitions: usize,
        replication_factor: usize,
    ) -> Result<Vec<Vec<NodeId>>, ApiError> {
        let live: Vec<&BrokerInfo> = self.live_brokers().collect();
        if replication_factor == 0 || replication_factor > live.len() {
            return Err(ApiError::new(
                codes::INVALID_REPLICATION_FACTOR,
                format!(
                    "Replication factor: {replication_factor} larger than available brokers: {}.",
                    live.len()
                ),
            ));
        }
        let mut leaders: BTreeMap<NodeId, usize> = live.iter().map(|b| (b.id, 0)).collect();
        let mut replicas = leaders.clone();
        for t in self.topics.values() {
            for p in &t.partitions {
                if let Some(n) = leaders.get_mut(&p.leader) {
                    *n += 1;
                }
                for r in &p.replicas {
                    if let Some(n) = replicas.get_mut(r) {
                        *n += 1;
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            let leader = live
                .iter()
                .min_by_key(|b| (leaders[&b.id], replicas[&b.id], b.id))
                .map(|b| b.id)
                .unwrap_or(NO_LEADER);
            let mut chosen = vec![leader];
            while chosen.len() < replication_factor {
                let racks: Vec<Option<&String>> = chosen
                    .iter()
                    .filter_map(|c| self.brokers.get(c))
                    .map(|b| b.rack.as_ref())
                    .collect();
                let next = live
                    .iter()
                    .filter(|b| !chosen.contains(&b.id))
                    .min_by_key(|b| {
                        let rack_used = b.rack.is_some() && racks.contains(&b.rack.as_ref());
                        (rack_used, replicas[&b.id], b.id)
                    })
                    .map(|b| b.id)
                    .unwrap_or(NO_LEADER);
                chosen.push(next);
            }
            *leaders.entry(leader).or_default() += 1;
            for c in &chosen {
                *replicas.entry(*c).or_default() += 1;
            }
            out.push(chosen);
        }
        Ok(out)
    }

    /// The partition record a new partition gets: leader its first live
    /// replica, in-sync replicas all of them, epochs 0.
    pub fn new_partition(
        &self,
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<NodeId>,
    ) -> PartitionRecord {
        let info = PartitionInfo {
            isr: replicas.clone(),
            replicas: replicas.clone(),
            leader: NO_LEADER,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            elr: Vec::new(),
            adding: Vec::new(),
            removing: Vec::new(),
        };
        let leader = self.elect(&info, None);
        PartitionRecord {
            topic_id,
            partition,
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
        }
    }

    /// The whole image, for a snapshot.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(SNAPSHOT_VERSION);
        w.u64(self.applied_index);
        w.i64(self.next_producer_id);
        w.len(self.brokers.len());
        for b in self.brokers.values() {
            w.i32(b.id.0);
            w.bytes16(&b.incarnation);
            put_endpoints(&mut w, &b.endpoints);
            w.opt_str(b.rack.as_deref());
            w.i64(b.epoch);
            w.u8(b.fenced as u8);
        }
        w.len(self.topics.len());
        for (name, t) in &self.topics {
            w.str(name);
            w.bytes16(&t.id.0);
            w.len(t.configs.len());
            for (k, v) in &t.configs {
                w.str(k);
                w.str(v);
            }
            w.len(t.partitions.len());
            for (i, p) in t.partitions.iter().enumerate() {
                put_partition(
                    &mut w,
                    &PartitionRecord {
                        topic_id: t.id,
                        partition: i as i32,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                    },
                );
                put_nodes(&mut w, &p.elr);
                put_nodes(&mut w, &p.adding);
                put_nodes(&mut w, &p.removing);
            }
        }
        w.len(self.last_block.len());
        for b in self.last_block.values() {
            w.i32(b.broker.0);
            w.i64(b.start);
            w.i64(b.len);
        }
        w.buf
    }

    /// Decodes a snapshot. Never panics; refuses anything inconsistent.
    pub fn decode_snapshot(data: &[u8]) -> Result<MetadataImage, DecodeError> {
        let mut r = Reader::new(data);
        let v = r.u8()?;
        // Version 1 had no eligible leader replicas: empty lists, which
        // are always safe (they only make fewer replicas eligible).
        // Versions 1 and 2 had no reassignments.
        if !(1..=SNAPSHOT_VERSION).contains(&v) {
            return Err(DecodeError::Version(v));
        }
        let mut image = MetadataImage {
            applied_index: r.u64()?,
            next_producer_id: r.i64()?,
            ..Default::default()
        };
        let n = r.len(SNAPSHOT_ITEMS_MAX, 34, "brokers")?;
        for _ in 0..n {
            let id = NodeId(r.i32()?);
            let b = BrokerInfo {
                id,
                incarnation: r.bytes16()?,
                endpoints: get_endpoints(&mut r)?,
                rack: r.opt_str(STRING_BYTES_MAX, "rack")?,
                epoch: r.i64()?,
                fenced: r.bool()?,
            };
            image.brokers.insert(id, b);
        }
        let n = r.len(SNAPSHOT_ITEMS_MAX, 28, "topics")?;
        for _ in 0..n {
            let name = r.str(STRING_BYTES_MAX, "topic name")?;
            let id = TopicId(r.bytes16()?);
            let mut configs = BTreeMap::new();
            let c = r.len(LIST_MAX * 16, 8, "configs")?;
            for _ in 0..c {
                let k = r.str(STRING_BYTES_MAX, "config name")?;
                let v = r.str(STRING_BYTES_MAX, "config value")?;
                configs.insert(k, v);
            }
            let pc = r.len(SNAPSHOT_ITEMS_MAX, 40, "partitions")?;
            let mut partitions = Vec::with_capacity(pc);
            for i in 0..pc {
                let p = get_partition(&mut r)?;
                if p.topic_id != id || p.partition as usize != i {
                    return Err(DecodeError::Truncated);
                }
                let elr = if v >= 2 {
                    get_nodes(&mut r, "eligible leader replicas")?
                } else {
                    Vec::new()
                };
                let (adding, removing) = if v >= 3 {
                    (
                        get_nodes(&mut r, "adding replicas")?,
                        get_nodes(&mut r, "removing replicas")?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                partitions.push(PartitionInfo {
                    replicas: p.replicas,
                    isr: p.isr,
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    elr,
                    adding,
                    removing,
                });
            }
            if image.topic_names.insert(id, name.clone()).is_some() {
                return Err(DecodeError::Truncated);
            }
            let t = TopicInfo {
                id,
                partitions,
                configs,
            };
            if image.topics.insert(name, t).is_some() {
                return Err(DecodeError::Truncated);
            }
        }
        let n = r.len(SNAPSHOT_ITEMS_MAX, 20, "producer-id blocks")?;
        for _ in 0..n {
            let b = ProducerIdBlock {
                broker: NodeId(r.i32()?),
                start: r.i64()?,
                len: r.i64()?,
            };
            image.last_block.insert(b.broker, b);
        }
        r.finish()?;
        Ok(image)
    }
}

/// Whether `isr` can be a partition's ISR: distinct replicas of it, the
/// leader among them. The controller checks a request with it, and apply
/// checks the record again.
pub(crate) fn isr_fits(isr: &[NodeId], replicas: &[NodeId], leader: NodeId) -> bool {
    distinct(isr) && isr.contains(&leader) && isr.iter().all(|r| replicas.contains(r))
}

/// Whether no node appears twice in `nodes`.
pub(crate) fn distinct(nodes: &[NodeId]) -> bool {
    let mut seen = nodes.to_vec();
    seen.sort();
    seen.dedup();
    seen.len() == nodes.len()
}
