//! The controller: the one place where cluster metadata changes.
//!
//! Lives on: shard 0. An admin request arriving on any shard is sent here
//! as a shard job. A change is applied to a copy of the metadata, committed
//! to the [`MetadataStore`], then published to every shard, which opens or
//! deletes the partition logs it owns to match (`reconcile`). Changes are
//! applied one at a time.
//!
//! Nothing here blocks its executor: shard 0 also serves partitions and
//! connections. The store's file writes and fsyncs, and the removal of a
//! deleted partition's directory, run on the executor's blocking pool.

use std::collections::HashSet;
use std::rc::Rc;

use corelog_storage::CacheId;

use crate::error::ServerError;
use crate::metadata::{partition_dir, ClusterMetadata};
use crate::partition::Partition;
use crate::shard::Shard;
use crate::{ProducerId, ShardId, TopicPartition};

pub mod ask;
pub mod cluster;
pub mod state;

pub use state::{Controller, PRODUCER_ID_BLOCK};

/// Applies `change` to a copy of the metadata on the controller shard.
/// When `change` reports that it changed something (the `bool`), the copy
/// gets the next version, is committed to the [`MetadataStore`] and is
/// published to every shard; otherwise (validate-only requests, requests
/// where every entry failed) nothing is written and the version stays.
/// Must run on shard 0.
pub async fn change_metadata<T>(
    shard: &Rc<Shard>,
    change: impl FnOnce(&mut ClusterMetadata) -> (T, bool),
) -> Result<T, ServerError> {
    let controller = shard.controller().ok_or_else(|| {
        ServerError::Internal("metadata changes run on the controller shard".into())
    })?;
    let _permit = controller
        .changes
        .acquire_permit(1)
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    let mut md = (*shard.metadata()).clone();
    let (out, changed) = change(&mut md);
    if !changed {
        return Ok(out);
    }
    md.version += 1;
    MetadataStore::new(&shard.config().data_dir)
        .commit(&md)
        .await
        .map_err(|e| ServerError::MetadataCommit(std::sync::Arc::new(e)))?;
    publish(shard, md).await;
    Ok(out)
}

/// Hands out a producer id that was never handed out before. Must run on
/// shard 0.
pub async fn allocate_producer_id(shard: &Rc<Shard>) -> Result<ProducerId, ServerError> {
    let controller = shard.controller().ok_or_else(|| {
        ServerError::Internal("producer ids are allocated on the controller shard".into())
    })?;
    let _permit = controller
        .producer_ids
        .acquire_permit(1)
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    if controller.next_producer_id.get() >= controller.producer_id_block_end.get()
        && shard.config().node_id.is_some()
    {
        // A cluster node takes blocks from the metadata quorum, which
        // hands each id range to one broker only. A block is not recorded
        // here: after a restart the node asks for a new one.
        let (broker, epoch) = ask::own_broker(shard)?;
        let answer = ask::ask(
            shard,
            crate::cluster::wire::ControlRequest::AllocateProducerIds { broker, epoch },
        )
        .await?;
        let crate::cluster::wire::ControlResponse::ProducerIds { start, len } = answer else {
            return Err(ServerError::Internal(format!(
                "the controller answered AllocateProducerIds with {answer:?}"
            )));
        };
        controller.next_producer_id.set(ProducerId(start));
        controller
            .producer_id_block_end
            .set(ProducerId(start + len));
    } else if controller.next_producer_id.get() >= controller.producer_id_block_end.get() {
        let end = change_metadata(shard, |md| {
            md.producer_id_block_end = md.producer_id_block_end.plus(PRODUCER_ID_BLOCK);
            (md.producer_id_block_end, true)
        })
        .await?;
        controller
            .next_producer_id
            .set(end.plus(-PRODUCER_ID_BLOCK));
        controller.producer_id_block_end.set(end);
    }
    let id = controller.next_producer_id.get();
    controller.next_producer_id.set(id.plus(1));
    Ok(id)
}

/// Sends a metadata snapshot to every shard and waits until each has
/// reconciled its partitions with it.
pub async fn publish(shard: &Rc<Shard>, md: ClusterMetadata) {
    for target in 0..shard.shard_count() {
        let md = md.clone();
        let _ = shard
            .call(ShardId(target as u32), move |s| async move {
                s.set_metadata(Rc::new(md));
                reconcile(&s).await;
            })
            .await;
    }
}

/// Where committed metadata lives. A change is published to the shards only
/// after `commit` returns, so no shard ever acts on metadata a crash could
/// take back.
///
/// Today the store is one file, `cluster-metadata.json`, replaced
/// atomically. The Raft-backed controller will commit by appending the
/// change to the metadata log and waiting for a quorum; callers keep this
/// shape: an awaited commit, then publish.
pub struct MetadataStore {
    data_dir: std::path::PathBuf,
}

impl MetadataStore {
    pub fn new(data_dir: &std::path::Path) -> MetadataStore {
        MetadataStore {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Makes `md` durable: when this returns Ok, a restart loads it. The
    /// write and its fsyncs run on the blocking pool, not on the executor.
    pub async fn commit(&self, md: &ClusterMetadata) -> std::io::Result<()> {
        let (md, dir) = (md.clone(), self.data_dir.clone());
        corelog_runtime::run_blocking(move || md.persist(&dir)).await
    }
}

/// Opens the partitions this shard owns but has not opened, with their
/// topic's settings, and closes and deletes those no longer in the metadata.
/// Also applies changed topic settings to open logs.
///
/// A change may open or delete thousands of partitions on this shard (up
/// to `partitions_per_request_max`), while the shard also serves its
/// connections: every loop yields to the executor once its task quota is
/// used (`yield_if_needed`), so the other connections are answered in
/// between instead of after the whole change.
pub async fn reconcile(shard: &Rc<Shard>) {
    use crate::metadata::OFFSETS_TOPIC;
    let md = shard.metadata();
    // A cluster's internal offsets topic is replicated like any topic
    // (its partitions' coordinators follow their leadership, below).
    let all_topics = || {
        md.topics
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .chain(md.offsets_topic.as_ref().map(|t| (OFFSETS_TOPIC, t)))
    };
    let mut wanted = HashSet::new();
    for (name, topic) in all_topics() {
        for (i, p) in topic.partitions.iter().enumerate() {
            if p.hosted() && p.shard == shard.id() {
                wanted.insert(TopicPartition::new(name.to_string(), i as i32));
            }
        }
        glommio::yield_if_needed().await;
    }
    let gone: Vec<_> = shard
        .partitions()
        .keys()
        .into_iter()
        .filter(|k| !wanted.contains(k))
        .collect();
    drop(wanted);
    for key in gone {
        glommio::yield_if_needed().await;
        let Some(p) = shard.partitions().remove(&key) else {
            continue;
        };
        if key.topic == OFFSETS_TOPIC {
            crate::groups::stop_coordinating(shard, key.partition as u32);
        }
        p.close().await;
        let dir = partition_dir(&shard.config().data_dir, &key.topic, key.partition);
        // Thousands of segment files may go: not on the executor thread.
        let removing = dir.clone();
        if let Err(e) =
            corelog_runtime::run_blocking(move || std::fs::remove_dir_all(&removing)).await
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not delete partition directory");
        }
        p.forget_cached();
        tracing::info!(topic = %key.topic, partition = key.partition, "partition deleted");
    }
    for (name, topic) in all_topics() {
        let offsets = name == OFFSETS_TOPIC;
        // A topic's settings, worked out once for all its partitions here.
        let mut settings = None;
        for (i, meta) in topic.partitions.iter().enumerate() {
            if !meta.hosted() || meta.shard != shard.id() {
                continue;
            }
            glommio::yield_if_needed().await;
            let settings = settings.get_or_insert_with(|| {
                if offsets {
                    md.offsets_settings(shard.config())
                } else {
                    md.settings(shard.config(), name)
                }
            });
            let index = i as i32;
            let leader_epoch = meta.leader_epoch_here();
            if let Some(p) = shard.partition(name, index) {
                if p.log_config() != settings.log {
                    if let Err(e) = p.set_log_config(settings.log.clone()) {
                        tracing::warn!(topic = %name, error = %e, "topic settings not applied");
                    }
                }
                if let Some(epoch) = leader_epoch.filter(|&e| e != p.leader_epoch()) {
                    p.set_leader_epoch(epoch);
                }
                follow_role(shard, name, index, meta, settings, &p);
                if offsets {
                    crate::groups::follow_leadership(shard, i as u32, meta, &p);
                }
                continue;
            }
            let dir = partition_dir(&shard.config().data_dir, name, index);
            let cache_id = CacheId(shard.next_cache_id());
            match Partition::open(
                dir.clone(),
                settings.log.clone(),
                shard.cache().clone(),
                cache_id,
            )
            .await
            {
                Ok((partition, report)) => {
                    if report.scanned_bytes > 0 || report.torn_tail_position_bytes.is_some() {
                        tracing::info!(dir = %dir.display(), ?report, "partition recovered");
                    }
                    if let Some(epoch) = leader_epoch {
                        partition.set_leader_epoch(epoch);
                    }
                    if meta.replica.as_ref().is_some_and(|r| r.replicas.len() > 1) {
                        partition.start_replicated();
                    }
                    shard.partitions().insert(
                        TopicPartition::new(name.to_string(), index),
                        partition.clone(),
                    );
                    follow_role(shard, name, index, meta, settings, &partition);
                    if offsets {
                        crate::groups::follow_leadership(shard, i as u32, meta, &partition);
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot open partition; it stays offline")
                }
            }
        }
    }
}

/// Gives a partition the replication role its metadata asks for, and
/// starts the task of a new one (`crate::replica`): the only replica (a
/// single node, or one replica), the leader of a replicated partition, or
/// a follower of another node's leader. A leader that stays leader takes
/// the ISR the controller committed; a follower whose leader or leader
/// epoch changed starts over (truncation first).
fn follow_role(
    shard: &Rc<Shard>,
    topic: &str,
    index: i32,
    meta: &crate::metadata::PartitionMeta,
    settings: &crate::metadata::TopicSettings,
    p: &Partition,
) {
    use crate::partition::{LeaderStart, RoleKind};
    use corelog_model::{LeaderEpoch, NodeId};
    let now_ms = corelog_runtime::now_ms() as u64;
    let Some(r) = meta.replica.as_ref().filter(|r| r.replicas.len() > 1) else {
        p.become_sole();
        return;
    };
    let me = NodeId(shard.config().node_id.unwrap_or(0));
    if !shard.metadata().from_quorum {
        // A table from before this start: it may name this node leader in
        // an epoch the quorum has moved past. Serve nothing until the
        // quorum's view arrives.
        if p.role_kind() != RoleKind::Follower(None) {
            p.become_follower(None);
        }
        return;
    }
    if r.leads {
        let isr: Vec<NodeId> = r.isr.iter().copied().map(NodeId).collect();
        // The same epoch: only the committed ISR is news. A newer one
        // (epochs this node missed lie between) starts a new leader's
        // machine: what its followers reported in the old epoch may be
        // gone from their logs since, cut while they followed another.
        if p.role_kind() == RoleKind::Leader(LeaderEpoch(r.leader_epoch)) {
            // The setting first: the controller judged this ISR by it.
            let mut proposals =
                p.set_min_insync_replicas(now_ms, settings.min_insync_replicas as usize);
            proposals.extend(p.isr_answer(
                now_ms,
                crate::partition::IsrNews::Committed {
                    isr,
                    partition_epoch: r.partition_epoch,
                },
            ));
            crate::replica::propose(shard, topic, index, p, proposals);
            return;
        }
        p.become_leader(
            me,
            LeaderStart {
                leader_epoch: LeaderEpoch(r.leader_epoch),
                replicas: r.replicas.iter().copied().map(NodeId).collect(),
                isr,
                partition_epoch: r.partition_epoch,
                min_insync_replicas: settings.min_insync_replicas as usize,
                replica_lag_time_max_ms: shard.config().replica_lag_time_max_ms,
            },
            now_ms,
        );
        tracing::info!(
            topic,
            partition = index,
            leader_epoch = r.leader_epoch,
            "leading a replicated partition"
        );
        crate::replica::start_leader(shard, topic.to_string(), index, p.clone());
        return;
    }
    let leader = (r.leader >= 0).then_some((NodeId(r.leader), LeaderEpoch(r.leader_epoch)));
    if p.role_kind() == RoleKind::Follower(leader) {
        return;
    }
    p.become_follower(leader);
    if let Some((leader, leader_epoch)) = leader {
        tracing::info!(
            topic,
            partition = index,
            leader = leader.0,
            leader_epoch = leader_epoch.0,
            "following"
        );
        crate::replica::start_follower(
            shard,
            topic.to_string(),
            index,
            p.clone(),
            me,
            leader,
            leader_epoch,
        );
    }
}
