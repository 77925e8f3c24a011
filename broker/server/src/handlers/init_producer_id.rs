//! InitProducerId for idempotent producers: a new producer id with epoch 0.
//!
//! Transactions are not implemented: a request with a transactional id is
//! refused with INVALID_REQUEST and a message, so a transactional client
//! fails at once instead of retrying forever.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::{
    self, InitProducerIdRequest, InitProducerIdResponse,
};

use super::Close;
use super::{Handled, RequestContext};
use crate::controller::allocate_producer_id;
use crate::{ProducerEpoch, ProducerId, ShardId};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> Result<Handled<InitProducerIdResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    if request.transactional_id.is_some() {
        tracing::info!(
            "refusing InitProducerId with a transactional id: transactions are not implemented"
        );
        return Ok(refused(error_code::INVALID_REQUEST).into());
    }
    let allocated = shard
        .call(
            ShardId(0),
            |s| async move { allocate_producer_id(&s).await },
        )
        .await;
    let reason = match allocated {
        Ok(Ok(id)) => return Ok(producer(id, ProducerEpoch::ZERO).into()),
        Ok(Err(e)) => e.to_string(),
        Err(crate::shard::ShardGone) => "controller shard gone".to_string(),
    };
    tracing::error!(%reason, "cannot allocate a producer id");
    Ok(refused(error_code::UNKNOWN_SERVER_ERROR).into())
}

/// An answer with a producer id and epoch.
fn producer(id: ProducerId, epoch: ProducerEpoch) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(messages::ProducerId(id.0))
        .with_producer_epoch(epoch.0)
}

/// An answer with an error and no producer id.
fn refused(code: i16) -> InitProducerIdResponse {
    producer(ProducerId::NONE, ProducerEpoch::NONE).with_error_code(code)
}
