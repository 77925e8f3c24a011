//! Metadata records: what the controller writes to the quorum's log, and
//! their stable binary encoding.
//!
//! One log entry holds one [`RecordBatch`]: records applied together or not
//! at all (a topic and its partitions, say). The encoding is versioned:
//! `version:u8 count:u32 record*`, each record `tag:u8` then its fields in
//! the order declared here, integers little-endian, strings `len:u32` +
//! UTF-8. A new field or record gets a new tag or a new batch version;
//! existing tags never change meaning, so a log written by an older broker
//! replays on a newer one. Decoding is bounded by the limits below and by
//! the input's length, and never panics ([`decode_batch`]).

use corelog_model::{LeaderEpoch, NodeId, TopicId};

use crate::codec::{DecodeError, Reader, Writer};

/// The batch encoding's version.
pub const RECORDS_VERSION: u8 = 1;
/// Most records in one batch (a topic with this many partitions, minus one).
pub const RECORDS_PER_BATCH_MAX: usize = 100_000;
/// Most bytes of a name, host, rack or config value.
pub const STRING_BYTES_MAX: usize = 32 * 1024;
/// Most endpoints one broker registers; most replicas of one partition.
pub const LIST_MAX: usize = 256;

/// A listener a broker registers: its name (`PLAINTEXT`, ...), host, port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A partition's placement and leadership as one record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// -1 when no replica can lead.
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

/// One metadata change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A broker (re)registers. Its broker epoch is the log index of this
    /// record's entry, as Kafka's is the record's offset. It starts fenced.
    RegisterBroker {
        broker: NodeId,
        incarnation: [u8; 16],
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    /// The broker at `epoch` stops leading anything (missed heartbeats).
    FenceBroker {
        broker: NodeId,
        epoch: i64,
    },
    /// The broker at `epoch` heartbeats and may lead again.
    UnfenceBroker {
        broker: NodeId,
        epoch: i64,
    },
    Topic {
        name: String,
        id: TopicId,
    },
    Partition(PartitionRecord),
    RemoveTopic {
        id: TopicId,
    },
    /// Sets (`Some`) or removes (`None`) one topic config.
    Config {
        topic: String,
        name: String,
        value: Option<String>,
    },
    /// A partition's ISR changes (Kafka's AlterPartition, committed), which
    /// bumps its partition epoch. Applies only at the partition's current
    /// partition epoch plus one, with the leader and leader epoch it names
    /// still current, and an ISR of its replicas that holds the leader.
    PartitionChange {
        topic_id: TopicId,
        partition: i32,
        isr: Vec<NodeId>,
        leader: NodeId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
    },
    /// A leader chosen by the controller outside a fencing (Kafka's
    /// ElectLeaders: the preferred replica, or an unclean election), at the
    /// next leader epoch and partition epoch, with the ISR it leads. Applies
    /// only if the partition is still at the epochs before those.
    ElectLeader {
        topic_id: TopicId,
        partition: i32,
        leader: NodeId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        isr: Vec<NodeId>,
    },
    /// A partition's replicas change (Kafka's partition reassignment,
    /// KIP-455): `replicas` is the set during the move (the target first,
    /// then the replicas being removed), `adding` and `removing` what
    /// differs from the target, both empty once it completes. Always at
    /// the next leader epoch and partition epoch, so the leader restarts
    /// its replication with the new set and a follower not in it stops.
    /// Applies only if the partition is still at the epochs before those,
    /// with an ISR of its new replicas that holds the leader.
    Reassign {
        topic_id: TopicId,
        partition: i32,
        replicas: Vec<NodeId>,
        adding: Vec<NodeId>,
        removing: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader: NodeId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
    },
    /// The block `[start, start + len)` goes to `broker` at `epoch`. Applies
    /// only if `start` is the image's next free producer id.
    ProducerIds {
        broker: NodeId,
        epoch: i64,
        start: i64,
        len: i64,
    },
}

/// Records applied together.
pub type RecordBatch = Vec<Record>;

mod tag {
    pub const REGISTER_BROKER: u8 = 1;
    pub const FENCE_BROKER: u8 = 2;
    pub const UNFENCE_BROKER: u8 = 3;
    pub const TOPIC: u8 = 4;
    pub const PARTITION: u8 = 5;
    pub const REMOVE_TOPIC: u8 = 6;
    pub const CONFIG: u8 = 7;
    pub const PRODUCER_IDS: u8 = 8;
    pub const PARTITION_CHANGE: u8 = 9;
    pub const ELECT_LEADER: u8 = 10;
    pub const REASSIGN: u8 = 11;
}

pub(crate) fn put_nodes(w: &mut Writer, nodes: &[NodeId]) {
    w.len(nodes.len());
    for n in nodes {
        w.i32(n.0);
    }
}

pub(crate) fn get_nodes(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Vec<NodeId>, DecodeError> {
    let n = r.len(LIST_MAX, 4, what)?;
    (0..n).map(|_| r.i32().map(NodeId)).collect()
}

pub(crate) fn put_partition(w: &mut Writer, p: &PartitionRecord) {
    w.bytes16(&p.topic_id.0);
    w.i32(p.partition);
    put_nodes(w, &p.replicas);
    put_nodes(w, &p.isr);
    w.i32(p.leader.0);
    w.i32(p.leader_epoch.0);
    w.i32(p.partition_epoch);
}

pub(crate) fn get_partition(r: &mut Reader<'_>) -> Result<PartitionRecord, DecodeError> {
    Ok(PartitionRecord {
        topic_id: TopicId(r.bytes16()?),
        partition: r.i32()?,
        replicas: get_nodes(r, "replicas")?,
        isr: get_nodes(r, "isr")?,
        leader: NodeId(r.i32()?),
        leader_epoch: LeaderEpoch(r.i32()?),
        partition_epoch: r.i32()?,
    })
}

pub(crate) fn put_endpoints(w: &mut Writer, endpoints: &[Endpoint]) {
    w.len(endpoints.len());
    for e in endpoints {
        w.str(&e.name);
        w.str(&e.host);
        w.u16(e.port);
    }
}

pub(crate) fn get_endpoints(r: &mut Reader<'_>) -> Result<Vec<Endpoint>, DecodeError> {
    let n = r.len(LIST_MAX, 10, "endpoints")?;
    (0..n)
        .map(|_| {
            Ok(Endpoint {
                name: r.str(STRING_BYTES_MAX, "listener name")?,
                host: r.str(STRING_BYTES_MAX, "host")?,
                port: r.u16()?,
            })
        })
        .collect()
}

fn put_record(w: &mut Writer, rec: &Record) {
    match rec {
        Record::RegisterBroker {
            broker,
            incarnation,
            endpoints,
            rack,
        } => {
            w.u8(tag::REGISTER_BROKER);
            w.i32(broker.0);
            w.bytes16(incarnation);
            put_endpoints(w, endpoints);
            w.opt_str(rack.as_deref());
        }
        Record::FenceBroker { broker, epoch } => {
            w.u8(tag::FENCE_BROKER);
            w.i32(broker.0);
            w.i64(*epoch);
        }
        Record::UnfenceBroker { broker, epoch } => {
            w.u8(tag::UNFENCE_BROKER);
            w.i32(broker.0);
            w.i64(*epoch);
        }
        Record::Topic { name, id } => {
            w.u8(tag::TOPIC);
            w.str(name);
            w.bytes16(&id.0);
        }
        Record::Partition(p) => {
            w.u8(tag::PARTITION);
            put_partition(w, p);
        }
        Record::RemoveTopic { id } => {
            w.u8(tag::REMOVE_TOPIC);
            w.bytes16(&id.0);
        }
        Record::Config { topic, name, value } => {
            w.u8(tag::CONFIG);
            w.str(topic);
            w.str(name);
            w.opt_str(value.as_deref());
        }
        Record::ProducerIds {
            broker,
            epoch,
            start,
            len,
        } => {
            w.u8(tag::PRODUCER_IDS);
            w.i32(broker.0);
            w.i64(*epoch);
            w.i64(*start);
            w.i64(*len);
        }
        Record::PartitionChange {
            topic_id,
            partition,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
        } => {
            w.u8(tag::PARTITION_CHANGE);
            w.bytes16(&topic_id.0);
            w.i32(*partition);
            put_nodes(w, isr);
            w.i32(leader.0);
            w.i32(leader_epoch.0);
            w.i32(*partition_epoch);
        }
        Record::ElectLeader {
            topic_id,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            isr,
        } => {
            w.u8(tag::ELECT_LEADER);
            w.bytes16(&topic_id.0);
            w.i32(*partition);
            w.i32(leader.0);
            w.i32(leader_epoch.0);
            w.i32(*partition_epoch);
            put_nodes(w, isr);
        }
        Record::Reassign {
            topic_id,
            partition,
            replicas,
            adding,
            removing,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
        } => {
            w.u8(tag::REASSIGN);
            w.bytes16(&topic_id.0);
            w.i32(*partition);
            put_nodes(w, replicas);
            put_nodes(w, adding);
            put_nodes(w, removing);
            put_nodes(w, isr);
            w.i32(leader.0);
            w.i32(leader_epoch.0);
            w.i32(*partition_epoch);
        }
    }
}

fn get_record(r: &mut Reader<'_>) -> Result<Record, DecodeError> {
    let t = r.u8()?;
    Ok(match t {
        tag::REGISTER_BROKER => Record::RegisterBroker {
            broker: NodeId(r.i32()?),
            incarnation: r.bytes16()?,
            endpoints: get_endpoints(r)?,
            rack: r.opt_str(STRING_BYTES_MAX, "rack")?,
        },
        tag::FENCE_BROKER => Record::FenceBroker {
            broker: NodeId(r.i32()?),
            epoch: r.i64()?,
        },
        tag::UNFENCE_BROKER => Record::UnfenceBroker {
            broker: NodeId(r.i32()?),
            epoch: r.i64()?,
        },
        tag::TOPIC => Record::Topic {
            name: r.str(STRING_BYTES_MAX, "topic name")?,
            id: TopicId(r.bytes16()?),
        },
        tag::PARTITION => Record::Partition(get_partition(r)?),
        tag::REMOVE_TOPIC => Record::RemoveTopic {
            id: TopicId(r.bytes16()?),
        },
        tag::CONFIG => Record::Config {
            topic: r.str(STRING_BYTES_MAX, "topic name")?,
            name: r.str(STRING_BYTES_MAX, "config name")?,
            value: r.opt_str(STRING_BYTES_MAX, "config value")?,
        },
        tag::PRODUCER_IDS => Record::ProducerIds {
            broker: NodeId(r.i32()?),
            epoch: r.i64()?,
            start: r.i64()?,
            len: r.i64()?,
        },
        tag::PARTITION_CHANGE => Record::PartitionChange {
            topic_id: TopicId(r.bytes16()?),
            partition: r.i32()?,
            isr: get_nodes(r, "isr")?,
            leader: NodeId(r.i32()?),
            leader_epoch: LeaderEpoch(r.i32()?),
            partition_epoch: r.i32()?,
        },
        tag::ELECT_LEADER => Record::ElectLeader {
            topic_id: TopicId(r.bytes16()?),
            partition: r.i32()?,
            leader: NodeId(r.i32()?),
            leader_epoch: LeaderEpoch(r.i32()?),
            partition_epoch: r.i32()?,
            isr: get_nodes(r, "isr")?,
        },
        tag::REASSIGN => Record::Reassign {
            topic_id: TopicId(r.bytes16()?),
            partition: r.i32()?,
            replicas: get_nodes(r, "replicas")?,
            adding: get_nodes(r, "adding replicas")?,
            removing: get_nodes(r, "removing replicas")?,
            isr: get_nodes(r, "isr")?,
            leader: NodeId(r.i32()?),
            leader_epoch: LeaderEpoch(r.i32()?),
            partition_epoch: r.i32()?,
        },
        other => return Err(DecodeError::Tag(other)),
    })
}

/// Encodes a batch as one log entry's data.
pub fn encode_batch(batch: &[Record]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(RECORDS_VERSION);
    w.len(batch.len());
    for rec in batch {
        put_record(&mut w, rec);
    }
    w.buf
}

/// The fewest bytes any encoded record takes (an empty Config record).
const RECORD_BYTES_MIN: usize = 10;

/// Decodes one log entry's data. Never panics; refuses trailing bytes.
pub fn decode_batch(data: &[u8]) -> Result<RecordBatch, DecodeError> {
    let mut r = Reader::new(data);
    let v = r.u8()?;
    if v != RECORDS_VERSION {
        return Err(DecodeError::Version(v));
    }
    // The smallest record is a Config with an empty topic and name and no
    // value: tag (1), two empty strings (4 + 4) and the "no value" flag (1),
    // 10 bytes. The bound must not exceed it, or a valid batch of such
    // records is refused as truncated (CI caught this at 13).
    let n = r.len(
        RECORDS_PER_BATCH_MAX,
        RECORD_BYTES_MIN,
        "records in a batch",
    )?;
    let mut batch = Vec::with_capacity(n);
    for _ in 0..n {
        batch.push(get_record(&mut r)?);
    }
    r.finish()?;
    Ok(batch)
}
