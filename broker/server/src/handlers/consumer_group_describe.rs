//! ConsumerGroupDescribe (KIP-848): epochs, members, their assignments and
//! targets, each group asked of its own coordinator.

use corelog_coordination::{codes, Assignment, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use corelog_protocol::kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
};

use super::group_common::{
    gid, s, sb, tname, GROUP_AUTHORIZED_OPERATIONS, OPERATIONS_NOT_REQUESTED,
};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;
use crate::metadata::ClusterMetadata;

/// `member_type` of a member that joined with the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> Result<Handled<ConsumerGroupDescribeResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let operations = if request.include_authorized_operations {
        GROUP_AUTHORIZED_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let md = shard.metadata();
    let mut out = Vec::new();
    for g in &request.group_ids {
        let id = s(&g.0);
        let wire = match call_group(shard, &id, G::ConsumerDescribe(vec![id.clone()])).await {
            Ok(R::ConsumerDescribe(mut list)) if !list.is_empty() => {
                let d = list.remove(0);
                DescribedGroup::default()
                    .with_error_code(d.error)
                    .with_error_message(d.error_message.map(sb))
                    .with_group_id(gid(d.group_id))
                    .with_group_state(sb(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(sb(d.assignor))
                    .with_authorized_operations(operations)
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(sb(m.member_id))
                                    .with_instance_id(m.group_instance_id.map(sb))
                                    .with_rack_id(m.rack_id.map(sb))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(sb(m.client_id))
                                    .with_client_host(sb(m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names.into_iter().map(tname).collect(),
                                    )
                                    .with_subscribed_topic_regex(m.subscribed_topic_regex.map(sb))
                                    .with_assignment(wire_assignment(&md, m.assignment))
                                    .with_target_assignment(wire_assignment(
                                        &md,
                                        m.target_assignment,
                                    ))
                                    .with_member_type(MEMBER_TYPE_CONSUMER)
                            })
                            .collect(),
                    )
            }
            Ok(_) => error_group(&id, codes::UNKNOWN_SERVER_ERROR),
            Err(code) => error_group(&id, code),
        };
        out.push(wire);
    }
    Ok(ConsumerGroupDescribeResponse::default()
        .with_groups(out)
        .into())
}

fn error_group(id: &str, code: i16) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(gid(id))
        .with_error_code(code)
        .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// Partitions by topic id, with each topic's name as the response carries.
fn wire_assignment(md: &ClusterMetadata, a: Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(id, ps)| {
                let name = md
                    .topics
                    .iter()
                    .find(|(_, t)| t.uuid() == id)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(tname(name))
                    .with_partitions(ps)
            })
            .collect(),
    )
}
