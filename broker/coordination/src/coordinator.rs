//! The coordinator of one offsets-log partition: every group whose id
//! hashes to it, and their committed offsets.
//!
//! Lives on: the shard that owns the offsets partition. The server feeds it
//! [`Input`]s and carries out the [`Output`]s; nothing else changes it.
//!
//! Durability contract: a reply produced together with records (an offset
//! commit, a completed rebalance) is released only after those records are
//! durable ([`Input::AppendDone`]), and committed offsets become visible to
//! OffsetFetch only then. If an append fails, the server drops this machine,
//! fails the replies it still holds ([`GroupCoordinator::fail_pending`]) and
//! rebuilds a fresh one from the log, so memory never runs ahead of disk for
//! long.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::api::*;
use crate::bounds;
use crate::classic::ClassicGroup;
use crate::codes;
use crate::consumer::ConsumerGroup;
use crate::records::{GroupValue, LogRecord, OffsetValue, RecordKey, RecordValue};
use corelog_model::rng::SplitMix64;
use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

/// Identifies a request whose reply the server is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyId(pub u64);

/// Identifies an append the coordinator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(pub u64);

/// Broker settings the coordinator applies (Kafka's `group.*` and
/// `offsets.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`: members of one group.
    pub members_max: usize,
    /// `offsets.retention.minutes`, in ms: how long an empty group's
    /// committed offsets are kept.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_bytes_max: usize,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval_ms: i32,
    /// Log bytes written since the last snapshot before the live state is
    /// rewritten and the log before it dropped (see `wants_snapshot`).
    pub snapshot_min_bytes: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: 1_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offset_metadata_bytes_max: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            snapshot_min_bytes: 16 << 20,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Input {
    /// A request; its reply comes back as an [`Output::Reply`] with the
    /// same id, now or in a later step.
    Request(ReplyId, Box<Request>),
    /// The records of this append are durable.
    AppendDone(WriteId),
    /// The producer's transaction marker (COMMIT or ABORT) is durable in
    /// this offsets partition's log: the offsets it committed in that
    /// transaction become visible (commit) or are dropped (abort).
    TxnCompleted {
        producer_id: ProducerId,
        commit: bool,
    },
    /// Time passed: expire sessions, finish rebalances whose wait is over.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Reply(ReplyId, Response),
    /// Append these records to the offsets log, in order, and report
    /// [`Input::AppendDone`] once they are durable. With `compacts`, the
    /// records are the whole live state: once durable, every record before
    /// the first of them may be dropped from the log.
    Append {
        write: WriteId,
        records: Vec<LogRecord>,
        compacts: bool,
    },
    /// Append these offset records as one transactional batch of the
    /// producer (TxnOffsetCommit), and report [`Input::AppendDone`] once
    /// durable. They stay pending until the producer's marker arrives.
    AppendTxn {
        write: WriteId,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        records: Vec<LogRecord>,
    },
}

pub(crate) enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// One offset write: group, partition, and the value (`None`: a
/// tombstone).
type OffsetWrite = (String, TopicPartition, Option<OffsetValue>);

/// Effects of a step that wait for its records to be durable.
#[derive(Default)]
struct Held {
    replies: Vec<(ReplyId, Response)>,
    offsets: Vec<OffsetWrite>,
    /// A TxnOffsetCommit's write: its offsets join the producer's pending
    /// ones once durable.
    txn: Option<crate::group_txn::HeldTxn>,
}

/// How often empty groups are checked for expired offsets (Kafka's
/// `offsets.retention.check.interval.ms`).
pub const RETENTION_CHECK_INTERVAL_MS: i64 = 600_000;

/// What a request that would create a group is answered while its shard
/// holds `groups_per_shard_max` groups: GROUP_MAX_SIZE_REACHED. Kafka has
/// no bound on groups, so no code of its own; the choice is by what clients
/// do with it. A retriable code (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
/// COORDINATOR_LOAD_IN_PROGRESS) would have every client rediscover the
/// coordinator and try again forever, with nothing reaching the
/// application. GROUP_MAX_SIZE_REACHED is fatal in both protocols of both
/// client families: the Java consumer raises GroupMaxSizeReachedException
/// from `poll()` on a JoinGroup answer and fails on a
/// ConsumerGroupHeartbeat answer, librdkafka treats it as fatal in the
/// ConsumerGroupHeartbeat and reports it to the application on a JoinGroup,
/// and a commit answered with it fails (Java: "Unexpected error in
/// commit"). It also says the right kind of thing, a capacity reached, where
/// INVALID_GROUP_ID (also fatal) would send an operator looking for a
/// malformed group id. ConsumerGroupHeartbeat's answer carries a message
/// naming the setting; the other answers have no message field.
pub const GROUPS_FULL: i16 = codes::GROUP_MAX_SIZE_REACHED;

/// The message of a ConsumerGroupHeartbeat refused by [`GROUPS_FULL`].
pub const GROUPS_FULL_MESSAGE: &str =
    "the broker holds groups_per_shard_max groups on this group's shard: no new group can be created until empty groups are deleted or expire";

/// The most records of one group whose offsets the coordinator keeps:
/// a named bound on the memory a single group can hold.
pub const OFFSETS_PER_GROUP_MAX: usize = 100_000;

pub struct GroupCoordinator {
    pub(crate) config: CoordinatorConfig,
    pub(crate) rng: SplitMix64,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Committed offsets by group, then topic and partition.
    pub(crate) offsets: BTreeMap<String, BTreeMap<TopicPartition, OffsetValue>>,
    /// The group values last written (or loaded), to write only changes.
    written: BTreeMap<String, GroupValue>,
    pub(crate) topics: Arc<TopicsView>,
    held: VecDeque<(WriteId, Held)>,
    next_write: u64,
    next_retention_check_ms: i64,
    /// Approximate bytes appended since the last snapshot (or load).
    bytes_since_snapshot: u64,
    /// How many records [`Self::load`] skipped because their group id is
    /// over [`bounds::GROUP_ID_BYTES_MAX`], and the start of the first few
    /// such ids (whole ids could be megabytes each).
    load_skipped: (u64, Vec<String>),
    snapshot_in_flight: Option<WriteId>,
    /// Whether the shard hosting this coordinator holds as many groups as
    /// it may (`groups_per_shard_max`, counted by the server over all of
    /// the shard's coordinators, which is why it is told rather than
    /// counted here): requests that would create a group are refused.
    pub(crate) groups_full: bool,
    // What the current step has produced.
    pub(crate) now_ms: i64,
    step_replies: Vec<(ReplyId, Response)>,
    step_records: Vec<LogRecord>,
    step_offsets: Vec<OffsetWrite>,
    pub(crate) touched: HashSet<String>,
    /// Offsets committed in transactions not decided yet, by producer.
    pub(crate) txn: crate::group_txn::TxnOffsets,
}

impl GroupCoordinator {
    /// A coordinator with no groups. `seed` makes generated member ids
    /// reproducible in simulations; the server passes a random one.
    pub fn new(config: CoordinatorConfig, seed: u64) -> GroupCoordinator {
        GroupCoordinator {
            config,
            rng: SplitMix64::new(seed),
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            written: BTreeMap::new(),
            topics: Arc::new(TopicsView::new()),
            held: VecDeque::new(),
            next_write: 0,
            next_retention_check_ms: i64::MIN,
            bytes_since_snapshot: 0,
            load_skipped: (0, Vec::new()),
            snapshot_in_flight: None,
            groups_full: false,
            now_ms: 0,
            step_replies: Vec::new(),
            step_records: Vec::new(),
            step_offsets: Vec::new(),
            touched: HashSet::new(),
            txn: Default::default(),
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// How many groups this coordinator holds (with members or not, with
    /// offsets or not).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Every committed offset this coordinator holds, by group, topic and
    /// partition, at most `limit` of them (what a metrics scrape reports
    /// as lag; offsets of transactions not decided yet are not included).
    pub fn committed_offsets(&self, limit: usize) -> Vec<(String, TopicPartition, i64)> {
        self.offsets
            .iter()
            .flat_map(|(group, offsets)| {
                offsets
                    .iter()
                    .map(move |(tp, value)| (group.clone(), tp.clone(), value.offset))
            })
            .take(limit)
            .collect()
    }

    /// Tells the coordinator, before a step, whether its shard may hold
    /// another group. While it may not, JoinGroup, ConsumerGroupHeartbeat
    /// and OffsetCommit naming a group that does not exist are answered
    /// GROUP_MAX_SIZE_REACHED ([`GROUPS_FULL`]) before anything is created
    /// or written; requests for existing groups are served as ever.
    pub fn set_groups_full(&mut self, full: bool) {
        self.groups_full = full;
    }

    /// Replaces the topic snapshot the KIP-848 assignors work from.
    pub fn set_topics(&mut self, topics: Arc<TopicsView>) {
        self.topics = topics;
    }

    /// Applies one record read back from the log, in log order, before
    /// the first step. A later record for a key replaces an earlier one.
    ///
    /// A record whose group id is over [`bounds::GROUP_ID_BYTES_MAX`]
    /// (written by a broker from before the bound) is skipped: such a
    /// group could not be listed or described in old protocol versions,
    /// and would break those answers for every client. Its bytes still
    /// count as superseded log, so the next snapshot, which holds only
    /// what was loaded, comes no later and drops it from the log for good.
    pub fn load(&mut self, record: LogRecord) {
        self.bytes_since_snapshot += record.approx_bytes() as u64;
        let group = record.key.group();
        if bounds::group_id_too_long(group) {
            let prefix = bounds::truncate_at_char_boundary(group, 64);
            let (count, examples) = &mut self.load_skipped;
            *count += 1;
            if examples.len() < 3 && !examples.iter().any(|e| e == prefix) {
                examples.push(prefix.to_string());
            }
            return;
        }
        match (record.key, record.value) {
            (
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                },
                value,
            ) => {
                let v = match value {
                    Some(RecordValue::Offset(v)) => Some(v),
                    _ => None,
                };
                self.apply_offset(group, TopicPartition { topic, partition }, v);
            }
            (RecordKey::Group { group }, Some(RecordValue::Group(v))) => {
                self.written.insert(group, v);
            }
            (RecordKey::Group { group }, _) => {
                self.written.remove(&group);
            }
        }
    }

    /// Builds the groups from what [`Self::load`] read. Members loaded this
    /// way get a fresh session, as Kafka gives them after a coordinator
    /// moves: they keep their assignment if they heartbeat in time.
    pub fn finish_load(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        let (skipped, examples) = std::mem::take(&mut self.load_skipped);
        if skipped > 0 {
            // One line per load rather than one per record: a group may
            // have had thousands of offsets.
            tracing::warn!(
                records = skipped,
                group_id_bytes_max = bounds::GROUP_ID_BYTES_MAX,
                group_id_starts = ?examples,
                "offsets log records with group ids over the bound were skipped; \
                 an older broker wrote them and they are dropped at the next compaction"
            );
        }
        for (id, value) in &self.written {
            let group = match value {
                GroupValue::Classic(s) => Group::Classic(ClassicGroup::restore(id, s, now_ms)),
                GroupValue::Consumer(s) => Group::Consumer(ConsumerGroup::restore(
                    id,
                    s,
                    now_ms,
                    self.config.consumer_session_timeout_ms,
                )),
            };
            self.groups.insert(id.clone(), group);
        }
        // Offsets of a group with no metadata belong to a "simple" group:
        // Kafka shows it as an empty classic group.
        let bare: Vec<String> = self
            .offsets
            .keys()
            .filter(|g| !self.groups.contains_key(*g))
            .cloned()
            .collect();
        for g in bare {
            self.groups
                .insert(g.clone(), Group::Classic(ClassicGroup::new(&g, now_ms)));
        }
        self.next_retention_check_ms = now_ms + RETENTION_CHECK_INTERVAL_MS;
    }

    /// Handles one input at time `now_ms` and returns what to do.
    pub fn step(&mut self, now_ms: i64, input: Input) -> Vec<Output> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        match input {
            Input::Request(reply, request) => self.handle(reply, *request),
            Input::AppendDone(write) => {
                while let Some((id, _)) = self.held.front() {
                    if *id > write {
                        break;
                    }
                    let (id, held) = self.held.pop_front().expect("front exists");
                    for (g, tp, v) in held.offsets {
                        self.apply_offset(g, tp, v);
                    }
                    if let Some(txn) = held.txn {
                        self.txn_write_durable(txn);
                    }
                    out.extend(held.replies.into_iter().map(|(r, x)| Output::Reply(r, x)));
                    if self.snapshot_in_flight == Some(id) {
                        self.snapshot_in_flight = None;
                    }
                }
            }
            Input::TxnCompleted {
                producer_id,
                commit,
            } => self.txn_completed(producer_id, commit),
            Input::Tick => self.tick(),
        }
        self.finish_step(&mut out);
        out
    }

    /// The earliest time at which [`Input::Tick`] has something to do.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let groups = self.groups.values().filter_map(|g| match g {
            Group::Classic(c) => c.next_deadline_ms(),
            Group::Consumer(c) => c.next_deadline_ms(),
        });
        groups
            .chain(std::iter::once(self.next_retention_check_ms))
            .min()
    }

    /// Every reply the coordinator still owes: held behind a write, or
    /// waiting for a rebalance. The server fails them (NOT_COORDINATOR) when
    /// it abandons this machine after a failed append.
    pub fn fail_pending(&mut self) -> Vec<ReplyId> {
        let mut ids: Vec<ReplyId> = self
            .held
            .drain(..)
            .flat_map(|(_, h)| h.replies.into_iter().map(|(r, _)| r))
            .collect();
        for g in self.groups.values_mut() {
            if let Group::Classic(c) = g {
                ids.extend(c.take_waiting());
            }
        }
        ids
    }

    /// Whether the log holds so much superseded data that the live state
    /// should be rewritten ([`Output::Append`] with `compacts`).
    fn wants_snapshot(&self) -> bool {
        if self.snapshot_in_flight.is_some() {
            return false;
        }
        // A snapshot drops the log before it, transactional offset records
        // whose marker has not come yet with it: wait until no transaction
        // is open here.
        if self.txn_open() {
            return false;
        }
        let live = self.live_bytes_estimate();
        self.bytes_since_snapshot > self.config.snapshot_min_bytes.max(4 * live)
    }

    fn live_bytes_estimate(&self) -> u64 {
        // Offsets dominate; an offset record is about 120 bytes of JSON.
        let offsets: usize = self.offsets.values().map(|o| o.len()).sum();
        (offsets as u64) * 120 + self.written.len() as u64 * 512
    }

    /// Every live record: the state the log describes.
    pub fn live_records(&self) -> Vec<LogRecord> {
        records_of(&self.written, &self.offsets)
    }

    /// Offset writes asked for and not yet durable, in write order.
    fn pending_offsets(&self) -> impl Iterator<Item = &OffsetWrite> {
        self.held
            .iter()
            .flat_map(|(_, h)| h.offsets.iter())
            .chain(self.step_offsets.iter())
    }

    /// The offsets of `group` as they will be once every write asked for
    /// so far is durable. Deletions work from this view, so that an
    /// offset whose commit is still being written goes too.
    fn offsets_after_writes(&self, group: &str) -> BTreeMap<TopicPartition, OffsetValue> {
        let mut out = self.offsets.get(group).cloned().unwrap_or_default();
        for (g, tp, v) in self.pending_offsets() {
            if g != group {
                continue;
            }
            match v {
                Some(v) => {
                    out.insert(tp.clone(), v.clone());
                }
                None => {
                    out.remove(tp);
                }
            }
        }
        out
    }

    // ----------------------------------------------------------- plumbing --

    pub(crate) fn reply(&mut self, to: ReplyId, response: Response) {
        self.step_replies.push((to, response));
    }

    pub(crate) fn write_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: Option<OffsetValue>,
    ) {
        self.step_records.push(LogRecord {
            key: RecordKey::Offset {
                group: group.to_string(),
                topic: topic.to_string(),
                partition,
            },
            value: value.clone().map(RecordValue::Offset),
        });
        self.step_offsets.push((
            group.to_string(),
            TopicPartition::new(topic, partition),
            value,
        ));
    }

    fn apply_offset(&mut self, group: String, tp: TopicPartition, v: Option<OffsetValue>) {
        apply(&mut self.offsets, group, tp, v);
    }

    /// Offsets of `group` as OffsetFetch sees them: durable ones only.
    pub(crate) fn group_offsets_mut_apply(
        &mut self,
        group: String,
        tp: TopicPartition,
        v: Option<OffsetValue>,
    ) {
        self.apply_offset(group, tp, v);
    }

    pub(crate) fn group_offsets(
        &self,
        group: &str,
    ) -> Option<&BTreeMap<TopicPartition, OffsetValue>> {
        self.offsets.get(group)
    }

    /// Writes changed group metadata, then turns this step's records and
    /// replies into outputs: replies wait behind the records, if any.
    fn finish_step(&mut self, out: &mut Vec<Output>) {
        let touched: Vec<String> = self.touched.drain().collect();
        for id in touched {
            let now = match self.groups.get(&id) {
                None => None,
                Some(Group::Classic(c)) => match c.snapshot() {
                    Some(s) => Some(GroupValue::Classic(s)),
                    // Mid-rebalance: what is written stays as it was.
                    None => continue,
                },
                Some(Group::Consumer(c)) => Some(GroupValue::Consumer(c.snapshot())),
            };
            if now.as_ref() == self.written.get(&id) {
                continue;
            }
            match &now {
                Some(v) => {
                    self.written.insert(id.clone(), v.clone());
                }
                None => {
                    self.written.remove(&id);
                }
            }
            self.step_records.push(LogRecord {
                key: RecordKey::Group { group: id },
                value: now.map(RecordValue::Group),
            });
        }
        // A TxnOffsetCommit's write was numbered when it was handled,
        // before this step's other records: it goes out first, so writes
        // reach the log in the order of their ids.
        out.append(&mut self.txn.step_appends);
        let replies = std::mem::take(&mut self.step_replies);
        let offsets = std::mem::take(&mut self.step_offsets);
        let records = std::mem::take(&mut self.step_records);
        if records.is_empty() {
            out.extend(replies.into_iter().map(|(r, x)| Output::Reply(r, x)));
            return;
        }
        self.bytes_since_snapshot += records.iter().map(|r| r.approx_bytes() as u64).sum::<u64>();
        let write = self.new_write();
        self.held.push_back((
            write,
            Held {
                replies,
                offsets,
                txn: None,
            },
        ));
        out.push(Output::Append {
            write,
            records,
            compacts: false,
        });
        if self.wants_snapshot() {
            // The snapshot is taken after this step's records, so pending
            // offsets are included as they will be once durable: a pending
            // tombstone removes its key. (Tombstones themselves are only
            // needed while older records exist; the snapshot drops
            // everything before it, so it holds none.)
            let mut offsets = self.offsets.clone();
            for (g, tp, v) in self.pending_offsets() {
                apply(&mut offsets, g.clone(), tp.clone(), v.clone());
            }
            let live = records_of(&self.written, &offsets);
            let write = self.new_write();
            self.held.push_back((write, Held::default()));
            self.snapshot_in_flight = Some(write);
            self.bytes_since_snapshot = 0;
            out.push(Output::Append {
                write,
                records: live,
                compacts: true,
            });
        }
    }

    /// Holds `replies` (and a TxnOffsetCommit's offsets) until `write`
    /// is durable.
    pub(crate) fn hold(
        &mut self,
        write: WriteId,
        replies: Vec<(ReplyId, Response)>,
        txn: Option<crate::group_txn::HeldTxn>,
    ) {
        self.held.push_back((
            write,
            Held {
                replies,
                offsets: Vec::new(),
                txn,
            },
        ));
    }

    /// The TxnOffsetCommit writes not durable yet.
    pub(crate) fn held_txns_mut(&mut self) -> impl Iterator<Item = &mut crate::group_txn::HeldTxn> {
        self.held.iter_mut().filter_map(|(_, h)| h.txn.as_mut())
    }

    pub(crate) fn held_txns(&self) -> impl Iterator<Item = &crate::group_txn::HeldTxn> {
        self.held.iter().filter_map(|(_, h)| h.txn.as_ref())
    }

    pub(crate) fn new_write(&mut self) -> WriteId {
        self.next_write += 1;
        WriteId(self.next_write)
    }

    /// A new member id in Kafka's form, `client_id + "-" + uuid`. The
    /// client id comes from the request header and may be up to 32,767
    /// bytes, so only its first [`bounds::MEMBER_ID_CLIENT_ID_BYTES_MAX`]
    /// bytes are used: the id then fits in every version of every answer
    /// that carries it (DescribeGroups v0-4, JoinGroup v0-5).
    pub(crate) fn member_id(&mut self, client_id: &str) -> String {
        let prefix =
            bounds::truncate_at_char_boundary(client_id, bounds::MEMBER_ID_CLIENT_ID_BYTES_MAX);
        format!("{prefix}-{}", crate::rng::uuid(&mut self.rng))
    }

    // ------------------------------------------------------------ requests --

    fn handle(&mut self, reply: ReplyId, request: Request) {
        // Names and ids over their bounds are refused before anything is
        // looked up, created or written, so nothing oversized is stored.
        if let Some(refused) = bounds::refusal(&request) {
            self.reply(reply, refused);
            return;
        }
        match request {
            Request::Join(r) => self.join(reply, r),
            Request::Sync(r) => self.sync(reply, r),
            Request::Heartbeat(r) => {
                let code = self.heartbeat(r);
                self.reply(reply, Response::Heartbeat(code));
            }
            Request::Leave(r) => {
                let result = self.leave(r);
                self.reply(reply, Response::Leave(result));
            }
            Request::OffsetCommit(r) => self.offset_commit(reply, r),
            Request::TxnOffsetCommit(r) => self.txn_offset_commit(reply, r),
            Request::OffsetFetch(r) => {
                let result = self.offset_fetch(r);
                self.reply(reply, Response::OffsetFetch(result));
            }
            Request::ListGroups(r) => {
                let result = self.list_groups(&r);
                self.reply(reply, Response::ListGroups(result));
            }
            Request::DescribeGroups(ids) => {
                let result = ids
                    .iter()
                    .map(|g| {
                        if bounds::group_id_too_long(g) {
                            bounds::describe_refusal(g)
                        } else {
                            self.describe_group(g)
                        }
                    })
                    .collect();
                self.reply(reply, Response::DescribeGroups(result));
            }
            Request::DeleteGroups(ids) => {
                let result = ids
                    .iter()
                    .map(|g| {
                        let code = if bounds::group_id_too_long(g) {
                            codes::INVALID_GROUP_ID
                        } else {
                            self.delete_group(g)
                        };
                        (g.clone(), code)
                    })
                    .collect();
                self.reply(reply, Response::DeleteGroups(result));
            }
            Request::OffsetDelete(r) => {
                let result = self.offset_delete(r);
                self.reply(reply, Response::OffsetDelete(result));
            }
            Request::ConsumerHeartbeat(r) => {
                let result = self.consumer_heartbeat(r);
                self.reply(reply, Response::ConsumerHeartbeat(result));
            }
            Request::ConsumerDescribe(ids) => {
                let result = ids
                    .iter()
                    .map(|g| {
                        if bounds::group_id_too_long(g) {
                            bounds::consumer_describe_refusal(g)
                        } else {
                            self.consumer_describe(g)
                        }
                    })
                    .collect();
                self.reply(reply, Response::ConsumerDescribe(result));
            }
        }
    }

    fn offset_commit(&mut self, reply: ReplyId, r: OffsetCommit) {
        let group_error = self.validate_commit(&r);
        let mut result = Vec::with_capacity(r.offsets.len());
        let known = self.offsets.get(&r.group_id).map_or(0, |o| o.len());
        for (i, p) in r.offsets.iter().enumerate() {
            let code = if group_error != codes::NONE {
                group_error
            } else if p
                .metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.config.offset_metadata_bytes_max)
            {
                codes::OFFSET_METADATA_TOO_LARGE
            } else if known + i >= OFFSETS_PER_GROUP_MAX
                && !self.offsets.get(&r.group_id).is_some_and(|o| {
                    o.contains_key(&TopicPartition::new(p.topic.clone(), p.partition))
                })
            {
                // Past the per-group bound Kafka has no specific code; this
                // is what it answers for a request it cannot accept.
                codes::INVALID_REQUEST
            } else {
                codes::NONE
            };
            if code == codes::NONE {
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone(),
                    commit_ms: self.now_ms,
                };
                self.write_offset(&r.group_id, &p.topic, p.partition, Some(value));
            }
            result.push((TopicPartition::new(p.topic.clone(), p.partition), code));
        }
        if group_error == codes::NONE && !self.groups.contains_key(&r.group_id) {
            // A commit from outside any membership creates an empty
            // ("simple") group, as in Kafka.
            self.groups.insert(
                r.group_id.clone(),
                Group::Classic(ClassicGroup::new(&r.group_id, self.now_ms)),
            );
            self.touched.insert(r.group_id.clone());
        }
        self.reply(reply, Response::OffsetCommit(result));
    }

    pub(crate) fn validate_commit(&mut self, r: &OffsetCommit) -> i16 {
        if r.group_id.is_empty() {
            return codes::INVALID_GROUP_ID;
        }
        let now = self.now_ms;
        match self.groups.get_mut(&r.group_id) {
            // A commit from outside any membership would create the group.
            None if r.generation_id < 0 && self.groups_full => GROUPS_FULL,
            None if r.generation_id < 0 => codes::NONE,
            // Kafka: a generation for a group it does not know.
            None => codes::ILLEGAL_GENERATION,
            Some(Group::Classic(g)) => g.validate_commit(r, now),
            Some(Group::Consumer(g)) => g.validate_commit(r),
        }
    }

    fn offset_fetch(&mut self, r: OffsetFetch) -> OffsetFetchResult {
        if let Some((member, epoch)) = &r.member {
            if let Some(Group::Consumer(g)) = self.groups.get(&r.group_id) {
                let code = g.validate_fetch(member, *epoch);
                if code != codes::NONE {
                    return OffsetFetchResult {
                        error: code,
                        offsets: Vec::new(),
                    };
                }
            }
        }
        let committed = self.group_offsets(&r.group_id);
        let mut offsets: Vec<FetchedOffset> = match r.partitions {
            None => committed
                .map(|o| {
                    o.iter()
                        .map(|(tp, v)| FetchedOffset {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            error: codes::NONE,
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(wanted) => wanted
                .into_iter()
                .map(|tp| {
                    let v = committed.and_then(|o| o.get(&tp));
                    FetchedOffset {
                        topic: tp.topic,
                        partition: tp.partition,
                        error: codes::NONE,
                        offset: v.map_or(-1, |v| v.offset),
                        leader_epoch: v.map_or(-1, |v| v.leader_epoch),
                        metadata: v.map_or(Some(String::new()), |v| v.metadata.clone()),
                    }
                })
                .collect(),
        };
        if r.require_stable && self.txn_open() {
            // Kafka (KIP-447): a partition whose offset a transaction may
            // still change is answered UNSTABLE_OFFSET_COMMIT, and the
            // client asks again, so a new owner of the partition never
            // starts from an offset that is about to move.
            for o in &mut offsets {
                if self.unstable(&r.group_id, &o.topic, o.partition) {
                    o.error = codes::UNSTABLE_OFFSET_COMMIT;
                    o.offset = -1;
                    o.leader_epoch = -1;
                    o.metadata = Some(String::new());
                }
            }
        }
        OffsetFetchResult {
            error: codes::NONE,
            offsets,
        }
    }

    fn list_groups(&self, r: &ListGroups) -> Vec<ListedGroup> {
        self.groups
            .iter()
            .map(|(id, g)| match g {
                Group::Classic(c) => ListedGroup {
                    group_id: id.clone(),
                    protocol_type: c.protocol_type.clone().unwrap_or_default(),
                    state: c.state_name().to_string(),
                    group_type: GroupType::Classic,
                },
                Group::Consumer(c) => ListedGroup {
                    group_id: id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: c.state_name().to_string(),
                    group_type: GroupType::Consumer,
                },
            })
            .filter(|g| {
                (r.states.is_empty() || r.states.iter().any(|s| s.eq_ignore_ascii_case(&g.state)))
                    && (r.types.is_empty()
                        || r.types
                            .iter()
                            .any(|t| t.eq_ignore_ascii_case(g.group_type.as_str())))
            })
            .collect()
    }

    fn describe_group(&self, id: &str) -> DescribedGroup {
        match self.groups.get(id) {
            Some(Group::Classic(c)) => c.describe(),
            Some(Group::Consumer(_)) => DescribedGroup {
                group_id: id.to_string(),
                // Kafka 4 answers so for a group of the new protocol.
                error: codes::GROUP_ID_NOT_FOUND,
                state: "Dead".into(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
            None => DescribedGroup {
                group_id: id.to_string(),
                error: codes::NONE,
                state: "Dead".into(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    fn delete_group(&mut self, id: &str) -> i16 {
        let empty = match self.groups.get(id) {
            None => return codes::GROUP_ID_NOT_FOUND,
            Some(Group::Classic(c)) => c.is_empty(),
            Some(Group::Consumer(c)) => c.is_empty(),
        };
        if !empty {
            return codes::NON_EMPTY_GROUP;
        }
        self.remove_group(id);
        codes::NONE
    }

    /// Drops a group and its offsets, writing tombstones.
    fn remove_group(&mut self, id: &str) {
        self.groups.remove(id);
        self.touched.insert(id.to_string());
        let partitions: Vec<TopicPartition> = self.offsets_after_writes(id).into_keys().collect();
        for tp in partitions {
            self.write_offset(id, &tp.topic, tp.partition, None);
        }
    }

    fn offset_delete(&mut self, r: OffsetDelete) -> OffsetDeleteResult {
        // None: every topic counts as subscribed.
        let subscribed = match self.groups.get(&r.group_id) {
            None => Err(codes::GROUP_ID_NOT_FOUND),
            Some(Group::Classic(c)) => c.subscribed_topics(),
            Some(Group::Consumer(c)) => Ok(Some(c.subscribed_topics(&self.topics))),
        };
        let subscribed: Option<HashSet<String>> = match subscribed {
            Ok(s) => s,
            Err(error) => {
                return OffsetDeleteResult {
                    error,
                    partitions: Vec::new(),
                }
            }
        };
        let mut partitions = Vec::new();
        let committed = self.offsets_after_writes(&r.group_id);
        for tp in r.partitions {
            let code = if subscribed.as_ref().is_none_or(|s| s.contains(&tp.topic)) {
                codes::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                if committed.contains_key(&tp) {
                    self.write_offset(&r.group_id, &tp.topic, tp.partition, None);
                }
                codes::NONE
            };
            partitions.push((tp, code));
        }
        OffsetDeleteResult {
            error: codes::NONE,
            partitions,
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms;
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let due = match self.groups.get(&id) {
                Some(Group::Classic(c)) => c.next_deadline_ms().is_some_and(|d| d <= now),
                Some(Group::Consumer(c)) => c.next_deadline_ms().is_some_and(|d| d <= now),
                None => false,
            };
            if due {
                match self.groups.get(&id) {
                    Some(Group::Classic(_)) => self.classic_tick(&id),
                    Some(Group::Consumer(_)) => self.consumer_tick(&id),
                    None => {}
                }
            }
        }
        if now >= self.next_retention_check_ms {
            self.next_retention_check_ms = now + RETENTION_CHECK_INTERVAL_MS;
            self.expire_offsets();
        }
    }

    /// Kafka's offset expiration: once a group has been empty for the
    /// retention period, each offset committed before that period goes
    /// (an offset committed later, by a "simple" consumer outside any
    /// membership, lives for the period after its commit); an empty group
    /// left without offsets goes too.
    fn expire_offsets(&mut self) {
        let now = self.now_ms;
        let retention = self.config.offsets_retention_ms;
        let empty_since: Vec<(String, i64)> = self
            .groups
            .iter()
            .filter_map(|(id, g)| match g {
                Group::Classic(c) if c.is_empty() => Some((id.clone(), c.state_since_ms)),
                Group::Consumer(c) if c.is_empty() => Some((id.clone(), c.state_since_ms)),
                _ => None,
            })
            .collect();
        for (id, since) in empty_since {
            // A commit still being written counts (it is recent).
            let committed = self.offsets_after_writes(&id);
            let stale: Vec<TopicPartition> = committed
                .iter()
                .filter(|(_, v)| since.max(v.commit_ms).saturating_add(retention) <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let all = committed.len() == stale.len();
            // Every offset stale (or none at all): the group goes, as in Kafka.
            if all {
                self.remove_group(&id);
            } else {
                for tp in stale {
                    self.write_offset(&id, &tp.topic, tp.partition, None);
                }
            }
        }
    }
}

type OffsetsByGroup = BTreeMap<String, BTreeMap<TopicPartition, OffsetValue>>;

/// Applies one offset write (a tombstone when `v` is None).
fn apply(offsets: &mut OffsetsByGroup, group: String, tp: TopicPartition, v: Option<OffsetValue>) {
    match v {
        Some(v) => {
            offsets.entry(group).or_default().insert(tp, v);
        }
        None => {
            if let Some(o) = offsets.get_mut(&group) {
                o.remove(&tp);
                if o.is_empty() {
                    offsets.remove(&group);
                }
            }
        }
    }
}

/// The records describing these groups and offsets, tombstones left out.
fn records_of(written: &BTreeMap<String, GroupValue>, offsets: &OffsetsByGroup) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for (group, value) in written {
        out.push(LogRecord {
            key: RecordKey::Group {
                group: group.clone(),
            },
            value: Some(RecordValue::Group(value.clone())),
        });
    }
    for (group, offsets) in offsets {
        for (tp, v) in offsets {
            out.push(LogRecord {
                key: RecordKey::Offset {
                    group: group.clone(),
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                },
                value: Some(RecordValue::Offset(v.clone())),
            });
        }
    }
    out
}
