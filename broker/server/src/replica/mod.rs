//! Partition replication on a cluster node (issue 18, third increment):
//! the tasks that drive `corelog_replication`'s state machines for the
//! partitions of a topic with more than one replica.
//!
//! - **Leader** ([`start_leader`]): the partition facade holds the
//!   leader's machine ([`crate::partition::Role::Leader`]); followers'
//!   fetches report to it (`handlers/fetch.rs`), and a task here feeds it
//!   the leader's own log progress and the time. ISR changes it proposes go
//!   to the active controller as AlterPartition ([`propose`]).
//! - **Follower** ([`start_follower`]): one fetcher task per (shard, leader
//!   broker), with one connection to the leader's Kafka listener, drives
//!   the machines of every partition the shard follows there. Each finds
//!   where its log diverges from the leader's (OffsetForLeaderEpoch, one
//!   request for all that ask) and cuts it there, then fetches as a
//!   replica (one Fetch with `replica_id` for all), appends the leader's
//!   batches as they are (offsets and epochs kept), and fetches again only
//!   once they are on its disk: the fetch offset it reports is its durable
//!   end, which is all the leader counts for the high watermark.
//!
//! Durability contract (with `corelog_replication`'s): an `acks=all`
//! produce to a replicated partition is answered once every member of the
//! ISR holds the batch on disk (fdatasync'd), so a leader elected from the
//! ISR after any crash has it.
//!
//! The internal offsets topic's partitions are replicated the same way;
//! their group coordinators follow the leadership (`crate::groups`).
//!
//! Lives on: the shard that owns the partition. A leader's task stops
//! when the partition's role changes (its role generation) or the shard
//! stops; a follower leaves its fetcher then, and a fetcher with no
//! partitions left stops.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corelog_controller::codes as ctl_codes;
use corelog_model::{LeaderEpoch, NodeId, Offset};
use corelog_protocol::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ReplicaState,
};
use corelog_protocol::kafka_protocol::messages::fetch_response::PartitionData;
use corelog_protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use corelog_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ResponseHeader, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use corelog_replication::follower::{Input, Output};
use corelog_replication::Output as LeaderOutput;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::net::TcpStream;

pub mod fetchers;

pub use fetchers::{Fetchers, REPLICA_RETRY_BACKOFF};
use fetchers::{Inbox, Slot};

use crate::cluster::wire::{IsrChange, IsrOutcome};
use crate::controller::ask::IsrAnswer;
use crate::error::ServerError;
use crate::log_limit::RateLimited;
use crate::partition::{IsrNews, Partition};
use crate::shard::{Shard, ShardGone};
use crate::ShardId;

/// How long a follower's fetch waits at the leader for new data (Kafka's
/// `replica.fetch.wait.max.ms`): also how late a follower may learn a new
/// high watermark when nothing is written.
pub const REPLICA_FETCH_WAIT_MS: i32 = 500;
/// The most a follower's fetch asks for, per partition and in all.
pub const REPLICA_FETCH_BYTES_MAX: i32 = 8 << 20;
/// A request to the leader that takes longer fails, and is sent again on
/// a new connection.
pub const REPLICA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait before an ISR change the controller refused is
/// proposed again (see `propose_after`).
pub const ISR_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a leader's task looks at its followers' lag without news.
pub const LEADER_TICK: Duration = Duration::from_millis(250);
/// The largest response a follower reads.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const CLIENT_ID: &str = "corelog-replica";

fn now_ms() -> u64 {
    corelog_runtime::now_ms() as u64
}

// ------------------------------------------------------------------ leader --

/// Starts the task that feeds a replicated partition's leader machine its
/// own log's progress and the time. Runs until the role changes.
pub fn start_leader(shard: &Rc<Shard>, topic: String, partition: i32, p: Partition) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let generation = p.role_generation();
        loop {
            if p.role_generation() != generation || shard.is_stopping() {
                return;
            }
            let proposals = p.leader_progress(now_ms());
            propose(&shard, &topic, partition, &p, proposals);
            p.changed()
                .or(async { glommio::timer::sleep(LEADER_TICK).await })
                .await;
        }
    })
    .detach();
}

/// Sends the ISR changes a leader's machine proposed to the active
/// controller (AlterPartition, through shard 0) and hands it the answer.
/// The machine proposes one change at a time, so at most one such task
/// runs per partition.
pub fn propose(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    p: &Partition,
    proposals: Vec<LeaderOutput>,
) {
    propose_after(shard, topic, partition, p, proposals, REPLICA_RETRY_BACKOFF);
}

/// [`propose`], waiting `backoff` after a refusal before the machine may
/// propose again; the wait doubles with each refusal in a row (up to
/// [`ISR_RETRY_BACKOFF_MAX`]), so a follower that the controller keeps
/// refusing (still fenced, say) costs a request and a log line now and
/// then, not five a second.
fn propose_after(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    p: &Partition,
    proposals: Vec<LeaderOutput>,
    backoff: Duration,
) {
    for o in proposals {
        let LeaderOutput::ProposeIsr {
            isr,
            partition_epoch,
        } = o
        else {
            continue;
        };
        let topic_id = shard
            .metadata()
            .topic_for(topic, true)
            .map(|t| t.id.clone());
        let Some(topic_id) = topic_id else {
            // Deleted meanwhile: its machine goes with it.
            continue;
        };
        let leader_epoch = p.leader_epoch().0;
        let (p, topic) = (p.clone(), topic.to_string());
        let isr_ids: Vec<i32> = isr.iter().map(|n| n.0).collect();
        let shard = shard.clone();
        glommio::spawn_local(async move {
            if backoff == REPLICA_RETRY_BACKOFF {
                tracing::info!(%topic, partition, isr = ?isr_ids, partition_epoch, "proposing an ISR change");
            }
            let change = IsrChange {
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                isr: isr_ids,
            };
            let answer = shard
                .call(ShardId(0), move |s| async move {
                    crate::controller::ask::alter_partition(&s, change).await
                })
                .await;
            let news = news_of(answer, isr, partition_epoch);
            let next = match &news {
                // The committed ISR reaches the machine with the metadata
                // (`controller::follow_role`), together with the topic's
                // min.insync.replicas the controller judged it by; from
                // the answer, ahead of a raised setting, the leader could
                // advance the high watermark past replicas the controller
                // had just made eligible leaders (KIP-966; the seeded
                // simulation's seed 3722). Until then the change stays in
                // flight, which only holds the high watermark back.
                IsrNews::Committed { .. } => return,
                refused => {
                    if backoff == REPLICA_RETRY_BACKOFF {
                        tracing::info!(%topic, partition, answer = ?refused, "ISR change not settled; proposing again later");
                    }
                    // The metadata may settle it meanwhile (a newer
                    // partition epoch); the machine then ignores this.
                    glommio::timer::sleep(backoff).await;
                    (backoff * 2).min(ISR_RETRY_BACKOFF_MAX)
                }
            };
            let more = p.isr_answer(now_ms(), news);
            propose_after(&shard, &topic, partition, &p, more, next);
        })
        .detach();
    }
}

/// What an AlterPartition's answer says of the proposal of `isr` at
/// `partition_epoch`. Only a refusal the controller gives after checking
/// the request at that partition epoch (an ineligible replica, an invalid
/// ISR), or one given before it was sent (this broker not registered),
/// proves the change was not applied. Any other error, or none (a
/// timeout, a controller that stepped down after proposing it, a stale
/// partition epoch, which a retry of an applied change also gets), leaves
/// its fate unknown: the leader keeps counting its members until the
/// metadata shows a newer partition epoch. Forgetting a change the
/// controller did apply would let the high watermark pass a member the
/// controller may elect (the seeded simulation in `corelog-replication`'s
/// `tests/sim.rs` found that loss).
fn news_of(
    answer: Result<IsrAnswer, ShardGone>,
    isr: Vec<NodeId>,
    partition_epoch: i32,
) -> IsrNews {
    let refused =
        |code: i16| code == ctl_codes::INELIGIBLE_REPLICA || code == ctl_codes::INVALID_REQUEST;
    match answer {
        Ok(IsrAnswer::Outcome(IsrOutcome::Altered {
            isr: committed,
            partition_epoch: committed_epoch,
            ..
        })) => IsrNews::Committed {
            isr: committed.into_iter().map(NodeId).collect(),
            partition_epoch: committed_epoch,
        },
        Ok(IsrAnswer::NotSent) => IsrNews::NotApplied {
            isr,
            partition_epoch,
        },
        Ok(IsrAnswer::Outcome(IsrOutcome::Refused { code, .. }))
        | Ok(IsrAnswer::Failed(ServerError::Controller { code, .. }))
            if refused(code) =>
        {
            IsrNews::NotApplied {
                isr,
                partition_epoch,
            }
        }
        _ => IsrNews::Unknown {
            isr,
            partition_epoch,
        },
    }
}

// ---------------------------------------------------------------- follower --

/// Makes this node's copy of a partition follow `leader` at
/// `leader_epoch`, in the fetcher of this shard for that broker (started
/// if there is none). It follows until the partition's role changes.
pub fn start_follower(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    p: Partition,
    me: NodeId,
    leader: NodeId,
    leader_epoch: LeaderEpoch,
) {
    let slot = Slot::new(topic, partition, p, leader_epoch);
    let mut by_leader = shard.fetchers().by_leader.borrow_mut();
    if let Some(inbox) = by_leader.get(&leader) {
        inbox.added.borrow_mut().push(slot);
        inbox.bell.ring();
        return;
    }
    let inbox = Rc::new(Inbox::default());
    inbox.added.borrow_mut().push(slot);
    by_leader.insert(leader, inbox.clone());
    drop(by_leader);
    let fetcher = Fetcher {
        shard: shard.clone(),
        me,
        leader,
        inbox,
        slots: Vec::new(),
        conn: None,
        rotation: 0,
        restarts_log: RateLimited::new(RESTART_LOG_INTERVAL),
    };
    glommio::spawn_local(fetcher.run()).detach();
}

/// How often a fetcher logs a follower that starts again (after an error
/// of its own or of the connection), with the count of those not logged.
const RESTART_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The task that follows, from one leader broker, every partition this
/// shard follows there.
struct Fetcher {
    shard: Rc<Shard>,
    me: NodeId,
    leader: NodeId,
    inbox: Rc<Inbox>,
    slots: Vec<Slot>,
    /// None until connected, and again after a failed request.
    conn: Option<Conn>,
    /// Where the partitions of the next fetch start: the leader fills
    /// `max_bytes` in request order (KIP-74), so the order turns by one
    /// each fetch and no partition is always last.
    rotation: usize,
    restarts_log: RateLimited,
}

impl Fetcher {
    async fn run(mut self) {
        loop {
            self.slots.append(&mut self.inbox.added.borrow_mut());
            let stopping = self.shard.is_stopping();
            self.slots.retain(|s| s.current() && !stopping);
            if self.slots.is_empty() {
                if self.inbox.added.borrow().is_empty() {
                    // Gone from the table in the same step as the check:
                    // a follower started later starts a new fetcher.
                    self.shard
                        .fetchers()
                        .by_leader
                        .borrow_mut()
                        .remove(&self.leader);
                    return;
                }
                continue;
            }
            if let Err(e) = self.round().await {
                // The connection failed: every partition starts again.
                self.conn = None;
                let now = Instant::now();
                for s in &mut self.slots {
                    s.restart(now);
                }
                if let Some(suppressed) = self.restarts_log.due() {
                    tracing::info!(leader = self.leader.0, partitions = self.slots.len(), error = %e, suppressed, "follower restarts");
                }
                glommio::timer::sleep(REPLICA_RETRY_BACKOFF).await;
            }
        }
    }

    /// One step of every partition that can take one: what needs no
    /// request, then one OffsetForLeaderEpoch for those that ask where
    /// they diverge, else one Fetch for those that fetch. An error is the
    /// connection's; a partition's own error restarts that partition only.
    async fn round(&mut self) -> Result<(), String> {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if !self.slots[i].ready(now) {
                continue;
            }
            if let Err(e) = self.slots[i].local_steps(self.leader).await {
                self.failed(i, &e);
            }
        }
        let now = Instant::now();
        let waiting = |want_epoch: bool| -> Vec<usize> {
            (0..self.slots.len())
                .filter(|&i| {
                    let s = &self.slots[i];
                    s.ready(now)
                        && match s.next() {
                            Some(Output::AskEpoch { .. }) => want_epoch,
                            Some(Output::Fetch { .. }) => !want_epoch,
                            _ => false,
                        }
                })
                .collect()
        };
        let asking = waiting(true);
        if !asking.is_empty() {
            return self.ask_epochs(&asking).await;
        }
        let fetching = waiting(false);
        if fetching.is_empty() {
            // Every partition waits out a backoff: until the first is
            // over, or a follower is added.
            let first = self.slots.iter().filter_map(|s| s.retry_at).min();
            let wait = first.map_or(REPLICA_RETRY_BACKOFF, |t| {
                t.saturating_duration_since(Instant::now())
            });
            let inbox = self.inbox.clone();
            inbox
                .bell
                .wait()
                .or(async { glommio::timer::sleep(wait).await })
                .await;
            return Ok(());
        }
        self.fetch(fetching).await
    }

    /// A partition's own error: it starts again after the backoff.
    fn failed(&mut self, i: usize, error: &str) {
        let s = &mut self.slots[i];
        if !s.current() {
            return;
        }
        s.restart(Instant::now());
        if let Some(suppressed) = self.restarts_log.due() {
            tracing::info!(topic = %s.topic, partition = s.partition, leader = self.leader.0, error, suppressed, "follower restarts");
        }
    }

    async fn connection(&mut self) -> Result<&mut Conn, String> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.shard, self.leader).await?);
        }
        Ok(self.conn.as_mut().expect("connected just now"))
    }

    /// One OffsetForLeaderEpoch for the partitions `asking`.
    async fn ask_epochs(&mut self, asking: &[usize]) -> Result<(), String> {
        let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
        for &i in asking {
            let s = &self.slots[i];
            let Some(&Output::AskEpoch { epoch, .. }) = s.next() else {
                continue;
            };
            let part = OffsetForLeaderPartition::default()
                .with_partition(s.partition)
                .with_current_leader_epoch(s.leader_epoch.0)
                .with_leader_epoch(epoch.0);
            match topics.last_mut() {
                Some(t) if t.topic.0.as_str() == s.topic => t.partitions.push(part),
                _ => topics.push(
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(s.topic.clone())))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.me.0))
            .with_topics(topics);
        let response: OffsetForLeaderEpochResponse = self
            .connection()
            .await?
            .call(
                ApiKey::OffsetForLeaderEpoch,
                OFFSET_FOR_LEADER_EPOCH_VERSION,
                &request,
            )
            .await?;
        let answers: HashMap<(&str, i32), (i16, i32, i64)> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        (t.topic.0.as_str(), p.partition),
                        (p.error_code, p.leader_epoch, p.end_offset),
                    )
                })
            })
            .collect();
        for &i in asking {
            let s = &self.slots[i];
            if !s.current() {
                continue;
            }
            match answers.get(&(s.topic.as_str(), s.partition)).copied() {
                Some((0, epoch, end)) => {
                    let s = &mut self.slots[i];
                    s.pending.pop_front();
                    let leader_epoch = s.leader_epoch;
                    s.step(Input::EpochAnswer {
                        leader_epoch,
                        answer: (LeaderEpoch(epoch), Offset(end)),
                    });
                }
                Some((code, ..)) => {
                    self.failed(i, &format!("OffsetForLeaderEpoch answered error {code}"))
                }
                None => self.failed(i, "OffsetForLeaderEpoch answered without the partition"),
            }
        }
        Ok(())
    }

    /// One replica fetch for the partitions `fetching`, each from its log's
    /// end once that is on disk: the leader counts a fetch offset as the
    /// replica's durable end, which is all it counts for the high
    /// watermark. A follower added meanwhile drops the long poll (and the
    /// connection, the only way to abandon a request): it joins the next
    /// fetch at once instead of up to `REPLICA_FETCH_WAIT_MS` later.
    async fn fetch(&mut self, fetching: Vec<usize>) -> Result<(), String> {
        let mut asked: Vec<(usize, Offset)> = Vec::with_capacity(fetching.len());
        for i in fetching {
            let Some(&Output::Fetch { offset, .. }) = self.slots[i].next() else {
                continue;
            };
            self.slots[i].follow_log_start();
            if self.slots[i].p.durable(offset).await.is_err() {
                self.failed(i, "a failed write discarded replicated batches");
                continue;
            }
            if !self.slots[i].current() {
                continue;
            }
            self.slots[i].step(Input::Durable(offset));
            asked.push((i, offset));
        }
        if asked.is_empty() {
            return Ok(());
        }
        let turn = self.rotation % asked.len();
        asked.rotate_left(turn);
        self.rotation = self.rotation.wrapping_add(1);
        let mut topics: Vec<FetchTopic> = Vec::new();
        for &(i, offset) in &asked {
            let s = &self.slots[i];
            let part = FetchPartition::default()
                .with_partition(s.partition)
                .with_current_leader_epoch(s.leader_epoch.0)
                .with_fetch_offset(offset.0)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(REPLICA_FETCH_BYTES_MAX);
            match topics.last_mut() {
                Some(t) if t.topic.0.as_str() == s.topic => t.partitions.push(part),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(s.topic.clone())))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(self.me.0))
            .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(self.me.0)))
            .with_max_wait_ms(REPLICA_FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_BYTES_MAX)
            .with_topics(topics);
        let inbox = self.inbox.clone();
        let conn = self.connection().await?;
        let answer = async { Some(conn.call(ApiKey::Fetch, FETCH_VERSION, &request).await) }
            .or(async {
                inbox.bell.wait().await;
                None
            })
            .await;
        let Some(answer) = answer else {
            self.conn = None;
            return Ok(());
        };
        let response: FetchResponse = answer?;
        if response.error_code != 0 {
            return Err(format!("Fetch answered error {}", response.error_code));
        }
        let parts: HashMap<(&str, i32), &PartitionData> = response
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| ((t.topic.0.as_str(), p.partition_index), p))
            })
            .collect();
        for (i, offset) in asked {
            if !self.slots[i].current() || self.shard.is_stopping() {
                continue;
            }
            let part = {
                let s = &self.slots[i];
                parts.get(&(s.topic.as_str(), s.partition)).copied()
            };
            if let Err(e) = self.slots[i].fetched(offset, part).await {
                self.failed(i, &e);
            }
        }
        Ok(())
    }
}

/// A connection to `leader`'s Kafka listener.
async fn connect(shard: &Shard, leader: NodeId) -> Result<Conn, String> {
    let addr = {
        let md = shard.metadata();
        let b = md
            .brokers
            .iter()
            .find(|b| b.id == leader.0)
            .ok_or_else(|| format!("leader {} is not a live broker", leader.0))?;
        format!("{}:{}", b.host, b.port)
    };
    let stream = TcpStream::connect(addr.as_str())
        .or(async {
            glommio::timer::sleep(REPLICA_REQUEST_TIMEOUT).await;
            Err(glommio::GlommioError::IoError(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        correlation_id: 0,
    })
}

/// A follower's connection to its leader: one request at a time.
struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame: BytesMut =
            corelog_client::encode_request(api_key, version, correlation_id, CLIENT_ID, request)?;
        let exchange = async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|e| format!("sending {api_key:?}: {e}"))?;
            let mut size = [0u8; 4];
            self.stream
                .read_exact(&mut size)
                .await
                .map_err(|e| format!("reading the {api_key:?} answer: {e}"))?;
            let size = usize::try_from(i32::from_be_bytes(size))
                .ok()
                .filter(|&s| s <= RESPONSE_BYTES_MAX)
                .ok_or_else(|| format!("{api_key:?} answer of a bad size"))?;
            let mut body = vec![0u8; size];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| format!("reading the {api_key:?} answer: {e}"))?;
            Ok::<_, String>(body)
        };
        let body = exchange
            .or(async {
                glommio::timer::sleep(REPLICA_REQUEST_TIMEOUT).await;
                Err(format!(
                    "no {api_key:?} answer in {REPLICA_REQUEST_TIMEOUT:?}"
                ))
            })
            .await?;
        let mut buf = Bytes::from(body);
        let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
            .map_err(|e| format!("decoding the {api_key:?} answer's header: {e}"))?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "{api_key:?} answer for request {} instead of {correlation_id}",
                header.correlation_id
            ));
        }
        corelog_client::decode_response(&mut buf, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isr() -> Vec<NodeId> {
        vec![NodeId(1), NodeId(2)]
    }

    /// The request as a whole refused with `code`.
    fn failed(code: i16) -> Result<IsrAnswer, ShardGone> {
        Ok(IsrAnswer::Failed(ServerError::Controller {
            code,
            message: String::new(),
        }))
    }

    /// This change refused with `code`, others of its request perhaps not.
    fn refused(code: i16) -> Result<IsrAnswer, ShardGone> {
        Ok(IsrAnswer::Outcome(IsrOutcome::Refused {
            code,
            message: String::new(),
        }))
    }

    #[test]
    fn only_a_refusal_checked_at_the_leaders_epoch_clears_a_proposal() {
        let unknown = IsrNews::Unknown {
            isr: isr(),
            partition_epoch: 4,
        };
        let not_applied = IsrNews::NotApplied {
            isr: isr(),
            partition_epoch: 4,
        };
        let committed = Ok(IsrAnswer::Outcome(IsrOutcome::Altered {
            isr: vec![1, 2],
            leader_epoch: 3,
            partition_epoch: 5,
        }));
        assert_eq!(
            news_of(committed, isr(), 4),
            IsrNews::Committed {
                isr: isr(),
                partition_epoch: 5
            }
        );
        for code in [ctl_codes::INELIGIBLE_REPLICA, ctl_codes::INVALID_REQUEST] {
            assert_eq!(news_of(refused(code), isr(), 4), not_applied);
            assert_eq!(news_of(failed(code), isr(), 4), not_applied);
        }
        // Not registered: nothing was sent.
        assert_eq!(news_of(Ok(IsrAnswer::NotSent), isr(), 4), not_applied);
        // A retry of a change that was applied gets a stale partition epoch;
        // a controller that stepped down may still see its proposal commit;
        // no answer says nothing either.
        for code in [
            ctl_codes::INVALID_UPDATE_VERSION,
            ctl_codes::NOT_CONTROLLER,
            ctl_codes::REQUEST_TIMED_OUT,
            ctl_codes::FENCED_LEADER_EPOCH,
            ctl_codes::STALE_BROKER_EPOCH,
        ] {
            assert_eq!(news_of(refused(code), isr(), 4), unknown, "code {code}");
            assert_eq!(news_of(failed(code), isr(), 4), unknown, "code {code}");
        }
        assert_eq!(news_of(Err(ShardGone), isr(), 4), unknown);
    }
}
