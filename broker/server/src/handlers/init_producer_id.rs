//! InitProducerId for idempotent producers: a new producer id with epoch 0.
//!
//! Transactions are not implemented: a request with a transactional id is
//! refused with INVALID_REQUEST and a message, so a transactional client
//! fails at once instead of retrying forever.

use std::rc::Rc;

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};

use crate::controller::allocate_producer_id;
use crate::shard::Shard;
use crate::ShardId;

pub async fn handle(shard: &Rc<Shard>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        tracing::info!(
            "refusing InitProducerId with a transactional id: transactions are not implemented"
        );
        return InitProducerIdResponse::default()
            .with_error_code(error_code::INVALID_REQUEST)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let allocated = shard
        .call(
            ShardId(0),
            |s| async move { allocate_producer_id(&s).await },
        )
        .await;
    let reason = match allocated {
        Ok(Ok(id)) => {
            return InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0);
        }
        Ok(Err(e)) => e,
        Err(crate::shard::ShardGone) => "controller shard gone".to_string(),
    };
    tracing::error!(%reason, "cannot allocate a producer id");
    InitProducerIdResponse::default()
        .with_error_code(error_code::UNKNOWN_SERVER_ERROR)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
