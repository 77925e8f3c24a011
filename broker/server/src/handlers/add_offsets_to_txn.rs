//! AddOffsetsToTxn: a transactional producer that will commit a group's
//! offsets in its transaction (`send_offsets_to_transaction`) adds the
//! group's offsets partition to the transaction, so the coordinator writes
//! a marker there too, which makes the offsets visible or drops them.

use corelog_coordination::{codes, offsets_partition_for, TxnRequest, TxnResponse};
use corelog_protocol::kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::add_partitions_to_txn::fencing_code;
use super::group_common::s;
use super::Close;
use super::{Handled, RequestContext};
use crate::metadata::OFFSETS_TOPIC;
use crate::{ProducerEpoch, ProducerId, TopicPartition};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> Result<Handled<AddOffsetsToTxnResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let transactional_id = s(&request.transactional_id.0);
    let group_id = s(&request.group_id.0);
    let code = if group_id.is_empty() {
        codes::INVALID_GROUP_ID
    } else {
        let partitions = shard.metadata().offsets_topic_partitions.max(1);
        let index = offsets_partition_for(&group_id, partitions);
        let add = TxnRequest::AddPartitions {
            transactional_id: transactional_id.clone(),
            producer_id: ProducerId(request.producer_id.0),
            producer_epoch: ProducerEpoch(request.producer_epoch),
            partitions: vec![TopicPartition::new(OFFSETS_TOPIC, index as i32)],
        };
        match crate::txn::call_txn(shard, &transactional_id, add).await {
            Ok(TxnResponse::AddPartitions { results }) => {
                results.first().map_or(codes::UNKNOWN_SERVER_ERROR, |r| r.1)
            }
            Ok(_) => codes::UNKNOWN_SERVER_ERROR,
            Err(code) => code,
        }
    };
    Ok(AddOffsetsToTxnResponse::default()
        .with_error_code(fencing_code(code, header.api_version, 2))
        .into())
}
