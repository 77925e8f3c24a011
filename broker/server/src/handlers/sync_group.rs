//! SyncGroup (classic protocol): the leader hands in the assignment; every
//! member gets its own once the group's metadata is durable.

use corelog_coordination::{codes, Request as G, Response as R, SyncGroup, SyncResult};
use corelog_protocol::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::group_common::{s, sb};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: SyncGroupRequest,
) -> Result<Handled<SyncGroupResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let sync = SyncGroup {
        group_id: s(&request.group_id.0),
        generation_id: request.generation_id,
        member_id: s(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(s),
        protocol_type: request.protocol_type.as_ref().map(s),
        protocol_name: request.protocol_name.as_ref().map(s),
        assignments: request
            .assignments
            .iter()
            .map(|a| (s(&a.member_id), a.assignment.clone()))
            .collect(),
    };
    let result = match call_group(shard, &sync.group_id.clone(), G::Sync(sync)).await {
        Ok(R::Sync(r)) => r,
        Ok(_) => SyncResult::error(codes::UNKNOWN_SERVER_ERROR),
        Err(code) => SyncResult::error(code),
    };
    Ok(SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_protocol_type(result.protocol_type.map(sb))
        .with_protocol_name(result.protocol_name.map(sb))
        .with_assignment(result.assignment)
        .into())
}
