//! The controller's own state, held by shard 0's `Shard`. It names nothing
//! of the shard, so the shard can own it without the two modules importing
//! each other; the operations on it are in the parent module.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use glommio::sync::Semaphore;

use crate::cluster::wire::{IsrChange, IsrOutcome};
use crate::error::ServerError;
use crate::ProducerId;

/// Lives on: shard 0 (the controller shard).
pub struct Controller {
    /// Admits one metadata change at a time.
    pub(super) changes: Semaphore,
    /// Admits one producer id allocation at a time.
    pub(super) producer_ids: Semaphore,
    /// The next producer id to hand out, and the end of the persisted block.
    pub(super) next_producer_id: Cell<ProducerId>,
    pub(super) producer_id_block_end: Cell<ProducerId>,
    /// Cluster mode only: the metadata quorum's host, through which topic
    /// changes and producer-id blocks go instead of this node's file.
    cluster: RefCell<Option<Rc<RefCell<crate::cluster::Host>>>>,
    /// Cluster mode: ISR changes of this node's partition leaders waiting
    /// to go to the active controller together, each with where its
    /// answer goes (`super::ask::alter_partition`).
    pub(super) isr_queue: RefCell<Vec<(IsrChange, oneshot::Sender<IsrAnswer>)>>,
    /// Whether an AlterPartitions of this node is in flight.
    pub(super) isr_sending: Cell<bool>,
}

/// What became of one ISR change sent with others.
#[derive(Debug, Clone)]
pub enum IsrAnswer {
    /// Not sent: this broker is not registered with the quorum yet.
    NotSent,
    /// The active controller's answer to this change.
    Outcome(IsrOutcome),
    /// The request carrying it failed as a whole (no controller in
    /// `super::ask::ASK_TIMEOUT`, a stale broker epoch, ...): its fate is unknown.
    Failed(ServerError),
}

/// Producer ids persisted per metadata write.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

impl Default for Controller {
    fn default() -> Self {
        Self::new()
    }
}

impl Controller {
    pub fn new() -> Controller {
        Controller {
            changes: Semaphore::new(1),
            producer_ids: Semaphore::new(1),
            next_producer_id: Cell::new(ProducerId(0)),
            producer_id_block_end: Cell::new(ProducerId(0)),
            cluster: RefCell::new(None),
            isr_queue: RefCell::new(Vec::new()),
            isr_sending: Cell::new(false),
        }
    }

    /// The metadata quorum's host, in cluster mode.
    pub fn cluster(&self) -> Option<Rc<RefCell<crate::cluster::Host>>> {
        self.cluster.borrow().clone()
    }

    pub(crate) fn set_cluster(&self, host: Rc<RefCell<crate::cluster::Host>>) {
        *self.cluster.borrow_mut() = Some(host);
    }
}
