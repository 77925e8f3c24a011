//! A harness for driving the coordinator with plain values and a simulated
//! clock: no sockets, no storage. Each test file includes it as a module.
//!
//! [`Sim`] owns a [`GroupCoordinator`] and the time; it records every append
//! in order (the offsets log the coordinator asked for), completes appends
//! itself unless told not to, and collects the replies as they are released.
//! Ticks are fired at each deadline the coordinator announces, as the server
//! does, so timeouts happen exactly when they are due.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use corelog_coordination::records::LogRecord;
use corelog_coordination::*;
pub use corelog_model::{ProducerEpoch, ProducerId};

pub use corelog_coordination::codes;

pub const SESSION_MS: i32 = 10_000;
pub const REBALANCE_MS: i32 = 30_000;

/// The defaults, without the initial rebalance delay (tests of the delay
/// set it themselves).
pub fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..CoordinatorConfig::default()
    }
}

/// One append the coordinator asked for.
#[derive(Debug, Clone)]
pub struct Append {
    pub write: WriteId,
    pub records: Vec<LogRecord>,
    pub compacts: bool,
    /// A transactional batch of this producer (TxnOffsetCommit).
    pub txn: Option<(ProducerId, ProducerEpoch)>,
    /// A transaction marker the test wrote ([`Sim::marker`]): no records.
    pub marker: Option<(ProducerId, bool)>,
}

pub struct Sim {
    pub c: GroupCoordinator,
    pub now: i64,
    next_reply: u64,
    /// Every append, in the order asked for: the offsets log.
    pub log: Vec<Append>,
    /// Complete each append as soon as it is asked for.
    pub auto_ack: bool,
    /// Appends not yet completed (only when `auto_ack` is off).
    pub unacked: VecDeque<WriteId>,
    /// Replies released and not yet taken.
    replies: BTreeMap<ReplyId, Response>,
    answered: HashSet<ReplyId>,
}

impl Sim {
    pub fn new(config: CoordinatorConfig) -> Sim {
        Sim::with_seed(config, 7)
    }

    pub fn with_seed(config: CoordinatorConfig, seed: u64) -> Sim {
        Sim::from_coordinator(GroupCoordinator::new(config, seed), 0)
    }

    /// Wraps a coordinator (say, one rebuilt from a log) at time `now`.
    pub fn from_coordinator(c: GroupCoordinator, now: i64) -> Sim {
        Sim {
            c,
            now,
            next_reply: 0,
            log: Vec::new(),
            auto_ack: true,
            unacked: VecDeque::new(),
            replies: BTreeMap::new(),
            answered: HashSet::new(),
        }
    }

    pub fn step(&mut self, input: Input) {
        let out = self.c.step(self.now, input);
        self.absorb(out);
    }

    fn absorb(&mut self, out: Vec<Output>) {
        let mut acks = Vec::new();
        for o in out {
            match o {
                Output::Reply(id, response) => {
                    assert!(
                        self.answered.insert(id),
                        "{id:?} answered twice; again with {response:?}"
                    );
                    self.replies.insert(id, response);
                }
                Output::Append {
                    write,
                    records,
                    compacts,
                } => {
                    // A snapshot of an empty state is empty: it still
                    // drops the log before it.
                    assert!(compacts || !records.is_empty(), "an append with no records");
                    self.log.push(Append {
                        write,
                        records,
                        compacts,
                        txn: None,
                        marker: None,
                    });
                    if self.auto_ack {
                        acks.push(write);
                    } else {
                        self.unacked.push_back(write);
                    }
                }
                Output::AppendTxn {
                    write,
                    producer_id,
                    producer_epoch,
                    records,
                } => {
                    assert!(
                        !records.is_empty(),
                        "a transactional append with no records"
                    );
                    self.log.push(Append {
                        write,
                        records,
                        compacts: false,
                        txn: Some((producer_id, producer_epoch)),
                        marker: None,
                    });
                    if self.auto_ack {
                        acks.push(write);
                    } else {
                        self.unacked.push_back(write);
                    }
                }
            }
        }
        for w in acks {
            let out = self.c.step(self.now, Input::AppendDone(w));
            self.absorb(out);
        }
    }

    /// Completes every append asked for so far.
    pub fn ack_all(&mut self) {
        while let Some(w) = self.unacked.pop_front() {
            self.step(Input::AppendDone(w));
        }
    }

    /// Completes the oldest append still pending.
    pub fn ack_one(&mut self) {
        let w = self.unacked.pop_front().expect("an append is pending");
        self.step(Input::AppendDone(w));
    }

    /// Sends a request; its reply may come now or later (see [`Self::take`]).
    pub fn send(&mut self, request: Request) -> ReplyId {
        self.next_reply += 1;
        let id = ReplyId(self.next_reply);
        self.step(Input::Request(id, Box::new(request)));
        id
    }

    /// The reply to `id`, if it has been released.
    pub fn take(&mut self, id: ReplyId) -> Option<Response> {
        self.replies.remove(&id)
    }

    pub fn has_reply(&self, id: ReplyId) -> bool {
        self.replies.contains_key(&id)
    }

    /// Sends a request whose reply must come within this step.
    pub fn call(&mut self, request: Request) -> Response {
        let id = self.send(request.clone());
        self.take(id)
            .unwrap_or_else(|| panic!("no reply yet to {request:?}"))
    }

    pub fn tick(&mut self) {
        self.step(Input::Tick);
        if let Some(d) = self.c.next_deadline_ms() {
            assert!(
                d > self.now,
                "after a tick at {} the next deadline is {d}: the server would spin",
                self.now
            );
        }
    }

    /// Moves the clock to `t`, ticking at every deadline on the way (and
    /// at `t`), as the server's timer does.
    pub fn advance_to(&mut self, t: i64) {
        assert!(t >= self.now, "time goes forward");
        while let Some(d) = self.c.next_deadline_ms() {
            if d > t {
                break;
            }
            self.now = self.now.max(d);
            self.tick();
        }
        self.now = t;
        self.tick();
    }

    pub fn advance(&mut self, ms: i64) {
        self.advance_to(self.now + ms);
    }

    /// Writes the producer's transaction marker to the log and tells the
    /// coordinator it is durable, as the server does for a marker the
    /// transaction coordinator sends to this offsets partition.
    pub fn marker(&mut self, producer_id: ProducerId, commit: bool) {
        self.log.push(Append {
            write: WriteId(0),
            records: Vec::new(),
            compacts: false,
            txn: None,
            marker: Some((producer_id, commit)),
        });
        self.step(Input::TxnCompleted {
            producer_id,
            commit,
        });
    }

    /// Every record appended, in log order.
    pub fn records(&self) -> Vec<LogRecord> {
        self.log.iter().flat_map(|a| a.records.clone()).collect()
    }

    // ------------------------------------------------------------ classic --

    pub fn join(&mut self, j: JoinGroup) -> ReplyId {
        self.send(Request::Join(j))
    }

    /// The join's reply, which must have been released.
    pub fn joined(&mut self, id: ReplyId) -> JoinResult {
        match self.take(id) {
            Some(Response::Join(r)) => r,
            other => panic!("expected a join reply for {id:?}, got {other:?}"),
        }
    }

    pub fn join_now(&mut self, j: JoinGroup) -> JoinResult {
        let id = self.join(j);
        self.joined(id)
    }

    pub fn sync(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        assignments: &[(&str, &[u8])],
    ) -> ReplyId {
        self.sync_static(group, generation, member, None, assignments)
    }

    pub fn sync_static(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
        assignments: &[(&str, &[u8])],
    ) -> ReplyId {
        self.send(Request::Sync(SyncGroup {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: instance.map(str::to_string),
            // Optional (SyncGroup v5+): left out so any protocol fits.
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
                .collect(),
        }))
    }

    pub fn synced(&mut self, id: ReplyId) -> SyncResult {
        match self.take(id) {
            Some(Response::Sync(r)) => r,
            other => panic!("expected a sync reply for {id:?}, got {other:?}"),
        }
    }

    pub fn heartbeat(&mut self, group: &str, generation: i32, member: &str) -> i16 {
        self.heartbeat_static(group, generation, member, None)
    }

    pub fn heartbeat_static(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> i16 {
        match self.call(Request::Heartbeat(Heartbeat {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: instance.map(str::to_string),
        })) {
            Response::Heartbeat(code) => code,
            other => panic!("expected a heartbeat reply, got {other:?}"),
        }
    }

    pub fn leave(&mut self, group: &str, members: &[(&str, Option<&str>)]) -> LeaveResult {
        match self.call(Request::Leave(LeaveGroup {
            group_id: group.into(),
            members: members
                .iter()
                .map(|(m, i)| LeavingMember {
                    member_id: m.to_string(),
                    group_instance_id: i.map(str::to_string),
                })
                .collect(),
        })) {
            Response::Leave(r) => r,
            other => panic!("expected a leave reply, got {other:?}"),
        }
    }

    pub fn describe(&mut self, group: &str) -> DescribedGroup {
        match self.call(Request::DescribeGroups(vec![group.into()])) {
            Response::DescribeGroups(mut v) => v.remove(0),
            other => panic!("expected a describe reply, got {other:?}"),
        }
    }

    pub fn state(&mut self, group: &str) -> String {
        self.describe(group).state
    }

    pub fn list(&mut self) -> Vec<ListedGroup> {
        match self.call(Request::ListGroups(ListGroups::default())) {
            Response::ListGroups(v) => v,
            other => panic!("expected a list reply, got {other:?}"),
        }
    }

    /// Joins one dynamic member after another (no member id required)
    /// and syncs the leader with `assignment(i)` for member i; returns the
    /// member ids in join order and the generation. The group is Stable.
    pub fn stable_group(&mut self, group: &str, n: usize) -> (Vec<String>, i32) {
        let joins: Vec<JoinGroup> = (0..n)
            .map(|i| join_req(group, "").client(&format!("c{i}")))
            .collect();
        self.stable_group_of(group, joins)
    }

    /// As [`Self::stable_group`] with the given join requests (members that
    /// need no member id from the coordinator first). Each newcomer starts
    /// a rebalance that the earlier members join again, so the generation
    /// returned is `joins.len()` for a new group.
    pub fn stable_group_of(&mut self, group: &str, joins: Vec<JoinGroup>) -> (Vec<String>, i32) {
        let mut members: Vec<JoinGroup> = Vec::new();
        let mut last: Vec<JoinResult> = Vec::new();
        for j in joins {
            let mut pending = vec![self.join(j.clone())];
            for m in &members {
                pending.push(self.join(m.clone()));
            }
            last = pending.into_iter().map(|p| self.joined(p)).collect();
            for r in &last {
                assert_eq!(r.error, codes::NONE, "{r:?}");
            }
            members.push(JoinGroup {
                member_id: last[0].member_id.clone(),
                ..j
            });
        }
        let ids: Vec<String> = members.iter().map(|m| m.member_id.clone()).collect();
        let leader = last
            .iter()
            .find(|r| r.member_id == r.leader)
            .expect("a leader")
            .clone();
        assert_eq!(leader.members.len(), ids.len());
        let generation = leader.generation_id;
        let assignments: Vec<(String, Vec<u8>)> = ids
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), assignment(i)))
            .collect();
        let borrowed: Vec<(&str, &[u8])> = assignments
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_slice()))
            .collect();
        let mut syncs = Vec::new();
        for m in &members {
            if m.member_id != leader.member_id {
                syncs.push(self.sync_static(
                    group,
                    generation,
                    &m.member_id,
                    m.group_instance_id.as_deref(),
                    &[],
                ));
            }
        }
        let instance = members
            .iter()
            .find(|m| m.member_id == leader.member_id)
            .and_then(|m| m.group_instance_id.clone());
        syncs.push(self.sync_static(
            group,
            generation,
            &leader.member_id,
            instance.as_deref(),
            &borrowed,
        ));
        self.ack_all();
        for s in syncs {
            let r = self.synced(s);
            assert_eq!(r.error, codes::NONE);
        }
        assert_eq!(self.state(group), "Stable");
        (ids, generation)
    }

    // ------------------------------------------------------------ offsets --

    pub fn commit(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        offsets: &[(&str, i32, i64)],
    ) -> ReplyId {
        self.send(Request::OffsetCommit(OffsetCommit {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            offsets: offsets
                .iter()
                .map(|(t, p, o)| CommitPartition {
                    topic: t.to_string(),
                    partition: *p,
                    offset: *o,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                })
                .collect(),
        }))
    }

    /// Commits and returns each partition's error (appends complete).
    pub fn commit_now(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<i16> {
        let id = self.commit(group, generation, member, offsets);
        self.ack_all();
        self.committed(id)
    }

    pub fn committed(&mut self, id: ReplyId) -> Vec<i16> {
        match self.take(id) {
            Some(Response::OffsetCommit(v)) => v.into_iter().map(|(_, e)| e).collect(),
            other => panic!("expected a commit reply for {id:?}, got {other:?}"),
        }
    }

    /// Every committed offset of `group` as OffsetFetch shows it.
    pub fn offsets(&mut self, group: &str) -> BTreeMap<TopicPartition, i64> {
        match self.call(Request::OffsetFetch(OffsetFetch {
            group_id: group.into(),
            partitions: None,
            member: None,
            require_stable: false,
        })) {
            Response::OffsetFetch(r) => {
                assert_eq!(r.error, codes::NONE);
                r.offsets
                    .into_iter()
                    .map(|o| (TopicPartition::new(o.topic, o.partition), o.offset))
                    .collect()
            }
            other => panic!("expected a fetch reply, got {other:?}"),
        }
    }

    // ----------------------------------------------------------- KIP-848 --

    pub fn set_topics(&mut self, topics: &[(&str, u32)]) {
        self.c.set_topics(Arc::new(topics_view(topics)));
    }

    pub fn consumer_heartbeat(&mut self, h: ConsumerHeartbeat) -> ConsumerHeartbeatResult {
        match self.call(Request::ConsumerHeartbeat(h.clone())) {
            Response::ConsumerHeartbeat(r) => r,
            other => panic!("expected a consumer heartbeat reply, got {other:?}"),
        }
    }

    pub fn consumer_describe(&mut self, group: &str) -> DescribedConsumerGroup {
        match self.call(Request::ConsumerDescribe(vec![group.into()])) {
            Response::ConsumerDescribe(mut v) => v.remove(0),
            other => panic!("expected a consumer describe reply, got {other:?}"),
        }
    }
}

/// The seeded runs' generator (SplitMix64, shared by Corelog's
/// simulations). Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use corelog_model::rng::SplitMix64 as Rng;

// ---------------------------------------------------------------- values --

/// A ConsumerProtocolSubscription for `topics`, as a Java consumer sends
/// it: an i16 version, then the message.
pub fn subscription(topics: &[&str]) -> Bytes {
    use corelog_protocol::kafka_protocol::messages::ConsumerProtocolSubscription;
    use corelog_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
    let version = 1i16;
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    s.encode(&mut buf, version).expect("encodes");
    buf.freeze()
}

/// The assignment bytes `stable_group` gives member i.
pub fn assignment(i: usize) -> Vec<u8> {
    vec![0xA0 + i as u8, i as u8]
}

/// A classic consumer join: protocol "range" subscribing to topic "t".
pub fn join_req(group: &str, member: &str) -> JoinGroup {
    JoinGroup {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription(&["t"]))],
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        require_known_member_id: false,
        client_id: "c".into(),
        client_host: "/10.0.0.1".into(),
    }
}

pub trait JoinExt {
    fn client(self, id: &str) -> Self;
    fn instance(self, id: &str) -> Self;
    fn require_id(self) -> Self;
    fn protocols(self, p: &[(&str, Bytes)]) -> Self;
    fn timeouts(self, session: i32, rebalance: i32) -> Self;
    fn member(self, id: &str) -> Self;
}

impl JoinExt for JoinGroup {
    fn client(mut self, id: &str) -> Self {
        self.client_id = id.into();
        self
    }
    fn instance(mut self, id: &str) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
    fn require_id(mut self) -> Self {
        self.require_known_member_id = true;
        self
    }
    fn protocols(mut self, p: &[(&str, Bytes)]) -> Self {
        self.protocols = p.iter().map(|(n, m)| (n.to_string(), m.clone())).collect();
        self
    }
    fn timeouts(mut self, session: i32, rebalance: i32) -> Self {
        self.session_timeout_ms = session;
        self.rebalance_timeout_ms = rebalance;
        self
    }
    fn member(mut self, id: &str) -> Self {
        self.member_id = id.into();
        self
    }
}

/// Topics with ids derived from their names, so two views agree.
pub fn topic_id(name: &str) -> uuid::Uuid {
    let mut h: u128 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u128).wrapping_mul(0x0100_0000_01b3);
    }
    uuid::Uuid::from_u128(h | 1)
}

pub fn topics_view(topics: &[(&str, u32)]) -> TopicsView {
    topics
        .iter()
        .map(|(n, p)| {
            (
                n.to_string(),
                TopicInfo {
                    id: topic_id(n),
                    partitions: *p,
                },
            )
        })
        .collect()
}

/// A KIP-848 join (epoch 0) subscribing to `topics`.
pub fn consumer_join(group: &str, member: &str, topics: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: group.into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Assignment::new()),
        client_id: "c".into(),
        client_host: "/10.0.0.2".into(),
        ..Default::default()
    }
}

/// A KIP-848 heartbeat at `epoch` reporting `owned`.
pub fn consumer_hb(group: &str, member: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: group.into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..Default::default()
    }
}

/// Partitions of an assignment as (topic id, partition) pairs.
pub fn pairs(a: &Assignment) -> BTreeSet<(uuid::Uuid, i32)> {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

pub fn count(a: &Assignment) -> usize {
    a.values().map(|p| p.len()).sum()
}

// -------------------------------------------------------------- recovery --

/// A fresh coordinator rebuilt from `records` (in log order) at `now`.
pub fn replay(
    config: CoordinatorConfig,
    records: &[LogRecord],
    topics: &TopicsView,
    now: i64,
) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config, 99);
    c.set_topics(Arc::new(topics.clone()));
    for r in records {
        c.load(r.clone());
    }
    c.finish_load(now);
    c
}

/// A fresh coordinator rebuilt from a log with transactional batches and
/// markers (in log order) at `now`.
pub fn replay_log(config: CoordinatorConfig, log: &[Append], now: i64) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config, 99);
    for a in log {
        if let Some((producer_id, commit)) = a.marker {
            c.load_marker(producer_id, commit);
        }
        for r in &a.records {
            match a.txn {
                Some((pid, epoch)) => c.load_txn_record(pid, epoch, r.clone()),
                None => c.load(r.clone()),
            }
        }
    }
    c.finish_load(now);
    c
}

/// The records a log compacted at its last snapshot still holds: the last
/// `compacts` append and everything after it (all of it if none).
pub fn since_last_snapshot(log: &[Append]) -> Vec<LogRecord> {
    let start = log.iter().rposition(|a| a.compacts).unwrap_or(0);
    log[start..]
        .iter()
        .flat_map(|a| a.records.clone())
        .collect()
}

/// The live state as a comparable value: the last value of each key.
pub fn live_state(c: &GroupCoordinator) -> BTreeMap<String, String> {
    c.live_records()
        .into_iter()
        .map(|r| (format!("{:?}", r.key), format!("{:?}", r.value)))
        .collect()
}

/// Folds records as the log's reader does: the last value of each key.
pub fn fold(records: &[LogRecord]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in records {
        let k = format!("{:?}", r.key);
        match &r.value {
            Some(v) => {
                out.insert(k, format!("{:?}", Some(v)));
            }
            None => {
                out.remove(&k);
            }
        }
    }
    out
}

/// The keys on which two folded states differ, with both values.
pub fn diff(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| (k.clone(), a.get(k).cloned(), b.get(k).cloned()))
        .collect()
}
