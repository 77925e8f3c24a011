//! Bytes and records in and out per topic and partition, as Kafka's
//! `BytesInPerSec`, `MessagesInPerSec` and `BytesOutPerSec` count them:
//! in, the batches a Produce appended (counted on the partition's owning
//! shard when the append is taken, whatever the acknowledgement later
//! says, as Kafka counts them); out, the record bytes a Fetch answer
//! carries (counted on the shard of the consumer's connection, after the
//! answer was trimmed to its limits, so only bytes sent count). Records
//! out are not counted: an answer carries whole batches that a consumer
//! may skip into, and Kafka does not count them either.
//!
//! Each shard keeps its own counts (a thread-local: each shard is one
//! thread, so counting is a plain add); a scrape sums them over the shards
//! (`crate::metrics`). So that a deleted topic's counts do not stay for
//! ever, a snapshot drops the topics the shard's metadata no longer has.
//!
//! Lives on: each shard, for what it appended or answered.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::metadata::ClusterMetadata;

/// One partition's counts on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
}

thread_local! {
    /// Topic name to its partitions' counts, indexed by partition.
    static COUNTS: RefCell<HashMap<String, Vec<Counts>>> = RefCell::new(HashMap::new());
}

/// Partitions past this index are not counted: a topic has at most a few
/// thousand, and a bad index must not grow the table.
const PARTITION_INDEX_MAX: i32 = 1 << 16;

fn with_partition(topic: &str, partition: i32, f: impl FnOnce(&mut Counts)) {
    if !(0..PARTITION_INDEX_MAX).contains(&partition) {
        return;
    }
    let index = partition as usize;
    COUNTS.with(|counts| {
        let mut counts = counts.borrow_mut();
        // The key is copied only the first time a topic is counted here.
        let parts = match counts.get_mut(topic) {
            Some(parts) => parts,
            None => counts.entry(topic.to_string()).or_default(),
        };
        if parts.len() <= index {
            parts.resize(index + 1, Counts::default());
        }
        f(&mut parts[index]);
    });
}

/// Counts a batch of `records` records and `bytes` bytes appended to a
/// partition.
pub fn count_in(topic: &str, partition: i32, bytes: usize, records: u64) {
    with_partition(topic, partition, |c| {
        c.bytes_in += bytes as u64;
        c.records_in += records;
    });
}

/// Counts `bytes` of a partition's records sent in a Fetch answer.
pub fn count_out(topic: &str, partition: i32, bytes: usize) {
    if bytes > 0 {
        with_partition(topic, partition, |c| c.bytes_out += bytes as u64);
    }
}

/// This shard's counts per (topic, partition), after dropping topics that
/// `metadata` no longer has. Partitions never counted are left out.
pub fn snapshot(metadata: &ClusterMetadata) -> Vec<(String, i32, Counts)> {
    COUNTS.with(|counts| {
        let mut counts = counts.borrow_mut();
        counts.retain(|topic, _| metadata.topics.contains_key(topic));
        let mut out: Vec<(String, i32, Counts)> = counts
            .iter()
            .flat_map(|(topic, parts)| {
                parts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c != Counts::default())
                    .map(|(i, c)| (topic.clone(), i as i32, *c))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    })
}
