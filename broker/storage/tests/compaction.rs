//! Log compaction: the cleaner against a model of the log (the latest
//! record of every key survives at its offset), transactions, tombstones,
//! the retention rule of compact-only logs, and crashes at each step of a
//! pass's swap.

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use common::*;
use corelog_storage::batch::build::BatchSpec;
use corelog_storage::batch::{self};
use corelog_storage::clean::build::{decode, keyed_batch, KeyValue};
use corelog_storage::codec::Compression;
use corelog_storage::io::{DirectFile, StdFile, StdIo, StorageIo};
use corelog_storage::{
    BatchCache, CleanerBudget, CleanupPolicy, LogConfig, MarkerKind, Offset, PartitionLog,
    ProducerEpoch, ProducerId, StorageError, TxnMarker,
};
use proptest::prelude::*;

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 256,
        preallocate_step_bytes: 64 << 10,
        checkpoint_interval_bytes: 1 << 40,
        retention_ms: None,
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn budget() -> CleanerBudget {
    CleanerBudget::default()
}

/// Appends one batch of `(key, value)` records (`None` value: a tombstone)
/// and flushes it; returns its base offset.
fn put<I: StorageIo>(
    log: &mut PartitionLog<I>,
    records: &[(&str, Option<&str>)],
    codec: Compression,
) -> i64 {
    let recs: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let spec = BatchSpec {
        compression: codec,
        base_timestamp_ms: NOW_MS,
        ..BatchSpec::default()
    };
    let info = log
        .append(Bytes::from(keyed_batch(&spec, false, &recs)))
        .expect("append");
    block_on(log.flush_all(NOW_MS)).expect("flush");
    info.base_offset.0
}

/// Runs one cleaning pass and its swap; returns whether one ran.
fn clean<I: StorageIo>(log: &mut PartitionLog<I>, now_ms: i64, budget: &CleanerBudget) -> bool {
    let Some(job) = log.clean_job(now_ms, budget) else {
        return false;
    };
    let done = block_on(job.run(|_| async {}));
    log.finish_clean(done).expect("clean pass");
    block_on(log.flush_all(now_ms)).expect("swap");
    true
}

/// Every record readable from the log start, in order, checking that
/// each batch validates and offsets strictly increase.
fn read_all<I: StorageIo>(log: &PartitionLog<I>) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.flushed_offset();
    while next < end {
        let got =
            block_on(log.plan_read(next, 1 << 20, end).expect("plan").execute()).expect("read");
        assert!(!got.is_empty(), "no batch at or after {next} below {end}");
        let bytes = got.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h = batch::validate_prefix(&bytes[at..]).expect("a stored batch validates");
            if h.next_offset() > next {
                if !h.is_control() {
                    for r in decode(&bytes[at..at + h.total_bytes]).expect("records parse") {
                        if r.0 >= next.0 {
                            assert!(out.last().is_none_or(|l| l.0 < r.0), "offsets increase");
                            out.push(r);
                        }
                    }
                }
                next = h.next_offset();
            }
            at += h.total_bytes;
        }
        next = next.max(got.next_offset);
    }
    out
}

/// The headers of every batch readable from the log start.
fn headers_all<I: StorageIo>(log: &PartitionLog<I>) -> Vec<batch::BatchHeader> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.flushed_offset();
    while next < end {
        let got =
            block_on(log.plan_read(next, 1 << 20, end).expect("plan").execute()).expect("read");
        assert!(!got.is_empty());
        let bytes = got.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h = batch::validate_prefix(&bytes[at..]).unwrap();
            if h.next_offset() > next {
                out.push(h);
                next = h.next_offset();
            }
            at += h.total_bytes;
        }
    }
    out
}

/// The latest record of each key among `records`, by offset.
fn latest(records: &[Rec]) -> BTreeMap<i64, Rec> {
    let mut by_key: BTreeMap<Vec<u8>, Rec> = BTreeMap::new();
    for r in records {
        if let Some(k) = &r.1 {
            by_key.insert(k.clone(), r.clone());
        }
    }
    by_key.into_values().map(|r| (r.0, r)).collect()
}

/// Checks `after` against the log's records `before` a pass: every
/// record is one of `before` at its offset, and every latest record of a
/// key is there.
fn check_against(before: &[Rec], after: &[Rec]) {
    let by_offset: BTreeMap<i64, &Rec> = before.iter().map(|r| (r.0, r)).collect();
    for r in after {
        assert_eq!(
            by_offset.get(&r.0),
            Some(&r),
            "record at {} is the original",
            r.0
        );
    }
    let kept: BTreeMap<i64, &Rec> = after.iter().map(|r| (r.0, r)).collect();
    for (o, r) in latest(before) {
        assert_eq!(
            kept.get(&o),
            Some(&&r),
            "the latest record of its key at {o} survives"
        );
    }
}

fn seed(log: &mut PartitionLog<impl StorageIo>, codec: Compression) {
    for round in 0..6 {
        let v = format!("v{round}");
        put(
            log,
            &[("a", Some(&v)), ("b", Some(&v)), ("c", Some(&v))],
            codec,
        );
        put(
            log,
            &[(&format!("u{round}"), Some("once")), ("a", Some(&v))],
            codec,
        );
    }
}

#[test]
fn cleaning_keeps_the_latest_record_of_each_key_at_its_offset_with_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open_std(dir.path(), compact_config());
        seed(&mut log, codec);
        let before = read_all(&log);
        let size_before = log.size_bytes();
        assert!(log.segment_count() > 3, "several sealed segments");
        let state = log.cleaner_state(NOW_MS);
        assert!(state.due && state.dirty_ratio == 1.0, "{state:?}");
        assert!(clean(&mut log, NOW_MS, &budget()));
        let after = read_all(&log);
        check_against(&before, &after);
        assert!(
            after.len() < before.len(),
            "{codec:?}: older records are gone"
        );
        assert!(log.size_bytes() < size_before);
        let state = log.cleaner_state(NOW_MS);
        assert_eq!(state.dirty_bytes, 0);
        assert_eq!(state.last_cleaned_offset, state.first_uncleanable_offset);
        assert!(!state.due);
        // Below the cleaned offset only the latest records are left.
        let cleaned_to = state.last_cleaned_offset.0;
        let head: Vec<&Rec> = after.iter().filter(|r| r.0 < cleaned_to).collect();
        let newest = latest(&before);
        for r in head {
            let k = r.1.as_ref().unwrap();
            let newer_in_head = before
                .iter()
                .any(|o| o.0 > r.0 && o.0 < cleaned_to && o.1.as_ref() == Some(k));
            assert!(
                !newer_in_head || newest.contains_key(&r.0),
                "a superseded record at {} was kept",
                r.0
            );
        }
        // The same after a restart, and the last cleaned offset persisted.
        drop(log);
        let (log, _) = open_std(dir.path(), compact_config());
        assert_eq!(read_all(&log), after);
        assert_eq!(
            log.cleaner_state(NOW_MS).last_cleaned_offset,
            state.last_cleaned_offset
        );
        assert!(files_with_extension(dir.path(), "cleaned").is_empty());
        assert!(files_with_extension(dir.path(), "swap").is_empty());
    }
}

/// The storage's `READ_EMPTY_SEGMENTS_MAX` (private to its read module).
const READ_EMPTY_SEGMENTS_MAX: usize = 16;

#[test]
fn a_read_passes_the_gap_left_where_the_cleaner_removed_emptied_segments() {
    // One key overwritten over many small segments: cleaning empties every
    // sealed segment but the one holding the latest value, far more in a
    // row than a read walks past while they hold data
    // (`READ_EMPTY_SEGMENTS_MAX`). The swap removes them, so the first
    // sealed segment then covers their offsets: a read from the log start
    // must still reach the kept record across that gap (the crash test of
    // issue 22 once got nothing back there, at the same offset, forever).
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    for i in 0..3 * READ_EMPTY_SEGMENTS_MAX * 4 {
        let value = format!("value {i:04}");
        put(&mut log, &[("k", Some(value.as_str()))], Compression::None);
    }
    put(&mut log, &[("other", Some("last"))], Compression::None);
    assert!(log.segment_count() > 2 * READ_EMPTY_SEGMENTS_MAX);
    assert!(clean(&mut log, NOW_MS, &budget()));
    let logs = files_with_extension(dir.path(), "log").len();
    assert_eq!(
        logs,
        log.segment_count(),
        "no file of a removed segment is left"
    );
    assert!(
        logs <= 4,
        "{logs} segments: the first, the kept record's, the active"
    );
    let after = read_all(&log);
    let keys: Vec<&[u8]> = after.iter().map(|r| r.1.as_deref().unwrap()).collect();
    assert_eq!(keys.first().copied(), Some(&b"k"[..]), "{after:?}");
    assert_eq!(
        after
            .iter()
            .filter(|r| r.1.as_deref() == Some(&b"k"[..]))
            .count(),
        1
    );
    drop(log);
    let (log, _) = open_std(dir.path(), compact_config());
    assert_eq!(read_all(&log), after);
}

/// Keys of the steady-overwrite tests.
const OVERWRITE_KEYS: usize = 4;

/// The most segment files a log of [`OVERWRITE_KEYS`] keys may keep right
/// after a pass over all its sealed segments: one per key (each non-empty
/// sealed segment holds some key's latest value), the first sealed one
/// (never removed) and the active one.
const OVERWRITE_SEGMENTS_MAX: usize = OVERWRITE_KEYS + 2;

/// Appends `rounds` single-record batches that overwrite the
/// [`OVERWRITE_KEYS`] keys in turn.
fn overwrite(log: &mut PartitionLog<impl StorageIo>, from_round: usize, rounds: usize) {
    for i in from_round..from_round + rounds {
        let key = format!("key{}", i % OVERWRITE_KEYS);
        let value = format!("value {i:05}");
        put(
            log,
            &[(key.as_str(), Some(value.as_str()))],
            Compression::None,
        );
    }
}

#[test]
fn segments_under_steady_overwrite_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    let mut all = Vec::new();
    let mut removed_some = false;
    let passes = 60;
    for pass in 0..passes {
        let before_len = log.segment_count();
        overwrite(&mut log, pass * 16, 16);
        all = read_all(&log)
            .into_iter()
            .chain(all)
            .map(|r| (r.0, r))
            .collect::<BTreeMap<i64, Rec>>()
            .into_values()
            .collect();
        let grown = log.segment_count();
        assert!(grown > before_len, "the writes rolled segments");
        assert!(clean(&mut log, NOW_MS, &budget()), "pass {pass} ran");
        removed_some |= log.segment_count() < grown;
        let logs = files_with_extension(dir.path(), "log").len();
        assert_eq!(logs, log.segment_count(), "pass {pass}: no stray files");
        assert!(
            logs <= OVERWRITE_SEGMENTS_MAX,
            "pass {pass}: {logs} segment files"
        );
        check_against(&all, &read_all(&log));
        if pass % 10 == 9 {
            drop(log);
            log = open_std(dir.path(), compact_config()).0;
            assert_eq!(log.segment_count(), logs);
        }
    }
    assert!(removed_some);
    assert!(files_with_extension(dir.path(), "index").len() <= OVERWRITE_SEGMENTS_MAX);
}

#[test]
fn a_log_without_a_checkpoint_reopens_across_the_gaps_cleaning_left() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    seed(&mut log, Compression::None);
    assert!(clean(&mut log, NOW_MS, &budget()));
    let after = read_all(&log);
    let end = log.next_offset();
    drop(log);
    std::fs::remove_file(dir.path().join("partition.checkpoint")).unwrap();
    let (log, report) = open_std(dir.path(), compact_config());
    assert_eq!(report.removed_segments, 0, "{report:?}");
    assert_eq!(log.next_offset(), end);
    assert_eq!(read_all(&log), after);
}

#[test]
fn the_key_map_budget_bounds_a_pass_and_the_next_pass_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    for i in 0..40 {
        put(
            &mut log,
            &[
                (&format!("k{}", i % 10), Some("x")),
                (&format!("j{i}"), Some("y")),
            ],
            Compression::None,
        );
    }
    let before = read_all(&log);
    let small = CleanerBudget {
        offset_map_bytes_max: 8 * 70,
        ..budget()
    };
    let mut passes = 0;
    while clean(&mut log, NOW_MS, &small) {
        passes += 1;
        check_against(&before, &read_all(&log));
        assert!(passes < 100);
    }
    assert!(passes > 1, "a small map takes several passes");
    let state = log.cleaner_state(NOW_MS);
    assert_eq!(state.last_cleaned_offset, state.first_uncleanable_offset);
}

#[test]
fn tombstones_stay_for_delete_retention_after_the_first_pass_that_cleaned_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1000,
        ..compact_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    put(
        &mut log,
        &[("a", Some("1")), ("b", Some("1"))],
        Compression::None,
    );
    put(&mut log, &[("a", None)], Compression::None);
    for i in 0..8 {
        put(
            &mut log,
            &[(&format!("f{i}"), Some("filler"))],
            Compression::None,
        );
    }
    assert!(clean(&mut log, NOW_MS, &budget()));
    let after = read_all(&log);
    assert!(
        after
            .iter()
            .any(|r| r.1.as_deref() == Some(b"a") && r.2.is_none()),
        "the tombstone stays"
    );
    assert!(
        !after
            .iter()
            .any(|r| r.1.as_deref() == Some(b"a") && r.2.is_some()),
        "the value it deletes is gone"
    );
    // New data makes the log dirty again; a pass before the horizon keeps it.
    for i in 0..8 {
        put(
            &mut log,
            &[(&format!("g{i}"), Some("filler"))],
            Compression::None,
        );
    }
    assert!(clean(&mut log, NOW_MS + 999, &budget()));
    assert!(read_all(&log).iter().any(|r| r.1.as_deref() == Some(b"a")));
    for i in 0..8 {
        put(
            &mut log,
            &[(&format!("h{i}"), Some("filler"))],
            Compression::None,
        );
    }
    assert!(clean(&mut log, NOW_MS + 1000, &budget()));
    let last = read_all(&log);
    assert!(
        !last.iter().any(|r| r.1.as_deref() == Some(b"a")),
        "the tombstone is gone past its horizon"
    );
    assert!(last.iter().any(|r| r.1.as_deref() == Some(b"b")));
}

#[test]
fn a_tombstone_past_its_horizon_makes_the_log_due_without_new_writes() {
    // Kafka 3.x: a log no longer written is still cleaned once the delete
    // horizon of a tombstone it keeps has passed, so the tombstone goes.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1000,
        ..compact_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    put(
        &mut log,
        &[("a", Some("1")), ("b", Some("1"))],
        Compression::None,
    );
    put(&mut log, &[("a", None)], Compression::None);
    for i in 0..8 {
        put(
            &mut log,
            &[(&format!("f{i}"), Some("filler"))],
            Compression::None,
        );
    }
    assert!(clean(&mut log, NOW_MS, &budget()));
    assert!(
        read_all(&log)
            .iter()
            .any(|r| r.1.as_deref() == Some(b"a") && r.2.is_none()),
        "the tombstone stays for delete.retention.ms"
    );
    // No new data: nothing is dirty, and before the horizon nothing is due.
    let state = log.cleaner_state(NOW_MS + 999);
    assert_eq!(state.dirty_bytes, 0);
    assert!(!state.due, "{state:?}");
    // At the horizon the log is due without a dirty byte, and the pass
    // removes the tombstone and nothing else.
    let before = read_all(&log);
    let state = log.cleaner_state(NOW_MS + 1000);
    assert!(state.due && state.dirty_bytes == 0, "{state:?}");
    assert!(clean(&mut log, NOW_MS + 1000, &budget()));
    let after = read_all(&log);
    assert!(
        !after.iter().any(|r| r.1.as_deref() == Some(b"a")),
        "the tombstone is gone past its horizon"
    );
    let expected: Vec<Rec> = before
        .into_iter()
        .filter(|r| r.1.as_deref() != Some(b"a"))
        .collect();
    assert_eq!(after, expected);
    // Then no tombstone is left and the log is not due again.
    assert!(!log.cleaner_state(NOW_MS + 10_000).due);
}

#[test]
fn aborted_transactions_lose_their_data_markers_stay_and_open_ones_bound_the_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    let txn = |log: &mut PartitionLog<StdIo>, pid: i64, seq: i32, key: &str| {
        let spec = BatchSpec {
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(0),
            base_sequence: seq,
            base_timestamp_ms: NOW_MS,
            ..BatchSpec::default()
        };
        let b = keyed_batch(&spec, true, &[(Some(key.as_bytes()), Some(b"t"))]);
        log.append(Bytes::from(b))
            .expect("txn append")
            .base_offset
            .0
    };
    let marker = |pid: i64, kind| TxnMarker {
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(0),
        coordinator_epoch: 0,
        kind,
    };
    let aborted = txn(&mut log, 1, 0, "x");
    log.append_marker(marker(1, MarkerKind::Abort), NOW_MS)
        .unwrap();
    let committed = txn(&mut log, 2, 0, "y");
    log.append_marker(marker(2, MarkerKind::Commit), NOW_MS)
        .unwrap();
    block_on(log.flush_all(NOW_MS)).unwrap();
    for i in 0..6 {
        put(
            &mut log,
            &[(&format!("f{i}"), Some("filler"))],
            Compression::None,
        );
    }
    // An open transaction: nothing at or past its first offset is cleanable.
    let open_first = txn(&mut log, 3, 0, "z");
    for i in 0..6 {
        put(
            &mut log,
            &[(&format!("g{i}"), Some("filler"))],
            Compression::None,
        );
    }
    let state = log.cleaner_state(NOW_MS);
    assert!(state.first_uncleanable_offset.0 <= open_first, "{state:?}");
    assert!(clean(&mut log, NOW_MS, &budget()));
    let after = read_all(&log);
    assert!(
        !after.iter().any(|r| r.0 == aborted),
        "aborted data is gone"
    );
    assert!(
        after.iter().any(|r| r.0 == committed),
        "committed data stays"
    );
    assert!(
        after.iter().any(|r| r.0 == open_first),
        "the open transaction is untouched"
    );
    // The markers are still read (control batches are skipped by read_all,
    // so look at the raw batches).
    let markers = headers_all(&log).iter().filter(|h| h.is_control()).count();
    assert_eq!(markers, 2);
    // The producer that aborted keeps its last batch, empty, for its sequence.
    let views = log.producer_states();
    assert!(views.iter().any(|v| v.producer_id == ProducerId(1)));
}

#[test]
fn keyless_records_are_refused_on_a_compacted_log_only() {
    let keyless = Bytes::from(batch::build::batch(&BatchSpec::default()));
    for (policy, refused) in [
        (CleanupPolicy::Delete, false),
        (CleanupPolicy::Compact, true),
        (CleanupPolicy::CompactDelete, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            cleanup_policy: policy,
            ..compact_config()
        };
        let (mut log, _) = open_std(dir.path(), config);
        let r = log.append(keyless.clone());
        assert_eq!(
            matches!(
                r,
                Err(StorageError::KeylessRecordInCompactedLog { keyless_records: 1 })
            ),
            refused,
            "{policy:?}: {r:?}"
        );
        assert_eq!(log.next_offset(), Offset(if refused { 0 } else { 1 }));
    }
}

#[test]
fn cleanup_policy_parses_kafkas_values_and_config_validates_the_cleaner_settings() {
    assert_eq!(CleanupPolicy::parse("delete"), Ok(CleanupPolicy::Delete));
    assert_eq!(CleanupPolicy::parse("compact"), Ok(CleanupPolicy::Compact));
    assert_eq!(
        CleanupPolicy::parse("compact,delete"),
        Ok(CleanupPolicy::CompactDelete)
    );
    assert_eq!(
        CleanupPolicy::parse("delete, compact"),
        Ok(CleanupPolicy::CompactDelete)
    );
    assert!(CleanupPolicy::parse("").is_err());
    assert!(CleanupPolicy::parse("compress").is_err());
    assert_eq!(LogConfig::default().cleanup_policy, CleanupPolicy::Delete);
    for bad in [
        LogConfig {
            min_cleanable_dirty_ratio: 1.5,
            ..LogConfig::default()
        },
        LogConfig {
            min_cleanable_dirty_ratio: f64::NAN,
            ..LogConfig::default()
        },
        LogConfig {
            min_compaction_lag_ms: -1,
            ..LogConfig::default()
        },
        LogConfig {
            max_compaction_lag_ms: 0,
            ..LogConfig::default()
        },
        LogConfig {
            delete_retention_ms: -1,
            ..LogConfig::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    assert!(LogConfig::default().validate().is_ok());
}

#[test]
fn a_compact_only_log_keeps_segments_that_retention_would_delete() {
    for (policy, deleted) in [
        (CleanupPolicy::Compact, false),
        (CleanupPolicy::CompactDelete, true),
        (CleanupPolicy::Delete, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            cleanup_policy: policy,
            min_cleanable_dirty_ratio: 0.99,
            ..compact_config()
        };
        let (mut log, _) = open_std(dir.path(), config.clone());
        for i in 0..10 {
            put(
                &mut log,
                &[(&format!("k{i}"), Some("v"))],
                Compression::None,
            );
        }
        let segments = log.segment_count();
        log.set_config(LogConfig {
            retention_ms: Some(1000),
            retention_bytes: Some(1),
            ..config
        })
        .unwrap();
        block_on(log.flush_all(NOW_MS + 10_000)).unwrap();
        assert_eq!(log.segment_count() < segments, deleted, "{policy:?}");
        assert_eq!(log.log_start_offset() > Offset(0), deleted);
    }
}

#[test]
fn min_compaction_lag_keeps_young_segments_out_of_the_cleanable_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 60_000,
        ..compact_config()
    };
    let (mut log, _) = open_std(dir.path(), config);
    seed(&mut log, Compression::None);
    let state = log.cleaner_state(NOW_MS);
    assert_eq!((state.cleanable_bytes, state.due), (0, false));
    assert!(log.clean_job(NOW_MS, &budget()).is_none());
    let state = log.cleaner_state(NOW_MS + 60_000);
    assert!(state.due && state.cleanable_bytes > 0);
}

// ---- Crashes and failures during a pass ----

/// [`StdIo`] whose mutating calls (file writes, syncs, truncations,
/// renames, removals, atomic writes) fail from the `fail_at`-th on, as a
/// process killed there leaves the files.
#[derive(Clone, Default)]
struct CrashIo {
    ops: Rc<Cell<u64>>,
    fail_at: Rc<Cell<Option<u64>>>,
}

impl CrashIo {
    fn step(&self) -> io::Result<()> {
        let n = self.ops.get();
        self.ops.set(n + 1);
        match self.fail_at.get() {
            Some(at) if n >= at => Err(io::Error::from_raw_os_error(libc_eio())),
            _ => Ok(()),
        }
    }
}

fn libc_eio() -> i32 {
    5
}

struct CrashFile {
    inner: StdFile,
    io: CrashIo,
}

impl DirectFile for CrashFile {
    type Buffer = <StdFile as DirectFile>::Buffer;
    fn alloc_buffer(&self, len: usize) -> Self::Buffer {
        self.inner.alloc_buffer(len)
    }
    async fn write_at(&self, buf: Self::Buffer, pos: u64) -> io::Result<()> {
        self.io.step()?;
        self.inner.write_at(buf, pos).await
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.inner.read_at(pos, len).await
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.io.step()?;
        self.inner.fdatasync().await
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.io.step()?;
        self.inner.preallocate(len).await
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.io.step()?;
        self.inner.truncate(len).await
    }
    async fn size(&self) -> io::Result<u64> {
        self.inner.size().await
    }
}

impl StorageIo for CrashIo {
    type File = CrashFile;
    async fn open(&self, path: &Path, create: bool) -> io::Result<CrashFile> {
        Ok(CrashFile {
            inner: StdIo.open(path, create).await?,
            io: self.clone(),
        })
    }
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.create_dir_all(path).await
    }
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdIo.list_dir(path).await
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        StdIo.remove_file(path).await
    }
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_dir_all(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        StdIo.rename(from, to).await
    }
    async fn read_small_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        StdIo.read_small_file(path).await
    }
    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.step()?;
        StdIo.write_file_atomic(path, data).await
    }
}

/// Builds a seeded log on `io` in `dir`; returns its records.
fn seeded(io: CrashIo, dir: &Path) -> (PartitionLog<CrashIo>, Vec<Rec>) {
    let (mut log, _) = open(io, dir, compact_config(), BatchCache::shared(1 << 20));
    seed(&mut log, Compression::Zstd);
    let before = read_all(&log);
    (log, before)
}

/// Reopens `dir` as after a crash and checks every kept record.
fn reopen_and_check(dir: &Path, before: &[Rec], end: Offset) -> Vec<Rec> {
    let (log, _) = open_std(dir, compact_config());
    assert_eq!(log.next_offset(), end);
    let after = read_all(&log);
    check_against(before, &after);
    assert!(files_with_extension(dir, "cleaned").is_empty());
    assert!(files_with_extension(dir, "swap").is_empty());
    after
}

#[test]
fn sigkill_during_the_pass_leaves_cleaned_files_that_open_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let io = CrashIo::default();
    let (mut log, before) = seeded(io, dir.path());
    let end = log.next_offset();
    let job = log.clean_job(NOW_MS, &budget()).unwrap();
    let done = block_on(job.run(|_| async {}));
    assert!(done.is_ok());
    assert!(!files_with_extension(dir.path(), "cleaned").is_empty());
    // Killed before the swap: the log is dropped with the pass unapplied.
    drop(done);
    drop(log);
    let after = reopen_and_check(dir.path(), &before, end);
    assert_eq!(after, before, "the old segments are all there");
}

#[test]
fn sigkill_between_cleaned_and_swap_keeps_old_segments() {
    // A failure at every step of the pass itself (writing, truncating,
    // syncing each cleaned file): the pass fails, nothing changes.
    for fail_at in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let io = CrashIo::default();
        let (mut log, before) = seeded(io.clone(), dir.path());
        let end = log.next_offset();
        let job = log.clean_job(NOW_MS, &budget()).unwrap();
        io.fail_at.set(Some(io.ops.get() + fail_at));
        let done = block_on(job.run(|_| async {}));
        let failed = !done.is_ok();
        if failed {
            assert!(log.finish_clean(done).is_err());
            assert_eq!(read_all(&log), before);
        }
        drop(log);
        let after = reopen_and_check(dir.path(), &before, end);
        assert_eq!(after, before, "fail_at {fail_at}: old segments kept");
    }
}

#[test]
fn sigkill_at_each_step_of_the_swap_leaves_old_or_new_segments_with_every_kept_record() {
    let mut saw_new = false;
    let mut saw_old = false;
    for fail_at in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let io = CrashIo::default();
        let (mut log, before) = seeded(io.clone(), dir.path());
        let end = log.next_offset();
        let job = log.clean_job(NOW_MS, &budget()).unwrap();
        let done = block_on(job.run(|_| async {}));
        log.finish_clean(done).unwrap();
        io.fail_at.set(Some(io.ops.get() + fail_at));
        let swapped = block_on(log.flush_all(NOW_MS)).is_ok();
        // The process dies here: whatever the swap did is on disk.
        drop(log);
        let after = reopen_and_check(dir.path(), &before, end);
        if after.len() < before.len() {
            saw_new = true;
        } else {
            saw_old = true;
        }
        if swapped {
            assert!(after.len() < before.len());
            break;
        }
    }
    assert!(saw_new && saw_old);
}

#[test]
fn a_failed_swap_is_retried_before_any_other_checkpoint_and_then_completes() {
    for fail_at in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let io = CrashIo::default();
        let (mut log, before) = seeded(io.clone(), dir.path());
        let end = log.next_offset();
        let job = log.clean_job(NOW_MS, &budget()).unwrap();
        let done = block_on(job.run(|_| async {}));
        log.finish_clean(done).unwrap();
        io.fail_at.set(Some(io.ops.get() + fail_at));
        let failed = block_on(log.flush_all(NOW_MS)).is_err();
        io.fail_at.set(None);
        // Appends go on; the next jobs retry the swap first.
        let late = put(&mut log, &[("late", Some("1"))], Compression::None);
        block_on(log.flush_all(NOW_MS)).unwrap();
        let after = read_all(&log);
        let mut before = before.clone();
        before.push((late, Some(b"late".to_vec()), Some(b"1".to_vec())));
        check_against(&before, &after);
        assert!(
            after.len() < before.len() + 1,
            "fail_at {fail_at}: the swap completed"
        );
        drop(log);
        let (log, _) = open_std(dir.path(), compact_config());
        assert_eq!(read_all(&log), after);
        assert_eq!(log.next_offset(), end.plus(1));
        if !failed {
            break;
        }
    }
}

#[test]
fn a_swap_file_left_by_a_crash_after_the_commit_mark_is_completed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let io = CrashIo::default();
    let (mut log, before) = seeded(io, dir.path());
    let end = log.next_offset();
    let job = log.clean_job(NOW_MS, &budget()).unwrap();
    let done = block_on(job.run(|_| async {}));
    assert!(done.is_ok());
    drop(done);
    drop(log);
    // As if killed right after step (1): every cleaned file renamed.
    for f in files_with_extension(dir.path(), "cleaned") {
        let name = f
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace(".cleaned", ".swap");
        std::fs::rename(&f, dir.path().join(name)).unwrap();
    }
    let after = reopen_and_check(dir.path(), &before, end);
    assert!(after.len() < before.len(), "the new segments are in");
    let (log, _) = open_std(dir.path(), compact_config());
    assert_eq!(read_all(&log), after);
}

/// Builds a log on `io` in `dir` whose first pass empties most of its
/// segments (steady overwrite of a few keys); returns its records.
fn seeded_overwrite(io: CrashIo, dir: &Path) -> (PartitionLog<CrashIo>, Vec<Rec>) {
    let (mut log, _) = open(io, dir, compact_config(), BatchCache::shared(1 << 20));
    overwrite(&mut log, 0, 40);
    let before = read_all(&log);
    (log, before)
}

/// Reopens `dir` as after a crash, checks every kept record, and that no
/// file of a segment the log does not hold is left.
fn reopen_and_check_files(dir: &Path, before: &[Rec], end: Offset) -> Vec<Rec> {
    let after = reopen_and_check(dir, before, end);
    let (log, _) = open_std(dir, compact_config());
    assert_eq!(
        files_with_extension(dir, "log").len(),
        log.segment_count(),
        "every segment file is one the log holds"
    );
    assert_eq!(read_all(&log), after);
    after
}

#[test]
fn sigkill_at_each_step_of_a_swap_that_removes_emptied_segments_keeps_every_kept_record() {
    let mut saw_new = false;
    let mut saw_old = false;
    let mut completed = false;
    for fail_at in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let io = CrashIo::default();
        let (mut log, before) = seeded_overwrite(io.clone(), dir.path());
        let end = log.next_offset();
        let segments_before = log.segment_count();
        let job = log.clean_job(NOW_MS, &budget()).unwrap();
        let done = block_on(job.run(|_| async {}));
        log.finish_clean(done).unwrap();
        io.fail_at.set(Some(io.ops.get() + fail_at));
        let swapped = block_on(log.flush_all(NOW_MS)).is_ok();
        if swapped {
            assert!(
                log.segment_count() <= OVERWRITE_SEGMENTS_MAX,
                "{} segments",
                log.segment_count()
            );
        }
        // The process dies here: whatever the swap did is on disk.
        drop(log);
        let after = reopen_and_check_files(dir.path(), &before, end);
        let (log, _) = open_std(dir.path(), compact_config());
        if after.len() < before.len() {
            saw_new = true;
        } else {
            saw_old = true;
            assert_eq!(log.segment_count(), segments_before, "fail_at {fail_at}");
        }
        if swapped {
            assert!(after.len() < before.len());
            assert!(log.segment_count() <= OVERWRITE_SEGMENTS_MAX);
            completed = true;
            break;
        }
    }
    assert!(saw_new && saw_old && completed);
}

#[test]
fn a_failed_swap_that_removes_emptied_segments_is_retried_and_then_completes() {
    for fail_at in 0..200 {
        let dir = tempfile::tempdir().unwrap();
        let io = CrashIo::default();
        let (mut log, before) = seeded_overwrite(io.clone(), dir.path());
        let end = log.next_offset();
        let job = log.clean_job(NOW_MS, &budget()).unwrap();
        let done = block_on(job.run(|_| async {}));
        log.finish_clean(done).unwrap();
        io.fail_at.set(Some(io.ops.get() + fail_at));
        let failed = block_on(log.flush_all(NOW_MS)).is_err();
        io.fail_at.set(None);
        // Reads between the failure and the retry see the old segments.
        check_against(&before, &read_all(&log));
        let late = put(&mut log, &[("late", Some("1"))], Compression::None);
        block_on(log.flush_all(NOW_MS)).unwrap();
        let after = read_all(&log);
        let mut before = before.clone();
        before.push((late, Some(b"late".to_vec()), Some(b"1".to_vec())));
        check_against(&before, &after);
        assert!(
            log.segment_count() <= OVERWRITE_SEGMENTS_MAX + 1,
            "fail_at {fail_at}: the swap completed, {} segments",
            log.segment_count()
        );
        drop(log);
        assert_eq!(
            reopen_and_check_files(dir.path(), &before, end.plus(1)),
            after
        );
        if !failed {
            break;
        }
    }
}

#[test]
fn crash_between_the_swap_checkpoint_and_removing_emptied_segments_keeps_every_kept_record() {
    // The swap's checkpoint no longer lists the emptied segments; a crash
    // before their files go (step 7) leaves those files behind, holding
    // only records the pass superseded. Recovery deletes them, with or
    // without the checkpoint's help.
    for lose_checkpoint in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let io = CrashIo::default();
        let (mut log, before) = seeded_overwrite(io, dir.path());
        let end = log.next_offset();
        let old_files: Vec<(std::path::PathBuf, Vec<u8>)> = files_with_extension(dir.path(), "log")
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        assert!(clean(&mut log, NOW_MS, &budget()));
        let after = read_all(&log);
        let kept = log.segment_count();
        drop(log);
        let mut restored = 0;
        for (path, bytes) in &old_files {
            if !path.exists() {
                std::fs::write(path, bytes).unwrap();
                restored += 1;
            }
        }
        assert!(restored > 0, "the pass removed segments");
        if lose_checkpoint {
            std::fs::remove_file(dir.path().join("partition.checkpoint")).unwrap();
            // Without a checkpoint every file is walked: the old ones come
            // back with their superseded records, every kept record too.
            let got = reopen_and_check(dir.path(), &before, end);
            assert!(got.len() >= after.len());
        } else {
            let (log, report) = open_std(dir.path(), compact_config());
            assert_eq!(report.removed_segments, restored, "{report:?}");
            assert_eq!(log.segment_count(), kept);
            assert_eq!(read_all(&log), after);
            drop(log);
            assert_eq!(reopen_and_check_files(dir.path(), &before, end), after);
        }
    }
}

#[test]
fn a_swap_completed_on_open_survives_a_second_crash_before_any_checkpoint() {
    // Killed right after step (1) of a swap whose first segment's new file
    // is empty: the open that completes the swap must persist the new
    // sizes itself, or the open after a second crash trusts the old
    // checkpoint's size and reads past the end of the empty file (found
    // by the failure injection of the removing swap above).
    let dir = tempfile::tempdir().unwrap();
    let io = CrashIo::default();
    let (mut log, before) = seeded_overwrite(io, dir.path());
    let end = log.next_offset();
    let job = log.clean_job(NOW_MS, &budget()).unwrap();
    let done = block_on(job.run(|_| async {}));
    assert!(done.is_ok());
    drop(done);
    drop(log);
    let first = dir.path().join("00000000000000000000.log.cleaned");
    assert_eq!(
        std::fs::metadata(&first).unwrap().len(),
        0,
        "segment 0 emptied"
    );
    std::fs::rename(&first, first.with_extension("swap")).unwrap();
    let (log, _) = open_std(dir.path(), compact_config());
    // Killed again before the log wrote anything.
    drop(log);
    let after = reopen_and_check_files(dir.path(), &before, end);
    assert!(after.len() < before.len());
}

// ---- Against a model ----

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<(u8, Option<u8>)>, u8),
    Clean(bool),
    /// Steady overwrite of a few keys over several rolls, then a pass: most
    /// sealed segments end up empty and are removed.
    OverwriteAndClean(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((0u8..12, prop::option::weighted(0.85, any::<u8>())), 1..5), 0u8..5)
            .prop_map(|(r, c)| Op::Put(r, c)),
        2 => any::<bool>().prop_map(Op::Clean),
        1 => (4u8..24).prop_map(Op::OverwriteAndClean),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After any sequence of appends, passes (with a roomy or a tight key
    /// map, some after rolls that empty segments the swap then removes)
    /// and restarts: no file of a removed segment is left, every record read is the original at its
    /// offset, offsets strictly increase, the latest record of every key
    /// is there, and below the last cleaned offset no key has two records.
    #[test]
    fn cleaning_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { delete_retention_ms: i64::MAX / 4, ..compact_config() };
        let (mut log, _) = open_std(dir.path(), config.clone());
        let mut all: Vec<Rec> = Vec::new();
        for op in ops {
            match op {
                Op::Put(recs, codec) => {
                    let codec = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd][codec as usize];
                    let keys: Vec<String> = recs.iter().map(|(k, _)| format!("key{k}")).collect();
                    let vals: Vec<Option<String>> = recs.iter().map(|(_, v)| v.map(|v| format!("val{v}"))).collect();
                    let pairs: Vec<(&str, Option<&str>)> = keys.iter().map(String::as_str).zip(vals.iter().map(|v| v.as_deref())).collect();
                    let base = put(&mut log, &pairs, codec);
                    for (i, (k, v)) in keys.iter().zip(&vals).enumerate() {
                        all.push((base + i as i64, Some(k.clone().into_bytes()), v.clone().map(String::into_bytes)));
                    }
                }
                Op::Clean(tight) => {
                    let b = if tight { CleanerBudget { offset_map_bytes_max: 3 * 80, ..budget() } } else { budget() };
                    clean(&mut log, NOW_MS, &b);
                }
                Op::OverwriteAndClean(n) => {
                    for i in 0..n {
                        let key = format!("key{}", i % 3);
                        let value = format!("over{i}");
                        let base = put(&mut log, &[(key.as_str(), Some(value.as_str()))], Compression::None);
                        all.push((base, Some(key.into_bytes()), Some(value.into_bytes())));
                    }
                    clean(&mut log, NOW_MS, &budget());
                }
                Op::Reopen => {
                    drop(log);
                    log = open_std(dir.path(), config.clone()).0;
                }
            }
            prop_assert_eq!(files_with_extension(dir.path(), "log").len(), log.segment_count(), "a removed segment's file is left");
            let got = read_all(&log);
            check_against(&all, &got);
            let cleaned_to = log.cleaner_state(NOW_MS).last_cleaned_offset.0;
            let mut seen = std::collections::HashSet::new();
            for r in got.iter().filter(|r| r.0 < cleaned_to) {
                prop_assert!(seen.insert(r.1.clone()), "two records of {:?} below the cleaned offset {}", r.1, cleaned_to);
            }
        }
    }
}

#[test]
fn a_segment_larger_than_the_cleaners_io_chunk_is_rewritten_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 5 << 19,
        ..compact_config()
    };
    let (mut log, _) = open_std(dir.path(), config.clone());
    let value = "x".repeat(16 << 10);
    for i in 0..200 {
        let key = if i % 3 == 0 {
            "dup".to_string()
        } else {
            format!("k{i}")
        };
        put(&mut log, &[(&key, Some(&value))], Compression::None);
    }
    assert!(log.segment_count() >= 2);
    let before = read_all(&log);
    assert!(clean(&mut log, NOW_MS, &budget()));
    let after = read_all(&log);
    check_against(&before, &after);
    let state = log.cleaner_state(NOW_MS);
    assert!(state.cleanable_bytes > corelog_storage::clean::CLEANER_IO_CHUNK_BYTES as u64);
    drop(log);
    let (log, _) = open_std(dir.path(), config);
    assert_eq!(read_all(&log), after);
}

#[test]
fn aborted_data_whose_marker_lies_past_the_cleanable_range_does_not_hide_a_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    let committed = put(&mut log, &[("q", Some("committed"))], Compression::None);
    let spec = BatchSpec {
        producer_id: ProducerId(5),
        producer_epoch: ProducerEpoch(0),
        base_sequence: 0,
        base_timestamp_ms: NOW_MS,
        ..BatchSpec::default()
    };
    let aborted = log
        .append(Bytes::from(keyed_batch(
            &spec,
            true,
            &[(Some(b"q"), Some(b"aborted"))],
        )))
        .unwrap()
        .base_offset
        .0;
    block_on(log.flush_all(NOW_MS)).unwrap();
    for i in 0..8 {
        put(
            &mut log,
            &[(&format!("f{i}"), Some("filler"))],
            Compression::None,
        );
    }
    let marker = log
        .append_marker(
            TxnMarker {
                producer_id: ProducerId(5),
                producer_epoch: ProducerEpoch(0),
                coordinator_epoch: 0,
                kind: MarkerKind::Abort,
            },
            NOW_MS,
        )
        .unwrap();
    block_on(log.flush_all(NOW_MS)).unwrap();
    let state = log.cleaner_state(NOW_MS);
    assert!(
        marker.base_offset >= state.first_uncleanable_offset,
        "{state:?}"
    );
    assert!(clean(&mut log, NOW_MS, &budget()));
    let after = read_all(&log);
    assert!(
        after.iter().any(|r| r.0 == committed),
        "the committed record stays"
    );
    assert!(
        !after.iter().any(|r| r.0 == aborted),
        "the aborted one goes"
    );
}

#[test]
fn the_high_watermark_bounds_the_cleanable_range_and_a_cut_under_a_pass_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), compact_config());
    seed(&mut log, Compression::None);
    log.set_high_watermark(Offset(3));
    let state = log.cleaner_state(NOW_MS);
    assert!(state.first_uncleanable_offset <= Offset(3), "{state:?}");
    log.set_high_watermark(log.next_offset());
    let before = read_all(&log);
    let job = log.clean_job(NOW_MS, &budget()).unwrap();
    let done = block_on(job.run(|_| async {}));
    // A follower's truncation below what the pass mapped, before the
    // pass is taken.
    let cut = Offset(5);
    assert_eq!(block_on(log.truncate_to(cut, NOW_MS)).unwrap(), cut);
    let stats = log.finish_clean(done).unwrap();
    assert!(stats.cleaned_to > cut);
    block_on(log.flush_all(NOW_MS)).unwrap();
    let after = read_all(&log);
    let kept: Vec<Rec> = before.iter().filter(|r| r.0 < cut.0).cloned().collect();
    assert_eq!(
        after, kept,
        "the pass was dropped, the cut log is as it was"
    );
    assert!(files_with_extension(dir.path(), "cleaned").is_empty());
    assert_eq!(log.cleaner_state(NOW_MS).last_cleaned_offset, Offset(0));
}
