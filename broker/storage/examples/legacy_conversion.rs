//! What converting the old message formats costs (issue 21), per MiB of
//! input: a Produce v0-2 message set of 1 KiB messages to one v2 batch
//! (`legacy::up_convert`, with its `ValidBatch` check, as the produce path
//! runs them), plain and in a gzip and an lz4 wrapper, and the batches back
//! to a magic-1 message set for a Fetch v2-3 (`legacy::down_convert`).
//! Reported per MiB of records as uncompressed messages, whatever the
//! codec. Current clients pay none of it.
//!
//! Run: `taskset -c 1 cargo run --release -p corelog-storage --example legacy_conversion`

use std::hint::black_box;
use std::time::Instant;

use corelog_storage::codec::Compression;
use corelog_storage::legacy::build::{message, wrapper};
use corelog_storage::legacy::{down_convert, up_convert, MAGIC_V1};
use corelog_storage::{RecordLimits, ValidBatch};

/// Messages per set and their value size: 1 MiB of values, in the size of
/// a producer's batch (Kafka's default `max.message.bytes` is 1 MiB).
const MESSAGES: usize = 1024;
const VALUE_BYTES: usize = 1024;
/// Input per measurement.
const INPUT_BYTES_PER_RUN: usize = 256 << 20;

fn main() {
    let limits = RecordLimits::default();
    let max = 64 << 20;
    // Values that compress about as well as JSON does: a few distinct
    // words with a running number.
    let set: Vec<u8> = (0..MESSAGES)
        .flat_map(|i| {
            let value: Vec<u8> = format!("{{\"id\":{i},\"name\":\"record-{i}\",\"pad\":\"")
                .bytes()
                .chain((0..VALUE_BYTES).map(|j| b"abcdefghij"[(i + j) % 10]))
                .take(VALUE_BYTES)
                .collect();
            message(
                i as i64,
                MAGIC_V1,
                0,
                1_700_000_000_000 + i as i64,
                Some(format!("key-{i}").as_bytes()),
                Some(&value),
            )
        })
        .collect();
    for (name, input) in [
        ("plain", set.clone()),
        ("gzip", wrapper(MAGIC_V1, Compression::Gzip, &set, 0, 0)),
        ("lz4", wrapper(MAGIC_V1, Compression::Lz4, &set, 0, 0)),
    ] {
        let batch = up_convert(&input, 0, &limits, max).expect("converts");
        let iters = (INPUT_BYTES_PER_RUN / input.len()).max(4);
        for round in 0..2 {
            let started = Instant::now();
            for _ in 0..iters {
                let b = up_convert(black_box(&input), 0, &limits, max).expect("converts");
                black_box(ValidBatch::new(b.into(), &limits).expect("valid"));
            }
            let up_s = started.elapsed().as_secs_f64() / iters as f64;
            let started = Instant::now();
            let mut out = Vec::with_capacity(set.len() + 1024);
            for _ in 0..iters {
                out.clear();
                down_convert(black_box(&batch), MAGIC_V1, 0, &limits, max, &mut out)
                    .expect("converts");
                black_box(&out);
            }
            let down_s = started.elapsed().as_secs_f64() / iters as f64;
            let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
            println!(
                "{name:>6}, round {round}: up {:6.2} ms, down {:6.2} ms per MiB of records \
                 ({} bytes of messages; {} bytes in, {} bytes of batch)",
                up_s * 1e3 / mib(set.len()),
                down_s * 1e3 / mib(set.len()),
                set.len(),
                input.len(),
                batch.len(),
            );
        }
    }
}
