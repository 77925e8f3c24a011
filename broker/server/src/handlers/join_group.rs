//! JoinGroup (classic protocol): forwarded to the group's coordinator, which
//! answers when the rebalance completes.

use corelog_coordination::{JoinGroup, JoinResult, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use corelog_protocol::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::group_common::{s, sb};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: JoinGroupRequest,
) -> Result<Handled<JoinGroupResponse>, Close> {
    let RequestContext {
        shard,
        header,
        client_host,
        ..
    } = *cx;
    let v = header.api_version;
    let join = JoinGroup {
        group_id: s(&request.group_id.0),
        member_id: s(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(s),
        protocol_type: s(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|p| (s(&p.name), p.metadata.clone()))
            .collect(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if v >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        require_known_member_id: v >= 4,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: client_host.to_string(),
    };
    let member_id = join.member_id.clone();
    let result = match call_group(shard, &join.group_id.clone(), G::Join(join)).await {
        Ok(R::Join(r)) => r,
        Ok(_) => JoinResult::error(
            corelog_coordination::codes::UNKNOWN_SERVER_ERROR,
            &member_id,
        ),
        Err(code) => JoinResult::error(code, &member_id),
    };
    Ok(response(v, result).into())
}

fn response(v: i16, r: JoinResult) -> JoinGroupResponse {
    // Before v7 the protocol name is not nullable.
    let protocol_name = match r.protocol_name {
        Some(p) => Some(sb(p)),
        None if v < 7 => Some(sb("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.map(sb))
        .with_protocol_name(protocol_name)
        .with_leader(sb(r.leader))
        // The flag exists from v9. An older static leader rejoining a stable
        // group gets the member list, computes an assignment, and its
        // SyncGroup is answered with the assignment in force.
        .with_skip_assignment(v >= 9 && r.skip_assignment)
        .with_member_id(sb(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(sb))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
