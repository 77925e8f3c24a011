//! EndTxn: a transactional producer commits or aborts its transaction. The
//! coordinator answers once its decision is durable in the transaction
//! state log; it then writes the markers to every partition of the
//! transaction, and the producer's next transaction waits
//! (CONCURRENT_TRANSACTIONS) until they are all written.

use corelog_coordination::{codes, TxnRequest, TxnResponse};
use corelog_protocol::kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::add_partitions_to_txn::fencing_code;
use super::group_common::s;
use super::Close;
use super::{Handled, RequestContext};
use crate::{ProducerEpoch, ProducerId};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: EndTxnRequest,
) -> Result<Handled<EndTxnResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let transactional_id = s(&request.transactional_id.0);
    let end = TxnRequest::EndTxn {
        transactional_id: transactional_id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        commit: request.committed,
    };
    let code = match crate::txn::call_txn(shard, &transactional_id, end).await {
        Ok(TxnResponse::EndTxn { error }) => error,
        Ok(_) => codes::UNKNOWN_SERVER_ERROR,
        Err(code) => code,
    };
    if code != codes::NONE {
        tracing::debug!(%transactional_id, commit = request.committed, code, "EndTxn refused");
    }
    Ok(EndTxnResponse::default()
        .with_error_code(fencing_code(code, header.api_version, 2))
        .into())
}
