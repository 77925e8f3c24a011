//! The transaction coordinators one shard hosts: each transaction state
//! partition's sans-io coordinator, its log, its timer and the replies it
//! owes.
//!
//! Lives on: the shard that owns the transaction state partition. The
//! shard holds the [`TxnTable`]; this module names nothing of the shard.
//! Writing markers needs the other shards, so the parent module hands each
//! coordinator a [`MarkerWriter`] when it opens it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use corelog_coordination::codes;
use corelog_coordination::txn::records::{decode_txn_log_batches, encode_txn_log_batches};
use corelog_coordination::{
    MarkerWriteId, ReplyId, TransactionCoordinator, TxnConfig, TxnInput, TxnOutput, TxnRequest,
    TxnResponse, WriteId,
};
use corelog_runtime::notify::Doorbell;
use corelog_runtime::now_ms;
use corelog_storage::{Offset, RecordLimits, StorageError, ValidBatch};
use futures_lite::FutureExt;

use crate::coordinators::table::CoordinatorTable;
use crate::partition::{Acks, DeleteUpTo, Isolation, Partition};
use crate::{ProducerEpoch, ProducerId, TopicPartition};

/// The largest batch the coordinator appends.
const TXN_BATCH_BYTES_MAX: usize = 512 << 10;

/// Bytes read per step when rebuilding a coordinator from its log.
const LOAD_READ_BYTES: usize = 1 << 20;

/// The longest the timer sleeps without looking again.
const TIMER_SLEEP_MAX_MS: i64 = 1_000;

/// What a handler gets back: the coordinator's answer, or an error code for
/// the whole request (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ...).
pub type TxnReply = Result<TxnResponse, i16>;

/// One WriteTxnMarkers a coordinator asked for.
#[derive(Debug, Clone)]
pub struct MarkerJob {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// Writes a marker job's control batches on the partitions' owners and
/// answers each partition's error code (0: durable there).
pub type MarkerWriter =
    Rc<dyn Fn(MarkerJob) -> Pin<Box<dyn Future<Output = Vec<(TopicPartition, i16)>>>>>;

/// One transaction state partition's coordinator and its log.
pub struct TxnPartition {
    index: u32,
    machine: RefCell<TransactionCoordinator>,
    log: Partition,
    markers: MarkerWriter,
    waiters: RefCell<HashMap<ReplyId, futures_channel::oneshot::Sender<TxnReply>>>,
    next_reply: Cell<u64>,
    timer: Doorbell,
    closed: Cell<bool>,
}

/// The transaction coordinators of the state partitions one shard owns,
/// by partition. Lives on: that shard.
pub type TxnTable = CoordinatorTable<TxnPartition>;

/// Rebuilds a coordinator from its log: every record from the log start
/// to the committed end, in order. Returns it with the outputs of
/// `finish_load` (markers of transactions that were being completed).
pub(super) async fn load(
    log: &Partition,
    config: TxnConfig,
) -> Result<(TransactionCoordinator, Vec<TxnOutput>), String> {
    // The state log's leader epoch is the coordinator epoch its markers
    // carry: a coordinator of a later leadership fences an older one's.
    let mut machine = TransactionCoordinator::new(config, log.leader_epoch().0);
    log.committed(log.end_commit_point())
        .await
        .map_err(|e| format!("the log's end was not committed: {e:?}"))?;
    let bounds = log.bounds();
    let (mut offset, end) = (bounds.log_start_offset, bounds.high_watermark);
    let mut skipped = 0usize;
    while offset < end {
        let (_, plan) = log.plan_read(offset, LOAD_READ_BYTES, Isolation::ReadUncommitted);
        let plan = plan.map_err(|e| e.to_string())?;
        let chunks = plan.execute().await.map_err(|e| e.to_string())?;
        if chunks.is_empty() {
            break;
        }
        let bytes = Bytes::from(chunks.to_vec());
        for (at, record) in decode_txn_log_batches(bytes)? {
            if at < offset.0 {
                continue;
            }
            match record {
                Ok(r) => machine.load(r),
                Err(_) => skipped += 1,
            }
        }
        offset = chunks.next_offset;
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "transaction log records that did not parse were skipped"
        );
    }
    let outputs = machine.finish_load(now_ms());
    Ok((machine, outputs))
}

impl TxnPartition {
    /// Wraps a coordinator rebuilt from `log`, which it owns, starts its
    /// timer and carries out what loading asked for.
    pub(super) fn start(
        index: u32,
        machine: TransactionCoordinator,
        outputs: Vec<TxnOutput>,
        log: Partition,
        markers: MarkerWriter,
    ) -> Rc<TxnPartition> {
        let tp = Rc::new(TxnPartition {
            index,
            machine: RefCell::new(machine),
            log,
            markers,
            waiters: RefCell::new(HashMap::new()),
            next_reply: Cell::new(0),
            timer: Doorbell::default(),
            closed: Cell::new(false),
        });
        glommio::spawn_local(run_timer(tp.clone())).detach();
        tp.perform(outputs);
        tp
    }

    /// How many transactional ids this coordinator holds.
    pub fn transactional_id_count(&self) -> usize {
        self.machine.borrow().transactional_id_count()
    }

    /// Hands `request` to the coordinator and waits for its answer.
    pub(super) async fn submit(self: &Rc<Self>, request: TxnRequest) -> TxnReply {
        if self.closed.get() {
            return Err(codes::NOT_COORDINATOR);
        }
        let id = ReplyId(self.next_reply.get());
        self.next_reply.set(id.0 + 1);
        let (tx, rx) = futures_channel::oneshot::channel();
        self.waiters.borrow_mut().insert(id, tx);
        let outputs = self
            .machine
            .borrow_mut()
            .step(now_ms(), TxnInput::Request(id, Box::new(request)));
        self.perform(outputs);
        self.timer.ring();
        rx.await.unwrap_or(Err(codes::NOT_COORDINATOR))
    }

    /// Stops the timer and flushes the log.
    pub(super) async fn close(&self) {
        self.closed.set(true);
        self.timer.ring();
        self.fail_owed();
        self.log.close().await;
    }

    fn fail_owed(&self) {
        let _ = self.machine.borrow_mut().fail_pending();
        for (_, tx) in self.waiters.borrow_mut().drain() {
            let _ = tx.send(Err(codes::NOT_COORDINATOR));
        }
    }

    fn perform(self: &Rc<Self>, outputs: Vec<TxnOutput>) {
        for output in outputs {
            match output {
                TxnOutput::Reply(id, response) => {
                    if let Some(tx) = self.waiters.borrow_mut().remove(&id) {
                        let _ = tx.send(Ok(response));
                    }
                }
                TxnOutput::Append {
                    write,
                    records,
                    compacts,
                } => {
                    let batches = encode_txn_log_batches(&records, now_ms(), TXN_BATCH_BYTES_MAX);
                    self.append(write, batches, compacts);
                }
                TxnOutput::WriteMarkers {
                    id,
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                    commit,
                    partitions,
                } => {
                    tracing::debug!(
                        partition = self.index,
                        %transactional_id,
                        %producer_id,
                        commit,
                        partitions = partitions.len(),
                        "writing transaction markers"
                    );
                    self.write_markers(
                        id,
                        MarkerJob {
                            producer_id,
                            producer_epoch,
                            coordinator_epoch,
                            commit,
                            partitions,
                        },
                    );
                }
            }
        }
    }

    /// Appends a write's batches and steps the machine with `AppendDone`
    /// once they are durable, or `AppendFailed` if they will never be.
    fn append(self: &Rc<Self>, write: WriteId, batches: Vec<Bytes>, compacts: bool) {
        let mut first: Option<Offset> = None;
        let mut commit = self.log.end_commit_point();
        let end_before = self.log.log_end_offset();
        for batch in batches {
            // The coordinator's own batches are checked like any other.
            let checked =
                ValidBatch::new(batch, &RecordLimits::default()).map_err(StorageError::from);
            match checked.and_then(|b| self.log.append(b, Acks::All)) {
                Ok(appended) => {
                    first.get_or_insert(appended.base_offset);
                    commit = appended.commit;
                }
                Err(e) => {
                    tracing::error!(partition = self.index, error = %e, "transaction log append failed");
                    let outputs = self
                        .machine
                        .borrow_mut()
                        .step(now_ms(), TxnInput::AppendFailed(write));
                    self.perform(outputs);
                    return;
                }
            }
        }
        let first = DeleteUpTo::Offset(first.unwrap_or(end_before));
        let tp = self.clone();
        glommio::spawn_local(async move {
            let done = tp.log.committed(commit).await;
            if tp.closed.get() {
                return;
            }
            let input = match done {
                Ok(()) => {
                    if compacts {
                        // The snapshot holds the whole live state: what
                        // came before it is superseded.
                        let _ = tp.log.delete_records(first);
                    }
                    TxnInput::AppendDone(write)
                }
                Err(e) => {
                    tracing::error!(partition = tp.index, error = ?e, "transaction log write failed");
                    TxnInput::AppendFailed(write)
                }
            };
            let outputs = tp.machine.borrow_mut().step(now_ms(), input);
            tp.perform(outputs);
        })
        .detach();
    }

    /// Writes a marker job through the shards that own its partitions and
    /// reports the outcome to the machine.
    fn write_markers(self: &Rc<Self>, id: MarkerWriteId, job: MarkerJob) {
        let tp = self.clone();
        glommio::spawn_local(async move {
            let results = (tp.markers)(job).await;
            if tp.closed.get() {
                return;
            }
            let outputs = tp
                .machine
                .borrow_mut()
                .step(now_ms(), TxnInput::MarkersDone(id, results));
            tp.perform(outputs);
            tp.timer.ring();
        })
        .detach();
    }
}

/// Wakes the coordinator at its next deadline (transaction timeouts, id
/// expiration, marker retries) and feeds it a tick.
async fn run_timer(tp: Rc<TxnPartition>) {
    loop {
        if tp.closed.get() {
            return;
        }
        let now = now_ms();
        let deadline = tp.machine.borrow().next_deadline_ms();
        let wait_ms = deadline.map_or(TIMER_SLEEP_MAX_MS, |d| {
            d.saturating_sub(now).clamp(0, TIMER_SLEEP_MAX_MS)
        });
        if wait_ms > 0 {
            let sleep = async {
                glommio::timer::sleep(Duration::from_millis(wait_ms as u64)).await;
            };
            sleep.or(tp.timer.wait()).await;
            continue;
        }
        let outputs = tp.machine.borrow_mut().step(now_ms(), TxnInput::Tick);
        tp.perform(outputs);
        if tp
            .machine
            .borrow()
            .next_deadline_ms()
            .is_some_and(|d| d <= now)
        {
            // A deadline the tick did not clear must not spin the shard.
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}
