//! ListGroups: every group of every coordinator, gathered from each shard.

use corelog_coordination::{codes, ListGroups, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use corelog_protocol::kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use super::group_common::{encodes_in, gid, s, sb};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::submit_to_local_partitions;
use crate::ShardId;

/// ListGroups v3 is the first flexible version (compact strings).
const FIRST_FLEXIBLE_VERSION: i16 = 3;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ListGroupsRequest,
) -> Result<Handled<ListGroupsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let filter = ListGroups {
        states: request.states_filter.iter().map(s).collect(),
        types: request.types_filter.iter().map(s).collect(),
    };
    let mut groups = Vec::new();
    let mut error = codes::NONE;
    for target in 0..shard.shard_count() {
        let filter = filter.clone();
        let answers = shard
            .call(ShardId(target as u32), move |s| async move {
                submit_to_local_partitions(&s, G::ListGroups(filter)).await
            })
            .await
            .unwrap_or_else(|_| vec![Err(codes::COORDINATOR_NOT_AVAILABLE)]);
        for a in answers {
            match a {
                Ok(R::ListGroups(list)) => groups.extend(list),
                Ok(_) => error = codes::UNKNOWN_SERVER_ERROR,
                // A coordinator still loading: Kafka reports its error and
                // lists what the others have.
                Err(code) => error = code,
            }
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    // A group whose id or protocol type this version cannot carry is left
    // out rather than failing the answer, which would close the connection
    // and hide every other group. Such entries can only come from an older
    // broker's log (group ids are bounded on the way in and on load,
    // protocol types on the way in), so this is a guard, not a path clients
    // are expected to see.
    let flexible = header.api_version >= FIRST_FLEXIBLE_VERSION;
    let before = groups.len();
    groups.retain(|g| encodes_in(&g.group_id, flexible) && encodes_in(&g.protocol_type, flexible));
    if groups.len() < before {
        tracing::warn!(
            left_out = before - groups.len(),
            version = header.api_version,
            "ListGroups left out groups whose names this version cannot encode"
        );
    }
    Ok(ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(
            groups
                .into_iter()
                .map(|g| {
                    ListedGroup::default()
                        .with_group_id(gid(g.group_id))
                        .with_protocol_type(sb(g.protocol_type))
                        .with_group_state(sb(g.state))
                        .with_group_type(sb(g.group_type.as_str()))
                })
                .collect(),
        )
        .into())
}
