//! DescribeGroups (classic groups): state, protocol and members, each group
//! asked of its own coordinator.

use std::rc::Rc;

use corelog_coordination::{codes, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use corelog_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use corelog_protocol::RequestHeader;

use super::group_common::{gid, s, sb, GROUP_AUTHORIZED_OPERATIONS, OPERATIONS_NOT_REQUESTED};
use crate::groups::call_group;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let v = header.api_version;
    let operations = if v >= 3 && request.include_authorized_operations {
        GROUP_AUTHORIZED_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let mut out = Vec::new();
    for g in &request.groups {
        let id = s(&g.0);
        let described = match call_group(shard, &id, G::DescribeGroups(vec![id.clone()])).await {
            Ok(R::DescribeGroups(mut list)) if !list.is_empty() => list.remove(0),
            Ok(_) => error_group(&id, codes::UNKNOWN_SERVER_ERROR),
            Err(code) => error_group(&id, code),
        };
        let mut error = described.error;
        let mut message = None;
        if v >= 6 && error == codes::NONE && described.state == "Dead" {
            // From v6 Kafka reports a group that does not exist as an error.
            error = codes::GROUP_ID_NOT_FOUND;
            message = Some(format!("Group {id} not found."));
        }
        out.push(
            DescribedGroup::default()
                .with_error_code(error)
                .with_error_message(message.map(sb))
                .with_group_id(gid(described.group_id))
                .with_group_state(sb(described.state))
                .with_protocol_type(sb(described.protocol_type))
                .with_protocol_data(sb(described.protocol))
                .with_authorized_operations(operations)
                .with_members(
                    described
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(sb(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(sb))
                                .with_client_id(sb(m.client_id))
                                .with_client_host(sb(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
        );
    }
    DescribeGroupsResponse::default().with_groups(out)
}

fn error_group(id: &str, code: i16) -> corelog_coordination::DescribedGroup {
    corelog_coordination::DescribedGroup {
        group_id: id.to_string(),
        error: code,
        state: String::new(),
        protocol_type: String::new(),
        protocol: String::new(),
        members: Vec::new(),
    }
}
