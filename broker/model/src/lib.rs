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

/// One partition of one topic. Ordered by topic, then partition, as the
/// `(String, i32)` tuple it replaced was.
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

impl From<(String, i32)> for TopicPartition {
    fn from((topic, partition): (String, i32)) -> TopicPartition {
        TopicPartition { topic, partition }
    }
}

impl From<(&str, i32)> for TopicPartition {
    fn from((topic, partition): (&str, i32)) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }
}

/// Serialized as the tuple `(topic, partition)` (in JSON `["orders",3]`),
/// the form the cluster's control frames carried before this type
/// existed, so that nodes of either version read each other's frames.
impl Serialize for TopicPartition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.topic, self.partition).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopicPartition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TopicPartition, D::Error> {
        <(String, i32)>::deserialize(d).map(TopicPartition::from)
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
    fn topic_partition_serializes_as_the_tuple_it_replaced() {
        let tp = TopicPartition::new("orders", 3);
        let tuple = ("orders".to_string(), 3i32);
        assert_eq!(serde_json::to_string(&tp).unwrap(), r#"["orders",3]"#);
        assert_eq!(
            serde_json::to_string(&tp).unwrap(),
            serde_json::to_string(&tuple).unwrap()
        );
        let old: TopicPartition = serde_json::from_str(r#"["orders",3]"#).unwrap();
        assert_eq!(old, tp);
    }

    #[test]
    fn topic_partitions_order_as_the_tuple_did() {
        // Maps keyed by topic-partition are written out in key order
        // (the offsets log's snapshot), so the order must not change.
        let mut tps = [
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 10),
            TopicPartition::new("a", 2),
        ];
        tps.sort();
        let names: Vec<String> = tps.iter().map(|tp| tp.to_string()).collect();
        assert_eq!(names, ["a-2", "a-10", "b-0"]);
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
