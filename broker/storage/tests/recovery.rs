//! Recovery on open, one test per fault: each names what went wrong on disk
//! and asserts what a user relies on afterwards.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use corelog_storage::checkpoint::CHECKPOINT_FILE;
use corelog_storage::{LogConfig, Offset, StorageError};

fn active_file(dir: &std::path::Path) -> std::path::PathBuf {
    segment_files(dir).pop().unwrap()
}

/// Writes `n` batches in flushes of 5 and drops the log without closing it,
/// as a killed process would leave it. Returns the flushed end.
fn crash_after(dir: &std::path::Path, config: LogConfig, n: usize) -> Offset {
    let (mut log, _) = open_std(dir, config);
    for _ in 0..n / 5 {
        append_n(&mut log, 5, 3, 120);
        flush(&mut log);
    }
    log.flushed_offset()
}

#[test]
fn clean_close_then_open_validates_nothing_and_keeps_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    for _ in 0..10 {
        append_n(&mut log, 20, 3, 300);
        flush(&mut log);
    }
    let end = log.next_offset();
    block_on(log.close(NOW_MS)).unwrap();
    let (log, report) = open_std(dir.path(), small_config());
    assert!(report.from_checkpoint);
    assert_eq!(
        report.scanned_bytes, 0,
        "a clean shutdown needs no recovery"
    );
    assert_eq!(log.next_offset(), end);
    read_and_verify(&log, Offset(0), end);
}

#[test]
fn process_kill_before_any_checkpoint_keeps_every_flushed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let end = crash_after(dir.path(), small_config(), 50);
    let (mut log, report) = open_std(dir.path(), small_config());
    assert!(report.scanned_bytes > 0);
    assert_eq!(log.next_offset(), end);
    read_and_verify(&log, Offset(0), end);
    append_n(&mut log, 5, 3, 120);
    flush(&mut log);
    read_and_verify(&log, Offset(0), log.flushed_offset());
}

#[test]
fn torn_tail_of_active_segment_is_truncated_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let end = crash_after(dir.path(), small_config(), 20);
    let path = active_file(dir.path());
    let (log, _) = open_std(dir.path(), small_config());
    let data_end = log.size_bytes();
    drop(log);
    // Half of a valid-looking batch after the data: a write cut by power loss.
    let half = patterned(end, 3, 120, NOW_MS);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&half[..half.len() / 2], data_end).unwrap();
    drop(f);
    let (mut log, report) = open_std(dir.path(), small_config());
    assert_eq!(log.next_offset(), end);
    assert!(report.torn_tail_position_bytes.is_some());
    read_and_verify(&log, Offset(0), end);
    append_n(&mut log, 2, 3, 120);
    flush(&mut log);
    let new_end = log.flushed_offset();
    drop(log);
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.next_offset(), new_end);
    read_and_verify(&log, Offset(0), new_end);
}

#[test]
fn flipped_byte_in_the_unchecked_tail_is_truncated_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let end = crash_after(dir.path(), small_config(), 20);
    let (log, _) = open_std(dir.path(), small_config());
    let data_end = log.size_bytes();
    drop(log);
    let path = active_file(dir.path());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, data_end - 10).unwrap();
    f.write_all_at(&[byte[0] ^ 0x10], data_end - 10).unwrap();
    drop(f);
    let (log, report) = open_std(dir.path(), small_config());
    assert!(log.next_offset() < end, "the damaged last batch is cut");
    assert!(report.torn_tail_position_bytes.is_some());
    read_and_verify(&log, Offset(0), log.next_offset());
}

#[test]
fn file_cut_at_any_point_recovers_the_whole_batches_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let end = crash_after(dir.path(), small_config(), 20);
    let path = active_file(dir.path());
    let original = std::fs::read(&path).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    let data_end = log.size_bytes() as usize;
    drop(log);
    // Batch boundaries, from the intact file.
    let mut boundaries = vec![(0usize, Offset(0))];
    let mut at = 0;
    while at < data_end {
        let h = corelog_storage::batch::BatchHeader::parse(&original[at..]).unwrap();
        at += h.total_bytes;
        boundaries.push((at, h.next_offset()));
    }
    assert_eq!(boundaries.last().unwrap().1, end);
    for cut in (0..data_end).step_by(97).chain([data_end - 1]) {
        let case = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, case.path().join(p.file_name().unwrap())).unwrap();
        }
        let victim = case.path().join(path.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&victim)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let (log, _) = open_std(case.path(), small_config());
        let expected = boundaries
            .iter()
            .rev()
            .find(|(pos, _)| *pos <= cut)
            .unwrap()
            .1;
        assert_eq!(log.next_offset(), expected, "cut at byte {cut}");
        read_and_verify(&log, Offset(0), expected);
    }
}

#[test]
fn stale_batches_after_a_torn_point_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let end = crash_after(dir.path(), small_config(), 20);
    let (log, _) = open_std(dir.path(), small_config());
    let data_end = log.size_bytes();
    drop(log);
    // Damage a batch in the middle of the unchecked tail: everything after
    // it, though intact, is cut, and must stay cut after new appends.
    let path = active_file(dir.path());
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all_at(&[0xee], data_end / 2).unwrap();
    drop(f);
    let (mut log, _) = open_std(dir.path(), small_config());
    let kept = log.next_offset();
    assert!(kept < end);
    append_n(&mut log, 1, 1, 1);
    flush(&mut log);
    let new_end = log.flushed_offset();
    drop(log);
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(
        log.next_offset(),
        new_end,
        "no stale batch reappeared after the new one"
    );
    read_and_verify(&log, Offset(0), new_end);
}

#[test]
fn flipped_byte_in_a_checkpointed_segment_is_reported_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(
        corelog_storage::io::StdIo,
        dir.path(),
        small_config(),
        corelog_storage::BatchCache::shared(0),
    );
    for _ in 0..10 {
        append_n(&mut log, 20, 3, 300);
        flush(&mut log);
    }
    let end = log.next_offset();
    block_on(log.close(NOW_MS)).unwrap();
    let first = segment_files(dir.path())[0].clone();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    f.write_all_at(&[0x5a], 5000).unwrap();
    drop(f);
    let (log, report) = open(
        corelog_storage::io::StdIo,
        dir.path(),
        small_config(),
        corelog_storage::BatchCache::shared(0),
    );
    assert_eq!(
        report.scanned_bytes, 0,
        "checkpointed data is not re-read on open"
    );
    assert_eq!(log.next_offset(), end);
    let mut reported = None;
    let mut next = Offset(0);
    while next < end {
        match block_on(log.plan_read(next, 4096, end).unwrap().execute()) {
            Ok(r) => next = r.next_offset,
            Err(e) => {
                reported = Some(e);
                break;
            }
        }
    }
    match reported {
        Some(StorageError::Corrupt { path, position, .. }) => {
            assert_eq!(path, first);
            assert!(position <= 5000);
        }
        other => panic!("damage was not reported: {other:?}"),
    }
}

#[test]
fn segment_listed_in_the_checkpoint_but_missing_fails_open_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    for _ in 0..10 {
        append_n(&mut log, 20, 3, 300);
        flush(&mut log);
    }
    block_on(log.close(NOW_MS)).unwrap();
    std::fs::remove_file(&segment_files(dir.path())[1]).unwrap();
    let err = block_on(corelog_storage::PartitionLog::open(
        corelog_storage::io::StdIo,
        dir.path().to_path_buf(),
        small_config(),
        corelog_storage::BatchCache::shared(0),
        corelog_storage::CacheId(1),
    ))
    .err()
    .expect("open must fail");
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn recovery_work_is_bounded_by_the_checkpoint_interval_not_the_log_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        checkpoint_interval_bytes: 32 << 10,
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    for _ in 0..300 {
        append_n(&mut log, 5, 3, 300);
        flush(&mut log);
    }
    let end = log.flushed_offset();
    assert!(log.size_bytes() > 1 << 20);
    drop(log);
    let (log, report) = open_std(dir.path(), config);
    assert!(report.from_checkpoint);
    assert!(
        report.scanned_bytes <= (32 << 10) + 8 * 1024,
        "scanned {} bytes",
        report.scanned_bytes
    );
    assert_eq!(log.next_offset(), end);
    read_and_verify(&log, Offset(0), end);
}

#[test]
fn damaged_checkpoint_falls_back_to_validating_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let end = crash_after(dir.path(), small_config(), 30);
    let cp = dir.path().join(CHECKPOINT_FILE);
    let mut bytes = std::fs::read(&cp).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&cp, bytes).unwrap();
    let (log, report) = open_std(dir.path(), small_config());
    assert!(!report.from_checkpoint);
    assert_eq!(log.next_offset(), end);
    read_and_verify(&log, Offset(0), end);
}

#[test]
fn segment_files_left_by_a_crash_during_retention_are_removed_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(100 << 10),
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), small_config());
    for _ in 0..10 {
        append_n(&mut log, 20, 3, 300);
        flush(&mut log);
    }
    block_on(log.close(NOW_MS)).unwrap();
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = segment_files(dir.path())
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let (mut log, _) = open_std(dir.path(), config.clone());
    flush(&mut log); // retention runs: checkpoint, then delete
    let start = log.log_start_offset();
    let end = log.next_offset();
    assert!(start > Offset(0));
    drop(log);
    // Put the deleted files back, as if the process died before deleting them.
    for (p, b) in &saved {
        if !p.exists() {
            std::fs::write(p, b).unwrap();
        }
    }
    let (log, report) = open_std(dir.path(), config);
    assert!(report.removed_segments > 0);
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(segment_files(dir.path()).len(), log.segment_count());
    read_and_verify(&log, start, end);
}

#[test]
fn crash_in_the_middle_of_a_truncation_never_brings_cut_batches_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    for _ in 0..10 {
        append_n(&mut log, 20, 3, 300);
        flush(&mut log);
    }
    assert!(log.segment_count() > 3);
    block_on(log.close(NOW_MS)).unwrap();
    // The state a crash right after truncation's first step leaves: every
    // old file intact, and a checkpoint that says the log ends at the cut.
    let before = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, before.path().join(p.file_name().unwrap())).unwrap();
    }
    let (mut log, _) = open_std(dir.path(), small_config());
    let new_end = block_on(log.truncate_to(Offset(100), NOW_MS)).unwrap();
    assert_eq!(
        new_end,
        Offset(99),
        "the batch [99, 102) holding 100 is cut whole"
    );
    drop(log);
    let cp = corelog_storage::checkpoint::Checkpoint::decode(
        &std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap(),
    )
    .unwrap();
    let mut mid = cp.clone();
    mid.active.recovery_point_is_end = true;
    std::fs::write(before.path().join(CHECKPOINT_FILE), mid.encode()).unwrap();

    let (log, report) = open_std(before.path(), small_config());
    assert_eq!(
        log.next_offset(),
        new_end,
        "cut batches came back: {report:?}"
    );
    assert!(report.removed_segments > 0);
    read_and_verify(&log, Offset(0), new_end);
    // And the finished truncation itself reopens the same.
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.next_offset(), new_end);
    read_and_verify(&log, Offset(0), new_end);
}
