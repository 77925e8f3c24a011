//! AddPartitionsToTxn: a transactional producer names the partitions it
//! is about to write to, before its first batch to each, so that its
//! coordinator writes their markers when the transaction ends.
//!
//! v0-3 (clients) carry one transaction; v4+ (KIP-890, sent by brokers)
//! carry several, each possibly `verify_only` (is the partition already in
//! the transaction?, changing nothing). Partitions of topics that do not
//! exist are answered UNKNOWN_TOPIC_OR_PARTITION and the transaction's
//! other partitions OPERATION_NOT_ATTEMPTED, as Kafka does, without asking
//! the coordinator.

use corelog_coordination::{codes, TxnRequest, TxnResponse};
use corelog_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use corelog_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use corelog_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId,
};
use corelog_protocol::ResponseError;

use super::group_common::{s, tname};
use super::Close;
use super::{Handled, RequestContext};
use crate::shard::Shard;
use crate::{ProducerEpoch, ProducerId, TopicPartition};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> Result<Handled<AddPartitionsToTxnResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let version = header.api_version;
    if version <= 3 {
        let results = add(
            shard,
            version,
            s(&request.v3_and_below_transactional_id.0),
            ProducerId(request.v3_and_below_producer_id.0),
            ProducerEpoch(request.v3_and_below_producer_epoch),
            &request.v3_and_below_topics,
            false,
        )
        .await;
        return Ok(AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(by_topic(results))
            .into());
    }
    let mut out = Vec::with_capacity(request.transactions.len());
    for t in &request.transactions {
        let results = add(
            shard,
            version,
            s(&t.transactional_id.0),
            ProducerId(t.producer_id.0),
            ProducerEpoch(t.producer_epoch),
            &t.topics,
            t.verify_only,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(TransactionalId(t.transactional_id.0.clone()))
                .with_topic_results(by_topic(results)),
        );
    }
    Ok(AddPartitionsToTxnResponse::default()
        .with_results_by_transaction(out)
        .into())
}

/// One transaction's partitions: each with its error code.
async fn add(
    shard: &std::rc::Rc<Shard>,
    version: i16,
    transactional_id: String,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<(TopicPartition, i16)> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| {
            let name = s(&t.name.0);
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(name.clone(), *p))
        })
        .collect();
    let md = shard.metadata();
    let known = |tp: &TopicPartition| {
        md.topics
            .get(&tp.topic)
            .is_some_and(|t| tp.partition >= 0 && (tp.partition as usize) < t.partitions.len())
    };
    if partitions.iter().any(|tp| !known(tp)) {
        return partitions
            .into_iter()
            .map(|tp| {
                let code = if known(&tp) {
                    ResponseError::OperationNotAttempted.code()
                } else {
                    codes::UNKNOWN_TOPIC_OR_PARTITION
                };
                (tp, code)
            })
            .collect();
    }
    let request = if verify_only {
        TxnRequest::VerifyPartitions {
            transactional_id: transactional_id.clone(),
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
        }
    } else {
        TxnRequest::AddPartitions {
            transactional_id: transactional_id.clone(),
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
        }
    };
    let results = match crate::txn::call_txn(shard, &transactional_id, request).await {
        Ok(TxnResponse::AddPartitions { results })
        | Ok(TxnResponse::VerifyPartitions { results }) => results,
        Ok(_) => every(&partitions, codes::UNKNOWN_SERVER_ERROR),
        Err(code) => every(&partitions, code),
    };
    results
        .into_iter()
        .map(|(tp, code)| (tp, fencing_code(code, version, 2)))
        .collect()
}

fn every(partitions: &[TopicPartition], code: i16) -> Vec<(TopicPartition, i16)> {
    partitions.iter().map(|tp| (tp.clone(), code)).collect()
}

/// PRODUCER_FENCED as the request version can carry it: versions before
/// `fenced_since` get INVALID_PRODUCER_EPOCH, as Kafka answers them.
pub fn fencing_code(code: i16, version: i16, fenced_since: i16) -> i16 {
    if code == codes::PRODUCER_FENCED && version < fenced_since {
        codes::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// Results grouped by topic, in the order the partitions came.
fn by_topic(results: Vec<(TopicPartition, i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, code) in results {
        let part = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_partition_error_code(code);
        match out.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.results_by_partition.push(part),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(tname(tp.topic))
                    .with_results_by_partition(vec![part]),
            ),
        }
    }
    out
}
