//! `corelog-bench storage-open`: how long opening a partition takes as its
//! log grows, after a clean shutdown and after a crash (no final
//! checkpoint). Opening must not take longer as the log grows: the
//! checkpoint bounds what recovery re-reads.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::io::StdIo;
use corelog_storage::{BatchCache, CacheId, LogConfig, PartitionLog};
use futures_lite::future::block_on;

#[derive(Debug, Clone, clap::Args)]
pub struct StorageOpenArgs {
    /// Directory for the logs (on the filesystem under test).
    #[arg(long)]
    pub dir: PathBuf,
    /// Log sizes to build and open, in MiB.
    #[arg(long, value_delimiter = ',', default_values_t = vec![100, 10240])]
    pub sizes_mib: Vec<u64>,
    /// Keep the logs afterwards.
    #[arg(long)]
    pub keep: bool,
    /// MiB appended after the last checkpoint before the crash: what
    /// recovery re-validates (at most the log's `checkpoint_interval_bytes`
    /// in a real crash).
    #[arg(long, default_value_t = 16)]
    pub crash_tail_mib: u64,
}

pub fn run_command(args: &StorageOpenArgs) -> Result<std::process::ExitCode> {
    println!("| log size | segments | open after clean shutdown | re-validated | open after crash | re-validated |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &mib in &args.sizes_mib {
        let dir = args
            .dir
            .join(format!("open-bench-{mib}mib-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = LogConfig::default();
        let payload = Bytes::from(batch(&BatchSpec {
            records: 1000,
            value_bytes: 1024,
            base_timestamp_ms: corelog_runtime::now_ms(),
            ..BatchSpec::default()
        }));
        let (mut log, _) = open(&dir, &config)?;
        let target = mib << 20;
        let mut written = 0u64;
        while written < target {
            for _ in 0..4 {
                log.append(payload.clone()).context("append")?;
                written += payload.len() as u64;
            }
            block_on(log.flush_all(corelog_runtime::now_ms())).context("flush")?;
        }
        let segments = log.segment_count();
        block_on(log.close(corelog_runtime::now_ms())).context("close")?;
        let (clean_ms, clean_report, log) = timed_open(&dir, &config)?;
        // A crash: more data after the last checkpoint, then no close.
        let mut log = log;
        // Batches of about 1 MiB, flushed in fours as a producer's group
        // commits would be. While the tail stays under the checkpoint
        // interval, no checkpoint moves the recovery point meanwhile.
        let tail_batches = (args.crash_tail_mib << 20)
            .div_ceil(payload.len() as u64)
            .max(1);
        for i in 0..tail_batches {
            log.append(payload.clone()).context("append")?;
            if i % 4 == 3 {
                block_on(log.flush_all(corelog_runtime::now_ms())).context("flush")?;
            }
        }
        block_on(log.flush_all(corelog_runtime::now_ms())).context("flush")?;
        drop(log);
        let (crash_ms, crash_report, _log) = timed_open(&dir, &config)?;
        println!(
            "| {} MiB | {segments} | {clean_ms:.2} ms | {} KiB | {crash_ms:.2} ms | {} KiB |",
            mib,
            clean_report.scanned_bytes >> 10,
            crash_report.scanned_bytes >> 10
        );
        if !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn open(
    dir: &std::path::Path,
    config: &LogConfig,
) -> Result<(PartitionLog<StdIo>, corelog_storage::RecoveryReport)> {
    block_on(PartitionLog::open(
        StdIo,
        dir.to_path_buf(),
        config.clone(),
        BatchCache::shared(0),
        CacheId(0),
    ))
    .context("opening log")
}

fn timed_open(
    dir: &std::path::Path,
    config: &LogConfig,
) -> Result<(f64, corelog_storage::RecoveryReport, PartitionLog<StdIo>)> {
    let started = Instant::now();
    let (log, report) = open(dir, config)?;
    Ok((started.elapsed().as_secs_f64() * 1e3, report, log))
}
