//! Kafka's transaction coordinator as a sans-io state machine.
//!
//! Lives on: the shard owning one partition of the internal
//! `__transaction_state` log; one [`TransactionCoordinator`] per partition,
//! holding every transactional id that hashes to it
//! ([`txn_partition_for`]). The server feeds it [`TxnInput`]s and carries
//! out the [`TxnOutput`]s: appends to the state log, replies, and
//! WriteTxnMarkers to partition leaders. It never reads a clock, a socket
//! or a file.
//!
//! It follows Kafka's `TransactionCoordinator`, `TransactionMetadata` and
//! `TransactionStateManager` (transaction version 1, i.e. before KIP-890
//! part 2's per-transaction epoch bumps; KIP-890 part 1's verification is
//! [`TxnRequest::VerifyPartitions`]). Every transition is appended to the
//! log first and becomes the current state only once durable
//! ([`TxnInput::AppendDone`]); until then the id has a pending transition
//! (Kafka's `pendingState`) and other requests for it are answered
//! CONCURRENT_TRANSACTIONS.

mod coordinator;
pub mod records;

use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

pub use crate::coordinator::{ReplyId, WriteId};
pub use coordinator::{
    TransactionCoordinator, ADD_PARTITIONS_HELD_PER_ID_MAX, ADD_PARTITIONS_WAIT_MAX_MS,
    APPEND_FAILED_ERROR, MARKER_RETRY_BACKOFF_MS, REMOVE_EXPIRED_CHECK_INTERVAL_MS,
    TRANSACTIONAL_IDS_FULL, TXN_PARTITIONS_FULL,
};
pub use records::{TxnLogRecord, TxnState, TxnTopic, TxnValue};

/// The transaction-log partition a transactional id's coordinator lives
/// on: Kafka's rule (`abs(transactionalId.hashCode) % partitions`), the same
/// as for group ids.
pub fn txn_partition_for(transactional_id: &str, partitions: u32) -> u32 {
    crate::offsets_partition_for(transactional_id, partitions)
}

/// Identifies one WriteTxnMarkers the coordinator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkerWriteId(pub u64);

/// Broker settings the coordinator applies (Kafka's `transaction.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_timed_out_check_interval_ms: i64,
    /// The most transactional ids one coordinator holds: a named bound
    /// (Kafka has none). InitProducerId for a new id past it is answered
    /// [`TRANSACTIONAL_IDS_FULL`].
    pub transactional_ids_max: usize,
    /// The most partitions in one transaction: a named bound (Kafka has
    /// none). AddPartitions past it is answered [`TXN_PARTITIONS_FULL`].
    pub partitions_per_txn_max: usize,
    /// Log bytes written since the last snapshot before the live state is
    /// rewritten as a compacting append.
    pub snapshot_min_bytes: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how
    /// often ids are checked for expiration. (Added to the brief's fields.)
    pub remove_expired_check_interval_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
            abort_timed_out_check_interval_ms: 10_000,
            transactional_ids_max: 100_000,
            partitions_per_txn_max: 10_000,
            snapshot_min_bytes: 16 << 20,
            remove_expired_check_interval_ms: REMOVE_EXPIRED_CHECK_INTERVAL_MS,
        }
    }
}

#[derive(Debug, Clone)]
pub enum TxnInput {
    /// A request; its reply comes back as a [`TxnOutput::Reply`] with the
    /// same id, now or in a later step.
    Request(ReplyId, Box<TxnRequest>),
    /// The records of this append are durable. Every append is answered by
    /// exactly one `AppendDone` or `AppendFailed` naming it.
    AppendDone(WriteId),
    /// The append failed: the in-memory transitions it carried are rolled
    /// back and their requests answered [`APPEND_FAILED_ERROR`]. The records
    /// may or may not have reached the log; either is safe (the machine
    /// acts on a transition only once it is acknowledged durable, and a
    /// later record for the id supersedes it).
    AppendFailed(WriteId),
    /// The outcome of a [`TxnOutput::WriteMarkers`], per partition: 0
    /// written, or an error code. Retriable errors are retried after
    /// [`MARKER_RETRY_BACKOFF_MS`]; UNKNOWN_TOPIC_OR_PARTITION (the topic
    /// was deleted) counts as done. A partition of the write missing from
    /// the list counts as a retriable failure.
    MarkersDone(MarkerWriteId, Vec<(TopicPartition, i16)>),
    /// Time passed: abort timed-out transactions, expire ids, retry markers.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutput {
    Reply(ReplyId, TxnResponse),
    /// Append these records to the transaction log, in order, and report
    /// [`TxnInput::AppendDone`] or [`TxnInput::AppendFailed`]. With
    /// `compacts`, the records are the whole live state: once durable,
    /// every record before the first of them may be dropped.
    Append {
        write: WriteId,
        records: Vec<TxnLogRecord>,
        compacts: bool,
    },
    /// Write COMMIT/ABORT control batches to these partitions (Kafka's
    /// WriteTxnMarkers), then report [`TxnInput::MarkersDone`].
    WriteMarkers {
        id: MarkerWriteId,
        transactional_id: String,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        coordinator_epoch: i32,
        commit: bool,
        partitions: Vec<TopicPartition>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRequest {
    /// `fresh_producer_id` is allocated by the server before the call; it
    /// is used when a new id is needed (first init, epoch exhaustion),
    /// ignored otherwise. `expected`: KIP-360's producer id and epoch
    /// (InitProducerId v3+); the server passes None for (-1, -1).
    InitProducerId {
        transactional_id: String,
        transaction_timeout_ms: i32,
        expected: Option<(ProducerId, ProducerEpoch)>,
        fresh_producer_id: ProducerId,
    },
    AddPartitions {
        transactional_id: String,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        partitions: Vec<TopicPartition>,
    },
    /// KIP-890 verification by a partition leader: is `partition` in this
    /// producer's ongoing transaction? Answers per partition without
    /// changing anything.
    VerifyPartitions {
        transactional_id: String,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        partitions: Vec<TopicPartition>,
    },
    EndTxn {
        transactional_id: String,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        commit: bool,
    },
    Describe {
        transactional_ids: Vec<String>,
    },
    /// ListTransactions v0/v1 filters: empty lists filter nothing;
    /// `duration_ms` -1 filters nothing, otherwise only transactions
    /// started more than that long ago are listed.
    List {
        states: Vec<String>,
        producer_ids: Vec<ProducerId>,
        duration_ms: i64,
    },
}

/// Fencing errors are PRODUCER_FENCED; the server answers
/// INVALID_PRODUCER_EPOCH instead to InitProducerId v0-3,
/// AddPartitionsToTxn v0-1 and EndTxn v0-1, as Kafka's `KafkaApis` does
/// (those versions predate the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResponse {
    /// On an error, producer id -1 and epoch -1.
    InitProducerId {
        error: i16,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
    },
    AddPartitions {
        results: Vec<(TopicPartition, i16)>,
    },
    VerifyPartitions {
        results: Vec<(TopicPartition, i16)>,
    },
    EndTxn {
        error: i16,
    },
    Describe {
        states: Vec<TxnDescription>,
    },
    /// `error`: COORDINATOR_LOAD_IN_PROGRESS before the load is over, else
    /// NONE. `unknown_state_filters`: state filters that name no state
    /// (Kafka's `UnknownStateFilters`). (Both fields added to the brief's
    /// shape.)
    List {
        error: i16,
        states: Vec<TxnListing>,
        unknown_state_filters: Vec<String>,
    },
}

/// One id of a DescribeTransactions answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    /// TRANSACTIONAL_ID_NOT_FOUND for an unknown id (the other fields are
    /// then empty, -1 or 0).
    pub error: i16,
    pub state: String,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub partitions: Vec<TopicPartition>,
}

/// One transaction of a ListTransactions answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub state: String,
}
