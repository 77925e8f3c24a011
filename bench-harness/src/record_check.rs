//! `corelog-bench record-check`: what checking a produced batch costs the
//! broker, per codec and batch size, in CPU time per MiB of batch and per
//! record.
//!
//! The broker checks every produced batch before it appends it
//! (`corelog_storage::ValidBatch::new`: header, CRC32C, and every record,
//! decompressed first when the batch is compressed). This measures that
//! call alone, on one thread, on the batches the load generator sends
//! (`records::encode_batch_with`: text-like values that compress as text
//! does), beside the part that was there before records were walked (the
//! header and the CRC), so a report can say what the record walk and the
//! decompression add.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use corelog_storage::batch::{self, BatchHeader};
use corelog_storage::{RecordLimits, ValidBatch};

use crate::compression::Codec;
use crate::records::{encode_batch_with, RecordSpec};

#[derive(Debug, Clone, clap::Args)]
pub struct RecordCheckArgs {
    /// Batch sizes to measure, in KiB of uncompressed records.
    #[arg(long, value_delimiter = ',', default_values_t = vec![16, 1024])]
    pub batch_kib: Vec<usize>,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Time spent measuring each case; the figure is the median of five
    /// slices of it.
    #[arg(long, default_value_t = 1.0)]
    pub seconds_per_case: f64,
}

const CODECS: [Codec; 5] = [
    Codec::None,
    Codec::Gzip,
    Codec::Snappy,
    Codec::Lz4,
    Codec::Zstd,
];

pub fn run_command(args: &RecordCheckArgs) -> Result<std::process::ExitCode> {
    println!(
        "| codec | batch (records x value) | batch bytes sent | header + CRC only, us/batch | full check, us/batch | full check, ns/record | full check, ms per MiB sent | full check, ms per MiB of records |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let limits = RecordLimits::default();
    for &kib in &args.batch_kib {
        let records = ((kib << 10) / (args.record_bytes + 30)).max(1);
        for codec in CODECS {
            let specs: Vec<RecordSpec> = (0..records)
                .map(|i| RecordSpec {
                    send_us: 1_700_000_000_000_000 + i as u64,
                    key: None,
                })
                .collect();
            let bytes = Bytes::from(
                encode_batch_with(&specs, args.record_bytes, codec, 0).context("encode")?,
            );
            let checked = ValidBatch::new(bytes.clone(), &limits)
                .with_context(|| format!("{codec:?} batch refused"))?;
            let records_bytes = checked.summary().records_bytes;
            let slice = Duration::from_secs_f64(args.seconds_per_case / 5.0);
            let header_us = median_us(slice, || {
                let h: BatchHeader = batch::validate_header_and_crc(black_box(&bytes)).unwrap();
                black_box(h);
            });
            let full_us = median_us(slice, || {
                let v = ValidBatch::new(black_box(bytes.clone()), &limits).unwrap();
                black_box(v);
            });
            let mib_sent = bytes.len() as f64 / (1 << 20) as f64;
            let mib_records = records_bytes as f64 / (1 << 20) as f64;
            println!(
                "| {codec:?} | {records} x {} B | {} | {header_us:.2} | {full_us:.2} | {:.0} | {:.3} | {:.3} |",
                args.record_bytes,
                bytes.len(),
                full_us * 1000.0 / records as f64,
                full_us / 1000.0 / mib_sent,
                full_us / 1000.0 / mib_records,
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Runs `f` for five slices of `slice` each and answers the median time of
/// one call, in microseconds.
fn median_us(slice: Duration, mut f: impl FnMut()) -> f64 {
    let mut per_call = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < slice {
            for _ in 0..8 {
                f();
            }
            calls += 8;
        }
        per_call.push(start.elapsed().as_secs_f64() * 1e6 / calls as f64);
    }
    per_call.sort_by(f64::total_cmp);
    per_call[2]
}
