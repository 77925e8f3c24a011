//! The partition facade's promises, on a real log in a temporary directory
//! driven by a real glommio executor: what `acks=all` waits for, that no
//! read or deletion passes the high watermark, and the isolation bounds.
//!
//! Each test appends and looks at the partition without yielding to the
//! executor in between, so the log's driver has not yet written what was
//! appended: the high watermark is then known to be behind the log end.

use std::time::Duration;

use bytes::Bytes;
use corelog_server::partition::{Acks, DeleteUpTo, Isolation, Partition};
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::{
    BatchCache, CacheId, LogConfig, Offset, RecordLimits, StorageError, ValidBatch,
};
use glommio::{LocalExecutorBuilder, Placement};

fn run<F, Fut>(f: F)
where
    F: FnOnce(Partition) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("topic-0");
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let cache = BatchCache::shared(8 << 20);
            let (p, _) = Partition::open(path, LogConfig::default(), cache, CacheId(1))
                .await
                .expect("open");
            f(p.clone()).await;
            p.close().await;
        })
        .expect("executor")
        .join()
        .expect("join");
}

fn records(n: usize) -> ValidBatch {
    let bytes = Bytes::from(batch(&BatchSpec {
        records: n,
        ..Default::default()
    }));
    ValidBatch::new(bytes, &RecordLimits::default()).expect("a built batch is valid")
}

async fn settle(p: &Partition) {
    let end = p.end_commit_point();
    glommio::timer::timeout(Duration::from_secs(10), async {
        Ok(p.committed(end).await)
    })
    .await
    .expect("the log commits what it was given within 10 s")
    .expect("nothing discarded");
}

#[test]
fn acks_all_completes_only_once_the_high_watermark_passes_the_batch() {
    run(|p| async move {
        let appended = p.append(records(3), Acks::All).expect("append");
        assert_eq!(appended.base_offset, Offset(0));
        assert_eq!(appended.last_offset, Offset(2));
        // Not yet written: the high watermark is behind the batch.
        assert_eq!(p.high_watermark(), Offset(0));
        assert_eq!(p.log_end_offset(), Offset(3));
        p.acknowledged(&appended).await.expect("acknowledged");
        assert!(p.high_watermark() > appended.last_offset);
    });
}

#[test]
fn acks_one_and_zero_complete_at_once_before_the_batch_is_committed() {
    run(|p| async move {
        for acks in [Acks::Leader, Acks::None] {
            let appended = p.append(records(1), acks).expect("append");
            let done = futures_lite::future::poll_once(p.acknowledged(&appended)).await;
            assert!(
                matches!(done, Some(Ok(()))),
                "{acks:?} completes without waiting"
            );
            assert!(p.high_watermark() <= appended.last_offset);
        }
        settle(&p).await;
    });
}

#[test]
fn a_read_never_returns_records_past_the_high_watermark() {
    run(|p| async move {
        let first = p.append(records(2), Acks::All).expect("append");
        p.acknowledged(&first).await.expect("committed");
        // Appended, not committed: invisible at both isolation levels. Every
        // plan is made before the first await, while the driver has not run.
        p.append(records(5), Acks::Leader).expect("append");
        let mut plans = Vec::new();
        for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
            let (bounds, from_start) = p.plan_read(Offset(0), 1 << 20, isolation);
            let (_, from_end) = p.plan_read(Offset(2), 1 << 20, isolation);
            assert_eq!(bounds.high_watermark, Offset(2));
            assert_eq!(bounds.visible_end(isolation), Offset(2));
            plans.push((isolation, from_start, from_end));
        }
        for (isolation, from_start, from_end) in plans {
            let read = from_start.expect("plan").execute().await.expect("read");
            assert_eq!(read.next_offset, Offset(2), "{isolation:?} stops at 2");
            let read = from_end.expect("plan").execute().await.expect("read");
            assert!(read.is_empty(), "{isolation:?} serves nothing past 2");
        }
        settle(&p).await;
        let (_, plan) = p.plan_read(Offset(2), 1 << 20, Isolation::ReadUncommitted);
        let read = plan.expect("plan").execute().await.expect("read");
        assert_eq!(read.next_offset, Offset(7));
    });
}

#[test]
fn delete_records_past_the_high_watermark_is_out_of_range() {
    run(|p| async move {
        p.append(records(4), Acks::Leader).expect("append");
        assert!(matches!(
            p.delete_records(DeleteUpTo::Offset(Offset(2))),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // "Up to the high watermark" deletes nothing that is not committed.
        assert_eq!(
            p.delete_records(DeleteUpTo::HighWatermark).expect("delete"),
            Offset(0)
        );
        settle(&p).await;
        assert_eq!(
            p.delete_records(DeleteUpTo::Offset(Offset(2)))
                .expect("delete"),
            Offset(2)
        );
        assert_eq!(p.log_start_offset(), Offset(2));
        assert_eq!(
            p.delete_records(DeleteUpTo::HighWatermark).expect("delete"),
            Offset(4)
        );
    });
}

#[test]
fn list_offsets_by_time_sees_only_committed_records() {
    run(|p| async move {
        p.append(records(1), Acks::Leader).expect("append");
        let found = p
            .plan_offset_for_timestamp(0)
            .execute()
            .await
            .expect("lookup");
        assert_eq!(found, None, "an uncommitted record is not found by time");
        assert!(p.plan_max_timestamp().is_none());
        settle(&p).await;
        let found = p
            .plan_offset_for_timestamp(0)
            .execute()
            .await
            .expect("lookup");
        assert_eq!(found.map(|(o, _)| o), Some(Offset(0)));
    });
}

#[test]
fn acks_levels_follow_kafka_encoding() {
    assert_eq!(Acks::from_kafka(0), Some(Acks::None));
    assert_eq!(Acks::from_kafka(1), Some(Acks::Leader));
    assert_eq!(Acks::from_kafka(-1), Some(Acks::All));
    assert_eq!(Acks::from_kafka(2), None);
    assert_eq!(Isolation::from_kafka(1), Isolation::ReadCommitted);
    assert_eq!(Isolation::from_kafka(0), Isolation::ReadUncommitted);
}
