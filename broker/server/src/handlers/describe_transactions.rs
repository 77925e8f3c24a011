//! DescribeTransactions: the state of each transactional id, from its
//! coordinator.

use corelog_coordination::{codes, TxnRequest, TxnResponse};
use corelog_protocol::kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState,
};
use corelog_protocol::kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId as WireProducerId,
    TransactionalId,
};

use super::group_common::{s, sb, tname};
use super::Close;
use super::{Handled, RequestContext};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> Result<Handled<DescribeTransactionsResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in &request.transactional_ids {
        let id = s(&id.0);
        let ask = TxnRequest::Describe {
            transactional_ids: vec![id.clone()],
        };
        let state = match crate::txn::call_txn(shard, &id, ask).await {
            Ok(TxnResponse::Describe { states }) => states.into_iter().next(),
            _ => None,
        };
        let answer = match state {
            Some(d) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for tp in d.partitions {
                    match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(tp.partition),
                        None => topics.push(
                            TopicData::default()
                                .with_topic(tname(tp.topic))
                                .with_partitions(vec![tp.partition]),
                        ),
                    }
                }
                TransactionState::default()
                    .with_error_code(d.error)
                    .with_transaction_state(sb(d.state))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.start_ms)
                    .with_producer_id(WireProducerId(d.producer_id.0))
                    .with_producer_epoch(d.producer_epoch.0)
                    .with_topics(topics)
            }
            None => TransactionState::default()
                .with_error_code(codes::COORDINATOR_NOT_AVAILABLE)
                .with_transaction_state(sb(""))
                .with_producer_id(WireProducerId(-1))
                .with_producer_epoch(-1),
        };
        states.push(answer.with_transactional_id(TransactionalId(sb(id))));
    }
    Ok(DescribeTransactionsResponse::default()
        .with_transaction_states(states)
        .into())
}
