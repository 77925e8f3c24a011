//! InitProducerId for idempotent producers: a new producer id with epoch 0.
//!
//! Transactions are not implemented: a request with a transactional id is
//! refused with INVALID_REQUEST and a message, so a transactional client
//! fails at once instead of retrying forever.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};

use super::Close;
use super::{Handled, RequestContext};
use crate::controller::allocate_producer_id;
use crate::ShardId;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> Result<Handled<InitProducerIdResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    if request.transactional_id.is_some() {
        tracing::info!(
            "refusing InitProducerId with a transactional id: transactions are not implemented"
        );
        return Ok(InitProducerIdResponse::default()
            .with_error_code(error_code::INVALID_REQUEST)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .into());
    }
    let allocated = shard
        .call(
            ShardId(0),
            |s| async move { allocate_producer_id(&s).await },
        )
        .await;
    let reason = match allocated {
        Ok(Ok(id)) => {
            return Ok(InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0)
                .into());
        }
        Ok(Err(e)) => e.to_string(),
        Err(crate::shard::ShardGone) => "controller shard gone".to_string(),
    };
    tracing::error!(%reason, "cannot allocate a producer id");
    Ok(InitProducerIdResponse::default()
        .with_error_code(error_code::UNKNOWN_SERVER_ERROR)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .into())
}
