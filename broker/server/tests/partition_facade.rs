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

// ------------------------------------------------------------ replication --

use corelog_model::{LeaderEpoch, NodeId};
use corelog_server::partition::{LeaderStart, NotAcknowledged, RoleKind};

fn lead(p: &Partition, isr: &[i32]) {
    p.become_leader(
        NodeId(1),
        LeaderStart {
            leader_epoch: LeaderEpoch(1),
            replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
            isr: isr.iter().copied().map(NodeId).collect(),
            partition_epoch: 0,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
        },
        0,
    );
}

/// A batch as a leader wrote it: `n` records from `base`, in `epoch`
/// (both fields are outside the CRC).
fn leaders_batch(base: i64, n: usize, epoch: i32) -> ValidBatch {
    let mut bytes = batch(&BatchSpec {
        records: n,
        ..Default::default()
    });
    bytes[0..8].copy_from_slice(&base.to_be_bytes());
    bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
    ValidBatch::new(Bytes::from(bytes), &RecordLimits::default()).expect("valid")
}

#[test]
fn a_replicated_leader_acknowledges_acks_all_once_every_in_sync_follower_has_it_on_disk() {
    run(|p| async move {
        lead(&p, &[1, 2, 3]);
        assert_eq!(p.role_kind(), RoleKind::Leader(LeaderEpoch(1)));
        let appended = p.append(records(3), Acks::All).expect("append");
        p.durable(Offset(3)).await.expect("durable here");
        assert!(p.leader_progress(1).is_empty());
        // On the leader's disk only: not committed.
        assert_eq!(p.high_watermark(), Offset(0));
        assert!(futures_lite::future::poll_once(p.acknowledged(&appended))
            .await
            .is_none());
        // Follower 2 has it on disk; 3 has only the first record.
        p.follower_fetched(NodeId(2), Offset(3), 2)
            .expect("a replica");
        p.follower_fetched(NodeId(3), Offset(1), 2)
            .expect("a replica");
        assert_eq!(p.high_watermark(), Offset(1));
        assert!(futures_lite::future::poll_once(p.acknowledged(&appended))
            .await
            .is_none());
        p.follower_fetched(NodeId(3), Offset(3), 3)
            .expect("a replica");
        assert_eq!(p.high_watermark(), Offset(3));
        p.acknowledged(&appended).await.expect("acknowledged");
        // A broker that is not a replica counts for nothing.
        assert!(p.follower_fetched(NodeId(9), Offset(3), 4).is_none());
        // Replica reads see the log end; consumers the high watermark.
        p.append(records(1), Acks::Leader).expect("append");
        let (bounds, _) = p.plan_read(Offset(0), 1 << 20, Isolation::Replica);
        assert_eq!(bounds.visible_end(Isolation::Replica), Offset(4));
        assert_eq!(bounds.visible_end(Isolation::ReadUncommitted), Offset(3));
    });
}

#[test]
fn a_leader_that_loses_leadership_answers_its_pending_acks_all_not_leader() {
    run(|p| async move {
        lead(&p, &[1, 2]);
        let appended = p.append(records(1), Acks::All).expect("append");
        let pending = p.clone();
        let waiter = glommio::spawn_local(async move { pending.acknowledged(&appended).await });
        p.durable(Offset(1)).await.expect("durable here");
        p.become_follower(Some((NodeId(2), LeaderEpoch(1))));
        assert_eq!(waiter.await, Err(NotAcknowledged::NotLeader));
        assert!(p.is_follower());
    });
}

#[test]
fn an_acknowledgement_awaited_after_the_role_changed_is_not_leader_even_once_the_offset_is_committed(
) {
    run(|p| async move {
        // A produce request appends to its partitions first and waits for
        // them one after another: this one's wait starts only after this
        // node was deposed, followed the new leader, cut its batch and took
        // the new leader's at that offset, which the new leader committed.
        lead(&p, &[1, 2]);
        let appended = p.append(records(1), Acks::All).expect("append");
        p.durable(Offset(1)).await.expect("durable here");
        p.become_follower(Some((NodeId(2), LeaderEpoch(2))));
        assert_eq!(p.truncate_to(Offset(0)).await.expect("truncate"), Offset(0));
        p.append_replicated(leaders_batch(0, 1, 2))
            .expect("the new leader's batch");
        p.durable(Offset(1)).await.expect("durable");
        p.set_follower_high_watermark(Offset(1));
        assert_eq!(p.high_watermark(), Offset(1));
        assert_eq!(
            p.acknowledged(&appended).await,
            Err(NotAcknowledged::NotLeader),
            "offset 0 is committed, but it holds another batch"
        );
    });
}

#[test]
fn a_replicated_partition_just_opened_assumes_nothing_committed_without_a_checkpoint() {
    run(|p| async move {
        p.append(records(3), Acks::Leader).expect("append");
        settle(&p).await;
        assert_eq!(p.high_watermark(), Offset(3));
        // Its tail may be a deposed leader's: no offset counts as committed
        // until a leader says so, when no checkpoint says otherwise.
        p.start_replicated();
        assert_eq!(p.high_watermark(), Offset(0));
        p.set_follower_high_watermark(Offset(2));
        assert_eq!(p.high_watermark(), Offset(2));
        // As leader it starts from there, not from its disk.
        lead(&p, &[1, 2]);
        assert_eq!(p.high_watermark(), Offset(2));
    });
}

#[test]
fn a_restarted_replica_starts_from_the_high_watermark_its_checkpoint_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("topic-0");
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let cache = BatchCache::shared(8 << 20);
            let (p, _) = Partition::open(
                path.clone(),
                LogConfig::default(),
                cache.clone(),
                CacheId(1),
            )
            .await
            .expect("open");
            p.start_replicated();
            p.become_follower(Some((NodeId(2), LeaderEpoch(1))));
            for (base, n) in [(0, 2), (2, 2), (4, 2)] {
                p.append_replicated(leaders_batch(base, n, 0))
                    .expect("append");
            }
            p.durable(Offset(6)).await.expect("durable");
            // The leader said 4 was committed; the clean close checkpoints it.
            p.set_follower_high_watermark(Offset(4));
            p.close().await;
            let (p, _) = Partition::open(path, LogConfig::default(), cache, CacheId(2))
                .await
                .expect("reopen");
            p.start_replicated();
            assert_eq!(
                p.high_watermark(),
                Offset(4),
                "consumers see what was committed before the restart"
            );
            assert_eq!(p.log_end_offset(), Offset(6), "and nothing past it yet");
            p.close().await;
        })
        .expect("executor")
        .join()
        .expect("join");
}

#[test]
fn a_follower_truncates_a_diverging_tail_and_appends_the_leaders_batches_after_it() {
    run(|p| async move {
        p.become_follower(Some((NodeId(2), LeaderEpoch(1))));
        // Epoch 0 wrote 0..4, then this replica took 4..6 in epoch 0 that
        // the new leader (epoch 1) never got.
        for (base, n) in [(0, 2), (2, 2), (4, 2)] {
            p.append_replicated(leaders_batch(base, n, 0))
                .expect("append");
        }
        assert_eq!(p.log_end_offset(), Offset(6));
        p.durable(Offset(6)).await.expect("durable");
        assert_eq!(p.truncate_to(Offset(4)).await.expect("truncate"), Offset(4));
        assert_eq!(p.log_end_offset(), Offset(4));
        assert_eq!(p.durable_end(), Offset(4));
        // The leader's batch at 4, in epoch 1, follows the cut.
        let end = p
            .append_replicated(leaders_batch(4, 3, 1))
            .expect("append after the cut");
        assert_eq!(end, Offset(7));
        // A batch that does not start at the log end is refused.
        assert!(p.append_replicated(leaders_batch(9, 1, 1)).is_err());
        p.durable(Offset(7)).await.expect("durable");
        assert_eq!(
            p.end_offset_for_epoch(LeaderEpoch(0)),
            (LeaderEpoch(0), Offset(4))
        );
        assert_eq!(
            p.end_offset_for_epoch(LeaderEpoch(1)),
            (LeaderEpoch(1), Offset(7))
        );
    });
}
