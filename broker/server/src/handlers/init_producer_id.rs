//! InitProducerId: a producer id and epoch for an idempotent producer
//! (a new id, epoch 0), or for a transactional one from the coordinator of
//! its transactional id (`crate::txn`): the id's producer id with its epoch
//! bumped, which fences the id's previous instance and aborts a
//! transaction it left open.

use corelog_coordination::{codes, TxnRequest, TxnResponse};
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
    let RequestContext { shard, header, .. } = *cx;
    // A fresh id, for an idempotent producer or in case the coordinator
    // needs one (a new transactional id, or one whose epoch is exhausted).
    // Ids are 64-bit and handed out in blocks, so one left unused costs
    // nothing.
    let allocated = shard
        .call(
            ShardId(0),
            |s| async move { allocate_producer_id(&s).await },
        )
        .await;
    let fresh = match allocated {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Ok(refused_with(&e).into()),
        Err(crate::shard::ShardGone) => {
            return Ok(
                refused_with(&ServerError::Internal("controller shard gone".to_string())).into(),
            )
        }
    };
    let Some(transactional_id) = request.transactional_id.as_ref().map(|t| t.0.to_string()) else {
        return Ok(producer(fresh, ProducerEpoch::ZERO).into());
    };
    if transactional_id.is_empty() {
        // Kafka treats an empty transactional id as none.
        return Ok(producer(fresh, ProducerEpoch::ZERO).into());
    }
    // KIP-360 (v3+): the producer id and epoch the client had, so that it
    // can resume after an error instead of starting over; (-1, -1) for none.
    let expected = (header.api_version >= 3 && request.producer_id.0 >= 0).then_some((
        ProducerId(request.producer_id.0),
        ProducerEpoch(request.producer_epoch),
    ));
    let answer = crate::txn::call_txn(
        shard,
        &transactional_id,
        TxnRequest::InitProducerId {
            transactional_id: transactional_id.clone(),
            transaction_timeout_ms: request.transaction_timeout_ms,
            expected,
            fresh_producer_id: fresh,
        },
    )
    .await;
    let (code, id, epoch) = match answer {
        Ok(TxnResponse::InitProducerId {
            error,
            producer_id,
            producer_epoch,
        }) => (error, producer_id, producer_epoch),
        Ok(_) => (
            codes::UNKNOWN_SERVER_ERROR,
            ProducerId::NONE,
            ProducerEpoch::NONE,
        ),
        Err(code) => (code, ProducerId::NONE, ProducerEpoch::NONE),
    };
    // PRODUCER_FENCED is new in v4; older clients know the same as
    // INVALID_PRODUCER_EPOCH, which Kafka answers them.
    let code = if code == codes::PRODUCER_FENCED && header.api_version < 4 {
        codes::INVALID_PRODUCER_EPOCH
    } else {
        code
    };
    if code != codes::NONE {
        tracing::debug!(%transactional_id, code, "InitProducerId refused");
        return Ok(producer(ProducerId::NONE, ProducerEpoch::NONE)
            .with_error_code(code)
            .into());
    }
    Ok(producer(id, epoch).into())
}

/// An answer with a producer id and epoch.
fn producer(id: ProducerId, epoch: ProducerEpoch) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(messages::ProducerId(id.0))
        .with_producer_epoch(epoch.0)
}

/// An answer with an error (InitProducerId carries no message) and no
/// producer id.
fn refused_with(e: &ServerError) -> InitProducerIdResponse {
    tracing::error!(reason = %e, "cannot allocate a producer id");
    producer(ProducerId::NONE, ProducerEpoch::NONE).with_error_code(e.code())
}
