//! Typed response encoding, and the ApiVersions responses built from the
//! support table.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    AlterConfigsResponse, ApiKey, ApiVersionsResponse, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatResponse, CreatePartitionsResponse, CreateTopicsResponse,
    DeleteGroupsResponse, DeleteRecordsResponse, DeleteTopicsResponse, DescribeClusterResponse,
    DescribeConfigsResponse, DescribeGroupsResponse, FetchResponse, FindCoordinatorResponse,
    HeartbeatResponse, IncrementalAlterConfigsResponse, InitProducerIdResponse, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse, MetadataResponse,
    OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse, ProduceResponse,
    SyncGroupResponse,
};
use kafka_protocol::protocol::Encodable;

use crate::api::{ApiSupport, API_VERSIONS_SUPPORT};
use crate::errors::{error_code, ProtocolError};
use crate::frame::SIZE_PREFIX_BYTES;

/// A response of one of the supported apis.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Response {
    /// ApiVersions.
    ApiVersions(ApiVersionsResponse),
    /// Metadata.
    Metadata(MetadataResponse),
    /// Produce.
    Produce(ProduceResponse),
    /// Fetch. This copies the record bytes into the response buffer; the
    /// fetch path should use [`crate::FetchResponseWriter`], which does not.
    Fetch(FetchResponse),
    /// ListOffsets.
    ListOffsets(ListOffsetsResponse),
    /// CreateTopics.
    CreateTopics(CreateTopicsResponse),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsResponse),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsResponse),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsResponse),
    /// AlterConfigs.
    AlterConfigs(AlterConfigsResponse),
    /// IncrementalAlterConfigs.
    IncrementalAlterConfigs(IncrementalAlterConfigsResponse),
    /// DeleteRecords.
    DeleteRecords(DeleteRecordsResponse),
    /// DescribeCluster.
    DescribeCluster(DescribeClusterResponse),
    /// InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorResponse),
    /// JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchResponse),
    /// ListGroups.
    ListGroups(ListGroupsResponse),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsResponse),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsResponse),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteResponse),
    /// ConsumerGroupHeartbeat.
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse),
    /// ConsumerGroupDescribe.
    ConsumerGroupDescribe(ConsumerGroupDescribeResponse),
}

impl Response {
    /// The api of this response.
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

    /// Encodes the body. kafka-protocol reports failures as `anyhow::Error`;
    /// only their text is kept, so this crate does not depend on anyhow.
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), String> {
        match self {
            Self::ApiVersions(r) => r.encode(buf, version),
            Self::Metadata(r) => r.encode(buf, version),
            Self::Produce(r) => r.encode(buf, version),
            Self::Fetch(r) => r.encode(buf, version),
            Self::ListOffsets(r) => r.encode(buf, version),
            Self::CreateTopics(r) => r.encode(buf, version),
            Self::DeleteTopics(r) => r.encode(buf, version),
            Self::CreatePartitions(r) => r.encode(buf, version),
            Self::DescribeConfigs(r) => r.encode(buf, version),
            Self::AlterConfigs(r) => r.encode(buf, version),
            Self::IncrementalAlterConfigs(r) => r.encode(buf, version),
            Self::DeleteRecords(r) => r.encode(buf, version),
            Self::DescribeCluster(r) => r.encode(buf, version),
            Self::InitProducerId(r) => r.encode(buf, version),
            Self::FindCoordinator(r) => r.encode(buf, version),
            Self::JoinGroup(r) => r.encode(buf, version),
            Self::SyncGroup(r) => r.encode(buf, version),
            Self::Heartbeat(r) => r.encode(buf, version),
            Self::LeaveGroup(r) => r.encode(buf, version),
            Self::OffsetCommit(r) => r.encode(buf, version),
            Self::OffsetFetch(r) => r.encode(buf, version),
            Self::ListGroups(r) => r.encode(buf, version),
            Self::DescribeGroups(r) => r.encode(buf, version),
            Self::DeleteGroups(r) => r.encode(buf, version),
            Self::OffsetDelete(r) => r.encode(buf, version),
            Self::ConsumerGroupHeartbeat(r) => r.encode(buf, version),
            Self::ConsumerGroupDescribe(r) => r.encode(buf, version),
        }
        .map_err(|e| e.to_string())
    }
}

/// Encodes a complete response frame: the 4-byte size prefix, the response
/// header and the body, ready to be written to the socket.
///
/// The header is v0 (correlation id only) or, for flexible versions, v1 (with
/// an empty tagged-field section), as kafka-protocol's
/// `ApiKey::response_header_version` says. ApiVersions responses always use
/// header v0, so that a client can read the answer whatever version it asked
/// for.
///
/// `api_key` must be the api of `response`; it is passed separately so that
/// the server states which request it is answering, and a mix-up is an error
/// rather than a wrong frame on the wire.
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    response: &Response,
) -> Result<BytesMut, ProtocolError> {
    let response_api_key = response.api_key();
    if response_api_key != api_key {
        return Err(ProtocolError::ResponseMismatch {
            api_key,
            response_api_key,
        });
    }
    let encode_error = |reason: String| ProtocolError::Encode {
        api_key,
        api_version,
        reason,
    };
    let header_version = api_key.response_header_version(api_version);

    let mut buf = BytesMut::with_capacity(64);
    // The size is not known until the body is written; reserve its place.
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        // An empty tagged-field section: no response header tags are defined.
        buf.put_u8(0);
    }
    response
        .encode_body(&mut buf, api_version)
        .map_err(encode_error)?;

    let size = i32::try_from(buf.len() - SIZE_PREFIX_BYTES)
        .map_err(|_| encode_error("response exceeds i32::MAX bytes".to_owned()))?;
    buf[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Builds the ApiVersions response body that advertises `table`, which the
/// server passes after filtering [`crate::SUPPORTED_APIS`] down to the apis it
/// has handlers for. Throttle time and feature fields are left at their
/// defaults for the server to fill in.
pub fn api_versions_response(table: &[ApiSupport]) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code::NONE)
        .with_api_keys(table.iter().map(api_version_entry).collect())
}

fn api_version_entry(support: &ApiSupport) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(support.api_key as i16)
        .with_min_version(support.min_version)
        .with_max_version(support.max_version)
}

/// Length of the KIP-511 answer: size prefix, correlation id, error code,
/// array length and one (api key, min, max) entry.
const UNSUPPORTED_API_VERSIONS_FRAME_BYTES: usize = 4 + 4 + 2 + 4 + 6;

/// The complete frame Kafka sends for an ApiVersions request whose version it
/// does not support (KIP-511).
///
/// Kafka parses such a request as ApiVersions v0 and answers with a v0
/// response (header v0): error code UNSUPPORTED_VERSION and an api_keys array
/// holding only the ApiVersions entry with the broker's range, so that the
/// client can retry with the highest version both sides know. Written by hand
/// because it cannot fail and is sent on the error path.
pub fn encode_unsupported_api_versions_response(correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::with_capacity(UNSUPPORTED_API_VERSIONS_FRAME_BYTES);
    buf.put_i32((UNSUPPORTED_API_VERSIONS_FRAME_BYTES - SIZE_PREFIX_BYTES) as i32);
    buf.put_i32(correlation_id);
    buf.put_i16(error_code::UNSUPPORTED_VERSION);
    buf.put_i32(1);
    buf.put_i16(ApiKey::ApiVersions as i16);
    buf.put_i16(API_VERSIONS_SUPPORT.min_version);
    buf.put_i16(API_VERSIONS_SUPPORT.max_version);
    buf
}
