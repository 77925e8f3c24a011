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

use corelog_controller as ctl;
use futures_channel::{mpsc, oneshot};
use futures_lite::StreamExt;

use crate::cluster::wire::{
    ControlRequest, ControlResponse, IsrChange, IsrOutcome, ALTER_PARTITIONS_MAX,
};
use crate::cluster::{to_controller, Host, Started};
use crate::error::ServerError;
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

/// How long an admin or producer-id request keeps trying to reach the
/// active controller (no leader yet, a leader that moved).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);
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

fn host_of(shard: &Shard) -> Result<Rc<RefCell<Host>>, ServerError> {
    shard.controller().and_then(|c| c.cluster()).ok_or_else(|| {
        ServerError::Internal("the metadata quorum runs on shard 0 of a cluster node".into())
    })
}

/// Sends an admin or producer-id request to the active controller (this
/// node's or the quorum leader's) and returns its answer, once the records
/// are committed. While the quorum has no leader, or its leader moves, it
/// tries again for up to [`ASK_TIMEOUT`]; a refusal is the controller's
/// Kafka code and message. A request retried after its leader was deposed
/// may find its own change already made (TOPIC_ALREADY_EXISTS, say), as in
/// Kafka.
///
/// Must run on shard 0 of a cluster node.
pub async fn ask(shard: &Shard, request: ControlRequest) -> Result<ControlResponse, ServerError> {
    let host = host_of(shard)?;
    let deadline = Instant::now() + ASK_TIMEOUT;
    loop {
        let answer = to_controller(&host, request.clone()).await;
        let retry = match &answer {
            Err(_) => true,
            Ok(ControlResponse::Error { code, .. }) => *code == ctl::codes::NOT_CONTROLLER,
            Ok(_) => false,
        };
        if !retry || Instant::now() >= deadline {
            return match answer {
                Ok(ControlResponse::Error { code, message, .. }) => {
                    Err(ServerError::Controller { code, message })
                }
                Ok(r) => Ok(r),
                Err(e) => Err(ServerError::Controller {
                    code: ctl::codes::REQUEST_TIMED_OUT,
                    message: format!("the metadata quorum's controller could not be reached: {e}"),
                }),
            };
        }
        glommio::timer::sleep(Duration::from_millis(200)).await;
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

/// This node's broker epoch (for producer-id blocks), or an error while it
/// is not registered. Must run on shard 0 of a cluster node.
pub fn own_broker(shard: &Shard) -> Result<(i32, i64), ServerError> {
    let host = host_of(shard)?;
    let h = host.borrow();
    match h.own_epoch() {
        Some(epoch) => Ok((h.settings().node_id, epoch)),
        None => Err(ServerError::Controller {
            code: corelog_coordination::codes::COORDINATOR_NOT_AVAILABLE,
            message: "this broker is not registered with the metadata quorum yet".into(),
        }),
    }
}

/// What became of one ISR change sent with others.
#[derive(Debug, Clone)]
pub enum IsrAnswer {
    /// Not sent: this broker is not registered with the quorum yet.
    NotSent,
    /// The active controller's answer to this change.
    Outcome(IsrOutcome),
    /// The request carrying it failed as a whole (no controller in
    /// [`ASK_TIMEOUT`], a stale broker epoch, ...): its fate is unknown.
    Failed(ServerError),
}

/// Sends `change` to the active controller together with the ISR changes
/// this node's other partition leaders propose meanwhile: one
/// AlterPartitions while none is in flight, and the changes proposed
/// during it in the next, as Kafka's brokers batch AlterPartition. A
/// broker that restarts rejoins the ISRs of every partition it follows
/// within a few fetches (the offsets topic alone has 50); one request and
/// one metadata commit per partition, in turn, kept produce to a partition
/// whose ISR was too small for min.insync.replicas waiting behind the
/// others' commits. Must run on shard 0 of a cluster node.
pub async fn alter_partition(shard: &Rc<Shard>, change: IsrChange) -> IsrAnswer {
    let Some(c) = shard.controller() else {
        return IsrAnswer::Failed(ServerError::Controller {
            code: ctl::codes::NOT_CONTROLLER,
            message: "ISR changes go through shard 0".into(),
        });
    };
    let (tx, rx) = oneshot::channel();
    c.isr_queue.borrow_mut().push((change, tx));
    if !c.isr_sending.replace(true) {
        glommio::spawn_local(send_isr_changes(shard.clone())).detach();
    }
    rx.await.unwrap_or_else(|_| {
        IsrAnswer::Failed(ServerError::Controller {
            code: ctl::codes::REQUEST_TIMED_OUT,
            message: "the broker stopped before the ISR change was answered".into(),
        })
    })
}

/// Sends what [`alter_partition`] queued, at most
/// [`ALTER_PARTITIONS_MAX`] changes a request, one request at a time,
/// until the queue is empty.
async fn send_isr_changes(shard: Rc<Shard>) {
    let Some(c) = shard.controller() else {
        return;
    };
    loop {
        let batch: Vec<(IsrChange, oneshot::Sender<IsrAnswer>)> = {
            let mut queue = c.isr_queue.borrow_mut();
            let n = queue.len().min(ALTER_PARTITIONS_MAX);
            queue.drain(..n).collect()
        };
        if batch.is_empty() {
            c.isr_sending.set(false);
            return;
        }
        let (changes, replies): (Vec<IsrChange>, Vec<_>) = batch.into_iter().unzip();
        let n = changes.len();
        let answers: Vec<IsrAnswer> = match own_broker(&shard) {
            Err(_) => vec![IsrAnswer::NotSent; n],
            Ok((broker, broker_epoch)) => {
                let request = ControlRequest::AlterPartitions {
                    broker,
                    broker_epoch,
                    changes,
                };
                match ask(&shard, request).await {
                    Ok(ControlResponse::PartitionsAltered { results }) if results.len() == n => {
                        results.into_iter().map(IsrAnswer::Outcome).collect()
                    }
                    Ok(other) => vec![
                        IsrAnswer::Failed(ServerError::Controller {
                            code: ctl::codes::UNKNOWN_SERVER_ERROR,
                            message: format!(
                                "the controller answered AlterPartitions with {other:?}"
                            ),
                        });
                        n
                    ],
                    Err(e) => vec![IsrAnswer::Failed(e); n],
                }
            }
        };
        for (tx, answer) in replies.into_iter().zip(answers) {
            let _ = tx.send(answer);
        }
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
