//! Record and snapshot encodings: round trips, and garbage never panics.

use corelog_controller::{
    decode_batch, encode_batch, Endpoint, MetadataImage, PartitionRecord, Record,
};
use corelog_model::{LeaderEpoch, NodeId, TopicId};
use proptest::prelude::*;

fn node() -> impl Strategy<Value = NodeId> {
    (-1i32..20).prop_map(NodeId)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{0,12}"
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            node(),
            any::<[u8; 16]>(),
            proptest::collection::vec((text(), text(), any::<u16>()), 0..3),
            proptest::option::of(text())
        )
            .prop_map(|(broker, incarnation, eps, rack)| Record::RegisterBroker {
                broker,
                incarnation,
                endpoints: eps
                    .into_iter()
                    .map(|(name, host, port)| Endpoint { name, host, port })
                    .collect(),
                rack,
            }),
        (node(), any::<i64>()).prop_map(|(broker, epoch)| Record::FenceBroker { broker, epoch }),
        (node(), any::<i64>()).prop_map(|(broker, epoch)| Record::UnfenceBroker { broker, epoch }),
        (text(), any::<[u8; 16]>()).prop_map(|(name, id)| Record::Topic {
            name,
            id: TopicId(id)
        }),
        (
            any::<[u8; 16]>(),
            any::<i32>(),
            proptest::collection::vec(node(), 0..5),
            proptest::collection::vec(node(), 0..5),
            node(),
            any::<i32>(),
            any::<i32>()
        )
            .prop_map(|(id, partition, replicas, isr, leader, le, pe)| {
                Record::Partition(PartitionRecord {
                    topic_id: TopicId(id),
                    partition,
                    replicas,
                    isr,
                    leader,
                    leader_epoch: LeaderEpoch(le),
                    partition_epoch: pe,
                })
            }),
        any::<[u8; 16]>().prop_map(|id| Record::RemoveTopic { id: TopicId(id) }),
        (text(), text(), proptest::option::of(text()))
            .prop_map(|(topic, name, value)| { Record::Config { topic, name, value } }),
        (node(), any::<i64>(), any::<i64>(), any::<i64>()).prop_map(
            |(broker, epoch, start, len)| Record::ProducerIds {
                broker,
                epoch,
                start,
                len
            }
        ),
        (
            any::<[u8; 16]>(),
            any::<i32>(),
            proptest::collection::vec(node(), 0..5),
            node(),
            any::<i32>(),
            any::<i32>()
        )
            .prop_map(|(id, partition, isr, leader, le, pe)| {
                Record::PartitionChange {
                    topic_id: TopicId(id),
                    partition,
                    isr,
                    leader,
                    leader_epoch: LeaderEpoch(le),
                    partition_epoch: pe,
                }
            }),
        (
            any::<[u8; 16]>(),
            any::<i32>(),
            proptest::collection::vec(node(), 0..5),
            node(),
            any::<i32>(),
            any::<i32>()
        )
            .prop_map(|(id, partition, isr, leader, le, pe)| {
                Record::ElectLeader {
                    topic_id: TopicId(id),
                    partition,
                    leader,
                    leader_epoch: LeaderEpoch(le),
                    partition_epoch: pe,
                    isr,
                }
            }),
        (
            (any::<[u8; 16]>(), any::<i32>()),
            (
                proptest::collection::vec(node(), 0..5),
                proptest::collection::vec(node(), 0..5),
                proptest::collection::vec(node(), 0..5),
                proptest::collection::vec(node(), 0..5),
            ),
            (node(), any::<i32>(), any::<i32>())
        )
            .prop_map(
                |((id, partition), (replicas, adding, removing, isr), (leader, le, pe))| {
                    Record::Reassign {
                        topic_id: TopicId(id),
                        partition,
                        replicas,
                        adding,
                        removing,
                        isr,
                        leader,
                        leader_epoch: LeaderEpoch(le),
                        partition_epoch: pe,
                    }
                }
            ),
    ]
}

/// The smallest records there are, many to a batch: the decoder's bound on
/// the record count (bytes left / smallest record) must not refuse them.
#[test]
fn a_batch_of_the_smallest_records_round_trips() {
    let smallest = Record::Config {
        topic: String::new(),
        name: String::new(),
        value: None,
    };
    for n in 1..8 {
        let batch = vec![smallest.clone(); n];
        let bytes = encode_batch(&batch);
        assert_eq!(
            bytes.len(),
            5 + 10 * n,
            "an empty Config record is 10 bytes"
        );
        assert_eq!(decode_batch(&bytes).unwrap(), batch);
    }
}

proptest! {
    #[test]
    fn batches_round_trip(batch in proptest::collection::vec(record(), 0..8)) {
        let bytes = encode_batch(&batch);
        prop_assert_eq!(decode_batch(&bytes).unwrap(), batch);
    }

    #[test]
    fn every_prefix_of_a_batch_is_refused(batch in proptest::collection::vec(record(), 1..4)) {
        let bytes = encode_batch(&batch);
        for n in 0..bytes.len() {
            prop_assert!(decode_batch(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_batch(&bytes);
        let _ = MetadataImage::decode_snapshot(&bytes);
    }

    #[test]
    fn mutated_batches_never_panic(
        batch in proptest::collection::vec(record(), 1..4),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode_batch(&batch);
        for (pos, val) in flips {
            let i = pos % bytes.len();
            bytes[i] = val;
        }
        let _ = decode_batch(&bytes);
    }

    /// Images built by applying arbitrary records snapshot and restore
    /// exactly, and their mutated snapshots never panic the decoder.
    #[test]
    fn snapshots_round_trip(
        batches in proptest::collection::vec(proptest::collection::vec(record(), 1..4), 0..12),
        flip in (any::<usize>(), any::<u8>()),
    ) {
        let mut image = MetadataImage::default();
        for (i, b) in batches.iter().enumerate() {
            let _ = image.apply(i as u64 + 1, b);
        }
        let bytes = image.encode_snapshot();
        prop_assert_eq!(&MetadataImage::decode_snapshot(&bytes).unwrap(), &image);
        let mut bad = bytes.clone();
        let i = flip.0 % bad.len();
        bad[i] = flip.1;
        let _ = MetadataImage::decode_snapshot(&bad);
    }
}

#[test]
fn a_huge_count_is_refused_before_allocating() {
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_batch(&bytes).is_err());
    let mut snap = vec![1u8];
    snap.extend_from_slice(&[0; 16]);
    snap.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(MetadataImage::decode_snapshot(&snap).is_err());
}

#[test]
fn unknown_versions_and_tags_are_refused() {
    assert!(decode_batch(&[2, 0, 0, 0, 0]).is_err());
    assert!(decode_batch(&[1, 1, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    assert_eq!(decode_batch(&[1, 0, 0, 0, 0]).unwrap(), vec![]);
}
