//! Zero-copy Fetch response encoding.
//!
//! A Fetch response is mostly record batches read from the log. Encoding it
//! with kafka-protocol would copy every batch into one response buffer. The
//! [`FetchResponseWriter`] instead writes only the small metadata pieces
//! (response header, topic and partition fields, length prefixes) into its own
//! buffer and interleaves them with the caller's record `Bytes`, which it
//! clones (a reference count increment) and never copies. The result is a list
//! of segments for one vectored write.
//!
//! Layout, for each supported version (4 to 18):
//!
//! ```text
//! size:i32 correlation_id:i32 [header tags: uvarint, v12+]
//! throttle_time_ms:i32 [error_code:i16 session_id:i32, v7+]
//! responses: array of
//!   topic: string (v4-12) | topic_id: uuid (v13+)
//!   partitions: array of
//!     partition_index:i32 error_code:i16 high_watermark:i64
//!     last_stable_offset:i64 [log_start_offset:i64, v5+]
//!     aborted_transactions: nullable array of (producer_id:i64 first_offset:i64 [tags])
//!     [preferred_read_replica:i32, v11+]
//!     records: nullable bytes          <- the caller's chunks go here
//!     [tags, v12+]
//!   [tags, v12+]
//! [tags, v12+]
//! ```
//!
//! From v12 on (flexible versions) strings, arrays and bytes use compact
//! (uvarint length + 1) encodings and every struct ends in a tagged-field
//! section; the writer emits empty tagged-field sections.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::errors::ProtocolError;
use crate::frame::SIZE_PREFIX_BYTES;

/// Lowest Fetch version the writer encodes: the first that returns record
/// batches (magic v2) and has last_stable_offset and aborted transactions.
pub const FETCH_WRITER_VERSION_MIN: i16 = 4;
/// Highest Fetch version the writer encodes, the same as kafka-protocol 0.18.
pub const FETCH_WRITER_VERSION_MAX: i16 = 18;

/// First flexible Fetch version.
const FLEXIBLE_VERSION_MIN: i16 = 12;
/// First version that names topics by id instead of by name.
const TOPIC_ID_VERSION_MIN: i16 = 13;
/// First version with top-level error_code and session_id.
const SESSION_VERSION_MIN: i16 = 7;
/// First version with log_start_offset.
const LOG_START_OFFSET_VERSION_MIN: i16 = 5;
/// First version with preferred_read_replica.
const PREFERRED_READ_REPLICA_VERSION_MIN: i16 = 11;
/// The first version with the top-level `NodeEndpoints` tagged field.
const NODE_ENDPOINTS_VERSION_MIN: i16 = 16;
/// Tag of a partition's `CurrentLeader` and of the response's
/// `NodeEndpoints` (Kafka's FetchResponse.json).
const DIVERGING_EPOCH_TAG: u32 = 0;
const CURRENT_LEADER_TAG: u32 = 1;
const NODE_ENDPOINTS_TAG: u32 = 0;

/// Initial capacity of the metadata buffer; it grows as needed. Header plus
/// one partition is about 70 bytes, so this covers small responses without a
/// reallocation.
const METADATA_CAPACITY_INITIAL_BYTES: usize = 256;

/// An aborted transaction in a partition's fetch result, for read_committed
/// consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    /// The producer id of the aborted transaction.
    pub producer_id: i64,
    /// The first offset of the aborted transaction.
    pub first_offset: i64,
}

/// The fields of one partition's fetch result, apart from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPartitionHeader<'a> {
    /// The partition index.
    pub partition_index: i32,
    /// The partition's error code, or 0.
    pub error_code: i16,
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset.
    pub last_stable_offset: i64,
    /// The log start offset. Dropped for v4, which has no such field; Kafka
    /// marks it ignorable.
    pub log_start_offset: i64,
    /// Aborted transactions in the returned range. `None` encodes null, which
    /// Kafka sends to read_uncommitted consumers; `Some(&[])` encodes an empty
    /// array. Both are valid in every supported version.
    pub aborted_transactions: Option<&'a [AbortedTransaction]>,
    /// The preferred read replica, or -1. Must be -1 before v11, which cannot
    /// carry it.
    pub preferred_read_replica: i32,
    /// KIP-951: the partition's leader id and leader epoch, for a partition
    /// answered NOT_LEADER_OR_FOLLOWER. Written from v12 (the tagged field
    /// `CurrentLeader`, tag 1); dropped before, as the field is tagged.
    pub current_leader: Option<(i32, i32)>,
    /// The epoch and end offset where a fetcher's log diverges from the
    /// leader's (KIP-595's `DivergingEpoch`: the fetcher named its last
    /// fetched epoch, and that epoch ends here before its fetch offset).
    /// Written from v12 (tag 0); dropped before, as the field is tagged.
    pub diverging_epoch: Option<(i32, i64)>,
}

/// A broker named in a Fetch response's `NodeEndpoints` (KIP-951, v16+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchNodeEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// A complete Fetch response frame as segments for a vectored write.
///
/// The segments, written in order, are the whole frame including its size
/// prefix. Record chunks appear as the very `Bytes` the caller passed in
/// (same allocation, same pointer), never as copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponseFrame {
    segments: Vec<Bytes>,
    len_bytes: usize,
}

impl FetchResponseFrame {
    /// The segments in write order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// Takes the segments out.
    pub fn into_segments(self) -> Vec<Bytes> {
        self.segments
    }

    /// Total length of the frame, size prefix included.
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// The frame as one contiguous buffer. This copies every record byte and
    /// is meant for tests and debugging, not for the fetch path.
    pub fn to_contiguous(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len_bytes);
        for segment in &self.segments {
            out.extend_from_slice(segment);
        }
        out.freeze()
    }
}

/// Builds a Fetch response frame without copying record bytes.
///
/// Use: [`FetchResponseWriter::new`] with the number of topics, then for each
/// topic [`FetchResponseWriter::begin_topic`] with its number of partitions
/// followed by that many [`FetchResponseWriter::add_partition`] calls, then
/// [`FetchResponseWriter::finish`]. Array lengths come first on the wire, so
/// the counts are declared up front and checked. After any error the writer
/// is in an unspecified state and must be dropped.
#[derive(Debug)]
pub struct FetchResponseWriter {
    version: i16,
    flexible: bool,
    /// Metadata written since the last record chunk.
    metadata: BytesMut,
    /// Finished segments. Slot 0 holds an empty placeholder until `finish`,
    /// which puts the first metadata piece there after patching its size
    /// prefix; the piece must stay mutable until the total size is known.
    segments: Vec<Bytes>,
    /// The first metadata piece, once a record chunk has forced it out of
    /// `metadata`.
    head: Option<BytesMut>,
    /// Bytes in `head` and `segments`, excluding `metadata`.
    flushed_len_bytes: usize,
    topics_left: usize,
    partitions_left: usize,
    /// Whether a topic has been begun and not yet closed.
    topic_open: bool,
    /// The `NodeEndpoints` tagged field's value, encoded, if any (v16+).
    node_endpoints: Option<BytesMut>,
}

impl FetchResponseWriter {
    /// Starts a response of `version` to the request with `correlation_id`.
    ///
    /// `error_code` is the top-level (session) error; versions before 7 have
    /// no such field, and a non-zero value is then dropped, as Kafka does for
    /// this ignorable field. `session_id` must be 0 before v7.
    pub fn new(
        version: i16,
        correlation_id: i32,
        throttle_time_ms: i32,
        error_code: i16,
        session_id: i32,
        topic_count: usize,
    ) -> Result<Self, ProtocolError> {
        if !(FETCH_WRITER_VERSION_MIN..=FETCH_WRITER_VERSION_MAX).contains(&version) {
            return Err(misuse(format!("Fetch v{version} is not supported")));
        }
        if version < SESSION_VERSION_MIN && session_id != 0 {
            return Err(misuse(format!(
                "Fetch v{version} cannot carry session id {session_id}"
            )));
        }
        let flexible = version >= FLEXIBLE_VERSION_MIN;
        let mut writer = Self {
            version,
            flexible,
            metadata: BytesMut::with_capacity(METADATA_CAPACITY_INITIAL_BYTES),
            segments: vec![Bytes::new()],
            head: None,
            flushed_len_bytes: 0,
            topics_left: topic_count,
            partitions_left: 0,
            topic_open: false,
            node_endpoints: None,
        };
        let m = &mut writer.metadata;
        m.put_i32(0); // Size prefix, patched in `finish`.
        m.put_i32(correlation_id);
        if ApiKey::Fetch.response_header_version(version) >= 1 {
            m.put_u8(0); // Empty header tagged-field section.
        }
        m.put_i32(throttle_time_ms);
        if version >= SESSION_VERSION_MIN {
            m.put_i16(error_code);
            m.put_i32(session_id);
        }
        writer.put_array_len(topic_count)?;
        Ok(writer)
    }

    /// Starts the next topic. Versions up to 12 write `name`, later ones
    /// `topic_id`; passing both lets the caller stay version-agnostic.
    pub fn begin_topic(
        &mut self,
        name: &str,
        topic_id: [u8; 16],
        partition_count: usize,
    ) -> Result<(), ProtocolError> {
        self.close_topic()?;
        if self.topics_left == 0 {
            return Err(misuse("more topics than declared".to_owned()));
        }
        self.topics_left -= 1;
        if self.version < TOPIC_ID_VERSION_MIN {
            self.put_string(name)?;
        } else {
            self.metadata.put_slice(&topic_id);
        }
        self.put_array_len(partition_count)?;
        self.partitions_left = partition_count;
        self.topic_open = true;
        Ok(())
    }

    /// Adds the next partition of the current topic, with its records given
    /// as chunks (for example one per log segment read). The chunks are
    /// referenced, not copied; empty chunks are left out of the segments. No
    /// chunks at all encode an empty, non-null records field, which is what
    /// Kafka sends for a partition with nothing to return.
    pub fn add_partition(
        &mut self,
        partition: &FetchPartitionHeader<'_>,
        records: &[Bytes],
    ) -> Result<(), ProtocolError> {
        if self.partitions_left == 0 {
            return Err(misuse(
                "more partitions than declared for this topic".to_owned(),
            ));
        }
        self.partitions_left -= 1;
        let version = self.version;
        if version < PREFERRED_READ_REPLICA_VERSION_MIN && partition.preferred_read_replica != -1 {
            return Err(misuse(format!(
                "Fetch v{version} cannot carry a preferred read replica"
            )));
        }

        let m = &mut self.metadata;
        m.put_i32(partition.partition_index);
        m.put_i16(partition.error_code);
        m.put_i64(partition.high_watermark);
        m.put_i64(partition.last_stable_offset);
        if version >= LOG_START_OFFSET_VERSION_MIN {
            m.put_i64(partition.log_start_offset);
        }
        match partition.aborted_transactions {
            None => self.put_null_array(),
            Some(aborted) => {
                self.put_array_len(aborted.len())?;
                for txn in aborted {
                    self.metadata.put_i64(txn.producer_id);
                    self.metadata.put_i64(txn.first_offset);
                    self.put_empty_tags();
                }
            }
        }
        if version >= PREFERRED_READ_REPLICA_VERSION_MIN {
            self.metadata.put_i32(partition.preferred_read_replica);
        }

        let records_len_bytes = records
            .iter()
            .try_fold(0usize, |sum, chunk| sum.checked_add(chunk.len()))
            .ok_or_else(|| misuse("records length overflows".to_owned()))?;
        self.put_bytes_len(records_len_bytes)?;
        for chunk in records.iter().filter(|chunk| !chunk.is_empty()) {
            self.flush_metadata();
            self.flushed_len_bytes += chunk.len();
            self.segments.push(chunk.clone());
        }
        if self.flexible {
            // Tagged fields in ascending tag order, each as tag, size, then
            // the struct with its own (empty) tagged-field section.
            let (diverging, leader) = (partition.diverging_epoch, partition.current_leader);
            self.put_uvarint(u32::from(diverging.is_some()) + u32::from(leader.is_some()));
            if let Some((epoch, end_offset)) = diverging {
                self.put_uvarint(DIVERGING_EPOCH_TAG);
                self.put_uvarint(4 + 8 + 1);
                self.metadata.put_i32(epoch);
                self.metadata.put_i64(end_offset);
                self.metadata.put_u8(0);
            }
            if let Some((leader_id, leader_epoch)) = leader {
                self.put_uvarint(CURRENT_LEADER_TAG);
                self.put_uvarint(4 + 4 + 1);
                self.metadata.put_i32(leader_id);
                self.metadata.put_i32(leader_epoch);
                self.metadata.put_u8(0);
            }
        }
        Ok(())
    }

    /// Names brokers in the response's `NodeEndpoints` (KIP-951: where the
    /// leaders named in `current_leader` are). Dropped before v16, which has
    /// no such field. Call before [`FetchResponseWriter::finish`].
    pub fn set_node_endpoints(
        &mut self,
        endpoints: &[FetchNodeEndpoint],
    ) -> Result<(), ProtocolError> {
        if self.version < NODE_ENDPOINTS_VERSION_MIN || endpoints.is_empty() {
            return Ok(());
        }
        // Encoded apart: a tagged field is preceded by its size.
        let outer = std::mem::take(&mut self.metadata);
        self.put_array_len(endpoints.len())?;
        for e in endpoints {
            self.metadata.put_i32(e.node_id);
            self.put_string(&e.host)?;
            self.metadata.put_i32(e.port);
            match &e.rack {
                Some(rack) => self.put_string(rack)?,
                None => self.put_uvarint(0),
            }
            self.metadata.put_u8(0);
        }
        self.node_endpoints = Some(std::mem::replace(&mut self.metadata, outer));
        Ok(())
    }

    /// Finishes the response and returns its segments.
    pub fn finish(mut self) -> Result<FetchResponseFrame, ProtocolError> {
        self.close_topic()?;
        if self.topics_left != 0 {
            return Err(misuse(format!(
                "{} declared topics were not written",
                self.topics_left
            )));
        }
        match self.node_endpoints.take() {
            Some(value) => {
                self.put_uvarint(1);
                self.put_uvarint(NODE_ENDPOINTS_TAG);
                let len = u32::try_from(value.len())
                    .map_err(|_| misuse("node endpoints too long".to_owned()))?;
                self.put_uvarint(len);
                self.metadata.put_slice(&value);
            }
            None => self.put_empty_tags(),
        }

        // Whatever metadata is left becomes the last segment, or the first
        // one if no record chunk was ever added.
        let tail = self.metadata.split();
        let mut head = match self.head.take() {
            Some(head) => {
                if !tail.is_empty() {
                    self.flushed_len_bytes += tail.len();
                    self.segments.push(tail.freeze());
                }
                head
            }
            None => {
                self.flushed_len_bytes += tail.len();
                tail
            }
        };
        let len_bytes = self.flushed_len_bytes;
        let size = i32::try_from(len_bytes - SIZE_PREFIX_BYTES)
            .map_err(|_| misuse("response exceeds i32::MAX bytes".to_owned()))?;
        head[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
        self.segments[0] = head.freeze();
        Ok(FetchResponseFrame {
            segments: self.segments,
            len_bytes,
        })
    }

    /// Checks that the current topic got all its partitions and closes it.
    fn close_topic(&mut self) -> Result<(), ProtocolError> {
        if self.partitions_left != 0 {
            return Err(misuse(format!(
                "{} declared partitions were not written",
                self.partitions_left
            )));
        }
        // Each begun topic owes its tagged-field section after its last
        // partition.
        if self.topic_open {
            self.put_empty_tags();
            self.topic_open = false;
        }
        Ok(())
    }

    /// Moves the metadata written so far out of the way of a record chunk.
    fn flush_metadata(&mut self) {
        if self.metadata.is_empty() {
            return;
        }
        // `split` hands out the written part and keeps the spare capacity, so
        // all metadata pieces share one allocation until it fills up.
        let piece = self.metadata.split();
        self.flushed_len_bytes += piece.len();
        match self.head {
            None => self.head = Some(piece),
            Some(_) => self.segments.push(piece.freeze()),
        }
    }

    fn put_uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.metadata.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.metadata.put_u8(value as u8);
    }

    fn put_empty_tags(&mut self) {
        if self.flexible {
            self.metadata.put_u8(0);
        }
    }

    fn put_array_len(&mut self, len: usize) -> Result<(), ProtocolError> {
        if self.flexible {
            let len_plus_one = u32::try_from(len)
                .ok()
                .and_then(|len| len.checked_add(1))
                .ok_or_else(|| misuse("array too long".to_owned()))?;
            self.put_uvarint(len_plus_one);
        } else {
            let len = i32::try_from(len).map_err(|_| misuse("array too long".to_owned()))?;
            self.metadata.put_i32(len);
        }
        Ok(())
    }

    fn put_null_array(&mut self) {
        if self.flexible {
            self.put_uvarint(0);
        } else {
            self.metadata.put_i32(-1);
        }
    }

    fn put_bytes_len(&mut self, len: usize) -> Result<(), ProtocolError> {
        // Bytes and arrays share their length encodings.
        self.put_array_len(len)
            .map_err(|_| misuse("records too long for one partition".to_owned()))
    }

    fn put_string(&mut self, value: &str) -> Result<(), ProtocolError> {
        if self.flexible {
            self.put_array_len(value.len())?;
        } else {
            let len =
                i16::try_from(value.len()).map_err(|_| misuse("topic name too long".to_owned()))?;
            self.metadata.put_i16(len);
        }
        self.metadata.put_slice(value.as_bytes());
        Ok(())
    }
}

fn misuse(reason: String) -> ProtocolError {
    ProtocolError::FetchWriter { reason }
}
