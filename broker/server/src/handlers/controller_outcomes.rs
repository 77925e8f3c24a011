//! What the per-partition admin APIs the active controller answers
//! (ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments)
//! share: asking the controller from any shard, an outcome per partition,
//! and the answers grouped by topic (one file per API beside it).

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::cluster::wire::{ControlRequest, ControlResponse};
use crate::error::ServerError;
use crate::shard::Shard;
use crate::{ShardId, TopicPartition};

/// One partition's outcome, as the controller's answers carry them.
pub use crate::cluster::wire::PartitionOutcome as Outcome;

/// Sends `request` to the active controller from any shard (through
/// shard 0, which hosts the quorum) and returns its answer.
pub async fn ask(
    shard: &Rc<Shard>,
    request: ControlRequest,
) -> Result<ControlResponse, ServerError> {
    shard
        .call(ShardId(0), move |s| async move {
            crate::controller::ask::ask(&s, request).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(ServerError::Internal(
                "the controller shard stopped".to_string(),
            ))
        })
}

/// Every partition asked failed with `e`.
pub fn failed_all(asked: Vec<TopicPartition>, e: &ServerError) -> Vec<Outcome> {
    asked
        .into_iter()
        .map(|tp| Outcome::new(tp, e.code(), Some(e.to_string())))
        .collect()
}

/// The outcomes grouped by topic, in the order the topics first appear,
/// each partition's turned into the answer's type by `partition`.
pub fn by_topic<T>(
    outcomes: Vec<Outcome>,
    partition: impl Fn(i32, i16, Option<String>) -> T,
) -> Vec<(String, Vec<T>)> {
    let mut order: Vec<String> = Vec::new();
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for Outcome {
        partition: TopicPartition {
            topic,
            partition: index,
        },
        code,
        message,
    } in outcomes
    {
        if !grouped.contains_key(&topic) {
            order.push(topic.clone());
        }
        grouped
            .entry(topic)
            .or_default()
            .push(partition(index, code, message));
    }
    order
        .into_iter()
        .map(|topic| {
            let partitions = grouped.remove(&topic).unwrap_or_default();
            (topic, partitions)
        })
        .collect()
}
