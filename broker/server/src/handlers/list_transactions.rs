//! ListTransactions: every transactional id of every coordinator, gathered
//! from each shard, with the request's state, producer id and (v1)
//! duration filters.

use corelog_coordination::{codes, TxnRequest, TxnResponse};
use corelog_protocol::kafka_protocol::messages::list_transactions_response::TransactionState;
use corelog_protocol::kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId as WireProducerId,
    TransactionalId,
};

use super::group_common::{s, sb};
use super::Close;
use super::{Handled, RequestContext};
use crate::{ProducerId, ShardId};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> Result<Handled<ListTransactionsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let filter = TxnRequest::List {
        states: request.state_filters.iter().map(s).collect(),
        producer_ids: request
            .producer_id_filters
            .iter()
            .map(|p| ProducerId(p.0))
            .collect(),
        duration_ms: if header.api_version >= 1 {
            request.duration_filter
        } else {
            -1
        },
    };
    let mut listed = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut error = codes::NONE;
    if crate::txn::served_here(shard) {
        for target in 0..shard.shard_count() {
            let filter = filter.clone();
            let answers = shard
                .call(ShardId(target as u32), move |s| async move {
                    crate::txn::submit_to_local_partitions(&s, filter).await
                })
                .await
                .unwrap_or_else(|_| vec![Err(codes::COORDINATOR_NOT_AVAILABLE)]);
            for a in answers {
                match a {
                    Ok(TxnResponse::List {
                        error: e,
                        states,
                        unknown_state_filters,
                    }) => {
                        if e != codes::NONE {
                            error = e;
                        }
                        listed.extend(states);
                        for f in unknown_state_filters {
                            if !unknown.contains(&f) {
                                unknown.push(f);
                            }
                        }
                    }
                    Ok(_) => error = codes::UNKNOWN_SERVER_ERROR,
                    Err(code) => error = code,
                }
            }
        }
    } else if let TxnRequest::List { states, .. } = &filter {
        // No coordinator here to say which filters name no state.
        unknown = states
            .iter()
            .filter(|f| corelog_coordination::TxnState::from_name(f).is_none())
            .cloned()
            .collect();
    }
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(ListTransactionsResponse::default()
        .with_error_code(error)
        .with_unknown_state_filters(unknown.into_iter().map(sb).collect())
        .with_transaction_states(
            listed
                .into_iter()
                .map(|t| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(sb(t.transactional_id)))
                        .with_producer_id(WireProducerId(t.producer_id.0))
                        .with_transaction_state(sb(t.state))
                })
                .collect(),
        )
        .into())
}
