//! OffsetFetch: a group's committed offsets, one group (v1-7) or several
//! (v8+, each sent to its own coordinator).

use std::rc::Rc;

use corelog_coordination::{codes, FetchedOffset, OffsetFetch, Request as G, Response as R};
use corelog_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use corelog_protocol::kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::group_common::{gid, s, sb, tname};
use super::Close;
use super::{Handled, RequestContext};
use crate::groups::call_group;
use crate::shard::Shard;
use crate::TopicPartition;

pub async fn handle(
    cx: &RequestContext<'_>,
    request: OffsetFetchRequest,
) -> Result<Handled<OffsetFetchResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    // v7+ (KIP-447): offsets a transaction may still change are answered
    // UNSTABLE_OFFSET_COMMIT rather than the last committed ones.
    let require_stable = header.api_version >= 7 && request.require_stable;
    if header.api_version < 8 {
        let wanted = request.topics.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |p| TopicPartition::new(s(&t.name.0), *p))
                })
                .collect()
        });
        let asked: Vec<TopicPartition> = wanted.clone().unwrap_or_default();
        let (error, mut offsets) =
            fetch(shard, s(&request.group_id.0), wanted, None, require_stable).await;
        if header.api_version < 2 && error != codes::NONE {
            // v1 has no group-level error: report it on every partition.
            offsets = asked
                .into_iter()
                .map(|TopicPartition { topic, partition }| FetchedOffset {
                    topic,
                    partition,
                    error,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                })
                .collect();
        }
        let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
        for o in offsets {
            let part = OffsetFetchResponsePartition::default()
                .with_partition_index(o.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch)
                .with_metadata(o.metadata.map(sb))
                .with_error_code(if header.api_version < 2 {
                    error
                } else {
                    o.error
                });
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == o.topic => t.partitions.push(part),
                _ => topics.push(
                    OffsetFetchResponseTopic::default()
                        .with_name(tname(o.topic))
                        .with_partitions(vec![part]),
                ),
            }
        }
        if header.api_version < 2 {
            return Ok(OffsetFetchResponse::default().with_topics(topics).into());
        }
        return Ok(OffsetFetchResponse::default()
            .with_error_code(error)
            .with_topics(topics)
            .into());
    }
    let mut groups = Vec::new();
    for g in &request.groups {
        let wanted = g.topics.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(move |p| TopicPartition::new(s(&t.name.0), *p))
                })
                .collect()
        });
        let member = g
            .member_id
            .as_ref()
            .filter(|_| header.api_version >= 9)
            .map(|m| (s(m), g.member_epoch));
        let (error, offsets) = fetch(shard, s(&g.group_id.0), wanted, member, require_stable).await;
        let mut topics: Vec<OffsetFetchResponseTopics> = Vec::new();
        for o in offsets {
            let part = OffsetFetchResponsePartitions::default()
                .with_partition_index(o.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch)
                .with_metadata(o.metadata.map(sb))
                .with_error_code(o.error);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == o.topic => t.partitions.push(part),
                _ => topics.push(
                    OffsetFetchResponseTopics::default()
                        .with_name(tname(o.topic))
                        .with_partitions(vec![part]),
                ),
            }
        }
        groups.push(
            OffsetFetchResponseGroup::default()
                .with_group_id(gid(s(&g.group_id.0)))
                .with_error_code(error)
                .with_topics(topics),
        );
    }
    Ok(OffsetFetchResponse::default().with_groups(groups).into())
}

async fn fetch(
    shard: &Rc<Shard>,
    group_id: String,
    partitions: Option<Vec<TopicPartition>>,
    // `(member id, member epoch)`.
    member: Option<(String, i32)>,
    require_stable: bool,
) -> (i16, Vec<FetchedOffset>) {
    let request = OffsetFetch {
        group_id: group_id.clone(),
        partitions,
        member,
        require_stable,
    };
    match call_group(shard, &group_id, G::OffsetFetch(request)).await {
        Ok(R::OffsetFetch(r)) => (r.error, r.offsets),
        Ok(_) => (codes::UNKNOWN_SERVER_ERROR, Vec::new()),
        Err(code) => (code, Vec::new()),
    }
}
