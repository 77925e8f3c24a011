//! The ids and small types every layer of Corelog shares.
//!
//! Each is a newtype, so that an offset cannot be passed where a shard index
//! is expected, and each says what it counts. This crate sits below every
//! other: it depends on nothing of Corelog's and does no I/O.

use std::fmt;

pub mod epochs;
pub mod rng;

use serde::{Deserialize, Serialize};

/// A Kafka offset: the position of a record in its partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset `n` records later.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Index of a shard: one pinned executor per core, numbered from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A broker's node id, as Kafka's Metadata and DescribeCluster report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub i32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A topic's 16-byte id (KIP-516), as Fetch v13+ and Metadata v10+ carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub [u8; 16]);

/// A partition's leader epoch: bumped whenever its leadership changes. A
/// single node never changes leaders, so every partition stays at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LeaderEpoch(pub i32);

/// An idempotent producer's id, handed out by InitProducerId and carried
/// in each of its batches. Kafka writes -1 ([`ProducerId::NONE`]) in a batch
/// without producer fields.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// No producer: a batch written without idempotence.
    pub const NONE: ProducerId = ProducerId(-1);

    /// Whether this is no producer id: Kafka counts every negative id as
    /// none (`RecordBatch.hasProducerId` is `producerId > -1`).
    pub fn is_none(self) -> bool {
        self.0 < 0
    }

    /// The id `n` ids later.
    pub fn plus(self, n: i64) -> ProducerId {
        ProducerId(self.0 + n)
    }
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A producer id's epoch: bumped when a producer with that id starts over,
/// so that batches of its older incarnation are refused. -1
/// ([`ProducerEpoch::NONE`]) in a batch without producer fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ProducerEpoch(pub i16);

impl ProducerEpoch {
    /// No epoch: a batch written without idempotence.
    pub const NONE: ProducerEpoch = ProducerEpoch(-1);
    /// A new producer id's first epoch.
    pub const ZERO: ProducerEpoch = ProducerEpoch(0);

    /// Whether this is no epoch (any negative value).
    pub fn is_none(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for ProducerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partition_displays_as_kafka_names_its_directory() {
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
    }

    #[test]
    fn shard_id_serializes_as_a_bare_number() {
        assert_eq!(serde_json::to_string(&ShardId(2)).unwrap(), "2");
    }

    #[test]
    fn producer_ids_and_epochs_are_none_when_negative_as_in_kafka() {
        assert!(ProducerId::NONE.is_none() && ProducerId(-2).is_none());
        assert!(!ProducerId(0).is_none());
        assert!(ProducerEpoch::NONE.is_none() && !ProducerEpoch::ZERO.is_none());
        assert_eq!(serde_json::to_string(&ProducerId(1000)).unwrap(), "1000");
    }
}
