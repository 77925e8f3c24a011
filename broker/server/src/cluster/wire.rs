//! The internal listener's frames: what cluster nodes (and `corelog
//! cluster status`) send each other over `cluster_listen`.
//!
//! A connection is a sequence of frames, each `length: u32` (big endian,
//! the bytes after it), `kind: u8`, body. The first frame on a connection
//! is a [`Hello`] naming the sender; the listener refuses a connection
//! whose hello is malformed or names a node that is not a voter (an admin
//! tool says [`ADMIN_NODE`] and may only ask for status).
//!
//! - `RAFT`: a `corelog_quorum::codec` message, from a voter, to the
//!   quorum. No answer.
//! - `REQUEST` / `RESPONSE`: a controller request forwarded to the active
//!   controller (broker registration and heartbeats), and its answer on
//!   the same connection. JSON bodies, at most [`CONTROL_FRAME_MAX`].
//! - `STATUS` / `STATUS_RESPONSE`: this node's view of the quorum and the
//!   brokers (`corelog cluster status`). JSON.
//!
//! Bounds: a raft frame at most [`RAFT_FRAME_MAX`] (the codec's largest
//! snapshot plus headroom), any other at most [`CONTROL_FRAME_MAX`]; a
//! longer length prefix closes the connection before anything is read
//! into memory.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::TopicPartition;

pub const MAGIC: &[u8; 4] = b"CLCQ";
pub const VERSION: u8 = 1;
/// The node id an admin tool gives in its hello.
pub const ADMIN_NODE: i32 = -1;

pub const KIND_HELLO: u8 = 1;
pub const KIND_RAFT: u8 = 2;
pub const KIND_REQUEST: u8 = 3;
pub const KIND_RESPONSE: u8 = 4;
pub const KIND_STATUS: u8 = 5;
pub const KIND_STATUS_RESPONSE: u8 = 6;

/// The largest raft frame: the quorum codec's largest snapshot and some.
pub const RAFT_FRAME_MAX: usize = (corelog_quorum::codec::SNAPSHOT_BYTES_MAX as usize) + (2 << 20);
/// The largest frame of any other kind.
pub const CONTROL_FRAME_MAX: usize = 1 << 20;

/// The first frame of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub node_id: i32,
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(9);
        body.extend_from_slice(MAGIC);
        body.push(VERSION);
        body.extend_from_slice(&self.node_id.to_be_bytes());
        frame(KIND_HELLO, &body)
    }

    pub fn decode(kind: u8, body: &[u8]) -> Result<Hello, WireError> {
        if kind != KIND_HELLO {
            return Err(WireError::NotHello { kind });
        }
        if body.len() != 9 || &body[..4] != MAGIC {
            return Err(WireError::NotCorelogHello);
        }
        if body[4] != VERSION {
            return Err(WireError::HelloVersion { version: body[4] });
        }
        let node_id = i32::from_be_bytes([body[5], body[6], body[7], body[8]]);
        Ok(Hello { node_id })
    }
}

/// Why a frame of the internal listener, or its hello, is refused before
/// anything reads its body: the connection is closed, the refusal logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length prefix of 0: a frame has at least its kind byte.
    #[error("empty frame")]
    EmptyFrame,
    /// A length prefix over the largest frame of any kind.
    #[error("frame of {bytes} bytes is over the bound")]
    FrameTooLarge { bytes: usize },
    /// A frame over the bound of its kind ([`frame_max`]).
    #[error("frame of kind {kind} and {bytes} bytes is over its bound")]
    FrameOverBound { kind: u8, bytes: usize },
    /// The first frame of a connection is not a hello.
    #[error("expected a hello frame, got kind {kind}")]
    NotHello { kind: u8 },
    /// A hello without Corelog's magic: another protocol on the port.
    #[error("not a corelog cluster hello")]
    NotCorelogHello,
    /// A hello of another version of the internal protocol.
    #[error("hello of version {version}, expected {VERSION}")]
    HelloVersion { version: u8 },
}

/// One frame: length, kind, body.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// The largest body a frame of `kind` may carry.
pub fn frame_max(kind: u8) -> usize {
    if kind == KIND_RAFT {
        RAFT_FRAME_MAX
    } else {
        CONTROL_FRAME_MAX
    }
}

/// Checks a frame's length prefix (the bytes after it) before reading on.
pub fn check_length(len: u32) -> Result<usize, WireError> {
    let len = len as usize;
    if len == 0 {
        return Err(WireError::EmptyFrame);
    }
    if len - 1 > RAFT_FRAME_MAX {
        return Err(WireError::FrameTooLarge { bytes: len });
    }
    Ok(len)
}

/// Checks a frame's size against the bound of its kind; `len` has passed
/// [`check_length`].
pub fn check_kind_length(kind: u8, len: usize) -> Result<(), WireError> {
    if len - 1 > frame_max(kind) {
        return Err(WireError::FrameOverBound { kind, bytes: len });
    }
    Ok(())
}

/// A controller request a node forwards to the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    Register {
        broker: i32,
        incarnation: [u8; 16],
        /// `(listener name, host, port)`
        endpoints: Vec<(String, String, u16)>,
        rack: Option<String>,
    },
    Heartbeat {
        broker: i32,
        epoch: i64,
    },
    /// One topic of a CreateTopics request (see `corelog_controller::Request`).
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Vec<Vec<i32>>>,
        configs: Vec<(String, String)>,
        validate_only: bool,
    },
    CreatePartitions {
        name: String,
        count: i32,
        assignment: Option<Vec<Vec<i32>>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Set (`Some`) or remove (`None`) topic configs.
    AlterConfigs {
        topic: String,
        changes: Vec<(String, Option<String>)>,
    },
    AllocateProducerIds {
        broker: i32,
        epoch: i64,
    },
    /// Kafka's ElectLeaders: `unclean` false elects preferred replicas;
    /// `partitions` `None` asks for every partition.
    ElectLeaders {
        unclean: bool,
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Kafka's AlterPartitionReassignments.
    AlterReassignments {
        partitions: Vec<ReassignmentAsk>,
    },
    /// Kafka's ListPartitionReassignments; `None` lists all.
    ListReassignments {
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Create the internal offsets topic unless it exists.
    EnsureOffsetsTopic {
        partitions: i32,
        replication_factor: i32,
    },
    /// Partition leaders' ISR changes (Kafka's AlterPartition), all of one
    /// broker's, fenced by its broker epoch and each by the leader epoch
    /// and the partition epoch its leader knows; at most
    /// [`ALTER_PARTITIONS_MAX`].
    AlterPartitions {
        broker: i32,
        broker_epoch: i64,
        changes: Vec<IsrChange>,
    },
}

/// The most ISR changes one AlterPartitions carries: about 120 bytes of
/// JSON each, well inside [`CONTROL_FRAME_MAX`].
pub const ALTER_PARTITIONS_MAX: usize = 1000;

/// One partition's ISR change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    /// 32 hex digits.
    pub topic_id: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// One change's outcome: the partition's state after it, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IsrOutcome {
    Altered {
        isr: Vec<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    Refused {
        code: i16,
        message: String,
    },
}

impl ControlRequest {
    /// The broker the request speaks for, when it is a broker's own
    /// (registration, heartbeats, producer ids): a node forwards only its
    /// own broker's. Admin requests speak for no broker.
    pub fn broker(&self) -> Option<i32> {
        match self {
            ControlRequest::Register { broker, .. }
            | ControlRequest::Heartbeat { broker, .. }
            | ControlRequest::AllocateProducerIds { broker, .. }
            | ControlRequest::AlterPartitions { broker, .. } => Some(*broker),
            _ => None,
        }
    }
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlResponse {
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
    },
    /// The new topic's id (32 hex digits; all zeros when validate-only)
    /// and its replicas per partition.
    TopicCreated {
        id: String,
        assignment: Vec<Vec<i32>>,
    },
    PartitionsCreated,
    TopicDeleted {
        id: String,
    },
    ConfigsAltered,
    /// Each change's outcome, in the order asked.
    PartitionsAltered {
        results: Vec<IsrOutcome>,
    },
    /// Each partition's election.
    LeadersElected {
        results: Vec<PartitionOutcome>,
    },
    /// Each partition's AlterPartitionReassignments outcome.
    ReassignmentsAltered {
        results: Vec<PartitionOutcome>,
    },
    /// The reassignments in progress.
    Reassignments {
        list: Vec<ReassignmentStatus>,
    },
    /// Producer ids `[start, start + len)`, this broker's alone.
    ProducerIds {
        start: i64,
        len: i64,
    },
    /// A Kafka error code and message (NOT_CONTROLLER when this node is
    /// not the active controller, with the leader it knows of).
    Error {
        code: i16,
        message: String,
        leader: Option<i32>,
    },
}

// The three types below are encoded as the flat tuples the frames carried
// before they existed (`(topic, partition, ...)`, a JSON array), so that
// nodes of either version read each other's frames; see the test
// `partition_types_keep_the_tuple_encoding`.

/// One partition's AlterPartitionReassignments ask: move it to the
/// replicas `target` names, or cancel its reassignment (`None`). Encoded
/// as `(topic, partition, target)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "(String, i32, Option<Vec<i32>>)",
    into = "(String, i32, Option<Vec<i32>>)"
)]
pub struct ReassignmentAsk {
    pub partition: TopicPartition,
    pub target: Option<Vec<i32>>,
}

impl From<(String, i32, Option<Vec<i32>>)> for ReassignmentAsk {
    fn from((topic, partition, target): (String, i32, Option<Vec<i32>>)) -> ReassignmentAsk {
        ReassignmentAsk {
            partition: TopicPartition { topic, partition },
            target,
        }
    }
}

impl From<ReassignmentAsk> for (String, i32, Option<Vec<i32>>) {
    fn from(a: ReassignmentAsk) -> Self {
        (a.partition.topic, a.partition.partition, a.target)
    }
}

/// One partition's outcome of a per-partition admin request the
/// controller answers (ElectLeaders, AlterPartitionReassignments): a Kafka
/// error code and message. Encoded as `(topic, partition, code, message)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "(String, i32, i16, Option<String>)",
    into = "(String, i32, i16, Option<String>)"
)]
pub struct PartitionOutcome {
    pub partition: TopicPartition,
    pub code: i16,
    pub message: Option<String>,
}

impl PartitionOutcome {
    pub fn new(partition: TopicPartition, code: i16, message: Option<String>) -> PartitionOutcome {
        PartitionOutcome {
            partition,
            code,
            message,
        }
    }
}

impl From<(String, i32, i16, Option<String>)> for PartitionOutcome {
    fn from((topic, partition, code, message): (String, i32, i16, Option<String>)) -> Self {
        PartitionOutcome {
            partition: TopicPartition { topic, partition },
            code,
            message,
        }
    }
}

impl From<PartitionOutcome> for (String, i32, i16, Option<String>) {
    fn from(o: PartitionOutcome) -> Self {
        (o.partition.topic, o.partition.partition, o.code, o.message)
    }
}

/// One partition's reassignment in progress. Encoded as `(topic,
/// partition, replicas, adding, removing)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StatusTuple", into = "StatusTuple")]
pub struct ReassignmentStatus {
    pub partition: TopicPartition,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

type StatusTuple = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

impl From<StatusTuple> for ReassignmentStatus {
    fn from((topic, partition, replicas, adding, removing): StatusTuple) -> Self {
        ReassignmentStatus {
            partition: TopicPartition { topic, partition },
            replicas,
            adding,
            removing,
        }
    }
}

impl From<ReassignmentStatus> for StatusTuple {
    fn from(s: ReassignmentStatus) -> Self {
        (
            s.partition.topic,
            s.partition.partition,
            s.replicas,
            s.adding,
            s.removing,
        )
    }
}

/// One broker as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerStatus {
    pub id: i32,
    pub epoch: i64,
    pub fenced: bool,
    /// `NAME://host:port`
    pub endpoints: Vec<String>,
    pub rack: Option<String>,
}

/// One node's view of the quorum and the brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: i32,
    /// "leader", "follower" (a leader is known) or "candidate" (none is).
    pub role: String,
    pub term: u64,
    pub leader: Option<i32>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// `(id, host:port)` of every voter.
    pub voters: Vec<(i32, String)>,
    /// The brokers in this node's image, at `applied_index`.
    pub brokers: Vec<BrokerStatus>,
    /// This node's own broker: its registered epoch, if it has one.
    pub own_broker_epoch: Option<i64>,
}

/// Reads one frame from a blocking stream: `(kind, body)`.
pub fn read_frame_blocking(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = check_length(u32::from_be_bytes(len))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind)?;
    check_kind_length(kind[0], len)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut body = vec![0u8; len - 1];
    r.read_exact(&mut body)?;
    Ok((kind[0], body))
}

/// Asks the node at `addr` for its status, as an admin tool (blocking).
pub fn fetch_status(addr: &str, timeout: std::time::Duration) -> Result<NodeStatus, String> {
    use std::net::ToSocketAddrs;
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s =
        std::net::TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let mut out = Hello {
        node_id: ADMIN_NODE,
    }
    .encode();
    out.extend_from_slice(&frame(KIND_STATUS, &[]));
    s.write_all(&out).map_err(|e| format!("{addr}: {e}"))?;
    let (kind, body) = read_frame_blocking(&mut s).map_err(|e| format!("{addr}: {e}"))?;
    if kind != KIND_STATUS_RESPONSE {
        return Err(format!("{addr}: answered with a frame of kind {kind}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{addr}: bad status answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_refuses_garbage() {
        let f = Hello { node_id: 3 }.encode();
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        assert_eq!(Hello::decode(f[4], &f[5..]), Ok(Hello { node_id: 3 }));
        assert_eq!(
            Hello::decode(KIND_RAFT, &f[5..]),
            Err(WireError::NotHello { kind: KIND_RAFT })
        );
        assert_eq!(
            Hello::decode(KIND_HELLO, b"GET / HTTP/1.1"),
            Err(WireError::NotCorelogHello)
        );
        let mut old = f[5..].to_vec();
        old[4] = 9;
        assert_eq!(
            Hello::decode(KIND_HELLO, &old),
            Err(WireError::HelloVersion { version: 9 })
        );
    }

    #[test]
    fn lengths_are_bounded() {
        assert_eq!(check_length(0), Err(WireError::EmptyFrame));
        assert_eq!(
            check_length(u32::MAX),
            Err(WireError::FrameTooLarge {
                bytes: u32::MAX as usize
            })
        );
        assert_eq!(
            check_kind_length(KIND_STATUS, CONTROL_FRAME_MAX + 2),
            Err(WireError::FrameOverBound {
                kind: KIND_STATUS,
                bytes: CONTROL_FRAME_MAX + 2
            })
        );
        assert_eq!(check_length(10), Ok(10));
        let mut r = std::io::Cursor::new(frame(KIND_STATUS, &vec![0u8; CONTROL_FRAME_MAX + 1]));
        assert!(read_frame_blocking(&mut r).is_err());
    }

    /// Frames as the version before `TopicPartition` and the partition
    /// types above wrote them (flat tuples): they decode, and encoding
    /// gives back the same bytes.
    #[test]
    fn partition_types_keep_the_tuple_encoding() {
        let requests = [
            r#"{"ElectLeaders":{"unclean":false,"partitions":[["t",0],["u",3]]}}"#,
            r#"{"ElectLeaders":{"unclean":true,"partitions":null}}"#,
            r#"{"AlterReassignments":{"partitions":[["t",0,[1,2]],["u",1,null]]}}"#,
            r#"{"ListReassignments":{"partitions":[["t",2]]}}"#,
        ];
        for old in requests {
            let decoded: ControlRequest = serde_json::from_str(old).unwrap();
            assert_eq!(serde_json::to_string(&decoded).unwrap(), old);
        }
        let decoded: ControlRequest = serde_json::from_str(requests[2]).unwrap();
        assert_eq!(
            decoded,
            ControlRequest::AlterReassignments {
                partitions: vec![
                    ReassignmentAsk {
                        partition: TopicPartition::new("t", 0),
                        target: Some(vec![1, 2]),
                    },
                    ReassignmentAsk {
                        partition: TopicPartition::new("u", 1),
                        target: None,
                    },
                ],
            }
        );
        let responses = [
            r#"{"LeadersElected":{"results":[["t",0,0,null],["t",1,84,"no"]]}}"#,
            r#"{"ReassignmentsAltered":{"results":[["u",2,3,"unknown"]]}}"#,
            r#"{"Reassignments":{"list":[["t",0,[1,2,3],[3],[1]]]}}"#,
        ];
        for old in responses {
            let decoded: ControlResponse = serde_json::from_str(old).unwrap();
            assert_eq!(serde_json::to_string(&decoded).unwrap(), old);
        }
        let decoded: ControlResponse = serde_json::from_str(responses[2]).unwrap();
        assert_eq!(
            decoded,
            ControlResponse::Reassignments {
                list: vec![ReassignmentStatus {
                    partition: TopicPartition::new("t", 0),
                    replicas: vec![1, 2, 3],
                    adding: vec![3],
                    removing: vec![1],
                }],
            }
        );
    }
}
