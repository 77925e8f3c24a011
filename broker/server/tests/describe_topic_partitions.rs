//! DescribeTopicPartitions against a broker of two shards: topics in name
//! order, paged by the response limit with a cursor that names the first
//! partition left out, unknown topics named with their error, and every
//! partition led by this broker with itself as its only replica and no
//! eligible leader replica outside the ISR.

mod common;

use common::{topic, TestServer};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};

/// `[(topic, error, [partition])]` and the next cursor of one page.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(c: &mut common::Client, names: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> Page {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| TopicRequest::default().with_name(topic(n)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(topic(t))
                .with_partition_index(p)
        }));
    let resp: DescribeTopicPartitionsResponse =
        c.request(ApiKey::DescribeTopicPartitions, 0, &request);
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            for p in &t.partitions {
                assert_eq!(p.error_code, 0);
                assert_eq!(p.replica_nodes, [p.leader_id]);
                assert_eq!(p.isr_nodes, [p.leader_id]);
                assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
                assert!(p.offline_replicas.is_empty());
            }
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let next = resp
        .next_cursor
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, next)
}

#[test]
fn partitions_are_described_in_pages_from_a_cursor() {
    let server = TestServer::start(2);
    let mut c = server.client();
    c.create_topic("beta", 2);
    c.create_topic("alpha", 3);
    let t = |name: &str, parts: &[i32]| (name.to_string(), 0i16, parts.to_vec());
    // Everything, in name order, in one page.
    assert_eq!(
        page(&mut c, &[], 100, None),
        (vec![t("alpha", &[0, 1, 2]), t("beta", &[0, 1])], None)
    );
    // Two partitions a page: the cursor names the first left out.
    let first = page(&mut c, &["beta", "alpha"], 2, None);
    assert_eq!(
        first,
        (vec![t("alpha", &[0, 1])], Some(("alpha".to_string(), 2)))
    );
    let second = page(&mut c, &["beta", "alpha"], 2, Some(("alpha", 2)));
    assert_eq!(
        second,
        (
            vec![t("alpha", &[2]), t("beta", &[0])],
            Some(("beta".to_string(), 1))
        )
    );
    let third = page(&mut c, &["beta", "alpha"], 2, Some(("beta", 1)));
    assert_eq!(third, (vec![t("beta", &[1])], None));
    // A topic that does not exist is named with its error.
    assert_eq!(
        page(&mut c, &["nope", "alpha"], 100, None),
        (
            vec![t("alpha", &[0, 1, 2]), ("nope".to_string(), 3, vec![])],
            None
        )
    );
}
