//! Requests that span shards: a topic whose 8 partitions are spread over 2
//! shards, and one Produce, Fetch, ListOffsets, DeleteRecords and
//! OffsetForLeaderEpoch request each naming all of them, answered by
//! whichever shard accepted the connection. A client relies on one answer
//! per partition it named, in the order it named them, whatever shard owns
//! each, and on an unknown partition's error in its place among them.

mod common;

use common::{
    fetch_request, fetched_batches, produce_request, records_of, topic, TestServer, FETCH_VERSION,
    PRODUCE_VERSION,
};
use corelog_server::metadata::{ClusterMetadata, METADATA_FILE};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProduceResponse,
};

const TOPIC: &str = "xs";
/// The partitions, in the (scrambled) order every request names them.
const ORDER: [i32; 8] = [5, 2, 7, 0, 3, 6, 1, 4];

/// Records produced to partition `p` in each Produce request.
fn count(p: i32) -> usize {
    p as usize + 1
}

fn list_offsets(c: &mut common::Client, timestamp: i64) -> Vec<(i32, i16, i64)> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic(TOPIC))
            .with_partitions(
                ORDER
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let resp: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 6, &req);
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.offset))
        .collect()
}

/// Asserts that the placement table puts `TOPIC`'s partitions on both
/// shards, without which these tests would not span shards at all.
fn assert_on_both_shards(server: &TestServer) {
    let text = std::fs::read_to_string(server.data_dir().join(METADATA_FILE)).unwrap();
    let md: ClusterMetadata = serde_json::from_str(&text).unwrap();
    let shards: Vec<u32> = md.topics[TOPIC]
        .partitions
        .iter()
        .map(|p| p.shard.0)
        .collect();
    assert!(
        shards.contains(&0) && shards.contains(&1),
        "partitions on shards {shards:?}"
    );
}

#[test]
fn one_request_spans_partitions_of_both_shards() {
    let server = TestServer::start(2);
    let mut c = server.client();
    c.create_topic(TOPIC, 8);
    assert_on_both_shards(&server);

    // Produce: one request with a batch for each partition (acks=-1), twice;
    // the answer lists the partitions in request order with their offsets.
    for round in 0..2u8 {
        let batches: Vec<(&str, i32, bytes::Bytes)> = ORDER
            .iter()
            .map(|&p| (TOPIC, p, records_of(count(p), 16, round * 16 + p as u8)))
            .collect();
        let resp: ProduceResponse = c.request(
            ApiKey::Produce,
            PRODUCE_VERSION,
            &produce_request(-1, &batches),
        );
        assert_eq!(resp.responses.len(), 1);
        let answered: Vec<(i32, i16, i64)> = resp.responses[0]
            .partition_responses
            .iter()
            .map(|p| (p.index, p.error_code, p.base_offset))
            .collect();
        let expected: Vec<(i32, i16, i64)> = ORDER
            .iter()
            .map(|&p| (p, 0, i64::from(round) * count(p) as i64))
            .collect();
        assert_eq!(answered, expected, "round {round}");
    }

    // Fetch: one request reads all 8 back, in request order, each with its
    // two batches and its high watermark.
    let wanted: Vec<(&str, i32, i64, i32)> =
        ORDER.iter().map(|&p| (TOPIC, p, 0, 1 << 16)).collect();
    let req = fetch_request(0, 0, 1 << 20, &wanted);
    let resp: FetchResponse = c.request(ApiKey::Fetch, FETCH_VERSION, &req);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.responses.len(), 1);
    let parts = &resp.responses[0].partitions;
    assert_eq!(
        parts.iter().map(|p| p.partition_index).collect::<Vec<_>>(),
        ORDER.to_vec()
    );
    for p in parts {
        let n = count(p.partition_index) as i64;
        assert_eq!(
            (p.error_code, p.high_watermark, p.log_start_offset),
            (0, 2 * n, 0),
            "partition {}",
            p.partition_index
        );
        let batches: Vec<(i64, i32, u8)> = fetched_batches(p.records.as_ref())
            .iter()
            .map(|(h, fill)| (h.base_offset.0, h.records_count, *fill))
            .collect();
        let i = p.partition_index as u8;
        assert_eq!(
            batches,
            vec![(0, n as i32, i), (n, n as i32, 16 + i)],
            "partition {}",
            p.partition_index
        );
    }

    // ListOffsets latest: the end of every partition, in request order.
    let expected: Vec<(i32, i16, i64)> =
        ORDER.iter().map(|&p| (p, 0, 2 * count(p) as i64)).collect();
    assert_eq!(list_offsets(&mut c, -1), expected);

    // DeleteRecords on every partition (so on both shards): up to the
    // partition's own index, partition 0's to the high watermark (-1).
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic(TOPIC))
            .with_partitions(
                ORDER
                    .iter()
                    .map(|&p| {
                        DeleteRecordsPartition::default()
                            .with_partition_index(p)
                            .with_offset(if p == 0 { -1 } else { i64::from(p) })
                    })
                    .collect(),
            )])
        .with_timeout_ms(10_000);
    let resp: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, 2, &req);
    let low: Vec<(i32, i16, i64)> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.low_watermark))
        .collect();
    let expected: Vec<(i32, i16, i64)> = ORDER
        .iter()
        .map(|&p| (p, 0, if p == 0 { 2 } else { i64::from(p) }))
        .collect();
    assert_eq!(low, expected);
    // The log starts moved, as ListOffsets earliest says, and the ends did not.
    assert_eq!(list_offsets(&mut c, -2), expected);
    let expected: Vec<(i32, i16, i64)> =
        ORDER.iter().map(|&p| (p, 0, 2 * count(p) as i64)).collect();
    assert_eq!(list_offsets(&mut c, -1), expected);
    drop(c);
    server.stop();
}

/// A partition the topic lacks, named among the ones it has.
const MISSING: i32 = 99;

/// The partitions in `ORDER` with `MISSING` among them, as each request of
/// the next test names them after two partitions of a topic that does not
/// exist.
fn mixed() -> Vec<(&'static str, i32)> {
    let mut parts = vec![("nope", 0), ("nope", 1)];
    for (i, &p) in ORDER.iter().enumerate() {
        if i == 3 {
            parts.push((TOPIC, MISSING));
        }
        parts.push((TOPIC, p));
    }
    parts
}

/// The request's topics: each run of one topic's partitions in `mixed()`.
fn grouped<T>(part: impl Fn(i32) -> T) -> Vec<(&'static str, Vec<T>)> {
    let mut topics: Vec<(&'static str, Vec<T>)> = Vec::new();
    for (name, p) in mixed() {
        match topics.last_mut() {
            Some((n, parts)) if *n == name => parts.push(part(p)),
            _ => topics.push((name, vec![part(p)])),
        }
    }
    topics
}

#[test]
fn unknown_partitions_keep_their_place_among_both_shards_answers() {
    const UNKNOWN: i16 = 3; // UNKNOWN_TOPIC_OR_PARTITION
    let server = TestServer::start(2);
    let mut c = server.client();
    c.create_topic(TOPIC, 8);
    assert_on_both_shards(&server);
    let batches: Vec<(&str, i32, bytes::Bytes)> = ORDER
        .iter()
        .map(|&p| (TOPIC, p, records_of(count(p), 16, p as u8)))
        .collect();
    let resp: ProduceResponse = c.request(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(-1, &batches),
    );
    assert!(resp.responses[0]
        .partition_responses
        .iter()
        .all(|p| p.error_code == 0));
    // What each partition of `mixed()` is answered, given a known
    // partition's answer.
    let expect = |known: &dyn Fn(i32) -> (i16, i64), unknown: (i16, i64)| {
        mixed()
            .into_iter()
            .map(|(name, p)| {
                let (code, value) = if name == TOPIC && p != MISSING {
                    known(p)
                } else {
                    unknown
                };
                (name.to_owned(), p, code, value)
            })
            .collect::<Vec<_>>()
    };

    // ListOffsets latest.
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            grouped(|p| {
                ListOffsetsPartition::default()
                    .with_partition_index(p)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-1)
            })
            .into_iter()
            .map(|(name, parts)| {
                ListOffsetsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(parts)
            })
            .collect(),
        );
    let resp: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 6, &req);
    let answered: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.error_code,
                    p.offset,
                )
            })
        })
        .collect();
    assert_eq!(
        answered,
        expect(&|p| (0, count(p) as i64), (UNKNOWN, -1)),
        "ListOffsets"
    );

    // OffsetForLeaderEpoch of the one epoch the records were written in:
    // it ends at the log end.
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            grouped(|p| {
                OffsetForLeaderPartition::default()
                    .with_partition(p)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(0)
            })
            .into_iter()
            .map(|(name, parts)| {
                OffsetForLeaderTopic::default()
                    .with_topic(topic(name))
                    .with_partitions(parts)
            })
            .collect(),
        );
    let resp: OffsetForLeaderEpochResponse = c.request(ApiKey::OffsetForLeaderEpoch, 4, &req);
    let answered: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                assert_eq!(
                    p.leader_epoch,
                    if p.error_code == 0 { 0 } else { -1 },
                    "partition {}",
                    p.partition
                );
                (
                    t.topic.0.to_string(),
                    p.partition,
                    p.error_code,
                    p.end_offset,
                )
            })
        })
        .collect();
    assert_eq!(
        answered,
        expect(&|p| (0, count(p) as i64), (UNKNOWN, -1)),
        "OffsetForLeaderEpoch"
    );

    // DeleteRecords up to offset 1 on every partition.
    let req = DeleteRecordsRequest::default()
        .with_topics(
            grouped(|p| {
                DeleteRecordsPartition::default()
                    .with_partition_index(p)
                    .with_offset(1)
            })
            .into_iter()
            .map(|(name, parts)| {
                DeleteRecordsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(parts)
            })
            .collect(),
        )
        .with_timeout_ms(10_000);
    let resp: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, 2, &req);
    let answered: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.error_code,
                    p.low_watermark,
                )
            })
        })
        .collect();
    assert_eq!(
        answered,
        expect(&|_| (0, 1), (UNKNOWN, -1)),
        "DeleteRecords"
    );
    drop(c);
    server.stop();
}
