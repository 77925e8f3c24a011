//! The partition log's behaviour on real files: appends, reads from every
//! tier, rolls, retention, timestamp lookups, configuration and write failures.

mod common;

use common::*;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::{BatchCache, FlushPolicy, LogConfig, Offset, StorageError};

#[test]
fn appended_batches_read_back_with_their_assigned_offsets_from_memory_cache_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    // A cache too small to hold anything forces reads of flushed data to disk.
    for cache_bytes in [0usize, 1 << 20] {
        let p = dir.path().join(format!("c{cache_bytes}"));
        let (mut log, _) = open(
            corelog_storage::io::StdIo,
            &p,
            small_config(),
            BatchCache::shared(cache_bytes),
        );
        let spans = append_n(&mut log, 40, 3, 200);
        let end = spans.last().unwrap().1;
        // Unflushed: served from memory with patched offsets.
        assert_eq!(read_and_verify(&log, Offset(0), end), 40);
        flush(&mut log);
        assert_eq!(log.flushed_offset(), end);
        assert_eq!(read_and_verify(&log, Offset(0), end), 40);
        // A read from the middle of a batch starts with the batch holding the offset.
        let got = block_on(log.plan_read(Offset(4), 1, end).unwrap().execute()).unwrap();
        let h = corelog_storage::batch::BatchHeader::parse(&got.to_vec()).unwrap();
        assert_eq!(h.base_offset, Offset(3));
        assert_eq!(got.next_offset, Offset(6));
    }
}

#[test]
fn reads_never_return_a_batch_past_max_offset_and_reject_offsets_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 10, 2, 50);
    flush(&mut log);
    let got = block_on(
        log.plan_read(Offset(0), 1 << 20, Offset(7))
            .unwrap()
            .execute(),
    )
    .unwrap();
    assert_eq!(got.next_offset, Offset(6));
    let empty = block_on(
        log.plan_read(Offset(20), 1 << 20, Offset(20))
            .unwrap()
            .execute(),
    )
    .unwrap();
    assert!(empty.is_empty());
    assert!(matches!(
        log.plan_read(Offset(21), 100, Offset(21)),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.plan_read(Offset(-1), 100, Offset(21)),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn invalid_batch_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 2, 1, 10);
    let mut bad = batch(&BatchSpec::default());
    let n = bad.len();
    bad[n - 3] ^= 0xff;
    let err = log.append(bad.into()).unwrap_err();
    assert!(
        matches!(err, StorageError::Batch(ref e) if e.is_corruption()),
        "{err}"
    );
    let too_big = batch(&BatchSpec {
        value_bytes: 70_000,
        ..BatchSpec::default()
    });
    assert!(matches!(
        log.append(too_big.into()),
        Err(StorageError::BatchTooLarge { .. })
    ));
    assert_eq!(log.next_offset(), Offset(2));
    flush(&mut log);
    assert_eq!(read_and_verify(&log, Offset(0), Offset(2)), 2);
}

#[test]
fn segments_roll_on_size_and_reads_cross_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(
        corelog_storage::io::StdIo,
        dir.path(),
        small_config(),
        BatchCache::shared(0),
    );
    for _ in 0..10 {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
    }
    assert!(
        log.segment_count() >= 4,
        "only {} segments",
        log.segment_count()
    );
    let end = log.next_offset();
    assert_eq!(read_and_verify(&log, Offset(0), end), 200);
    for f in segment_files(dir.path()).iter().rev().skip(1) {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 64 << 10, "sealed segment {f:?} is {len} bytes");
        assert!(f.with_extension("index").exists());
        assert!(f.with_extension("timeindex").exists());
    }
}

#[test]
fn segments_roll_on_age() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    append_n(&mut log, 1, 1, 10);
    block_on(log.flush_all(NOW_MS)).unwrap();
    append_n(&mut log, 1, 1, 10);
    block_on(log.flush_all(NOW_MS + 500)).unwrap();
    assert_eq!(log.segment_count(), 1);
    append_n(&mut log, 1, 1, 10);
    block_on(log.flush_all(NOW_MS + 1500)).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn retention_by_size_deletes_whole_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(150 << 10),
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    for _ in 0..20 {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
    }
    assert!(
        log.size_bytes() < (150 << 10) + (64 << 10),
        "{} bytes kept",
        log.size_bytes()
    );
    assert!(log.log_start_offset() > Offset(0));
    let start = log.log_start_offset();
    assert!(matches!(
        log.plan_read(Offset(start.0 - 1), 100, log.flushed_offset()),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    read_and_verify(&log, start, log.flushed_offset());
    // The first remaining file starts at the log start: deletion is by whole segments.
    let first = segment_files(dir.path())[0].clone();
    assert_eq!(
        first
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<i64>()
            .unwrap(),
        start.0
    );
}

#[test]
fn retention_by_time_deletes_segments_whose_newest_record_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(60_000),
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    for _ in 0..6 {
        append_n(&mut log, 20, 4, 300); // timestamps around NOW_MS
        flush(&mut log);
    }
    let segments = log.segment_count();
    assert!(segments > 2);
    block_on(log.flush_all(NOW_MS + 30_000)).unwrap();
    assert_eq!(log.segment_count(), segments, "nothing is old enough yet");
    block_on(log.flush_all(NOW_MS + 120_000)).unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "every sealed segment expired; the active one stays"
    );
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn advancing_the_log_start_hides_older_offsets_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    for _ in 0..5 {
        append_n(&mut log, 20, 4, 300);
        flush(&mut log);
    }
    let end = log.flushed_offset();
    assert!(
        log.advance_log_start(Offset(end.0 + 1)).is_err(),
        "may not pass the flushed offset"
    );
    log.advance_log_start(Offset(150)).unwrap();
    assert!(log.plan_read(Offset(149), 10, end).is_err());
    flush(&mut log);
    block_on(log.close(NOW_MS)).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), Offset(150));
    read_and_verify(&log, Offset(150), end);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it_in_every_tier() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(
        corelog_storage::io::StdIo,
        dir.path(),
        small_config(),
        BatchCache::shared(0),
    );
    // Batch i holds 4 records with timestamps 1000*i + 0, 10, 20, 30.
    let mut ts_of = Vec::new();
    for i in 0..300i64 {
        let base = log.next_offset();
        let b = batch(&BatchSpec {
            records: 4,
            value_bytes: 200,
            base_timestamp_ms: 1000 * i,
            timestamp_step_ms: 10,
            ..Default::default()
        });
        log.append(b.into()).unwrap();
        ts_of.push((base, 1000 * i));
        if i == 250 {
            flush(&mut log);
        }
    }
    assert!(log.segment_count() > 2);
    let max = log.next_offset();
    for target in [0i64, 15, 1000, 77_005, 200_031, 260_010, 299_030] {
        let got = block_on(log.plan_offset_for_timestamp(target, max).execute()).unwrap();
        let batch_i = (target + 999 - 30) / 1000; // the first batch with max ts >= target
        let (base, bts) = ts_of[batch_i as usize];
        let within = ((target - bts).max(0) + 9) / 10;
        assert_eq!(
            got,
            Some((base.plus(within), bts + 10 * within)),
            "target {target}"
        );
    }
    assert_eq!(
        block_on(log.plan_offset_for_timestamp(10_000_000, max).execute()).unwrap(),
        None
    );
}

#[test]
fn interval_flush_policy_syncs_only_when_the_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_policy: FlushPolicy::IntervalMs(1000),
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    flush(&mut log); // the new partition's first checkpoint
    append_n(&mut log, 3, 1, 10);
    // The first write syncs (no sync has happened for longer than the interval).
    let job = log.next_job(NOW_MS).unwrap();
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    assert_eq!(log.flushed_offset(), Offset(3));
    append_n(&mut log, 2, 1, 10);
    let job = log.next_job(NOW_MS + 10).unwrap();
    log.finish_job(block_on(job.run(NOW_MS + 10))).unwrap();
    assert_eq!(log.flushed_offset(), Offset(3), "written, not yet synced");
    assert_eq!(log.next_deadline_ms(), Some(NOW_MS + 1000));
    assert!(log.next_job(NOW_MS + 500).is_none());
    let job = log
        .next_job(NOW_MS + 1000)
        .expect("sync job at the deadline");
    log.finish_job(block_on(job.run(NOW_MS + 1000))).unwrap();
    assert_eq!(log.flushed_offset(), Offset(5));
}

#[test]
fn appends_buffered_during_a_write_go_into_the_next_single_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    flush(&mut log); // the new partition's first checkpoint
    append_n(&mut log, 1, 1, 10);
    let job = log.next_job(NOW_MS).unwrap();
    assert!(log.next_job(NOW_MS).is_none(), "one job at a time");
    append_n(&mut log, 5, 1, 10);
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    assert_eq!(log.flushed_offset(), Offset(1));
    let job = log.next_job(NOW_MS).unwrap();
    assert_eq!(job.kind(), "write");
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    assert_eq!(
        log.flushed_offset(),
        Offset(6),
        "the five batches went in one write"
    );
}

#[test]
fn failed_write_discards_unflushed_batches_keeps_flushed_data_and_recovers_when_the_disk_does() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let (mut log, _) = open(
        io.clone(),
        dir.path(),
        small_config(),
        BatchCache::shared(1 << 20),
    );
    append_n(&mut log, 5, 2, 100);
    flush(&mut log);
    let durable = log.flushed_offset();
    let generation = log.discard_generation();

    io.fail_with.set(Some(libc::ENOSPC));
    append_n(&mut log, 3, 2, 100);
    let err = block_on(log.flush_all(NOW_MS)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(
        log.next_offset(),
        durable,
        "unflushed batches are discarded"
    );
    assert!(log.discard_generation() > generation);
    let refused = log.append(patterned(durable, 1, 1, 0)).unwrap_err();
    assert!(refused.is_disk_full(), "{refused}");
    read_and_verify(&log, Offset(0), durable);
    // While the disk stays full, repair fails and appends stay refused.
    assert!(block_on(log.flush_all(NOW_MS)).is_err());
    assert!(log.is_failed());

    io.fail_with.set(None);
    flush(&mut log);
    assert!(!log.is_failed());
    append_n(&mut log, 4, 2, 100);
    flush(&mut log);
    let end = log.flushed_offset();
    assert_eq!(end, Offset(durable.0 + 8));
    read_and_verify(&log, Offset(0), end);
    drop(log);
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.next_offset(), end);
    read_and_verify(&log, Offset(0), end);
}

#[test]
fn bad_config_values_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let bad = LogConfig {
        segment_bytes_max: 1 << 40,
        ..LogConfig::default()
    };
    let err = block_on(corelog_storage::PartitionLog::open(
        corelog_storage::io::StdIo,
        dir.path().to_path_buf(),
        bad,
        BatchCache::shared(0),
        corelog_storage::CacheId(1),
    ))
    .err()
    .unwrap();
    assert!(err.to_string().contains("segment.bytes"), "{err}");
}

#[test]
fn max_timestamp_is_the_newest_record_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(
        corelog_storage::io::StdIo,
        dir.path(),
        small_config(),
        BatchCache::shared(0),
    );
    assert_eq!(log.max_timestamp_ms(log.flushed_offset()), None);
    // Timestamps go up, then back down: the newest is in the middle.
    for (i, ts) in [1000i64, 5000, 9000, 3000, 2000].into_iter().enumerate() {
        let b = batch(&BatchSpec {
            records: 2,
            base_timestamp_ms: ts,
            timestamp_step_ms: 7,
            value_bytes: 9000,
            ..Default::default()
        });
        log.append(b.into()).unwrap();
        if i == 1 {
            flush(&mut log);
        }
    }
    assert_eq!(
        log.max_timestamp_ms(log.flushed_offset()),
        Some(5007),
        "unflushed batches are not counted"
    );
    flush(&mut log);
    assert!(log.segment_count() > 1);
    let hw = log.flushed_offset();
    let max = log.max_timestamp_ms(hw).unwrap();
    assert_eq!(max, 9007);
    let found = block_on(log.plan_offset_for_timestamp(max, hw).execute()).unwrap();
    assert_eq!(
        found,
        Some((Offset(5), 9007)),
        "the record carrying the max timestamp"
    );
}

#[test]
fn failed_preallocation_stands_down_so_the_write_reports_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let (mut log, _) = open(
        io.clone(),
        dir.path(),
        small_config(),
        BatchCache::shared(0),
    );
    flush(&mut log);
    io.fail_with.set(Some(libc::ENOSPC));
    append_n(&mut log, 2, 1, 10);
    let pre = log
        .next_preallocation()
        .expect("space is reserved ahead of the first write");
    assert!(
        log.next_job(NOW_MS).is_none(),
        "writes wait for the running preallocation"
    );
    let done = block_on(pre.run());
    assert!(!done.is_ok());
    log.finish_preallocation(done);
    assert!(
        log.next_preallocation().is_none(),
        "no retry loop on a full disk"
    );
    let job = log
        .next_job(NOW_MS)
        .expect("the write runs and reports the error");
    let err = log.finish_job(block_on(job.run(NOW_MS))).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    io.fail_with.set(None);
    flush(&mut log);
    append_n(&mut log, 2, 1, 10);
    flush(&mut log);
    assert_eq!(
        log.flushed_offset(),
        Offset(2),
        "appends work again once the disk recovers"
    );
}

#[test]
fn an_idle_partition_reserves_no_space_and_a_quiet_one_little() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 30,
        preallocate_step_bytes: 32 << 20,
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    flush(&mut log);
    assert!(
        log.next_preallocation().is_none(),
        "nothing reserved ahead of an empty segment"
    );
    append_n(&mut log, 1, 1, 100);
    let pre = log
        .next_preallocation()
        .expect("writing starts the reservation");
    log.finish_preallocation(block_on(pre.run()));
    flush(&mut log);
    let reserved = std::fs::metadata(&segment_files(dir.path())[0])
        .unwrap()
        .len();
    assert!(
        reserved <= 3 << 20,
        "a quiet partition reserved {reserved} bytes"
    );
}

#[test]
fn large_group_commits_go_straight_into_new_space_and_the_lane_stands_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 30,
        preallocate_step_bytes: 32 << 20,
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    flush(&mut log);
    // Small writes: the lane zero-fills ahead of them.
    let first = append_n(&mut log, 1, 1, 100);
    flush(&mut log);
    let pre = log
        .next_preallocation()
        .expect("small writes keep the lane");
    log.finish_preallocation(block_on(pre.run()));
    let filled = std::fs::metadata(&segment_files(dir.path())[0])
        .unwrap()
        .len();
    // One group commit of 4 x 100 KiB batches: past the filled space.
    let mut spans = first;
    spans.extend(append_n(&mut log, 4, 100, 1000));
    let job = log.next_job(NOW_MS).expect("one write");
    assert_eq!(job.kind(), "write");
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    assert_eq!(log.flushed_offset(), spans.last().unwrap().1);
    assert!(
        log.next_preallocation().is_none(),
        "no zero fill ahead of large writes"
    );
    // More large writes pass the filled space and grow the file with their
    // data only: nothing is reserved past them.
    while std::fs::metadata(&segment_files(dir.path())[0])
        .unwrap()
        .len()
        <= filled
    {
        spans.extend(append_n(&mut log, 4, 100, 1000));
        flush(&mut log);
        assert!(log.next_preallocation().is_none());
    }
    let len = std::fs::metadata(&segment_files(dir.path())[0])
        .unwrap()
        .len();
    assert_eq!(
        len,
        corelog_storage::io::align_up(log.size_bytes()),
        "the file ends at the last write's block"
    );
    // Back to small writes: the first fills only its own blocks inline,
    // then the lane resumes.
    spans.extend(append_n(&mut log, 1, 1, 100));
    flush(&mut log);
    let len = std::fs::metadata(&segment_files(dir.path())[0])
        .unwrap()
        .len();
    assert_eq!(len, corelog_storage::io::align_up(log.size_bytes()));
    assert!(log.next_preallocation().is_some(), "the lane resumes");
    let end = spans.last().unwrap().1;
    drop(log);
    let (log, _) = open_std(dir.path(), config);
    assert_eq!(log.flushed_offset(), end);
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
}

#[test]
fn background_checkpoints_run_beside_writes_and_hold_back_other_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 30,
        checkpoint_interval_bytes: 64 << 10,
        ..small_config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    flush(&mut log);
    log.set_background_checkpoints(true);
    assert!(
        log.next_background_checkpoint().is_none(),
        "nothing to checkpoint yet"
    );
    // Past the interval: the job pipeline only writes.
    let mut spans = append_n(&mut log, 10, 10, 1000);
    flush(&mut log);
    let covered = spans.last().unwrap().1;
    let cp = log
        .next_background_checkpoint()
        .expect("the interval has passed");
    assert!(log.next_background_checkpoint().is_none(), "one at a time");
    // While it runs: writes go on, an explicit checkpoint waits.
    spans.extend(append_n(&mut log, 3, 10, 1000));
    log.request_checkpoint();
    let job = log.next_job(NOW_MS).expect("a write beside the checkpoint");
    assert_eq!(job.kind(), "write");
    log.finish_job(block_on(job.run(NOW_MS))).unwrap();
    assert!(
        log.next_job(NOW_MS).is_none(),
        "the requested checkpoint waits for the one running"
    );
    log.finish_background_checkpoint(block_on(cp.run()));
    let job = log.next_job(NOW_MS).expect("now the requested checkpoint");
    assert_eq!(job.kind(), "checkpoint");
    // Drop the requested checkpoint's effect: recovery must start from the
    // background one, which covers the first ten batches only.
    drop(job);
    drop(log);
    let (log, report) = open_std(dir.path(), config);
    assert!(report.from_checkpoint);
    let end = spans.last().unwrap().1;
    assert_eq!(log.flushed_offset(), end);
    assert!(covered < end);
    assert!(
        report.scanned_bytes > 0 && report.scanned_bytes < 4 * 10 * 1100,
        "only the batches after the background checkpoint are re-validated: {} bytes",
        report.scanned_bytes
    );
    assert_eq!(read_and_verify(&log, Offset(0), end), spans.len());
}
