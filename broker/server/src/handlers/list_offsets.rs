//! ListOffsets: the earliest offset, the latest (the high watermark, or the
//! last stable offset for a read_committed consumer), or the
//! first offset whose record timestamp is at or after a given time, each
//! with the leader epoch of the batch that holds it (v4+), so that a
//! consumer can later check its position with OffsetForLeaderEpoch.

use std::rc::Rc;

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use corelog_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Close;
use super::{Handled, RequestContext};
use crate::error::ServerError;
use crate::partition::{Isolation, Partition};
use crate::shard::Shard;
use crate::ShardId;
use corelog_storage::Offset;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
/// ListOffsets v7 (KIP-734): the offset of the record with the largest timestamp.
const MAX_TIMESTAMP: i64 = -3;

#[derive(Debug, Clone, Copy)]
struct Found {
    error_code: i16,
    timestamp: i64,
    offset: i64,
    /// The epoch of the batch holding `offset` (-1 when none).
    leader_epoch: i32,
}

impl Found {
    /// An answer with an error and no offset.
    fn error(error_code: i16) -> Self {
        Found {
            error_code,
            timestamp: -1,
            offset: -1,
            leader_epoch: -1,
        }
    }
}

/// One partition's lookup, sent to the shard that owns the partition.
struct Lookup {
    topic: String,
    partition: i32,
    timestamp: i64,
    current_leader_epoch: i32,
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ListOffsetsRequest,
) -> Result<Handled<ListOffsetsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let md = shard.metadata();
    // v2 and later: a read_committed consumer's latest offset is the last
    // stable offset.
    let isolation = Isolation::from_kafka(request.isolation_level);
    // Every partition's answer in request order: known here when no shard
    // of this node serves the partition, otherwise left to its owner.
    let mut answers: Vec<Option<Found>> = Vec::new();
    let mut lookups: Vec<(ShardId, Lookup)> = Vec::new();
    for t in &request.topics {
        let name = t.name.0.to_string();
        for p in &t.partitions {
            let owner = md
                .topics
                .get(&name)
                .and_then(|m| m.partitions.get(usize::try_from(p.partition_index).ok()?))
                .map(|pm| pm.serving_shard());
            answers.push(match owner {
                None => Some(Found::error(error_code::UNKNOWN_TOPIC_OR_PARTITION)),
                // Another node leads it (cluster mode).
                Some(None) => Some(Found::error(error_code::NOT_LEADER_OR_FOLLOWER)),
                Some(Some(owner)) => {
                    lookups.push((
                        owner,
                        Lookup {
                            topic: name.clone(),
                            partition: p.partition_index,
                            timestamp: p.timestamp,
                            current_leader_epoch: p.current_leader_epoch,
                        },
                    ));
                    None
                }
            });
        }
    }
    // One call per owner shard carries all of its partitions; the answers
    // come back in the order the lookups were made, which is request order.
    let mut looked_up = shard
        .fan_out(
            lookups,
            move |s, lookups| lookup_all(s, lookups, isolation),
            Found::error(error_code::NOT_LEADER_OR_FOLLOWER),
        )
        .await
        .into_iter();
    let mut answers = answers.into_iter().map(|answer| {
        answer
            .or_else(|| looked_up.next())
            .unwrap_or(Found::error(error_code::NOT_LEADER_OR_FOLLOWER))
    });
    let mut topics = Vec::new();
    for t in &request.topics {
        let parts = t
            .partitions
            .iter()
            .zip(answers.by_ref())
            .map(|(p, found)| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(found.error_code)
                    .with_timestamp(found.timestamp)
                    .with_offset(found.offset)
                    // The field exists from v4; older versions must leave its default.
                    .with_leader_epoch(if header.api_version >= 4 {
                        found.leader_epoch
                    } else {
                        -1
                    })
            })
            .collect();
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    Ok(ListOffsetsResponse::default().with_topics(topics).into())
}

/// Runs on the owning shard: its partitions' lookups, one after another in
/// request order, as each partition was looked up before they were grouped.
async fn lookup_all(shard: Rc<Shard>, lookups: Vec<Lookup>, isolation: Isolation) -> Vec<Found> {
    let mut found = Vec::with_capacity(lookups.len());
    for l in lookups {
        found.push(lookup(&shard, l, isolation).await);
    }
    found
}

/// One partition's answer, on the shard that owns it.
async fn lookup(shard: &Shard, l: Lookup, isolation: Isolation) -> Found {
    let Lookup {
        topic,
        partition,
        timestamp,
        current_leader_epoch,
    } = l;
    let Some(p) = shard.partition(&topic, partition) else {
        return Found::error(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let code = p.check_leader_epoch(current_leader_epoch);
    if code != error_code::NONE {
        return Found::error(code);
    }
    let mut found = find(&p, &topic, partition, timestamp, isolation).await;
    if timestamp != EARLIEST
        && timestamp != LATEST
        && found.offset >= p.bounds().visible_end(isolation).0
    {
        // Kafka's rule for lookups by time: a record the isolation level
        // may not read yet (read_committed: at or past the last stable
        // offset) is not an answer.
        found.offset = -1;
        found.timestamp = -1;
    }
    if found.error_code == error_code::NONE && found.offset >= 0 {
        // Kafka's answers: the latest offset is in the leader's epoch, any
        // other in the epoch of the batch that holds it.
        found.leader_epoch = if timestamp == LATEST {
            p.leader_epoch().0
        } else {
            p.epoch_at(Offset(found.offset)).0
        };
    }
    found
}

async fn find(
    p: &Partition,
    topic: &str,
    partition: i32,
    timestamp: i64,
    isolation: Isolation,
) -> Found {
    match timestamp {
        EARLIEST => Found {
            error_code: 0,
            timestamp: -1,
            offset: p.log_start_offset().0,
            leader_epoch: -1,
        },
        LATEST => Found {
            error_code: 0,
            timestamp: -1,
            offset: p.bounds().visible_end(isolation).0,
            leader_epoch: -1,
        },
        MAX_TIMESTAMP => {
            // The record with the newest timestamp: the first record at or
            // after the log's max timestamp.
            match p.plan_max_timestamp() {
                None => Found {
                    error_code: 0,
                    timestamp: -1,
                    offset: -1,
                    leader_epoch: -1,
                },
                Some(plan) => match plan.execute().await {
                    Ok(Some((offset, ts))) => Found {
                        error_code: 0,
                        timestamp: ts,
                        offset: offset.0,
                        leader_epoch: -1,
                    },
                    Ok(None) => Found {
                        error_code: 0,
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                    },
                    Err(e) => Found {
                        error_code: ServerError::code_of_storage(&e),
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                    },
                },
            }
        }
        t if t >= 0 => {
            match p.plan_offset_for_timestamp(t).execute().await {
                Ok(Some((offset, ts))) => Found {
                    error_code: 0,
                    timestamp: ts,
                    offset: offset.0,
                    leader_epoch: -1,
                },
                // No record at or after the time: Kafka answers -1.
                Ok(None) => Found {
                    error_code: 0,
                    timestamp: -1,
                    offset: -1,
                    leader_epoch: -1,
                },
                Err(e) => {
                    tracing::error!(%topic, partition, timestamp = t, error = %e, "timestamp lookup failed");
                    Found {
                        error_code: ServerError::code_of_storage(&e),
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                    }
                }
            }
        }
        _ => Found {
            error_code: error_code::INVALID_REQUEST,
            timestamp: -1,
            offset: -1,
            leader_epoch: -1,
        },
    }
}
