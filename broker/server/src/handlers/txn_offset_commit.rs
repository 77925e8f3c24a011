//! TxnOffsetCommit: a transactional producer commits a group's offsets as
//! part of its transaction. The group's coordinator writes them to the
//! offsets log in a transactional batch of the producer; they become the
//! group's committed offsets only when the transaction commits (its marker
//! reaches the offsets partition), and an abort drops them
//! (`corelog_coordination`'s `group_txn`).

use corelog_coordination::{codes, CommitPartition, Request as G, Response as R, TxnOffsetCommit};
use corelog_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use corelog_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::group_common::{s, tname};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;
use crate::{ProducerEpoch, ProducerId, TopicPartition};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> Result<Handled<TxnOffsetCommitResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let offsets: Vec<CommitPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            let topic = s(&t.name.0);
            t.partitions.iter().map(move |p| CommitPartition {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                // v2+ carries the leader epoch.
                leader_epoch: if header.api_version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(s),
            })
        })
        .collect();
    let group_id = s(&request.group_id.0);
    let commit = TxnOffsetCommit {
        group_id: group_id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        // v3+ (KIP-447) names the member; before, the commit is checked
        // as one from outside any membership.
        generation_id: if header.api_version >= 3 {
            request.generation_id
        } else {
            -1
        },
        member_id: if header.api_version >= 3 {
            s(&request.member_id)
        } else {
            String::new()
        },
        group_instance_id: if header.api_version >= 3 {
            request.group_instance_id.as_ref().map(s)
        } else {
            None
        },
        offsets: offsets.clone(),
    };
    let results: Vec<(TopicPartition, i16)> =
        match call_group(shard, &group_id, G::TxnOffsetCommit(commit)).await {
            Ok(R::TxnOffsetCommit(r)) => r,
            Ok(_) => every(&offsets, codes::UNKNOWN_SERVER_ERROR),
            Err(code) => every(&offsets, code),
        };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (tp, code) in results {
        let part = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(tp.partition)
            .with_error_code(code);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(part),
            _ => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(tname(tp.topic))
                    .with_partitions(vec![part]),
            ),
        }
    }
    Ok(TxnOffsetCommitResponse::default()
        .with_topics(topics)
        .into())
}

fn every(offsets: &[CommitPartition], code: i16) -> Vec<(TopicPartition, i16)> {
    offsets
        .iter()
        .map(|p| (TopicPartition::new(p.topic.clone(), p.partition), code))
        .collect()
}
