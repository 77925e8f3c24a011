//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single
//! topic configs. APPEND and SUBTRACT apply to list configs only, which
//! among this broker's topic configs is `cleanup.policy`.

use std::rc::Rc;

use corelog_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use corelog_protocol::kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::alter_configs::{check_and_alter, refuse_request, Edit, Outcome};
use super::Close;
use super::{Handled, RequestContext};
use crate::shard::Shard;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> Result<Handled<IncrementalAlterConfigsResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let configs = request.resources.iter().map(|r| r.configs.len()).sum();
    let outcomes = match refuse_request(shard.config(), request.resources.len(), configs) {
        // Refused whole, before anything is built per entry.
        Some(e) => vec![Err(e); request.resources.len()],
        None => alter(shard, &request).await,
    };
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => resp,
                Err(e) => resp
                    .with_error_code(e.code())
                    .with_error_message(e.message_field()),
            }
        })
        .collect();
    Ok(IncrementalAlterConfigsResponse::default()
        .with_responses(responses)
        .into())
}

/// Checks the resources and applies them on the controller shard.
async fn alter(shard: &Rc<Shard>, request: &IncrementalAlterConfigsRequest) -> Vec<Outcome> {
    let resources = request
        .resources
        .iter()
        .map(|r| {
            let ops = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            (
                r.resource_type,
                r.resource_name.to_string(),
                Edit::Incremental(ops),
            )
        })
        .collect();
    check_and_alter(shard, resources, request.validate_only).await
}
