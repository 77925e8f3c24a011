//! The consumer protocol's own messages: the subscription and assignment
//! bytes that classic group members exchange through JoinGroup and
//! SyncGroup. Each is an i16 version followed by the message.
//!
//! These bytes come from some client, so they are walked before
//! kafka-protocol decodes them: its decoder reserves room for an array from
//! the length field alone, and a corrupt length must be an error, not a
//! huge allocation.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

use crate::precheck::{precheck_consumer_assignment, precheck_consumer_subscription};

/// The highest version of both messages the codec knows. Later versions
/// start with the same fields, so they are read as this one.
pub const CONSUMER_PROTOCOL_VERSION_MAX: i16 = 3;

/// Why a member's subscription or assignment bytes do not decode. The group
/// coordinator treats such a member as subscribed to nothing and tools show
/// no assignment; no Kafka error code is sent for it, as in Kafka, whose
/// coordinator does not parse these bytes at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerProtocolError {
    /// Fewer than the two bytes of the version field.
    #[error("shorter than its version field")]
    NoVersion,
    #[error("negative version {0}")]
    NegativeVersion(i16),
    /// A length or count the bytes cannot hold, found before decoding.
    #[error("{0}")]
    Malformed(&'static str),
    /// kafka-protocol's decoder refused the bytes; its error is an
    /// `anyhow::Error`, kept as its text.
    #[error("{0}")]
    Decode(String),
}

fn split_version(bytes: &Bytes) -> Result<(i16, Bytes), ConsumerProtocolError> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Err(ConsumerProtocolError::NoVersion);
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(ConsumerProtocolError::NegativeVersion(version));
    }
    Ok((version.min(CONSUMER_PROTOCOL_VERSION_MAX), buf))
}

/// Decodes a member's subscription (JoinGroup protocol metadata).
pub fn decode_subscription(
    bytes: &Bytes,
) -> Result<ConsumerProtocolSubscription, ConsumerProtocolError> {
    let (version, mut buf) = split_version(bytes)?;
    precheck_consumer_subscription(version, &buf).map_err(ConsumerProtocolError::Malformed)?;
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| ConsumerProtocolError::Decode(e.to_string()))
}

/// Decodes a member's assignment (SyncGroup). Empty bytes, a member with
/// no assignment yet, are an error here; callers decide what they mean.
pub fn decode_assignment(
    bytes: &Bytes,
) -> Result<ConsumerProtocolAssignment, ConsumerProtocolError> {
    let (version, mut buf) = split_version(bytes)?;
    precheck_consumer_assignment(&buf).map_err(ConsumerProtocolError::Malformed)?;
    ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| ConsumerProtocolError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn framed<M: Encodable>(m: &M, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(version);
        m.encode(&mut b, version).unwrap();
        b.freeze()
    }

    #[test]
    fn every_version_round_trips_and_later_versions_read_as_the_highest() {
        for version in 0..=CONSUMER_PROTOCOL_VERSION_MAX {
            let s = ConsumerProtocolSubscription::default().with_topics(vec![
                StrBytes::from_static_str("a"),
                StrBytes::from_static_str("b"),
            ]);
            assert_eq!(
                decode_subscription(&framed(&s, version)).unwrap().topics,
                s.topics
            );
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_static_str("a")))
                    .with_partitions(vec![0, 2]),
            ]);
            assert_eq!(
                decode_assignment(&framed(&a, version))
                    .unwrap()
                    .assigned_partitions,
                a.assigned_partitions
            );
        }
        let s = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")]);
        let mut future = BytesMut::from(&framed(&s, 3)[..]);
        future[..2].copy_from_slice(&9i16.to_be_bytes());
        assert_eq!(
            decode_subscription(&future.freeze()).unwrap().topics.len(),
            1
        );
    }

    #[test]
    fn huge_array_lengths_and_short_input_are_errors_not_allocations() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(i32::MAX); // topic count
        assert!(decode_subscription(&b.clone().freeze()).is_err());
        assert!(matches!(
            decode_assignment(&b.freeze()),
            Err(ConsumerProtocolError::Malformed(_))
        ));
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1);
        b.put_i16(1);
        b.put_u8(b'a');
        b.put_i32(i32::MAX); // partition count
        b.put_i32(-1);
        assert!(decode_assignment(&b.freeze()).is_err());
        assert_eq!(
            decode_subscription(&Bytes::from_static(&[0])).unwrap_err(),
            ConsumerProtocolError::NoVersion
        );
        assert_eq!(
            decode_assignment(&Bytes::from_static(&[0xff, 0xff])).unwrap_err(),
            ConsumerProtocolError::NegativeVersion(-1)
        );
    }
}
