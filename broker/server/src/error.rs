//! The server's error type, and the one place where a failure becomes the
//! Kafka error code a client is sent.

use corelog_protocol::error_code as ec;
use corelog_storage::batch::BatchError;
use corelog_storage::producer::SequenceError;
use corelog_storage::StorageError;

/// A failure above the storage layer, as handlers report it.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The shard that owns the partition stopped before it answered.
    #[error("the partition's owner is not serving it")]
    NotLeaderOrFollower,
    /// Cluster metadata could not be committed (the data directory's
    /// metadata file could not be written).
    #[error("committing cluster metadata: {0}")]
    MetadataCommit(std::io::Error),
    /// A metadata change ran somewhere it cannot (not on the controller).
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    /// The Kafka error code a client gets for this failure.
    pub fn code(&self) -> i16 {
        match self {
            ServerError::Storage(e) => storage_code(e),
            ServerError::UnknownTopicOrPartition => ec::UNKNOWN_TOPIC_OR_PARTITION,
            ServerError::NotLeaderOrFollower => ec::NOT_LEADER_OR_FOLLOWER,
            ServerError::MetadataCommit(_) | ServerError::Internal(_) => ec::UNKNOWN_SERVER_ERROR,
        }
    }
}

impl ServerError {
    /// The code of a storage error, without taking it.
    pub fn code_of_storage(e: &StorageError) -> i16 {
        storage_code(e)
    }
}

fn storage_code(e: &StorageError) -> i16 {
    match e {
        // The Java producer splits a batch it is told is too large.
        StorageError::Batch(BatchError::DecompressedTooLarge { .. }) => ec::MESSAGE_TOO_LARGE,
        StorageError::Batch(b) if b.is_corruption() => ec::CORRUPT_MESSAGE,
        StorageError::Batch(_) => ec::INVALID_RECORD,
        StorageError::BatchTooLarge { .. } => ec::RECORD_LIST_TOO_LARGE,
        StorageError::OffsetOutOfRange { .. } => ec::OFFSET_OUT_OF_RANGE,
        StorageError::Io { .. } | StorageError::Corrupt { .. } => ec::KAFKA_STORAGE_ERROR,
        StorageError::Config(_) => ec::INVALID_CONFIG,
        StorageError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ec::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        StorageError::Sequence(SequenceError::StaleEpoch { .. }) => ec::INVALID_PRODUCER_EPOCH,
    }
}
