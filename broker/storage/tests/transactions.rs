//! Transactions in the log: markers, the last stable offset, the
//! aborted-transaction index and its `.txnindex` files, across restarts,
//! crashes, retention and truncation. Each test names the behaviour or
//! the fault.

mod common;

use bytes::Bytes;
use common::*;
use corelog_storage::batch::build::{records_section, wrap, BatchSpec};
use corelog_storage::batch::BatchError;
use corelog_storage::io::StorageIo;
use corelog_storage::txn::TXN_INDEX_ENTRY_BYTES;
use corelog_storage::{
    AbortedTxn, LogConfig, MarkerKind, Offset, PartitionLog, ProducerEpoch, ProducerId,
    StorageError, TxnMarker, ValidBatch,
};

/// A transactional producer: its batches carry the transactional bit and
/// follow each other's sequences.
struct Producer {
    id: ProducerId,
    epoch: ProducerEpoch,
    seq: i32,
    coordinator_epoch: i32,
}

impl Producer {
    fn new(id: i64) -> Producer {
        Producer {
            id: ProducerId(id),
            epoch: ProducerEpoch(0),
            seq: 0,
            coordinator_epoch: 0,
        }
    }

    fn batch(&mut self, records: usize, value_bytes: usize) -> Bytes {
        let spec = BatchSpec {
            records,
            value_bytes,
            producer_id: self.id,
            producer_epoch: self.epoch,
            base_sequence: self.seq,
            ..Default::default()
        };
        self.seq += records as i32;
        Bytes::from(wrap(&spec, 0x10, &records_section(&spec)))
    }

    /// Appends a transactional batch; returns its base offset.
    fn send<I: StorageIo>(&mut self, log: &mut PartitionLog<I>, records: usize) -> Offset {
        let b = self.batch(records, 100);
        log.append(b).expect("transactional append").base_offset
    }

    fn marker(&self, kind: MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: self.id,
            producer_epoch: self.epoch,
            coordinator_epoch: self.coordinator_epoch,
            kind,
        }
    }

    /// Appends its marker; returns the marker's offset.
    fn end<I: StorageIo>(&self, log: &mut PartitionLog<I>, kind: MarkerKind) -> Offset {
        let info = log
            .append_marker(self.marker(kind), NOW_MS)
            .expect("marker");
        assert_eq!(info.base_offset, info.last_offset, "a marker is one record");
        info.base_offset
    }
}

fn aborted(pid: &Producer, first: Offset, last: Offset) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid.id,
        first_offset: first,
        last_offset: last,
    }
}

fn everything<I: StorageIo>(log: &PartitionLog<I>) -> Vec<AbortedTxn> {
    log.aborted_transactions(Offset(0), log.next_offset())
}

#[test]
fn commit_marker_ends_the_transaction_and_releases_the_lso() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 2, 1, 10);
    let mut p = Producer::new(7);
    let first = p.send(&mut log, 3);
    p.send(&mut log, 2);
    append_n(&mut log, 1, 1, 10);
    flush(&mut log);
    let hw = log.flushed_offset();
    assert_eq!(log.first_unstable_offset(), Some(first));
    assert_eq!(log.ongoing_transaction(p.id), Some(first));
    assert_eq!(
        log.last_stable_offset(hw),
        first,
        "the LSO waits at the open transaction"
    );
    assert_eq!(
        log.last_stable_offset(Offset(1)),
        Offset(1),
        "and never passes the high watermark"
    );
    let at = p.end(&mut log, MarkerKind::Commit);
    flush(&mut log);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.ongoing_transaction(p.id), None);
    assert_eq!(log.last_stable_offset(log.flushed_offset()), at.plus(1));
    assert!(everything(&log).is_empty(), "a commit aborts nothing");
    let view = log.producer_states();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].producer_id, p.id);
    assert_eq!(view[0].last_sequence, 4);
    assert_eq!(view[0].coordinator_epoch, 0);
    assert_eq!(view[0].last_timestamp_ms, NOW_MS);
    assert_eq!(view[0].current_txn_start_offset, None);
}

#[test]
fn abort_marker_indexes_the_aborted_range() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut a = Producer::new(1);
    let mut b = Producer::new(2);
    let a_first = a.send(&mut log, 2); // 0..2
    let b_first = b.send(&mut log, 2); // 2..4
    a.send(&mut log, 1); // 4
    let a_end = a.end(&mut log, MarkerKind::Abort); // 5
    assert_eq!(log.first_unstable_offset(), Some(b_first));
    let b_end = b.end(&mut log, MarkerKind::Abort); // 6
    flush(&mut log);
    assert_eq!(
        everything(&log),
        vec![aborted(&a, a_first, a_end), aborted(&b, b_first, b_end)]
    );
    // Only the transactions overlapping what a fetch returns.
    assert_eq!(
        log.aborted_transactions(Offset(0), Offset(2)),
        vec![aborted(&a, a_first, a_end)]
    );
    assert_eq!(
        log.aborted_transactions(Offset(6), Offset(7)),
        vec![aborted(&b, b_first, b_end)]
    );
    assert!(log.aborted_transactions(Offset(7), Offset(20)).is_empty());
    // An abort for a producer with nothing open is still written (a
    // coordinator's retry) and aborts nothing.
    let retry = b.end(&mut log, MarkerKind::Abort);
    assert_eq!(retry, Offset(7));
    assert_eq!(everything(&log).len(), 2);
    // A bounded read says below which offset its list is complete.
    let (list, complete_below) = log.aborted_transactions_bounded(Offset(0), Offset(8), 1);
    assert_eq!(list, vec![aborted(&a, a_first, a_end)]);
    assert_eq!(complete_below, b_first);
}

#[test]
fn client_control_batch_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 1, 1, 10);
    let end = log.next_offset();
    let p = Producer::new(3);
    let control = Bytes::from(corelog_storage::txn::marker_batch(
        &p.marker(MarkerKind::Commit),
        NOW_MS,
    ));
    let err = log.append(control).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Batch(BatchError::Invalid("clients may not write control records"))
        ),
        "{err}"
    );
    // A transactional batch without a producer id is refused too.
    let spec = BatchSpec::default();
    let no_pid = Bytes::from(wrap(&spec, 0x10, &records_section(&spec)));
    assert!(matches!(
        log.append(no_pid),
        Err(StorageError::Batch(BatchError::Invalid(_)))
    ));
    assert_eq!(log.next_offset(), end);
    assert!(log.producer_states().is_empty());
    flush(&mut log);
    read_and_verify(&log, Offset(0), end);
}

#[test]
fn marker_with_an_older_coordinator_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut p = Producer::new(4);
    p.coordinator_epoch = 5;
    let first = p.send(&mut log, 1);
    p.end(&mut log, MarkerKind::Commit);
    p.send(&mut log, 1);
    let end = log.next_offset();
    let mut stale = p.marker(MarkerKind::Abort);
    stale.coordinator_epoch = 4;
    assert!(matches!(
        log.append_marker(stale, NOW_MS),
        Err(StorageError::CoordinatorFenced {
            coordinator_epoch: 4,
            last: 5,
            ..
        })
    ));
    assert_eq!(log.next_offset(), end, "nothing was appended");
    assert_eq!(log.ongoing_transaction(p.id), Some(first.plus(2)));
}

#[test]
fn marker_with_an_older_producer_epoch_is_refused_and_a_bumped_one_raises_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut p = Producer::new(5);
    p.epoch = ProducerEpoch(3);
    let first = p.send(&mut log, 2);
    let mut old = p.marker(MarkerKind::Abort);
    old.producer_epoch = ProducerEpoch(2);
    assert!(matches!(
        log.append_marker(old, NOW_MS),
        Err(StorageError::ProducerFenced { .. })
    ));
    // The coordinator aborts the transaction with a bumped epoch (a fenced
    // or timed-out producer).
    let mut bumped = p.marker(MarkerKind::Abort);
    bumped.producer_epoch = ProducerEpoch(4);
    let at = log.append_marker(bumped, NOW_MS).unwrap().base_offset;
    assert_eq!(everything(&log), vec![aborted(&p, first, at)]);
    assert_eq!(log.producer_states()[0].producer_epoch, ProducerEpoch(4));
    // The old epoch's batches are now fenced.
    let late = p.batch(1, 10);
    assert!(matches!(log.append(late), Err(StorageError::Sequence(_))));
}

#[test]
fn open_transaction_survives_restart_and_holds_the_lso() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open_std(dir.path(), small_config());
        let mut p = Producer::new(6);
        let mut q = Producer::new(8);
        append_n(&mut log, 3, 1, 10);
        let first = p.send(&mut log, 2);
        q.send(&mut log, 1);
        q.end(&mut log, MarkerKind::Commit);
        // A checkpoint here covers the open transaction; more after it.
        flush(&mut log);
        log.request_checkpoint();
        flush(&mut log);
        p.send(&mut log, 1);
        flush(&mut log);
        let end = log.flushed_offset();
        if clean {
            block_on(log.close(NOW_MS)).unwrap();
        } else {
            drop(log);
        }
        let (mut log, _) = open_std(dir.path(), small_config());
        assert_eq!(log.next_offset(), end);
        assert_eq!(log.ongoing_transaction(p.id), Some(first), "clean: {clean}");
        assert_eq!(log.ongoing_transaction(q.id), None);
        assert_eq!(log.last_stable_offset(end), first);
        assert_eq!(
            log.producer_states()
                .iter()
                .find(|v| v.producer_id == q.id)
                .unwrap()
                .coordinator_epoch,
            0
        );
        let at = p.end(&mut log, MarkerKind::Abort);
        assert_eq!(everything(&log), vec![aborted(&p, first, at)]);
    }
}

#[test]
fn abort_marker_after_the_checkpoint_is_rebuilt_into_the_txn_index_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut p = Producer::new(9);
    let mut q = Producer::new(10);
    // One abort before the checkpoint, in the active segment (its file is
    // written with the checkpoint), one after it (replayed on load).
    let p1 = p.send(&mut log, 2);
    let p1_end = p.end(&mut log, MarkerKind::Abort);
    flush(&mut log);
    log.request_checkpoint();
    flush(&mut log);
    assert_eq!(files_with_extension(dir.path(), "txnindex").len(), 1);
    let q1 = q.send(&mut log, 2);
    let q1_end = q.end(&mut log, MarkerKind::Abort);
    flush(&mut log);
    let expected = vec![aborted(&p, p1, p1_end), aborted(&q, q1, q1_end)];
    assert_eq!(everything(&log), expected);
    drop(log); // killed: the second abort is after the recovery point
    let (log, report) = open_std(dir.path(), small_config());
    assert!(report.from_checkpoint && report.scanned_bytes > 0);
    assert_eq!(everything(&log), expected);
    assert_eq!(log.first_unstable_offset(), None);
}

/// Fills the log with plain batches until it has rolled `segments` more times.
fn roll<I: StorageIo>(log: &mut PartitionLog<I>, segments: usize) {
    let target = log.segment_count() + segments;
    while log.segment_count() < target {
        append_n(log, 4, 10, 1000);
        flush(log);
    }
}

/// A log whose first segments hold aborted transactions, one of them
/// started in the first segment and aborted in the second. Returns the
/// aborted transactions.
fn log_with_sealed_aborts(dir: &std::path::Path) -> Vec<AbortedTxn> {
    let (mut log, _) = open_std(dir, small_config());
    let mut p = Producer::new(11);
    let mut q = Producer::new(12);
    let p_first = p.send(&mut log, 2);
    let p_end = p.end(&mut log, MarkerKind::Abort);
    let q_first = q.send(&mut log, 1);
    roll(&mut log, 1);
    q.send(&mut log, 1);
    let q_end = q.end(&mut log, MarkerKind::Abort);
    roll(&mut log, 1);
    assert!(log.segment_count() >= 3);
    block_on(log.close(NOW_MS)).unwrap();
    assert_eq!(files_with_extension(dir, "txnindex").len(), 2);
    vec![aborted(&p, p_first, p_end), aborted(&q, q_first, q_end)]
}

#[test]
fn missing_txnindex_of_a_sealed_segment_is_rebuilt_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let expected = log_with_sealed_aborts(dir.path());
    let files = files_with_extension(dir.path(), "txnindex");
    // Fault: the second segment's .txnindex is gone (its transaction
    // started in the first segment).
    std::fs::remove_file(&files[1]).unwrap();
    let (log, report) = open_std(dir.path(), small_config());
    assert_eq!(report.scanned_bytes, 0, "the log itself needs no recovery");
    assert_eq!(everything(&log), expected);
    assert_eq!(
        std::fs::read(&files[1]).unwrap().len(),
        TXN_INDEX_ENTRY_BYTES,
        "the file is written again"
    );
    drop(log);
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(everything(&log), expected);
}

#[test]
fn torn_txnindex_of_a_sealed_segment_is_rebuilt_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let expected = log_with_sealed_aborts(dir.path());
    let files = files_with_extension(dir.path(), "txnindex");
    // Fault: the first segment's file lost its last bytes (a torn write).
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() - 3]).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(everything(&log), expected);
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);
}

#[test]
fn sealed_txnindex_is_kafkas_layout() {
    let dir = tempfile::tempdir().unwrap();
    let expected = log_with_sealed_aborts(dir.path());
    let files = files_with_extension(dir.path(), "txnindex");
    let bytes = std::fs::read(&files[0]).unwrap();
    assert_eq!(bytes.len(), 34);
    let be = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(&bytes[..2], &[0, 0], "version 0");
    assert_eq!(be(2), expected[0].producer_id.0);
    assert_eq!(be(10), expected[0].first_offset.0);
    assert_eq!(be(18), expected[0].last_offset.0);
    // Producer 12's transaction was open when 11's aborted.
    assert_eq!(be(26), expected[1].first_offset.0, "last stable offset");
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        "00000000000000000000.txnindex"
    );
}

#[test]
fn retention_deletes_the_txnindex_with_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let expected = log_with_sealed_aborts(dir.path());
    let (mut log, _) = open_std(dir.path(), small_config());
    let second_base = corelog_storage::types::segment_file_stem(Offset(0));
    let logs = segment_files(dir.path());
    let second: i64 = logs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // DeleteRecords into the second segment: the first goes, with its file.
    log.advance_log_start(Offset(second + 1)).unwrap();
    assert_eq!(
        log.aborted_transactions(Offset(0), log.next_offset()),
        vec![expected[1]],
        "reads start at the log start"
    );
    flush(&mut log);
    let left = files_with_extension(dir.path(), "txnindex");
    assert_eq!(left.len(), 1);
    assert!(!left[0].ends_with(format!("{second_base}.txnindex")));
    assert_eq!(everything(&log), vec![expected[1]]);
    block_on(log.close(NOW_MS)).unwrap();
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(everything(&log), vec![expected[1]]);
}

#[test]
fn truncation_into_an_open_transaction_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut p = Producer::new(13);
    let mut q = Producer::new(14);
    let p_first = p.send(&mut log, 2);
    let q_first = q.send(&mut log, 1);
    let p_end = p.end(&mut log, MarkerKind::Abort);
    let q_end = q.end(&mut log, MarkerKind::Commit);
    flush(&mut log);
    log.set_high_watermark(p_first);
    assert_eq!(everything(&log), vec![aborted(&p, p_first, p_end)]);
    // A follower cut back to before both markers.
    assert_eq!(block_on(log.truncate_to(p_end, NOW_MS)).unwrap(), p_end);
    assert_eq!(log.ongoing_transaction(p.id), Some(p_first));
    assert_eq!(log.ongoing_transaction(q.id), Some(q_first));
    assert_eq!(log.last_stable_offset(p_end), p_first);
    assert!(
        everything(&log).is_empty(),
        "the cut abort is no longer indexed"
    );
    let _ = q_end;
    // It survives a restart, and the leader's markers can follow.
    drop(log);
    let (mut log, _) = open_std(dir.path(), small_config());
    assert_eq!(log.first_unstable_offset(), Some(p_first));
    let again = p.end(&mut log, MarkerKind::Commit);
    assert_eq!(log.first_unstable_offset(), Some(q_first));
    assert_eq!(again, p_end);
    assert!(everything(&log).is_empty());
}

#[test]
fn truncation_below_the_journal_rescans_the_log_to_reopen_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut p = Producer::new(15);
    let first = p.send(&mut log, 2);
    roll(&mut log, 1);
    let cut = p.end(&mut log, MarkerKind::Abort);
    append_n(&mut log, 2, 1, 10);
    flush(&mut log);
    // No high watermark: the journal is pruned to the flushed offset.
    assert!(!everything(&log).is_empty());
    assert_eq!(block_on(log.truncate_to(cut, NOW_MS)).unwrap(), cut);
    assert_eq!(log.ongoing_transaction(p.id), Some(first));
    assert!(everything(&log).is_empty());
    let again = p.end(&mut log, MarkerKind::Abort);
    assert_eq!(everything(&log), vec![aborted(&p, first, again)]);
}

#[test]
fn truncation_of_a_sealed_segment_rewrites_its_txnindex() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let mut p = Producer::new(16);
    let mut q = Producer::new(17);
    let p_first = p.send(&mut log, 1);
    let p_end = p.end(&mut log, MarkerKind::Abort);
    let q_first = q.send(&mut log, 1);
    let q_end = q.end(&mut log, MarkerKind::Abort);
    roll(&mut log, 2);
    assert_eq!(everything(&log).len(), 2);
    block_on(log.truncate_to(q_end, NOW_MS)).unwrap();
    assert_eq!(everything(&log), vec![aborted(&p, p_first, p_end)]);
    assert_eq!(log.ongoing_transaction(q.id), Some(q_first));
    drop(log);
    let (log, _) = open_std(dir.path(), small_config());
    assert_eq!(everything(&log), vec![aborted(&p, p_first, p_end)]);
    assert_eq!(log.ongoing_transaction(q.id), Some(q_first));
}

#[test]
fn follower_append_of_markers_builds_the_leaders_state() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let (mut leader, _) = open_std(leader_dir.path(), small_config());
    let (mut follower, _) = open_std(follower_dir.path(), small_config());
    let mut p = Producer::new(18);
    let mut q = Producer::new(19);
    p.send(&mut leader, 2);
    q.send(&mut leader, 1);
    p.end(&mut leader, MarkerKind::Abort);
    flush(&mut leader);
    let end = leader.flushed_offset();
    let plan = leader.plan_read(Offset(0), 1 << 20, end).unwrap();
    let bytes = block_on(plan.execute()).unwrap().to_vec();
    let mut at = 0;
    while at < bytes.len() {
        let h = corelog_storage::batch::BatchHeader::parse(&bytes[at..]).unwrap();
        let b = Bytes::copy_from_slice(&bytes[at..at + h.total_bytes]);
        let valid = ValidBatch::new(b, &Default::default()).expect("a leader's marker validates");
        follower.append_replicated(valid).unwrap();
        at += h.total_bytes;
    }
    assert_eq!(everything(&follower), everything(&leader));
    assert_eq!(follower.producer_states(), leader.producer_states());
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset()
    );
}

#[test]
fn discarded_marker_write_reopens_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let (mut log, _) = open(
        io.clone(),
        dir.path(),
        small_config(),
        corelog_storage::BatchCache::shared(1 << 20),
    );
    let mut p = Producer::new(20);
    let first = p.send(&mut log, 2);
    flush(&mut log);
    io.fail_with.set(Some(libc::EIO));
    p.end(&mut log, MarkerKind::Abort);
    assert_eq!(log.ongoing_transaction(p.id), None);
    assert!(block_on(log.flush_all(NOW_MS)).is_err());
    assert_eq!(
        log.ongoing_transaction(p.id),
        Some(first),
        "the marker is gone"
    );
    assert!(everything(&log).is_empty());
    io.fail_with.set(None);
    flush(&mut log);
    let at = p.end(&mut log, MarkerKind::Abort);
    flush(&mut log);
    assert_eq!(everything(&log), vec![aborted(&p, first, at)]);
}

#[test]
fn format_3_checkpoint_opens_with_no_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    append_n(&mut log, 3, 1, 10);
    block_on(log.close(NOW_MS)).unwrap();
    let path = dir
        .path()
        .join(corelog_storage::checkpoint::CHECKPOINT_FILE);
    let cp =
        corelog_storage::checkpoint::Checkpoint::decode(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::write(&path, cp.encode_format_3_for_tests()).unwrap();
    let (log, report) = open_std(dir.path(), LogConfig { ..small_config() });
    assert!(report.from_checkpoint);
    assert_eq!(log.first_unstable_offset(), None);
    assert!(everything(&log).is_empty());
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A transactional batch from producer `p` of `records` records
        /// of `value_bytes` each (large ones roll segments).
        Send {
            p: usize,
            records: usize,
            big: bool,
        },
        Marker {
            p: usize,
            abort: bool,
        },
        Plain,
        Checkpoint,
        /// Flush, then reopen after a clean close or a kill.
        Restart {
            clean: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, 1..4usize, any::<bool>()).prop_map(|(p, records, big)| Op::Send { p, records, big }),
            3 => (0..3usize, any::<bool>()).prop_map(|(p, abort)| Op::Marker { p, abort }),
            1 => Just(Op::Plain),
            1 => Just(Op::Checkpoint),
            1 => any::<bool>().prop_map(|clean| Op::Restart { clean }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random interleavings of transactional appends, markers,
        /// checkpoints and restarts: the LSO inputs and the aborted ranges
        /// always match a model that just remembers each producer's open
        /// transaction.
        #[test]
        fn transactions_match_a_simple_model(ops in prop::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let config = small_config();
            let (mut log, _) = open_std(dir.path(), config.clone());
            let mut producers: Vec<Producer> = (0..3).map(|i| Producer::new(100 + i)).collect();
            let mut open_at: Vec<Option<Offset>> = vec![None; 3];
            let mut aborts: Vec<AbortedTxn> = Vec::new();
            for op in ops {
                match op {
                    Op::Send { p, records, big } => {
                        let b = producers[p].batch(records, if big { 6000 } else { 50 });
                        let at = log.append(b).unwrap().base_offset;
                        open_at[p].get_or_insert(at);
                    }
                    Op::Marker { p, abort } => {
                        let kind = if abort { MarkerKind::Abort } else { MarkerKind::Commit };
                        let at = producers[p].end(&mut log, kind);
                        if let (true, Some(first)) = (abort, open_at[p].take()) {
                            aborts.push(aborted(&producers[p], first, at));
                        }
                        open_at[p] = None;
                    }
                    Op::Plain => {
                        append_n(&mut log, 1, 1, 10);
                    }
                    Op::Checkpoint => {
                        flush(&mut log);
                        log.request_checkpoint();
                        flush(&mut log);
                    }
                    Op::Restart { clean } => {
                        flush(&mut log);
                        if clean {
                            block_on(log.close(NOW_MS)).unwrap();
                        } else {
                            drop(log);
                        }
                        log = open_std(dir.path(), config.clone()).0;
                    }
                }
                let first_unstable = open_at.iter().flatten().min().copied();
                prop_assert_eq!(log.first_unstable_offset(), first_unstable);
                for (i, p) in producers.iter().enumerate() {
                    prop_assert_eq!(log.ongoing_transaction(p.id), open_at[i]);
                }
                aborts.sort_by_key(|a| a.first_offset);
                prop_assert_eq!(everything(&log), aborts.clone());
                let end = log.next_offset();
                // Windows a fetch could read: every range between two
                // offsets an abort starts or ends at.
                let mut points: Vec<Offset> = aborts
                    .iter()
                    .flat_map(|a| [a.first_offset, a.last_offset, a.last_offset.plus(1)])
                    .chain([Offset(0), end])
                    .collect();
                points.sort();
                points.dedup();
                for (i, &from) in points.iter().enumerate() {
                    for &upper in &points[i + 1..] {
                        let want: Vec<AbortedTxn> = aborts
                            .iter()
                            .filter(|a| a.last_offset >= from && a.first_offset < upper)
                            .copied()
                            .collect();
                        prop_assert_eq!(log.aborted_transactions(from, upper), want);
                    }
                }
                prop_assert_eq!(
                    log.last_stable_offset(end),
                    first_unstable.map_or(end, |f| f.min(end))
                );
            }
        }
    }
}
