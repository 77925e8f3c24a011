//! A transaction's life seen through the admin and fetch APIs of an
//! in-process broker of two shards: FindCoordinator for a transactional id,
//! DescribeTransactions, ListTransactions (with its filters),
//! DescribeProducers (the open transaction's first offset), and a
//! read_committed Fetch held at the last stable offset, then released by
//! the COMMIT marker, and answered with the aborted transaction's range
//! after an ABORT; and a fenced producer's late batch refused.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use corelog_storage::batch::build::{records_section, wrap, BatchSpec};
use corelog_storage::{ProducerEpoch, ProducerId};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, DescribeProducersRequest,
    DescribeProducersResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProduceResponse, TransactionalId,
};

const TXN: &str = "tx-admin";
const TOPIC: &str = "txn-topic";
const TRANSACTIONAL: i16 = 0x10;

fn txn_batch(pid: i64, epoch: i16, first_seq: i32, records: usize) -> Bytes {
    let spec = BatchSpec {
        records,
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(epoch),
        base_sequence: first_seq,
        ..BatchSpec::default()
    };
    Bytes::from(wrap(&spec, TRANSACTIONAL, &records_section(&spec)))
}

fn add_partitions(c: &mut Client, pid: i64, epoch: i16, partitions: Vec<i32>) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(TXN)))
        .with_v3_and_below_producer_id(kafka_protocol::messages::ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic(TOPIC))
            .with_partitions(partitions)]);
    let resp: AddPartitionsToTxnResponse = c.request(ApiKey::AddPartitionsToTxn, 3, &req);
    resp.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

fn produce_txn(c: &mut Client, batches: &[(&str, i32, Bytes)]) -> Vec<i16> {
    let req = produce_request(-1, batches).with_transactional_id(Some(TransactionalId(s(TXN))));
    let resp: ProduceResponse = c.request(ApiKey::Produce, PRODUCE_VERSION, &req);
    resp.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
        .collect()
}

fn end_txn(c: &mut Client, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN)))
        .with_producer_id(kafka_protocol::messages::ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = c.request(ApiKey::EndTxn, 3, &req);
    resp.error_code
}

fn describe(c: &mut Client) -> (i16, String, Vec<(String, Vec<i32>)>) {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(TXN))]);
    let resp: DescribeTransactionsResponse = c.request(ApiKey::DescribeTransactions, 0, &req);
    let t = &resp.transaction_states[0];
    (
        t.error_code,
        t.transaction_state.to_string(),
        t.topics
            .iter()
            .map(|d| (d.topic.to_string(), d.partitions.clone()))
            .collect(),
    )
}

/// Waits until the coordinator reports `state` (markers are written after
/// EndTxn is answered).
fn wait_state(c: &mut Client, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, now, _) = describe(c);
        if now == state {
            return;
        }
        assert!(Instant::now() < deadline, "state {now}, never {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (current_txn_start_offset, producer epoch) of `pid` on partition 0.
fn producer_on_p0(c: &mut Client, pid: i64) -> Option<(i64, i32)> {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic(TOPIC))
        .with_partition_indexes(vec![0])]);
    let resp: DescribeProducersResponse = c.request(ApiKey::DescribeProducers, 0, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.active_producers
        .iter()
        .find(|a| a.producer_id.0 == pid)
        .map(|a| (a.current_txn_start_offset, a.producer_epoch))
}

/// Aborted transactions as (producer id, first offset); `None`: null.
type Aborted = Option<Vec<(i64, i64)>>;

/// A Fetch of partition 0 from offset 0 at `isolation`: (last stable
/// offset, high watermark, aborted transactions, record bytes).
fn fetch_p0(c: &mut Client, isolation: i8) -> (i64, i64, Aborted, usize) {
    let req =
        fetch_request(0, 0, 1 << 20, &[(TOPIC, 0, 0, 1 << 20)]).with_isolation_level(isolation);
    let resp: FetchResponse = c.request(ApiKey::Fetch, FETCH_VERSION, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (
        p.last_stable_offset,
        p.high_watermark,
        p.aborted_transactions.as_ref().map(|a| {
            a.iter()
                .map(|t| (t.producer_id.0, t.first_offset))
                .collect()
        }),
        p.records.as_ref().map_or(0, |r| r.len()),
    )
}

#[test]
fn a_transaction_is_described_listed_and_bounds_read_committed_fetches() {
    let broker = TestServer::start(2);
    let mut c = broker.client();
    c.create_topic(TOPIC, 2);

    let found: FindCoordinatorResponse = c.request(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s(TXN))
            .with_key_type(1),
    );
    assert_eq!(found.error_code, 0);
    assert_eq!(found.port, i32::from(broker.port()));

    let init: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(TXN))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    assert!(pid >= 0);
    assert_eq!(describe(&mut c).1, "Empty");

    // A batch to a partition not added to the transaction is refused.
    assert_eq!(
        produce_txn(&mut c, &[(TOPIC, 0, txn_batch(pid, epoch, 0, 3))]),
        vec![corelog_coordination::codes::INVALID_TXN_STATE]
    );
    assert_eq!(add_partitions(&mut c, pid, epoch, vec![0, 1]), vec![0, 0]);
    assert_eq!(
        produce_txn(
            &mut c,
            &[
                (TOPIC, 0, txn_batch(pid, epoch, 0, 3)),
                (TOPIC, 1, txn_batch(pid, epoch, 0, 2)),
            ]
        ),
        vec![0, 0]
    );

    let (code, state, topics) = describe(&mut c);
    assert_eq!((code, state.as_str()), (0, "Ongoing"));
    let mut parts = topics[0].1.clone();
    parts.sort();
    assert_eq!((topics[0].0.as_str(), parts), (TOPIC, vec![0, 1]));

    let listed: ListTransactionsResponse = c.request(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![s("Ongoing"), s("NoSuchState")])
            .with_duration_filter(-1),
    );
    assert_eq!(listed.error_code, 0);
    assert!(listed
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.as_str() == TXN && t.producer_id.0 == pid));
    assert_eq!(
        listed
            .unknown_state_filters
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>(),
        vec!["NoSuchState".to_string()]
    );
    let none: ListTransactionsResponse = c.request(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![s("CompleteCommit")])
            .with_duration_filter(-1),
    );
    assert!(none.transaction_states.is_empty());

    assert_eq!(producer_on_p0(&mut c, pid), Some((0, i32::from(epoch))));
    // read_committed is held at the open transaction's first offset.
    let (lso, hw, aborted, bytes) = fetch_p0(&mut c, 1);
    assert_eq!((lso, hw, aborted, bytes), (0, 3, Some(vec![]), 0));
    let (_, _, aborted, bytes) = fetch_p0(&mut c, 0);
    assert_eq!(aborted, None, "read_uncommitted gets null");
    assert!(bytes > 0);

    assert_eq!(end_txn(&mut c, pid, epoch, true), 0);
    wait_state(&mut c, "CompleteCommit");
    assert_eq!(producer_on_p0(&mut c, pid), Some((-1, i32::from(epoch))));
    // Three records and the COMMIT marker, all stable.
    let (lso, hw, aborted, bytes) = fetch_p0(&mut c, 1);
    assert_eq!((lso, hw, aborted), (4, 4, Some(vec![])));
    assert!(bytes > 0);

    // An aborted transaction: its range comes with read_committed data.
    assert_eq!(add_partitions(&mut c, pid, epoch, vec![0]), vec![0]);
    assert_eq!(
        produce_txn(&mut c, &[(TOPIC, 0, txn_batch(pid, epoch, 3, 2))]),
        vec![0]
    );
    assert_eq!(end_txn(&mut c, pid, epoch, false), 0);
    wait_state(&mut c, "CompleteAbort");
    let (lso, hw, aborted, _) = fetch_p0(&mut c, 1);
    assert_eq!((lso, hw, aborted), (7, 7, Some(vec![(pid, 4)])));
    // The opposite decision for the finished transaction is refused.
    assert_eq!(
        end_txn(&mut c, pid, epoch, true),
        corelog_coordination::codes::INVALID_TXN_STATE
    );

    // A new instance fences this one: its late batches are refused
    // (verification finds the epoch old) and nothing is appended.
    let again: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(TXN))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(
        (again.error_code, again.producer_id.0, again.producer_epoch),
        (0, pid, epoch + 1)
    );
    assert_eq!(
        produce_txn(&mut c, &[(TOPIC, 0, txn_batch(pid, epoch, 5, 1))]),
        vec![corelog_coordination::codes::INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(
        add_partitions(&mut c, pid, epoch, vec![0]),
        vec![corelog_coordination::codes::PRODUCER_FENCED]
    );
    let (_, hw, _, _) = fetch_p0(&mut c, 0);
    assert_eq!(hw, 7, "nothing of the fenced producer was appended");
    broker.stop();
}
