//! The zero-copy fetch response writer against kafka-protocol's FetchResponse,
//! for every version it supports.

use bytes::{Buf, Bytes, BytesMut};
use corelog_protocol::kafka_protocol::messages::fetch_response::{
    AbortedTransaction as KpAbortedTransaction, EpochEndOffset, FetchableTopicResponse,
    LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use corelog_protocol::kafka_protocol::messages::{BrokerId, FetchResponse, ProducerId, TopicName};
use corelog_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use corelog_protocol::{
    AbortedTransaction, FetchNodeEndpoint, FetchPartitionHeader, FetchResponseFrame,
    FetchResponseWriter, ProtocolError, FETCH_WRITER_VERSION_MAX, FETCH_WRITER_VERSION_MIN,
};

/// One partition of the test input.
struct Partition {
    header: FetchPartitionHeader<'static>,
    records: Vec<Bytes>,
}

/// One topic of the test input.
struct Topic {
    name: &'static str,
    id: [u8; 16],
    partitions: Vec<Partition>,
}

static ABORTED: [AbortedTransaction; 2] = [
    AbortedTransaction {
        producer_id: 1000,
        first_offset: 10,
    },
    AbortedTransaction {
        producer_id: 1001,
        first_offset: 20,
    },
];

/// A chunk of record bytes in its own allocation.
fn chunk(fill: u8, len: usize) -> Bytes {
    Bytes::from(vec![fill; len])
}

fn input(version: i16) -> Vec<Topic> {
    let replica = if version >= 11 { 2 } else { -1 };
    let header = |partition_index, aborted| FetchPartitionHeader {
        partition_index,
        error_code: 0,
        high_watermark: 500 + i64::from(partition_index),
        last_stable_offset: 400,
        log_start_offset: 7,
        aborted_transactions: aborted,
        preferred_read_replica: replica,
        current_leader: None,
        diverging_epoch: None,
    };
    // A larger chunk so that some length prefix needs a multi-byte uvarint.
    let big = chunk(0xcc, 300);
    vec![
        Topic {
            name: "orders",
            id: [1; 16],
            partitions: vec![
                Partition {
                    header: header(0, Some(&ABORTED[..])),
                    records: vec![chunk(0xaa, 61), big.slice(10..200)],
                },
                Partition {
                    header: FetchPartitionHeader {
                        error_code: 6,
                        // KIP-951's hint (written from v12).
                        current_leader: Some((3, 7)),
                        ..header(1, None)
                    },
                    records: vec![],
                },
                Partition {
                    // A diverging epoch (v12+) alone, and then beside a
                    // leader hint: tags 0 and 1, in order.
                    header: FetchPartitionHeader {
                        diverging_epoch: Some((4, 1234)),
                        ..header(5, None)
                    },
                    records: vec![],
                },
                Partition {
                    header: FetchPartitionHeader {
                        diverging_epoch: Some((2, 99)),
                        current_leader: Some((1, 5)),
                        ..header(6, None)
                    },
                    records: vec![],
                },
                Partition {
                    header: header(2, Some(&[])),
                    records: vec![chunk(0xbb, 70), Bytes::new(), chunk(0xdd, 5)],
                },
            ],
        },
        Topic {
            name: "empty-topic",
            id: [2; 16],
            partitions: vec![],
        },
        Topic {
            name: "payments",
            id: [3; 16],
            partitions: vec![Partition {
                header: header(9, None),
                records: vec![big],
            }],
        },
    ]
}

fn write(version: i16, topics: &[Topic]) -> FetchResponseFrame {
    let session_id = if version >= 7 { 123 } else { 0 };
    let mut writer =
        FetchResponseWriter::new(version, 42, 15, 0, session_id, topics.len()).unwrap();
    for topic in topics {
        writer
            .begin_topic(topic.name, topic.id, topic.partitions.len())
            .unwrap();
        for partition in &topic.partitions {
            writer
                .add_partition(&partition.header, &partition.records)
                .unwrap();
        }
    }
    writer.set_node_endpoints(&node_endpoints()).unwrap();
    writer.finish().unwrap()
}

/// The brokers the response names (written from v16).
fn node_endpoints() -> Vec<FetchNodeEndpoint> {
    vec![
        FetchNodeEndpoint {
            node_id: 3,
            host: "broker-3".into(),
            port: 9092,
            rack: Some("r1".into()),
        },
        FetchNodeEndpoint {
            node_id: 4,
            host: "broker-4".into(),
            port: 19092,
            rack: None,
        },
    ]
}

/// The same response built as kafka-protocol structs.
fn expected(version: i16, topics: &[Topic]) -> FetchResponse {
    let responses = topics
        .iter()
        .map(|topic| {
            let mut t = FetchableTopicResponse::default().with_partitions(
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let h = &p.header;
                        let mut records = BytesMut::new();
                        for c in &p.records {
                            records.extend_from_slice(c);
                        }
                        let mut d = PartitionData::default()
                            .with_partition_index(h.partition_index)
                            .with_error_code(h.error_code)
                            .with_high_watermark(h.high_watermark)
                            .with_last_stable_offset(h.last_stable_offset)
                            .with_aborted_transactions(h.aborted_transactions.map(|a| {
                                a.iter()
                                    .map(|t| {
                                        KpAbortedTransaction::default()
                                            .with_producer_id(ProducerId(t.producer_id))
                                            .with_first_offset(t.first_offset)
                                    })
                                    .collect()
                            }))
                            .with_preferred_read_replica(BrokerId(h.preferred_read_replica))
                            .with_records(Some(records.freeze()));
                        if version >= 5 {
                            d = d.with_log_start_offset(h.log_start_offset);
                        }
                        if let (Some((epoch, end_offset)), true) =
                            (h.diverging_epoch, version >= 12)
                        {
                            d = d.with_diverging_epoch(
                                EpochEndOffset::default()
                                    .with_epoch(epoch)
                                    .with_end_offset(end_offset),
                            );
                        }
                        if let (Some((leader, epoch)), true) = (h.current_leader, version >= 12) {
                            d = d.with_current_leader(
                                LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(leader))
                                    .with_leader_epoch(epoch),
                            );
                        }
                        d
                    })
                    .collect(),
            );
            if version <= 12 {
                t = t.with_topic(TopicName(StrBytes::from_static_str(topic.name)));
            } else {
                t = t.with_topic_id(uuid::Uuid::from_bytes(topic.id));
            }
            t
        })
        .collect();
    let mut response = FetchResponse::default()
        .with_throttle_time_ms(15)
        .with_responses(responses);
    if version >= 7 {
        response = response.with_session_id(123);
    }
    if version >= 16 {
        response = response.with_node_endpoints(
            node_endpoints()
                .into_iter()
                .map(|e| {
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(e.node_id))
                        .with_host(StrBytes::from_string(e.host))
                        .with_port(e.port)
                        .with_rack(e.rack.map(StrBytes::from_string))
                })
                .collect(),
        );
    }
    response
}

#[test]
fn every_version_decodes_with_kafka_protocol_and_matches_its_encoding() {
    for version in FETCH_WRITER_VERSION_MIN..=FETCH_WRITER_VERSION_MAX {
        let topics = input(version);
        let frame = write(version, &topics);
        let wire = frame.to_contiguous();
        assert_eq!(wire.len(), frame.len_bytes());

        // Decode what the writer produced and compare every field.
        let mut buf = wire.clone();
        assert_eq!(buf.get_i32() as usize, buf.len(), "v{version} size prefix");
        assert_eq!(buf.get_i32(), 42, "v{version} correlation id");
        if version >= 12 {
            assert_eq!(buf.get_u8(), 0, "v{version} header tagged fields");
        }
        let decoded =
            FetchResponse::decode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        assert!(buf.is_empty(), "v{version}: trailing bytes");
        let want = expected(version, &topics);
        assert_eq!(decoded, want, "v{version}");

        // And the bytes are exactly what kafka-protocol would have written.
        let mut reference = BytesMut::new();
        reference.extend_from_slice(&[0; 4]);
        reference.extend_from_slice(&42i32.to_be_bytes());
        if version >= 12 {
            reference.extend_from_slice(&[0]);
        }
        want.encode(&mut reference, version).unwrap();
        let size = (reference.len() - 4) as i32;
        reference[..4].copy_from_slice(&size.to_be_bytes());
        assert_eq!(&wire[..], &reference[..], "v{version} bytes");
    }
}

#[test]
fn record_chunks_are_referenced_not_copied() {
    for version in FETCH_WRITER_VERSION_MIN..=FETCH_WRITER_VERSION_MAX {
        let topics = input(version);
        let frame = write(version, &topics);
        let inputs: Vec<&Bytes> = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| p.records.iter())
            .filter(|c| !c.is_empty())
            .collect();
        // Every non-empty input chunk appears, in order, as a segment with the
        // same address and length.
        let mut next = 0;
        let mut referenced_len_bytes = 0;
        for segment in frame.segments() {
            if let Some(chunk) = inputs.get(next) {
                if segment.as_ptr() == chunk.as_ptr() && segment.len() == chunk.len() {
                    next += 1;
                    referenced_len_bytes += segment.len();
                }
            }
        }
        assert_eq!(next, inputs.len(), "v{version}: a chunk was not referenced");
        // The other segments hold exactly the frame minus the records, so no
        // record byte was copied into them either (their content is checked
        // byte for byte against kafka-protocol in the test above).
        let input_len_bytes: usize = inputs.iter().map(|c| c.len()).sum();
        assert_eq!(referenced_len_bytes, input_len_bytes);
        let total: usize = frame.segments().iter().map(Bytes::len).sum();
        assert_eq!(total, frame.len_bytes());
        let metadata_len_bytes = total - referenced_len_bytes;
        assert!(
            metadata_len_bytes < 480,
            "v{version}: {metadata_len_bytes} metadata bytes"
        );
        assert!(frame.segments().iter().all(|s| !s.is_empty()));
    }
}

#[test]
fn response_without_records_is_one_segment() {
    let mut writer = FetchResponseWriter::new(16, 1, 0, 0, 0, 0).unwrap();
    assert!(writer.begin_topic("x", [0; 16], 0).is_err());
    let frame = FetchResponseWriter::new(16, 1, 0, 0, 0, 0)
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(frame.segments().len(), 1);
    let mut buf = frame.to_contiguous();
    buf.advance(9);
    let decoded = FetchResponse::decode(&mut buf, 16).unwrap();
    assert!(decoded.responses.is_empty());
}

#[test]
fn top_level_error_code_is_dropped_before_v7() {
    let frame = FetchResponseWriter::new(6, 1, 0, 3, 0, 0)
        .unwrap()
        .finish()
        .unwrap();
    // size, correlation id, throttle time, empty topic array.
    assert_eq!(frame.len_bytes(), 4 + 4 + 4 + 4);
}

#[test]
fn misuse_is_a_typed_error() {
    let is_misuse =
        |r: Result<(), ProtocolError>| matches!(r, Err(ProtocolError::FetchWriter { .. }));
    assert!(FetchResponseWriter::new(3, 0, 0, 0, 0, 0).is_err());
    assert!(FetchResponseWriter::new(19, 0, 0, 0, 0, 0).is_err());
    assert!(FetchResponseWriter::new(6, 0, 0, 0, 5, 0).is_err());

    let header = FetchPartitionHeader {
        partition_index: 0,
        error_code: 0,
        high_watermark: 0,
        last_stable_offset: 0,
        log_start_offset: 0,
        aborted_transactions: None,
        preferred_read_replica: 1,
        current_leader: None,
        diverging_epoch: None,
    };
    let mut writer = FetchResponseWriter::new(10, 0, 0, 0, 0, 1).unwrap();
    writer.begin_topic("t", [0; 16], 1).unwrap();
    assert!(
        is_misuse(writer.add_partition(&header, &[])),
        "v10 has no preferred replica"
    );

    let header = FetchPartitionHeader {
        preferred_read_replica: -1,
        ..header
    };
    let mut writer = FetchResponseWriter::new(12, 0, 0, 0, 0, 1).unwrap();
    writer.begin_topic("t", [0; 16], 1).unwrap();
    writer.add_partition(&header, &[]).unwrap();
    assert!(
        is_misuse(writer.add_partition(&header, &[])),
        "one partition too many"
    );

    let mut writer = FetchResponseWriter::new(12, 0, 0, 0, 0, 2).unwrap();
    writer.begin_topic("t", [0; 16], 2).unwrap();
    writer.add_partition(&header, &[]).unwrap();
    assert!(
        is_misuse(writer.begin_topic("u", [0; 16], 0)),
        "a partition missing"
    );

    let mut writer = FetchResponseWriter::new(12, 0, 0, 0, 0, 2).unwrap();
    writer.begin_topic("t", [0; 16], 0).unwrap();
    assert!(
        matches!(writer.finish(), Err(ProtocolError::FetchWriter { .. })),
        "a topic missing"
    );
}
