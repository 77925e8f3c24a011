//! The coordinator's requests and answers, independent of Kafka wire
//! versions. The server's handlers translate each Kafka request version into
//! these and back; defaults that older versions leave out are filled there.

use std::collections::BTreeMap;

use bytes::Bytes;
use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

/// Where a group's state machine comes from: the classic protocol
/// (JoinGroup/SyncGroup) or KIP-848's ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    Classic,
    Consumer,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct JoinGroup {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// Protocol name and its metadata, in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// JoinGroup v4+: an unknown member first gets a member id
    /// (MEMBER_ID_REQUIRED) and must join again with it.
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// The leader already has an assignment in force and need not compute
    /// one (a static leader rejoining a stable group).
    pub skip_assignment: bool,
    pub member_id: String,
    /// For the leader only: every member with its metadata for the chosen
    /// protocol.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(code: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error: code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncGroup {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// From the leader: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(code: i16) -> SyncResult {
        SyncResult {
            error: code,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LeaveGroup {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveResult {
    /// Group-level error (unknown group).
    pub error: i16,
    /// Per member: member id, instance id and error.
    pub members: Vec<(String, Option<String>, i16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct OffsetCommit {
    pub group_id: String,
    /// The classic generation, or the KIP-848 member epoch; -1 for a commit
    /// from outside any group membership ("simple" consumers, admin tools).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitPartition>,
}

/// Offsets committed inside a transaction (TxnOffsetCommit): they are
/// written to the offsets log in a transactional batch of the producer and
/// become visible to OffsetFetch only once the transaction commits (the
/// COMMIT marker reaches this offsets partition, [`crate::Input::TxnCompleted`]);
/// an abort drops them.
#[derive(Debug, Clone, Default)]
pub struct TxnOffsetCommit {
    pub group_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// TxnOffsetCommit v3+ (KIP-447): the member's generation, checked as
    /// an OffsetCommit's is; -1 when not given.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitPartition>,
}

/// Per partition: its error.
pub type PartitionErrors = Vec<(TopicPartition, i16)>;

#[derive(Debug, Clone, Default)]
pub struct OffsetFetch {
    pub group_id: String,
    /// None: every partition the group has committed.
    pub partitions: Option<Vec<TopicPartition>>,
    /// OffsetFetch v9 (KIP-848): when set, the member and its epoch are checked.
    /// `(member id, member epoch)`.
    pub member: Option<(String, i32)>,
    /// OffsetFetch v7+ (KIP-447): a partition with offsets committed in a
    /// transaction that is not decided yet is answered
    /// UNSTABLE_OFFSET_COMMIT (the client retries) instead of its last
    /// committed offset.
    pub require_stable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// 0, or UNSTABLE_OFFSET_COMMIT (see [`OffsetFetch::require_stable`]).
    pub error: i16,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetFetchResult {
    pub error: i16,
    pub offsets: Vec<FetchedOffset>,
}

#[derive(Debug, Clone, Default)]
pub struct ListGroups {
    /// Empty: every state.
    pub states: Vec<String>,
    /// Empty: every type ("classic", "consumer"), case-insensitive.
    pub types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    pub group_type: GroupType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error: i16,
    /// Kafka's state names: Empty, PreparingRebalance, CompletingRebalance,
    /// Stable, Dead.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, Default)]
pub struct OffsetDelete {
    pub group_id: String,
    pub partitions: Vec<TopicPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetDeleteResult {
    pub error: i16,
    pub partitions: PartitionErrors,
}

/// A topic as the KIP-848 assignors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: uuid::Uuid,
    pub partitions: u32,
}

/// Every topic of the cluster, by name (a snapshot the server passes in).
pub type TopicsView = BTreeMap<String, TopicInfo>;

/// Partitions by topic id.
pub type Assignment = BTreeMap<uuid::Uuid, Vec<i32>>;

#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// v0: empty on join (the coordinator picks one); v1: chosen by the client.
    pub member_id: String,
    /// 0: join; -1: leave; -2: a static member leaving temporarily, which
    /// Kafka answers by keeping its assignment for its return. Not kept
    /// here yet: -2 is handled like -1 and the partitions move at once.
    /// Otherwise the member's current epoch.
    pub member_epoch: i32,
    pub group_instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// None: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// None: unchanged; Some(""): cleared.
    pub subscribed_topic_regex: Option<String>,
    /// None: unchanged.
    pub server_assignor: Option<String>,
    /// The partitions the member owns now. None: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeatResult {
    pub error: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// None: unchanged since the member last heard.
    pub assignment: Option<Assignment>,
}

impl ConsumerHeartbeatResult {
    pub fn error(code: i16, message: impl Into<String>) -> ConsumerHeartbeatResult {
        ConsumerHeartbeatResult {
            error: code,
            error_message: Some(message.into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerGroup {
    pub group_id: String,
    pub error: i16,
    pub error_message: Option<String>,
    /// KIP-848 state names: Empty, Assigning, Reconciling, Stable, Dead.
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<DescribedConsumerMember>,
}

/// A request to the coordinator of one offsets partition. Requests naming
/// several groups carry only the groups of that partition.
#[derive(Debug, Clone)]
pub enum Request {
    Join(JoinGroup),
    Sync(SyncGroup),
    Heartbeat(Heartbeat),
    Leave(LeaveGroup),
    OffsetCommit(OffsetCommit),
    TxnOffsetCommit(TxnOffsetCommit),
    OffsetFetch(OffsetFetch),
    ListGroups(ListGroups),
    DescribeGroups(Vec<String>),
    DeleteGroups(Vec<String>),
    OffsetDelete(OffsetDelete),
    ConsumerHeartbeat(ConsumerHeartbeat),
    ConsumerDescribe(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Join(JoinResult),
    Sync(SyncResult),
    Heartbeat(i16),
    Leave(LeaveResult),
    OffsetCommit(PartitionErrors),
    TxnOffsetCommit(PartitionErrors),
    OffsetFetch(OffsetFetchResult),
    ListGroups(Vec<ListedGroup>),
    DescribeGroups(Vec<DescribedGroup>),
    DeleteGroups(Vec<(String, i16)>),
    OffsetDelete(OffsetDeleteResult),
    ConsumerHeartbeat(ConsumerHeartbeatResult),
    ConsumerDescribe(Vec<DescribedConsumerGroup>),
}
