//! LeaveGroup (classic protocol): one member (v0-2) or a batch (v3+, KIP-345)
//! leaves; the rest rebalance.

use corelog_coordination::{codes, LeaveGroup, LeavingMember, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use corelog_protocol::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::group_common::{s, sb};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> Result<Handled<LeaveGroupResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let v = header.api_version;
    let members: Vec<LeavingMember> = if v >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: s(&m.member_id),
                group_instance_id: m.group_instance_id.as_ref().map(s),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: s(&request.member_id),
            group_instance_id: None,
        }]
    };
    let leave = LeaveGroup {
        group_id: s(&request.group_id.0),
        members,
    };
    let (error, members) = match call_group(shard, &leave.group_id.clone(), G::Leave(leave)).await {
        Ok(R::Leave(r)) => (r.error, r.members),
        Ok(_) => (codes::UNKNOWN_SERVER_ERROR, Vec::new()),
        Err(code) => (code, Vec::new()),
    };
    if v < 3 {
        // One member: its outcome is the request's.
        let code = if error != codes::NONE {
            error
        } else {
            members.first().map_or(codes::NONE, |m| m.2)
        };
        return Ok(LeaveGroupResponse::default().with_error_code(code).into());
    }
    Ok(LeaveGroupResponse::default()
        .with_error_code(error)
        .with_members(
            members
                .into_iter()
                .map(|(id, instance, code)| {
                    MemberResponse::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(instance.map(sb))
                        .with_error_code(code)
                })
                .collect(),
        )
        .into())
}
