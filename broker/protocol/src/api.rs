//! The table of apis and versions the broker implements.
//!
//! [`for_each_api!`](crate::for_each_api) is the one list of apis: each entry
//! names the api key, its snake-case name, the kafka-protocol request and
//! response types and the versions the broker implements. Everything that
//! used to be kept in step by hand follows from it:
//!
//! - in this crate, [`SUPPORTED_APIS`] (with compile-time checks that
//!   kafka-protocol handles every listed version), the [`crate::Request`] and
//!   [`crate::Response`] enums, their decode and encode matches, and the choice
//!   of request pre-check (`precheck::walk::<name>`, which must exist);
//! - in the server, the dispatch to `handlers::<name>::handle`, and the
//!   ApiVersions answer, which advertises [`SUPPORTED_APIS`] as it is.
//!
//! What is advertised therefore is exactly what is decoded and handled.

use kafka_protocol::messages::ApiKey;
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

/// Calls the macro `$callback` with the table of apis, one entry per api:
///
/// ```text
/// Key(snake_name): KeyRequest => KeyResponse, min..=max;
/// ```
///
/// `Key` is the [`ApiKey`] variant and the name of the [`crate::Request`] and
/// [`crate::Response`] variants; `snake_name` names the request's pre-check
/// walker in this crate and the handler module in the server; the request and
/// response types are kafka-protocol's (in `kafka_protocol::messages`); the
/// range is the inclusive range of versions the broker implements, decodes
/// and advertises. The order of entries is the order ApiVersions lists them
/// in, and ApiVersions must stay first ([`API_VERSIONS_SUPPORT`]).
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
/// - ListOffsets stops at 7: v7 adds the max-timestamp query (-3); v8 adds
///   tiered-storage queries (-4, -5), which have no meaning without tiered
///   storage, and v9 and v10 add KIP-1005 and KIP-1075 semantics.
/// - DescribeCluster stops at 1; v2 adds fenced-broker listing.
/// - InitProducerId stops at 5, the highest request version kafka-protocol
///   knows (its response goes to 6).
/// - The group apis cover every request version kafka-protocol knows:
///   OffsetCommit stops at 9 and OffsetFetch at 9 although their responses go
///   to 10; OffsetCommit starts at 2 and OffsetFetch at 1, the lowest
///   versions kafka-protocol has.
///
/// Raising a maximum is a one-line change here; the compile-time checks in
/// [`SUPPORTED_APIS`] reject ranges kafka-protocol cannot handle, and the
/// request pre-check already covers every version kafka-protocol decodes.
///
/// Adding an api is one entry here, a walker `precheck::walk::<snake_name>`
/// in this crate and a handler file `handlers/<snake_name>.rs` in the server;
/// a missing walker or handler fails to compile.
///
/// The callback is a `macro_rules!` macro in scope where `for_each_api!` is
/// called; it receives the entries in the syntax above, and typically
/// matches them with
/// `$($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*`.
#[macro_export]
macro_rules! for_each_api {
    ($callback:ident) => {
        $callback! {
            ApiVersions(api_versions): ApiVersionsRequest => ApiVersionsResponse, 0..=4;
            Metadata(metadata): MetadataRequest => MetadataResponse, 0..=12;
            Produce(produce): ProduceRequest => ProduceResponse, 3..=11;
            Fetch(fetch): FetchRequest => FetchResponse, 4..=16;
            ListOffsets(list_offsets): ListOffsetsRequest => ListOffsetsResponse, 1..=7;
            CreateTopics(create_topics): CreateTopicsRequest => CreateTopicsResponse, 2..=7;
            InitProducerId(init_producer_id): InitProducerIdRequest => InitProducerIdResponse, 0..=5;
            DeleteTopics(delete_topics): DeleteTopicsRequest => DeleteTopicsResponse, 1..=6;
            CreatePartitions(create_partitions): CreatePartitionsRequest => CreatePartitionsResponse, 0..=3;
            DescribeConfigs(describe_configs): DescribeConfigsRequest => DescribeConfigsResponse, 1..=4;
            AlterConfigs(alter_configs): AlterConfigsRequest => AlterConfigsResponse, 0..=2;
            IncrementalAlterConfigs(incremental_alter_configs): IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse, 0..=1;
            DeleteRecords(delete_records): DeleteRecordsRequest => DeleteRecordsResponse, 0..=2;
            DescribeCluster(describe_cluster): DescribeClusterRequest => DescribeClusterResponse, 0..=1;
            // Consumer groups: the classic protocol in every version clients
            // use, and KIP-848's consumer protocol.
            FindCoordinator(find_coordinator): FindCoordinatorRequest => FindCoordinatorResponse, 0..=6;
            JoinGroup(join_group): JoinGroupRequest => JoinGroupResponse, 0..=9;
            SyncGroup(sync_group): SyncGroupRequest => SyncGroupResponse, 0..=5;
            Heartbeat(heartbeat): HeartbeatRequest => HeartbeatResponse, 0..=4;
            LeaveGroup(leave_group): LeaveGroupRequest => LeaveGroupResponse, 0..=5;
            OffsetCommit(offset_commit): OffsetCommitRequest => OffsetCommitResponse, 2..=9;
            OffsetFetch(offset_fetch): OffsetFetchRequest => OffsetFetchResponse, 1..=9;
            ListGroups(list_groups): ListGroupsRequest => ListGroupsResponse, 0..=5;
            DescribeGroups(describe_groups): DescribeGroupsRequest => DescribeGroupsResponse, 0..=6;
            DeleteGroups(delete_groups): DeleteGroupsRequest => DeleteGroupsResponse, 0..=2;
            OffsetDelete(offset_delete): OffsetDeleteRequest => OffsetDeleteResponse, 0..=0;
            ConsumerGroupHeartbeat(consumer_group_heartbeat): ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse, 0..=1;
            ConsumerGroupDescribe(consumer_group_describe): ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse, 0..=1;
        }
    };
}

/// Builds [`SUPPORTED_APIS`] from the table, checking at compile time that
/// each range is not empty and that kafka-protocol can decode the request and
/// encode the response at every version in it.
macro_rules! supported_apis {
    ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// The apis and versions the broker implements, in the order of
        /// [`for_each_api!`](crate::for_each_api), which is what it advertises.
        pub const SUPPORTED_APIS: &[ApiSupport] = &[$(
            {
                const ENTRY: ApiSupport = ApiSupport {
                    api_key: ApiKey::$key,
                    min_version: $min,
                    max_version: $max,
                };
                const _: () = {
                    use kafka_protocol::messages::{$request, $response};
                    assert!(ENTRY.min_version <= ENTRY.max_version);
                    assert!(<$request as Message>::VERSIONS.min <= ENTRY.min_version);
                    assert!(ENTRY.max_version <= <$request as Message>::VERSIONS.max);
                    assert!(<$response as Message>::VERSIONS.min <= ENTRY.min_version);
                    assert!(ENTRY.max_version <= <$response as Message>::VERSIONS.max);
                };
                ENTRY
            },
        )*];
    };
}

crate::for_each_api!(supported_apis);

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
