//! Produce requests and the records they carry.
//!
//! # Zero copy
//!
//! kafka-protocol 0.18 decodes `ProduceRequest` without copying record bytes
//! when it is given a `Bytes`: the `records` field of each
//! `PartitionProduceData` is produced by `Bytes::split_to` on the input, so it
//! is a slice of the same allocation. [`crate::decode_request`] always decodes
//! from the body `Bytes` that [`crate::decode_request_header`] split off the
//! frame, which [`crate::FrameDecoder`] split off the connection's read
//! buffer. Record bytes are therefore never copied between the socket read
//! and the storage layer: each partition's records are a view into the read
//! buffer.
//!
//! The proof is the test `records_are_slices_of_the_read_buffer` in
//! `tests/produce_zero_copy.rs`, which sends produce requests of every
//! supported version through the whole decode path and checks that each
//! partition's records start at the expected address inside the read
//! buffer's allocation. Because of that no hand-written produce parser is
//! needed.
//!
//! The records are handed over unvalidated; batch validation (magic, CRC,
//! sizes) belongs to the storage crate.

use bytes::Bytes;
use kafka_protocol::messages::ProduceRequest;

/// One partition's records in a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRecords<'a> {
    /// The topic name (versions up to 12; empty from v13 on).
    pub topic_name: &'a str,
    /// The topic id (v13 on; all zeros before).
    pub topic_id: [u8; 16],
    /// The partition index.
    pub partition_index: i32,
    /// The record batches, a slice of the request frame. `None` when the
    /// client sent null, which the broker should answer with an error rather
    /// than treat as an empty batch.
    pub records: Option<&'a Bytes>,
}

/// Iterates over every (topic, partition) of `request` with its records, in
/// request order.
pub fn partition_records(request: &ProduceRequest) -> impl Iterator<Item = PartitionRecords<'_>> {
    request.topic_data.iter().flat_map(|topic| {
        topic
            .partition_data
            .iter()
            .map(move |partition| PartitionRecords {
                topic_name: topic.name.0.as_str(),
                topic_id: topic.topic_id.into_bytes(),
                partition_index: partition.index,
                records: partition.records.as_ref(),
            })
    })
}
