//! `corelog-bench storage`: append throughput and latency of one partition
//! log through the shard runtime (glommio, O_DIRECT, group commit,
//! `flush.policy=always`), next to the device's own figures from the same run.
//!
//! Latency is measured from the `append` call to the moment the batch is
//! durable (`wait_flushed` returns): what an acks=all producer waits for,
//! minus the network. Each case runs twice:
//! - `latency`: one writer, one batch at a time. Each append is one write
//!   plus one fdatasync of that batch's size, so its p99 compares directly
//!   with the device's write+fdatasync p99 at that size (and is recorded
//!   over the fdatasync p99 alone too).
//! - `throughput`: several writers keep batches in flight, so group commit
//!   merges them into large writes, compared with the device's O_DIRECT
//!   bandwidth at the largest write size the log issues (`write_bytes_max`).
//!
//! The device is measured twice: once before the cases (`limits.json`'s
//! single pass) and in short windows between each case's parts
//! ([`DeviceWindows`], `--device-windows`), which the case is compared with:
//! a virtual disk's speed can change by 2x between the two.
//!
//! Each case runs on a log in one of two states (`--log-state`):
//! - `fresh`: a new, empty log. Every segment is new space on the disk, so
//!   the device windows also measure appending writes into new space, and
//!   the case reports its share of that bandwidth beside the headline one.
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
use corelog_storage::{
    BatchCache, CacheId, LogConfig, PartitionLog, RecordLimits, StorageError, ValidBatch,
};

use crate::hist::LatencyRecorder;
use crate::limits::{measure_limits, DeviceWindows, LimitsOptions};
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
    /// Device windows interleaved with each case: the case's duration is
    /// split into this many parts, and after each part the device's write
    /// bandwidth and write+fdatasync latency at the case's write size are
    /// measured for `--device-window-ms`. The case is then compared with
    /// those windows instead of the single pass before the cases (which is
    /// kept in the run's `limits.json`, under `remeasured`). 0: compare
    /// with the single pass.
    #[arg(long, default_value_t = 10)]
    pub device_windows: u32,
    /// Length of each device window.
    #[arg(long, default_value_t = 500)]
    pub device_window_ms: u64,
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
                // The latency case writes one batch per fdatasync, so it compares
                // with the device at the batch size; the throughput case's group
                // commits grow to write_bytes_max, so it compares with the
                // largest block the limits measure (1 MiB). Rounded up to
                // whole blocks, as O_DIRECT writes are, so that the device
                // windows' figures are the ones the case is divided by.
                let sync_block = if writers == 1 {
                    batch_bytes as u64
                } else {
                    (batch_bytes as u64).max(1 << 20)
                }
                .next_multiple_of(4096);
                let device = if args.device_windows > 0 {
                    Some(
                        // A fresh log writes into new space: the windows
                        // measure the device doing that too.
                        DeviceWindows::new(&args.dir, sync_block, &opts, state == LogState::Fresh)
                            .context("preparing the device windows")?,
                    )
                } else {
                    None
                };
                let log_dir = args
                    .dir
                    .join(format!("bench-{}-{mode}", std::process::id()));
                // Each case reports its own peak, not the largest so far.
                reset_peak_rss();
                let result = append_case(
                    &log_dir,
                    log_config,
                    state,
                    args.cpu,
                    records,
                    args.record_bytes,
                    writers,
                    args.duration_s,
                    device.map(|d| {
                        (
                            d,
                            args.device_windows,
                            Duration::from_millis(args.device_window_ms),
                        )
                    }),
                )?;
                let _ = std::fs::remove_dir_all(&log_dir);
                match &result.device {
                    Some(d) => run.set_limits(d.limits(&limits))?,
                    None => run.set_limits(limits.clone())?,
                }
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
                // A fresh log's writes allocate blocks and move the file's
                // end; the device doing the same, in the same minutes, is
                // the other limit it is compared with.
                let new_space_fraction = result
                    .device
                    .as_ref()
                    .and_then(|d| d.growing_bandwidth_bytes_per_s())
                    .filter(|bw| *bw > 0.0)
                    .map(|bw| result.bytes as f64 / result.elapsed.as_secs_f64().max(1e-9) / bw);
                if let Some(f) = new_space_fraction {
                    run.set_note("fraction_of_growing_file_bandwidth", serde_json::json!(f));
                }
                // The process's: the log and the writers, and the device
                // windows' buffer (2 MiB at 1 MiB writes).
                let peak_rss = peak_rss_bytes();
                run.set_note("peak_rss_bytes", serde_json::json!(peak_rss));
                let cpu = ExecutorCpu::of(&result);
                run.set_note("executor_cpu_us_per_mib", serde_json::json!(cpu.us_per_mib));
                run.set_note("executor_cpu_fraction", serde_json::json!(cpu.fraction));
                let record = run.finish()?;
                let t = record.results.throughput.as_ref();
                let l = &record.results.latency["append_durable"];
                let device_sync = record.limits.as_ref().and_then(|limits| {
                    limits
                        .fdatasync_latency
                        .iter()
                        .find(|f| f.block_bytes == sync_block)
                });
                let new_space = new_space_fraction
                    .map(|f| format!(", {:.0}% of device into new space", f * 100.0))
                    .unwrap_or_default();
                println!(
                "{scenario}: {:.1} MiB/s ({:.0}% of device{new_space}), p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us, p99/fdatasync-p99 {:.2}, p99/(write+fdatasync)-p99 {:.2}, peak RSS {} MiB, executor CPU {:.0}% ({:.0} us/MiB)",
                t.map_or(0.0, |t| t.mib_per_s),
                t.and_then(|t| t.fraction_of_limit).unwrap_or(0.0) * 100.0,
                l.summary.p50_us,
                l.summary.p99_us,
                l.summary.p999_us,
                l.summary.max_us,
                l.p99_over_fdatasync_p99.unwrap_or(f64::NAN),
                device_sync.map_or(f64::NAN, |d| l.summary.p99_us / d.write_fdatasync_p99_us),
                peak_rss >> 20,
                cpu.fraction * 100.0,
                cpu.us_per_mib,
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
    /// The executor thread's CPU time over the case's parts (warm-up
    /// included), the bytes appended in them, and their wall time: what the
    /// shard's core spends per byte appended.
    executor_cpu: Duration,
    appended_bytes: u64,
    parts_wall: Duration,
    /// The device windows run between the case's parts, if any.
    device: Option<DeviceWindows>,
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
    device: Option<(DeviceWindows, u32, Duration)>,
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
        let (mut device, parts, window) = match device {
            Some((d, parts, window)) => (Some(d), parts.max(1), window),
            None => (None, 1, Duration::ZERO),
        };
        let part_s = duration_s / f64::from(parts);
        let done = Rc::new(Cell::new((0u64, 0u64)));
        let appended = Rc::new(Cell::new(0u64));
        let mut executor_cpu = Duration::ZERO;
        let mut parts_wall = Duration::ZERO;
        let mut recorders: Vec<LatencyRecorder> =
            (0..writers).map(|_| LatencyRecorder::new()).collect();
        let mut errors = 0;
        let mut elapsed = Duration::ZERO;
        for part in 0..parts {
            // Only the first part warms up: the later ones continue a log
            // that is already running.
            let warmup = if part == 0 {
                Duration::from_millis(500)
            } else {
                Duration::ZERO
            };
            let part_started = Instant::now();
            let cpu_at_start = thread_cpu_time();
            let measure_from = part_started + warmup;
            let end = measure_from + Duration::from_secs_f64(part_s);
            // Each writer keeps its recorder across the parts: a histogram
            // per writer and part would weigh on the peak RSS measured here.
            let tasks: Vec<_> = std::mem::take(&mut recorders)
                .into_iter()
                .map(|rec| {
                    corelog_runtime::spawn_local(write_until(
                        p.clone(),
                        payload.clone(),
                        rec,
                        measure_from,
                        end,
                        done.clone(),
                        appended.clone(),
                    ))
                })
                .collect();
            for t in tasks {
                let (rec, e) = t.await;
                recorders.push(rec);
                errors += e;
            }
            executor_cpu += thread_cpu_time().saturating_sub(cpu_at_start);
            parts_wall += part_started.elapsed();
            // Every writer waited for its last batch to be durable, so the
            // log is idle (but for background lanes) while the device is
            // measured.
            elapsed += measure_from.elapsed();
            if let Some(mut d) = device.take() {
                let (d, result) = corelog_runtime::run_blocking(move || {
                    let result = d.window(window);
                    (d, result)
                })
                .await;
                result.context("measuring a device window")?;
                device = Some(d);
            }
        }
        let segments_on_recycled_files =
            p.read_log(|l| l.segments_on_recycled_files()) - recycled_before;
        let writes_from_staged_buffers =
            p.read_log(|l| l.writes_from_staged_buffers()) - staged_before;
        p.close().await;
        let hists: Vec<_> = recorders
            .into_iter()
            .map(LatencyRecorder::into_total)
            .collect();
        let latency = crate::hist::merge_histograms(hists.iter())?;
        let (batches, bytes) = done.get();
        Ok(CaseResult {
            latency,
            batches,
            bytes,
            elapsed,
            errors,
            segments_on_recycled_files,
            writes_from_staged_buffers,
            fill_s,
            device,
            executor_cpu,
            appended_bytes: appended.get(),
            parts_wall,
        })
    })
    .context("starting executor")?
}

/// One writer: appends `payload` and waits until it is durable, again and
/// again until `end`, recording the appends that start at or after
/// `measure_from` (their latency in `rec`, their count and bytes in `done`).
/// `appended` counts the bytes of every durable append, warm-up included.
/// Returns `rec` and the number of failed appends.
async fn write_until(
    p: Partition,
    payload: Bytes,
    mut rec: LatencyRecorder,
    measure_from: Instant,
    end: Instant,
    done: Rc<Cell<(u64, u64)>>,
    appended: Rc<Cell<u64>>,
) -> (LatencyRecorder, u64) {
    let mut errors = 0u64;
    while Instant::now() < end {
        let started = Instant::now();
        // Checked on every append, as the produce path checks every batch.
        let checked = ValidBatch::new(payload.clone(), &RecordLimits::default());
        match checked
            .map_err(StorageError::from)
            .and_then(|b| p.append(b))
        {
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
        appended.set(appended.get() + payload.len() as u64);
        if started >= measure_from {
            rec.record_since(started);
            let (b, n) = done.get();
            done.set((b + 1, n + payload.len() as u64));
        }
    }
    (rec, errors)
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
                let checked = ValidBatch::new(payload.clone(), &RecordLimits::default())?;
                let (info, generation) = p
                    .append(checked)
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

/// The executor thread's CPU use over a case's parts.
struct ExecutorCpu {
    /// CPU time per MiB appended (0 when nothing was appended).
    us_per_mib: f64,
    /// CPU time over wall time: the share of the shard's core in use.
    fraction: f64,
}

impl ExecutorCpu {
    fn of(r: &CaseResult) -> Self {
        let cpu_us = r.executor_cpu.as_secs_f64() * 1e6;
        let mib = r.appended_bytes as f64 / f64::from(1u32 << 20);
        ExecutorCpu {
            us_per_mib: if mib > 0.0 { cpu_us / mib } else { 0.0 },
            fraction: r.executor_cpu.as_secs_f64() / r.parts_wall.as_secs_f64().max(1e-9),
        }
    }
}

/// CPU time (user and system) of the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Resets this process's peak resident set size (VmHWM) to the current
/// one (Linux 4.0 and later). Best effort: where it fails, the peak stays the
/// process's since its start.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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
