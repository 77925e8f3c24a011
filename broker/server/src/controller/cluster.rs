//! Cluster mode: the shard's side of the metadata quorum (issue 17).
//! Admin changes and producer-id blocks go to the active controller
//! ([`ask`]), and this node's topic table follows the quorum's image
//! (`publisher_task`), committed and handed to every shard like a change
//! of the single-node controller.
//!
//! Lives on: shard 0. It sits above the shard and `crate::cluster` (the
//! quorum host, which names nothing of the shard).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_lite::StreamExt;

use super::ask::{ask, host_of};
use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::cluster::{Host, Started};
use crate::metadata::ClusterView;
use crate::shard::Shard;

/// Attaches a started quorum host to shard 0: admin paths find it through
/// the controller's state, and the publisher follows its image.
pub fn attach(shard: &Rc<Shard>, started: Started) {
    if let Some(c) = shard.controller() {
        c.set_cluster(started.host.clone());
    }
    glommio::spawn_local(publisher_task(
        shard.clone(),
        started.host,
        started.image_changed,
    ))
    .detach();
}

/// How long an admin request waits for this node's shards to hold what
/// the controller committed.
pub const PUBLISHED_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes this node's topic table follow the image, each time the image
/// changes: the table is committed (`cluster-metadata.json`) and handed to
/// every shard, which opens the partitions it now holds and closes and
/// deletes those it no longer does (`controller::reconcile`), exactly as a
/// change of the single-node controller.
///
/// Lives on: shard 0.
async fn publisher_task(
    shard: Rc<Shard>,
    host: Rc<RefCell<Host>>,
    mut changed: mpsc::Receiver<()>,
) {
    let (me, stop) = {
        let h = host.borrow();
        (h.settings().node_id, h.stop_flag())
    };
    let mut last: Option<ClusterView> = None;
    while changed.next().await.is_some() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let view = host.borrow().view();
        let same = last
            .as_ref()
            .is_some_and(|l| l.brokers == view.brokers && l.topics == view.topics);
        if !same {
            let shard_count = shard.shard_count();
            let mut failed = false;
            loop {
                let followed = super::change_metadata(&shard, |md| {
                    let (changed, again) = md.follow(&view, me, shard_count);
                    (again, changed)
                })
                .await;
                match followed {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        // The next change of the image tries again.
                        tracing::error!(error = %e, "the topic table could not follow the metadata quorum");
                        failed = true;
                        break;
                    }
                }
            }
            last = (!failed).then(|| view.clone());
            let md = shard.metadata();
            let quorum = md.offsets_leaders.len();
            if quorum != 0 && quorum != md.offsets_topic_partitions as usize {
                tracing::warn!(
                    quorum,
                    local = md.offsets_topic_partitions,
                    "the offsets topic's partition count in the quorum is not this node's groups.offsets_topic_partitions; this node coordinates no group"
                );
            }
        }
        host.borrow_mut().set_published_index(view.applied_index);
    }
}

/// Waits until every shard of this node holds a table for which `done`
/// holds (a topic the controller created is there, say), for up to
/// [`PUBLISHED_TIMEOUT`]. Returns whether it came. Must run on shard 0 of a
/// cluster node.
pub async fn wait_published(
    shard: &Shard,
    done: impl Fn(&crate::metadata::ClusterMetadata) -> bool,
) -> bool {
    let Ok(host) = host_of(shard) else {
        return false;
    };
    let deadline = Instant::now() + PUBLISHED_TIMEOUT;
    loop {
        let md = shard.metadata();
        if done(&md) && host.borrow().published_index() >= md.quorum_applied_index {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes sure the internal offsets topic exists in the quorum (created
/// with this node's `offsets_topic_partitions` and
/// `offsets_topic_replication_factor`, placed over the live brokers) and
/// that this node's table knows its leaders; a group's
/// coordinator is the leader of its offsets partition. The first
/// FindCoordinator of a cluster asks, as in Kafka. Returns whether the
/// leaders are known. Must run on shard 0 of a cluster node.
pub async fn ensure_offsets_topic(shard: &Shard) -> bool {
    if !shard.metadata().offsets_leaders.is_empty() {
        return true;
    }
    let partitions = i32::try_from(shard.metadata().offsets_topic_partitions).unwrap_or(i32::MAX);
    let Ok(host) = host_of(shard) else {
        return false;
    };
    let replication_factor = host.borrow().settings().offsets_topic_replication_factor as i32;
    let request = ControlRequest::EnsureOffsetsTopic {
        partitions,
        replication_factor,
    };
    match ask(shard, request).await {
        Ok(ControlResponse::TopicCreated { .. }) => {
            wait_published(shard, |md| !md.offsets_leaders.is_empty()).await
        }
        Ok(other) => {
            tracing::warn!(answer = ?other, "the controller answered EnsureOffsetsTopic with another kind");
            false
        }
        Err(e) => {
            tracing::info!(error = %e, "the offsets topic is not there yet");
            false
        }
    }
}
