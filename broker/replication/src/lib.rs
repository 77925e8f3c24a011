//! Partition replication, the leader's side (issue 18, first increment):
//! which replicas are in sync, and how far the high watermark may go, as
//! a sans-io state machine (`step(now, input) -> outputs`), like
//! `corelog-coordination` and `corelog-controller`.
//!
//! One [`Leader`] per partition this broker leads, on the shard that owns
//! the partition. The host feeds it the leader's own log positions, each
//! follower's fetch, the time, and the controller's answers to the ISR
//! changes it proposed; it answers with high-watermark advances and ISR
//! proposals (Kafka's AlterPartition, fenced by the partition epoch).
//!
//! # Durability contract
//!
//! - **A follower counts only for what it holds on disk.** A follower's
//!   fetch reports the end of what it has made durable (fdatasync'd); only
//!   that counts toward the high watermark. So `acks=all` means "on disk on
//!   every in-sync replica".
//! - **The high watermark is the least durable end over the leader and
//!   the in-sync replicas**, and it advances only while the ISR has at
//!   least `min_insync_replicas` members. It never goes back.
//! - **Invariant: every member of the ISR, and of an ISR change still in
//!   flight, holds every offset below the high watermark on disk.** So a
//!   leader elected from the ISR loses nothing a client was told is
//!   committed. While an expansion is in flight the new member counts as in
//!   sync already (Kafka's "maximal ISR", KIP-497); while a shrink is in
//!   flight the leaving member still counts. The proptest in
//!   `tests/leader.rs` checks this after every step.
//! - **ISR changes go through the controller.** The leader proposes one
//!   change at a time with the partition epoch it knows; only the
//!   controller's committed answer changes the ISR here. A change whose
//!   fate is unknown (no answer) stays in flight until a newer partition
//!   epoch settles it: the controller may have applied it, and a member it
//!   added may be elected. (The seeded simulation `tests/sim.rs` found
//!   the loss when a lost answer cleared the change.)
//!
//! Kafka's rules for membership:
//! - A follower is caught up when its fetch reaches the leader's log end
//!   as of that fetch, or the log end as of its previous fetch (so a
//!   follower that keeps fetching under a steady stream of appends is not
//!   dropped); one not caught up for `replica_lag_time_max_ms` leaves the
//!   ISR.
//! - A follower outside the ISR joins once it holds the high watermark and
//!   the start of the leader's epoch on disk.
//!
//! Architecture invariant: nothing here touches glommio, storage, the
//! network or a clock; time comes in as `now` (milliseconds).

use std::collections::BTreeMap;

use corelog_model::{NodeId, Offset};

pub mod epochs;
pub mod follower;

/// How the leader judges its followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// Kafka's `replica.lag.time.max.ms` (30 s by default).
    pub replica_lag_time_max_ms: u64,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
        }
    }
}

/// What the host tells the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The leader's own log: appended below `end`, durable below `durable`.
    LeaderLog { end: Offset, durable: Offset },
    /// A follower fetched, holding everything below `durable` on disk.
    FollowerFetch { follower: NodeId, durable: Offset },
    /// Only the time passing (lagging followers leave the ISR).
    Tick,
    /// The controller committed an ISR for this partition at
    /// `partition_epoch`: its answer to the proposal, or the metadata as
    /// the host learned it. One at or below the partition epoch this
    /// leader knows, while a change is in flight, says nothing about that
    /// change (a view from before it was applied) and leaves it in flight.
    IsrCommitted {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// The controller refused the proposal of `isr` at `partition_epoch`
    /// and provably did not apply it (it checked the request at the
    /// partition epoch this leader knows: an ineligible replica, say). The
    /// leader may propose again. An answer about another proposal than the
    /// one in flight (the host may deliver it late) changes nothing.
    IsrRefused {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// The proposal's fate is unknown: no answer came (a timeout, a lost
    /// connection, a controller that stepped down), or a refusal that a
    /// commit of this very proposal could explain (a stale partition
    /// epoch, after a retry). The change stays in flight, so its members
    /// keep counting for the high watermark, and is proposed again; a
    /// newer partition epoch (an answer, or the metadata) settles it.
    /// About the proposal of `isr` at `partition_epoch`, like
    /// [`Input::IsrRefused`].
    IsrUnknown {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// The topic's `min.insync.replicas` changed. The host gives it before
    /// any ISR it learned from the same metadata, and learns ISRs only from
    /// the metadata: the controller counts the eligible leader replicas
    /// (KIP-966) with the value committed when an ISR shrinks, so a leader
    /// that took that ISR with an older, lower value could advance the high
    /// watermark past a replica the controller may elect.
    MinInsyncReplicas(usize),
}

/// What the leader asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The high watermark advanced to this offset: consumers may read
    /// below it, and `acks=all` produce below it may be answered.
    HighWatermark(Offset),
    /// Ask the controller to make `isr` the partition's ISR, if the
    /// partition is still at `partition_epoch` (AlterPartition).
    ProposeIsr {
        isr: Vec<NodeId>,
        partition_epoch: i32,
    },
}

/// What a new leader starts from: the partition as the controller
/// described it, and its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub replicas: Vec<NodeId>,
    /// The committed ISR, the leader included.
    pub isr: Vec<NodeId>,
    pub partition_epoch: i32,
    /// The leader's log end: the first offset of its epoch.
    pub log_end: Offset,
    pub log_durable: Offset,
    /// The high watermark the leader knows.
    pub high_watermark: Offset,
}

#[derive(Debug, Clone)]
struct Follower {
    /// Whether it has fetched since this leader took over: until then what
    /// it holds is unknown, and it cannot join the ISR.
    fetched: bool,
    durable: Offset,
    last_caught_up_ms: u64,
    /// The leader's log end at this follower's previous fetch, and when.
    last_fetch_leader_end: Offset,
    last_fetch_ms: u64,
}

/// The leader's view of one partition's replicas.
///
/// Lives on: the shard that owns the partition, on the broker that leads it.
#[derive(Debug, Clone)]
pub struct Leader {
    me: NodeId,
    config: ReplicationConfig,
    /// Offsets from here were written in this leader's epoch.
    epoch_start: Offset,
    log_end: Offset,
    log_durable: Offset,
    followers: BTreeMap<NodeId, Follower>,
    /// The ISR the controller committed, the leader included.
    isr: Vec<NodeId>,
    partition_epoch: i32,
    /// The change in flight, if any: the ISR proposed.
    pending: Option<Vec<NodeId>>,
    high_watermark: Offset,
}

impl Leader {
    /// A leader that took over at `now` (see [`Takeover`]). Followers
    /// start as caught up at `now`, as in Kafka, so none is dropped before
    /// it could fetch.
    pub fn new(me: NodeId, start: Takeover, config: ReplicationConfig, now: u64) -> Leader {
        let followers = start
            .replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                (
                    *r,
                    Follower {
                        fetched: false,
                        durable: Offset(0),
                        last_caught_up_ms: now,
                        last_fetch_leader_end: Offset(0),
                        last_fetch_ms: now,
                    },
                )
            })
            .collect();
        Leader {
            me,
            config,
            epoch_start: start.log_end,
            log_end: start.log_end,
            log_durable: start.log_durable.min(start.log_end),
            followers,
            isr: start.isr,
            partition_epoch: start.partition_epoch,
            pending: None,
            high_watermark: start.high_watermark,
        }
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The leader's own node id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The ISR the controller committed.
    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// The ISR change in flight, if any.
    pub fn pending_isr(&self) -> Option<&[NodeId]> {
        self.pending.as_deref()
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The topic's `min.insync.replicas`, as this leader applies it.
    pub fn min_insync_replicas(&self) -> usize {
        self.config.min_insync_replicas
    }

    /// Whether a produce with `acks=all` is taken now: the ISR has at
    /// least `min_insync_replicas` members. Otherwise the answer is
    /// NOT_ENOUGH_REPLICAS, as in Kafka.
    pub fn accepts_acks_all(&self) -> bool {
        self.isr.len() >= self.config.min_insync_replicas
    }

    /// The members whose durable ends bound the high watermark: the
    /// committed ISR and any member a change in flight adds.
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut m = self.isr.clone();
        if let Some(p) = &self.pending {
            for n in p {
                if !m.contains(n) {
                    m.push(*n);
                }
            }
        }
        m
    }

    /// What follower `n` holds on disk, as its last fetch said (the
    /// leader's own durable end for the leader).
    pub fn durable_of(&self, n: NodeId) -> Option<Offset> {
        if n == self.me {
            return Some(self.log_durable);
        }
        self.followers.get(&n).map(|f| f.durable)
    }

    pub fn step(&mut self, now: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::LeaderLog { end, durable } => {
                self.log_end = self.log_end.max(end);
                self.log_durable = self.log_durable.max(durable.min(self.log_end));
            }
            Input::FollowerFetch { follower, durable } => {
                let leader_end = self.log_end;
                let Some(f) = self.followers.get_mut(&follower) else {
                    // Not a replica of this partition: nothing it says counts.
                    return out;
                };
                // A follower's durable end only moves forward here; one
                // that reports less (after a truncation) is behind and
                // earns no credit for what it no longer holds.
                let durable = durable.min(leader_end);
                if durable >= leader_end {
                    f.last_caught_up_ms = now;
                } else if durable >= f.last_fetch_leader_end {
                    f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
                }
                f.durable = durable;
                f.fetched = true;
                f.last_fetch_leader_end = leader_end;
                f.last_fetch_ms = now;
            }
            Input::Tick => {}
            Input::MinInsyncReplicas(n) => self.config.min_insync_replicas = n,
            Input::IsrCommitted {
                isr,
                partition_epoch,
            } => {
                if partition_epoch > self.partition_epoch {
                    self.isr = isr;
                    self.partition_epoch = partition_epoch;
                    self.pending = None;
                } else if partition_epoch == self.partition_epoch && self.pending.is_none() {
                    self.isr = isr;
                }
                // Otherwise a view from before the change in flight: the
                // controller may have applied the change since, so clearing
                // it here could drop a member the controller counts in the
                // ISR (and may elect) from the high watermark's bound.
            }
            Input::IsrRefused {
                isr,
                partition_epoch,
            } => {
                if self.in_flight(&isr, partition_epoch) {
                    self.pending = None;
                }
            }
            Input::IsrUnknown {
                isr,
                partition_epoch,
            } => {
                if self.in_flight(&isr, partition_epoch) {
                    out.push(Output::ProposeIsr {
                        isr,
                        partition_epoch,
                    });
                }
            }
        }
        self.advance(&mut out);
        self.membership(now, &mut out);
        out
    }

    /// Whether the change in flight is the proposal of `isr` at
    /// `partition_epoch`.
    fn in_flight(&self, isr: &[NodeId], partition_epoch: i32) -> bool {
        self.pending.as_deref() == Some(isr) && self.partition_epoch == partition_epoch
    }

    fn advance(&mut self, out: &mut Vec<Output>) {
        if self.isr.len() < self.config.min_insync_replicas {
            return;
        }
        let mut hw = self.log_durable;
        for n in self.maximal_isr() {
            match self.durable_of(n) {
                Some(d) => hw = hw.min(d),
                // A member that is not a replica here cannot vouch for
                // anything: hold the high watermark where it is.
                None => return,
            }
        }
        if hw > self.high_watermark {
            self.high_watermark = hw;
            out.push(Output::HighWatermark(hw));
        }
    }

    /// Proposes the next ISR change, if none is in flight: first drop
    /// members that lag, then add followers that caught up.
    fn membership(&mut self, now: u64, out: &mut Vec<Output>) {
        if self.pending.is_some() {
            return;
        }
        let lag_max = self.config.replica_lag_time_max_ms;
        let lagging: Vec<NodeId> = self
            .isr
            .iter()
            .filter(|n| **n != self.me)
            .filter(|n| {
                // Kafka's rule: out of sync when not at the log end and
                // not caught up for the lag time.
                self.followers.get(n).is_none_or(|f| {
                    f.durable != self.log_end && now.saturating_sub(f.last_caught_up_ms) > lag_max
                })
            })
            .copied()
            .collect();
        let proposal = if !lagging.is_empty() {
            Some(
                self.isr
                    .iter()
                    .filter(|n| !lagging.contains(n))
                    .copied()
                    .collect::<Vec<_>>(),
            )
        } else {
            let joining: Vec<NodeId> = self
                .followers
                .iter()
                .filter(|(n, _)| !self.isr.contains(n))
                .filter(|(_, f)| {
                    f.fetched && f.durable >= self.high_watermark && f.durable >= self.epoch_start
                })
                .map(|(n, _)| *n)
                .collect();
            (!joining.is_empty()).then(|| {
                let mut isr = self.isr.clone();
                isr.extend(joining);
                isr
            })
        };
        if let Some(isr) = proposal {
            self.pending = Some(isr.clone());
            out.push(Output::ProposeIsr {
                isr,
                partition_epoch: self.partition_epoch,
            });
        }
    }
}
