//! Produce v0-2 and Fetch v0-3 (message formats v0 and v1, issue 21)
//! against an in-process broker, with frames encoded and answers decoded
//! by hand from Kafka's protocol guide, independently of the codec the
//! broker uses: old producers' message sets in every codec are appended as
//! record batches, old consumers read everything back as message sets of
//! the magic their version reads (absolute offsets, CRCs right, timestamps
//! kept), current consumers read the same records as batches, and a bad
//! CRC stores nothing.

mod common;

use std::io::Write;
use std::net::TcpStream;

use bytes::{Buf, Bytes};
use common::{
    fetch_request, fetched_batches, produce_request, records_of, TestServer, FETCH_VERSION,
    PRODUCE_VERSION,
};
use corelog_protocol::error_code;
use corelog_storage::codec::Compression;
use corelog_storage::legacy::build::{message, read_messages, wrapper, ReadMessage};
use corelog_storage::legacy::{MAGIC_V0, MAGIC_V1};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};

const TOPIC: &str = "old-formats";
const CLIENT_ID: &str = "legacy-test";

/// A frame of request header v1 (api key, version, correlation id, client
/// id) and `body`.
fn frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(api_key as i16).to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    put_string(&mut payload, CLIENT_ID);
    payload.extend_from_slice(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn get_string(buf: &mut Bytes) -> String {
    let len = buf.get_i16() as usize;
    String::from_utf8(buf.split_to(len).to_vec()).unwrap()
}

/// Sends one request and returns the response body after its correlation
/// id (response header v0).
fn call(stream: &mut TcpStream, api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    stream
        .write_all(&frame(api_key, version, 77, body))
        .unwrap();
    let (correlation_id, body) = corelog_client::read_response(stream, api_key, version).unwrap();
    assert_eq!(correlation_id, 77);
    body
}

/// Produce v0-2 of one message set to partition 0 with acks=all: the
/// partition's (error code, base offset).
fn produce(stream: &mut TcpStream, version: i16, set: &[u8]) -> (i16, i64) {
    let mut body = Vec::new();
    // acks=all: answered once the high watermark covers the records.
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&10_000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // topics
    put_string(&mut body, TOPIC);
    body.extend_from_slice(&1i32.to_be_bytes()); // partitions
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(set.len() as i32).to_be_bytes());
    body.extend_from_slice(set);
    let mut r = call(stream, ApiKey::Produce, version, &body);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_string(&mut r), TOPIC);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let code = r.get_i16();
    let base = r.get_i64();
    if version >= 2 {
        // log_append_time: -1, the topic keeps CreateTime.
        assert_eq!(r.get_i64(), -1);
    }
    if version >= 1 {
        assert_eq!(r.get_i32(), 0, "throttle time");
    }
    assert!(
        r.is_empty(),
        "Produce v{version} answer has {} bytes left",
        r.len()
    );
    (code, base)
}

/// Fetch v0-3 of partition 0 from `offset`: (error code, high watermark,
/// messages).
fn fetch(
    stream: &mut TcpStream,
    version: i16,
    offset: i64,
    partition_max_bytes: i32,
    max_bytes: i32,
) -> (i16, i64, Vec<ReadMessage>) {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    body.extend_from_slice(&100i32.to_be_bytes()); // max wait
    body.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    if version >= 3 {
        body.extend_from_slice(&max_bytes.to_be_bytes());
    }
    body.extend_from_slice(&1i32.to_be_bytes());
    put_string(&mut body, TOPIC);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&partition_max_bytes.to_be_bytes());
    let mut r = call(stream, ApiKey::Fetch, version, &body);
    if version >= 1 {
        assert_eq!(r.get_i32(), 0, "throttle time");
    }
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_string(&mut r), TOPIC);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let code = r.get_i16();
    let high_watermark = r.get_i64();
    let len = r.get_i32();
    let set = r.split_to(len.max(0) as usize);
    assert!(
        r.is_empty(),
        "Fetch v{version} answer has {} bytes left",
        r.len()
    );
    let messages = read_messages(&set).unwrap();
    (code, high_watermark, messages)
}

/// `n` messages of `magic`, keys `{tag}-k{i}`, values `{tag}-v{i}`,
/// CreateTime `ts + i`, relative offsets.
fn set(magic: i8, tag: &str, n: usize, ts: i64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            message(
                i as i64,
                magic,
                0,
                ts + i as i64,
                Some(format!("{tag}-k{i}").as_bytes()),
                Some(format!("{tag}-v{i}").as_bytes()),
            )
        })
        .collect()
}

#[test]
fn old_producers_and_consumers_meet_current_ones_on_one_log() {
    let server = TestServer::start(1);
    server.client().create_topic(TOPIC, 1);
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();

    // What each produce appends: (tag, count, CreateTime base, or None for
    // the broker's append time).
    let mut expected: Vec<(String, Option<i64>)> = Vec::new();
    let mut expect = |tag: &str, n: usize, ts: Option<i64>| {
        for i in 0..n {
            expected.push((format!("{tag}-v{i}"), ts.map(|t| t + i as i64)));
        }
    };

    // Produce v0 and v1: magic 0, plain and in every codec (LZ4 with
    // Kafka's magic-0 descriptor checksum).
    assert_eq!(produce(&mut s, 0, &set(MAGIC_V0, "a", 3, 0)), (0, 0));
    expect("a", 3, None);
    let mut next = 3;
    for (i, codec) in [Compression::Gzip, Compression::Snappy, Compression::Lz4]
        .into_iter()
        .enumerate()
    {
        let tag = format!("b{i}");
        let w = wrapper(MAGIC_V0, codec, &set(MAGIC_V0, &tag, 2, 0), 0, 0);
        assert_eq!(produce(&mut s, 1, &w), (0, next), "{codec:?}");
        expect(&tag, 2, None);
        next += 2;
    }
    // Produce v2: magic 1 with CreateTime, wrappers whose inner offsets are
    // relative, followed by a plain message in the same set.
    for (i, codec) in [Compression::Gzip, Compression::Snappy, Compression::Lz4]
        .into_iter()
        .enumerate()
    {
        let tag = format!("c{i}");
        let ts = 1_600_000_000_000 + 1000 * i as i64;
        let mut w = wrapper(MAGIC_V1, codec, &set(MAGIC_V1, &tag, 3, ts), ts + 2, 0);
        w.extend(set(MAGIC_V1, &format!("{tag}p"), 1, ts + 50));
        assert_eq!(produce(&mut s, 2, &w), (0, next), "{codec:?}");
        expect(&tag, 3, Some(ts));
        expect(&format!("{tag}p"), 1, Some(ts + 50));
        next += 4;
    }
    // A bad CRC is refused and nothing is stored; so is zstd, which the old
    // formats never carried.
    let mut bad = set(MAGIC_V1, "bad", 2, 5);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(produce(&mut s, 2, &bad), (error_code::CORRUPT_MESSAGE, -1));
    let zstd = message(0, MAGIC_V1, 4, 0, None, Some(b"whatever"));
    assert_eq!(
        produce(&mut s, 2, &zstd),
        (error_code::UNSUPPORTED_COMPRESSION_TYPE, -1)
    );
    // A current producer's batch after them.
    let mut c = server.client();
    let resp: ProduceResponse = c.request(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(-1, &[(TOPIC, 0, records_of(2, 10, 0x5a))]),
    );
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, next));
    let end = next + 2;

    // Old consumers read everything, in the magic their version reads.
    for version in 0..=3 {
        let (code, hw, messages) = fetch(&mut s, version, 0, 1 << 20, 1 << 20);
        assert_eq!((code, hw), (0, end), "Fetch v{version}");
        let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (0..end).collect::<Vec<_>>(), "Fetch v{version}");
        let magic = if version <= 1 { MAGIC_V0 } else { MAGIC_V1 };
        for (m, (value, ts)) in messages.iter().zip(&expected) {
            assert_eq!(m.magic, magic);
            assert_eq!(
                m.value.as_deref(),
                Some(value.as_bytes()),
                "offset {}",
                m.offset
            );
            assert_eq!(m.attributes & 0x07, 0, "answered uncompressed");
            match (magic, ts) {
                (MAGIC_V0, _) => assert_eq!(m.timestamp_ms, -1),
                // CreateTime kept.
                (_, Some(ts)) => assert_eq!((m.attributes, m.timestamp_ms), (0, *ts)),
                // Magic 0's records carry the append time, flagged so.
                (_, None) => {
                    assert_eq!(m.attributes, 0x08);
                    assert!(m.timestamp_ms > 1_700_000_000_000);
                }
            }
        }
        // The current producer's records, keyless.
        let last = messages.last().unwrap();
        assert_eq!(last.key, None);
        assert_eq!(last.value.as_deref(), Some(&[0x5a; 10][..]));
    }

    // From the middle of a batch: the records before the offset are left
    // out, and offsets stay absolute.
    let (_, _, messages) = fetch(&mut s, 2, 10, 1 << 20, 1 << 20);
    assert_eq!(messages[0].offset, 10);
    assert_eq!(messages[0].value.as_deref(), Some(&b"c0-v1"[..]));

    // A small partition_max_bytes still returns the first message, and
    // Fetch v3's max_bytes bounds the answer the same way.
    for (version, partition_max, max) in [(0, 1, 0), (2, 1, 0), (3, 1 << 20, 1)] {
        let (code, _, messages) = fetch(&mut s, version, 0, partition_max, max);
        assert_eq!(code, 0);
        assert!(!messages.is_empty(), "Fetch v{version}");
        assert_eq!(messages[0].offset, 0);
        assert!(messages.len() < end as usize, "Fetch v{version}");
    }

    // A current consumer reads the converted batches as batches.
    let resp: FetchResponse = c.request(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request(100, 1, 1 << 20, &[(TOPIC, 0, 0, 1 << 20)]),
    );
    let batches = fetched_batches(resp.responses[0].partitions[0].records.as_ref());
    let counts: Vec<i32> = batches.iter().map(|(h, _)| h.records_count).collect();
    assert_eq!(counts, [3, 2, 2, 2, 4, 4, 4, 2]);
    assert!(batches.iter().all(|(h, _)| !h.has_producer_id()));

    // An out-of-range offset is answered with its error, as in any version.
    let (code, _, messages) = fetch(&mut s, 1, end + 100, 1 << 20, 0);
    assert_eq!(code, error_code::OFFSET_OUT_OF_RANGE);
    assert!(messages.is_empty());
    server.stop();
}

#[test]
fn api_versions_advertises_produce_and_fetch_from_v0() {
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    let server = TestServer::start(1);
    let resp: ApiVersionsResponse =
        server
            .client()
            .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let range = |key: ApiKey| {
        let k = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap();
        (k.min_version, k.max_version)
    };
    assert_eq!(range(ApiKey::Produce), (0, 11));
    assert_eq!(range(ApiKey::Fetch), (0, 16));
    server.stop();
}
