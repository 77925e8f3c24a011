//! InitProducerId for idempotent producers: a new producer id with epoch 0.
//!
//! Transactions are not implemented: a request with a transactional id is
//! refused with INVALID_REQUEST and a message, so a transactional client
//! fails at once instead of retrying forever.

use corelog_protocol::kafka_protocol::messages::{
    self, InitProducerIdRequest, InitProducerIdResponse,
};

use super::Close;
use super::{Handled, RequestContext};
use crate::controller::allocate_producer_id;
use crate::error::ServerError;
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
        return Ok(refused(&ServerError::InvalidRequest(
            "transactions are not implemented".to_string(),
        ))
        .into());
    }
    let allocated = shard
        .call(
            ShardId(0),
            |s| async move { allocate_producer_id(&s).await },
        )
        .await;
    let error = match allocated {
        Ok(Ok(id)) => return Ok(producer(id, ProducerEpoch::ZERO).into()),
        Ok(Err(e)) => e,
        Err(crate::shard::ShardGone) => ServerError::Internal("controller shard gone".to_string()),
    };
    tracing::error!(reason = %error, "cannot allocate a producer id");
    Ok(refused(&error).into())
}

/// An answer with a producer id and epoch.
fn producer(id: ProducerId, epoch: ProducerEpoch) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(messages::ProducerId(id.0))
        .with_producer_epoch(epoch.0)
}

/// An answer with an error (InitProducerId carries no message) and no
/// producer id.
fn refused(e: &ServerError) -> InitProducerIdResponse {
    producer(ProducerId::NONE, ProducerEpoch::NONE).with_error_code(e.code())
}
