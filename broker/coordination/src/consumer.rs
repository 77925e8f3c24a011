//! KIP-848 consumer groups: members heartbeat with ConsumerGroupHeartbeat,
//! the coordinator computes the target assignment (server-side assignor)
//! and walks each member to it. A partition moves only after its previous
//! owner has confirmed it let go, so no partition ever has two owners.
//!
//! Epochs: the group epoch counts changes of membership, subscriptions and
//! topic metadata; the assignment epoch is the group epoch the target was
//! computed at; a member's epoch reaches the assignment epoch once it holds
//! nothing it must give up.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::api::*;
use crate::assignor::{self, MemberSpec};
use crate::codes;
use crate::coordinator::{Group, GroupCoordinator};
use crate::records::{ConsumerMemberSnapshot, ConsumerSnapshot};

pub(crate) struct ConsumerMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Partitions the member may consume now.
    pub assigned: Assignment,
    /// Partitions it must give up before others may have them.
    pub revoking: Assignment,
    session_deadline_ms: i64,
    revoke_deadline_ms: Option<i64>,
    /// The member has not yet been told its current assignment.
    assignment_unsent: bool,
}

pub(crate) struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub state_since_ms: i64,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics' metadata the target was computed from.
    topics_seen: Vec<(String, uuid::Uuid, u32)>,
}

fn contains(a: &Assignment, t: &uuid::Uuid, p: i32) -> bool {
    a.get(t).is_some_and(|ps| ps.contains(&p))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: Vec<i32> = ps.iter().copied().filter(|p| !contains(b, t, *p)).collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let both: Vec<i32> = ps.iter().copied().filter(|p| contains(b, t, *p)).collect();
        if !both.is_empty() {
            out.insert(*t, both);
        }
    }
    out
}

fn union(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = a.clone();
    for (t, ps) in b {
        let e = out.entry(*t).or_default();
        for p in ps {
            if !e.contains(p) {
                e.push(*p);
            }
        }
        e.sort_unstable();
    }
    out
}

impl ConsumerGroup {
    pub fn new(group_id: &str, now_ms: i64) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: assignor::UNIFORM.to_string(),
            state_since_ms: now_ms,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics_seen: Vec::new(),
        }
    }

    pub fn restore(
        group_id: &str,
        s: &ConsumerSnapshot,
        now_ms: i64,
        session_timeout_ms: i32,
    ) -> ConsumerGroup {
        let mut g = ConsumerGroup::new(group_id, s.state_since_ms);
        g.group_epoch = s.group_epoch;
        g.assignment_epoch = s.assignment_epoch;
        g.assignor = s.assignor.clone();
        g.target = s.target.clone();
        for m in &s.members {
            g.members.insert(
                m.member_id.clone(),
                ConsumerMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    server_assignor: m.server_assignor.clone(),
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    assigned: m.assigned.clone(),
                    revoking: m.revoking.clone(),
                    session_deadline_ms: now_ms + session_timeout_ms as i64,
                    revoke_deadline_ms: (!m.revoking.is_empty())
                        .then_some(now_ms + m.rebalance_timeout_ms as i64),
                    assignment_unsent: false,
                },
            );
        }
        g
    }

    pub fn snapshot(&self) -> ConsumerSnapshot {
        ConsumerSnapshot {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            state_since_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    server_assignor: m.server_assignor.clone(),
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    assigned: m.assigned.clone(),
                    revoking: m.revoking.clone(),
                })
                .collect(),
            target: self.target.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.session_deadline_ms).chain(m.revoke_deadline_ms))
            .min()
    }

    /// Topic names the members subscribe to (names and regex matches).
    pub fn subscribed_topics(&self, topics: &TopicsView) -> HashSet<String> {
        let mut out = HashSet::new();
        for m in self.members.values() {
            out.extend(resolve(m, topics).into_iter().map(|(n, _)| n));
        }
        out
    }

    pub fn validate_commit(&self, r: &OffsetCommit) -> i16 {
        if r.member_id.is_empty() && r.generation_id < 0 {
            return if self.members.is_empty() {
                codes::NONE
            } else {
                codes::UNKNOWN_MEMBER_ID
            };
        }
        let Some(m) = self.members.get(&r.member_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if r.generation_id > m.member_epoch {
            return codes::FENCED_MEMBER_EPOCH;
        }
        if r.generation_id < m.member_epoch {
            return codes::STALE_MEMBER_EPOCH;
        }
        codes::NONE
    }

    pub fn validate_fetch(&self, member_id: &str, epoch: i32) -> i16 {
        match self.members.get(member_id) {
            None => codes::UNKNOWN_MEMBER_ID,
            Some(m) if m.member_epoch != epoch => codes::STALE_MEMBER_EPOCH,
            Some(_) => codes::NONE,
        }
    }

    fn owned_elsewhere(&self, member_id: &str, t: &uuid::Uuid, p: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != member_id && (contains(&m.assigned, t, p) || contains(&m.revoking, t, p))
        })
    }

    /// Recomputes the target assignment at the current group epoch.
    fn compute_target(&mut self, topics: &TopicsView) {
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .map(|m| MemberSpec {
                member_id: m.member_id.clone(),
                topics: resolve(m, topics).into_iter().map(|(_, id)| id).collect(),
                current: union(&m.assigned, &m.revoking),
            })
            .collect();
        let partitions = topics.values().map(|t| (t.id, t.partitions)).collect();
        // The group uses the assignor most members ask for (Kafka's rule),
        // the default when none asks.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        if let Some((name, _)) = votes
            .iter()
            .max_by_key(|(n, c)| (**c, std::cmp::Reverse(**n)))
        {
            self.assignor = name.to_string();
        }
        self.target = assignor::assign(&self.assignor, &specs, &partitions);
        self.assignment_epoch = self.group_epoch;
        self.topics_seen = self.fingerprint(topics);
    }

    fn fingerprint(&self, topics: &TopicsView) -> Vec<(String, uuid::Uuid, u32)> {
        let mut names: BTreeSet<(String, uuid::Uuid)> = BTreeSet::new();
        for m in self.members.values() {
            names.extend(resolve(m, topics));
        }
        names
            .into_iter()
            .map(|(n, id)| {
                let parts = topics.get(&n).map_or(0, |t| t.partitions);
                (n, id, parts)
            })
            .collect()
    }

    /// Moves a member toward its target; returns whether what it may
    /// consume changed.
    fn reconcile(&mut self, member_id: &str, now_ms: i64) -> bool {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get(member_id) else {
            return false;
        };
        if !m.revoking.is_empty() {
            // Waits for the member to confirm it let go.
            return false;
        }
        let before = m.assigned.clone();
        let to_revoke = minus(&m.assigned, &target);
        if !to_revoke.is_empty() {
            let keep = intersect(&m.assigned, &target);
            let m = self.members.get_mut(member_id).expect("exists");
            m.assigned = keep;
            m.revoking = to_revoke;
            m.revoke_deadline_ms = Some(now_ms + m.rebalance_timeout_ms as i64);
            return true;
        }
        // Nothing to give up: take what is free of the target.
        let mut grant = before.clone();
        for (t, ps) in &target {
            for p in ps {
                if !contains(&grant, t, *p) && !self.owned_elsewhere(member_id, t, *p) {
                    grant.entry(*t).or_default().push(*p);
                }
            }
        }
        for ps in grant.values_mut() {
            ps.sort_unstable();
        }
        let m = self.members.get_mut(member_id).expect("exists");
        if m.member_epoch != assignment_epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = assignment_epoch;
        }
        let changed = grant != before;
        m.assigned = grant;
        changed
    }

    pub fn describe(&self) -> DescribedConsumerGroup {
        DescribedConsumerGroup {
            group_id: self.group_id.clone(),
            error: codes::NONE,
            error_message: None,
            state: self.state_name().to_string(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| DescribedConsumerMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// The existing topics a member subscribes to, by name and by regex.
fn resolve(m: &ConsumerMember, topics: &TopicsView) -> Vec<(String, uuid::Uuid)> {
    let mut out: Vec<(String, uuid::Uuid)> = m
        .subscribed_topic_names
        .iter()
        .filter_map(|n| topics.get(n).map(|t| (n.clone(), t.id)))
        .collect();
    if let Some(re) = m
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        if let Ok(re) = regex::Regex::new(&format!("^(?:{re})$")) {
            for (n, t) in topics {
                if re.is_match(n) && !out.iter().any(|(x, _)| x == n) {
                    out.push((n.clone(), t.id));
                }
            }
        }
    }
    out
}

impl GroupCoordinator {
    pub(crate) fn consumer_heartbeat(&mut self, r: ConsumerHeartbeat) -> ConsumerHeartbeatResult {
        let now = self.now_ms;
        if r.group_id.is_empty() {
            return ConsumerHeartbeatResult::error(codes::INVALID_GROUP_ID, "empty group id");
        }
        // The request is checked before any group is created or changed,
        // as Kafka does (throwIfConsumerGroupHeartbeatRequestIsInvalid).
        if r.member_epoch == 0
            && r.subscribed_topic_names.is_none()
            && r.subscribed_topic_regex.is_none()
        {
            return ConsumerHeartbeatResult::error(
                codes::INVALID_REQUEST,
                "a joining member must give its subscriptions",
            );
        }
        if let Some(re) = r
            .subscribed_topic_regex
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            if let Err(e) = regex::Regex::new(re) {
                return ConsumerHeartbeatResult::error(
                    codes::INVALID_REGULAR_EXPRESSION,
                    e.to_string(),
                );
            }
        }
        if let Some(a) = &r.server_assignor {
            if !assignor::ASSIGNORS.contains(&a.as_str()) {
                return ConsumerHeartbeatResult::error(
                    codes::UNSUPPORTED_ASSIGNOR,
                    format!(
                        "assignor {a} is not supported; use one of {:?}",
                        assignor::ASSIGNORS
                    ),
                );
            }
        }
        match self.groups.get(&r.group_id) {
            Some(Group::Classic(c)) if !c.is_empty() => {
                return ConsumerHeartbeatResult::error(
                    codes::GROUP_ID_NOT_FOUND,
                    format!("group {} is a classic group with members", r.group_id),
                );
            }
            Some(Group::Classic(_)) | None => {
                if r.member_epoch != 0 {
                    return ConsumerHeartbeatResult::error(
                        codes::UNKNOWN_MEMBER_ID,
                        "the group has no such member",
                    );
                }
                // An empty classic group becoming a consumer group is no
                // new group; only a group id never seen counts.
                if self.groups_full && !self.groups.contains_key(&r.group_id) {
                    return ConsumerHeartbeatResult::error(
                        crate::coordinator::GROUPS_FULL,
                        crate::coordinator::GROUPS_FULL_MESSAGE,
                    );
                }
                // An empty classic group (say, offsets committed by a simple
                // consumer) becomes a consumer group, keeping its offsets.
                self.groups.insert(
                    r.group_id.clone(),
                    Group::Consumer(ConsumerGroup::new(&r.group_id, now)),
                );
            }
            Some(Group::Consumer(_)) => {}
        }
        self.touched.insert(r.group_id.clone());
        let session_ms = self.config.consumer_session_timeout_ms as i64;
        let interval_ms = self.config.consumer_heartbeat_interval_ms;
        let members_max = self.config.members_max;
        let topics = self.topics.clone();
        let generated = crate::rng::uuid(&mut self.rng);
        let Some(Group::Consumer(g)) = self.groups.get_mut(&r.group_id) else {
            unreachable!("inserted above");
        };
        let leaving = r.member_epoch < 0;
        let mut member_id = r.member_id.clone();
        if leaving {
            if g.members.remove(&member_id).is_none() {
                return ConsumerHeartbeatResult::error(codes::UNKNOWN_MEMBER_ID, "no such member");
            }
            g.target.remove(&member_id);
            g.group_epoch += 1;
            if g.members.is_empty() {
                g.state_since_ms = now;
            }
            g.compute_target(&topics);
            return ConsumerHeartbeatResult {
                error: codes::NONE,
                error_message: None,
                member_id,
                member_epoch: r.member_epoch,
                heartbeat_interval_ms: interval_ms,
                assignment: None,
            };
        }
        let mut changed = false;
        if r.member_epoch == 0 {
            if member_id.is_empty() {
                member_id = generated;
            }
            if let Some(instance) = &r.group_instance_id {
                let holder = g
                    .members
                    .values()
                    .find(|m| {
                        m.group_instance_id.as_ref() == Some(instance) && m.member_id != member_id
                    })
                    .map(|m| m.member_id.clone());
                if let Some(old) = holder {
                    // The instance restarted: its predecessor goes.
                    g.members.remove(&old);
                    g.target.remove(&old);
                }
            }
            if g.members.remove(&member_id).is_some() {
                // A member joining again starts over, owning nothing.
                g.target.remove(&member_id);
            } else if g.members.len() >= members_max {
                return ConsumerHeartbeatResult::error(
                    codes::GROUP_MAX_SIZE_REACHED,
                    // Named as the broker's config file names it.
                    format!(
                        "groups.members_max (group.max.size) is {members_max}: the group is full"
                    ),
                );
            }
            if g.members.is_empty() {
                g.state_since_ms = now;
            }
            g.members.insert(
                member_id.clone(),
                ConsumerMember {
                    member_id: member_id.clone(),
                    group_instance_id: r.group_instance_id.clone(),
                    rack_id: r.rack_id.clone(),
                    client_id: r.client_id.clone(),
                    client_host: r.client_host.clone(),
                    rebalance_timeout_ms: r.rebalance_timeout_ms.max(0),
                    subscribed_topic_names: r.subscribed_topic_names.clone().unwrap_or_default(),
                    subscribed_topic_regex: r
                        .subscribed_topic_regex
                        .clone()
                        .filter(|s| !s.is_empty()),
                    server_assignor: r.server_assignor.clone(),
                    member_epoch: 0,
                    previous_member_epoch: -1,
                    assigned: Assignment::new(),
                    revoking: Assignment::new(),
                    session_deadline_ms: now + session_ms,
                    revoke_deadline_ms: None,
                    assignment_unsent: true,
                },
            );
            changed = true;
        } else {
            let Some(m) = g.members.get_mut(&member_id) else {
                return ConsumerHeartbeatResult::error(codes::UNKNOWN_MEMBER_ID, "no such member");
            };
            let owned_fits = r
                .owned
                .as_ref()
                .is_none_or(|o| minus(o, &m.assigned).is_empty());
            let epoch_ok = r.member_epoch == m.member_epoch
                || (r.member_epoch == m.previous_member_epoch && owned_fits);
            if !epoch_ok {
                return ConsumerHeartbeatResult::error(
                    codes::FENCED_MEMBER_EPOCH,
                    format!(
                        "member epoch {} is not the member's current epoch {}",
                        r.member_epoch, m.member_epoch
                    ),
                );
            }
            // A full request (every field set) is what a client sends
            // after an error, a lost answer among them: it gets the whole
            // assignment again, as in Kafka. So does a member one epoch
            // behind, which missed our last answer.
            let full = r.rebalance_timeout_ms != -1
                && (r.subscribed_topic_names.is_some() || r.subscribed_topic_regex.is_some())
                && r.owned.is_some();
            if full || r.member_epoch != m.member_epoch {
                m.assignment_unsent = true;
            }
            m.session_deadline_ms = now + session_ms;
            if let Some(names) = &r.subscribed_topic_names {
                if *names != m.subscribed_topic_names {
                    m.subscribed_topic_names = names.clone();
                    changed = true;
                }
            }
            if let Some(re) = &r.subscribed_topic_regex {
                let re = Some(re.clone()).filter(|s| !s.is_empty());
                if re != m.subscribed_topic_regex {
                    m.subscribed_topic_regex = re;
                    changed = true;
                }
            }
            if r.server_assignor.is_some() && r.server_assignor != m.server_assignor {
                m.server_assignor = r.server_assignor.clone();
                changed = true;
            }
            if r.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = r.rebalance_timeout_ms;
            }
            // The member says what it still owns: revoked partitions it
            // no longer lists are released.
            if let Some(owned) = &r.owned {
                if !m.revoking.is_empty() && intersect(owned, &m.revoking).is_empty() {
                    m.revoking.clear();
                    m.revoke_deadline_ms = None;
                }
            }
        }
        if changed || g.fingerprint(&topics) != g.topics_seen {
            g.group_epoch += 1;
        }
        if g.group_epoch > g.assignment_epoch {
            g.compute_target(&topics);
        }
        let moved = g.reconcile(&member_id, now);
        let m = g.members.get_mut(&member_id).expect("member exists");
        let send = moved || m.assignment_unsent;
        m.assignment_unsent = false;
        ConsumerHeartbeatResult {
            error: codes::NONE,
            error_message: None,
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: interval_ms,
            assignment: send.then(|| m.assigned.clone()),
        }
    }

    pub(crate) fn consumer_describe(&self, id: &str) -> DescribedConsumerGroup {
        match self.groups.get(id) {
            Some(Group::Consumer(g)) => g.describe(),
            Some(Group::Classic(_)) => DescribedConsumerGroup {
                group_id: id.to_string(),
                error: codes::GROUP_ID_NOT_FOUND,
                error_message: Some(format!("group {id} is not a consumer group")),
                state: "Dead".into(),
                group_epoch: -1,
                assignment_epoch: -1,
                assignor: String::new(),
                members: Vec::new(),
            },
            None => DescribedConsumerGroup {
                group_id: id.to_string(),
                error: codes::GROUP_ID_NOT_FOUND,
                error_message: Some(format!("group {id} not found")),
                state: "Dead".into(),
                group_epoch: -1,
                assignment_epoch: -1,
                assignor: String::new(),
                members: Vec::new(),
            },
        }
    }

    pub(crate) fn consumer_tick(&mut self, id: &str) {
        let now = self.now_ms;
        let topics = self.topics.clone();
        let Some(Group::Consumer(g)) = self.groups.get_mut(id) else {
            return;
        };
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| {
                m.session_deadline_ms <= now || m.revoke_deadline_ms.is_some_and(|d| d <= now)
            })
            .map(|m| m.member_id.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        self.touched.insert(id.to_string());
        for m in &gone {
            tracing::info!(group = id, member = %m, "consumer group member removed: session or revocation timed out");
            g.members.remove(m);
            g.target.remove(m);
        }
        g.group_epoch += 1;
        if g.members.is_empty() {
            g.state_since_ms = now;
        }
        g.compute_target(&topics);
    }
}
