//! `corelog-bench storage`: append throughput and latency of one partition
//! log through the shard runtime (glommio, O_DIRECT, group commit,
//! `flush.policy=always`), next to the device's own figures from the same run.
//!
//! Latency is measured from the `append` call to the moment the batch is
//! durable (`wait_flushed` returns): what an acks=all producer waits for,
//! minus the network. Each case runs twice:
//! - `latency`: one writer, one batch at a time. Each append is one write
//!   plus one fdatasync of that batch's size, so its p99 compares directly
//!   with the device's fdatasync p99 at that size.
//! - `throughput`: several writers keep batches in flight, so group commit
//!   merges them into large writes, compared with the device's O_DIRECT
//!   bandwidth at the largest write size the log issues (`write_bytes_max`).
//!
//! Each case runs on a log in one of two states (`--log-state`):
//! - `fresh`: a new, empty log. Every segment is new space on the disk.
//! - `recycled`: a log in the steady state of a partition under retention.
//!   It is first filled past `retention.bytes`, so that retention deletes
//!   segments and every new segment is written over a recycled file (the
//!   `-recycled` scenarios). The measurement starts when the first segment
//!   on a recycled file has begun.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use corelog_runtime::{GlommioIo, Partition};
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::{BatchCache, CacheId, LogConfig, PartitionLog};

use crate::hist::LatencyRecorder;
use crate::limits::{measure_limits, LimitsOptions};
use crate::run::{RunWriter, ThroughputBasis};

#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Directory for the log (on the filesystem under test).
    #[arg(long)]
    pub dir: PathBuf,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Record value size.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Batch sizes to run, in bytes (each rounded to whole records).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16 * 1024, 1024 * 1024])]
    pub batch_bytes: Vec<usize>,
    /// Measured seconds per case.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Writers in the throughput case.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Short limits measurement (CI).
    #[arg(long)]
    pub quick: bool,
    /// CPU to pin the log's executor to.
    #[arg(long, default_value_t = 1)]
    pub cpu: usize,
    /// Log states to run each case in: `fresh` (a new log), `recycled` (the
    /// steady state under retention: new segments written over deleted ones).
    #[arg(long, value_delimiter = ',', default_values_t = vec![LogState::Fresh, LogState::Recycled])]
    pub log_state: Vec<LogState>,
    /// The log's `checkpoint_interval_bytes` in MiB (default: the log's own).
    #[arg(long)]
    pub checkpoint_interval_mib: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogState {
    Fresh,
    Recycled,
}

impl std::fmt::Display for LogState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogState::Fresh => "fresh",
            LogState::Recycled => "recycled",
        })
    }
}

/// The recycled state's retention: two default-sized segments. The log is
/// filled until a segment starts on a recycled file: about three segments.
const RECYCLED_RETENTION_BYTES: u64 = 2 << 30;

/// The longest the fill before a recycled-state measurement may take.
const RECYCLED_FILL_TIMEOUT_S: u64 = 120;

pub fn run_command(args: &StorageArgs) -> Result<std::process::ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let opts = if args.quick {
        LimitsOptions::quick()
    } else {
        LimitsOptions::full()
    };
    eprintln!("measuring machine limits on {} ...", args.dir.display());
    let limits = measure_limits(&args.dir, &opts).context("measuring limits")?;
    let write_bytes_max = LogConfig::default().write_bytes_max;
    for &state in &args.log_state {
        for &batch_bytes in &args.batch_bytes {
            let records = (batch_bytes / (args.record_bytes + 10)).max(1);
            for (mode, writers) in [("latency", 1usize), ("throughput", args.writers.max(1))] {
                let suffix = match state {
                    LogState::Fresh => "",
                    LogState::Recycled => "-recycled",
                };
                let scenario = format!(
                    "storage-append-{}-{mode}{suffix}",
                    crate::limits::format_block(batch_bytes as u64)
                );
                let mut log_config = match state {
                    LogState::Fresh => LogConfig::default(),
                    LogState::Recycled => LogConfig {
                        retention_bytes: Some(RECYCLED_RETENTION_BYTES),
                        ..LogConfig::default()
                    },
                };
                if let Some(mib) = args.checkpoint_interval_mib {
                    log_config.checkpoint_interval_bytes = mib << 20;
                }
                let config = serde_json::json!({
                    "log_state": state.to_string(),
                    "segment_bytes": log_config.segment_bytes_max,
                    "retention_bytes": log_config.retention_bytes,
                    "checkpoint_interval_bytes": log_config.checkpoint_interval_bytes,
                    "record_bytes": args.record_bytes,
                    "records_per_batch": records,
                    "batch_bytes_target": batch_bytes,
                    "writers": writers,
                    "flush_policy": "always",
                    "write_bytes_max": write_bytes_max,
                    "duration_s": args.duration_s,
                });
                let mut run = RunWriter::create_timestamped(&args.out, &scenario, config)?;
                run.set_data_dir(&args.dir);
                run.set_limits(limits.clone())?;
                let log_dir = args
                    .dir
                    .join(format!("bench-{}-{mode}", std::process::id()));
                let result = append_case(
                    &log_dir,
                    log_config,
                    state,
                    args.cpu,
                    records,
                    args.record_bytes,
                    writers,
                    args.duration_s,
                )?;
                let _ = std::fs::remove_dir_all(&log_dir);
                // The latency case writes one batch per fdatasync, so it compares
                // with the device at the batch size; the throughput case's group
                // commits grow to write_bytes_max, so it compares with the
                // largest block the limits measure (1 MiB).
                let sync_block = if writers == 1 {
                    batch_bytes as u64
                } else {
                    (batch_bytes as u64).max(1 << 20)
                };
                run.add_latency("append_durable", &result.latency, sync_block)?;
                run.set_throughput(
                    result.batches * records as u64,
                    result.bytes,
                    result.elapsed,
                    ThroughputBasis::DiskWrite {
                        block_bytes: sync_block,
                    },
                );
                if result.errors > 0 {
                    run.add_errors("append", result.errors);
                }
                run.set_note(
                    "segments_on_recycled_files",
                    serde_json::json!(result.segments_on_recycled_files),
                );
                run.set_note(
                    "writes_from_staged_buffers",
                    serde_json::json!(result.writes_from_staged_buffers),
                );
                run.set_note("fill_before_measuring_s", serde_json::json!(result.fill_s));
                let record = run.finish()?;
                let t = record.results.throughput.as_ref();
                let l = &record.results.latency["append_durable"];
                println!(
                "{scenario}: {:.1} MiB/s ({:.0}% of device), p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us, p99/fdatasync-p99 {:.2}, peak RSS {} MiB",
                t.map_or(0.0, |t| t.mib_per_s),
                t.and_then(|t| t.fraction_of_limit).unwrap_or(0.0) * 100.0,
                l.summary.p50_us,
                l.summary.p99_us,
                l.summary.p999_us,
                l.summary.max_us,
                l.p99_over_fdatasync_p99.unwrap_or(f64::NAN),
                peak_rss_bytes() >> 20,
            );
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

struct CaseResult {
    latency: hdrhistogram::Histogram<u64>,
    batches: u64,
    bytes: u64,
    elapsed: Duration,
    errors: u64,
    /// Segments started on recycled files during the measurement.
    segments_on_recycled_files: u64,
    /// Writes whose buffer was filled behind the write before them.
    writes_from_staged_buffers: u64,
    /// Seconds spent filling the log before the measurement.
    fill_s: f64,
}

#[allow(clippy::too_many_arguments)]
fn append_case(
    dir: &Path,
    log_config: LogConfig,
    state: LogState,
    cpu: usize,
    records: usize,
    record_bytes: usize,
    writers: usize,
    duration_s: f64,
) -> Result<CaseResult> {
    let dir = dir.to_path_buf();
    corelog_runtime::run_on_core(Some(cpu), || async move {
        let (log, _) = PartitionLog::open(
            GlommioIo,
            dir,
            log_config,
            BatchCache::shared(64 << 20),
            CacheId(0),
        )
        .await
        .context("opening log")?;
        let p = Partition::start(log);
        let fill_started = Instant::now();
        if state == LogState::Recycled {
            fill_until_a_segment_is_recycled(&p, records, record_bytes, writers).await?;
        }
        let fill_s = fill_started.elapsed().as_secs_f64();
        let recycled_before = p.read_log(|l| l.segments_on_recycled_files());
        let staged_before = p.read_log(|l| l.writes_from_staged_buffers());
        // Current timestamps: older ones would let retention.ms delete
        // segments during the run.
        let payload = Bytes::from(batch(&BatchSpec {
            records,
            value_bytes: record_bytes,
            base_timestamp_ms: corelog_runtime::now_ms(),
            ..BatchSpec::default()
        }));
        let warmup_until = Instant::now() + Duration::from_millis(500);
        let end = warmup_until + Duration::from_secs_f64(duration_s);
        let done = Rc::new(Cell::new((0u64, 0u64)));
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (p, payload, done) = (p.clone(), payload.clone(), done.clone());
            tasks.push(corelog_runtime::spawn_local(async move {
                let mut rec = LatencyRecorder::new();
                let mut errors = 0u64;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let started = Instant::now();
                    match p.append(payload.clone()) {
                        Ok((info, generation)) => {
                            if p.wait_flushed(info.last_offset.plus(1), generation)
                                .await
                                .is_err()
                            {
                                errors += 1;
                                continue;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    }
                    if started >= warmup_until {
                        rec.record_since(started);
                        let (b, n) = done.get();
                        done.set((b + 1, n + payload.len() as u64));
                    }
                }
                (rec.into_total(), errors)
            }));
        }
        let mut hists = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (h, e) = t.await;
            hists.push(h);
            errors += e;
        }
        let segments_on_recycled_files =
            p.read_log(|l| l.segments_on_recycled_files()) - recycled_before;
        let writes_from_staged_buffers =
            p.read_log(|l| l.writes_from_staged_buffers()) - staged_before;
        p.close().await;
        let latency = crate::hist::merge_histograms(hists.iter())?;
        let (batches, bytes) = done.get();
        Ok(CaseResult {
            latency,
            batches,
            bytes,
            elapsed: Duration::from_secs_f64(duration_s),
            errors,
            segments_on_recycled_files,
            writes_from_staged_buffers,
            fill_s,
        })
    })
    .context("starting executor")?
}

/// Appends large batches from `writers` tasks until retention has deleted
/// a segment and a new segment has started on its file: from then on, every
/// roll takes the file retention freed before it.
async fn fill_until_a_segment_is_recycled(
    p: &Partition,
    records: usize,
    record_bytes: usize,
    writers: usize,
) -> Result<()> {
    // Large batches fill fastest; the measured batch size does not matter here.
    let records = records.max((1 << 20) / (record_bytes + 10));
    let payload = Bytes::from(batch(&BatchSpec {
        records,
        value_bytes: record_bytes,
        base_timestamp_ms: corelog_runtime::now_ms(),
        ..BatchSpec::default()
    }));
    let deadline = Instant::now() + Duration::from_secs(RECYCLED_FILL_TIMEOUT_S);
    let mut tasks = Vec::new();
    for _ in 0..writers.max(4) {
        let (p, payload) = (p.clone(), payload.clone());
        tasks.push(corelog_runtime::spawn_local(async move {
            while p.read_log(|l| l.segments_on_recycled_files()) == 0 {
                if Instant::now() > deadline {
                    return Err(anyhow::anyhow!(
                        "no segment was recycled after {RECYCLED_FILL_TIMEOUT_S} s of filling"
                    ));
                }
                let (info, generation) = p
                    .append(payload.clone())
                    .map_err(|e| anyhow::anyhow!("fill append: {e}"))?;
                p.wait_flushed(info.last_offset.plus(1), generation)
                    .await
                    .map_err(|_| anyhow::anyhow!("fill append discarded"))?;
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(())
}

/// Peak resident set size of this process (VmHWM).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
