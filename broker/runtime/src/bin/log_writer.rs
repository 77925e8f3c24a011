//! `corelog-log-writer`: appends batches to one partition log through the
//! shard runtime (glommio, O_DIRECT, group commit) and prints a line
//! `flushed <offset>` each time every offset below `<offset>` is durable,
//! and `staged <n>` when the log's count of writes from staged buffers
//! changes.
//!
//! The crash tests run it as a child process and kill it at random moments:
//! every offset it printed must be in the log after reopening. Each batch's
//! record values are filled with a byte derived from the batch's base offset
//! (`base % 251`), so a reader can check that every batch holds its own data.
//!
//! With `--compact-keys N` the log is compacted instead
//! (`cleanup.policy=compact`, `min.cleanable.dirty.ratio=0`): the record at
//! offset `o` has the key `k<o % N>` and a value that starts with `<o>:`,
//! so a reader can check every record's key and value from its offset
//! alone; and a second task runs cleaning passes through
//! [`Partition::clean`], paced to `--clean-bytes-per-second` so that a
//! pass spans several segments' worth of time. It prints `pass start`
//! before each pass and `pass done <cleaned_to>` after it, so that the
//! crash test knows whether its kill landed during one.

use std::cell::Cell;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use corelog_runtime::{GlommioIo, Partition};
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::clean::build::{keyed_batch, KeyValue};
use corelog_storage::{
    BatchCache, CacheId, CleanerBudget, CleanupPolicy, LogConfig, PartitionLog, RecordLimits,
    ValidBatch,
};
use glommio::{LocalExecutorBuilder, Placement};

struct Args {
    dir: PathBuf,
    records_per_batch: usize,
    value_bytes: usize,
    batches_max: u64,
    segment_bytes_max: u64,
    /// `retention.bytes`; with it, deleted segments' files are recycled.
    retention_bytes: Option<u64>,
    /// Batches appended before waiting for durability (they share one group commit).
    pipeline_depth: usize,
    /// Append from `pipeline_depth` tasks, one batch each at a time, so
    /// that appends arrive while writes are in flight (and are staged
    /// behind large ones), instead of appending a whole window from one
    /// task and waiting for all of it.
    sliding: bool,
    /// Keys of a compacted log (0: the log is not compacted).
    compact_keys: u64,
    /// The pace of cleaning passes in compact mode.
    clean_bytes_per_second: u64,
}

/// State the appending tasks share.
struct Shared {
    appended: Cell<u64>,
    staged_printed: Cell<u64>,
    compact_keys: u64,
}

/// The key of the record at `offset` in compact mode.
fn compact_key(offset: u64, keys: u64) -> String {
    format!("k{}", offset % keys)
}

/// The batch appended at `base` in compact mode: each record's key and
/// value follow from its offset, the value padded to `value_bytes`.
fn compact_batch(spec: &BatchSpec, base: u64, keys: u64) -> Vec<u8> {
    let owned: Vec<(String, Vec<u8>)> = (0..spec.records as u64)
        .map(|i| {
            let o = base + i;
            let mut value = format!("{o}:").into_bytes();
            value.resize(value.len().max(spec.value_bytes), spec.fill);
            (compact_key(o, keys), value)
        })
        .collect();
    let records: Vec<KeyValue<'_>> = owned
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice())))
        .collect();
    keyed_batch(spec, false, &records)
}

fn print_line(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(line.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))
}

/// Runs cleaning passes one after another while the log is due, each paced
/// to `bytes_per_second` (a sleep after each segment for the bytes it
/// moved), until the appenders are done.
async fn clean_passes(
    partition: Partition,
    shared: Rc<Shared>,
    bytes_per_second: u64,
    batches_max: u64,
) -> Result<(), String> {
    let budget = CleanerBudget::default();
    while shared.appended.get() < batches_max {
        let due = partition.read_log(|l| l.cleaner_state(corelog_runtime::now_ms()).due);
        if !due {
            glommio::timer::sleep(Duration::from_millis(2)).await;
            continue;
        }
        print_line("pass start\n")?;
        let throttle = move |bytes: u64| async move {
            glommio::timer::sleep(Duration::from_secs_f64(
                bytes as f64 / bytes_per_second.max(1) as f64,
            ))
            .await;
        };
        match partition.clean(&budget, throttle).await {
            Some(Ok(stats)) => print_line(&format!(
                "pass done {} {}\n",
                stats.cleaned_to.0, stats.segments_rewritten
            ))?,
            Some(Err(e)) => return Err(format!("cleaning pass failed: {e}")),
            None => print_line("pass none\n")?,
        }
    }
    Ok(())
}

/// Appends `window` batches, waits until the last is durable and prints
/// it, until `batches_max` batches have been appended by all tasks.
async fn append_windows(
    partition: Partition,
    shared: Rc<Shared>,
    window: usize,
    records: usize,
    value_bytes: usize,
    batches_max: u64,
) -> Result<(), String> {
    while shared.appended.get() < batches_max {
        let mut last = None;
        for _ in 0..window {
            let base = partition.read_log(|l| l.next_offset());
            let spec = BatchSpec {
                records,
                value_bytes,
                fill: (base.0 % 251) as u8,
                base_timestamp_ms: corelog_runtime::now_ms(),
                ..BatchSpec::default()
            };
            let bytes = if shared.compact_keys > 0 {
                compact_batch(&spec, base.0 as u64, shared.compact_keys)
            } else {
                batch(&spec)
            };
            let (info, generation) = partition
                .append(
                    ValidBatch::new(Bytes::from(bytes), &RecordLimits::default())
                        .map_err(|e| format!("built batch refused: {e}"))?,
                )
                .map_err(|e| format!("append failed: {e}"))?;
            last = Some((info.last_offset.plus(1), generation));
            shared.appended.set(shared.appended.get() + 1);
        }
        let Some((end, generation)) = last else {
            return Ok(());
        };
        partition
            .wait_flushed(end, generation)
            .await
            .map_err(|_| "batch discarded by a failed write".to_string())?;
        let mut line = format!("flushed {}\n", end.0);
        let staged = partition.read_log(|l| l.writes_from_staged_buffers());
        if staged != shared.staged_printed.get() {
            line += &format!("staged {staged}\n");
            shared.staged_printed.set(staged);
        }
        print_line(&line)?;
    }
    Ok(())
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        records_per_batch: 4,
        value_bytes: 100,
        batches_max: u64::MAX,
        segment_bytes_max: 1 << 30,
        retention_bytes: None,
        pipeline_depth: 8,
        sliding: false,
        compact_keys: 0,
        clean_bytes_per_second: 4 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(&value),
            "--records-per-batch" => args.records_per_batch = num()? as usize,
            "--value-bytes" => args.value_bytes = num()? as usize,
            "--batches-max" => args.batches_max = num()?,
            "--segment-bytes" => args.segment_bytes_max = num()?,
            "--retention-bytes" => args.retention_bytes = Some(num()?),
            "--pipeline-depth" => args.pipeline_depth = num()?.max(1) as usize,
            "--sliding" => args.sliding = num()? != 0,
            "--compact-keys" => args.compact_keys = num()?,
            "--clean-bytes-per-second" => args.clean_bytes_per_second = num()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("--dir is required".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("corelog-log-writer: {e}");
            return ExitCode::from(2);
        }
    };
    let ex = match LocalExecutorBuilder::new(Placement::Unbound).make() {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("corelog-log-writer: cannot start executor: {e}");
            return ExitCode::FAILURE;
        }
    };
    ex.run(async move {
        let config = LogConfig {
            segment_bytes_max: args.segment_bytes_max,
            retention_bytes: args.retention_bytes,
            ..LogConfig::default()
        };
        let config = if args.compact_keys > 0 {
            LogConfig {
                cleanup_policy: CleanupPolicy::Compact,
                min_cleanable_dirty_ratio: 0.0,
                ..config
            }
        } else {
            config
        };
        let cache = BatchCache::shared(64 << 20);
        let (log, report) = match PartitionLog::open(
            GlommioIo,
            args.dir.clone(),
            config,
            cache,
            CacheId(0),
        )
        .await
        {
            Ok(x) => x,
            Err(e) => {
                eprintln!("corelog-log-writer: open failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("opened: {report:?}");
        let partition = Partition::start(log);
        // Whole windows from one task, or (sliding) one batch at a time
        // from `pipeline_depth` tasks.
        let (tasks, window) = if args.sliding {
            (args.pipeline_depth, 1)
        } else {
            (1, args.pipeline_depth)
        };
        let shared = Rc::new(Shared {
            appended: Cell::new(0),
            staged_printed: Cell::new(0),
            compact_keys: args.compact_keys,
        });
        let mut handles = Vec::new();
        for _ in 0..tasks {
            handles.push(glommio::spawn_local(append_windows(
                partition.clone(),
                shared.clone(),
                window,
                args.records_per_batch,
                args.value_bytes,
                args.batches_max,
            )));
        }
        let cleaner = (args.compact_keys > 0).then(|| {
            glommio::spawn_local(clean_passes(
                partition.clone(),
                shared.clone(),
                args.clean_bytes_per_second,
                args.batches_max,
            ))
        });
        for h in handles.into_iter().chain(cleaner) {
            if let Err(e) = h.await {
                eprintln!("corelog-log-writer: {e}");
                return ExitCode::FAILURE;
            }
        }
        partition.close().await;
        ExitCode::SUCCESS
    })
}
