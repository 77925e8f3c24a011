//! The server's error type, and the one place where a failure becomes the
//! Kafka error code a client is sent.

use std::sync::Arc;

use corelog_protocol::error_code as ec;
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_storage::batch::BatchError;
use corelog_storage::producer::SequenceError;
use corelog_storage::StorageError;

/// A failure above the storage layer, as handlers report it: its Kafka
/// error code is [`ServerError::code`] and the text a response carries is
/// [`ServerError::message`] (its `Display`). The admin APIs' variants hold
/// Kafka's own messages, so a client reads what a Kafka broker would say.
///
/// Cloneable, because a refusal of a whole request answers every entry
/// with it; the errors without `Clone` are held in an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(Arc<StorageError>),
    /// UNKNOWN_TOPIC_OR_PARTITION, with what is unknown.
    #[error("{0}")]
    UnknownTopicOrPartition(String),
    /// UNKNOWN_TOPIC_ID, with the id.
    #[error("Topic id {0} does not exist.")]
    UnknownTopicId(String),
    /// The shard that owns the partition stopped before it answered.
    #[error("the partition's owner is not serving it")]
    NotLeaderOrFollower,
    /// TOPIC_ALREADY_EXISTS, with the topic's name.
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// INVALID_TOPIC_EXCEPTION: a name Kafka does not allow.
    #[error("{0}")]
    InvalidTopic(String),
    /// INVALID_PARTITIONS: a partition count out of bounds.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT: a manual assignment this broker cannot
    /// follow.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// INVALID_CONFIG: a topic config's key or value (`key` is empty when
    /// the settings fail together).
    #[error("{message}")]
    InvalidConfig { key: String, message: String },
    /// INVALID_REQUEST: a request, or one of its entries, the broker
    /// refuses as asked (duplicates, bounds, unsupported resources).
    #[error("{0}")]
    InvalidRequest(String),
    /// Cluster metadata could not be committed (the data directory's
    /// metadata file could not be written).
    #[error("committing cluster metadata: {0}")]
    MetadataCommit(Arc<std::io::Error>),
    /// The metadata quorum's controller refused a change, or could not be
    /// reached (cluster mode): its Kafka code and message.
    #[error("{message}")]
    Controller { code: i16, message: String },
    /// The active controller could not be reached before the request's
    /// deadline (no quorum leader, the leader's listener unreachable, a bad
    /// answer): REQUEST_TIMED_OUT, as Kafka answers a forwarded request that
    /// times out. The cause is the cluster module's `ForwardError`, held as
    /// a trait object because this module sits below `cluster` (which
    /// imports it through `metadata`) and may not name it.
    #[error("the metadata quorum's controller could not be reached: {0}")]
    ControllerUnreachable(Arc<dyn std::error::Error + Send + Sync>),
    /// A failure the client can do nothing about (UNKNOWN_SERVER_ERROR):
    /// a metadata change run off the controller shard, the controller
    /// shard gone.
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for ServerError {
    fn from(e: StorageError) -> ServerError {
        ServerError::Storage(Arc::new(e))
    }
}

impl ServerError {
    /// The Kafka error code a client gets for this failure.
    pub fn code(&self) -> i16 {
        match self {
            ServerError::Storage(e) => storage_code(e),
            ServerError::UnknownTopicOrPartition(_) => ec::UNKNOWN_TOPIC_OR_PARTITION,
            ServerError::UnknownTopicId(_) => ec::UNKNOWN_TOPIC_ID,
            ServerError::NotLeaderOrFollower => ec::NOT_LEADER_OR_FOLLOWER,
            ServerError::TopicAlreadyExists(_) => ec::TOPIC_ALREADY_EXISTS,
            ServerError::InvalidTopic(_) => ec::INVALID_TOPIC_EXCEPTION,
            ServerError::InvalidPartitions(_) => ec::INVALID_PARTITIONS,
            ServerError::InvalidReplicationFactor(_) => ec::INVALID_REPLICATION_FACTOR,
            ServerError::InvalidReplicaAssignment(_) => ec::INVALID_REPLICA_ASSIGNMENT,
            ServerError::InvalidConfig { .. } => ec::INVALID_CONFIG,
            ServerError::InvalidRequest(_) => ec::INVALID_REQUEST,
            ServerError::Controller { code, .. } => *code,
            ServerError::ControllerUnreachable(_) => ec::REQUEST_TIMED_OUT,
            ServerError::MetadataCommit(_) | ServerError::Internal(_) => ec::UNKNOWN_SERVER_ERROR,
        }
    }

    /// The error message a response carries for this failure.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// [`Self::message`] as a response field holds it.
    pub fn message_field(&self) -> Option<StrBytes> {
        Some(StrBytes::from_string(self.message()))
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
        StorageError::Batch(
            BatchError::DecompressedTooLarge { .. } | BatchError::ConversionTooLarge { .. },
        ) => ec::MESSAGE_TOO_LARGE,
        StorageError::Batch(BatchError::UnsupportedCodec(_)) => ec::UNSUPPORTED_COMPRESSION_TYPE,
        StorageError::Batch(b) if b.is_corruption() => ec::CORRUPT_MESSAGE,
        StorageError::Batch(_) => ec::INVALID_RECORD,
        // Kafka's log validator: "Compacted topic cannot accept message
        // without key".
        StorageError::KeylessRecordInCompactedLog { .. } => ec::INVALID_RECORD,
        StorageError::BatchTooLarge { .. } => ec::RECORD_LIST_TOO_LARGE,
        StorageError::OffsetOutOfRange { .. } => ec::OFFSET_OUT_OF_RANGE,
        StorageError::Io { .. } | StorageError::Corrupt { .. } => ec::KAFKA_STORAGE_ERROR,
        StorageError::Config(_) => ec::INVALID_CONFIG,
        StorageError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ec::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        StorageError::Sequence(SequenceError::StaleEpoch { .. }) => ec::INVALID_PRODUCER_EPOCH,
        // Only a follower's replication appends these, and it answers no
        // client; Kafka's follower treats both as its own problem to fix
        // (truncate, fetch again).
        StorageError::ReplicaOffsetMismatch { .. } => ec::OFFSET_OUT_OF_RANGE,
        StorageError::ReplicaEpochBehind { .. } => ec::FENCED_LEADER_EPOCH,
        // Transaction markers (WriteTxnMarkers): Kafka answers an older
        // producer epoch with INVALID_PRODUCER_EPOCH.
        StorageError::ProducerFenced { .. } => ec::INVALID_PRODUCER_EPOCH,
        StorageError::CoordinatorFenced { .. } => {
            corelog_protocol::ResponseError::TransactionCoordinatorFenced.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A controller out of reach is a timeout to the client, whatever the
    /// cause, and the message says why.
    #[test]
    fn an_unreachable_controller_is_request_timed_out() {
        let cause = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = ServerError::ControllerUnreachable(Arc::new(cause));
        assert_eq!(e.code(), ec::REQUEST_TIMED_OUT);
        assert!(
            e.message()
                .starts_with("the metadata quorum's controller could not be reached: "),
            "{}",
            e.message()
        );
    }
}
