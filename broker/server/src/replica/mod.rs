//! Partition replication on a cluster node (issue 18, third increment):
//! the tasks that drive `corelog_replication`'s state machines for the
//! partitions of a topic with more than one replica.
//!
//! - **Leader** ([`start_leader`]): the partition facade holds the
//!   leader's machine ([`crate::partition::Role::Leader`]); followers'
//!   fetches report to it (`handlers/fetch.rs`), and a task here feeds it
//!   the leader's own log progress and the time. ISR changes it proposes go
//!   to the active controller as AlterPartition ([`propose`]).
//! - **Follower** ([`start_follower`]): a task per followed partition, on
//!   the shard that owns it, with its own connection to the leader's Kafka
//!   listener. It finds where its log diverges from the leader's
//!   (OffsetForLeaderEpoch) and cuts it there, then fetches as a replica
//!   (Fetch with `replica_id`), appends the leader's batches as they are
//!   (offsets and epochs kept), and fetches again only once they are on
//!   its disk: the fetch offset it reports is its durable end, which is all
//!   the leader counts for the high watermark.
//!
//! Durability contract (with `corelog_replication`'s): an `acks=all`
//! produce to a replicated partition is answered once every member of the
//! ISR holds the batch on disk (fdatasync'd), so a leader elected from the
//! ISR after any crash has it.
//!
//! The internal offsets topic's partitions are replicated the same way;
//! their group coordinators follow the leadership (`crate::groups`).
//!
//! Not yet: one connection and one fetch per (follower shard, leader
//! broker) for all the partitions it follows. Tried twice (a shared
//! session, reverted in `83f4af0`; a fetcher per leader broker, reverted
//! after `c8bd2d7`): both cut connections and idle CPU, and both gave
//! `latency-1kib-rf3` runs with a publish p99 of 0.3 to 1.2 s that the
//! per-partition tasks never show; see
//! `perf-reports/2026-12-07-issue18-replica-fetchers.md`.
//!
//! Lives on: the shard that owns the partition; every task stops when the
//! partition's role changes (its role generation) or the shard stops.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corelog_controller::codes as ctl_codes;
use corelog_model::{LeaderEpoch, NodeId, Offset};
use corelog_protocol::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ReplicaState,
};
use corelog_protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use corelog_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ResponseHeader, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use corelog_replication::follower::{Follower, Input, Output};
use corelog_replication::Output as LeaderOutput;
use corelog_storage::ValidBatch;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::net::TcpStream;

use crate::cluster::wire::{IsrChange, IsrOutcome};
use crate::controller::ask::IsrAnswer;
use crate::error::ServerError;
use crate::partition::{IsrNews, Partition};
use crate::shard::{Shard, ShardGone};
use crate::ShardId;
use corelog_storage::batch::BatchError;
use corelog_storage::StorageError;

/// How long a follower's fetch waits at the leader for new data (Kafka's
/// `replica.fetch.wait.max.ms`): also how late a follower may learn a new
/// high watermark when nothing is written.
pub const REPLICA_FETCH_WAIT_MS: i32 = 500;
/// The most a follower's fetch asks for, per partition and in all.
pub const REPLICA_FETCH_BYTES_MAX: i32 = 8 << 20;
/// A request to the leader that takes longer fails, and is sent again on
/// a new connection.
pub const REPLICA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before a follower retries after an error (leader unreachable,
/// not leader yet, a failed write).
pub const REPLICA_RETRY_BACKOFF: Duration = Duration::from_millis(200);
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

/// Starts the task that makes this node's copy of a partition follow
/// `leader` at `leader_epoch`. Runs until the role changes.
pub fn start_follower(
    shard: &Rc<Shard>,
    topic: String,
    partition: i32,
    p: Partition,
    me: NodeId,
    leader: NodeId,
    leader_epoch: LeaderEpoch,
) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let generation = p.role_generation();
        let f = FollowerTask {
            shard,
            topic,
            partition,
            p,
            me,
            leader,
            leader_epoch,
            generation,
        };
        while f.current() {
            if let Err(e) = f.run().await {
                if f.current() {
                    tracing::info!(topic = %f.topic, partition = f.partition, leader = f.leader.0, error = %e, "follower restarts");
                }
            }
            glommio::timer::sleep(REPLICA_RETRY_BACKOFF).await;
        }
    })
    .detach();
}

/// Why one life of a follower ended (it starts over after
/// [`REPLICA_RETRY_BACKOFF`]): the leader could not be reached or answered
/// amiss, or this replica's log could not take what it sent.
#[derive(Debug, thiserror::Error)]
enum FollowerError {
    #[error("leader {0} is not a live broker")]
    LeaderNotLive(NodeId),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: glommio::GlommioError<()>,
    },
    #[error("encoding the {api:?} request: {detail}")]
    Encode { api: ApiKey, detail: String },
    #[error("sending {api:?}: {source}")]
    Send { api: ApiKey, source: std::io::Error },
    #[error("reading the {api:?} answer: {source}")]
    Receive { api: ApiKey, source: std::io::Error },
    #[error("{api:?} answer of a bad size")]
    AnswerSize { api: ApiKey },
    #[error("no {api:?} answer in {timeout:?}")]
    Timeout { api: ApiKey, timeout: Duration },
    #[error("decoding the {api:?} answer's header: {detail}")]
    DecodeHeader { api: ApiKey, detail: String },
    /// The answer's body did not decode (the client codec's message).
    #[error("{0}")]
    DecodeBody(String),
    #[error("{api:?} answer for request {got} instead of {sent}")]
    Correlation { api: ApiKey, got: i32, sent: i32 },
    /// The leader answered with a Kafka error code.
    #[error("{api:?} answered error {code}")]
    Refused { api: ApiKey, code: i16 },
    #[error("{api:?} answered without the partition")]
    NoPartition { api: ApiKey },
    #[error("truncating to {to}: {source}")]
    Truncate { to: Offset, source: StorageError },
    #[error("resetting to {to}: {source}")]
    Reset { to: Offset, source: StorageError },
    /// This replica's log fenced off batches it had appended: a write
    /// failed, and the log discarded what was not on disk.
    #[error("a failed write discarded replicated batches")]
    WriteDiscarded,
    /// The log was emptied to start at the leader's log start: a new
    /// follower machine starts from it.
    #[error("reset to the leader's log start")]
    ResetToLeaderLogStart,
    #[error("a batch from the leader fails its check: {0}")]
    BadBatch(BatchError),
    #[error("appending the leader's batch at {base}: {source}")]
    Append { base: Offset, source: StorageError },
}

struct FollowerTask {
    shard: Rc<Shard>,
    topic: String,
    partition: i32,
    p: Partition,
    me: NodeId,
    leader: NodeId,
    leader_epoch: LeaderEpoch,
    generation: u64,
}

impl FollowerTask {
    fn current(&self) -> bool {
        self.p.role_generation() == self.generation && !self.shard.is_stopping()
    }

    /// One life of the follower: from the log as it is, find the
    /// divergence, then fetch until an error.
    async fn run(&self) -> Result<(), FollowerError> {
        let mut conn = self.connect().await?;
        let mut machine = Follower::new(
            self.p.epoch_cache(),
            self.p.log_end_offset(),
            self.p.durable_end(),
            self.p.high_watermark(),
        );
        // The leader's log start as last fetched: records it no longer
        // holds (retention, DeleteRecords, an offsets log's snapshots) go
        // from this copy too, so a failover never brings them back.
        let mut leader_log_start = Offset::ZERO;
        let mut pending: std::collections::VecDeque<Output> = machine
            .step(Input::Leader {
                leader: self.leader,
                leader_epoch: self.leader_epoch,
            })
            .into();
        while let Some(output) = pending.pop_front() {
            if !self.current() {
                return Ok(());
            }
            let next = match output {
                Output::Truncate { to } => {
                    let end = self
                        .p
                        .truncate_to(to)
                        .await
                        .map_err(|source| FollowerError::Truncate { to, source })?;
                    tracing::info!(topic = %self.topic, partition = self.partition, to = to.0, end = end.0, "follower log truncated to the leader's");
                    Vec::new()
                }
                Output::HighWatermark(hw) => {
                    self.p.set_follower_high_watermark(hw);
                    Vec::new()
                }
                Output::AskEpoch { epoch, .. } => {
                    let answer = self.ask_epoch(&mut conn, epoch).await?;
                    machine.step(Input::EpochAnswer {
                        leader_epoch: self.leader_epoch,
                        answer,
                    })
                }
                Output::Fetch { offset, .. } => {
                    self.follow_log_start(leader_log_start);
                    // Report only what is on disk: the leader counts the
                    // fetch offset as this replica's durable end.
                    self.p
                        .durable(offset)
                        .await
                        .map_err(|_| FollowerError::WriteDiscarded)?;
                    machine.step(Input::Durable(offset));
                    if !self.current() {
                        return Ok(());
                    }
                    let (records, hw, log_start) = match self.fetch(&mut conn, offset).await? {
                        Fetched::Records {
                            records,
                            high_watermark,
                            log_start,
                        } => (records, high_watermark, log_start),
                        Fetched::BelowLogStart(log_start) => {
                            tracing::info!(topic = %self.topic, partition = self.partition, end = offset.0, leader_log_start = log_start.0, "follower's log ends below its leader's log start; copying from there into an empty log");
                            self.p.reset_to(log_start).await.map_err(|source| {
                                FollowerError::Reset {
                                    to: log_start,
                                    source,
                                }
                            })?;
                            // A new machine, from the new log.
                            return Err(FollowerError::ResetToLeaderLogStart);
                        }
                    };
                    leader_log_start = log_start;
                    // The leader's log start may fall inside a batch, which
                    // a fetch from it answers whole: it starts below this
                    // log's end. A log with nothing in it (just reset to
                    // that log start) starts over at the batch's base
                    // instead, as Kafka's followers do; its log start then
                    // follows the leader's (`follow_log_start`).
                    if let Some(base) = first_batch_base(&records) {
                        let empty = self.p.log_start_offset() == offset
                            && self.p.log_end_offset() == offset;
                        if base < offset && empty {
                            self.p
                                .reset_to(base)
                                .await
                                .map_err(|source| FollowerError::Reset { to: base, source })?;
                        }
                    }
                    let (end, epochs) = self.append(records, offset)?;
                    machine.step(Input::Fetched {
                        leader_epoch: self.leader_epoch,
                        end,
                        epochs,
                        leader_high_watermark: hw,
                    })
                }
            };
            pending.extend(next);
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Conn, FollowerError> {
        let md = self.shard.metadata();
        let b = md
            .brokers
            .iter()
            .find(|b| b.id == self.leader.0)
            .ok_or(FollowerError::LeaderNotLive(self.leader))?;
        let addr = format!("{}:{}", b.host, b.port);
        let stream = TcpStream::connect(addr.as_str())
            .or(async {
                glommio::timer::sleep(REPLICA_REQUEST_TIMEOUT).await;
                Err(glommio::GlommioError::IoError(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            })
            .await
            .map_err(|source| FollowerError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            correlation_id: 0,
        })
    }

    async fn ask_epoch(
        &self,
        conn: &mut Conn,
        epoch: LeaderEpoch,
    ) -> Result<(LeaderEpoch, Offset), FollowerError> {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.me.0))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(self.partition)
                    .with_current_leader_epoch(self.leader_epoch.0)
                    .with_leader_epoch(epoch.0)])]);
        let response: OffsetForLeaderEpochResponse = conn
            .call(
                ApiKey::OffsetForLeaderEpoch,
                OFFSET_FOR_LEADER_EPOCH_VERSION,
                &request,
            )
            .await?;
        let part = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or(FollowerError::NoPartition {
                api: ApiKey::OffsetForLeaderEpoch,
            })?;
        if part.error_code != 0 {
            return Err(FollowerError::Refused {
                api: ApiKey::OffsetForLeaderEpoch,
                code: part.error_code,
            });
        }
        Ok((LeaderEpoch(part.leader_epoch), Offset(part.end_offset)))
    }

    /// Moves this copy's log start up to the leader's, as Kafka's
    /// followers do, but never past this replica's high watermark (what
    /// it knows to be committed): a DeleteRecords answered by the leader
    /// then holds after a failover.
    fn follow_log_start(&self, leader_log_start: Offset) {
        let target = leader_log_start.min(self.p.high_watermark());
        if target <= self.p.log_start_offset() {
            return;
        }
        if let Err(e) = self
            .p
            .delete_records(crate::partition::DeleteUpTo::Offset(target))
        {
            tracing::warn!(topic = %self.topic, partition = self.partition, to = target.0, error = %e, "follower could not move its log start to the leader's");
        }
    }

    /// One replica fetch from `offset`.
    async fn fetch(&self, conn: &mut Conn, offset: Offset) -> Result<Fetched, FollowerError> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(self.me.0))
            .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(self.me.0)))
            .with_max_wait_ms(REPLICA_FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_BYTES_MAX)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(self.partition)
                    .with_current_leader_epoch(self.leader_epoch.0)
                    .with_fetch_offset(offset.0)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(REPLICA_FETCH_BYTES_MAX)])]);
        let response: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request).await?;
        let refused = |code| FollowerError::Refused {
            api: ApiKey::Fetch,
            code,
        };
        if response.error_code != 0 {
            return Err(refused(response.error_code));
        }
        let part = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or(FollowerError::NoPartition { api: ApiKey::Fetch })?;
        if part.error_code == corelog_protocol::error_code::OFFSET_OUT_OF_RANGE
            && part.log_start_offset > offset.0
        {
            return Ok(Fetched::BelowLogStart(Offset(part.log_start_offset)));
        }
        if part.error_code != 0 {
            return Err(refused(part.error_code));
        }
        Ok(Fetched::Records {
            records: part.records.clone().unwrap_or_default(),
            high_watermark: Offset(part.high_watermark),
            log_start: Offset(part.log_start_offset.max(0)),
        })
    }

    /// Appends the whole batches of `records`, which start at `offset`.
    /// Returns the log end after them and the epochs they start.
    #[allow(clippy::type_complexity)]
    fn append(
        &self,
        records: Bytes,
        offset: Offset,
    ) -> Result<(Offset, Vec<(LeaderEpoch, Offset)>), FollowerError> {
        let limits = self.p.log_config().record_limits;
        let mut end = offset;
        let mut epochs: Vec<(LeaderEpoch, Offset)> = Vec::new();
        let mut at = 0usize;
        while records.len() - at >= 12 {
            let length =
                u32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let next = at + 12 + length;
            if next > records.len() {
                // A partial batch at the end of the answer (max_bytes): it
                // comes whole with the next fetch.
                break;
            }
            if !self.current() {
                break;
            }
            let batch = ValidBatch::new(records.slice(at..next), &limits)
                .map_err(FollowerError::BadBatch)?;
            let epoch = LeaderEpoch(batch.header().partition_leader_epoch);
            let base = batch.header().base_offset;
            end = self
                .p
                .append_replicated(batch)
                .map_err(|source| FollowerError::Append { base, source })?;
            if epochs.last().is_none_or(|(e, _)| *e != epoch) {
                epochs.push((epoch, base));
            }
            at = next;
        }
        Ok((end, epochs))
    }
}

/// The base offset of the first batch in a fetch answer's records.
fn first_batch_base(records: &[u8]) -> Option<Offset> {
    let head: [u8; 8] = records.get(..8)?.try_into().ok()?;
    Some(Offset(i64::from_be_bytes(head)))
}

/// What a replica fetch got.
enum Fetched {
    /// Batches (possibly none) from the fetch offset, with the leader's
    /// high watermark and log start.
    Records {
        records: Bytes,
        high_watermark: Offset,
        log_start: Offset,
    },
    /// The leader no longer holds the fetch offset: its log starts here.
    BelowLogStart(Offset),
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
    ) -> Result<Resp, FollowerError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame: BytesMut =
            corelog_client::encode_request(api_key, version, correlation_id, CLIENT_ID, request)
                .map_err(|detail| FollowerError::Encode {
                    api: api_key,
                    detail,
                })?;
        let exchange =
            async {
                self.stream
                    .write_all(&frame)
                    .await
                    .map_err(|source| FollowerError::Send {
                        api: api_key,
                        source,
                    })?;
                let mut size = [0u8; 4];
                self.stream.read_exact(&mut size).await.map_err(|source| {
                    FollowerError::Receive {
                        api: api_key,
                        source,
                    }
                })?;
                let size = usize::try_from(i32::from_be_bytes(size))
                    .ok()
                    .filter(|&s| s <= RESPONSE_BYTES_MAX)
                    .ok_or(FollowerError::AnswerSize { api: api_key })?;
                let mut body = vec![0u8; size];
                self.stream.read_exact(&mut body).await.map_err(|source| {
                    FollowerError::Receive {
                        api: api_key,
                        source,
                    }
                })?;
                Ok::<_, FollowerError>(body)
            };
        let body = exchange
            .or(async {
                glommio::timer::sleep(REPLICA_REQUEST_TIMEOUT).await;
                Err(FollowerError::Timeout {
                    api: api_key,
                    timeout: REPLICA_REQUEST_TIMEOUT,
                })
            })
            .await?;
        let mut buf = Bytes::from(body);
        let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
            .map_err(|e| FollowerError::DecodeHeader {
                api: api_key,
                detail: e.to_string(),
            })?;
        if header.correlation_id != correlation_id {
            return Err(FollowerError::Correlation {
                api: api_key,
                got: header.correlation_id,
                sent: correlation_id,
            });
        }
        corelog_client::decode_response(&mut buf, version).map_err(FollowerError::DecodeBody)
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
