//! FindCoordinator: which broker coordinates a group. On a single node it
//! is always this node; the shard that runs the group's coordinator is
//! reached over the channel mesh by whichever shard gets the request.
//!
//! Transactions and share groups are not implemented: their keys get
//! COORDINATOR_NOT_AVAILABLE and INVALID_REQUEST, with a message.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use corelog_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};

use super::group_common::sb;
use super::Close;
use super::{Handled, RequestContext};
use crate::NODE_ID;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> Result<Handled<FindCoordinatorResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let (host, port) = shard.config().advertised();
    let answer = |key: &str| -> (i16, Option<String>) {
        match request.key_type {
            KEY_TYPE_GROUP if key.is_empty() => {
                (error_code::INVALID_REQUEST, Some("empty group id".into()))
            }
            KEY_TYPE_GROUP => (error_code::NONE, None),
            KEY_TYPE_TRANSACTION => (
                corelog_coordination::codes::COORDINATOR_NOT_AVAILABLE,
                Some("transactions are not implemented".into()),
            ),
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
                let ok = code == error_code::NONE;
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(if ok { NODE_ID.0 } else { -1 }))
                    .with_host(sb(if ok { host.clone() } else { String::new() }))
                    .with_port(if ok { port as i32 } else { -1 })
                    .with_error_code(code)
                    .with_error_message(message.map(sb))
            })
            .collect();
        return Ok(FindCoordinatorResponse::default()
            .with_coordinators(coordinators)
            .into());
    }
    let (code, message) = answer(&request.key);
    let ok = code == error_code::NONE;
    Ok(FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(sb))
        .with_node_id(BrokerId(if ok { NODE_ID.0 } else { -1 }))
        .with_host(sb(if ok { host } else { String::new() }))
        .with_port(if ok { port as i32 } else { -1 })
        .into())
}
