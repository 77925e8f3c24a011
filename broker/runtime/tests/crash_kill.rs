//! Crash test: a child process appends through the shard runtime (glommio,
//! O_DIRECT, group commit, `flush.policy=always`) and prints every flushed
//! offset; it is killed with SIGKILL at random moments. After each kill the
//! log is reopened: every printed offset must be present and intact, and the
//! next child must be able to append.
//!
//! `CORELOG_CRASH_KILLS` sets the number of kills (default 50);
//! `CORELOG_CRASH_SEED` replays a run.

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

/// Reopens the log the way the broker would and checks it holds every
/// batch below `acknowledged`, each with its own data, contiguously.
fn verify(dir: &std::path::Path, acknowledged: Offset) -> Offset {
    let config = LogConfig {
        segment_bytes_max: SEGMENT_BYTES,
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
    end
}

#[test]
fn sigkill_at_random_moments_never_loses_a_flushed_offset() {
    let kills: usize = std::env::var("CORELOG_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("CORELOG_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {kills} kills, seed {seed} (CORELOG_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("p0");
    let mut acknowledged = Offset(0);
    let mut killed_mid_stream = 0;
    for round in 0..kills {
        let depth = 1 + rng.below(16);
        let mut child = Command::new(env!("CARGO_BIN_EXE_corelog-log-writer"))
            .args(["--dir", log_dir.to_str().unwrap()])
            .args(["--segment-bytes", &SEGMENT_BYTES.to_string()])
            .args(["--pipeline-depth", &depth.to_string()])
            .args(["--value-bytes", &(1 + rng.below(2000)).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut max = Offset(0);
            let mut lines = 0usize;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("flushed ").and_then(|v| v.parse().ok()) {
                    max = max.max(Offset(v));
                    lines += 1;
                }
            }
            (max, lines)
        });
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
        let (printed, lines) = reader.join().unwrap();
        if lines > 0 {
            killed_mid_stream += 1;
        }
        acknowledged = acknowledged.max(printed);
        let end = verify(&log_dir, acknowledged);
        println!("round {round}: depth {depth}, acknowledged {acknowledged}, recovered end {end}");
    }
    assert!(
        killed_mid_stream >= kills / 2,
        "most kills must land while the writer is appending ({killed_mid_stream}/{kills})"
    );
    assert!(acknowledged > Offset(0));
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
    println!(
        "crash test done: {kills} kills, {acknowledged} offsets acknowledged, {segments} segments"
    );
}
