//! Kafka error codes the coordinator answers with.

use corelog_protocol::ResponseError as E;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = E::UnknownServerError.code();
pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = E::CoordinatorLoadInProgress.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = E::UnknownTopicOrPartition.code();
pub const INVALID_REQUEST: i16 = E::InvalidRequest.code();
pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
pub const GROUP_MAX_SIZE_REACHED: i16 = E::GroupMaxSizeReached.code();
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = E::GroupSubscribedToTopic.code();
pub const FENCED_MEMBER_EPOCH: i16 = E::FencedMemberEpoch.code();
pub const UNRELEASED_INSTANCE_ID: i16 = E::UnreleasedInstanceId.code();
pub const UNSUPPORTED_ASSIGNOR: i16 = E::UnsupportedAssignor.code();
pub const STALE_MEMBER_EPOCH: i16 = E::StaleMemberEpoch.code();
pub const INVALID_REGULAR_EXPRESSION: i16 = E::InvalidRegularExpression.code();
pub const UNSTABLE_OFFSET_COMMIT: i16 = E::UnstableOffsetCommit.code();
pub const INVALID_PRODUCER_EPOCH: i16 = E::InvalidProducerEpoch.code();
