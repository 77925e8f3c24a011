//! Segment recycling: retention keeps a deleted segment's file, a later roll
//! writes the new segment over it, and recovery tells the new data from the
//! older batches that follow it in the file.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::{LogConfig, Offset};

fn recycled_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "recycled")
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

fn retention_config() -> LogConfig {
    LogConfig {
        retention_bytes: Some(150 << 10),
        ..small_config()
    }
}

/// Appends and flushes until a roll has taken a recycled file; returns the
/// inode that was reused and the segment file that now has it.
fn run_until_a_segment_reuses_a_file(
    log: &mut corelog_storage::PartitionLog<corelog_storage::io::StdIo>,
    dir: &Path,
) -> (u64, PathBuf) {
    let mut pooled: Option<u64> = None;
    for _ in 0..40 {
        append_n(log, 20, 4, 300);
        flush(log);
        let pool = recycled_files(dir);
        assert!(pool.len() <= 1, "the pool is bounded: {pool:?}");
        if let Some(ino) = pooled {
            if let Some(seg) = segment_files(dir).into_iter().find(|s| inode(s) == ino) {
                return (ino, seg);
            }
        }
        pooled = pool.first().map(|p| inode(p));
    }
    panic!("no segment reused a recycled file");
}

#[test]
fn retention_keeps_the_newest_deleted_file_and_the_next_segment_is_written_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), retention_config());
    let (_, seg) = run_until_a_segment_reuses_a_file(&mut log, dir.path());
    // The reused file now holds a live segment of this log.
    let base: i64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert!(Offset(base) >= log.log_start_offset());
    let (start, end) = (log.log_start_offset(), log.flushed_offset());
    read_and_verify(&log, start, end);

    // Closed and reopened, every offset reads back, and nothing is reported torn.
    block_on(log.close(NOW_MS)).unwrap();
    let (mut log, report) = open_std(dir.path(), retention_config());
    assert_eq!(report.torn_tail_position_bytes, None, "{report:?}");
    assert_eq!((log.log_start_offset(), log.next_offset()), (start, end));
    read_and_verify(&log, start, end);
    // And the log keeps recycling after the reopen.
    run_until_a_segment_reuses_a_file(&mut log, dir.path());
    read_and_verify(&log, log.log_start_offset(), log.flushed_offset());
}

#[test]
fn with_recycling_off_retention_deletes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_files_recycled_max: 0,
        ..retention_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    for _ in 0..20 {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
        assert!(recycled_files(dir.path()).is_empty());
    }
    assert!(log.log_start_offset() > Offset(0), "retention ran");
}

/// The value size that makes a one-record batch exactly one 4 KiB block, so
/// that batches start on block boundaries in every segment.
fn block_sized_value_bytes() -> usize {
    (3900..4096)
        .find(|&v| {
            batch(&BatchSpec {
                records: 1,
                value_bytes: v,
                ..BatchSpec::default()
            })
            .len()
                == 4096
        })
        .expect("a value size that fills one block")
}

#[test]
fn older_batches_after_the_data_of_a_recycled_segment_end_it_on_load_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let value_bytes = block_sized_value_bytes();
    let config = LogConfig {
        segment_bytes_max: 16 * 4096,
        preallocate_step_bytes: 16 * 4096,
        retention_bytes: Some(32 * 4096),
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    // Whole segments of block-sized batches, until a recycled file waits.
    while recycled_files(dir.path()).is_empty() {
        append_n(&mut log, 16, 1, value_bytes);
        flush(&mut log);
    }
    // Fill the active segment, so the next append rolls onto the recycled file.
    while log.next_offset().0 % 16 != 0 {
        append_n(&mut log, 1, 1, value_bytes);
    }
    flush(&mut log);
    let pooled = inode(&recycled_files(dir.path())[0]);
    // A few batches into the new segment: the rest of the file is the older
    // segment's batches, each starting on a block boundary.
    append_n(&mut log, 3, 1, value_bytes);
    flush(&mut log);
    let active = segment_files(dir.path()).pop().unwrap();
    assert_eq!(inode(&active), pooled, "the new segment reused the file");
    assert!(std::fs::metadata(&active).unwrap().len() >= 16 * 4096);
    let (start, acked) = (log.log_start_offset(), log.flushed_offset());
    // A crash: no closing checkpoint (the last one is the roll's, at the
    // segment's start).
    drop(log);

    let (mut log, report) = open_std(dir.path(), config.clone());
    assert_eq!(
        report.torn_tail_position_bytes, None,
        "older batches are not damage: {report:?}"
    );
    assert_eq!(log.next_offset(), acked, "every acknowledged batch is back");
    read_and_verify(&log, start, acked);
    // New appends continue the log, and survive another crash.
    append_n(&mut log, 5, 1, value_bytes);
    flush(&mut log);
    let acked = log.flushed_offset();
    drop(log);
    let (log, _) = open_std(dir.path(), config);
    assert_eq!(log.next_offset(), acked);
    read_and_verify(&log, start, acked);
}

#[test]
fn a_crash_between_reusing_a_file_and_the_roll_checkpoint_recovers_to_the_old_end() {
    // The roll renames the recycled file to the new segment's name, then
    // writes the checkpoint. Stop between the two by hand: rename the pool
    // file as the roll would, and open without the roll ever having happened.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), retention_config());
    while recycled_files(dir.path()).is_empty() {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
    }
    let (start, acked) = (log.log_start_offset(), log.flushed_offset());
    block_on(log.close(NOW_MS)).unwrap();
    let pooled = recycled_files(dir.path())[0].clone();
    let next_segment = dir.path().join(format!("{:020}.log", acked.0));
    std::fs::rename(&pooled, &next_segment).unwrap();

    let (mut log, _) = open_std(dir.path(), retention_config());
    assert_eq!(log.next_offset(), acked);
    read_and_verify(&log, start, acked);
    append_n(&mut log, 10, 4, 300);
    flush(&mut log);
    let end = log.flushed_offset();
    block_on(log.close(NOW_MS)).unwrap();
    let (log, report) = open_std(dir.path(), retention_config());
    assert_eq!(report.torn_tail_position_bytes, None);
    read_and_verify(&log, start, end);
}

#[test]
fn a_deleted_segment_that_a_planned_read_still_uses_is_not_written_over() {
    let dir = tempfile::tempdir().unwrap();
    // No cache: the read must go to the segment file.
    let (mut log, _) = open(
        corelog_storage::io::StdIo,
        dir.path(),
        retention_config(),
        corelog_storage::BatchCache::shared(0),
    );
    while segment_files(dir.path()).len() < 3 {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
    }
    assert!(recycled_files(dir.path()).is_empty(), "nothing deleted yet");
    let oldest = segment_files(dir.path())[0].clone();
    let held = inode(&oldest);
    // Keeps the inode number from being reused by a new file, so that an
    // inode match below means this very file.
    let _pin = std::fs::File::open(&oldest).unwrap();
    let start = log.log_start_offset();
    let plan = log.plan_read(start, 1 << 20, log.flushed_offset()).unwrap();
    // Retention deletes the planned segment, and many rolls follow.
    let mut rolls_while_held = 0;
    while log.log_start_offset() <= start || rolls_while_held < 4 {
        let before = log.segment_count();
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
        if log.log_start_offset() > start && log.segment_count() >= before {
            rolls_while_held += 1;
        }
        assert!(
            segment_files(dir.path())
                .iter()
                .all(|s| *s == oldest || inode(s) != held),
            "a segment was written over a file that a read still uses"
        );
    }
    assert!(
        recycled_files(dir.path()).iter().any(|s| inode(s) == held),
        "the deleted segment's file waits in the pool"
    );
    // The read finds the old batches, intact, where it planned them.
    let got = block_on(plan.execute()).expect("read of a deleted segment");
    let bytes = got.to_vec();
    let mut at = 0;
    let mut next = start;
    while at < bytes.len() {
        let h = corelog_storage::batch::validate_prefix(&bytes[at..]).unwrap();
        assert_eq!(h.base_offset, next);
        check_pattern(&bytes[at..at + h.total_bytes], &h);
        next = h.next_offset();
        at += h.total_bytes;
    }
    assert!(next > start, "the read returned batches");
    // Once the read is done, the file is reused.
    let mut reused = false;
    for _ in 0..20 {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
        if segment_files(dir.path()).iter().any(|s| inode(s) == held) {
            reused = true;
            break;
        }
    }
    assert!(
        reused,
        "the file is written over after the read released it"
    );
}
