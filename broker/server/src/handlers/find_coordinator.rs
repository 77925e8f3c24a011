//! FindCoordinator: which broker coordinates a group. On a single node it
//! is always this node, and the shard that runs the group's coordinator is
//! reached over the channel mesh by whichever shard gets the request; in
//! `shard-direct` mode it is that shard's own broker (`crate::endpoints`),
//! so the group's requests reach it without a hop.
//!
//! A transactional id's coordinator is found the same way, on the shard
//! owning its partition of the transaction state log (`crate::txn`); a
//! cluster node does not coordinate transactions yet and answers
//! COORDINATOR_NOT_AVAILABLE. Share groups are not implemented: their key
//! gets INVALID_REQUEST, with a message.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use corelog_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};

use super::group_common::sb;
use super::Close;
use super::{Handled, RequestContext};
use crate::endpoints;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> Result<Handled<FindCoordinatorResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    // A cluster's first FindCoordinator for a group has the offsets topic
    // created through the quorum (as Kafka does), and is answered once its
    // leaders are known, or with COORDINATOR_NOT_AVAILABLE, which clients
    // retry.
    if shard.config().node_id.is_some()
        && request.key_type == KEY_TYPE_GROUP
        && shard.metadata().offsets_leaders.is_empty()
    {
        let _ = shard
            .call(crate::ShardId(0), |s| async move {
                crate::controller::cluster::ensure_offsets_topic(&s).await
            })
            .await;
    }
    // The coordinator of a group, or `None` with the error it gets.
    let answer = |key: &str| -> (i16, Option<String>) {
        match request.key_type {
            KEY_TYPE_GROUP if key.is_empty() => {
                (error_code::INVALID_REQUEST, Some("empty group id".into()))
            }
            KEY_TYPE_GROUP => match crate::groups::cluster_coordinator(shard, key) {
                Err(code) => (
                    code,
                    Some("the group's offsets partition has no leader yet".into()),
                ),
                Ok(_) => (error_code::NONE, None),
            },
            KEY_TYPE_TRANSACTION if key.is_empty() => (
                error_code::INVALID_REQUEST,
                Some("empty transactional id".into()),
            ),
            KEY_TYPE_TRANSACTION if !crate::txn::served_here(shard) => (
                corelog_coordination::codes::COORDINATOR_NOT_AVAILABLE,
                Some("transactions are served by single-node brokers only: the transaction state log is not replicated yet".into()),
            ),
            KEY_TYPE_TRANSACTION => (error_code::NONE, None),
            other => (
                error_code::INVALID_REQUEST,
                Some(format!("coordinator key type {other} is not supported")),
            ),
        }
    };
    if header.api_version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, message) = answer(k);
                let (node, host, port) = coordinator(shard, code, request.key_type, k);
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(node)
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(message.map(sb))
            })
            .collect();
        return Ok(FindCoordinatorResponse::default()
            .with_coordinators(coordinators)
            .into());
    }
    let (code, message) = answer(&request.key);
    let (node, host, port) = coordinator(shard, code, request.key_type, &request.key);
    Ok(FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(sb))
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
        .into())
}

/// Node id, host and port of the broker that coordinates group or
/// transactional id `key`, or Kafka's "none" (-1, "", -1) when the answer
/// is an error.
fn coordinator(
    shard: &crate::shard::Shard,
    code: i16,
    key_type: i8,
    key: &str,
) -> (
    BrokerId,
    corelog_protocol::kafka_protocol::protocol::StrBytes,
    i32,
) {
    if code != error_code::NONE {
        return (BrokerId(-1), sb(String::new()), -1);
    }
    let owner = if key_type == KEY_TYPE_TRANSACTION {
        crate::txn::coordinator_of(shard, key).1
    } else {
        if let Ok(Some(b)) = crate::groups::cluster_coordinator(shard, key) {
            return (BrokerId(b.id), sb(b.host), b.port as i32);
        }
        crate::groups::coordinator_of(shard, key).1
    };
    let e = endpoints::endpoint_of(shard.config(), owner);
    (BrokerId(e.node_id.0), sb(e.host), e.port as i32)
}
