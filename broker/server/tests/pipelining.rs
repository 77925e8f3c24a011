//! Pipelining: a client may write many requests on one connection before it
//! reads any answer (Kafka clients do, up to `max.in.flight`), and relies on
//! getting every answer, in the order of its requests. Produce and Fetch
//! requests overlap on the broker; others run alone; a Fetch long poll holds
//! back the answers after it, never reorders them.

mod common;

use std::time::{Duration, Instant};

use common::{
    fetch_request, fetched_batches, produce_request, records_of, s, TestServer, FETCH_VERSION,
    PRODUCE_VERSION,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceResponse,
};

/// How long the long poll in the middle waits for data that never comes.
const LONG_POLL_MS: i32 = 4_000;

enum Sent {
    Produce { partition: i32, fill: u8 },
    Metadata,
    ApiVersions,
    LongPoll,
}

#[test]
fn pipelined_requests_are_answered_complete_and_in_order_around_a_long_poll() {
    let server = TestServer::start(2);
    let mut admin = server.client();
    admin.create_topic("pipe", 2);
    admin.create_topic("idle", 1);
    drop(admin);

    // 50 Produce requests (acks=-1, one record each, alternating between
    // the two partitions), Metadata every 5th and ApiVersions every 7th, and
    // after the 25th a Fetch that waits for a record on a topic nobody
    // produces to: all written before any answer is read.
    let mut c = server.client();
    let mut sent: Vec<(i32, Sent)> = Vec::new();
    let started = Instant::now();
    for i in 0..50u8 {
        let partition = i32::from(i % 2);
        let fill = i + 1;
        let req = produce_request(-1, &[("pipe", partition, records_of(1, 8, fill))]);
        let id = c.send(ApiKey::Produce, PRODUCE_VERSION, &req);
        sent.push((id, Sent::Produce { partition, fill }));
        if i % 5 == 4 {
            let req = MetadataRequest::default().with_topics(None);
            sent.push((c.send(ApiKey::Metadata, 12, &req), Sent::Metadata));
        }
        if i % 7 == 6 {
            let req = ApiVersionsRequest::default()
                .with_client_software_name(s("pipelining-test"))
                .with_client_software_version(s("1"));
            sent.push((c.send(ApiKey::ApiVersions, 3, &req), Sent::ApiVersions));
        }
        if i == 24 {
            let req = fetch_request(LONG_POLL_MS, 1, 1 << 20, &[("idle", 0, 0, 1 << 20)]);
            sent.push((c.send(ApiKey::Fetch, FETCH_VERSION, &req), Sent::LongPoll));
        }
    }

    // Every answer comes, in request order (`receive` asserts each one's
    // correlation id is the next request's).
    let mut next_offset = [0i64; 2];
    let mut before_poll: Option<Duration> = None;
    let mut poll_answered: Option<Duration> = None;
    for (id, what) in &sent {
        match what {
            Sent::Produce { partition, .. } => {
                let resp: ProduceResponse = c.receive(ApiKey::Produce, PRODUCE_VERSION, *id);
                let p = &resp.responses[0].partition_responses[0];
                assert_eq!((p.index, p.error_code), (*partition, 0));
                // Appended in request order: one record each.
                let expected = &mut next_offset[*partition as usize];
                assert_eq!(p.base_offset, *expected, "partition {partition}");
                *expected += 1;
            }
            Sent::Metadata => {
                let resp: MetadataResponse = c.receive(ApiKey::Metadata, 12, *id);
                assert_eq!(resp.topics.len(), 2);
            }
            Sent::ApiVersions => {
                let resp: ApiVersionsResponse = c.receive(ApiKey::ApiVersions, 3, *id);
                assert_eq!(resp.error_code, 0);
            }
            Sent::LongPoll => {
                before_poll = Some(started.elapsed());
                let resp: FetchResponse = c.receive(ApiKey::Fetch, FETCH_VERSION, *id);
                poll_answered = Some(started.elapsed());
                let p = &resp.responses[0].partitions[0];
                assert_eq!((p.error_code, p.high_watermark), (0, 0));
                assert!(fetched_batches(p.records.as_ref()).is_empty());
            }
        }
    }
    assert_eq!(next_offset, [25, 25]);
    let before_poll = before_poll.expect("long poll sent");
    let poll_answered = poll_answered.expect("long poll answered");
    // The long poll waited its full time (nothing arrived for it), and so
    // held back every answer after it; those before it did not wait for it.
    let long_poll = Duration::from_millis(LONG_POLL_MS as u64);
    assert!(
        poll_answered >= long_poll - Duration::from_millis(100),
        "the long poll was answered after {poll_answered:?}, before its {long_poll:?}"
    );
    assert!(
        before_poll + Duration::from_millis(500) < poll_answered,
        "the answers before the long poll came at {before_poll:?}, the poll's at {poll_answered:?}"
    );

    // What was produced reads back in request order.
    // (The request's max_bytes is shared out among its partitions in
    // order, so it leaves room for both.)
    let req = fetch_request(
        0,
        0,
        2 << 20,
        &[("pipe", 0, 0, 1 << 20), ("pipe", 1, 0, 1 << 20)],
    );
    let resp: FetchResponse = c.request(ApiKey::Fetch, FETCH_VERSION, &req);
    for p in &resp.responses[0].partitions {
        assert_eq!((p.error_code, p.high_watermark), (0, 25));
        let fills: Vec<u8> = fetched_batches(p.records.as_ref())
            .iter()
            .map(|(_, fill)| *fill)
            .collect();
        let expected: Vec<u8> = sent
            .iter()
            .filter_map(|(_, what)| match what {
                Sent::Produce { partition, fill } if *partition == p.partition_index => Some(*fill),
                _ => None,
            })
            .collect();
        assert_eq!(fills, expected, "partition {}", p.partition_index);
    }
    drop(c);
    server.stop();
}
