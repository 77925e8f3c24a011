//! DescribeCluster: the cluster id, the controller and the one broker.

use corelog_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use corelog_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_protocol::ResponseError;

use super::Close;
use super::{Handled, RequestContext};
use crate::endpoints;
use crate::ShardId;

/// `endpoint_type` 1: brokers (the only kind this node serves).
const ENDPOINT_BROKERS: i8 = 1;

/// Kafka's `AclOperation` codes a cluster resource has; with no authorizer
/// every one of them is allowed.
const CLUSTER_OPERATIONS: [i32; 9] = [
    5,  // CREATE
    7,  // ALTER
    8,  // DESCRIBE
    9,  // CLUSTER_ACTION
    10, // DESCRIBE_CONFIGS
    11, // ALTER_CONFIGS
    12, // IDEMPOTENT_WRITE
    13, // CREATE_TOKENS
    14, // DESCRIBE_TOKENS
];

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> Result<Handled<DescribeClusterResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let md = shard.metadata();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(md.cluster_id.clone()))
        .with_controller_id(BrokerId(endpoints::node_of(shard.config(), ShardId(0)).0));
    if header.api_version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        // Like a Kafka broker, which describes only brokers; controllers are
        // described by a controller.
        return Ok(response
            .with_endpoint_type(request.endpoint_type)
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "The broker does not support endpoint type {}; only brokers (1).",
                request.endpoint_type
            ))))
            .into());
    }
    if request.include_cluster_authorized_operations {
        response = response.with_cluster_authorized_operations(
            CLUSTER_OPERATIONS.iter().fold(0, |bits, op| bits | 1 << op),
        );
    }
    let brokers = endpoints::brokers(shard.config(), &md, shard.shard_count())
        .into_iter()
        .map(|e| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(e.node_id.0))
                .with_host(StrBytes::from_string(e.host))
                .with_port(e.port as i32)
        })
        .collect();
    Ok(response.with_brokers(brokers).into())
}
