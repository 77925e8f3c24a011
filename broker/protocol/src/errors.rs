//! Errors of the codec layer and the Kafka error codes the broker answers with.
//!
//! Two different things live here. [`ProtocolError`] is what this crate returns
//! when bytes on the wire cannot be turned into a request (or a response cannot
//! be encoded); it tells the server whether the connection has to be closed.
//! [`error_code`] holds the `i16` error codes that go *inside* Kafka responses.
//! Those are taken from `kafka_protocol::ResponseError` rather than typed in
//! again, so that a wrong number cannot slip in.

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;

pub use kafka_protocol::ResponseError;

/// Kafka error codes, as the `i16` values that are written into responses.
///
/// Every constant is derived from [`ResponseError::code`], which is a `const fn`,
/// so these values are checked against the protocol definition at compile time.
pub mod error_code {
    use super::ResponseError;

    /// No error.
    pub const NONE: i16 = 0;
    /// The server hit an error it has no better code for.
    pub const UNKNOWN_SERVER_ERROR: i16 = ResponseError::UnknownServerError.code();
    /// The requested offset is outside the log.
    pub const OFFSET_OUT_OF_RANGE: i16 = ResponseError::OffsetOutOfRange.code();
    /// A record batch failed its CRC or size checks.
    pub const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();
    /// This broker does not host the topic or partition.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
    /// This broker is not the leader (or a follower) for the partition.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = ResponseError::NotLeaderOrFollower.code();
    /// A partition has no live leader.
    pub const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
    /// The request did not complete in time.
    pub const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();
    /// A batch is larger than `max.message.bytes`.
    pub const MESSAGE_TOO_LARGE: i16 = ResponseError::MessageTooLarge.code();
    /// The topic name is invalid.
    pub const INVALID_TOPIC_EXCEPTION: i16 = ResponseError::InvalidTopicException.code();
    /// The batch is larger than a segment.
    pub const RECORD_LIST_TOO_LARGE: i16 = ResponseError::RecordListTooLarge.code();
    /// The produce request used an acks value other than -1, 0 or 1.
    pub const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
    /// A record timestamp is outside the accepted range.
    pub const INVALID_TIMESTAMP: i16 = ResponseError::InvalidTimestamp.code();
    /// The API version is not supported.
    pub const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
    /// The topic already exists.
    pub const TOPIC_ALREADY_EXISTS: i16 = ResponseError::TopicAlreadyExists.code();
    /// The partition count is invalid.
    pub const INVALID_PARTITIONS: i16 = ResponseError::InvalidPartitions.code();
    /// The replication factor is invalid.
    pub const INVALID_REPLICATION_FACTOR: i16 = ResponseError::InvalidReplicationFactor.code();
    /// The replica assignment is invalid.
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
    /// A configuration entry is invalid.
    pub const INVALID_CONFIG: i16 = ResponseError::InvalidConfig.code();
    /// The request is malformed or inconsistent.
    pub const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
    /// The request violates a configured policy.
    pub const POLICY_VIOLATION: i16 = ResponseError::PolicyViolation.code();
    /// The producer sent a sequence number with a gap.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = ResponseError::OutOfOrderSequenceNumber.code();
    /// The producer re-sent a batch the broker already has.
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = ResponseError::DuplicateSequenceNumber.code();
    /// The producer epoch is older than the current one.
    pub const INVALID_PRODUCER_EPOCH: i16 = ResponseError::InvalidProducerEpoch.code();
    /// The transaction timeout exceeds the broker's maximum.
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = ResponseError::InvalidTransactionTimeout.code();
    /// A disk error made the log unavailable.
    pub const KAFKA_STORAGE_ERROR: i16 = ResponseError::KafkaStorageError.code();
    /// The broker has no state for this producer id.
    pub const UNKNOWN_PRODUCER_ID: i16 = ResponseError::UnknownProducerId.code();
    /// The leader epoch in the request is older than the broker's.
    pub const FENCED_LEADER_EPOCH: i16 = ResponseError::FencedLeaderEpoch.code();
    /// The leader epoch in the request is newer than the broker's.
    pub const UNKNOWN_LEADER_EPOCH: i16 = ResponseError::UnknownLeaderEpoch.code();
    /// 19: an `acks=all` produce while the ISR is below min.insync.replicas.
    pub const NOT_ENOUGH_REPLICAS: i16 = ResponseError::NotEnoughReplicas.code();
    /// The client cannot read the partition's compression type.
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = ResponseError::UnsupportedCompressionType.code();
    /// A record failed the broker's validation.
    pub const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();
    /// The producer attempted a transactional operation in an invalid state.
    pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
    /// Topic deletion is disabled on this broker.
    pub const TOPIC_DELETION_DISABLED: i16 = ResponseError::TopicDeletionDisabled.code();
    /// The fetch session id is unknown.
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
    /// The fetch session epoch is wrong.
    pub const INVALID_FETCH_SESSION_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();
    /// This broker does not host the topic id.
    pub const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
    /// The topic id does not match the log's topic id.
    pub const INCONSISTENT_TOPIC_ID: i16 = ResponseError::InconsistentTopicId.code();
    /// The same resource appeared twice in one request.
    pub const DUPLICATE_RESOURCE: i16 = ResponseError::DuplicateResource.code();
}

/// Why bytes from the wire could not be turned into a request, or why a
/// response could not be encoded.
///
/// Decode errors mean the connection must be closed, exactly as Kafka closes it
/// on an `InvalidRequestException`. The one exception is an ApiVersions request
/// with a version this broker does not know: Kafka answers it (KIP-511) so that
/// the client can retry with a version it finds in the answer.
/// [`ProtocolError::error_response`] returns that answer; when it returns
/// `None` the server closes the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The 4-byte size prefix is negative.
    #[error("request size prefix is negative ({size_bytes})")]
    NegativeFrameSize {
        /// The size prefix as read from the wire.
        size_bytes: i32,
    },

    /// The 4-byte size prefix exceeds `request_bytes_max`.
    #[error("request of {size_bytes} bytes exceeds request_bytes_max ({request_bytes_max})")]
    FrameTooLarge {
        /// The size prefix as read from the wire.
        size_bytes: usize,
        /// The configured bound (Kafka's `socket.request.max.bytes`).
        request_bytes_max: usize,
    },

    /// The frame is too short to hold the fixed part of a request header
    /// (api key, api version and correlation id).
    #[error("request frame of {len_bytes} bytes is too short for a request header")]
    HeaderTruncated {
        /// Length of the frame.
        len_bytes: usize,
    },

    /// The api key is not one Kafka defines.
    #[error("unknown api key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        /// The api key as read from the wire.
        api_key: i16,
        /// The api version as read from the wire.
        api_version: i16,
        /// The correlation id as read from the wire.
        correlation_id: i32,
    },

    /// The request header after its fixed part (client id, tagged fields)
    /// is malformed.
    #[error("malformed request header for {api_key:?} v{api_version} (correlation id {correlation_id}): {reason}")]
    MalformedHeader {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
        /// What went wrong.
        reason: String,
    },

    /// The api key is a Kafka api this broker does not implement.
    #[error("api {api_key:?} is not supported (correlation id {correlation_id})")]
    UnsupportedApi {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
    },

    /// The api is implemented, but not at this version.
    #[error("{api_key:?} v{api_version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
    },

    /// The request body does not match the schema of its api and version.
    #[error(
        "malformed {api_key:?} v{api_version} request (correlation id {correlation_id}): {reason}"
    )]
    MalformedRequest {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
        /// What went wrong.
        reason: String,
    },

    /// A response could not be encoded, for example because a field is set
    /// that the version cannot carry.
    #[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
    Encode {
        /// The api key.
        api_key: ApiKey,
        /// The api version.
        api_version: i16,
        /// What went wrong.
        reason: String,
    },

    /// The response passed to `encode_response` belongs to another api.
    #[error("response for {response_api_key:?} passed as a {api_key:?} response")]
    ResponseMismatch {
        /// The api key the caller asked to encode.
        api_key: ApiKey,
        /// The api key of the response value.
        response_api_key: ApiKey,
    },

    /// The fetch response writer was used out of order or with values the
    /// version cannot carry.
    #[error("fetch response writer: {reason}")]
    FetchWriter {
        /// What went wrong.
        reason: String,
    },
}

impl ProtocolError {
    /// The correlation id of the request, when the frame was long enough to
    /// carry one. Useful for logging before the connection is closed.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            Self::UnknownApiKey { correlation_id, .. }
            | Self::MalformedHeader { correlation_id, .. }
            | Self::UnsupportedApi { correlation_id, .. }
            | Self::UnsupportedVersion { correlation_id, .. }
            | Self::MalformedRequest { correlation_id, .. } => Some(*correlation_id),
            _ => None,
        }
    }

    /// The frame to send back before going on with the connection, or `None`
    /// when the connection must be closed.
    ///
    /// Only an ApiVersions request with an unsupported version gets an answer:
    /// Kafka replies with UNSUPPORTED_VERSION and the ApiVersions range it
    /// supports, encoded as an ApiVersions v0 response, because v0 is the one
    /// version every client can read (KIP-511). Every other decode error
    /// closes the connection, as Kafka does.
    pub fn error_response(&self) -> Option<BytesMut> {
        match self {
            Self::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            } => Some(crate::response::encode_unsupported_api_versions_response(
                *correlation_id,
            )),
            _ => None,
        }
    }
}
