//! Crash test: a child process appends through the shard runtime (glommio,
//! O_DIRECT, group commit, `flush.policy=always`) and prints every flushed
//! offset; it is killed with SIGKILL at random moments. After each kill the
//! log is reopened: every printed offset must be present and intact, and the
//! next child must be able to append.
//!
//! A second run does the same with `retention.bytes` set, so that retention
//! deletes segments while the writer appends and new segments are written
//! over recycled files: every printed offset at or above the log start must
//! be present and intact.
//!
//! A third run appends large batches with the window kept full, so that
//! batches are staged behind large writes in flight when the kill lands.
//!
//! A fourth run writes a compacted log (a small key space overwritten
//! again and again) while the writer runs paced cleaning passes, and kills
//! it during passes: after each restart every key's latest acknowledged
//! value is still at its offset, no cleaner file is left, and a pass
//! completes.
//!
//! `CORELOG_CRASH_KILLS` sets the number of kills (default 50, and half as
//! many for the recycling and staging runs); `CORELOG_CRASH_SEED` replays a
//! run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corelog_storage::batch;
use corelog_storage::io::StdIo;
use corelog_storage::{BatchCache, CacheId, LogConfig, Offset, PartitionLog};
use futures_lite::future::block_on;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough randomness for timing, and reproducible from the seed.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SEGMENT_BYTES: u64 = 256 << 10;

/// What the writer appends, and into which log.
#[derive(Clone, Copy)]
struct Shape {
    segment_bytes: u64,
    retention_bytes: Option<u64>,
    records_per_batch: usize,
    /// Keep the window full (appends land while writes are in flight)
    /// instead of appending a whole window and waiting for it.
    sliding: bool,
    /// The smallest window (pipeline depth); each round adds 0-15.
    depth_min: usize,
}

impl Shape {
    /// Small batches in small segments: many rolls per round.
    fn small(retention_bytes: Option<u64>) -> Shape {
        Shape {
            segment_bytes: SEGMENT_BYTES,
            retention_bytes,
            records_per_batch: 4,
            sliding: false,
            depth_min: 1,
        }
    }
}

/// How long an even round waits for the writer's first durable append.
const FIRST_FLUSH_TIMEOUT_S: u64 = 30;

/// Reopens the log the way the broker would and checks it holds every
/// batch below `acknowledged` from the log start on, each with its own
/// data, contiguously.
fn verify(dir: &std::path::Path, acknowledged: Offset, shape: Shape) -> (Offset, Offset) {
    let config = LogConfig {
        segment_bytes_max: shape.segment_bytes,
        retention_bytes: shape.retention_bytes,
        ..LogConfig::default()
    };
    let (log, report) = block_on(PartitionLog::open(
        StdIo,
        dir.to_path_buf(),
        config,
        BatchCache::shared(0),
        CacheId(0),
    ))
    .expect("log reopens after SIGKILL");
    let end = log.next_offset();
    assert!(
        end >= acknowledged,
        "acknowledged offset {acknowledged} lost: log ends at {end} ({report:?})"
    );
    let mut next = log.log_start_offset();
    while next < end {
        let chunk = block_on(log.plan_read(next, 1 << 20, end).unwrap().execute())
            .expect("read after recovery");
        let bytes = chunk.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h = batch::validate_prefix(&bytes[at..]).expect("every recovered batch validates");
            assert_eq!(h.base_offset, next, "offsets are contiguous");
            assert_eq!(
                bytes[at + h.total_bytes - 2],
                (h.base_offset.0 % 251) as u8,
                "batch {next} holds its own data"
            );
            next = h.next_offset();
            at += h.total_bytes;
        }
    }
    (end, log.log_start_offset())
}

fn kills_from_env() -> usize {
    std::env::var("CORELOG_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn seed_from_env() -> u64 {
    std::env::var("CORELOG_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// What a run of kills left behind.
struct Outcome {
    acknowledged: Offset,
    log_start: Offset,
    /// Segment files that were once recycled files, seen by inode.
    reused_files: usize,
    /// Writes from staged buffers, as the writers last reported them.
    staged_writes: u64,
}

/// Runs `kills` rounds of start, append, SIGKILL, verify on one log.
fn kill_rounds(kills: usize, shape: Shape) -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let seed = seed_from_env();
    println!("crash test: {kills} kills, seed {seed} (CORELOG_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("p0");
    let mut acknowledged = Offset(0);
    let mut killed_mid_stream = 0;
    let mut pooled_inodes = std::collections::HashSet::new();
    let mut reused = std::collections::HashSet::new();
    let mut staged_writes = 0;
    for round in 0..kills {
        let depth = shape.depth_min + rng.below(16) as usize;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog-log-writer"));
        cmd.args(["--dir", log_dir.to_str().unwrap()])
            .args(["--segment-bytes", &shape.segment_bytes.to_string()])
            .args(["--pipeline-depth", &depth.to_string()])
            .args(["--records-per-batch", &shape.records_per_batch.to_string()])
            .args(["--sliding", if shape.sliding { "1" } else { "0" }])
            .args(["--value-bytes", &(1 + rng.below(2000)).to_string()]);
        if let Some(r) = shape.retention_bytes {
            cmd.args(["--retention-bytes", &r.to_string()]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().unwrap();
        let (first_flush_tx, first_flush) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut max = Offset(0);
            let mut lines = 0usize;
            let mut staged = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("staged ").and_then(|v| v.parse().ok()) {
                    staged = v;
                }
                if let Some(v) = line.strip_prefix("flushed ").and_then(|v| v.parse().ok()) {
                    max = max.max(Offset(v));
                    lines += 1;
                    if lines == 1 {
                        let _ = first_flush_tx.send(());
                    }
                }
            }
            (max, lines, staged)
        });
        // Odd rounds kill at any moment, recovery and start-up included.
        // Even rounds first wait for the writer's first durable append, so
        // that at least half the kills land mid-stream even when the disk
        // is slow to start (a stalling disk once took most 20-140 ms
        // windows to its first fdatasync).
        if round % 2 == 0 {
            first_flush
                .recv_timeout(Duration::from_secs(FIRST_FLUSH_TIMEOUT_S))
                .unwrap_or_else(|_| {
                    let status = child.try_wait().ok().flatten();
                    panic!(
                        "round {round}: no durable append within {FIRST_FLUSH_TIMEOUT_S} s (writer exit status: {status:?})"
                    )
                });
        }
        let run = Duration::from_millis(20 + rng.below(120));
        let started = Instant::now();
        while started.elapsed() < run {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("round {round}: writer exited by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let (printed, lines, staged) = reader.join().unwrap();
        staged_writes += staged;
        if lines > 0 {
            killed_mid_stream += 1;
        }
        acknowledged = acknowledged.max(printed);
        for e in std::fs::read_dir(&log_dir).unwrap() {
            let path = e.unwrap().path();
            let ino = std::fs::metadata(&path).map_or(0, |m| m.ino());
            match path.extension().and_then(|x| x.to_str()) {
                Some("recycled") => {
                    pooled_inodes.insert(ino);
                }
                Some("log") if pooled_inodes.contains(&ino) => {
                    reused.insert(ino);
                }
                _ => {}
            }
        }
        let (end, log_start) = verify(&log_dir, acknowledged, shape);
        println!("round {round}: depth {depth}, acknowledged {acknowledged}, recovered end {end}, log start {log_start}");
    }
    assert!(
        killed_mid_stream >= kills / 2,
        "most kills must land while the writer is appending ({killed_mid_stream}/{kills})"
    );
    let segments = std::fs::read_dir(&log_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    let (_, log_start) = verify(&log_dir, acknowledged, shape);
    println!(
        "crash test done: {kills} kills, {acknowledged} offsets acknowledged, {segments} segments, log start {log_start}, {} recycled files reused, {staged_writes} staged writes",
        reused.len()
    );
    Outcome {
        acknowledged,
        log_start,
        reused_files: reused.len(),
        staged_writes,
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_a_flushed_offset() {
    let out = kill_rounds(kills_from_env(), Shape::small(None));
    assert!(out.acknowledged > Offset(0));
    assert_eq!(out.log_start, Offset(0), "no retention: nothing deleted");
}

#[test]
fn sigkill_while_segments_are_recycled_never_loses_a_flushed_offset() {
    let out = kill_rounds(
        kills_from_env().div_ceil(2),
        Shape::small(Some(4 * SEGMENT_BYTES)),
    );
    assert!(out.acknowledged > Offset(0));
    assert!(out.log_start > Offset(0), "retention deleted segments");
    assert!(
        out.reused_files > 0,
        "new segments were written over recycled files"
    );
}

#[test]
fn sigkill_while_large_writes_are_staged_never_loses_a_flushed_offset() {
    // Batches of up to 800 KiB from up to 16 tasks, each appending its next
    // batch as soon as its last is durable: more is queued than one write
    // takes (`write_bytes_max`, 4 MiB), so batches are appended while a
    // large write is in flight and copied into the next write's buffer.
    // Retention bounds the disk the test uses.
    let segment_bytes = 8 << 20;
    let out = kill_rounds(
        kills_from_env().div_ceil(2),
        Shape {
            segment_bytes,
            retention_bytes: Some(4 * segment_bytes),
            records_per_batch: 400,
            sliding: true,
            depth_min: 8,
        },
    );
    assert!(out.acknowledged > Offset(0));
    assert!(
        out.staged_writes > 0,
        "writes from staged buffers were acknowledged"
    );
}

/// Keys of the compacted log: few enough that every round overwrites
/// each of them many times, so every pass has records to drop.
const COMPACT_KEYS: u64 = 300;
/// Small segments, so that a round seals many and a pass rewrites many.
const COMPACT_SEGMENT_BYTES: u64 = 64 << 10;
/// The most segment files a fully cleaned log may keep: one per key (each
/// sealed segment left holds a key's latest value), the first sealed
/// segment (never removed, even when emptied) and the active one.
const COMPACT_SEGMENT_FILES_MAX: u64 = COMPACT_KEYS + 2;
/// The writer's cleaning pace is drawn per round between 1 and 16 times
/// this: a pass over a few hundred KiB of segments then takes from tens to
/// hundreds of milliseconds, the span the kills land in, and some rounds
/// complete passes (and their swaps) before the kill.
const COMPACT_CLEAN_BYTES_PER_SECOND_MIN: u64 = 1 << 20;

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: COMPACT_SEGMENT_BYTES,
        cleanup_policy: corelog_storage::CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// The cleaner's working files left in the log directory.
fn cleaner_leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect()
}

/// Every record of the log from its start: (offset, key, value), checking
/// that each batch validates and that offsets strictly increase.
fn compact_records(log: &PartitionLog<StdIo>) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    use corelog_storage::clean::build::decode;
    let mut out: Vec<(u64, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.next_offset();
    while next < end {
        let chunk = block_on(log.plan_read(next, 1 << 20, end).unwrap().execute())
            .expect("read after recovery");
        assert!(!chunk.is_empty(), "no batch at or after {next} below {end}");
        let bytes = chunk.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h = batch::validate_prefix(&bytes[at..]).expect("every recovered batch validates");
            if h.next_offset() > next {
                for (o, k, v) in decode(&bytes[at..at + h.total_bytes]).expect("records parse") {
                    let o = o as u64;
                    if o < next.0 as u64 {
                        continue;
                    }
                    assert!(
                        out.last().is_none_or(|l| l.0 < o),
                        "offsets strictly increase ({o} after {:?})",
                        out.last().map(|l| l.0)
                    );
                    out.push((o, k.expect("a key"), v.expect("a value")));
                }
                next = h.next_offset();
            }
            at += h.total_bytes;
        }
        next = next.max(chunk.next_offset);
    }
    out
}

/// Reopens the compacted log and checks it: no cleaner files left behind,
/// offsets strictly increase, every record has the key and value of its
/// offset, and for every key the latest record at or below `acknowledged`
/// is still there at its offset unless a later record of that key is.
/// Then runs cleaning passes until none is due, and checks the same again
/// plus that the cleaned range holds one record per key. Returns the log
/// end and how many records the log held before those passes.
fn verify_compacted(dir: &std::path::Path, acknowledged: Offset) -> (Offset, usize) {
    let (mut log, report) = block_on(PartitionLog::open(
        StdIo,
        dir.to_path_buf(),
        compact_config(),
        BatchCache::shared(0),
        CacheId(0),
    ))
    .expect("log reopens after SIGKILL");
    let leftovers = cleaner_leftovers(dir);
    assert!(
        leftovers.is_empty(),
        "recovery removed or completed the cleaner's files: {leftovers:?} ({report:?})"
    );
    let end = log.next_offset();
    assert!(
        end >= acknowledged,
        "acknowledged offset {acknowledged} lost: log ends at {end} ({report:?})"
    );
    let check = |log: &PartitionLog<StdIo>| {
        let records = compact_records(log);
        let mut latest = std::collections::HashMap::new();
        for (o, k, v) in &records {
            assert_eq!(
                k.as_slice(),
                format!("k{}", o % COMPACT_KEYS).as_bytes(),
                "offset {o} holds its own key"
            );
            assert!(
                v.starts_with(format!("{o}:").as_bytes()),
                "offset {o} holds its own value"
            );
            latest.insert(o % COMPACT_KEYS, *o);
        }
        let acked = acknowledged.0 as u64;
        for key in 0..COMPACT_KEYS.min(acked) {
            // The latest acknowledged offset of this key.
            let want = (acked - 1) - ((acked - 1 + COMPACT_KEYS - key) % COMPACT_KEYS);
            let have = latest.get(&key).copied();
            assert!(
                have.is_some_and(|h| h >= want),
                "key k{key}: latest acknowledged value at {want} lost (latest in the log: {have:?})"
            );
        }
        records
    };
    let held = check(&log).len();
    let budget = corelog_storage::CleanerBudget::default();
    let mut passes = 0;
    while let Some(job) = log.clean_job(corelog_runtime::now_ms(), &budget) {
        let done = block_on(job.run(|_| async {}));
        log.finish_clean(done)
            .expect("a pass completes after recovery");
        block_on(log.flush_all(corelog_runtime::now_ms())).expect("the pass's swap");
        passes += 1;
        assert!(passes < 100, "the cleaner keeps finding work");
    }
    let records = check(&log);
    let cleaned_to = log
        .cleaner_state(corelog_runtime::now_ms())
        .last_cleaned_offset;
    let mut seen = std::collections::HashSet::new();
    for (o, k, _) in records.iter().filter(|r| r.0 < cleaned_to.0 as u64) {
        assert!(
            seen.insert(k.clone()),
            "offset {o}: key {} twice below the last cleaned offset {cleaned_to}",
            String::from_utf8_lossy(k)
        );
    }
    assert!(cleaner_leftovers(dir).is_empty());
    // A swap removes the sealed segments its pass left with no batch, so
    // after the passes above every sealed segment but the first holds some
    // key's latest value: the files stay bounded by the keys, however many
    // rounds overwrote them.
    let segment_files = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert_eq!(
        segment_files,
        log.segment_count(),
        "every segment file is one the log holds"
    );
    assert!(
        segment_files as u64 <= COMPACT_SEGMENT_FILES_MAX,
        "{segment_files} segment files after cleaning {COMPACT_KEYS} keys"
    );
    (end, held)
}

/// The writer's compact mode, killed at random moments while its cleaner
/// runs paced passes: even rounds wait for a pass to start and kill within
/// the next 0-300 ms; odd rounds kill at any moment, start-up included.
#[test]
fn kill_during_cleaner_pass_keeps_every_latest_value() {
    let kills = kills_from_env();
    let seed = seed_from_env();
    println!(
        "compaction crash test: {kills} kills, seed {seed} (CORELOG_CRASH_SEED={seed} replays it)"
    );
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("p0");
    let mut acknowledged = Offset(0);
    let mut killed_during_pass = 0;
    let mut passes_done = 0;
    let started_all = Instant::now();
    for round in 0..kills {
        let depth = 1 + rng.below(8) as usize;
        let pace = COMPACT_CLEAN_BYTES_PER_SECOND_MIN * (1 + rng.below(16));
        let mut child = Command::new(env!("CARGO_BIN_EXE_corelog-log-writer"))
            .args(["--dir", log_dir.to_str().unwrap()])
            .args(["--segment-bytes", &COMPACT_SEGMENT_BYTES.to_string()])
            .args(["--pipeline-depth", &depth.to_string()])
            .args(["--records-per-batch", "4"])
            .args(["--value-bytes", &(16 + rng.below(500)).to_string()])
            .args(["--compact-keys", &COMPACT_KEYS.to_string()])
            .args(["--clean-bytes-per-second", &pace.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().unwrap();
        let (pass_started_tx, pass_started) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut max = Offset(0);
            let mut in_pass = false;
            let mut done = 0;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("flushed ").and_then(|v| v.parse().ok()) {
                    max = max.max(Offset(v));
                } else if line == "pass start" {
                    in_pass = true;
                    let _ = pass_started_tx.send(());
                } else if line.starts_with("pass ") {
                    in_pass = false;
                    done += 1;
                }
            }
            (max, in_pass, done)
        });
        if round % 2 == 0 {
            pass_started
                .recv_timeout(Duration::from_secs(FIRST_FLUSH_TIMEOUT_S))
                .unwrap_or_else(|_| {
                    let status = child.try_wait().ok().flatten();
                    panic!(
                        "round {round}: no cleaning pass within {FIRST_FLUSH_TIMEOUT_S} s (writer exit status: {status:?})"
                    )
                });
        }
        let run = Duration::from_millis(rng.below(300) + if round % 2 == 0 { 0 } else { 20 });
        let started = Instant::now();
        while started.elapsed() < run {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("round {round}: writer exited by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let (printed, in_pass, done) = reader.join().unwrap();
        if in_pass {
            killed_during_pass += 1;
        }
        passes_done += done;
        acknowledged = acknowledged.max(printed);
        let (end, held) = verify_compacted(&log_dir, acknowledged);
        println!(
            "round {round}: depth {depth}, pace {} KiB/s, acknowledged {acknowledged}, recovered end {end}, {held} records held, killed {} a pass",
            pace >> 10,
            if in_pass { "during" } else { "outside" }
        );
    }
    println!(
        "compaction crash test done in {:.1} s: {kills} kills, {killed_during_pass} during a cleaning pass, {passes_done} passes completed by the writers, {acknowledged} offsets acknowledged",
        started_all.elapsed().as_secs_f64()
    );
    assert!(
        acknowledged.0 as u64 > 10 * COMPACT_KEYS,
        "the writers overwrote every key many times"
    );
    assert!(
        killed_during_pass >= kills / 4,
        "at least a quarter of the kills land during a cleaning pass ({killed_during_pass}/{kills})"
    );
}
