//! Transactions on the shards: each partition of the internal transaction
//! state log (`__transaction_state`) has a transaction coordinator, which
//! runs on the shard that owns that partition, and the markers it decides
//! are written by the shards that own the transaction's partitions.
//!
//! Lives on: the shard the cluster metadata places the state partition on
//! (`ClusterMetadata::txn_state_owner`). A transactional id's requests
//! reach its coordinator from any shard over the channel mesh
//! ([`call_txn`]); its state changes only there. The coordinator is the
//! sans-io [`corelog_coordination::TransactionCoordinator`]; [`table`]
//! performs what it asks (appends to the state log, its timer, replies),
//! and this module routes, opens coordinators, and writes markers
//! ([`write_markers`]): a COMMIT or ABORT control batch appended to each
//! partition of the transaction on its owner shard, durable before the
//! coordinator hears of it. For a partition of the offsets log the group
//! coordinator applies the marker to the transaction's offsets
//! ([`crate::groups::write_marker`]).
//!
//! The state log is an ordinary partition log in the data directory
//! (`__transaction_state-N`), opened on start when it exists and created
//! on first use otherwise. It is not a client-visible topic.
//!
//! Transactions are served by a single node. A cluster node answers
//! COORDINATOR_NOT_AVAILABLE for transactional ids (FindCoordinator, and
//! InitProducerId with a transactional id): the state log is not a
//! replicated quorum topic yet.

use std::rc::Rc;

use corelog_coordination::{codes, txn_partition_for, TxnRequest};
use corelog_storage::{MarkerKind, TxnMarker};

use crate::coordinators::open_internal_log;
use crate::metadata::{partition_dir, OFFSETS_TOPIC, TXN_STATE_TOPIC};
use crate::partition::{NotAcknowledged, Partition};
use crate::shard::Shard;
use crate::{ShardId, TopicPartition};

pub mod table;

use table::{load, MarkerJob, MarkerWriter, TxnPartition};
pub use table::{TxnReply, TxnTable};

/// Which state partition, and which shard, coordinates `transactional_id`.
pub fn coordinator_of(shard: &Shard, transactional_id: &str) -> (u32, ShardId) {
    let md = shard.metadata();
    let index = txn_partition_for(transactional_id, md.txn_state_partitions.max(1));
    (index, md.txn_state_owner(index))
}

/// Whether this node coordinates transactions (a single node does; see
/// the module doc).
pub fn served_here(shard: &Shard) -> bool {
    shard.config().node_id.is_none()
}

/// Sends `request` to the coordinator of `transactional_id`.
pub async fn call_txn(shard: &Rc<Shard>, transactional_id: &str, request: TxnRequest) -> TxnReply {
    if !served_here(shard) {
        return Err(codes::COORDINATOR_NOT_AVAILABLE);
    }
    let (index, owner) = coordinator_of(shard, transactional_id);
    shard
        .call(
            owner,
            move |s| async move { submit(&s, index, request).await },
        )
        .await
        .unwrap_or(Err(codes::COORDINATOR_NOT_AVAILABLE))
}

/// Runs `request` on every coordinator this shard hosts, opening the ones
/// whose logs exist (ListTransactions).
pub async fn submit_to_local_partitions(shard: &Rc<Shard>, request: TxnRequest) -> Vec<TxnReply> {
    let mut out = Vec::new();
    for index in shard.txns().indexes() {
        out.push(submit(shard, index, request.clone()).await);
    }
    out
}

/// Runs a request on this shard's coordinator for state partition
/// `index`, opening it first if needed.
pub async fn submit(shard: &Rc<Shard>, index: u32, request: TxnRequest) -> TxnReply {
    let tp = open(shard, index).await?;
    tp.submit(request).await
}

/// Opens on start the state partitions this shard owns that exist on disk,
/// so that transactions a crash interrupted are completed (their markers
/// written) or aborted by their timeout without waiting for a client.
pub async fn open_existing(shard: &Rc<Shard>) {
    if !served_here(shard) {
        return;
    }
    let partitions = shard.metadata().txn_state_partitions;
    for index in 0..partitions {
        if shard.metadata().txn_state_owner(index) != shard.id() {
            continue;
        }
        if partition_dir(&shard.config().data_dir, TXN_STATE_TOPIC, index as i32).exists() {
            if let Err(code) = open(shard, index).await {
                tracing::error!(
                    partition = index,
                    code,
                    "cannot open transaction state partition; its transactional ids are unavailable"
                );
            }
        }
    }
}

/// Closes every coordinator of this shard: stops timers and flushes logs.
pub async fn close_all(shard: &Rc<Shard>) {
    for tp in shard.txns().take_all() {
        tp.close().await;
    }
}

async fn open(shard: &Rc<Shard>, index: u32) -> Result<Rc<TxnPartition>, i16> {
    if let Some(tp) = shard.txns().get(index) {
        return Ok(tp);
    }
    if shard.metadata().txn_state_owner(index) != shard.id() {
        return Err(codes::NOT_COORDINATOR);
    }
    shard
        .txns()
        .get_or_open(index, || async {
            let log_config = shard.metadata().txn_state_settings(shard.config()).log;
            let what = "transaction state partition";
            let (log, dir) =
                open_internal_log(shard, TXN_STATE_TOPIC, index, log_config, what).await?;
            let config = shard.config().transactions.coordinator_config();
            let (machine, outputs) = load(&log, config).await.map_err(|e| {
                tracing::error!(dir = %dir.display(), error = %e, "cannot load transaction state partition");
                codes::COORDINATOR_LOAD_IN_PROGRESS
            })?;
            let writer: MarkerWriter = {
                let shard = shard.clone();
                Rc::new(move |job| Box::pin(write_markers(shard.clone(), job)))
            };
            let tp = TxnPartition::start(index, machine, outputs, log, writer);
            tracing::debug!(partition = index, "transaction coordinator ready");
            Ok(tp)
        })
        .await
}

/// Writes a marker job: the control batch on every partition of the
/// transaction, each on its owner shard (one call per owner), and answers
/// each partition's error code once the marker is durable there (0) or
/// cannot be written.
pub async fn write_markers(shard: Rc<Shard>, job: MarkerJob) -> Vec<(TopicPartition, i16)> {
    let md = shard.metadata();
    let mut answers: Vec<(TopicPartition, i16)> = Vec::with_capacity(job.partitions.len());
    let mut items: Vec<(ShardId, (usize, TopicPartition))> = Vec::new();
    for tp in &job.partitions {
        let at = answers.len();
        answers.push((tp.clone(), codes::UNKNOWN_SERVER_ERROR));
        let owner = if tp.topic == OFFSETS_TOPIC {
            (tp.partition >= 0 && (tp.partition as u32) < md.offsets_topic_partitions)
                .then(|| md.offsets_owner(tp.partition as u32))
                .ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            match md
                .topics
                .get(&tp.topic)
                .and_then(|t| t.partitions.get(usize::try_from(tp.partition).ok()?))
            {
                None => Err(codes::UNKNOWN_TOPIC_OR_PARTITION),
                Some(p) => p.serving_shard().ok_or(codes::NOT_LEADER_OR_FOLLOWER),
            }
        };
        match owner {
            Ok(owner) => items.push((owner, (at, tp.clone()))),
            Err(code) => answers[at].1 = code,
        }
    }
    let marker = TxnMarker {
        producer_id: job.producer_id,
        producer_epoch: job.producer_epoch,
        coordinator_epoch: job.coordinator_epoch,
        kind: if job.commit {
            MarkerKind::Commit
        } else {
            MarkerKind::Abort
        },
    };
    let slots: Vec<usize> = items.iter().map(|(_, (at, _))| *at).collect();
    let codes_back = shard
        .fan_out(
            items,
            move |s, parts: Vec<(usize, TopicPartition)>| async move {
                write_markers_here(&s, parts.into_iter().map(|(_, tp)| tp).collect(), marker).await
            },
            codes::NOT_LEADER_OR_FOLLOWER,
        )
        .await;
    for (at, code) in slots.into_iter().zip(codes_back) {
        answers[at].1 = code;
    }
    answers
}

/// Runs on the partitions' owner: appends the marker to every partition
/// first and then waits for each to be committed, so that the appends of
/// one shard share their writes (group commit) instead of waiting for one
/// fdatasync per partition in turn. One code per partition, in order.
async fn write_markers_here(
    shard: &Rc<Shard>,
    parts: Vec<TopicPartition>,
    marker: TxnMarker,
) -> Vec<i16> {
    enum Pending {
        Done(i16),
        Offsets(u32),
        Committing(Partition, crate::partition::CommitPoint),
    }
    let pending: Vec<Pending> = parts
        .iter()
        .map(|tp| {
            if tp.topic == OFFSETS_TOPIC {
                return Pending::Offsets(tp.partition as u32);
            }
            let Some(p) = shard.partition(&tp.topic, tp.partition) else {
                return Pending::Done(codes::UNKNOWN_TOPIC_OR_PARTITION);
            };
            match p.append_marker(marker) {
                Ok(point) => Pending::Committing(p, point),
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "transaction marker refused");
                    Pending::Done(crate::error::ServerError::code_of_storage(&e))
                }
            }
        })
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    for p in pending {
        out.push(match p {
            Pending::Done(code) => code,
            Pending::Offsets(index) => crate::groups::write_marker(shard, index, marker).await,
            Pending::Committing(p, point) => match p.committed(point).await {
                Ok(()) => codes::NONE,
                Err(NotAcknowledged::NotLeader) => codes::NOT_LEADER_OR_FOLLOWER,
                Err(NotAcknowledged::Discarded) => {
                    corelog_protocol::error_code::KAFKA_STORAGE_ERROR
                }
            },
        });
    }
    out
}

/// KIP-890 verification, on a partition's owner before it appends a
/// transactional batch that would start a transaction there: asks the
/// producer's coordinator whether the partition is in its ongoing
/// transaction. 0 when it is; otherwise the code to answer the batch with.
pub async fn verify(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer_id: crate::ProducerId,
    producer_epoch: crate::ProducerEpoch,
    partition: TopicPartition,
) -> i16 {
    let request = TxnRequest::VerifyPartitions {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        partitions: vec![partition],
    };
    match call_txn(shard, transactional_id, request).await {
        Ok(corelog_coordination::TxnResponse::VerifyPartitions { results }) => {
            results.first().map_or(codes::UNKNOWN_SERVER_ERROR, |r| r.1)
        }
        Ok(_) => codes::UNKNOWN_SERVER_ERROR,
        Err(code) => code,
    }
}
