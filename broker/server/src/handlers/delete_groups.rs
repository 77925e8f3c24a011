//! DeleteGroups: removes empty groups and their committed offsets.

use corelog_coordination::{codes, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use corelog_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::group_common::{gid, s};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> Result<Handled<DeleteGroupsResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let mut results = Vec::new();
    for g in &request.groups_names {
        let id = s(&g.0);
        let code = match call_group(shard, &id, G::DeleteGroups(vec![id.clone()])).await {
            Ok(R::DeleteGroups(list)) => list.first().map_or(codes::UNKNOWN_SERVER_ERROR, |x| x.1),
            Ok(_) => codes::UNKNOWN_SERVER_ERROR,
            Err(code) => code,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(gid(id))
                .with_error_code(code),
        );
    }
    Ok(DeleteGroupsResponse::default().with_results(results).into())
}
