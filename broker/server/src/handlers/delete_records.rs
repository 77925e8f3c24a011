//! DeleteRecords: moves partitions' log start forward. Offsets below it
//! become unreadable at once; the move is durable at the partition's next
//! checkpoint, which is requested here (see the durability contract).

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use corelog_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use corelog_storage::Offset;

use super::Close;
use super::{Handled, RequestContext};
use crate::error::ServerError;
use crate::partition::DeleteUpTo;
use crate::shard::Shard;
use crate::{ShardId, TopicPartition};

/// Offset -1 in a request: delete up to the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> Result<Handled<DeleteRecordsResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let md = shard.metadata();
    // Every partition's answer in request order: known here when no shard
    // of this node serves the partition, otherwise left to its owner.
    let mut answers: Vec<Option<(i16, i64)>> = Vec::new();
    // Each delete: the partition and the offset to delete records before.
    let mut deletes: Vec<(ShardId, (TopicPartition, i64))> = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        for p in &t.partitions {
            let owner = md
                .topics
                .get(&name)
                .and_then(|m| m.partitions.get(usize::try_from(p.partition_index).ok()?))
                .map(|pm| pm.serving_shard());
            answers.push(match owner {
                None => Some((error_code::UNKNOWN_TOPIC_OR_PARTITION, -1)),
                // Another node leads it (cluster mode).
                Some(None) => Some((error_code::NOT_LEADER_OR_FOLLOWER, -1)),
                Some(Some(owner)) => {
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    deletes.push((owner, (tp, p.offset)));
                    None
                }
            });
        }
    }
    // One call per owner shard carries all of its partitions, which it
    // moves in request order (a partition named twice moves twice, as
    // before); the answers come back in the order the deletes were made.
    let mut deleted = shard
        .fan_out(
            deletes,
            |s, deletes: Vec<(TopicPartition, i64)>| async move {
                deletes
                    .into_iter()
                    .map(|(tp, offset)| delete_before(&s, &tp.topic, tp.partition, offset))
                    .collect()
            },
            (error_code::NOT_LEADER_OR_FOLLOWER, -1),
        )
        .await
        .into_iter();
    let mut answers = answers.into_iter().map(|answer| {
        answer
            .or_else(|| deleted.next())
            .unwrap_or((error_code::NOT_LEADER_OR_FOLLOWER, -1))
    });
    let mut topics = Vec::new();
    for t in &request.topics {
        let partitions = t
            .partitions
            .iter()
            .zip(answers.by_ref())
            .map(|(p, (code, low_watermark))| {
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(low_watermark)
                    .with_error_code(code)
            })
            .collect();
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    Ok(DeleteRecordsResponse::default().with_topics(topics).into())
}

/// Runs on the owning shard: (error code, new log start offset).
fn delete_before(shard: &Shard, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let Some(p) = shard.partition(topic, partition) else {
        return (error_code::UNKNOWN_TOPIC_OR_PARTITION, -1);
    };
    let up_to = match offset {
        HIGH_WATERMARK => DeleteUpTo::HighWatermark,
        o if o < 0 => return (error_code::OFFSET_OUT_OF_RANGE, -1),
        o => DeleteUpTo::Offset(Offset(o)),
    };
    match p.delete_records(up_to) {
        Ok(start) => (error_code::NONE, start.0),
        Err(e) => (ServerError::code_of_storage(&e), -1),
    }
}
