//! The follower's side of a partition: find where its log diverges from
//! the leader's, cut it there, then fetch, make durable and report.
//!
//! Lives on: the shard that owns the partition, on a broker that follows
//! it. The host sends what [`Output`] asks (OffsetForLeaderEpoch and Fetch
//! requests to the leader), applies truncations and appends to the log,
//! and feeds back the answers and the log's durable end.
//!
//! Contract:
//! - **Nothing is fetched before the truncation is done.** A follower that
//!   becomes one (a new leader, a restart) first asks the leader for the end
//!   of its latest epoch and cuts its log as [`crate::epochs::divergence_point`]
//!   says, as often as it says, so the log is a prefix of the leader's before
//!   anything new is appended to it.
//! - **A fetch reports the durable end**, not the appended one, so the
//!   leader counts only what is on disk here ([`crate::Leader`]).
//! - **A newer leader epoch starts over.** Answers to requests of an older
//!   epoch are dropped.

use corelog_model::{LeaderEpoch, NodeId, Offset};

use crate::epochs::{divergence_point, EpochCache};

/// What the host tells the follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The controller made `leader` the leader at `leader_epoch`.
    Leader {
        leader: NodeId,
        leader_epoch: LeaderEpoch,
    },
    /// The leader's answer to the OffsetForLeaderEpoch sent at
    /// `leader_epoch`: its largest epoch at or below the one asked, and
    /// where that epoch ends in its log.
    EpochAnswer {
        leader_epoch: LeaderEpoch,
        answer: (LeaderEpoch, Offset),
    },
    /// A fetch sent at `leader_epoch` returned batches that the host
    /// appended: the log now ends at `end`; `epochs` are the `(epoch,
    /// first offset)` of the appended batches where the epoch changes; the
    /// leader's high watermark came with them.
    Fetched {
        leader_epoch: LeaderEpoch,
        end: Offset,
        epochs: Vec<(LeaderEpoch, Offset)>,
        leader_high_watermark: Offset,
    },
    /// The log is durable (fdatasync'd) below this offset.
    Durable(Offset),
    /// A request failed (timeout, connection); ask again.
    Failed,
}

/// What the follower asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send OffsetForLeaderEpoch for `epoch` to the leader.
    AskEpoch {
        leader: NodeId,
        leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    },
    /// Cut the log: keep everything below `to`.
    Truncate { to: Offset },
    /// Fetch from `offset`, telling the leader that everything below
    /// `durable` is on disk here.
    Fetch {
        leader: NodeId,
        leader_epoch: LeaderEpoch,
        offset: Offset,
        durable: Offset,
    },
    /// The follower's high watermark moved: the leader's, bounded by what
    /// this log holds.
    HighWatermark(Offset),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No leader known.
    Idle,
    /// Waiting for the answer about this epoch.
    Truncating,
    /// A fetch is out.
    Fetching,
}

/// A follower of one partition.
#[derive(Debug, Clone)]
pub struct Follower {
    cache: EpochCache,
    log_end: Offset,
    durable: Offset,
    high_watermark: Offset,
    leader: Option<(NodeId, LeaderEpoch)>,
    state: State,
}

impl Follower {
    /// A follower of a log that ends at `log_end` (durable below
    /// `durable`) with these epochs and this high watermark.
    pub fn new(
        cache: EpochCache,
        log_end: Offset,
        durable: Offset,
        high_watermark: Offset,
    ) -> Follower {
        Follower {
            cache,
            log_end,
            durable: durable.min(log_end),
            high_watermark: high_watermark.min(log_end),
            leader: None,
            state: State::Idle,
        }
    }

    pub fn log_end(&self) -> Offset {
        self.log_end
    }

    pub fn durable(&self) -> Offset {
        self.durable
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    pub fn epochs(&self) -> &EpochCache {
        &self.cache
    }

    /// Whether it is still finding its divergence point (no fetch yet).
    pub fn truncating(&self) -> bool {
        self.state == State::Truncating
    }

    pub fn step(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Leader {
                leader,
                leader_epoch,
            } => {
                if self.leader.is_some_and(|(_, e)| e >= leader_epoch) {
                    return out;
                }
                self.leader = Some((leader, leader_epoch));
                self.start_truncation(&mut out);
            }
            Input::EpochAnswer {
                leader_epoch,
                answer,
            } => {
                if !self.current(leader_epoch) || self.state != State::Truncating {
                    return out;
                }
                let (to, again) =
                    divergence_point(&self.cache, self.log_end, self.high_watermark, answer);
                if to < self.log_end {
                    self.cut(to, &mut out);
                }
                match again {
                    Some(epoch) => self.ask(epoch, &mut out),
                    None => self.fetch(&mut out),
                }
            }
            Input::Fetched {
                leader_epoch,
                end,
                epochs,
                leader_high_watermark,
            } => {
                if !self.current(leader_epoch) || self.state != State::Fetching {
                    return out;
                }
                for (epoch, start) in epochs {
                    self.cache.assign(epoch, start);
                }
                self.log_end = self.log_end.max(end);
                let hw = leader_high_watermark.min(self.log_end);
                if hw > self.high_watermark {
                    self.high_watermark = hw;
                    out.push(Output::HighWatermark(hw));
                }
                self.fetch(&mut out);
            }
            Input::Durable(d) => self.durable = self.durable.max(d.min(self.log_end)),
            Input::Failed => match self.state {
                State::Truncating => self.start_truncation(&mut out),
                State::Fetching => self.fetch(&mut out),
                State::Idle => {}
            },
        }
        out
    }

    fn current(&self, leader_epoch: LeaderEpoch) -> bool {
        self.leader.is_some_and(|(_, e)| e == leader_epoch)
    }

    fn start_truncation(&mut self, out: &mut Vec<Output>) {
        match self.cache.latest() {
            Some(epoch) => self.ask(epoch, out),
            // An empty log cannot diverge.
            None => self.fetch(out),
        }
    }

    fn ask(&mut self, epoch: LeaderEpoch, out: &mut Vec<Output>) {
        let Some((leader, leader_epoch)) = self.leader else {
            return;
        };
        self.state = State::Truncating;
        out.push(Output::AskEpoch {
            leader,
            leader_epoch,
            epoch,
        });
    }

    fn fetch(&mut self, out: &mut Vec<Output>) {
        let Some((leader, leader_epoch)) = self.leader else {
            return;
        };
        self.state = State::Fetching;
        out.push(Output::Fetch {
            leader,
            leader_epoch,
            offset: self.log_end,
            durable: self.durable,
        });
    }

    fn cut(&mut self, to: Offset, out: &mut Vec<Output>) {
        self.cache.truncate_from(to);
        self.log_end = to;
        self.durable = self.durable.min(to);
        self.high_watermark = self.high_watermark.min(to);
        out.push(Output::Truncate { to });
    }
}
