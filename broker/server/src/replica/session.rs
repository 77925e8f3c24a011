//! One connection and one request at a time per (follower shard, leader
//! broker): the follower tasks of a shard whose partitions the same broker
//! leads hand their OffsetForLeaderEpoch questions and their replica
//! fetches to that leader's [`Session`], which sends each kind as one
//! request for all of them and hands every task its partition's part of
//! the answer.
//!
//! Lives on: the follower shard (a thread-local table of sessions by
//! leader). A session starts with its first member and ends when its last
//! member leaves and nothing is queued.
//!
//! Why a member's wait stays its own: a follower fetches from its
//! *durable* end, the offset the leader counts for the high watermark
//! (see the parent module), so a partition whose appended batches are
//! still being written cannot be in the next fetch, and one fetch holding
//! every partition would make each partition's `acks=all` wait for the
//! slowest fdatasync. A member is therefore in a fetch only once it asks
//! for one; the session sends what is queued. And a fetch long-polls at
//! the leader (`REPLICA_FETCH_WAIT_MS`) only while no member is about to
//! ask: while one is answered and writing what it got, or waiting for an
//! OffsetForLeaderEpoch answer, a fetch waits at most
//! [`REPLICA_FETCH_WAIT_BUSY_MS`], so that member is not left behind a
//! long poll for half a second once its write is on disk.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
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
use corelog_runtime::notify::Doorbell;
use futures_channel::oneshot;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::net::TcpStream;

use super::{
    REPLICA_FETCH_BYTES_MAX, REPLICA_FETCH_WAIT_MS, REPLICA_REQUEST_TIMEOUT, REPLICA_RETRY_BACKOFF,
};
use crate::shard::Shard;

/// The longest a fetch waits at the leader while a member of its session
/// is about to ask for a fetch of its own (see the module doc).
pub const REPLICA_FETCH_WAIT_BUSY_MS: i32 = 5;
/// The most one fetch asks for in all, over its partitions (each may have
/// up to `REPLICA_FETCH_BYTES_MAX`; the leader sends at least one whole
/// batch, KIP-74).
pub const REPLICA_FETCH_RESPONSE_BYTES_MAX: i32 = 16 << 20;
/// The largest response a follower reads.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const CLIENT_ID: &str = "corelog-replica";

/// What a fetch gives one member: the record bytes of its partition and
/// the leader's high watermark.
pub type Fetched = Result<(Bytes, Offset), String>;
/// What an OffsetForLeaderEpoch gives one member: the leader's epoch and
/// its end offset.
pub type EpochAnswer = Result<(LeaderEpoch, Offset), String>;

/// One partition's place in the next request.
struct Ask<T> {
    topic: String,
    partition: i32,
    current_leader_epoch: LeaderEpoch,
    /// The fetch offset, or the epoch asked about.
    at: i64,
    /// Set while the member, answered, has not asked again.
    expected: Rc<Cell<bool>>,
    reply: oneshot::Sender<T>,
}

/// The follower tasks of one shard that follow partitions one broker
/// leads, and their queued questions.
pub struct Session {
    shard: Rc<Shard>,
    me: NodeId,
    leader: NodeId,
    members: Cell<usize>,
    fetches: RefCell<Vec<Ask<Fetched>>>,
    epochs: RefCell<Vec<Ask<EpochAnswer>>>,
    /// Members about to ask: answered and not back yet, or waiting for
    /// their own writes before they ask (see the module doc).
    preparing: Cell<usize>,
    wake: Doorbell,
}

thread_local! {
    /// This shard's sessions, by leader.
    static SESSIONS: RefCell<HashMap<NodeId, Rc<Session>>> = RefCell::new(HashMap::new());
}

/// A follower task's membership of its leader's session; leaving is
/// dropping it.
pub struct Membership {
    session: Rc<Session>,
    /// Whether the session answered this member and it has not asked
    /// again (counted in `preparing`).
    expected: Rc<Cell<bool>>,
}

impl Session {
    /// Joins the session of this shard for `leader`, starting it if there
    /// is none.
    pub fn join(shard: &Rc<Shard>, me: NodeId, leader: NodeId) -> Membership {
        let session = SESSIONS.with(|s| {
            let mut sessions = s.borrow_mut();
            if let Some(session) = sessions.get(&leader) {
                return session.clone();
            }
            let session = Rc::new(Session {
                shard: shard.clone(),
                me,
                leader,
                members: Cell::new(0),
                fetches: RefCell::new(Vec::new()),
                epochs: RefCell::new(Vec::new()),
                preparing: Cell::new(0),
                wake: Doorbell::default(),
            });
            sessions.insert(leader, session.clone());
            glommio::spawn_local(session.clone().run()).detach();
            session
        });
        session.members.set(session.members.get() + 1);
        Membership {
            session,
            expected: Rc::new(Cell::new(false)),
        }
    }

    /// Sends what is queued, one request per kind, until no member is
    /// left.
    async fn run(self: Rc<Self>) {
        let mut conn: Option<Conn> = None;
        loop {
            // Answered members run first and ask again, so the next request
            // holds all of them rather than the first one back.
            futures_lite::future::yield_now().await;
            let queued = !self.fetches.borrow().is_empty() || !self.epochs.borrow().is_empty();
            if !queued {
                if self.members.get() == 0 {
                    SESSIONS.with(|s| {
                        let mut sessions = s.borrow_mut();
                        if sessions
                            .get(&self.leader)
                            .is_some_and(|x| Rc::ptr_eq(x, &self))
                        {
                            sessions.remove(&self.leader);
                        }
                    });
                    return;
                }
                self.wake.wait().await;
                continue;
            }
            if conn.is_none() {
                match self.connect().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        self.fail_all(&e);
                        glommio::timer::sleep(REPLICA_RETRY_BACKOFF).await;
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            let epochs = std::mem::take(&mut *self.epochs.borrow_mut());
            if !epochs.is_empty() {
                if let Err(e) = self.ask_epochs(c, epochs).await {
                    tracing::debug!(leader = self.leader.0, error = %e, "replica session connection dropped");
                    conn = None;
                    continue;
                }
            }
            let fetches = std::mem::take(&mut *self.fetches.borrow_mut());
            if !fetches.is_empty() {
                let Some(c) = conn.as_mut() else { continue };
                if let Err(e) = self.fetch(c, fetches).await {
                    tracing::debug!(leader = self.leader.0, error = %e, "replica session connection dropped");
                    conn = None;
                }
            }
        }
    }

    fn fail_all(&self, error: &str) {
        for a in std::mem::take(&mut *self.epochs.borrow_mut()) {
            self.answer(a, Err(error.to_string()));
        }
        for a in std::mem::take(&mut *self.fetches.borrow_mut()) {
            self.answer(a, Err(error.to_string()));
        }
    }

    /// Hands a member its answer; it is expected back until it asks again
    /// or leaves.
    fn answer<T>(&self, ask: Ask<T>, answer: T) {
        if ask.reply.send(answer).is_ok() && !ask.expected.replace(true) {
            self.preparing.set(self.preparing.get() + 1);
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let md = self.shard.metadata();
        let b = md
            .brokers
            .iter()
            .find(|b| b.id == self.leader.0)
            .ok_or_else(|| format!("leader {} is not a live broker", self.leader.0))?;
        let addr = format!("{}:{}", b.host, b.port);
        drop(md);
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

    /// One OffsetForLeaderEpoch for every queued question. An error of the
    /// exchange fails them all and drops the connection (`Err`).
    async fn ask_epochs(&self, conn: &mut Conn, asks: Vec<Ask<EpochAnswer>>) -> Result<(), String> {
        let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
        for a in &asks {
            let partition = OffsetForLeaderPartition::default()
                .with_partition(a.partition)
                .with_current_leader_epoch(a.current_leader_epoch.0)
                .with_leader_epoch(a.at as i32);
            match topics.iter_mut().find(|t| t.topic.0.as_str() == a.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(a.topic.clone())))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(self.me.0))
            .with_topics(topics);
        let response: OffsetForLeaderEpochResponse = match conn
            .call(
                ApiKey::OffsetForLeaderEpoch,
                OFFSET_FOR_LEADER_EPOCH_VERSION,
                &request,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                for a in asks {
                    self.answer(a, Err(e.clone()));
                }
                return Err(e);
            }
        };
        for a in asks {
            let part = response
                .topics
                .iter()
                .filter(|t| t.topic.0.as_str() == a.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition == a.partition);
            let answer = match part {
                None => Err("OffsetForLeaderEpoch answered without the partition".to_string()),
                Some(p) if p.error_code != 0 => Err(format!(
                    "OffsetForLeaderEpoch answered error {}",
                    p.error_code
                )),
                Some(p) => Ok((LeaderEpoch(p.leader_epoch), Offset(p.end_offset))),
            };
            self.answer(a, answer);
        }
        Ok(())
    }

    /// One replica fetch for every queued partition. An error of the
    /// exchange fails them all and drops the connection (`Err`).
    async fn fetch(&self, conn: &mut Conn, asks: Vec<Ask<Fetched>>) -> Result<(), String> {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for a in &asks {
            let partition = FetchPartition::default()
                .with_partition(a.partition)
                .with_current_leader_epoch(a.current_leader_epoch.0)
                .with_fetch_offset(a.at)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(REPLICA_FETCH_BYTES_MAX);
            match topics.iter_mut().find(|t| t.topic.0.as_str() == a.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(a.topic.clone())))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        // A member about to ask must not wait behind a long poll.
        let max_wait_ms = if self.preparing.get() > 0 || !self.epochs.borrow().is_empty() {
            REPLICA_FETCH_WAIT_BUSY_MS
        } else {
            REPLICA_FETCH_WAIT_MS
        };
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(self.me.0))
            .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(self.me.0)))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_RESPONSE_BYTES_MAX)
            .with_topics(topics);
        let response: Result<FetchResponse, String> =
            conn.call(ApiKey::Fetch, FETCH_VERSION, &request).await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                for a in asks {
                    self.answer(a, Err(e.clone()));
                }
                return Err(e);
            }
        };
        for a in asks {
            let answer = if response.error_code != 0 {
                Err(format!("Fetch answered error {}", response.error_code))
            } else {
                let part = response
                    .responses
                    .iter()
                    .filter(|t| t.topic.0.as_str() == a.topic)
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == a.partition);
                match part {
                    None => Err("Fetch answered without the partition".to_string()),
                    Some(p) if p.error_code != 0 => {
                        Err(format!("Fetch answered error {}", p.error_code))
                    }
                    Some(p) => Ok((
                        p.records.clone().unwrap_or_default(),
                        Offset(p.high_watermark),
                    )),
                }
            };
            self.answer(a, answer);
        }
        Ok(())
    }
}

impl Membership {
    /// Queues a question and waits for its answer.
    async fn ask<T>(
        &self,
        queue: &RefCell<Vec<Ask<T>>>,
        topic: &str,
        partition: i32,
        current_leader_epoch: LeaderEpoch,
        at: i64,
    ) -> Result<T, String> {
        self.back();
        let (tx, rx) = oneshot::channel();
        queue.borrow_mut().push(Ask {
            topic: topic.to_string(),
            partition,
            current_leader_epoch,
            at,
            expected: self.expected.clone(),
            reply: tx,
        });
        self.session.wake.ring();
        rx.await
            .map_err(|_| "the replica session ended".to_string())
    }

    /// The member asks again (or leaves): no longer expected.
    fn back(&self) {
        if self.expected.replace(false) {
            let s = &self.session;
            s.preparing.set(s.preparing.get() - 1);
        }
    }

    /// OffsetForLeaderEpoch for `epoch` of one partition, as the replica.
    pub async fn ask_epoch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    ) -> EpochAnswer {
        self.ask(
            &self.session.epochs,
            topic,
            partition,
            current_leader_epoch,
            i64::from(epoch.0),
        )
        .await?
    }

    /// A replica fetch of one partition from `offset`, sent with the
    /// session's next fetch.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: LeaderEpoch,
        offset: Offset,
    ) -> Fetched {
        self.ask(
            &self.session.fetches,
            topic,
            partition,
            current_leader_epoch,
            offset.0,
        )
        .await?
    }

    /// Waits for `writes` (the member's own appends becoming durable)
    /// counted as about to ask, so the session's fetch meanwhile does not
    /// long-poll.
    pub async fn preparing<T>(&self, writes: impl std::future::Future<Output = T>) -> T {
        let s = &self.session;
        let counted = !self.expected.replace(true);
        if counted {
            s.preparing.set(s.preparing.get() + 1);
        }
        writes.await
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.back();
        let s = &self.session;
        s.members.set(s.members.get() - 1);
        s.wake.ring();
    }
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
