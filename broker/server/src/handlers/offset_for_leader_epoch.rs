//! OffsetForLeaderEpoch (KIP-101, KIP-279, KIP-320): where a leader epoch
//! ends in a partition's log.
//!
//! A consumer that saw its partition's leader change (or that reconnects)
//! asks for the end of the epoch of the last batch it consumed; if that end
//! is below its position, the log it read was truncated and the consumer
//! resets (librdkafka logs "log truncation detected"). A follower asks the
//! same before it fetches from a new leader, and cuts its log there.
//!
//! Each answer comes from the owning shard's log
//! ([`crate::partition::Partition::end_offset_for_epoch`]), after the
//! request's `current_leader_epoch` is checked (FENCED_LEADER_EPOCH or
//! UNKNOWN_LEADER_EPOCH when it is not this leader's). Versions 2-4, the
//! ones Kafka 4 serves.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use corelog_protocol::kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use corelog_storage::LeaderEpoch;

use super::Close;
use super::{Handled, RequestContext};
use crate::shard::Shard;
use crate::ShardId;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> Result<Handled<OffsetForLeaderEpochResponse>, Close> {
    let shard = cx.shard;
    let md = shard.metadata();
    // Every partition's answer in request order: known here when no shard
    // of this node serves the partition, otherwise left to its owner.
    let mut answers: Vec<Option<(i16, i32, i64)>> = Vec::new();
    let mut asks: Vec<(ShardId, Ask)> = Vec::new();
    for t in &request.topics {
        let name = t.topic.0.to_string();
        for p in &t.partitions {
            let owner = md
                .topic_for(&name, request.replica_id.0 >= 0)
                .and_then(|m| m.partitions.get(usize::try_from(p.partition).ok()?))
                .map(|pm| pm.serving_shard());
            answers.push(match owner {
                None => Some((error_code::UNKNOWN_TOPIC_OR_PARTITION, -1, -1)),
                // Another node leads it (cluster mode).
                Some(None) => Some((error_code::NOT_LEADER_OR_FOLLOWER, -1, -1)),
                Some(Some(owner)) => {
                    asks.push((
                        owner,
                        Ask {
                            topic: name.clone(),
                            partition: p.partition,
                            current_leader_epoch: p.current_leader_epoch,
                            leader_epoch: p.leader_epoch,
                        },
                    ));
                    None
                }
            });
        }
    }
    // One call per owner shard carries all of its partitions; the answers
    // come back in the order the asks were made, which is request order.
    let mut ended = shard
        .fan_out(
            asks,
            |s, asks: Vec<Ask>| async move { asks.into_iter().map(|a| epoch_end(&s, a)).collect() },
            (error_code::NOT_LEADER_OR_FOLLOWER, -1, -1),
        )
        .await
        .into_iter();
    let mut answers = answers.into_iter().map(|answer| {
        answer
            .or_else(|| ended.next())
            .unwrap_or((error_code::NOT_LEADER_OR_FOLLOWER, -1, -1))
    });
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let partitions = t
            .partitions
            .iter()
            .zip(answers.by_ref())
            .map(|(p, (code, epoch, end))| {
                EpochEndOffset::default()
                    .with_error_code(code)
                    .with_partition(p.partition)
                    .with_leader_epoch(epoch)
                    .with_end_offset(end)
            })
            .collect();
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    Ok(OffsetForLeaderEpochResponse::default()
        .with_topics(topics)
        .into())
}

/// One partition's question, sent to the shard that owns the partition.
struct Ask {
    topic: String,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
}

/// Runs on the owning shard: (error code, epoch, end offset) for one
/// partition.
fn epoch_end(shard: &Shard, ask: Ask) -> (i16, i32, i64) {
    let Some(part) = shard.partition(&ask.topic, ask.partition) else {
        return (error_code::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
    };
    // Only a leader answers, as in Kafka: a node that the table it read
    // from disk at start still names leader, but that holds no leader's
    // role yet, may have lost the tail of that epoch.
    if part.is_follower() {
        return (error_code::NOT_LEADER_OR_FOLLOWER, -1, -1);
    }
    let code = part.check_leader_epoch(ask.current_leader_epoch);
    if code != error_code::NONE {
        return (code, -1, -1);
    }
    let (epoch, end) = part.end_offset_for_epoch(LeaderEpoch(ask.leader_epoch));
    (error_code::NONE, epoch.0, end.0)
}
