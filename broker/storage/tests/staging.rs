//! Staged write buffers: batches appended while a large group-commit write
//! is in flight are copied into the next write's buffer at once. These tests
//! drive the log's jobs by hand, so that appends land while a write is in
//! flight, as they do on a shard.

mod common;

use common::*;
use corelog_storage::io::StorageIo;
use corelog_storage::{BatchCache, LogConfig, Offset, PartitionLog};
use proptest::prelude::*;

/// 1 KiB records: a batch of this many is about 600 KiB, so a write of one
/// is a large write (at least `DIRECT_WRITE_MIN_BYTES`).
const LARGE_BATCH_RECORDS: usize = 600;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        preallocate_step_bytes: 4 << 20,
        ..small_config()
    }
}

/// Takes the next job, which must be a write.
fn start_write<I: StorageIo>(log: &mut PartitionLog<I>) -> corelog_storage::Job<I> {
    let job = log.next_job(NOW_MS).expect("a job");
    assert_eq!(job.kind(), "write");
    job
}

#[test]
fn batches_appended_behind_a_large_write_are_staged_and_land_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), config());
    flush(&mut log);
    let mut spans = append_n(&mut log, 1, LARGE_BATCH_RECORDS, 1000);
    let mut job = start_write(&mut log);
    for round in 0..6 {
        // Appends while the write is in flight, of mixed sizes, so the
        // staged buffer starts in the middle of a block.
        spans.extend(append_n(&mut log, 1, 3, 333 + round));
        spans.extend(append_n(&mut log, 2, LARGE_BATCH_RECORDS, 1000));
        log.finish_job(block_on(job.run(NOW_MS))).unwrap();
        job = start_write(&mut log);
    }
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    flush(&mut log);
    let end = spans.last().unwrap().1;
    assert_eq!(log.flushed_offset(), end);
    assert_eq!(
        log.writes_from_staged_buffers(),
        6,
        "every write after the first was staged"
    );
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
    // A crash (no close): every flushed batch is recovered from the file.
    drop(log);
    let (log, report) = open_std(dir.path(), config());
    assert_eq!(log.next_offset(), end, "{report:?}");
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
}

#[test]
fn batches_staged_for_a_full_segment_are_written_into_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        // Room for three of these batches per segment.
        segment_bytes_max: 2 << 20,
        ..config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    flush(&mut log);
    let mut spans = append_n(&mut log, 2, LARGE_BATCH_RECORDS, 1000);
    let job = start_write(&mut log);
    // The first of these fits the segment behind the write in flight and
    // is staged; the rest wait for the next segment.
    spans.extend(append_n(&mut log, 4, LARGE_BATCH_RECORDS, 1000));
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    flush(&mut log);
    let end = spans.last().unwrap().1;
    assert_eq!(log.flushed_offset(), end);
    assert!(log.segment_count() >= 2, "the log rolled");
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
    drop(log);
    let (log, _) = open_std(dir.path(), config);
    assert_eq!(log.next_offset(), end);
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
}

#[test]
fn a_failed_write_discards_what_was_staged_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let (mut log, _) = open(
        io.clone(),
        dir.path(),
        config(),
        BatchCache::shared(1 << 20),
    );
    flush(&mut log);
    let mut spans = append_n(&mut log, 2, LARGE_BATCH_RECORDS, 1000);
    flush(&mut log);
    let durable = log.flushed_offset();

    append_n(&mut log, 1, LARGE_BATCH_RECORDS, 1000);
    let job = start_write(&mut log);
    append_n(&mut log, 2, LARGE_BATCH_RECORDS, 1000);
    io.fail_with.set(Some(libc::EIO));
    assert!(log.finish_job(block_on(job.run(NOW_MS))).is_err());
    assert_eq!(
        log.next_offset(),
        durable,
        "staged batches are discarded too"
    );

    // The disk works again: the repaired log takes new batches at the same
    // offsets, and none of the discarded bytes come back.
    io.fail_with.set(None);
    flush(&mut log);
    spans.extend(append_n(&mut log, 1, LARGE_BATCH_RECORDS, 1000));
    let job = start_write(&mut log);
    spans.extend(append_n(&mut log, 2, 7, 500));
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    flush(&mut log);
    let end = spans.last().unwrap().1;
    assert_eq!(log.flushed_offset(), end);
    assert_eq!(log.writes_from_staged_buffers(), 1);
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
    drop(log);
    let (log, _) = open_std(dir.path(), config());
    assert_eq!(log.next_offset(), end);
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
}

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch of this many 1 KiB records (1 to 1,200: up to 1.2 MiB).
    Append { records: usize },
    /// Finish the job in flight, if any, then start the next one.
    Step,
    /// Drop the log without closing it and open it again.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..=1200).prop_map(|records| Op::Append { records }),
        3 => Just(Op::Step),
        1 => Just(Op::Crash),
    ]
}

fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 6 << 20,
        write_bytes_max: 2 << 20,
        ..config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    let mut job = None;
    // Batches (base, next) the log holds, as a model: flushed ones survive a crash.
    let mut spans: Vec<(Offset, Offset)> = Vec::new();
    for op in ops {
        match op {
            Op::Append { records } => {
                let span = append_n(&mut log, 1, records, 1000)[0];
                prop_assert_eq!(span.0, spans.last().map_or(Offset(0), |s| s.1));
                spans.push(span);
            }
            Op::Step => {
                if let Some(j) = job.take() {
                    log.finish_job(block_on(corelog_storage::Job::run(j, NOW_MS)))
                        .unwrap();
                }
                job = log.next_job(NOW_MS);
            }
            Op::Crash => {
                // The job in flight may have written; only flushed batches count.
                if let Some(j) = job.take() {
                    drop(j);
                }
                let flushed = log.flushed_offset();
                drop(log);
                spans.retain(|s| s.1 <= flushed);
                let (reopened, _) = open_std(dir.path(), config.clone());
                log = reopened;
                prop_assert_eq!(log.next_offset(), flushed);
            }
        }
    }
    if let Some(j) = job.take() {
        log.finish_job(block_on(j.run(NOW_MS))).unwrap();
    }
    flush(&mut log);
    let end = spans.last().map_or(Offset(0), |s| s.1);
    prop_assert_eq!(log.flushed_offset(), end);
    prop_assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
    drop(log);
    let (log, _) = open_std(dir.path(), config);
    prop_assert_eq!(log.next_offset(), end);
    prop_assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random interleavings of appends and job steps (so that batches are
    /// staged behind writes in flight, across rolls) and crashes give the
    /// model's batches, each with its own bytes.
    #[test]
    fn interleaved_appends_and_writes_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run_ops(ops)?;
    }
}
