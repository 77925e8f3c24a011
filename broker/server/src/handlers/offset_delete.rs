//! OffsetDelete: removes a group's committed offsets for partitions its
//! members do not subscribe to.

use corelog_coordination::{codes, OffsetDelete, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use corelog_protocol::kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::group_common::{s, tname};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;
use crate::TopicPartition;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> Result<Handled<OffsetDeleteResponse>, Close> {
    let RequestContext { shard, .. } = *cx;
    let group_id = s(&request.group_id.0);
    let partitions: Vec<TopicPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| TopicPartition::new(s(&t.name.0), p.partition_index))
        })
        .collect();
    let delete = OffsetDelete {
        group_id: group_id.clone(),
        partitions,
    };
    let (error, results) = match call_group(shard, &group_id, G::OffsetDelete(delete)).await {
        Ok(R::OffsetDelete(r)) => (r.error, r.partitions),
        Ok(_) => (codes::UNKNOWN_SERVER_ERROR, Vec::new()),
        Err(code) => (code, Vec::new()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (tp, code) in results {
        let part = OffsetDeleteResponsePartition::default()
            .with_partition_index(tp.partition)
            .with_error_code(code);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(part),
            _ => topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(tname(tp.topic))
                    .with_partitions(vec![part]),
            ),
        }
    }
    Ok(OffsetDeleteResponse::default()
        .with_error_code(error)
        .with_topics(topics)
        .into())
}
