//! A classic group's data: members, state, deadlines, and the queries the
//! transitions (`transitions.rs`) and the coordinator make of it.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use crate::api::*;
use crate::codes;
use crate::coordinator::ReplyId;
use crate::records::{ClassicMemberSnapshot, ClassicSnapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

pub(crate) struct ClassicMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Join order, for choosing a leader as Kafka does (the earliest).
    pub joined_seq: u64,
    pub(super) awaiting_join: Option<ReplyId>,
    pub(super) awaiting_sync: Option<ReplyId>,
    pub(super) heartbeat_deadline_ms: i64,
}

impl ClassicMember {
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub(crate) struct ClassicGroup {
    pub group_id: String,
    pub state: ClassicState,
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, ClassicMember>,
    /// group.instance.id -> member id.
    pub(super) static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and until when the
    /// member may come back with it.
    pub(super) pending_members: HashMap<String, i64>,
    pub(super) join_deadline_ms: Option<i64>,
    /// The first rebalance of an empty group waits this long for more
    /// members (group.initial.rebalance.delay.ms), up to this deadline.
    pub(super) initial_delay: Option<i64>,
    pub(super) sync_deadline_ms: Option<i64>,
    /// Members that must still send SyncGroup for this generation.
    pub(super) pending_sync: HashSet<String>,
    pub(super) next_seq: u64,
}

impl ClassicGroup {
    pub fn new(group_id: &str, now_ms: i64) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: ClassicState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            pending_sync: HashSet::new(),
            next_seq: 0,
        }
    }

    /// A group as written at its last completed rebalance. Its members get
    /// a fresh session to heartbeat in.
    pub fn restore(group_id: &str, s: &ClassicSnapshot, now_ms: i64) -> ClassicGroup {
        let mut g = ClassicGroup::new(group_id, s.state_since_ms);
        g.generation = s.generation;
        g.protocol_type = s.protocol_type.clone();
        g.protocol_name = s.protocol.clone();
        g.leader = s.leader.clone();
        for m in &s.members {
            let seq = g.next_seq;
            g.next_seq += 1;
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                ClassicMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(s.protocol.clone().unwrap_or_default(), m.metadata.clone())],
                    assignment: m.assignment.clone(),
                    joined_seq: seq,
                    awaiting_join: None,
                    awaiting_sync: None,
                    heartbeat_deadline_ms: now_ms + m.session_timeout_ms as i64,
                },
            );
        }
        if !g.members.is_empty() {
            g.state = ClassicState::Stable;
        }
        g
    }

    /// What to write, in the states whose data Kafka persists; None in the
    /// middle of a rebalance (what was written stays).
    pub fn snapshot(&self) -> Option<ClassicSnapshot> {
        if !matches!(self.state, ClassicState::Stable | ClassicState::Empty) {
            return None;
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_by_key(|m| m.joined_seq);
        Some(ClassicSnapshot {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol_name.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            state_since_ms: self.state_since_ms,
            members: members
                .into_iter()
                .map(|m| ClassicMemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.state == ClassicState::Empty
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }

    pub fn next_deadline_ms(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
            .map(|m| m.heartbeat_deadline_ms);
        members
            .chain(self.pending_members.values().copied())
            .chain(self.join_deadline_ms)
            .chain(self.sync_deadline_ms)
            .min()
    }

    /// Replies still owed (joins and syncs waiting for the rebalance).
    pub fn take_waiting(&mut self) -> Vec<ReplyId> {
        let mut out = Vec::new();
        for m in self.members.values_mut() {
            out.extend(m.awaiting_join.take());
            out.extend(m.awaiting_sync.take());
        }
        out
    }

    pub(super) fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports.
    pub(super) fn candidate_protocols(&self) -> Option<HashSet<String>> {
        let mut it = self.members.values();
        let first = it.next()?;
        let mut set: HashSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            let theirs: HashSet<&String> = m.protocols.iter().map(|(n, _)| n).collect();
            set.retain(|n| theirs.contains(n));
        }
        Some(set)
    }

    /// Each member votes for its most preferred candidate; the most votes
    /// win (ties go to the earliest member's preference).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols()?;
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_by_key(|m| m.joined_seq);
        let order: Vec<&str> = members
            .first()
            .map(|m| m.protocols.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default();
        let best = votes.values().copied().max()?;
        order
            .into_iter()
            .find(|n| votes.get(n) == Some(&best))
            .map(str::to_string)
    }

    /// Whether a joining member's protocols fit the group.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols().unwrap_or_default();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Checks a member id and instance id pair (Kafka's static membership
    /// fencing): an instance id that belongs to another member id is fenced.
    pub(super) fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> i16 {
        if let Some(i) = instance_id {
            return match self.static_members.get(i) {
                Some(m) if m == member_id => codes::NONE,
                Some(_) => codes::FENCED_INSTANCE_ID,
                None => codes::UNKNOWN_MEMBER_ID,
            };
        }
        if self.members.contains_key(member_id) {
            codes::NONE
        } else {
            codes::UNKNOWN_MEMBER_ID
        }
    }

    pub fn validate_commit(&mut self, r: &OffsetCommit, now_ms: i64) -> i16 {
        if r.generation_id < 0 && self.state == ClassicState::Empty {
            return codes::NONE;
        }
        if self.state == ClassicState::Empty {
            // A generation for a group with no members: it must rejoin.
            return codes::ILLEGAL_GENERATION;
        }
        let code = self.check_member(&r.member_id, r.group_instance_id.as_deref());
        if code != codes::NONE {
            return code;
        }
        if r.generation_id != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        if self.state == ClassicState::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        // A commit is as good as a heartbeat.
        if let Some(m) = self.members.get_mut(&r.member_id) {
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
        }
        codes::NONE
    }

    /// The topics whose offsets OffsetDelete must keep, as Kafka decides
    /// (validateOffsetDelete, isSubscribedToTopic): none for an empty
    /// group; for a "consumer" protocol group, its members' topics, or
    /// None (every topic) when a subscription cannot be read. A group of
    /// another protocol with members refuses (NON_EMPTY_GROUP): what it
    /// reads is unknown.
    pub fn subscribed_topics(&self) -> Result<Option<HashSet<String>>, i16> {
        if self.state == ClassicState::Empty {
            return Ok(Some(HashSet::new()));
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return Err(codes::NON_EMPTY_GROUP);
        }
        let Some(protocol) = self.protocol_name.clone() else {
            return Ok(None);
        };
        let mut out = HashSet::new();
        for m in self.members.values() {
            match decode_subscription(&m.metadata_for(&protocol)) {
                Some(topics) => out.extend(topics),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    pub fn describe(&self) -> DescribedGroup {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        // Kafka leaves member metadata out until the protocol is chosen.
        let stable = matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance
        );
        let mut members: Vec<&ClassicMember> = self.members.values().collect();
        members.sort_by_key(|m| m.joined_seq);
        DescribedGroup {
            group_id: self.group_id.clone(),
            error: codes::NONE,
            state: self.state_name().to_string(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if self.state == ClassicState::Stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    pub(super) fn set_state(&mut self, state: ClassicState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }
}

/// The topics of a ConsumerProtocolSubscription (an i16 version, then the
/// message). None if the bytes are not one.
fn decode_subscription(bytes: &Bytes) -> Option<Vec<String>> {
    let s = corelog_protocol::consumer_protocol::decode_subscription(bytes).ok()?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

/// Every member in join order, with its metadata for `protocol`: what the
/// leader gets in its JoinGroup response.
pub(super) fn joined_members(g: &ClassicGroup, protocol: &str) -> Vec<JoinedMember> {
    let mut members: Vec<&ClassicMember> = g.members.values().collect();
    members.sort_by_key(|m| m.joined_seq);
    members
        .into_iter()
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata_for(protocol),
        })
        .collect()
}
