//! Heartbeat (classic protocol): keeps a member's session alive and tells it
//! when a rebalance started.

use corelog_coordination::{codes, Heartbeat, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::group_common::s;
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: HeartbeatRequest,
) -> Result<Handled<HeartbeatResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let hb = Heartbeat {
        group_id: s(&request.group_id.0),
        generation_id: request.generation_id,
        member_id: s(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(s),
    };
    let code = match call_group(shard, &hb.group_id.clone(), G::Heartbeat(hb)).await {
        Ok(R::Heartbeat(code)) => code,
        Ok(_) => codes::UNKNOWN_SERVER_ERROR,
        Err(code) => code,
    };
    Ok(HeartbeatResponse::default().with_error_code(code).into())
}
