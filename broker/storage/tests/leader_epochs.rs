//! Leader epochs in the log: every appended batch carries the epoch of the
//! leader that appended it, and the log's epoch cache (the answer to
//! OffsetForLeaderEpoch) follows appends, truncation, the log start and
//! crashes.

mod common;

use common::*;
use corelog_storage::batch;
use corelog_storage::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use corelog_storage::io::StorageIo;
use corelog_storage::{LeaderEpoch, Offset, PartitionLog};

fn e(n: i32) -> LeaderEpoch {
    LeaderEpoch(n)
}

/// The `(base offset, partitionLeaderEpoch)` of every batch in `[from, to)`,
/// each checked against its CRC.
fn batch_epochs<I: StorageIo>(log: &PartitionLog<I>, from: Offset, to: Offset) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < to {
        let got = block_on(log.plan_read(next, 1 << 20, to).unwrap().execute()).unwrap();
        let bytes = got.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h =
                batch::validate_prefix(&bytes[at..]).expect("a stamped batch keeps a valid CRC");
            out.push((h.base_offset.0, h.partition_leader_epoch));
            at += h.total_bytes;
        }
        next = got.next_offset;
    }
    out
}

fn entries(log: &PartitionLog<impl StorageIo>) -> Vec<(i32, i64)> {
    log.epochs()
        .entries()
        .iter()
        .map(|&(e, o)| (e.0, o.0))
        .collect()
}

#[test]
fn appended_batches_carry_the_leader_epoch_from_memory_from_the_cache_and_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    // A producer writes -1 into the field; the log stamps its own epoch.
    append_n(&mut log, 2, 3, 100);
    assert!(log.set_leader_epoch(e(4)));
    append_n(&mut log, 2, 3, 100);
    let end = log.next_offset();
    let expected = vec![(0, 0), (3, 0), (6, 4), (9, 4)];
    assert_eq!(
        batch_epochs(&log, Offset(0), end),
        expected,
        "unflushed, served from memory"
    );
    flush(&mut log);
    assert_eq!(
        batch_epochs(&log, Offset(0), end),
        expected,
        "flushed, from the batch cache"
    );
    block_on(log.close(NOW_MS)).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(batch_epochs(&log, Offset(0), end), expected, "from disk");
    assert_eq!(entries(&log), vec![(0, 0), (4, 6)]);
    assert_eq!(
        log.leader_epoch(),
        e(4),
        "a reopened log goes on in its latest epoch"
    );
}

#[test]
fn offset_for_leader_epoch_ends_each_epoch_where_the_next_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 2, 5, 50); // epoch 0: 0..10
    log.set_leader_epoch(e(2));
    append_n(&mut log, 1, 5, 50); // epoch 2: 10..15
    log.set_leader_epoch(e(5)); // nothing appended yet in epoch 5
    let answer = |n| {
        let (ep, off) = log.end_offset_for_epoch(e(n));
        (ep.0, off.0)
    };
    assert_eq!(answer(0), (0, 10));
    assert_eq!(answer(1), (0, 10));
    assert_eq!(answer(2), (2, 15));
    assert_eq!(answer(4), (2, 15));
    assert_eq!(
        answer(5),
        (5, 15),
        "the leader's own epoch ends at the log end"
    );
    assert_eq!(answer(6), (-1, -1), "an epoch the leader has not reached");
}

#[test]
fn an_older_leader_epoch_is_refused_and_batches_keep_the_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    assert!(log.set_leader_epoch(e(3)));
    assert!(!log.set_leader_epoch(e(2)));
    assert!(!log.set_leader_epoch(e(-1)));
    append_n(&mut log, 1, 1, 10);
    assert_eq!(log.leader_epoch(), e(3));
    assert_eq!(
        batch_epochs(&log, Offset(0), log.next_offset()),
        vec![(0, 3)]
    );
}

#[test]
fn epochs_appended_after_the_last_checkpoint_are_rebuilt_from_the_batches_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open_std(dir.path(), small_config());
        append_n(&mut log, 3, 2, 50);
        log.set_leader_epoch(e(1));
        append_n(&mut log, 3, 2, 50);
        block_on(log.close(NOW_MS)).unwrap();
    }
    {
        let (mut log, _) = open_std(dir.path(), small_config());
        log.set_leader_epoch(e(7));
        append_n(&mut log, 2, 2, 50);
        flush(&mut log);
        // Killed: no checkpoint after the epoch-7 batches.
    }
    let cp = Checkpoint::decode(&std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap()).unwrap();
    let checkpointed: Vec<i32> = cp.leader_epochs.unwrap().iter().map(|m| m.epoch).collect();
    assert!(
        !checkpointed.contains(&7),
        "the kill came before epoch 7 was checkpointed"
    );
    let (log, report) = open_std(dir.path(), small_config());
    assert!(report.scanned_bytes > 0);
    assert_eq!(entries(&log), vec![(0, 0), (1, 6), (7, 12)]);
}

#[test]
fn an_epoch_whose_batches_were_lost_in_a_kill_is_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open_std(dir.path(), small_config());
        append_n(&mut log, 2, 2, 50);
        block_on(log.close(NOW_MS)).unwrap();
    }
    {
        let (mut log, _) = open_std(dir.path(), small_config());
        log.set_leader_epoch(e(9));
        log.request_checkpoint();
        // The new epoch is checkpointed (at the log end, 4) before any
        // batch of it is written...
        while let Some(job) = log.next_job(NOW_MS) {
            let done = block_on(job.run(NOW_MS));
            log.finish_job(done).unwrap();
        }
        let cp =
            Checkpoint::decode(&std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap()).unwrap();
        assert_eq!(cp.leader_epochs.unwrap().last().map(|m| m.epoch), Some(9));
        // ...and the process is killed before its batches reach the disk.
        append_n(&mut log, 2, 2, 50);
    }
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.next_offset(), Offset(4));
    assert_eq!(
        entries(&log),
        vec![(0, 0)],
        "epoch 9 has no batch in the recovered log"
    );
}

#[test]
fn truncation_forgets_the_epochs_of_the_cut_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 2, 2, 50); // epoch 0: 0..4
    log.set_leader_epoch(e(3));
    append_n(&mut log, 2, 2, 50); // epoch 3: 4..8
    log.set_leader_epoch(e(5));
    append_n(&mut log, 2, 2, 50); // epoch 5: 8..12
    flush(&mut log);
    assert_eq!(
        block_on(log.truncate_to(Offset(6), NOW_MS)).unwrap(),
        Offset(6)
    );
    assert_eq!(entries(&log), vec![(0, 0), (3, 4)]);
    block_on(log.close(NOW_MS)).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(
        entries(&log),
        vec![(0, 0), (3, 4)],
        "the cut survives a reopen"
    );
}

#[test]
fn a_moved_log_start_moves_the_start_of_its_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 2, 2, 50); // epoch 0: 0..4
    log.set_leader_epoch(e(2));
    append_n(&mut log, 2, 2, 50); // epoch 2: 4..8
    flush(&mut log);
    log.advance_log_start(Offset(6)).unwrap();
    assert_eq!(entries(&log), vec![(2, 6)]);
    let (ep, off) = log.end_offset_for_epoch(e(0));
    assert_eq!(
        (ep.0, off.0),
        (0, 6),
        "an epoch older than the log ends where the log starts"
    );
    block_on(log.close(NOW_MS)).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(entries(&log), vec![(2, 6)]);
}

#[test]
fn a_log_checkpointed_before_epochs_were_kept_is_read_as_epoch_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    log.set_leader_epoch(e(6));
    append_n(&mut log, 3, 2, 50);
    block_on(log.close(NOW_MS)).unwrap();
    // Rewrite the checkpoint as format 1, as an older broker left it; its
    // batches then carry whatever their producers wrote, so the 6 stamped
    // here must not be trusted.
    let path = dir.path().join(CHECKPOINT_FILE);
    let cp = Checkpoint::decode(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::write(&path, cp.encode_format_1_for_tests()).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(entries(&log), vec![(0, 0)]);
}

#[test]
fn the_checkpointed_high_watermark_is_bounded_by_the_log_it_is_reopened_with() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open_std(dir.path(), small_config());
        append_n(&mut log, 2, 2, 50);
        assert_eq!(log.high_watermark(), None, "nothing reported yet");
        block_on(log.close(NOW_MS)).unwrap();
    }
    let (mut log, _) = open_std(dir.path(), small_config());
    assert_eq!(
        log.high_watermark(),
        None,
        "no replication layer reported one"
    );
    // A follower learned a high watermark past what it holds.
    log.set_high_watermark(Offset(9));
    block_on(log.close(NOW_MS)).unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    assert_eq!(
        log.high_watermark(),
        Some(Offset(4)),
        "bounded by the log end"
    );
    log.set_high_watermark(Offset(2));
    block_on(log.close(NOW_MS)).unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.high_watermark(), Some(Offset(2)));
    // A follower's truncation below it takes it down too.
    assert_eq!(
        block_on(log.truncate_to(Offset(0), NOW_MS)).unwrap(),
        Offset(0)
    );
    block_on(log.close(NOW_MS)).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.high_watermark(), Some(Offset(0)));
}
