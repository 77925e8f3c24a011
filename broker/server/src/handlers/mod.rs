//! One file per Kafka API. Each handler takes the decoded request and
//! returns what to send back.

use std::rc::Rc;

use bytes::Bytes;
use corelog_protocol::kafka_protocol::messages::ApiKey;
use corelog_protocol::{encode_response, ApiSupport, Request, RequestHeader, Response};

use crate::conn::Close;
use crate::shard::Shard;

pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
mod group_common;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

/// The APIs and versions this broker implements and advertises. Each entry
/// lies within what the protocol crate can decode and encode.
pub const SERVER_APIS: &[ApiSupport] = &[
    ApiSupport {
        api_key: ApiKey::ApiVersions,
        min_version: 0,
        max_version: 4,
    },
    ApiSupport {
        api_key: ApiKey::Metadata,
        min_version: 0,
        max_version: 12,
    },
    ApiSupport {
        api_key: ApiKey::Produce,
        min_version: 3,
        max_version: 11,
    },
    ApiSupport {
        api_key: ApiKey::Fetch,
        min_version: 4,
        max_version: 16,
    },
    // Version 7 adds the max-timestamp query (-3); 8 adds tiered-storage
    // queries (-4, -5), which have no meaning without tiered storage.
    ApiSupport {
        api_key: ApiKey::ListOffsets,
        min_version: 1,
        max_version: 7,
    },
    ApiSupport {
        api_key: ApiKey::CreateTopics,
        min_version: 2,
        max_version: 7,
    },
    ApiSupport {
        api_key: ApiKey::InitProducerId,
        min_version: 0,
        max_version: 5,
    },
    ApiSupport {
        api_key: ApiKey::DeleteTopics,
        min_version: 1,
        max_version: 6,
    },
    ApiSupport {
        api_key: ApiKey::CreatePartitions,
        min_version: 0,
        max_version: 3,
    },
    ApiSupport {
        api_key: ApiKey::DescribeConfigs,
        min_version: 1,
        max_version: 4,
    },
    ApiSupport {
        api_key: ApiKey::AlterConfigs,
        min_version: 0,
        max_version: 2,
    },
    ApiSupport {
        api_key: ApiKey::IncrementalAlterConfigs,
        min_version: 0,
        max_version: 1,
    },
    ApiSupport {
        api_key: ApiKey::DeleteRecords,
        min_version: 0,
        max_version: 2,
    },
    ApiSupport {
        api_key: ApiKey::DescribeCluster,
        min_version: 0,
        max_version: 1,
    },
    // Consumer groups: the classic protocol in every version clients use,
    // and KIP-848's consumer protocol.
    ApiSupport {
        api_key: ApiKey::FindCoordinator,
        min_version: 0,
        max_version: 6,
    },
    ApiSupport {
        api_key: ApiKey::JoinGroup,
        min_version: 0,
        max_version: 9,
    },
    ApiSupport {
        api_key: ApiKey::SyncGroup,
        min_version: 0,
        max_version: 5,
    },
    ApiSupport {
        api_key: ApiKey::Heartbeat,
        min_version: 0,
        max_version: 4,
    },
    ApiSupport {
        api_key: ApiKey::LeaveGroup,
        min_version: 0,
        max_version: 5,
    },
    ApiSupport {
        api_key: ApiKey::OffsetCommit,
        min_version: 2,
        max_version: 9,
    },
    ApiSupport {
        api_key: ApiKey::OffsetFetch,
        min_version: 1,
        max_version: 9,
    },
    ApiSupport {
        api_key: ApiKey::ListGroups,
        min_version: 0,
        max_version: 5,
    },
    ApiSupport {
        api_key: ApiKey::DescribeGroups,
        min_version: 0,
        max_version: 6,
    },
    ApiSupport {
        api_key: ApiKey::DeleteGroups,
        min_version: 0,
        max_version: 2,
    },
    ApiSupport {
        api_key: ApiKey::OffsetDelete,
        min_version: 0,
        max_version: 0,
    },
    ApiSupport {
        api_key: ApiKey::ConsumerGroupHeartbeat,
        min_version: 0,
        max_version: 1,
    },
    ApiSupport {
        api_key: ApiKey::ConsumerGroupDescribe,
        min_version: 0,
        max_version: 1,
    },
];

/// What a handler answers.
pub enum Reply {
    /// Nothing is sent (Produce with acks=0).
    None,
    Bytes(Bytes),
    /// A response in pieces, for a vectored write (Fetch), with the part of
    /// its connection's `fetch_response_bytes_per_connection_max` that it
    /// holds until it is written.
    Segments(Vec<Bytes>, glommio::sync::StaticPermit),
}

/// Handles one request. `client_host` is the peer as Kafka reports it in
/// group descriptions ("/127.0.0.1"); `fetch_budget` is the connection's
/// bound on Fetch response bytes not yet written.
pub async fn dispatch(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    client_host: &str,
    fetch_budget: &Rc<glommio::sync::Semaphore>,
    request: Request,
) -> Result<Reply, Close> {
    let response = match request {
        Request::ApiVersions(r) => api_versions::handle(header, r),
        Request::Metadata(r) => Response::Metadata(metadata::handle(shard, header, r).await),
        Request::Produce(r) => match produce::handle(shard, header, r).await {
            Some(resp) => Response::Produce(resp),
            None => return Ok(Reply::None),
        },
        Request::Fetch(r) => {
            return fetch::handle(shard, header, fetch_budget, r)
                .await
                .map(|(segments, permit)| Reply::Segments(segments, permit))
        }
        Request::ListOffsets(r) => {
            Response::ListOffsets(list_offsets::handle(shard, header, r).await)
        }
        Request::CreateTopics(r) => {
            Response::CreateTopics(create_topics::handle(shard, header, r).await)
        }
        Request::DeleteTopics(r) => {
            Response::DeleteTopics(delete_topics::handle(shard, header, r).await)
        }
        Request::CreatePartitions(r) => {
            Response::CreatePartitions(create_partitions::handle(shard, header, r).await)
        }
        Request::DescribeConfigs(r) => {
            Response::DescribeConfigs(describe_configs::handle(shard, header, r).await)
        }
        Request::AlterConfigs(r) => {
            Response::AlterConfigs(alter_configs::handle(shard, header, r).await)
        }
        Request::IncrementalAlterConfigs(r) => Response::IncrementalAlterConfigs(
            incremental_alter_configs::handle(shard, header, r).await,
        ),
        Request::DeleteRecords(r) => {
            Response::DeleteRecords(delete_records::handle(shard, header, r).await)
        }
        Request::DescribeCluster(r) => {
            Response::DescribeCluster(describe_cluster::handle(shard, header, r).await)
        }
        Request::InitProducerId(r) => {
            Response::InitProducerId(init_producer_id::handle(shard, r).await)
        }
        Request::FindCoordinator(r) => {
            Response::FindCoordinator(find_coordinator::handle(shard, header, r))
        }
        Request::JoinGroup(r) => {
            Response::JoinGroup(join_group::handle(shard, header, client_host, r).await)
        }
        Request::SyncGroup(r) => Response::SyncGroup(sync_group::handle(shard, header, r).await),
        Request::Heartbeat(r) => Response::Heartbeat(heartbeat::handle(shard, r).await),
        Request::LeaveGroup(r) => Response::LeaveGroup(leave_group::handle(shard, header, r).await),
        Request::OffsetCommit(r) => Response::OffsetCommit(offset_commit::handle(shard, r).await),
        Request::OffsetFetch(r) => {
            Response::OffsetFetch(offset_fetch::handle(shard, header, r).await)
        }
        Request::ListGroups(r) => Response::ListGroups(list_groups::handle(shard, header, r).await),
        Request::DescribeGroups(r) => {
            Response::DescribeGroups(describe_groups::handle(shard, header, r).await)
        }
        Request::DeleteGroups(r) => Response::DeleteGroups(delete_groups::handle(shard, r).await),
        Request::OffsetDelete(r) => Response::OffsetDelete(offset_delete::handle(shard, r).await),
        Request::ConsumerGroupHeartbeat(r) => Response::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(shard, header, client_host, r).await,
        ),
        Request::ConsumerGroupDescribe(r) => {
            Response::ConsumerGroupDescribe(consumer_group_describe::handle(shard, r).await)
        }
        other => {
            return Err(Close {
                reason: format!("{:?} is not implemented", other.api_key()),
                final_bytes: None,
            });
        }
    };
    encode(header, &response)
}

pub fn encode(header: &RequestHeader, response: &Response) -> Result<Reply, Close> {
    encode_response(
        header.api_key,
        header.api_version,
        header.correlation_id,
        response,
    )
    .map(|b| Reply::Bytes(b.freeze()))
    .map_err(|e| Close {
        reason: format!("encoding response: {e}"),
        final_bytes: None,
    })
}

/// The error code a storage error becomes.
pub fn storage_error_code(e: &corelog_storage::StorageError) -> i16 {
    use corelog_protocol::error_code as ec;
    use corelog_storage::StorageError as S;
    match e {
        S::Batch(b) if b.is_corruption() => ec::CORRUPT_MESSAGE,
        S::Batch(_) => ec::INVALID_RECORD,
        S::BatchTooLarge { .. } => ec::RECORD_LIST_TOO_LARGE,
        S::OffsetOutOfRange { .. } => ec::OFFSET_OUT_OF_RANGE,
        S::Io { .. } | S::Corrupt { .. } => ec::KAFKA_STORAGE_ERROR,
        S::Config(_) => ec::INVALID_CONFIG,
        S::Sequence(corelog_storage::producer::SequenceError::OutOfOrder { .. }) => {
            ec::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        S::Sequence(corelog_storage::producer::SequenceError::StaleEpoch { .. }) => {
            ec::INVALID_PRODUCER_EPOCH
        }
    }
}
