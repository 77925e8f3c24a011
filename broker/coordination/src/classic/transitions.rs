//! The classic protocol's transitions, as methods of the coordinator:
//! join, sync, heartbeat, leave, and what the timers trigger.

use std::collections::HashMap;

use bytes::Bytes;

use super::group::{joined_members, ClassicGroup, ClassicMember, ClassicState};
use crate::api::*;
use crate::codes;
use crate::coordinator::{Group, GroupCoordinator, ReplyId};

impl GroupCoordinator {
    fn classic_mut(&mut self, id: &str) -> Option<&mut ClassicGroup> {
        match self.groups.get_mut(id) {
            Some(Group::Classic(g)) => Some(g),
            _ => None,
        }
    }

    pub(crate) fn join(&mut self, reply: ReplyId, r: JoinGroup) {
        let now = self.now_ms;
        if r.group_id.is_empty() {
            return self.reply_join(
                reply,
                JoinResult::error(codes::INVALID_GROUP_ID, &r.member_id),
            );
        }
        if r.session_timeout_ms < self.config.min_session_timeout_ms
            || r.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return self.reply_join(
                reply,
                JoinResult::error(codes::INVALID_SESSION_TIMEOUT, &r.member_id),
            );
        }
        match self.groups.get(&r.group_id) {
            Some(Group::Consumer(_)) => {
                // Moving a group between protocols (KIP-848's online
                // migration) is not implemented.
                return self.reply_join(
                    reply,
                    JoinResult::error(codes::INCONSISTENT_GROUP_PROTOCOL, &r.member_id),
                );
            }
            Some(Group::Classic(_)) => {}
            None => {
                if !r.member_id.is_empty() {
                    return self.reply_join(
                        reply,
                        JoinResult::error(codes::UNKNOWN_MEMBER_ID, &r.member_id),
                    );
                }
                if self.groups_full {
                    return self.reply_join(
                        reply,
                        JoinResult::error(crate::coordinator::GROUPS_FULL, &r.member_id),
                    );
                }
                self.groups.insert(
                    r.group_id.clone(),
                    Group::Classic(ClassicGroup::new(&r.group_id, now)),
                );
            }
        }
        self.touched.insert(r.group_id.clone());
        let g = self.classic_mut(&r.group_id).expect("inserted above");
        if !g.supports(&r.protocol_type, &r.protocols) {
            return self.reply_join(
                reply,
                JoinResult::error(codes::INCONSISTENT_GROUP_PROTOCOL, &r.member_id),
            );
        }
        if r.member_id.is_empty() {
            self.join_unknown_member(reply, r)
        } else {
            self.join_known_member(reply, r)
        }
    }

    fn reply_join(&mut self, reply: ReplyId, result: JoinResult) {
        self.reply(reply, Response::Join(result));
    }

    fn join_unknown_member(&mut self, reply: ReplyId, r: JoinGroup) {
        let now = self.now_ms;
        let new_id = self.member_id(&r.client_id);
        let members_max = self.config.members_max;
        let g = self.classic_mut(&r.group_id).expect("exists");
        if let Some(instance) = r.group_instance_id.clone() {
            if let Some(old_id) = g.static_members.get(&instance).cloned() {
                return self.replace_static_member(reply, r, old_id, new_id);
            }
        }
        if g.members.len() + g.pending_members.len() >= members_max {
            return self.reply_join(reply, JoinResult::error(codes::GROUP_MAX_SIZE_REACHED, ""));
        }
        if r.require_known_member_id && r.group_instance_id.is_none() {
            // KIP-394: the member comes back with this id, so a client that
            // retries a lost response does not leave a ghost member behind.
            g.pending_members
                .insert(new_id.clone(), now + r.session_timeout_ms as i64);
            return self.reply_join(reply, JoinResult::error(codes::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member_and_rebalance(reply, r, new_id);
    }

    fn add_member_and_rebalance(&mut self, reply: ReplyId, r: JoinGroup, member_id: String) {
        let now = self.now_ms;
        let initial_delay_ms = self.config.initial_rebalance_delay_ms as i64;
        let g = self.classic_mut(&r.group_id).expect("exists");
        g.pending_members.remove(&member_id);
        if g.members.is_empty() {
            g.protocol_type = Some(r.protocol_type.clone());
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        if let Some(i) = &r.group_instance_id {
            g.static_members.insert(i.clone(), member_id.clone());
        }
        g.members.insert(
            member_id.clone(),
            ClassicMember {
                member_id: member_id.clone(),
                group_instance_id: r.group_instance_id.clone(),
                client_id: r.client_id.clone(),
                client_host: r.client_host.clone(),
                session_timeout_ms: r.session_timeout_ms,
                rebalance_timeout_ms: r.rebalance_timeout_ms,
                protocols: r.protocols.clone(),
                assignment: Bytes::new(),
                joined_seq: seq,
                awaiting_join: Some(reply),
                awaiting_sync: None,
                heartbeat_deadline_ms: now + r.session_timeout_ms as i64,
            },
        );
        if g.leader.is_none() {
            g.leader = Some(member_id);
        }
        match g.state {
            ClassicState::PreparingRebalance => {
                // Each newcomer during the initial delay extends it, up to
                // the rebalance timeout.
                if let Some(limit) = g.initial_delay {
                    g.join_deadline_ms = Some((now + initial_delay_ms).min(limit));
                }
                self.maybe_complete_join(&r.group_id);
            }
            _ => self.prepare_rebalance(&r.group_id),
        }
    }

    fn replace_static_member(
        &mut self,
        reply: ReplyId,
        r: JoinGroup,
        old_id: String,
        new_id: String,
    ) {
        let now = self.now_ms;
        let g = self.classic_mut(&r.group_id).expect("exists");
        let Some(mut m) = g.members.remove(&old_id) else {
            return self.reply_join(reply, JoinResult::error(codes::UNKNOWN_MEMBER_ID, ""));
        };
        let mut fenced = Vec::new();
        fenced.extend(m.awaiting_join.take().map(|x| {
            (
                x,
                Response::Join(JoinResult::error(codes::FENCED_INSTANCE_ID, &old_id)),
            )
        }));
        fenced.extend(m.awaiting_sync.take().map(|x| {
            (
                x,
                Response::Sync(SyncResult::error(codes::FENCED_INSTANCE_ID)),
            )
        }));
        let protocols_changed = m.protocols != r.protocols;
        m.member_id = new_id.clone();
        m.protocols = r.protocols.clone();
        m.client_id = r.client_id.clone();
        m.client_host = r.client_host.clone();
        m.session_timeout_ms = r.session_timeout_ms;
        m.rebalance_timeout_ms = r.rebalance_timeout_ms;
        m.heartbeat_deadline_ms = now + r.session_timeout_ms as i64;
        let instance = r.group_instance_id.clone().expect("static member");
        g.static_members.insert(instance, new_id.clone());
        if g.pending_sync.remove(&old_id) {
            g.pending_sync.insert(new_id.clone());
        }
        let was_leader = g.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            g.leader = Some(new_id.clone());
        }
        g.members.insert(new_id.clone(), m);
        for (x, resp) in fenced {
            self.reply(x, resp);
        }
        let g = self.classic_mut(&r.group_id).expect("exists");
        match g.state {
            ClassicState::Stable if !protocols_changed => {
                // Static membership's point: a quick restart keeps the
                // assignment, with no rebalance.
                let protocol = g.protocol_name.clone().unwrap_or_default();
                let members = if was_leader {
                    joined_members(g, &protocol)
                } else {
                    Vec::new()
                };
                let result = JoinResult {
                    error: codes::NONE,
                    generation_id: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    leader: g.leader.clone().unwrap_or_default(),
                    skip_assignment: was_leader,
                    member_id: new_id,
                    members,
                };
                self.reply_join(reply, result);
            }
            ClassicState::PreparingRebalance => {
                if let Some(m) = g.members.get_mut(&new_id) {
                    m.awaiting_join = Some(reply);
                }
                self.maybe_complete_join(&r.group_id);
            }
            _ => {
                if let Some(m) = g.members.get_mut(&new_id) {
                    m.awaiting_join = Some(reply);
                }
                self.prepare_rebalance(&r.group_id);
            }
        }
    }

    fn join_known_member(&mut self, reply: ReplyId, r: JoinGroup) {
        let now = self.now_ms;
        let g = self.classic_mut(&r.group_id).expect("exists");
        if g.pending_members.contains_key(&r.member_id) {
            let id = r.member_id.clone();
            return self.add_member_and_rebalance(reply, r, id);
        }
        let code = g.check_member(&r.member_id, r.group_instance_id.as_deref());
        if code != codes::NONE {
            return self.reply_join(reply, JoinResult::error(code, &r.member_id));
        }
        let state = g.state;
        let is_leader = g.leader.as_deref() == Some(r.member_id.as_str());
        let m = g.members.get_mut(&r.member_id).expect("checked");
        let unchanged = m.protocols == r.protocols;
        m.heartbeat_deadline_ms = now + r.session_timeout_ms as i64;
        m.session_timeout_ms = r.session_timeout_ms;
        m.rebalance_timeout_ms = r.rebalance_timeout_ms;
        match state {
            ClassicState::PreparingRebalance => {
                m.protocols = r.protocols;
                if let Some(previous) = m.awaiting_join.replace(reply) {
                    // A retried join replaces the earlier one.
                    self.reply_join(
                        previous,
                        JoinResult::error(codes::REBALANCE_IN_PROGRESS, &r.member_id),
                    );
                }
                self.maybe_complete_join(&r.group_id);
            }
            ClassicState::CompletingRebalance if unchanged => {
                // The member missed the join response: send it again.
                let protocol = g.protocol_name.clone().unwrap_or_default();
                let result = JoinResult {
                    error: codes::NONE,
                    generation_id: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    leader: g.leader.clone().unwrap_or_default(),
                    skip_assignment: false,
                    member_id: r.member_id.clone(),
                    members: if is_leader {
                        joined_members(g, &protocol)
                    } else {
                        Vec::new()
                    },
                };
                self.reply_join(reply, result);
            }
            ClassicState::Stable if unchanged && !is_leader => {
                let result = JoinResult {
                    error: codes::NONE,
                    generation_id: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    leader: g.leader.clone().unwrap_or_default(),
                    skip_assignment: false,
                    member_id: r.member_id.clone(),
                    members: Vec::new(),
                };
                self.reply_join(reply, result);
            }
            ClassicState::Empty => {
                self.reply_join(
                    reply,
                    JoinResult::error(codes::UNKNOWN_MEMBER_ID, &r.member_id),
                );
            }
            _ => {
                // New protocols, or the leader asking for a new assignment.
                m.protocols = r.protocols;
                m.awaiting_join = Some(reply);
                self.prepare_rebalance(&r.group_id);
            }
        }
    }

    /// Starts a rebalance: every member must join again.
    fn prepare_rebalance(&mut self, id: &str) {
        let now = self.now_ms;
        let initial_delay_ms = self.config.initial_rebalance_delay_ms as i64;
        let g = self.classic_mut(id).expect("exists");
        let mut failed = Vec::new();
        if g.state == ClassicState::CompletingRebalance {
            // The assignment being synced is void: those waiting learn so.
            // A member blocked in SyncGroup could not heartbeat: its
            // session starts again with the answer, as in Kafka.
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(x) = m.awaiting_sync.take() {
                    m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
                    failed.push(x);
                }
            }
        }
        g.pending_sync.clear();
        g.sync_deadline_ms = None;
        let timeout = g.rebalance_timeout_ms();
        if g.state == ClassicState::Empty && initial_delay_ms > 0 {
            g.initial_delay = Some(now + timeout);
            g.join_deadline_ms = Some(now + initial_delay_ms.min(timeout));
        } else {
            g.initial_delay = None;
            g.join_deadline_ms = Some(now + timeout);
        }
        g.set_state(ClassicState::PreparingRebalance, now);
        for x in failed {
            self.reply(
                x,
                Response::Sync(SyncResult::error(codes::REBALANCE_IN_PROGRESS)),
            );
        }
        self.maybe_complete_join(id);
    }

    /// Completes the join phase once every member has joined (and no
    /// member id handed out is still expected), unless the initial delay
    /// is still running.
    fn maybe_complete_join(&mut self, id: &str) {
        let Some(g) = self.classic_mut(id) else {
            return;
        };
        if g.state != ClassicState::PreparingRebalance {
            return;
        }
        let all_joined =
            g.members.values().all(|m| m.awaiting_join.is_some()) && g.pending_members.is_empty();
        if g.members.is_empty() || (all_joined && g.initial_delay.is_none()) {
            self.complete_join(id);
        }
    }

    fn complete_join(&mut self, id: &str) {
        let now = self.now_ms;
        let g = self.classic_mut(id).expect("exists");
        // Dynamic members that did not join again are gone; static ones
        // stay (they may come back with their instance id).
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for m in &gone {
            g.members.remove(m);
        }
        g.initial_delay = None;
        if !g.members.is_empty() && g.members.values().all(|m| m.awaiting_join.is_none()) {
            // Only static members that have not rejoined are left: there
            // is no one to lead a generation. Kafka waits another
            // rebalance timeout for them (their sessions still run).
            let timeout = g.rebalance_timeout_ms();
            g.join_deadline_ms = Some(now + timeout.max(1));
            return;
        }
        g.join_deadline_ms = None;
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol_name = None;
            g.protocol_type = None;
            g.leader = None;
            g.set_state(ClassicState::Empty, now);
            return;
        }
        g.protocol_name = g.select_protocol();
        let leader_joined = g
            .leader
            .as_ref()
            .and_then(|l| g.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            g.leader = g
                .members
                .values()
                .filter(|m| m.awaiting_join.is_some())
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.member_id.clone());
        }
        g.set_state(ClassicState::CompletingRebalance, now);
        g.pending_sync = g.members.keys().cloned().collect();
        g.sync_deadline_ms = Some(now + g.rebalance_timeout_ms());
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let all = joined_members(g, &protocol);
        let mut replies = Vec::new();
        let (generation, ptype, pname, leader) = (
            g.generation,
            g.protocol_type.clone(),
            g.protocol_name.clone(),
            g.leader.clone().unwrap_or_default(),
        );
        for m in g.members.values_mut() {
            let Some(x) = m.awaiting_join.take() else {
                continue;
            };
            m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
            let is_leader = m.member_id == leader;
            replies.push((
                x,
                JoinResult {
                    error: codes::NONE,
                    generation_id: generation,
                    protocol_type: ptype.clone(),
                    protocol_name: pname.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: m.member_id.clone(),
                    members: if is_leader { all.clone() } else { Vec::new() },
                },
            ));
        }
        for (x, r) in replies {
            self.reply_join(x, r);
        }
    }

    pub(crate) fn sync(&mut self, reply: ReplyId, r: SyncGroup) {
        let now = self.now_ms;
        self.touched.insert(r.group_id.clone());
        let Some(g) = self.classic_mut(&r.group_id) else {
            return self.reply(
                reply,
                Response::Sync(SyncResult::error(codes::UNKNOWN_MEMBER_ID)),
            );
        };
        let code = g.check_member(&r.member_id, r.group_instance_id.as_deref());
        let code = if code != codes::NONE {
            code
        } else if r.generation_id != g.generation {
            codes::ILLEGAL_GENERATION
        } else if r
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || r.protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != g.protocol_name.as_ref())
        {
            codes::INCONSISTENT_GROUP_PROTOCOL
        } else {
            codes::NONE
        };
        if code != codes::NONE {
            return self.reply(reply, Response::Sync(SyncResult::error(code)));
        }
        match g.state {
            ClassicState::Empty => self.reply(
                reply,
                Response::Sync(SyncResult::error(codes::UNKNOWN_MEMBER_ID)),
            ),
            ClassicState::PreparingRebalance => self.reply(
                reply,
                Response::Sync(SyncResult::error(codes::REBALANCE_IN_PROGRESS)),
            ),
            ClassicState::CompletingRebalance => {
                g.pending_sync.remove(&r.member_id);
                let m = g.members.get_mut(&r.member_id).expect("checked");
                m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
                if let Some(previous) = m.awaiting_sync.replace(reply) {
                    self.reply(
                        previous,
                        Response::Sync(SyncResult::error(codes::REBALANCE_IN_PROGRESS)),
                    );
                }
                let g = self.classic_mut(&r.group_id).expect("exists");
                if g.leader.as_deref() == Some(r.member_id.as_str()) {
                    let given: HashMap<String, Bytes> = r.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.set_state(ClassicState::Stable, now);
                    // Members that have not synced yet get their assignment
                    // when they do, but must do so within the rebalance
                    // timeout (the sync deadline stays).
                    let mut replies = Vec::new();
                    for m in g.members.values_mut() {
                        if let Some(x) = m.awaiting_sync.take() {
                            // It could not heartbeat while it waited: its
                            // session starts again with the answer.
                            m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
                            replies.push((
                                x,
                                SyncResult {
                                    error: codes::NONE,
                                    protocol_type: g.protocol_type.clone(),
                                    protocol_name: g.protocol_name.clone(),
                                    assignment: m.assignment.clone(),
                                },
                            ));
                        }
                    }
                    if g.pending_sync.is_empty() {
                        g.sync_deadline_ms = None;
                    }
                    for (x, s) in replies {
                        self.reply(x, Response::Sync(s));
                    }
                }
            }
            ClassicState::Stable => {
                g.pending_sync.remove(&r.member_id);
                if g.pending_sync.is_empty() {
                    g.sync_deadline_ms = None;
                }
                let m = g.members.get_mut(&r.member_id).expect("checked");
                m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
                let result = SyncResult {
                    error: codes::NONE,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                self.reply(reply, Response::Sync(result));
            }
        }
    }

    pub(crate) fn heartbeat(&mut self, r: Heartbeat) -> i16 {
        let now = self.now_ms;
        let Some(g) = self.classic_mut(&r.group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        let code = g.check_member(&r.member_id, r.group_instance_id.as_deref());
        if code != codes::NONE {
            return code;
        }
        let state = g.state;
        // Kafka checks the generation before the state: a member of an
        // older generation learns that, even while a rebalance is on.
        if state != ClassicState::Empty && r.generation_id != g.generation {
            return codes::ILLEGAL_GENERATION;
        }
        let m = g.members.get_mut(&r.member_id).expect("checked");
        match state {
            ClassicState::Empty => codes::UNKNOWN_MEMBER_ID,
            ClassicState::PreparingRebalance => {
                m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
                codes::REBALANCE_IN_PROGRESS
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                m.heartbeat_deadline_ms = now + m.session_timeout_ms as i64;
                codes::NONE
            }
        }
    }

    pub(crate) fn leave(&mut self, r: LeaveGroup) -> LeaveResult {
        if !matches!(self.groups.get(&r.group_id), Some(Group::Classic(_))) {
            return LeaveResult {
                error: codes::UNKNOWN_MEMBER_ID,
                members: r
                    .members
                    .into_iter()
                    .map(|m| (m.member_id, m.group_instance_id, codes::UNKNOWN_MEMBER_ID))
                    .collect(),
            };
        }
        self.touched.insert(r.group_id.clone());
        let mut out = Vec::new();
        for m in r.members {
            let g = self.classic_mut(&r.group_id).expect("checked");
            let target = match &m.group_instance_id {
                Some(i) => match g.static_members.get(i) {
                    None => Err(codes::UNKNOWN_MEMBER_ID),
                    Some(id) if !m.member_id.is_empty() && *id != m.member_id => {
                        Err(codes::FENCED_INSTANCE_ID)
                    }
                    Some(id) => Ok(id.clone()),
                },
                None if g.pending_members.remove(&m.member_id).is_some() => {
                    out.push((m.member_id, None, codes::NONE));
                    self.maybe_complete_join(&r.group_id);
                    continue;
                }
                None if g.members.contains_key(&m.member_id) => Ok(m.member_id.clone()),
                None => Err(codes::UNKNOWN_MEMBER_ID),
            };
            match target {
                Ok(id) => {
                    self.remove_member(&r.group_id, &id, codes::UNKNOWN_MEMBER_ID);
                    out.push((m.member_id, m.group_instance_id, codes::NONE));
                }
                Err(code) => out.push((m.member_id, m.group_instance_id, code)),
            }
        }
        LeaveResult {
            error: codes::NONE,
            members: out,
        }
    }

    /// Removes a member (it left, or its session expired), answering what
    /// it still waits for with `code`, and rebalances the rest.
    fn remove_member(&mut self, id: &str, member_id: &str, code: i16) {
        let Some(g) = self.classic_mut(id) else {
            return;
        };
        let Some(mut m) = g.members.remove(member_id) else {
            return;
        };
        if let Some(i) = &m.group_instance_id {
            g.static_members.remove(i);
        }
        g.pending_sync.remove(member_id);
        if g.leader.as_deref() == Some(member_id) {
            g.leader = g
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.member_id.clone());
        }
        let state = g.state;
        if let Some(x) = m.awaiting_join.take() {
            self.reply_join(x, JoinResult::error(code, member_id));
        }
        if let Some(x) = m.awaiting_sync.take() {
            self.reply(x, Response::Sync(SyncResult::error(code)));
        }
        match state {
            ClassicState::Stable | ClassicState::CompletingRebalance => self.prepare_rebalance(id),
            ClassicState::PreparingRebalance => self.maybe_complete_join(id),
            ClassicState::Empty => {}
        }
    }

    pub(crate) fn classic_tick(&mut self, id: &str) {
        let now = self.now_ms;
        self.touched.insert(id.to_string());
        let Some(g) = self.classic_mut(id) else {
            return;
        };
        g.pending_members.retain(|_, deadline| *deadline > now);
        if g.join_deadline_ms.is_some_and(|d| d <= now) {
            // The wait is over: whoever has joined makes the generation.
            self.complete_join(id);
        }
        let Some(g) = self.classic_mut(id) else {
            return;
        };
        if g.sync_deadline_ms.is_some_and(|d| d <= now) {
            g.sync_deadline_ms = None;
            let late: Vec<String> = g.pending_sync.drain().collect();
            for m in late {
                self.remove_member(id, &m, codes::REBALANCE_IN_PROGRESS);
            }
        }
        let Some(g) = self.classic_mut(id) else {
            return;
        };
        let expired: Vec<String> = g
            .members
            .values()
            .filter(|m| {
                m.awaiting_join.is_none()
                    && m.awaiting_sync.is_none()
                    && m.heartbeat_deadline_ms <= now
            })
            .map(|m| m.member_id.clone())
            .collect();
        for m in expired {
            tracing::info!(group = id, member = %m, "member removed: session timed out");
            self.remove_member(id, &m, codes::UNKNOWN_MEMBER_ID);
        }
        // Pending members expiring may let a join complete.
        self.maybe_complete_join(id);
    }
}
