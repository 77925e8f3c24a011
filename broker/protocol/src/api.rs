//! The table of apis and versions the broker implements.
//!
//! [`SUPPORTED_APIS`] is the one place that says which versions of which api
//! this crate decodes. The server filters it down to the apis it has handlers
//! for and builds its ApiVersions response from the result
//! ([`crate::api_versions_response`]), so what is advertised can never be more
//! than what can be decoded.

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::Message;

/// One api and the inclusive range of versions the broker implements for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The api.
    pub api_key: ApiKey,
    /// Lowest supported version.
    pub min_version: i16,
    /// Highest supported version.
    pub max_version: i16,
}

impl ApiSupport {
    /// Whether `version` lies in this entry's range.
    pub const fn contains(&self, version: i16) -> bool {
        self.min_version <= version && version <= self.max_version
    }
}

/// Finds the entry for `api_key` in `table`.
pub fn find_api_support(table: &[ApiSupport], api_key: ApiKey) -> Option<&ApiSupport> {
    table.iter().find(|entry| entry.api_key == api_key)
}

/// Builds a table entry, checking at compile time that the range is not empty
/// and that kafka-protocol can decode the request and encode the response at
/// every version in it.
macro_rules! supported {
    ($key:ident, $request:ty, $response:ty, $min:literal ..= $max:literal) => {{
        const ENTRY: ApiSupport = ApiSupport {
            api_key: ApiKey::$key,
            min_version: $min,
            max_version: $max,
        };
        const _: () = {
            assert!(ENTRY.min_version <= ENTRY.max_version);
            assert!(<$request as Message>::VERSIONS.min <= ENTRY.min_version);
            assert!(ENTRY.max_version <= <$request as Message>::VERSIONS.max);
            assert!(<$response as Message>::VERSIONS.min <= ENTRY.min_version);
            assert!(ENTRY.max_version <= <$response as Message>::VERSIONS.max);
        };
        ENTRY
    }};
}

/// The apis and versions this crate decodes and encodes.
///
/// Where kafka-protocol 0.18 goes further, the range stops at the version
/// whose semantics the broker implements first:
/// - Metadata stops at 12; v13 adds a top-level error code for KIP-1102
///   rebootstrapping.
/// - Produce starts at 3, the first version that carries only magic v2 record
///   batches, and stops at 11; v12 implies KIP-890 transaction semantics and
///   v13 addresses topics by id.
/// - Fetch starts at 4, the first version that returns record batches, and
///   stops at 16; v13 onwards addresses topics by id, which the broker must
///   resolve. The fetch response writer itself handles v4 to v18.
/// - ListOffsets stops at 8; v9 and v10 add KIP-1005 and KIP-1075 semantics.
/// - DescribeCluster stops at 1; v2 adds fenced-broker listing.
/// - InitProducerId stops at 5, the highest request version kafka-protocol
///   knows (its response goes to 6).
/// - The group apis cover every request version kafka-protocol knows:
///   OffsetCommit stops at 9 and OffsetFetch at 9 although their responses go
///   to 10; OffsetCommit starts at 2 and OffsetFetch at 1, the lowest
///   versions kafka-protocol has.
///
/// Raising a maximum is a one-line change here; the compile-time checks in
/// `supported!` reject ranges kafka-protocol cannot handle, and the request
/// pre-check in `precheck.rs` already covers every version kafka-protocol
/// decodes.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    supported!(ApiVersions, ApiVersionsRequest, ApiVersionsResponse, 0..=4),
    supported!(Metadata, MetadataRequest, MetadataResponse, 0..=12),
    supported!(Produce, ProduceRequest, ProduceResponse, 3..=11),
    supported!(Fetch, FetchRequest, FetchResponse, 4..=16),
    supported!(ListOffsets, ListOffsetsRequest, ListOffsetsResponse, 1..=8),
    supported!(
        CreateTopics,
        CreateTopicsRequest,
        CreateTopicsResponse,
        2..=7
    ),
    supported!(
        DeleteTopics,
        DeleteTopicsRequest,
        DeleteTopicsResponse,
        1..=6
    ),
    supported!(
        CreatePartitions,
        CreatePartitionsRequest,
        CreatePartitionsResponse,
        0..=3
    ),
    supported!(
        DescribeConfigs,
        DescribeConfigsRequest,
        DescribeConfigsResponse,
        1..=4
    ),
    supported!(
        AlterConfigs,
        AlterConfigsRequest,
        AlterConfigsResponse,
        0..=2
    ),
    supported!(
        IncrementalAlterConfigs,
        IncrementalAlterConfigsRequest,
        IncrementalAlterConfigsResponse,
        0..=1
    ),
    supported!(
        DeleteRecords,
        DeleteRecordsRequest,
        DeleteRecordsResponse,
        0..=2
    ),
    supported!(
        DescribeCluster,
        DescribeClusterRequest,
        DescribeClusterResponse,
        0..=1
    ),
    supported!(
        InitProducerId,
        InitProducerIdRequest,
        InitProducerIdResponse,
        0..=5
    ),
    supported!(
        FindCoordinator,
        FindCoordinatorRequest,
        FindCoordinatorResponse,
        0..=6
    ),
    supported!(JoinGroup, JoinGroupRequest, JoinGroupResponse, 0..=9),
    supported!(SyncGroup, SyncGroupRequest, SyncGroupResponse, 0..=5),
    supported!(Heartbeat, HeartbeatRequest, HeartbeatResponse, 0..=4),
    supported!(LeaveGroup, LeaveGroupRequest, LeaveGroupResponse, 0..=5),
    supported!(
        OffsetCommit,
        OffsetCommitRequest,
        OffsetCommitResponse,
        2..=9
    ),
    supported!(OffsetFetch, OffsetFetchRequest, OffsetFetchResponse, 1..=9),
    supported!(ListGroups, ListGroupsRequest, ListGroupsResponse, 0..=5),
    supported!(
        DescribeGroups,
        DescribeGroupsRequest,
        DescribeGroupsResponse,
        0..=6
    ),
    supported!(
        DeleteGroups,
        DeleteGroupsRequest,
        DeleteGroupsResponse,
        0..=2
    ),
    supported!(
        OffsetDelete,
        OffsetDeleteRequest,
        OffsetDeleteResponse,
        0..=0
    ),
    supported!(
        ConsumerGroupHeartbeat,
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupHeartbeatResponse,
        0..=1
    ),
    supported!(
        ConsumerGroupDescribe,
        ConsumerGroupDescribeRequest,
        ConsumerGroupDescribeResponse,
        0..=1
    ),
];

/// The ApiVersions entry of [`SUPPORTED_APIS`], which the KIP-511 answer to an
/// unsupported ApiVersions version advertises.
pub const API_VERSIONS_SUPPORT: ApiSupport = SUPPORTED_APIS[0];

const _: () = assert!(matches!(API_VERSIONS_SUPPORT.api_key, ApiKey::ApiVersions));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique() {
        for (i, a) in SUPPORTED_APIS.iter().enumerate() {
            for b in &SUPPORTED_APIS[i + 1..] {
                assert_ne!(a.api_key, b.api_key);
            }
        }
    }

    #[test]
    fn lookup() {
        let fetch = find_api_support(SUPPORTED_APIS, ApiKey::Fetch).unwrap();
        assert!(fetch.contains(4) && fetch.contains(16));
        assert!(!fetch.contains(3) && !fetch.contains(17));
        let join = find_api_support(SUPPORTED_APIS, ApiKey::JoinGroup).unwrap();
        assert!(join.contains(0) && join.contains(9) && !join.contains(10));
        assert!(find_api_support(SUPPORTED_APIS, ApiKey::TxnOffsetCommit).is_none());
    }
}
