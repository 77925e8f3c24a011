//! Fully populated requests of the transaction apis, for every version the
//! broker serves: every array holds two elements, every field the version
//! carries is set to a non-default value, and flexible versions carry an
//! unknown tagged field at every level.

use corelog_protocol::kafka_protocol::messages::{
    add_partitions_to_txn_request, describe_producers_request, txn_offset_commit_request,
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, DescribeProducersRequest,
    DescribeTransactionsRequest, EndTxnRequest, GroupId, ListTransactionsRequest, ProducerId,
    TransactionalId, TxnOffsetCommitRequest,
};
use corelog_protocol::Request;

use super::{extra_tag, s, topic};

pub fn is_txn_api(api_key: ApiKey) -> bool {
    matches!(
        api_key,
        ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::EndTxn
            | ApiKey::TxnOffsetCommit
            | ApiKey::DescribeTransactions
            | ApiKey::ListTransactions
            | ApiKey::DescribeProducers
    )
}

fn txn(value: &'static str) -> TransactionalId {
    TransactionalId(s(value))
}

/// Attaches the unknown tagged field when the version is flexible.
macro_rules! tagged {
    ($value:expr, $flex:expr) => {{
        let v = $value;
        if $flex {
            v.with_unknown_tagged_field(extra_tag().0, extra_tag().1)
        } else {
            v
        }
    }};
}

pub fn build_txn_request(api_key: ApiKey, v: i16) -> Request {
    match api_key {
        ApiKey::AddPartitionsToTxn => {
            let flex = v >= 3;
            let topics = vec![
                tagged!(
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![0, 3]),
                    flex
                ),
                tagged!(
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic("audit"))
                        .with_partitions(vec![1, 2]),
                    flex
                ),
            ];
            let r = if v <= 3 {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(txn("txn-1"))
                    .with_v3_and_below_producer_id(ProducerId(1234))
                    .with_v3_and_below_producer_epoch(5)
                    .with_v3_and_below_topics(topics)
            } else {
                let t = |id, verify: bool, topics| {
                    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(txn(id))
                        .with_producer_id(ProducerId(1234))
                        .with_producer_epoch(5)
                        .with_verify_only(verify)
                        .with_topics(topics)
                        .with_unknown_tagged_field(extra_tag().0, extra_tag().1)
                };
                AddPartitionsToTxnRequest::default().with_transactions(vec![
                    t("txn-1", true, topics.clone()),
                    t("txn-2", false, topics),
                ])
            };
            Request::AddPartitionsToTxn(tagged!(r, flex))
        }
        ApiKey::AddOffsetsToTxn => Request::AddOffsetsToTxn(tagged!(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn("txn-1"))
                .with_producer_id(ProducerId(1234))
                .with_producer_epoch(5)
                .with_group_id(GroupId(s("group-1"))),
            v >= 3
        )),
        ApiKey::EndTxn => Request::EndTxn(tagged!(
            EndTxnRequest::default()
                .with_transactional_id(txn("txn-1"))
                .with_producer_id(ProducerId(1234))
                .with_producer_epoch(5)
                .with_committed(true),
            v >= 3
        )),
        ApiKey::TxnOffsetCommit => {
            let flex = v >= 3;
            let part = |n: i32, metadata: Option<&'static str>| {
                let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(n)
                    .with_committed_offset(100 + i64::from(n))
                    .with_committed_metadata(metadata.map(s));
                if v >= 2 {
                    p = p.with_committed_leader_epoch(7);
                }
                tagged!(p, flex)
            };
            let t = tagged!(
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![part(0, Some("m")), part(1, None)]),
                flex
            );
            let t2 = tagged!(
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(topic("audit"))
                    .with_partitions(vec![part(2, Some("x")), part(3, None)]),
                flex
            );
            let mut r = TxnOffsetCommitRequest::default()
                .with_transactional_id(txn("txn-1"))
                .with_group_id(GroupId(s("group-1")))
                .with_producer_id(ProducerId(1234))
                .with_producer_epoch(5)
                .with_topics(vec![t, t2]);
            if v >= 3 {
                r = r
                    .with_generation_id(9)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id(Some(s("instance-1")));
            }
            Request::TxnOffsetCommit(tagged!(r, flex))
        }
        ApiKey::DescribeTransactions => Request::DescribeTransactions(tagged!(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn("txn-1"), txn("txn-2")]),
            true
        )),
        ApiKey::ListTransactions => {
            let mut r = ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("PrepareCommit")])
                .with_producer_id_filters(vec![ProducerId(1234), ProducerId(99)]);
            if v >= 1 {
                r = r.with_duration_filter(60_000);
            }
            Request::ListTransactions(tagged!(r, true))
        }
        ApiKey::DescribeProducers => {
            let t = |name, parts| {
                tagged!(
                    describe_producers_request::TopicRequest::default()
                        .with_name(topic(name))
                        .with_partition_indexes(parts),
                    true
                )
            };
            Request::DescribeProducers(tagged!(
                DescribeProducersRequest::default()
                    .with_topics(vec![t("orders", vec![0, 1]), t("audit", vec![2, 3])]),
                true
            ))
        }
        other => panic!("not a transaction api: {other:?}"),
    }
}
