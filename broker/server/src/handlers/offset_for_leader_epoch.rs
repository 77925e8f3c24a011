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

pub async fn handle(
    cx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> Result<Handled<OffsetForLeaderEpochResponse>, Close> {
    let shard = cx.shard;
    let md = shard.metadata();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = t.topic.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let owner = md
                .topic_for(&name, request.replica_id.0 >= 0)
                .and_then(|m| m.partitions.get(usize::try_from(p.partition).ok()?))
                .map(|pm| pm.serving_shard());
            let (code, epoch, end) = match owner {
                None => (error_code::UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
                // Another node leads it (cluster mode).
                Some(None) => (error_code::NOT_LEADER_OR_FOLLOWER, -1, -1),
                Some(Some(owner)) => {
                    let topic = name.clone();
                    let (index, current, asked) =
                        (p.partition, p.current_leader_epoch, p.leader_epoch);
                    shard
                        .call(owner, move |s| async move {
                            let Some(part) = s.partition(&topic, index) else {
                                return (error_code::UNKNOWN_TOPIC_OR_PARTITION, -1, -1);
                            };
                            // Only a leader answers, as in Kafka: a node
                            // that the table it read from disk at start still
                            // names leader, but that holds no leader's role
                            // yet, may have lost the tail of that epoch.
                            if part.is_follower() {
                                return (error_code::NOT_LEADER_OR_FOLLOWER, -1, -1);
                            }
                            let code = part.check_leader_epoch(current);
                            if code != error_code::NONE {
                                return (code, -1, -1);
                            }
                            let (epoch, end) = part.end_offset_for_epoch(LeaderEpoch(asked));
                            (error_code::NONE, epoch.0, end.0)
                        })
                        .await
                        .unwrap_or((error_code::NOT_LEADER_OR_FOLLOWER, -1, -1))
                }
            };
            partitions.push(
                EpochEndOffset::default()
                    .with_error_code(code)
                    .with_partition(p.partition)
                    .with_leader_epoch(epoch)
                    .with_end_offset(end),
            );
        }
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
