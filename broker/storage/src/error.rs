//! Typed storage errors. The server maps each to the Kafka error code a client expects.

use std::path::PathBuf;

use crate::batch::BatchError;
use crate::types::{Offset, ProducerEpoch, ProducerId};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The batch failed validation; nothing was appended.
    /// Kafka: CORRUPT_MESSAGE or INVALID_RECORD (see [`BatchError::is_corruption`]).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The batch is larger than a segment can hold. Kafka: RECORD_LIST_TOO_LARGE.
    #[error("batch of {batch_bytes} bytes exceeds segment.bytes {segment_bytes_max}")]
    BatchTooLarge {
        batch_bytes: usize,
        segment_bytes_max: u64,
    },
    /// Read below the log start or past the log end. Kafka: OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    /// A write, sync or read failed (EIO, ENOSPC, ...). Kafka: KAFKA_STORAGE_ERROR.
    /// Unflushed appends were discarded; the log stays readable and accepts
    /// appends again once the disk does.
    #[error("{op} failed on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Data that was flushed and checkpointed does not validate. Reported
    /// loudly with file and position; never skipped.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// An idempotent producer's batch is out of sequence or from a stale
    /// epoch. Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH.
    #[error(transparent)]
    Sequence(#[from] crate::producer::SequenceError),
    /// A batch for a log whose `cleanup.policy` includes compact holds
    /// records without a key, which compaction cannot place; nothing was
    /// appended. Kafka: INVALID_RECORD (87), as Kafka's log validator
    /// refuses them ("Compacted topic cannot accept message without key").
    #[error("{keyless_records} record(s) without a key in a batch for a compacted log")]
    KeylessRecordInCompactedLog { keyless_records: usize },
    /// A setting is invalid.
    #[error("invalid log config: {0}")]
    Config(String),
    /// A replicated batch (a follower's append) does not start at the log
    /// end. Offsets have no gaps until compaction exists, so the follower
    /// and its leader disagree; the follower must truncate or re-fetch.
    #[error("replicated batch starts at {base}, the log ends at {log_end}")]
    ReplicaOffsetMismatch { base: Offset, log_end: Offset },
    /// A replicated batch carries a leader epoch older than the log's
    /// latest: the follower is fetching from a deposed leader's view.
    #[error("replicated batch of leader epoch {epoch} after epoch {latest}")]
    ReplicaEpochBehind { epoch: i32, latest: i32 },
    /// A transaction marker from a producer epoch older than the
    /// producer's current one; nothing was appended. Kafka:
    /// PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for clients before it).
    #[error(
        "marker for producer {producer_id} epoch {epoch} is older than the current epoch {current}"
    )]
    ProducerFenced {
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        current: ProducerEpoch,
    },
    /// A transaction marker from a coordinator epoch older than the last
    /// marker's for the producer (a deposed coordinator); nothing was
    /// appended. Kafka: TRANSACTION_COORDINATOR_FENCED.
    #[error("marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, after epoch {last}")]
    CoordinatorFenced {
        producer_id: ProducerId,
        coordinator_epoch: i32,
        last: i32,
    },
}

impl From<crate::producer::MarkerError> for StorageError {
    fn from(e: crate::producer::MarkerError) -> Self {
        use crate::producer::MarkerError;
        match e {
            MarkerError::ProducerFenced {
                producer_id,
                epoch,
                current,
            } => StorageError::ProducerFenced {
                producer_id,
                epoch,
                current,
            },
            MarkerError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                last,
            } => StorageError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                last,
            },
        }
    }
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the disk is full, so that callers can report it as such.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
