//! Requests to the active controller in cluster mode (issue 17): admin
//! changes and producer-id blocks ([`ask`]), and the ISR changes of this
//! node's partition leaders, batched ([`alter_partition`]).
//!
//! Lives on: shard 0. It names nothing above the shard (only the shard,
//! the controller's state it owns and `crate::cluster`), so the replica
//! tasks below the controller's reconciliation can use it without an
//! import cycle.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corelog_controller as ctl;
use futures_channel::oneshot;

pub use super::state::IsrAnswer;
use crate::cluster::wire::{ControlRequest, ControlResponse, IsrChange, ALTER_PARTITIONS_MAX};
use crate::cluster::{to_controller, Host};
use crate::error::ServerError;
use crate::shard::Shard;

/// How long an admin or producer-id request keeps trying to reach the
/// active controller (no leader yet, a leader that moved).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The quorum host, held by shard 0's controller state in cluster mode.
pub(super) fn host_of(shard: &Shard) -> Result<Rc<RefCell<Host>>, ServerError> {
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
                Err(e) => Err(ServerError::ControllerUnreachable(Arc::new(e))),
            };
        }
        glommio::timer::sleep(Duration::from_millis(200)).await;
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
