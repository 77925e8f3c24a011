//! Structure-aware property tests of the request decode path (issue 24,
//! "Hostile input").
//!
//! For every api and version the broker advertises ([`SUPPORTED_APIS`]) a
//! valid request is generated: the fully populated request of
//! `common::build_request`, with generated names, counts, numbers and bytes
//! put into the fields most handlers read. It is encoded with kafka-protocol
//! at that version and then
//!
//! - unmutated, it must decode to an equal request (round trip);
//! - mutated (bit flips, random bytes, lengths set to -1, 2^15-1, 2^31-1,
//!   huge varints, inserted, deleted and duplicated ranges, truncation), it
//!   goes through exactly what `conn.rs` does with a frame (frame decoder,
//!   header, `decode_request`, the KIP-511 error answer), which must not
//!   panic, must not allocate more than the frame can justify, and when it
//!   succeeds must give a request that re-encodes and decodes to itself.
//!
//! The allocation bound is checked with a counting global allocator: while a
//! decode runs on this thread, the largest single allocation and the sum of
//! all allocations are recorded. kafka-protocol preallocates arrays from
//! lengths on the wire, so a length the pre-check failed to bound shows up
//! here as an allocation far larger than the frame.
//!
//! Cases per test: `PROPTEST_CASES` (default [`CI_CASES`], sized so that
//! this file runs in a few seconds in CI); a longer time-boxed run is e.g.
//! `PROPTEST_CASES=2000000 cargo test -p corelog-protocol --release --test
//! fuzz_decode`.
//!
//! Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the same path is in
//! `broker/protocol/fuzz/`, outside the workspace because it needs a nightly
//! toolchain; its README says how to run it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use common::{build_request, client_header, encode_body, frame_request, pairs};
use corelog_protocol::kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_protocol::{
    decode_request, decode_request_header, FrameDecoder, Request, REQUEST_BYTES_MAX_DEFAULT,
    SUPPORTED_APIS,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

/// Cases per property when `PROPTEST_CASES` is not set.
const CI_CASES: u32 = 3000;

/// The most a decode may allocate in one piece, and in all, per byte of
/// frame, plus a constant. A decoded element is a Rust struct (a few hundred
/// bytes at most, a `BTreeMap` of tagged fields included) standing for at
/// least one byte on the wire, so allocations grow with the frame by a
/// bounded factor; an unchecked array length would ask for up to 2^31
/// elements from a frame of a few bytes and fail this by orders of
/// magnitude.
const ALLOC_BYTES_PER_FRAME_BYTE: usize = 512;
const ALLOC_BYTES_SLACK: usize = 64 * 1024;

// ------------------------------------------------------ counting allocator --

struct CountingAlloc;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    // try_with: the allocator also runs while thread-locals are torn down.
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            LARGEST.with(|l| l.set(l.get().max(size)));
            TOTAL.with(|t| t.set(t.get().saturating_add(size)));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator; the
// bookkeeping touches only const-initialized thread-locals, which never
// allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the largest single allocation and
/// the sum of allocations it made on this thread.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    LARGEST.with(|l| l.set(0));
    TOTAL.with(|t| t.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(Cell::get), TOTAL.with(Cell::get))
}

// ------------------------------------------------------------- generation --

/// Generated values for the fields handlers read: names, counts, numbers.
#[derive(Debug, Clone)]
struct Knobs {
    names: Vec<String>,
    count: usize,
    ints: Vec<i64>,
    bytes: Vec<u8>,
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        // Printable names of any script, empty included, as a client may send.
        proptest::collection::vec("\\PC{0,24}", 4),
        0usize..4,
        proptest::collection::vec(any::<i64>(), 4),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(names, count, ints, bytes)| Knobs {
            names,
            count,
            ints,
            bytes,
        })
}

impl Knobs {
    fn name(&self, i: usize) -> StrBytes {
        StrBytes::from_string(self.names[i % self.names.len()].clone())
    }

    fn int(&self, i: usize) -> i64 {
        self.ints[i % self.ints.len()]
    }

    fn i32(&self, i: usize) -> i32 {
        self.int(i) as i32
    }
}

/// `items` resized to `n` elements by repeating the ones it has (left empty
/// when empty), then each passed to `set` with its index.
fn resize<T: Clone>(items: &mut Vec<T>, n: usize, mut set: impl FnMut(usize, &mut T)) {
    if items.is_empty() {
        return;
    }
    *items = (0..n).map(|i| items[i % items.len()].clone()).collect();
    for (i, item) in items.iter_mut().enumerate() {
        set(i, item);
    }
}

/// Puts generated values into the populated request of `api_key` at
/// `version`. Only fields every version in the broker's range carries (or
/// guarded by version) are touched, so the result still encodes.
fn generated_request(api_key: ApiKey, version: i16, k: &Knobs) -> Request {
    let mut request = build_request(api_key, version);
    let n = k.count;
    match &mut request {
        Request::ApiVersions(r) if version >= 3 => {
            r.client_software_name = k.name(0);
            r.client_software_version = k.name(1);
        }
        Request::Metadata(r) => {
            if let Some(topics) = &mut r.topics {
                resize(topics, n, |i, t| t.name = Some(TopicName(k.name(i))));
            }
        }
        Request::Produce(r) => {
            r.acks = k.int(0) as i16;
            r.timeout_ms = k.i32(1);
            resize(&mut r.topic_data, n, |i, t| {
                t.name = TopicName(k.name(i));
                resize(&mut t.partition_data, n.max(1), |j, p| {
                    p.index = k.i32(j);
                    p.records = Some(Bytes::copy_from_slice(&k.bytes[..(k.bytes.len() >> j)]));
                });
            });
        }
        Request::Fetch(r) => {
            r.max_wait_ms = k.i32(0);
            if version >= 3 {
                r.max_bytes = k.i32(1);
            }
            resize(&mut r.topics, n, |i, t| {
                if version <= 12 {
                    t.topic = TopicName(k.name(i));
                }
                resize(&mut t.partitions, n.max(1), |j, p| {
                    p.partition = k.i32(j);
                    p.fetch_offset = k.int(j + 1);
                    p.partition_max_bytes = k.i32(j + 2);
                });
            });
        }
        Request::ListOffsets(r) => resize(&mut r.topics, n, |i, t| {
            t.name = TopicName(k.name(i));
            resize(&mut t.partitions, n.max(1), |j, p| {
                p.partition_index = k.i32(j);
                p.timestamp = k.int(j + 1);
            });
        }),
        Request::CreateTopics(r) => resize(&mut r.topics, n, |i, t| {
            t.name = TopicName(k.name(i));
            t.num_partitions = k.i32(i);
            t.replication_factor = k.int(i + 1) as i16;
            resize(&mut t.configs, n, |j, c| c.name = k.name(j + 1));
        }),
        Request::DeleteTopics(r) => {
            if version >= 6 {
                resize(&mut r.topics, n, |i, t| t.name = Some(TopicName(k.name(i))));
            } else {
                resize(&mut r.topic_names, n, |i, t| *t = TopicName(k.name(i)));
            }
        }
        Request::CreatePartitions(r) => resize(&mut r.topics, n, |i, t| {
            t.name = TopicName(k.name(i));
            t.count = k.i32(i);
        }),
        Request::DeleteRecords(r) => resize(&mut r.topics, n, |i, t| {
            t.name = TopicName(k.name(i));
            resize(&mut t.partitions, n.max(1), |j, p| {
                p.partition_index = k.i32(j);
                p.offset = k.int(j + 1);
            });
        }),
        Request::DescribeConfigs(r) => resize(&mut r.resources, n, |i, res| {
            res.resource_type = k.int(i) as i8;
            res.resource_name = k.name(i);
        }),
        Request::FindCoordinator(r) => {
            if version >= 4 {
                resize(&mut r.coordinator_keys, n, |i, key| *key = k.name(i));
            } else {
                r.key = k.name(0);
            }
        }
        Request::JoinGroup(r) => {
            r.group_id = GroupId(k.name(0));
            r.member_id = k.name(1);
            r.session_timeout_ms = k.i32(0);
            resize(&mut r.protocols, n.max(1), |i, p| {
                p.name = k.name(i + 2);
                p.metadata = Bytes::copy_from_slice(&k.bytes);
            });
        }
        Request::SyncGroup(r) => {
            r.group_id = GroupId(k.name(0));
            r.generation_id = k.i32(0);
        }
        Request::Heartbeat(r) => {
            r.group_id = GroupId(k.name(0));
            r.generation_id = k.i32(0);
        }
        Request::LeaveGroup(r) => r.group_id = GroupId(k.name(0)),
        Request::OffsetCommit(r) => {
            r.group_id = GroupId(k.name(0));
            resize(&mut r.topics, n, |i, t| t.name = TopicName(k.name(i + 1)));
        }
        Request::OffsetFetch(r) if version <= 7 => r.group_id = GroupId(k.name(0)),
        Request::DescribeGroups(r) => resize(&mut r.groups, n, |i, g| *g = GroupId(k.name(i))),
        Request::DeleteGroups(r) => resize(&mut r.groups_names, n, |i, g| *g = GroupId(k.name(i))),
        Request::OffsetDelete(r) => r.group_id = GroupId(k.name(0)),
        Request::ConsumerGroupHeartbeat(r) => {
            r.group_id = GroupId(k.name(0));
            r.member_epoch = k.i32(0);
        }
        Request::ConsumerGroupDescribe(r) => {
            resize(&mut r.group_ids, n, |i, g| *g = GroupId(k.name(i)))
        }
        _ => {}
    }
    request
}

/// One byte-level mutation, positioned by an [`Index`] into what it mutates.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Byte(Index, u8),
    Int16(Index, i16),
    Int32(Index, i32),
    HugeVarint(Index, bool),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Values a length field can take that decoders must survive: null (-1),
    // other negatives, the type's maximum, and values just past what any
    // frame here holds.
    let int16 = prop::sample::select(vec![-1i16, -2, i16::MIN, i16::MAX, 0, 1, 0x100]);
    let int32 = prop::sample::select(vec![
        -1i32,
        -2,
        i32::MIN,
        i32::MAX,
        0,
        1,
        0x1_0000,
        0x100_0000,
    ]);
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Byte(i, v)),
        (any::<Index>(), int16).prop_map(|(i, v)| Mutation::Int16(i, v)),
        (any::<Index>(), int32).prop_map(|(i, v)| Mutation::Int32(i, v)),
        (any::<Index>(), any::<bool>()).prop_map(|(i, b)| Mutation::HugeVarint(i, b)),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn overwrite(buf: &mut [u8], at: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if let Some(slot) = buf.get_mut(at + i) {
            *slot = *b;
        }
    }
}

/// Applies `m` to `buf[start..]`.
fn apply(buf: &mut Vec<u8>, start: usize, m: &Mutation) {
    if buf.len() <= start {
        buf.push(0xff);
        return;
    }
    let span = buf.len() - start;
    let at = |i: &Index| start + i.index(span);
    match m {
        Mutation::Flip(i, bit) => {
            let p = at(i);
            buf[p] ^= 1 << bit;
        }
        Mutation::Byte(i, v) => {
            let p = at(i);
            buf[p] = *v;
        }
        Mutation::Int16(i, v) => overwrite(buf, at(i), &v.to_be_bytes()),
        Mutation::Int32(i, v) => overwrite(buf, at(i), &v.to_be_bytes()),
        Mutation::HugeVarint(i, insert) => {
            let varint = [0xff, 0xff, 0xff, 0xff, 0x0f];
            let p = at(i);
            if *insert {
                buf.splice(p..p, varint);
            } else {
                overwrite(buf, p, &varint);
            }
        }
        Mutation::Insert(i, bytes) => {
            let p = at(i);
            buf.splice(p..p, bytes.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let p = at(i);
            let end = (p + n).min(buf.len());
            buf.drain(p..end);
        }
        Mutation::Duplicate(i, n) => {
            let p = at(i);
            let end = (p + n).min(buf.len());
            let copy = buf[p..end].to_vec();
            buf.splice(p..p, copy);
        }
        Mutation::Truncate(i) => buf.truncate(at(i)),
    }
}

// ------------------------------------------------------------- the checks --

fn supported_pairs() -> Vec<(ApiKey, i16)> {
    pairs(SUPPORTED_APIS)
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_CASES);
    Config {
        cases,
        // The inputs are small and the checks cheap; shrinking finds the
        // smallest failing mutation list, which is what a report needs.
        ..Config::default()
    }
}

/// The frame for a generated request (size prefix included).
fn encoded(api_key: ApiKey, version: i16, request: &Request) -> Vec<u8> {
    let body = encode_body(request, version);
    frame_request(&client_header(api_key, version, 7), &body)
}

/// Exactly what `conn.rs` does with a connection's bytes: frames off the
/// read buffer, the header, the body against the supported table, and the
/// KIP-511 answer for an error that has one. Returns the decoded requests
/// with their versions.
fn conn_decode(wire: &[u8]) -> Vec<(i16, Request)> {
    let decoder = FrameDecoder::new(REQUEST_BYTES_MAX_DEFAULT);
    let mut buf = BytesMut::from(wire);
    let mut decoded = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let Ok((header, body)) = decode_request_header(frame) else {
            break;
        };
        match decode_request(&header, body) {
            Ok(request) => decoded.push((header.api_version, request)),
            Err(e) => {
                let _ = e.error_response();
                break;
            }
        }
    }
    decoded
}

#[test]
fn every_supported_request_round_trips_with_generated_fields() {
    let all = supported_pairs();
    let strategy = (0..all.len(), knobs());
    TestRunner::new(config())
        .run(&strategy, |(pair, knobs)| {
            let (api_key, version) = all[pair];
            let sent = generated_request(api_key, version, &knobs);
            let wire = encoded(api_key, version, &sent);
            let decoded = conn_decode(&wire);
            prop_assert_eq!(
                decoded.len(),
                1,
                "{:?} v{} did not decode",
                api_key,
                version
            );
            prop_assert_eq!(&decoded[0], &(version, sent), "{:?} v{}", api_key, version);
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_requests_decode_or_fail_within_bounded_memory() {
    let all = supported_pairs();
    let strategy = (
        0..all.len(),
        knobs(),
        proptest::collection::vec(mutation(), 1..5),
        // Whether the fixed header (api key, version, correlation id) may be
        // mutated too; most cases leave it so the body's decoder is reached.
        prop::bool::weighted(0.15),
        // Whether the size prefix is recomputed after the mutation (else it
        // lies, and the frame decoder must cope).
        prop::bool::weighted(0.9),
    );
    TestRunner::new(config())
        .run(
            &strategy,
            |(pair, knobs, mutations, header_too, fix_size)| {
                let (api_key, version) = all[pair];
                let sent = generated_request(api_key, version, &knobs);
                let mut wire = encoded(api_key, version, &sent);
                // Size prefix (4) and api key, version, correlation id (8).
                let start = if header_too { 4 } else { 12 };
                for m in &mutations {
                    apply(&mut wire, start, m);
                }
                if fix_size && wire.len() >= 4 {
                    let size = (wire.len() - 4) as i32;
                    wire[..4].copy_from_slice(&size.to_be_bytes());
                }
                let frame_bytes = wire.len();
                let (decoded, largest, total) = measured(|| conn_decode(&wire));
                let bound = ALLOC_BYTES_PER_FRAME_BYTE * frame_bytes + ALLOC_BYTES_SLACK;
                prop_assert!(
                    largest <= bound && total <= bound,
                    "{:?} v{}: a {}-byte frame allocated {} bytes in one piece, {} in all \
                     (bound {})",
                    api_key,
                    version,
                    frame_bytes,
                    largest,
                    total,
                    bound
                );
                // What decodes is a request kafka-protocol can write again,
                // and reading that back gives the same request: the decoder
                // produced nothing the encoder cannot stand behind.
                for (decoded_version, request) in decoded {
                    let again = encoded(request.api_key(), decoded_version, &request);
                    let back = conn_decode(&again);
                    prop_assert_eq!(back.len(), 1);
                    prop_assert_eq!(&back[0], &(decoded_version, request));
                }
                Ok(())
            },
        )
        .unwrap();
}
