//! Backpressure: a connection that writes requests but never reads its
//! answers is bounded. Its Fetch answers fill the socket, the broker stops
//! writing and then, with `requests_in_flight_per_connection_max` requests
//! in flight, stops reading it: the client's writes stall. Meanwhile other
//! connections are served, and once the stuck client reads, every answer
//! arrives, in order.
//!
//! The second test is the same situation with a per-connection Fetch
//! budget (`fetch_response_bytes_per_connection_max`) smaller than the
//! Fetches in flight; it is ignored because the connection then never
//! answers again (found with this harness, not fixed here).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    encode_request, fetch_request, fetched_batches, produce_request, read_response, records_of, s,
    TestServer, FETCH_VERSION, IO_TIMEOUT, PRODUCE_VERSION,
};
use corelog_protocol::error_code as ec;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchResponse, MetadataResponse,
    ProduceResponse,
};
use kafka_protocol::protocol::Decodable;

/// Fetches the stuck connection sends first: each answer is about 1 MiB.
const FETCHES: usize = 16;
/// Then Produce requests of this size (to a topic that does not exist, so
/// the broker answers them without writing anything).
const PRODUCE_FRAME_BYTES: usize = 64 << 10;
/// "Promptly", on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The most bytes the kernel may buffer between the stuck client and the
/// broker: the broker's receive buffer and the client's send buffer at
/// their largest (`tcp_rmem` and `tcp_wmem` maxima).
fn socket_buffers_max() -> usize {
    let max_of = |path: &str| -> usize {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.split_whitespace().last().and_then(|v| v.parse().ok()))
            .unwrap_or(64 << 20)
    };
    max_of("/proc/sys/net/ipv4/tcp_rmem") + max_of("/proc/sys/net/ipv4/tcp_wmem")
}

fn decode<T: Decodable>(mut body: Bytes, version: i16) -> T {
    T::decode(&mut body, version).expect("decode answer")
}

#[test]
fn a_connection_that_does_not_read_is_bounded_and_others_are_served() {
    let server = TestServer::start(2);
    let mut admin = server.client();
    admin.create_topic("bp", 2);
    // 4 MiB in partition 0: 16 batches of 256 records of 1 KiB.
    for i in 0..16u8 {
        let req = produce_request(-1, &[("bp", 0, records_of(256, 1024, i))]);
        let resp: ProduceResponse = admin.request(ApiKey::Produce, PRODUCE_VERSION, &req);
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    drop(admin);

    // The stuck client: a writer thread sends FETCHES Fetches of partition 0
    // from offset 0 (about 1 MiB each), then Produce requests of 64 KiB
    // until told to stop or until `cap` bytes, far more than the kernel can
    // buffer; nobody reads.
    let cap = socket_buffers_max() + (32 << 20);
    let stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let written_frames = Arc::new(AtomicUsize::new(0));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let mut stream = stream.try_clone().unwrap();
        let written_frames = written_frames.clone();
        let stop_writing = stop_writing.clone();
        move || {
            let fetch = fetch_request(0, 1, 1 << 20, &[("bp", 0, 0, 1 << 20)]);
            let value = PRODUCE_FRAME_BYTES - 200;
            let produce = produce_request(1, &[("no-such-topic", 0, records_of(1, value, 7))]);
            let mut bytes = 0usize;
            let mut id = 0i32;
            while !stop_writing.load(Ordering::Relaxed) && bytes < cap {
                id += 1;
                let frame = if id as usize <= FETCHES {
                    encode_request(ApiKey::Fetch, FETCH_VERSION, id, &fetch)
                } else {
                    encode_request(ApiKey::Produce, PRODUCE_VERSION, id, &produce)
                }
                .unwrap();
                stream.write_all(&frame).expect("write a request");
                bytes += frame.len();
                written_frames.store(id as usize, Ordering::Relaxed);
            }
            (id as usize, bytes)
        }
    });

    // The writes stall: no frame completes for a second while the writer
    // is still short of its cap.
    let started = Instant::now();
    let mut last = (0usize, Instant::now());
    loop {
        assert!(
            !writer.is_finished(),
            "the broker took every request of a client that reads nothing ({} frames, {cap} bytes)",
            written_frames.load(Ordering::Relaxed)
        );
        let now = written_frames.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > FETCHES && last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the stuck client's writes never stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stalled_at = written_frames.load(Ordering::Relaxed);

    // Other connections (on either shard: SO_REUSEPORT spreads them) are
    // served promptly meanwhile: ApiVersions, Metadata, a Produce and a
    // 1 MiB Fetch of the same partition.
    for i in 0..4 {
        let asked = Instant::now();
        let mut c = server.client();
        let resp: ApiVersionsResponse = c.request(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(s("backpressure-test"))
                .with_client_software_version(s("1")),
        );
        assert_eq!(resp.error_code, 0);
        let md: MetadataResponse = c.metadata();
        assert_eq!(md.topics.len(), 1);
        let req = produce_request(-1, &[("bp", 1, records_of(1, 8, i))]);
        let resp: ProduceResponse = c.request(ApiKey::Produce, PRODUCE_VERSION, &req);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i64::from(i)));
        let req = fetch_request(0, 1, 1 << 20, &[("bp", 0, 0, 1 << 20)]);
        let resp: FetchResponse = c.request(ApiKey::Fetch, FETCH_VERSION, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert!(!fetched_batches(p.records.as_ref()).is_empty());
        assert!(
            asked.elapsed() < PROMPTLY,
            "connection {i} was served in {:?} beside a stuck one",
            asked.elapsed()
        );
    }
    // ... and the stuck client is still stuck.
    assert_eq!(written_frames.load(Ordering::Relaxed), stalled_at);
    assert!(!writer.is_finished());
    let mut writer = Some(writer);

    // Once it reads, every answer comes, in request order: the Fetches
    // with their records, the Produce requests with their error.
    stop_writing.store(true, Ordering::Relaxed);
    let mut reader = stream;
    let mut answered = 0usize;
    let mut sent: Option<usize> = None;
    while sent.is_none_or(|n| answered < n) {
        let id = answered as i32 + 1;
        let (key, version) = if answered < FETCHES {
            (ApiKey::Fetch, FETCH_VERSION)
        } else {
            (ApiKey::Produce, PRODUCE_VERSION)
        };
        let (got, body) =
            read_response(&mut reader, key, version).unwrap_or_else(|e| panic!("answer {id}: {e}"));
        assert_eq!(got, id, "answers out of order");
        if key == ApiKey::Fetch {
            let resp: FetchResponse = decode(body, version);
            let p = &resp.responses[0].partitions[0];
            assert_eq!((p.error_code, p.high_watermark), (0, 16 * 256));
            let batches = fetched_batches(p.records.as_ref());
            assert_eq!(batches.first().map(|(h, _)| h.base_offset.0), Some(0));
        } else {
            let resp: ProduceResponse = decode(body, version);
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(p.error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
        }
        answered += 1;
        // The writer stops after the frame it was writing: then the count
        // of answers to wait for is known.
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            let (frames, bytes) = writer.take().unwrap().join().unwrap();
            assert!(
                frames >= stalled_at && bytes < cap,
                "{frames} frames, {bytes} bytes"
            );
            sent = Some(frames);
        }
    }
    assert!(
        writer.is_none(),
        "the writer did not finish once answers were read"
    );
    server.stop();
}

/// A client pipelines 8 Fetches of about 1 MiB each on a connection whose
/// Fetch budget holds 2 of them, pauses 3 s before reading (so the broker's
/// first write blocks), then reads: every answer must come.
///
/// The fault it guards against: glommio's semaphore let a Fetch that
/// arrived later take budget a woken earlier Fetch had been promised. The
/// connection answers in order, so it then waited for good on the earlier
/// Fetch while the later ones held the whole budget (fixed by vendored
/// glommio's patch 3, `broker/vendor/PATCHES.md`).
#[test]
fn a_fetch_budget_smaller_than_the_pipelined_fetches_does_not_wedge_the_connection() {
    let server = TestServer::start_with(2, None, |c| {
        c.fetch_response_bytes_per_connection_max = 2 << 20;
    });
    let mut c = server.client();
    c.create_topic("bp", 1);
    for i in 0..16u8 {
        let req = produce_request(-1, &[("bp", 0, records_of(256, 1024, i))]);
        let resp: ProduceResponse = c.request(ApiKey::Produce, PRODUCE_VERSION, &req);
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = fetch_request(0, 1, 1 << 20, &[("bp", 0, 0, 1 << 20)]);
    let ids: Vec<i32> = (0..8)
        .map(|_| c.send(ApiKey::Fetch, FETCH_VERSION, &fetch))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    for id in ids {
        let resp: FetchResponse = c.receive(ApiKey::Fetch, FETCH_VERSION, id);
        assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    }
    drop(c);
    server.stop();
}
