//! Idempotent producers: retries are not appended twice, sequence gaps and
//! stale epochs are refused, and the state survives restarts and crashes.

mod common;

use bytes::Bytes;
use common::*;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::producer::SequenceError;
use corelog_storage::{LogConfig, Offset, ProducerEpoch, ProducerId, StorageError};

fn pbatch(pid: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    Bytes::from(batch(&BatchSpec {
        records,
        value_bytes: 50,
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(epoch),
        base_sequence: seq,
        ..Default::default()
    }))
}

#[test]
fn a_retried_batch_is_answered_with_its_original_offsets_and_not_appended_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    let first = log.append(pbatch(7, 0, 0, 3)).unwrap();
    log.append(pbatch(7, 0, 3, 2)).unwrap();
    let retry = log.append(pbatch(7, 0, 0, 3)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(log.next_offset(), Offset(5), "the retry added nothing");
}

#[test]
fn sequence_gaps_and_stale_epochs_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open_std(dir.path(), small_config());
    log.append(pbatch(7, 1, 0, 3)).unwrap();
    let gap = log.append(pbatch(7, 1, 5, 1)).unwrap_err();
    assert!(
        matches!(
            gap,
            StorageError::Sequence(SequenceError::OutOfOrder { .. })
        ),
        "{gap}"
    );
    let stale = log.append(pbatch(7, 0, 3, 1)).unwrap_err();
    assert!(
        matches!(
            stale,
            StorageError::Sequence(SequenceError::StaleEpoch { .. })
        ),
        "{stale}"
    );
    assert_eq!(log.next_offset(), Offset(3));
}

#[test]
fn producer_state_survives_a_clean_restart_and_a_crash() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            checkpoint_interval_bytes: 1,
            ..small_config()
        };
        let (mut log, _) = open_std(dir.path(), config.clone());
        log.append(pbatch(7, 0, 0, 3)).unwrap();
        flush(&mut log);
        // This one reaches the disk after the last checkpoint: recovery
        // must replay it into the producer state.
        log.append(pbatch(7, 0, 3, 2)).unwrap();
        let job = log.next_job(NOW_MS).unwrap();
        log.finish_job(block_on(job.run(NOW_MS))).unwrap();
        if clean {
            block_on(log.close(NOW_MS)).unwrap();
        } else {
            drop(log);
        }
        let (mut log, _) = open_std(dir.path(), config);
        assert_eq!(log.next_offset(), Offset(5));
        for (seq, records, base) in [(0, 3, 0), (3, 2, 3)] {
            let retry = log.append(pbatch(7, 0, seq, records)).unwrap();
            assert!(
                retry.duplicate,
                "clean={clean}: retry of seq {seq} appended again"
            );
            assert_eq!(retry.base_offset, Offset(base));
        }
        assert!(
            log.append(pbatch(7, 0, 9, 1)).is_err(),
            "clean={clean}: gap accepted after restart"
        );
        assert_eq!(
            log.append(pbatch(7, 0, 5, 1)).unwrap().base_offset,
            Offset(5)
        );
    }
}

#[test]
fn a_batch_discarded_by_a_failed_write_is_appended_again_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::default();
    let (mut log, _) = open(
        io.clone(),
        dir.path(),
        small_config(),
        corelog_storage::BatchCache::shared(1 << 20),
    );
    log.append(pbatch(7, 0, 0, 3)).unwrap();
    flush(&mut log);
    io.fail_with.set(Some(libc::EIO));
    log.append(pbatch(7, 0, 3, 2)).unwrap();
    assert!(block_on(log.flush_all(NOW_MS)).is_err());
    io.fail_with.set(None);
    flush(&mut log);
    let retry = log.append(pbatch(7, 0, 3, 2)).unwrap();
    assert!(
        !retry.duplicate,
        "the discarded batch must not be treated as already written"
    );
    flush(&mut log);
    assert_eq!(log.flushed_offset(), Offset(5));
}
