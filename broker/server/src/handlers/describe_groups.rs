//! DescribeGroups (classic groups): state, protocol and members, each group
//! asked of its own coordinator.

use corelog_coordination::{codes, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use corelog_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::group_common::{
    encodes_in, gid, s, sb, GROUP_AUTHORIZED_OPERATIONS, OPERATIONS_NOT_REQUESTED,
};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

/// DescribeGroups v5 is the first flexible version (compact strings).
const FIRST_FLEXIBLE_VERSION: i16 = 5;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> Result<Handled<DescribeGroupsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
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
        let described = fit_version(described, v >= FIRST_FLEXIBLE_VERSION);
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
    Ok(DescribeGroupsResponse::default().with_groups(out).into())
}

/// What of a group this version can carry. One string too long for an
/// i16 length would fail the whole answer and close the connection, so a
/// member with such a string is left out, and a group whose own protocol
/// names are too long is answered with an error. Names are bounded on the
/// way in (`corelog_coordination::bounds`); only an older broker's log can
/// hold such strings (a member id built from a long client id, say), so
/// this is a guard. The group id itself came in this request's version and
/// always fits.
fn fit_version(
    mut g: corelog_coordination::DescribedGroup,
    flexible: bool,
) -> corelog_coordination::DescribedGroup {
    if !encodes_in(&g.protocol_type, flexible) || !encodes_in(&g.protocol, flexible) {
        tracing::warn!("DescribeGroups: a group's protocol names are too long for this version");
        return error_group(&g.group_id, codes::UNKNOWN_SERVER_ERROR);
    }
    let before = g.members.len();
    g.members.retain(|m| {
        encodes_in(&m.member_id, flexible)
            && encodes_in(&m.client_id, flexible)
            && encodes_in(&m.client_host, flexible)
            && m.group_instance_id
                .as_deref()
                .is_none_or(|i| encodes_in(i, flexible))
    });
    if g.members.len() < before {
        tracing::warn!(
            left_out = before - g.members.len(),
            "DescribeGroups left out members whose ids this version cannot encode"
        );
    }
    g
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use corelog_coordination::DescribedMember;

    fn member(id: &str) -> DescribedMember {
        DescribedMember {
            member_id: id.to_string(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            metadata: Bytes::new(),
            assignment: Bytes::new(),
        }
    }

    fn group(
        protocol: &str,
        members: Vec<DescribedMember>,
    ) -> corelog_coordination::DescribedGroup {
        corelog_coordination::DescribedGroup {
            group_id: "g".into(),
            error: codes::NONE,
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: protocol.into(),
            members,
        }
    }

    #[test]
    fn members_an_old_version_cannot_carry_are_left_out_and_the_rest_answered() {
        let long = "m".repeat(i16::MAX as usize + 1);
        let g = group("range", vec![member("a"), member(&long)]);
        let old = fit_version(g.clone(), false);
        assert_eq!(old.error, codes::NONE);
        assert_eq!(old.members, vec![member("a")]);
        // A flexible version carries everything.
        assert_eq!(fit_version(g.clone(), true), g);
        // A protocol name no old version can carry: the group is an error.
        let odd = fit_version(group(&long, vec![member("a")]), false);
        assert_eq!(odd.error, codes::UNKNOWN_SERVER_ERROR);
        assert!(odd.members.is_empty());
    }
}
