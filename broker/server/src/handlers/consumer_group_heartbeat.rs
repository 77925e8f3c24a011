//! ConsumerGroupHeartbeat (KIP-848): a member joins, heartbeats, reports the
//! partitions it owns and gets its assignment from the server-side assignor.

use corelog_coordination::{
    codes, Assignment, ConsumerHeartbeat, ConsumerHeartbeatResult, Request as G, Response as R,
};
use corelog_protocol::kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use corelog_protocol::kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};

use super::group_common::{s, sb};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> Result<Handled<ConsumerGroupHeartbeatResponse>, Close> {
    let RequestContext {
        shard,
        header,
        client_host,
        ..
    } = *cx;
    let owned = request.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        a
    });
    let hb = ConsumerHeartbeat {
        group_id: s(&request.group_id.0),
        member_id: s(&request.member_id),
        member_epoch: request.member_epoch,
        group_instance_id: request.instance_id.as_ref().map(s),
        rack_id: request.rack_id.as_ref().map(s),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| s(&t.0)).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.as_ref().map(s),
        server_assignor: request.server_assignor.as_ref().map(s),
        owned,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: client_host.to_string(),
    };
    let result = match call_group(shard, &hb.group_id.clone(), G::ConsumerHeartbeat(hb)).await {
        Ok(R::ConsumerHeartbeat(r)) => r,
        Ok(_) => ConsumerHeartbeatResult::error(codes::UNKNOWN_SERVER_ERROR, "unexpected answer"),
        Err(code) => ConsumerHeartbeatResult::error(code, "coordinator unavailable"),
    };
    let ok = result.error == codes::NONE;
    Ok(ConsumerGroupHeartbeatResponse::default()
        .with_error_code(result.error)
        .with_error_message(result.error_message.map(sb))
        .with_member_id(ok.then(|| sb(result.member_id)))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms)
        .with_assignment(result.assignment.map(|a| {
            WireAssignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        }))
        .into())
}
