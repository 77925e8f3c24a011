//! How long the batch CRC takes at a few batch sizes: `crc-fast` (what the
//! log uses) against the `crc32c` crate (the tests' reference), on the
//! same bytes, in one process.
//!
//! Run: `taskset -c 1 cargo run --release -p corelog-storage --example crc_speed`

use std::hint::black_box;
use std::time::Instant;

fn main() {
    for &len in &[64usize, 1024, 16 << 10, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        assert_eq!(crc_fast::crc32_iscsi(&data), crc32c::crc32c(&data));
        // About 256 MiB of input per measurement.
        let iters = (256usize << 20) / len;
        for round in 0..2 {
            let started = Instant::now();
            let mut x = 0u32;
            for _ in 0..iters {
                x ^= crc32c::crc32c(black_box(&data));
            }
            let reference_s = started.elapsed().as_secs_f64() / iters as f64;
            let started = Instant::now();
            for _ in 0..iters {
                x ^= crc_fast::crc32_iscsi(black_box(&data));
            }
            let fast_s = started.elapsed().as_secs_f64() / iters as f64;
            black_box(x);
            println!(
                "{len:>8} bytes, round {round}: crc32c {:8.3} us ({:5.1} GB/s), crc-fast {:8.3} us ({:5.1} GB/s)",
                reference_s * 1e6,
                len as f64 / reference_s / 1e9,
                fast_s * 1e6,
                len as f64 / fast_s / 1e9,
            );
        }
    }
}
