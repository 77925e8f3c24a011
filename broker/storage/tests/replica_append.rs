//! A follower's appends (`append_replicated`): the leader's batches, kept
//! as the leader wrote them, make the follower's log a copy of the leader's
//! (offsets, epochs, epoch cache, idempotent producer state), and a batch
//! that cannot continue the log is refused without changing it.

mod common;

use bytes::Bytes;
use common::*;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::batch::{self, BatchHeader};
use corelog_storage::io::StorageIo;
use corelog_storage::{
    LeaderEpoch, Offset, PartitionLog, ProducerEpoch, ProducerId, StorageError, ValidBatch,
};

/// Every batch in `[from, to)` of `log`, as a follower's fetch gets them.
fn fetched<I: StorageIo>(log: &PartitionLog<I>, from: Offset, to: Offset) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut next = from;
    while next < to {
        let got = block_on(log.plan_read(next, 1 << 20, to).unwrap().execute()).unwrap();
        let bytes = Bytes::from(got.to_vec());
        let mut at = 0;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).unwrap();
            out.push(bytes.slice(at..at + h.total_bytes));
            at += h.total_bytes;
        }
        next = got.next_offset;
    }
    out
}

fn valid(log: &PartitionLog<impl StorageIo>, bytes: Bytes) -> ValidBatch {
    ValidBatch::new(bytes, &log.config().record_limits).unwrap()
}

fn replicate<I: StorageIo>(follower: &mut PartitionLog<I>, batches: &[Bytes]) {
    for b in batches {
        let v = valid(follower, b.clone());
        follower.append_replicated(v).expect("replicated append");
    }
}

/// `(base offset, epoch, bytes after the header's first 16)` of every batch:
/// equal for two logs that hold the same batches.
fn contents<I: StorageIo>(log: &PartitionLog<I>) -> Vec<(i64, i32, Vec<u8>)> {
    fetched(log, log.log_start_offset(), log.next_offset())
        .iter()
        .map(|b| {
            let h = batch::validate_prefix(b).unwrap();
            (h.base_offset.0, h.partition_leader_epoch, b[16..].to_vec())
        })
        .collect()
}

fn idempotent(seq: i32, records: usize) -> Bytes {
    Bytes::from(batch(&BatchSpec {
        records,
        producer_id: ProducerId(42),
        producer_epoch: ProducerEpoch(0),
        base_sequence: seq,
        ..Default::default()
    }))
}

#[test]
fn a_follower_holds_the_leaders_batches_with_their_offsets_and_epochs() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, _) = open_std(ld.path(), small_config());
    append_n(&mut leader, 3, 4, 100);
    leader.set_leader_epoch(LeaderEpoch(2));
    append_n(&mut leader, 3, 4, 100);
    flush(&mut leader);
    let (mut follower, _) = open_std(fd.path(), small_config());
    replicate(
        &mut follower,
        &fetched(&leader, Offset(0), leader.next_offset()),
    );
    assert_eq!(follower.next_offset(), leader.next_offset());
    assert_eq!(follower.epochs(), leader.epochs());
    assert_eq!(contents(&follower), contents(&leader), "from memory");
    flush(&mut follower);
    block_on(follower.close(NOW_MS)).unwrap();
    let (follower, _) = open_std(fd.path(), small_config());
    assert_eq!(
        contents(&follower),
        contents(&leader),
        "from disk, after a reopen"
    );
    assert_eq!(follower.epochs(), leader.epochs());
}

#[test]
fn a_replicated_batch_that_does_not_start_at_the_log_end_is_refused_and_changes_nothing() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, _) = open_std(ld.path(), small_config());
    append_n(&mut leader, 3, 2, 50);
    let batches = fetched(&leader, Offset(0), leader.next_offset());
    let (mut follower, _) = open_std(fd.path(), small_config());
    replicate(&mut follower, &batches[..1]);
    for skipped_or_repeated in [&batches[2], &batches[0]] {
        let v = valid(&follower, skipped_or_repeated.clone());
        match follower.append_replicated(v) {
            Err(StorageError::ReplicaOffsetMismatch { log_end, .. }) => {
                assert_eq!(log_end, Offset(2))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(follower.next_offset(), Offset(2));
    replicate(&mut follower, &batches[1..]);
    assert_eq!(contents(&follower), contents(&leader));
}

#[test]
fn a_replicated_batch_of_an_older_epoch_than_a_batch_below_it_is_refused() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, _) = open_std(ld.path(), small_config());
    append_n(&mut leader, 3, 2, 50); // epoch 0, batches at 0, 2, 4
    let batches = fetched(&leader, Offset(0), leader.next_offset());
    let (mut follower, _) = open_std(fd.path(), small_config());
    replicate(&mut follower, &batches[..1]);
    // The follower then led epoch 3 and wrote a batch of it at 2.
    assert!(follower.set_leader_epoch(LeaderEpoch(3)));
    append_n(&mut follower, 1, 2, 50);
    let v = valid(&follower, batches[2].clone());
    assert!(matches!(
        follower.append_replicated(v),
        Err(StorageError::ReplicaEpochBehind {
            epoch: 0,
            latest: 3
        })
    ));
    assert_eq!(follower.next_offset(), Offset(4));
}

#[test]
fn an_epoch_recorded_where_no_batch_followed_gives_way_to_the_leaders_batch() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, _) = open_std(ld.path(), small_config());
    append_n(&mut leader, 2, 2, 50); // epoch 0
    let batches = fetched(&leader, Offset(0), leader.next_offset());
    let (mut follower, _) = open_std(fd.path(), small_config());
    replicate(&mut follower, &batches[..1]);
    // The follower led epoch 3 from 2 and wrote nothing in it; now it
    // follows a leader whose log holds epoch 0 batches from 2. Refusing
    // them would keep it from ever catching up.
    assert!(follower.set_leader_epoch(LeaderEpoch(3)));
    replicate(&mut follower, &batches[1..]);
    assert_eq!(follower.next_offset(), Offset(4));
    assert_eq!(follower.epochs().entries(), &[(LeaderEpoch(0), Offset(0))]);
    assert_eq!(contents(&follower), contents(&leader));
}

#[test]
fn a_follower_that_becomes_leader_dedupes_the_old_leaders_producer_retries() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, _) = open_std(ld.path(), small_config());
    for (seq, records) in [(0, 3), (3, 2), (5, 4)] {
        leader.append(idempotent(seq, records)).unwrap();
    }
    flush(&mut leader);
    let (mut follower, _) = open_std(fd.path(), small_config());
    replicate(
        &mut follower,
        &fetched(&leader, Offset(0), leader.next_offset()),
    );
    flush(&mut follower);
    // The follower takes over in epoch 1; the producer retries its last
    // batch, unsure whether the old leader wrote it.
    follower.set_leader_epoch(LeaderEpoch(1));
    let retry = follower.append(idempotent(5, 4)).unwrap();
    assert!(retry.duplicate, "the retry is recognised");
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (Offset(5), Offset(8))
    );
    assert_eq!(follower.next_offset(), Offset(9), "nothing appended twice");
    // The next batch in sequence is taken, in the new epoch.
    let next = follower.append(idempotent(9, 1)).unwrap();
    assert!(!next.duplicate);
    assert_eq!(next.base_offset, Offset(9));
    assert_eq!(
        follower.end_offset_for_epoch(LeaderEpoch(0)),
        (LeaderEpoch(0), Offset(9))
    );
}

#[test]
fn a_truncated_follower_takes_the_new_leaders_batches_in_place_of_its_own() {
    // Old leader: epoch 0 up to 4, then epoch 1 batches (never committed).
    let (od, nd, fd) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (mut old, _) = open_std(od.path(), small_config());
    append_n(&mut old, 2, 2, 50);
    old.set_leader_epoch(LeaderEpoch(1));
    append_n(&mut old, 2, 2, 50);
    flush(&mut old);
    let (mut follower, _) = open_std(fd.path(), small_config());
    replicate(&mut follower, &fetched(&old, Offset(0), old.next_offset()));
    flush(&mut follower);
    // New leader: the epoch-0 prefix, then its own epoch 2.
    let (mut new, _) = open_std(nd.path(), small_config());
    replicate(&mut new, &fetched(&old, Offset(0), Offset(4)));
    new.set_leader_epoch(LeaderEpoch(2));
    append_n(&mut new, 3, 1, 50);
    flush(&mut new);
    // The follower asks where its latest epoch (1) ends on the new leader:
    // the new leader never had it, and answers epoch 0 ending at 4.
    let (epoch, end) = new.end_offset_for_epoch(LeaderEpoch(1));
    assert_eq!((epoch, end), (LeaderEpoch(0), Offset(4)));
    assert_eq!(block_on(follower.truncate_to(end, NOW_MS)).unwrap(), end);
    replicate(&mut follower, &fetched(&new, end, new.next_offset()));
    assert_eq!(contents(&follower), contents(&new));
    assert_eq!(follower.epochs(), new.epochs());
}

#[test]
fn a_follower_behind_its_leaders_log_start_copies_from_there_into_a_log_created_empty_at_it() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, _) = open_std(ld.path(), small_config());
    append_n(&mut leader, 6, 2, 50); // batches at 0, 2, ..., 10
    flush(&mut leader);
    leader.advance_log_start(Offset(6)).unwrap();
    // The follower's log: a new directory, empty at the leader's log start.
    let dir = fd.path().join("t-0");
    block_on(PartitionLog::create_empty_at(
        &corelog_storage::io::StdIo,
        &dir,
        Offset(6),
    ))
    .unwrap();
    let (mut follower, _) = open_std(&dir, small_config());
    assert_eq!(
        (follower.log_start_offset(), follower.next_offset()),
        (Offset(6), Offset(6))
    );
    replicate(
        &mut follower,
        &fetched(&leader, Offset(6), leader.next_offset()),
    );
    flush(&mut follower);
    assert_eq!(contents(&follower), contents(&leader));
    // Reopened, it is the same log, starting at 6.
    block_on(follower.close(0)).unwrap();
    let (follower, _) = open_std(&dir, small_config());
    assert_eq!(
        (follower.log_start_offset(), follower.next_offset()),
        (Offset(6), Offset(12))
    );
    assert_eq!(contents(&follower), contents(&leader));
    // Only into an empty directory.
    assert!(block_on(PartitionLog::create_empty_at(
        &corelog_storage::io::StdIo,
        &dir,
        Offset(6)
    ))
    .is_err());
}
