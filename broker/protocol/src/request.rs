//! Typed request decoding.

use bytes::Bytes;
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest,
    ConsumerGroupHeartbeatRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::Decodable;

use crate::api::{find_api_support, ApiSupport, SUPPORTED_APIS};
use crate::errors::ProtocolError;
use crate::header::RequestHeader;
use crate::precheck::precheck_request;

/// A decoded request of one of the supported apis.
///
/// The structs are kafka-protocol's. They hold every field of every version;
/// fields the request's version does not carry have their schema defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// ApiVersions.
    ApiVersions(ApiVersionsRequest),
    /// Metadata.
    Metadata(MetadataRequest),
    /// Produce. See [`crate::produce`] for the zero-copy guarantee on records.
    Produce(ProduceRequest),
    /// Fetch.
    Fetch(FetchRequest),
    /// ListOffsets.
    ListOffsets(ListOffsetsRequest),
    /// CreateTopics.
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsRequest),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsRequest),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsRequest),
    /// AlterConfigs.
    AlterConfigs(AlterConfigsRequest),
    /// IncrementalAlterConfigs.
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    /// DeleteRecords.
    DeleteRecords(DeleteRecordsRequest),
    /// DescribeCluster.
    DescribeCluster(DescribeClusterRequest),
    /// InitProducerId.
    InitProducerId(InitProducerIdRequest),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorRequest),
    /// JoinGroup. Each protocol's `metadata` is a slice of the frame.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup. Each member's `assignment` is a slice of the frame.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// ListGroups.
    ListGroups(ListGroupsRequest),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsRequest),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsRequest),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteRequest),
    /// ConsumerGroupHeartbeat.
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    /// ConsumerGroupDescribe.
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
}

impl Request {
    /// The api of this request.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Self::ApiVersions(_) => ApiKey::ApiVersions,
            Self::Metadata(_) => ApiKey::Metadata,
            Self::Produce(_) => ApiKey::Produce,
            Self::Fetch(_) => ApiKey::Fetch,
            Self::ListOffsets(_) => ApiKey::ListOffsets,
            Self::CreateTopics(_) => ApiKey::CreateTopics,
            Self::DeleteTopics(_) => ApiKey::DeleteTopics,
            Self::CreatePartitions(_) => ApiKey::CreatePartitions,
            Self::DescribeConfigs(_) => ApiKey::DescribeConfigs,
            Self::AlterConfigs(_) => ApiKey::AlterConfigs,
            Self::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
            Self::DeleteRecords(_) => ApiKey::DeleteRecords,
            Self::DescribeCluster(_) => ApiKey::DescribeCluster,
            Self::InitProducerId(_) => ApiKey::InitProducerId,
            Self::FindCoordinator(_) => ApiKey::FindCoordinator,
            Self::JoinGroup(_) => ApiKey::JoinGroup,
            Self::SyncGroup(_) => ApiKey::SyncGroup,
            Self::Heartbeat(_) => ApiKey::Heartbeat,
            Self::LeaveGroup(_) => ApiKey::LeaveGroup,
            Self::OffsetCommit(_) => ApiKey::OffsetCommit,
            Self::OffsetFetch(_) => ApiKey::OffsetFetch,
            Self::ListGroups(_) => ApiKey::ListGroups,
            Self::DescribeGroups(_) => ApiKey::DescribeGroups,
            Self::DeleteGroups(_) => ApiKey::DeleteGroups,
            Self::OffsetDelete(_) => ApiKey::OffsetDelete,
            Self::ConsumerGroupHeartbeat(_) => ApiKey::ConsumerGroupHeartbeat,
            Self::ConsumerGroupDescribe(_) => ApiKey::ConsumerGroupDescribe,
        }
    }
}

/// Decodes a request body against [`SUPPORTED_APIS`].
///
/// `body` is the rest of the frame after [`crate::decode_request_header`].
/// Errors mean the connection must be closed, except for an ApiVersions
/// request with an unsupported version, for which
/// [`ProtocolError::error_response`] returns the answer Kafka gives.
pub fn decode_request(header: &RequestHeader, body: Bytes) -> Result<Request, ProtocolError> {
    decode_request_with(SUPPORTED_APIS, header, body)
}

/// Decodes a request body against `table`, typically [`SUPPORTED_APIS`]
/// filtered down to the apis the server has handlers for, so that a request
/// for an api or version the server does not advertise is refused the same way
/// as one this crate cannot decode.
///
/// Entries of `table` for apis this crate has no [`Request`] variant for are
/// refused with [`ProtocolError::UnsupportedApi`].
pub fn decode_request_with(
    table: &[ApiSupport],
    header: &RequestHeader,
    body: Bytes,
) -> Result<Request, ProtocolError> {
    let api_key = header.api_key;
    let version = header.api_version;
    let correlation_id = header.correlation_id;
    let Some(support) = find_api_support(table, api_key) else {
        return Err(ProtocolError::UnsupportedApi {
            api_key,
            api_version: version,
            correlation_id,
        });
    };
    if !support.contains(version) {
        // For ApiVersions the server answers this error instead of closing;
        // see ProtocolError::error_response. Like Kafka, the body of a request
        // with an unknown version is not looked at.
        return Err(ProtocolError::UnsupportedVersion {
            api_key,
            api_version: version,
            correlation_id,
        });
    }
    let malformed = |reason: String| ProtocolError::MalformedRequest {
        api_key,
        api_version: version,
        correlation_id,
        reason,
    };

    // The structural check must pass before kafka-protocol sees the body,
    // because kafka-protocol preallocates arrays from lengths on the wire.
    precheck_request(api_key, version, &body).map_err(|reason| malformed(reason.to_owned()))?;

    // Decoding from `Bytes` makes every byte string (records included) a
    // slice of `body`, which is itself a slice of the read buffer.
    let mut buf = body;
    let request = match api_key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(&mut buf, version).map(Request::ApiVersions)
        }
        ApiKey::Metadata => MetadataRequest::decode(&mut buf, version).map(Request::Metadata),
        ApiKey::Produce => ProduceRequest::decode(&mut buf, version).map(Request::Produce),
        ApiKey::Fetch => FetchRequest::decode(&mut buf, version).map(Request::Fetch),
        ApiKey::ListOffsets => {
            ListOffsetsRequest::decode(&mut buf, version).map(Request::ListOffsets)
        }
        ApiKey::CreateTopics => {
            CreateTopicsRequest::decode(&mut buf, version).map(Request::CreateTopics)
        }
        ApiKey::DeleteTopics => {
            DeleteTopicsRequest::decode(&mut buf, version).map(Request::DeleteTopics)
        }
        ApiKey::CreatePartitions => {
            CreatePartitionsRequest::decode(&mut buf, version).map(Request::CreatePartitions)
        }
        ApiKey::DescribeConfigs => {
            DescribeConfigsRequest::decode(&mut buf, version).map(Request::DescribeConfigs)
        }
        ApiKey::AlterConfigs => {
            AlterConfigsRequest::decode(&mut buf, version).map(Request::AlterConfigs)
        }
        ApiKey::IncrementalAlterConfigs => {
            IncrementalAlterConfigsRequest::decode(&mut buf, version)
                .map(Request::IncrementalAlterConfigs)
        }
        ApiKey::DeleteRecords => {
            DeleteRecordsRequest::decode(&mut buf, version).map(Request::DeleteRecords)
        }
        ApiKey::DescribeCluster => {
            DescribeClusterRequest::decode(&mut buf, version).map(Request::DescribeCluster)
        }
        ApiKey::InitProducerId => {
            InitProducerIdRequest::decode(&mut buf, version).map(Request::InitProducerId)
        }
        ApiKey::FindCoordinator => {
            FindCoordinatorRequest::decode(&mut buf, version).map(Request::FindCoordinator)
        }
        ApiKey::JoinGroup => JoinGroupRequest::decode(&mut buf, version).map(Request::JoinGroup),
        ApiKey::SyncGroup => SyncGroupRequest::decode(&mut buf, version).map(Request::SyncGroup),
        ApiKey::Heartbeat => HeartbeatRequest::decode(&mut buf, version).map(Request::Heartbeat),
        ApiKey::LeaveGroup => LeaveGroupRequest::decode(&mut buf, version).map(Request::LeaveGroup),
        ApiKey::OffsetCommit => {
            OffsetCommitRequest::decode(&mut buf, version).map(Request::OffsetCommit)
        }
        ApiKey::OffsetFetch => {
            OffsetFetchRequest::decode(&mut buf, version).map(Request::OffsetFetch)
        }
        ApiKey::ListGroups => ListGroupsRequest::decode(&mut buf, version).map(Request::ListGroups),
        ApiKey::DescribeGroups => {
            DescribeGroupsRequest::decode(&mut buf, version).map(Request::DescribeGroups)
        }
        ApiKey::DeleteGroups => {
            DeleteGroupsRequest::decode(&mut buf, version).map(Request::DeleteGroups)
        }
        ApiKey::OffsetDelete => {
            OffsetDeleteRequest::decode(&mut buf, version).map(Request::OffsetDelete)
        }
        ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::decode(&mut buf, version)
            .map(Request::ConsumerGroupHeartbeat),
        ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::decode(&mut buf, version)
            .map(Request::ConsumerGroupDescribe),
        // The pre-check already refused every other api; this arm keeps the
        // match total without a panic.
        _ => {
            return Err(ProtocolError::UnsupportedApi {
                api_key,
                api_version: version,
                correlation_id,
            })
        }
    }
    .map_err(|e| malformed(e.to_string()))?;

    // Bytes after the last field are ignored, as Kafka's parser does (see
    // the pre-check): librdkafka 2.x sends some after Metadata v12.
    let _ = buf;
    Ok(request)
}

/// Whether an ApiVersions request's client software name and version are
/// acceptable, as Kafka checks them from v3 on (KIP-511): each must match
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`. Kafka does not close the
/// connection for an invalid one; it answers with an ApiVersions response of
/// the request's version carrying INVALID_REQUEST.
pub fn api_versions_request_is_valid(request: &ApiVersionsRequest, version: i16) -> bool {
    version < 3
        || (is_valid_software_token(&request.client_software_name)
            && is_valid_software_token(&request.client_software_version))
}

fn is_valid_software_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn request(name: &'static str, version: &'static str) -> ApiVersionsRequest {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(name))
            .with_client_software_version(StrBytes::from_static_str(version))
    }

    #[test]
    fn client_software_validation_matches_kafka() {
        assert!(api_versions_request_is_valid(
            &request("librdkafka", "2.3.0"),
            3
        ));
        assert!(api_versions_request_is_valid(
            &request("apache-kafka-java", "3.7.0"),
            4
        ));
        assert!(api_versions_request_is_valid(&request("a", "1"), 3));
        assert!(!api_versions_request_is_valid(&request("", "1"), 3));
        assert!(!api_versions_request_is_valid(
            &request("kafka python", "2.0"),
            3
        ));
        assert!(!api_versions_request_is_valid(&request("-x", "1"), 3));
        assert!(!api_versions_request_is_valid(&request("x", "1."), 3));
        assert!(api_versions_request_is_valid(&request("", ""), 2));
    }
}
