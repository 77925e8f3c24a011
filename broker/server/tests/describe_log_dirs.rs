//! DescribeLogDirs against a broker of two shards: the one data directory,
//! the partitions asked about (gathered from both owner shards) with their
//! sizes, and what Kafka leaves out of the answer (unknown topics and
//! partitions, topics with nothing left to describe, repeats).

mod common;

use common::{produce_request, records_of, topic, TestServer, PRODUCE_VERSION};
use corelog_server::metadata::{ClusterMetadata, METADATA_FILE};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, ProduceResponse,
};

/// `(topic, [(partition, size)])` of the one directory in `resp`, in the
/// order of the answer.
fn described(resp: &DescribeLogDirsResponse) -> Vec<(String, Vec<(i32, i64)>)> {
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.results.len(), 1, "one data directory");
    let dir = &resp.results[0];
    assert_eq!(dir.error_code, 0);
    dir.topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    assert_eq!(p.offset_lag, 0);
                    assert!(!p.is_future_key);
                    (p.partition_index, p.partition_size)
                })
                .collect();
            (t.name.0.to_string(), parts)
        })
        .collect()
}

fn asked(name: &str, partitions: &[i32]) -> DescribableLogDirTopic {
    DescribableLogDirTopic::default()
        .with_topic(topic(name))
        .with_partitions(partitions.to_vec())
}

#[test]
fn describes_the_data_directory_and_partition_sizes_across_shards() {
    let server = TestServer::start(2);
    let mut c = server.client();
    c.create_topic("sizes", 4);
    c.create_topic("other", 2);

    // The partitions asked about below live on both shards.
    let text = std::fs::read_to_string(server.data_dir().join(METADATA_FILE)).unwrap();
    let md: ClusterMetadata = serde_json::from_str(&text).unwrap();
    let shard_of = |p: usize| md.topics["sizes"].partitions[p].shard.0;
    assert_ne!(shard_of(0), shard_of(1), "placement spreads partitions");

    // Partition 0 gets two batches, partition 1 one, 2 and 3 nothing.
    let small = records_of(3, 100, b'a');
    let large = records_of(10, 1000, b'b');
    let produced: ProduceResponse = c.request(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(
            -1,
            &[
                ("sizes", 0, small.clone()),
                ("sizes", 0, large.clone()),
                ("sizes", 1, small.clone()),
            ],
        ),
    );
    for t in &produced.responses {
        for p in &t.partition_responses {
            assert_eq!(p.error_code, 0, "produce to {}", p.index);
        }
    }

    // Some topics: the answer keeps the order asked, names each partition
    // once, and leaves out what the broker does not have.
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        asked("sizes", &[1, 0, 9, -1, 1]),
        asked("missing", &[0]),
        asked("other", &[5]),
        asked("sizes", &[3]),
    ]));
    let resp: DescribeLogDirsResponse = c.request(ApiKey::DescribeLogDirs, 4, &req);
    let dir = &resp.results[0];
    let want_dir = std::path::absolute(server.data_dir()).unwrap();
    assert_eq!(dir.log_dir.as_str(), want_dir.to_str().unwrap());
    assert!(dir.total_bytes > 0, "total {}", dir.total_bytes);
    assert!(
        (0..=dir.total_bytes).contains(&dir.usable_bytes),
        "usable {} of {}",
        dir.usable_bytes,
        dir.total_bytes
    );
    let topics = described(&resp);
    assert_eq!(topics.len(), 1, "{topics:?}");
    assert_eq!(topics[0].0, "sizes");
    let parts = &topics[0].1;
    let indexes: Vec<i32> = parts.iter().map(|p| p.0).collect();
    assert_eq!(indexes, [1, 0, 3]);
    let size = |i: i32| parts.iter().find(|p| p.0 == i).unwrap().1;
    // A partition's size is at least the batches written to it; one that
    // was never written to is empty.
    assert!(size(1) >= small.len() as i64, "{parts:?}");
    assert!(size(0) >= (small.len() + large.len()) as i64, "{parts:?}");
    assert!(size(0) > size(1), "{parts:?}");
    assert_eq!(size(3), 0, "{parts:?}");

    // Null topics: every partition of every topic.
    let all: DescribeLogDirsResponse = c.request(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    let mut topics = described(&all);
    topics.sort();
    let names: Vec<(&str, Vec<i32>)> = topics
        .iter()
        .map(|(n, ps)| {
            let mut idx: Vec<i32> = ps.iter().map(|p| p.0).collect();
            idx.sort();
            (n.as_str(), idx)
        })
        .collect();
    assert_eq!(names, [("other", vec![0, 1]), ("sizes", vec![0, 1, 2, 3])]);

    // Before v4 there are no volume fields; they decode as their default.
    for version in 1..=3 {
        let old: DescribeLogDirsResponse = c.request(ApiKey::DescribeLogDirs, version, &req);
        assert_eq!(described(&old), described(&resp), "v{version}");
        assert_eq!(old.results[0].total_bytes, -1);
        assert_eq!(old.results[0].usable_bytes, -1);
    }

    // An empty list of topics describes nothing, but still the directory.
    let none: DescribeLogDirsResponse = c.request(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(Some(vec![])),
    );
    assert!(described(&none).is_empty());
    server.stop();
}
