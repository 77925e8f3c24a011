//! Cluster metadata of a single node: topics, their partitions' owning
//! shards (the persisted placement table) and topic config overrides.
//!
//! Lives on: shard 0 (the controller shard) changes it and persists it;
//! every other shard holds a read-only `Rc` snapshot that shard 0 replaces
//! after each change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use corelog_storage::{CleanupPolicy, FlushPolicy, LogConfig};
use serde::{Deserialize, Serialize};

use crate::config::{parse_flush_policy, ServerConfig};
use crate::error::ServerError;
use crate::{LeaderEpoch, ProducerId, ShardId};

/// Kafka's name for the internal offsets topic. Users cannot create a topic
/// of that name; the offsets log's partition directories carry it.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's name for the internal transaction state log. Users cannot
/// create a topic of that name; its partition directories carry it.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

pub const METADATA_FILE: &str = "cluster-metadata.json";

/// The topic configs this broker implements, with Kafka's names.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "flush.policy",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionMeta {
    /// The shard that owns the partition's log on this node. In cluster
    /// mode it means something only when `replica.hosted`.
    pub shard: ShardId,
    /// Cluster mode only: the partition's placement and leadership in the
    /// metadata quorum's image. `None` on a single node, where this node
    /// leads every partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaMeta>,
}

/// A partition's placement and leadership as the quorum's image holds it,
/// with what that means for this node (cluster mode, issue 17).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaMeta {
    /// -1 when no replica can lead (its broker is fenced).
    pub leader: i32,
    pub leader_epoch: i32,
    /// See [`PartitionView::partition_epoch`]. Absent from tables written
    /// before it was kept (read as 0).
    #[serde(default)]
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The eligible leader replicas (KIP-966), as DescribeTopicPartitions
    /// reports them. Absent from tables written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<i32>,
    /// Whether this node holds a replica, so its log lives here.
    pub hosted: bool,
    /// Whether this node leads the partition: only then does it serve
    /// produce, fetch and offsets for it.
    pub leads: bool,
}

impl ReplicaMeta {
    /// A partition of the image as node `me` holds it.
    pub fn of(pv: &PartitionView, me: i32) -> ReplicaMeta {
        ReplicaMeta {
            leader: pv.leader,
            leader_epoch: pv.leader_epoch,
            partition_epoch: pv.partition_epoch,
            replicas: pv.replicas.clone(),
            isr: pv.isr.clone(),
            elr: pv.elr.clone(),
            hosted: pv.replicas.contains(&me),
            leads: pv.leader == me,
        }
    }
}

impl PartitionMeta {
    /// A partition of a single node, owned by `shard`.
    pub fn local(shard: ShardId) -> PartitionMeta {
        PartitionMeta {
            shard,
            replica: None,
        }
    }

    /// Whether this node keeps the partition's log.
    pub fn hosted(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.hosted)
    }

    /// The shard that serves the partition's reads and writes on this
    /// node, or `None` when another node leads it (clients get
    /// NOT_LEADER_OR_FOLLOWER and ask Metadata again).
    pub fn serving_shard(&self) -> Option<ShardId> {
        match &self.replica {
            None => Some(self.shard),
            Some(r) if r.hosted && r.leads => Some(self.shard),
            Some(_) => None,
        }
    }

    /// The epoch this node leads the partition in, when it leads it: the
    /// image's on a cluster node, [`crate::LEADER_EPOCH`] on a single node.
    pub fn leader_epoch_here(&self) -> Option<LeaderEpoch> {
        match &self.replica {
            None => Some(crate::LEADER_EPOCH),
            Some(r) if r.hosted && r.leads => Some(LeaderEpoch(r.leader_epoch)),
            Some(_) => None,
        }
    }

    /// The leader epoch clients are told of (Metadata) and checked against
    /// (`current_leader_epoch`).
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.replica
            .as_ref()
            .map_or(crate::LEADER_EPOCH, |r| LeaderEpoch(r.leader_epoch))
    }
}

/// A live broker of the cluster, as clients are told of it (cluster mode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrokerMeta {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// What a node takes from the quorum's image (cluster mode): the live
/// brokers and every topic, at an applied index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    pub applied_index: u64,
    pub brokers: Vec<BrokerMeta>,
    pub topics: BTreeMap<String, TopicView>,
}

/// One topic of a [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    /// 32 hex digits, as [`TopicMeta::id`].
    pub id: String,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionView>,
}

/// One partition of a [`TopicView`], as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by every change of the partition (leader, ISR): what an ISR
    /// change is fenced by.
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The eligible leader replicas (KIP-966).
    pub elr: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicMeta {
    /// Kafka topic id (UUID), as 32 hex digits.
    pub id: String,
    pub partitions: Vec<PartitionMeta>,
    /// Overrides of broker defaults, by Kafka config name.
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::parse_str(&self.id).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    /// Bumped on every change, so shards can ignore stale snapshots.
    pub version: u64,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Producer ids below this may have been handed out; the controller
    /// allocates ids in blocks and persists each block's end before using it,
    /// so no id is ever given out twice, across restarts included.
    #[serde(default)]
    pub producer_id_block_end: ProducerId,
    /// Partitions of the internal offsets log. Fixed when the data
    /// directory is created (0 in files written before groups existed:
    /// then set at the next start), because a group's coordinator is found
    /// by hashing its id over this count.
    #[serde(default)]
    pub offsets_topic_partitions: u32,
    /// The shard of each offsets partition, chosen by the same rule as
    /// topics' partitions ([`ClusterMetadata::place`]) and counted in the
    /// load that rule balances. Empty in files written before it existed:
    /// then placed at the next start.
    #[serde(default)]
    pub offsets_placement: Vec<ShardId>,
    /// Partitions of the internal transaction state log
    /// (`__transaction_state`). Fixed when first set, for the reason the
    /// offsets log's count is: a transactional id's coordinator is found
    /// by hashing the id over it. 0 in files written before transactions.
    #[serde(default)]
    pub txn_state_partitions: u32,
    /// The shard of each transaction state partition, by the one placement
    /// rule, counted in the load it balances.
    #[serde(default)]
    pub txn_state_placement: Vec<ShardId>,
    /// Cluster mode only: the leader of each partition of the internal
    /// offsets topic in the quorum's image (-1 for none); empty until the
    /// topic is created. The leader of a group's offsets partition
    /// coordinates the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets_leaders: Vec<i32>,
    /// Cluster mode only: the internal offsets topic as this node holds
    /// it, a replicated topic like any other (its partitions' shards are
    /// `offsets_placement`'s): the node hosts the replicas the image gives
    /// it, leads some and follows others. It is kept apart from `topics`
    /// because clients never address it; only followers' replication
    /// requests do ([`ClusterMetadata::topic_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets_topic: Option<TopicMeta>,
    /// Cluster mode only: the live brokers of the quorum's image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerMeta>,
    /// Cluster mode only: the quorum's applied index this table was last
    /// made from. A table is only ever replaced by one made from an image
    /// at the same index or later, so a node whose quorum restarts behind
    /// what it had applied never drops a topic it still holds.
    #[serde(default)]
    pub quorum_applied_index: u64,
    /// Cluster mode only: whether this table was made from the quorum's
    /// image since this process started. One loaded from disk may be stale
    /// (the node may have been deposed while it was down): until the
    /// quorum's view arrives, the node neither leads nor follows a
    /// replicated partition (`controller::reconcile`).
    #[serde(skip)]
    pub from_quorum: bool,
}

/// Effective settings of one topic: broker defaults plus its overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub log: LogConfig,
    pub max_message_bytes: u32,
    pub min_insync_replicas: u32,
}

impl ClusterMetadata {
    /// Loads the metadata file, or starts empty with a new cluster id.
    pub fn load_or_create(
        data_dir: &Path,
        configured_cluster_id: Option<&str>,
    ) -> std::io::Result<ClusterMetadata> {
        let path = data_dir.join(METADATA_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let cluster_id = configured_cluster_id
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        // Kafka cluster ids are 22 characters of URL-safe base64; a
                        // UUID's simple form is unique just the same.
                        uuid::Uuid::new_v4().simple().to_string()[..22].to_string()
                    });
                let md = ClusterMetadata {
                    cluster_id,
                    version: 0,
                    topics: BTreeMap::new(),
                    producer_id_block_end: ProducerId(0),
                    offsets_topic_partitions: 0,
                    offsets_placement: Vec::new(),
                    txn_state_partitions: 0,
                    txn_state_placement: Vec::new(),
                    brokers: Vec::new(),
                    offsets_leaders: Vec::new(),
                    offsets_topic: None,
                    quorum_applied_index: 0,
                    from_quorum: false,
                };
                md.persist(data_dir)?;
                Ok(md)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the metadata atomically: temporary file, fsync, rename, fsync dir.
    /// Blocks: at start-up it runs before the executors do; afterwards only
    /// through `controller::MetadataStore`, on the blocking pool.
    pub fn persist(&self, data_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(METADATA_FILE);
        let tmp = data_dir.join(format!("{METADATA_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    }

    /// Chooses shards for `count` new partitions: each goes to the shard
    /// owning the fewest partitions so far, so cores stay even as topics come
    /// and go (a bare hash would not).
    ///
    /// This is the broker's one placement rule: topics' partitions and the
    /// offsets and transaction state logs' partitions are all placed by it, and all count in the
    /// load it balances. `count` must already be bounded: clients' counts
    /// go through [`Placer::place_within`].
    pub fn place(&self, shards: usize, count: usize) -> Vec<ShardId> {
        self.placer(shards).place(count)
    }

    /// The partitions each of `shards` shards owns now, topics' and the
    /// offsets log's, for placing several topics' partitions in one change
    /// without counting them again for each.
    pub fn placer(&self, shards: usize) -> Placer {
        let mut loads = vec![0usize; shards.max(1)];
        let topic_shards = self
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.hosted())
            .map(|p| p.shard);
        let internal = self
            .offsets_placement
            .iter()
            .chain(&self.txn_state_placement)
            .copied();
        for shard in topic_shards.chain(internal) {
            if let Some(l) = loads.get_mut(shard.0 as usize) {
                *l += 1;
            }
        }
        Placer {
            loads,
            added_by_request: 0,
        }
    }

    /// Moves partitions placed on shards that no longer exist (the broker
    /// restarted with fewer cores). Returns whether anything moved.
    pub fn rebalance_missing_shards(&mut self, shards: usize) -> bool {
        let mut offsets_moved = false;
        for i in 0..self.offsets_placement.len() {
            if self.offsets_placement[i].0 as usize >= shards {
                self.offsets_placement[i] = self.place(shards, 1)[0];
                offsets_moved = true;
            }
        }
        for i in 0..self.txn_state_placement.len() {
            if self.txn_state_placement[i].0 as usize >= shards {
                self.txn_state_placement[i] = self.place(shards, 1)[0];
                offsets_moved = true;
            }
        }
        let mut moved = Vec::new();
        for (name, t) in &self.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.hosted() && p.shard.0 as usize >= shards {
                    moved.push((name.clone(), i));
                }
            }
        }
        for (name, i) in &moved {
            let target = self.place(shards, 1)[0];
            if let Some(t) = self.topics.get_mut(name) {
                t.partitions[*i].shard = target;
            }
        }
        offsets_moved || !moved.is_empty()
    }

    /// Places the offsets log's partitions if they are not placed yet (a
    /// new data directory, or a file from before they were recorded).
    /// Returns whether anything changed.
    pub fn place_offsets_partitions(&mut self, shards: usize) -> bool {
        if self.offsets_placement.len() == self.offsets_topic_partitions as usize {
            return false;
        }
        self.offsets_placement.clear();
        self.offsets_placement = self.place(shards, self.offsets_topic_partitions as usize);
        true
    }

    /// Places the transaction state log's partitions if they are not
    /// placed yet. Returns whether anything changed.
    pub fn place_txn_state_partitions(&mut self, shards: usize) -> bool {
        if self.txn_state_placement.len() == self.txn_state_partitions as usize {
            return false;
        }
        self.txn_state_placement.clear();
        self.txn_state_placement = self.place(shards, self.txn_state_partitions as usize);
        true
    }

    /// The shard that owns transaction state partition `index`.
    pub fn txn_state_owner(&self, index: u32) -> ShardId {
        // Placed at start-up, before any shard runs, as the offsets log's.
        self.txn_state_placement
            .get(index as usize)
            .copied()
            .unwrap_or(ShardId(0))
    }

    /// The shard that owns offsets partition `index`.
    pub fn offsets_owner(&self, index: u32) -> ShardId {
        // Placed at start-up, before any shard runs: an index past the end
        // would be a bug, and shard 0 always exists.
        self.offsets_placement
            .get(index as usize)
            .copied()
            .unwrap_or(ShardId(0))
    }

    /// Makes this node's table follow the quorum's image (cluster mode):
    /// the live brokers, every topic with its partitions' leadership, and,
    /// for the partitions this node `me` holds a replica of, a shard placed
    /// by the one placement rule (kept once placed, so a partition's log
    /// stays where its directory is).
    ///
    /// Returns whether anything changed, and whether to call again: a
    /// topic that was deleted and created again under the same name (a new
    /// id) is first removed alone, so that the shards close and delete the
    /// old log before a new one of the same directory name is opened.
    /// A view older than the one this table was made from changes nothing.
    pub fn follow(&mut self, view: &ClusterView, me: i32, shards: usize) -> (bool, bool) {
        if view.applied_index < self.quorum_applied_index {
            return (false, false);
        }
        let before = self.clone();
        let replaced: Vec<String> = self
            .topics
            .iter()
            .filter(|(name, t)| view.topics.get(*name).is_some_and(|v| v.id != t.id))
            .map(|(name, _)| name.clone())
            .collect();
        if !replaced.is_empty() {
            for name in &replaced {
                self.topics.remove(name);
            }
            return (true, true);
        }
        self.topics
            .retain(|name, _| name != OFFSETS_TOPIC && view.topics.contains_key(name));
        self.brokers = view.brokers.clone();
        // The offsets log's partitions are this node's own (the groups
        // module opens them all, `offsets_placement`); from the image it
        // takes only who leads each, that is, who coordinates its groups.
        self.offsets_leaders = view
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| t.partitions.iter().map(|p| p.leader).collect())
            .unwrap_or_default();
        self.offsets_topic = view.topics.get(OFFSETS_TOPIC).map(|v| TopicMeta {
            id: v.id.clone(),
            configs: v.configs.clone(),
            partitions: v
                .partitions
                .iter()
                .enumerate()
                .map(|(i, pv)| PartitionMeta {
                    shard: self.offsets_owner(i as u32),
                    replica: Some(ReplicaMeta::of(pv, me)),
                })
                .collect(),
        });
        self.quorum_applied_index = view.applied_index;
        self.from_quorum = true;
        let mut placer = self.placer(shards);
        for (name, v) in view.topics.iter().filter(|(n, _)| *n != OFFSETS_TOPIC) {
            let topic = self
                .topics
                .entry(name.clone())
                .or_insert_with(|| TopicMeta {
                    id: v.id.clone(),
                    partitions: Vec::new(),
                    configs: BTreeMap::new(),
                });
            topic.configs = v.configs.clone();
            topic.partitions.truncate(v.partitions.len());
            for (i, pv) in v.partitions.iter().enumerate() {
                let replica = ReplicaMeta::of(pv, me);
                let hosted = replica.hosted;
                match topic.partitions.get_mut(i) {
                    Some(p) => {
                        if hosted && !p.hosted() {
                            p.shard = placer.place(1)[0];
                        }
                        p.replica = Some(replica);
                    }
                    None => topic.partitions.push(PartitionMeta {
                        shard: if hosted {
                            placer.place(1)[0]
                        } else {
                            ShardId(0)
                        },
                        replica: Some(replica),
                    }),
                }
            }
        }
        (*self != before, false)
    }

    /// The topic a request names, as that request may address it: a
    /// client's topics, and for a follower's replication requests
    /// (`replica`) also the internal offsets topic of a cluster.
    pub fn topic_for(&self, name: &str, replica: bool) -> Option<&TopicMeta> {
        match self.topics.get(name) {
            Some(t) => Some(t),
            None if replica && name == OFFSETS_TOPIC => self.offsets_topic.as_ref(),
            None => None,
        }
    }

    /// The topic whose id is `id`, named, as a request may address it (see
    /// [`ClusterMetadata::topic_for`]).
    pub fn topic_by_id(&self, id: uuid::Uuid, replica: bool) -> Option<(&str, &TopicMeta)> {
        self.topics
            .iter()
            .map(|(n, m)| (n.as_str(), m))
            .chain(
                self.offsets_topic
                    .as_ref()
                    .filter(|_| replica)
                    .map(|m| (OFFSETS_TOPIC, m)),
            )
            .find(|(_, m)| m.uuid() == id)
    }

    /// The settings of the internal offsets log's partitions: the broker
    /// defaults, with segments of `groups.offsets_segment_bytes`, no
    /// retention (the coordinator's snapshots bound it) and every write
    /// flushed at once (a commit is answered only once it is durable).
    pub fn offsets_settings(&self, server: &ServerConfig) -> TopicSettings {
        let mut settings = self.settings(server, OFFSETS_TOPIC);
        settings.log.segment_bytes_max = server.groups.offsets_segment_bytes;
        settings.log.retention_ms = None;
        settings.log.retention_bytes = None;
        settings.log.flush_policy = FlushPolicy::Always;
        settings
    }

    /// The settings of the transaction state log's partitions: as the
    /// offsets log's (every write flushed at once: a transition is acted
    /// on only once durable), with segments of
    /// `transactions.state_log_segment_bytes`.
    pub fn txn_state_settings(&self, server: &ServerConfig) -> TopicSettings {
        let mut settings = self.settings(server, TXN_STATE_TOPIC);
        settings.log.segment_bytes_max = server.transactions.state_log_segment_bytes;
        settings.log.retention_ms = None;
        settings.log.retention_bytes = None;
        settings.log.flush_policy = FlushPolicy::Always;
        settings
    }

    pub fn settings(&self, server: &ServerConfig, topic: &str) -> TopicSettings {
        let empty = BTreeMap::new();
        let overrides = self.topics.get(topic).map_or(&empty, |t| &t.configs);
        settings_with(server, overrides)
            .unwrap_or_else(|_| settings_with(server, &empty).expect("defaults are valid"))
    }
}

/// Placement state of one metadata change: the partitions each shard owns,
/// counting those placed earlier in the same change, and how many the
/// change has added.
#[derive(Debug, Clone)]
pub struct Placer {
    loads: Vec<usize>,
    added_by_request: usize,
}

impl Placer {
    /// The partitions the broker holds, counting those placed so far.
    pub fn total(&self) -> usize {
        self.loads.iter().sum()
    }

    /// Places `count` partitions, each on the least loaded shard (ties to
    /// the lowest id). No bounds: for the offsets log and for counts that
    /// [`Placer::place_within`] checked.
    pub fn place(&mut self, count: usize) -> Vec<ShardId> {
        (0..count)
            .map(|_| {
                let (i, _) = self
                    .loads
                    .iter()
                    .enumerate()
                    .min_by_key(|&(i, l)| (*l, i))
                    .expect("at least one shard");
                self.loads[i] += 1;
                ShardId(i as u32)
            })
            .collect()
    }

    /// Checks a client's request to add `count` partitions to a topic that
    /// will then have `topic_after` partitions against the partition
    /// bounds, before anything proportional to either is allocated, and
    /// places them. They count as placed for the rest of the change, so a
    /// validate-only request (which drops the shards) is checked as if
    /// each topic before it had been created. A refusal is answered with
    /// Kafka's INVALID_PARTITIONS and this message, naming the setting.
    pub fn place_within(
        &mut self,
        server: &ServerConfig,
        topic_after: u64,
        count: u64,
    ) -> Result<Vec<ShardId>, ServerError> {
        self.check_within(server, topic_after, count)?;
        // Bounded now: at most partitions_per_request_max.
        self.added_by_request += count as usize;
        Ok(self.place(count as usize))
    }

    /// [`Placer::place_within`]'s checks alone, placing nothing.
    pub fn check_within(
        &self,
        server: &ServerConfig,
        topic_after: u64,
        count: u64,
    ) -> Result<(), ServerError> {
        let invalid = ServerError::InvalidPartitions;
        let topic_max = u64::from(server.partitions_per_topic_max);
        if topic_after > topic_max {
            return Err(invalid(format!(
                "partitions_per_topic_max is {topic_max}: a topic cannot have {topic_after} partitions."
            )));
        }
        let request_max = u64::from(server.partitions_per_request_max);
        let request_after = self.added_by_request as u64 + count;
        if request_after > request_max {
            return Err(invalid(format!(
                "partitions_per_request_max is {request_max}: this request would add {request_after} partitions."
            )));
        }
        let broker_max = u64::from(server.partitions_per_broker_max);
        let total = self.total() as u64;
        if total + count > broker_max {
            return Err(invalid(format!(
                "partitions_per_broker_max is {broker_max}: the broker holds {total} partitions and cannot add {count}."
            )));
        }
        // Least-loaded placement fills every shard to the bound before it
        // passes it anywhere, so the partitions fit exactly when the room
        // left under the bound, summed over shards, holds them.
        let shard_max = server.partitions_per_shard_max as usize;
        let room: u64 = self
            .loads
            .iter()
            .map(|&l| shard_max.saturating_sub(l) as u64)
            .sum();
        if count > room {
            return Err(invalid(format!(
                "partitions_per_shard_max is {shard_max}: the broker's {} shard(s) have room for {room} more partitions, not {count}.",
                self.loads.len()
            )));
        }
        Ok(())
    }
}

/// The longest topic config value accepted. Every supported topic config is
/// a number or a word; a value is stored in the cluster metadata and copied
/// to every shard on each change, so a client must not be able to make it
/// megabytes long.
pub const CONFIG_VALUE_BYTES_MAX: usize = 1024;

/// Applies config overrides on top of the broker defaults, checking each.
/// A refusal is INVALID_CONFIG, with the key at fault.
pub fn settings_with(
    server: &ServerConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<TopicSettings, ServerError> {
    let mut s = TopicSettings {
        log: server.base_log_config(),
        max_message_bytes: server.topic_defaults.max_message_bytes,
        min_insync_replicas: 1,
    };
    for (k, v) in overrides {
        if v.len() > CONFIG_VALUE_BYTES_MAX {
            // Not echoed: the value would make the error as large as itself.
            return Err(ServerError::InvalidConfig {
                key: k.clone(),
                message: format!(
                    "the value of {k} is {} bytes; config values are at most {CONFIG_VALUE_BYTES_MAX} bytes",
                    v.len()
                ),
            });
        }
        let bad = |why: &str| ServerError::InvalidConfig {
            key: k.clone(),
            message: format!("invalid value {v:?} for {k}: {why}"),
        };
        let int = || v.parse::<i64>().map_err(|_| bad("not an integer"));
        match k.as_str() {
            "retention.ms" => s.log.retention_ms = Some(int()?).filter(|&ms| ms >= 0),
            "retention.bytes" => {
                s.log.retention_bytes = Some(int()?).filter(|&b| b >= 0).map(|b| b as u64)
            }
            "segment.bytes" => {
                s.log.segment_bytes_max = u64::try_from(int()?).map_err(|_| bad("negative"))?
            }
            "segment.ms" => s.log.segment_ms = int()?,
            "max.message.bytes" => {
                s.max_message_bytes = u32::try_from(int()?)
                    .ok()
                    .filter(|&m| m > 0)
                    .ok_or_else(|| bad("out of range"))?
            }
            "min.insync.replicas" => {
                s.min_insync_replicas = u32::try_from(int()?)
                    .ok()
                    .filter(|&m| m >= 1)
                    .ok_or_else(|| bad("must be >= 1"))?
            }
            "cleanup.policy" => {
                s.log.cleanup_policy = CleanupPolicy::parse(v).map_err(|e| bad(&e))?
            }
            "min.cleanable.dirty.ratio" => {
                s.log.min_cleanable_dirty_ratio = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad("not a number between 0 and 1"))?
            }
            "min.compaction.lag.ms" => {
                s.log.min_compaction_lag_ms = Some(int()?)
                    .filter(|&ms| ms >= 0)
                    .ok_or_else(|| bad("negative"))?
            }
            "max.compaction.lag.ms" => {
                s.log.max_compaction_lag_ms = Some(int()?)
                    .filter(|&ms| ms >= 1)
                    .ok_or_else(|| bad("must be positive"))?
            }
            "delete.retention.ms" => {
                s.log.delete_retention_ms = Some(int()?)
                    .filter(|&ms| ms >= 0)
                    .ok_or_else(|| bad("negative"))?
            }
            "compression.type" => {
                if v != "producer" {
                    return Err(bad(
                        "only \"producer\" is supported: batches are stored as produced",
                    ));
                }
            }
            "flush.policy" => {
                s.log.flush_policy = parse_flush_policy(v).map_err(|e| bad(&e))?;
            }
            _ => {
                return Err(ServerError::InvalidConfig {
                    key: k.clone(),
                    message: format!("unknown or unsupported topic config {k}"),
                })
            }
        }
    }
    s.log.validate().map_err(|e| ServerError::InvalidConfig {
        key: String::new(),
        message: e,
    })?;
    Ok(s)
}

/// The value a topic config has, for DescribeConfigs, and whether it is the default.
pub fn describe_value(
    server: &ServerConfig,
    topic: &TopicMeta,
    key: &str,
) -> Option<(String, bool)> {
    if let Some(v) = topic.configs.get(key) {
        return Some((v.clone(), false));
    }
    let d = &server.topic_defaults;
    let v = match key {
        "cleanup.policy" => normalized_cleanup_policy(&d.cleanup_policy),
        "compression.type" => "producer".to_string(),
        "delete.retention.ms" => d.delete_retention_ms.to_string(),
        "max.compaction.lag.ms" => d.max_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => d.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => d.min_compaction_lag_ms.to_string(),
        "flush.policy" => d.flush_policy.clone(),
        "max.message.bytes" => d.max_message_bytes.to_string(),
        "min.insync.replicas" => "1".to_string(),
        "retention.bytes" => d.retention_bytes.to_string(),
        "retention.ms" => d.retention_ms.to_string(),
        "segment.bytes" => d.segment_bytes.to_string(),
        "segment.ms" => d.segment_ms.to_string(),
        _ => return None,
    };
    Some((v, true))
}

/// A cleanup policy as Kafka spells it ("compact,delete" whatever the
/// order it was given in); a value that does not parse is shown as given.
fn normalized_cleanup_policy(value: &str) -> String {
    CleanupPolicy::parse(value).map_or_else(|_| value.to_string(), |p| p.as_kafka_str().to_string())
}

/// Kafka's topic name rules. A refusal is INVALID_TOPIC_EXCEPTION.
pub fn validate_topic_name(name: &str) -> Result<(), ServerError> {
    let invalid = |why: String| Err(ServerError::InvalidTopic(why));
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == OFFSETS_TOPIC {
        return invalid(format!("{name} is the internal offsets topic"));
    }
    if name == TXN_STATE_TOPIC {
        return invalid(format!("{name} is the internal transaction state topic"));
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
        return invalid(format!("topic name {name:?} contains characters other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

/// The directory of a partition's log, as Kafka names it.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> std::path::PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

pub fn is_interval(p: FlushPolicy) -> bool {
    matches!(p, FlushPolicy::IntervalMs(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_balances_partitions_by_count_across_shards() {
        let mut md = ClusterMetadata::default();
        let shards = md.place(4, 6);
        let mut counts = [0; 4];
        for s in &shards {
            counts[s.0 as usize] += 1;
        }
        assert_eq!(counts, [2, 2, 1, 1]);
        md.topics.insert(
            "a".into(),
            TopicMeta {
                id: String::new(),
                partitions: shards.into_iter().map(PartitionMeta::local).collect(),
                configs: BTreeMap::new(),
            },
        );
        // The next topic fills the emptier shards first.
        assert_eq!(md.place(4, 2), vec![ShardId(2), ShardId(3)]);
        assert!(md.rebalance_missing_shards(2));
        assert!(md.topics["a"].partitions.iter().all(|p| p.shard.0 < 2));
    }

    #[test]
    fn offsets_partitions_and_topics_share_one_placement_rule() {
        let mut md = ClusterMetadata {
            offsets_topic_partitions: 3,
            ..Default::default()
        };
        assert!(md.place_offsets_partitions(2));
        assert_eq!(
            md.offsets_placement,
            vec![ShardId(0), ShardId(1), ShardId(0)]
        );
        assert!(!md.place_offsets_partitions(2), "placed once, kept");
        // Shard 0 holds two offsets partitions, shard 1 one: a new topic's
        // single partition goes to shard 1.
        assert_eq!(md.place(2, 1), vec![ShardId(1)]);
        assert_eq!(md.offsets_owner(2), ShardId(0));
        // Restarted with one shard: every offsets partition moves to it.
        assert!(md.rebalance_missing_shards(1));
        assert!(md.offsets_placement.iter().all(|s| s.0 == 0));
    }

    /// A test topic: name, id, and per partition its leader and replicas.
    type TestTopic<'a> = (&'a str, &'a str, &'a [(i32, &'a [i32])]);

    fn view(index: u64, topics: &[TestTopic<'_>]) -> ClusterView {
        ClusterView {
            applied_index: index,
            brokers: vec![BrokerMeta {
                id: 1,
                host: "h".into(),
                port: 9092,
                rack: None,
            }],
            topics: topics
                .iter()
                .map(|(name, id, parts)| {
                    let partitions = parts
                        .iter()
                        .map(|(leader, replicas)| PartitionView {
                            leader: *leader,
                            leader_epoch: 0,
                            partition_epoch: 0,
                            replicas: replicas.to_vec(),
                            isr: replicas.to_vec(),
                            elr: Vec::new(),
                        })
                        .collect();
                    (
                        name.to_string(),
                        TopicView {
                            id: id.to_string(),
                            configs: BTreeMap::new(),
                            partitions,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_table_read_from_disk_is_not_the_quorums_until_it_follows_an_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut md = ClusterMetadata::load_or_create(dir.path(), None).expect("create");
        let v = view(5, &[("t", "a1", &[(1, &[1, 2])])]);
        assert_eq!(md.follow(&v, 1, 1), (true, false));
        assert!(md.from_quorum);
        md.persist(dir.path()).expect("persist");
        // After a restart the same table is stale until the quorum speaks,
        // even when the image has not changed since.
        let mut loaded = ClusterMetadata::load_or_create(dir.path(), None).expect("load");
        assert!(!loaded.from_quorum);
        assert_eq!(loaded.topics, md.topics);
        assert_eq!(
            loaded.follow(&v, 1, 1),
            (true, false),
            "reported as a change"
        );
        assert!(loaded.from_quorum);
    }

    #[test]
    fn a_cluster_node_hosts_and_serves_only_the_partitions_the_image_gives_it() {
        let mut md = ClusterMetadata::default();
        let v = view(
            5,
            &[("t", "a1", &[(1, &[1]), (2, &[2]), (1, &[1]), (-1, &[1])])],
        );
        assert_eq!(md.follow(&v, 1, 2), (true, false));
        let parts = &md.topics["t"].partitions;
        // Hosted here: 0, 2 and 3 (3 has no leader: its broker is fenced,
        // and its log must stay). Placed over both shards.
        assert_eq!(
            parts.iter().map(|p| p.hosted()).collect::<Vec<_>>(),
            [true, false, true, true]
        );
        assert_eq!(parts[0].serving_shard(), Some(ShardId(0)));
        assert_eq!(parts[2].serving_shard(), Some(ShardId(1)));
        assert_eq!(parts[1].serving_shard(), None);
        assert_eq!(parts[3].serving_shard(), None);
        // The placer counts only what this node hosts.
        assert_eq!(md.placer(2).total(), 3);
        assert_eq!(md.brokers.len(), 1);
        assert_eq!(md.quorum_applied_index, 5);
        // The same view again changes nothing; placement is kept when a
        // partition's leader comes back.
        assert_eq!(md.follow(&v, 1, 2), (false, false));
        let v2 = view(
            6,
            &[("t", "a1", &[(1, &[1]), (2, &[2]), (1, &[1]), (1, &[1])])],
        );
        let shard_before = md.topics["t"].partitions[3].shard;
        assert_eq!(md.follow(&v2, 1, 2), (true, false));
        assert_eq!(
            md.topics["t"].partitions[3].serving_shard(),
            Some(shard_before)
        );
    }

    #[test]
    fn the_offsets_topic_is_followed_apart_on_the_shards_placed_for_it() {
        let mut md = ClusterMetadata {
            offsets_topic_partitions: 3,
            ..Default::default()
        };
        md.place_offsets_partitions(2);
        let v = view(
            4,
            &[(
                OFFSETS_TOPIC,
                "0f",
                &[(1, &[1, 2, 3]), (2, &[2, 3, 1]), (3, &[3, 2])],
            )],
        );
        assert_eq!(md.follow(&v, 1, 2), (true, false));
        // Not a client's topic, but replicated like one: led, followed or
        // not hosted here, each on the shard its placement chose.
        assert!(md.topics.is_empty());
        assert_eq!(md.offsets_leaders, [1, 2, 3]);
        let t = md.offsets_topic.as_ref().expect("kept");
        let hosted: Vec<bool> = t.partitions.iter().map(|p| p.hosted()).collect();
        assert_eq!(hosted, [true, true, false]);
        assert_eq!(t.partitions[0].serving_shard(), Some(md.offsets_owner(0)));
        assert_eq!(t.partitions[1].serving_shard(), None, "node 2 leads it");
        assert_eq!(t.partitions[1].shard, md.offsets_owner(1));
        // Only a follower's request may name it.
        assert!(md.topic_for(OFFSETS_TOPIC, false).is_none());
        assert!(md.topic_for(OFFSETS_TOPIC, true).is_some());
        // The placer does not count its partitions twice.
        assert_eq!(md.placer(2).total(), 3);
    }

    #[test]
    fn an_older_image_never_replaces_a_newer_table() {
        let mut md = ClusterMetadata::default();
        assert!(md.follow(&view(9, &[("t", "a1", &[(1, &[1])])]), 1, 1).0);
        // A quorum that restarted behind what this table was made from
        // (its image still empty) must not delete the topic.
        assert_eq!(md.follow(&view(3, &[]), 1, 1), (false, false));
        assert!(md.topics.contains_key("t"));
        // A newer image without it does.
        assert_eq!(md.follow(&view(10, &[]), 1, 1), (true, false));
        assert!(md.topics.is_empty());
    }

    #[test]
    fn a_topic_created_again_under_its_name_is_first_removed_alone() {
        let mut md = ClusterMetadata::default();
        md.follow(&view(1, &[("t", "a1", &[(1, &[1])])]), 1, 1);
        let again = view(3, &[("t", "b2", &[(1, &[1])])]);
        // First the old topic goes (the shards delete its log), ...
        assert_eq!(md.follow(&again, 1, 1), (true, true));
        assert!(md.topics.is_empty());
        // ... then the new one comes.
        assert_eq!(md.follow(&again, 1, 1), (true, false));
        assert_eq!(md.topics["t"].id, "b2");
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn configs_are_checked_and_applied() {
        let server = ServerConfig::default();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("segment.bytes".to_string(), "1048576".to_string());
        let s = settings_with(&server, &o).unwrap();
        assert_eq!(s.log.retention_ms, Some(1000));
        assert_eq!(s.log.segment_bytes_max, 1 << 20);
        o.insert("cleanup.policy".to_string(), "delete, compact".to_string());
        o.insert("min.cleanable.dirty.ratio".to_string(), "0.25".to_string());
        o.insert("delete.retention.ms".to_string(), "60000".to_string());
        let s = settings_with(&server, &o).unwrap();
        assert_eq!(s.log.cleanup_policy, CleanupPolicy::CompactDelete);
        assert_eq!(s.log.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(s.log.delete_retention_ms, 60_000);
        for (key, bad) in [
            ("cleanup.policy", "shred"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("delete.retention.ms", "-5"),
        ] {
            let mut o = o.clone();
            o.insert(key.to_string(), bad.to_string());
            assert!(
                matches!(
                    settings_with(&server, &o).unwrap_err(),
                    ServerError::InvalidConfig { key: k, .. } if k == key
                ),
                "{key}={bad}"
            );
        }
        let mut o = BTreeMap::new();
        o.insert("no.such".to_string(), "1".to_string());
        assert!(settings_with(&server, &o).is_err());
        // A number padded to megabytes would parse; its length is refused,
        // and the message does not carry the value.
        let mut o = BTreeMap::new();
        let long = format!("{}1", "0".repeat(4 << 20));
        o.insert("retention.ms".to_string(), long);
        let err = settings_with(&server, &o).unwrap_err();
        assert!(matches!(&err, ServerError::InvalidConfig { key, .. } if key == "retention.ms"));
        assert!(err.to_string().len() < 200, "{err}");
    }
}
