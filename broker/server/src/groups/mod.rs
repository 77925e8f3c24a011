//! Consumer groups on the shards: each partition of the internal offsets
//! log (`__consumer_offsets`) has a coordinator, which runs on the shard
//! that owns that partition.
//!
//! Lives on: the shard the cluster metadata places the offsets partition on
//! (`ClusterMetadata::offsets_owner`). A group's requests reach
//! it from any shard over the channel mesh ([`call_group`]); its state
//! changes only there. The coordinator itself is the sans-io
//! [`GroupCoordinator`]; this module performs what it asks: appends to the
//! offsets log, waits for durability, runs its timers, and routes replies
//! back to the waiting handlers.
//!
//! This module routes and opens; the coordinators' state and what they do
//! on their own shard are in [`table`], which the shard owns and which
//! names nothing of the shard.
//!
//! The offsets log is an ordinary partition log in the data directory
//! (`__consumer_offsets-N`). On a single node this module opens it on
//! start when it exists and creates it on first use otherwise. On a
//! cluster node it is a replica of the quorum's internal offsets topic,
//! which `controller::reconcile` opens and replicates like any topic's;
//! the node coordinates the partition's groups while it leads that log
//! ([`follow_leadership`]). It is not a client-visible topic: Metadata,
//! Produce and a consumer's Fetch never see it (a follower's Fetch does).

use std::rc::Rc;

use corelog_coordination::{codes, offsets_partition_for, Request};

use crate::coordinators::open_internal_log;
use crate::metadata::partition_dir;
use crate::partition::Partition;
use crate::shard::Shard;
use crate::ShardId;

pub use crate::metadata::OFFSETS_TOPIC;

pub mod table;

use table::{load, seed, GroupPartition};
pub use table::{GroupReply, GroupTable};

/// Which offsets partition, and which shard, coordinates `group_id`.
pub fn coordinator_of(shard: &Shard, group_id: &str) -> (u32, ShardId) {
    let md = shard.metadata();
    let index = offsets_partition_for(group_id, md.offsets_topic_partitions.max(1));
    (index, md.offsets_owner(index))
}

/// Cluster mode: the broker that coordinates `group_id`, the leader of
/// its offsets partition in the quorum's image, which every node that took
/// the same image names alike. `Err` with COORDINATOR_NOT_AVAILABLE while
/// the offsets topic is not created yet, its partition has no leader, or
/// the image's partition count is not this node's (groups would hash to
/// other partitions); `Ok(None)` on a single node.
pub fn cluster_coordinator(
    shard: &Shard,
    group_id: &str,
) -> Result<Option<crate::metadata::BrokerMeta>, i16> {
    if shard.config().node_id.is_none() {
        return Ok(None);
    }
    let md = shard.metadata();
    let count = md.offsets_leaders.len();
    // A count that differs from this node's is logged once per image
    // change by the publisher (`controller::cluster`), not per request.
    if count == 0 || count != md.offsets_topic_partitions as usize {
        return Err(codes::COORDINATOR_NOT_AVAILABLE);
    }
    let index = offsets_partition_for(group_id, count as u32) as usize;
    let leader = md.offsets_leaders[index];
    md.brokers
        .iter()
        .find(|b| b.id == leader)
        .cloned()
        .map(Some)
        .ok_or(codes::COORDINATOR_NOT_AVAILABLE)
}

/// Sends `request` to the coordinator of `group_id`, wherever it lives.
/// On a cluster node that does not coordinate groups the answer is
/// NOT_COORDINATOR, and the client asks FindCoordinator again.
pub async fn call_group(shard: &Rc<Shard>, group_id: &str, request: Request) -> GroupReply {
    if let Some(b) = cluster_coordinator(shard, group_id)? {
        if Some(b.id) != shard.config().node_id {
            return Err(codes::NOT_COORDINATOR);
        }
    }
    let (index, owner) = coordinator_of(shard, group_id);
    call_partition(shard, index, owner, request).await
}

/// Sends `request` to the coordinator of offsets partition `index`.
pub async fn call_partition(
    shard: &Rc<Shard>,
    index: u32,
    owner: ShardId,
    request: Request,
) -> GroupReply {
    shard
        .call(
            owner,
            move |s| async move { submit(&s, index, request).await },
        )
        .await
        .unwrap_or(Err(codes::COORDINATOR_NOT_AVAILABLE))
}

/// Runs `request` on every coordinator this shard hosts that is open, and
/// returns their answers (ListGroups).
pub async fn submit_to_local_partitions(shard: &Rc<Shard>, request: Request) -> Vec<GroupReply> {
    let open = shard.groups().indexes();
    let mut out = Vec::new();
    for index in open {
        out.push(submit(shard, index, request.clone()).await);
    }
    out
}

/// Runs a request on this shard's coordinator for offsets partition
/// `index`, opening it first if needed.
pub async fn submit(shard: &Rc<Shard>, index: u32, request: Request) -> GroupReply {
    let gp = open(shard, index).await?;
    // Counted here, on the shard, over all its coordinators: the bound is
    // the shard's, and a coordinator sees only its own groups.
    let groups_full = shard.groups().group_count() >= shard.config().groups.groups_per_shard_max;
    gp.submit(&shard.metadata(), request, groups_full).await
}

/// Runs on the owner of offsets partition `index`: writes a transaction
/// marker to its log for the transaction coordinator, and once it is
/// durable lets the group coordinator apply it to the offsets committed in
/// that transaction (TxnOffsetCommit). 0 once done, else an error code.
pub async fn write_marker(
    shard: &Rc<Shard>,
    index: u32,
    marker: corelog_storage::TxnMarker,
) -> i16 {
    match open(shard, index).await {
        Ok(gp) => gp.write_marker(marker).await,
        Err(code) => code,
    }
}

/// Opens on start the offsets partitions this shard owns that exist on
/// disk, so their groups and offsets are loaded before clients ask. A
/// cluster node's offsets partitions are replicas of a quorum topic:
/// `controller::reconcile` opens them, and [`follow_leadership`] starts
/// their coordinators.
pub async fn open_existing(shard: &Rc<Shard>) {
    if shard.config().node_id.is_some() {
        return;
    }
    let partitions = shard.metadata().offsets_topic_partitions;
    for index in 0..partitions {
        if shard.metadata().offsets_owner(index) != shard.id() {
            continue;
        }
        if partition_dir(&shard.config().data_dir, OFFSETS_TOPIC, index as i32).exists() {
            if let Err(code) = open(shard, index).await {
                tracing::error!(
                    partition = index,
                    code,
                    "cannot open offsets partition; its groups are unavailable"
                );
            }
        }
    }
}

/// Closes every coordinator of this shard: stops timers and flushes logs.
pub async fn close_all(shard: &Rc<Shard>) {
    for gp in shard.groups().take_all() {
        gp.close().await;
    }
}

/// Cluster mode: starts or drops the coordinator of offsets partition
/// `index` as this node's part in it changes. A node coordinates the
/// partition's groups exactly while it leads the partition's log (the
/// only replica, or the leader of the replicated log in its current role
/// generation); a coordinator of an older leadership is dropped (its
/// owed replies get NOT_COORDINATOR) and a new one loads from the log.
/// `controller::reconcile` calls it once the log took the role its
/// metadata asks for.
pub fn follow_leadership(
    shard: &Rc<Shard>,
    index: u32,
    meta: &crate::metadata::PartitionMeta,
    log: &Partition,
) {
    use crate::partition::RoleKind;
    let leads = meta.serving_shard() == Some(shard.id())
        && matches!(log.role_kind(), RoleKind::Sole | RoleKind::Leader(_));
    let generation = log.role_generation();
    let current = shard.groups().get(index);
    if leads && current.is_some_and(|gp| gp.led_generation() == Some(generation)) {
        return;
    }
    stop_coordinating(shard, index);
    if leads {
        let config = shard.config().groups.coordinator_config();
        let gp = GroupPartition::start_leading(index, config, log.clone(), generation);
        shard.groups().insert(index, gp);
    }
}

/// Cluster mode: drops the coordinator of offsets partition `index`, whose
/// log this node no longer holds.
pub fn stop_coordinating(shard: &Shard, index: u32) {
    if let Some(gp) = shard.groups().remove(index) {
        gp.abandon();
        tracing::info!(
            partition = index,
            "no longer coordinating this offsets partition's groups"
        );
    }
}

async fn open(shard: &Rc<Shard>, index: u32) -> Result<Rc<GroupPartition>, i16> {
    if let Some(gp) = shard.groups().get(index) {
        return Ok(gp);
    }
    if shard.config().node_id.is_some() {
        // Cluster mode: coordinators come and go with leadership
        // (`follow_leadership`). The metadata may name this node leader
        // before this shard has applied it: load in progress, ask again.
        let md = shard.metadata();
        let leads = md
            .offsets_topic
            .as_ref()
            .and_then(|t| t.partitions.get(index as usize))
            .is_some_and(|p| p.serving_shard().is_some());
        return Err(if leads {
            codes::COORDINATOR_LOAD_IN_PROGRESS
        } else {
            codes::NOT_COORDINATOR
        });
    }
    if shard.metadata().offsets_owner(index) != shard.id() {
        return Err(codes::NOT_COORDINATOR);
    }
    shard
        .groups()
        .get_or_open(index, || async {
            let log_config = shard.metadata().offsets_settings(shard.config()).log;
            let (log, dir) =
                open_internal_log(shard, OFFSETS_TOPIC, index, log_config, "offsets partition")
                    .await?;
            let config = shard.config().groups.coordinator_config();
            let machine = load(&log, config, seed(index)).await.map_err(|e| {
                tracing::error!(dir = %dir.display(), error = %e, "cannot load offsets partition");
                codes::COORDINATOR_LOAD_IN_PROGRESS
            })?;
            let gp = GroupPartition::start(index, machine, log);
            tracing::debug!(partition = index, "group coordinator ready");
            Ok(gp)
        })
        .await
}
