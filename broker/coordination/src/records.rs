//! The records of the internal offsets log: committed offsets and group
//! metadata, each a key and a value (None: a tombstone, the key is gone).
//!
//! Keys and values are JSON, versioned by field names: readable with any
//! Kafka consumer pointed at a copy of the log, and tolerant of fields added
//! later. They travel in ordinary uncompressed v2 record batches, so the
//! storage layer validates and recovers them like any other partition.
//!
//! The state a log describes is the last value of each key, read from the
//! log start: that is what makes rewriting the live state and dropping the
//! log before it (see `GroupCoordinator::wants_snapshot`) a compaction.

use bytes::{Bytes, BytesMut};
use corelog_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

use crate::api::Assignment;
use corelog_model::{ProducerEpoch, ProducerId};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum RecordKey {
    #[serde(rename = "offset")]
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    #[serde(rename = "group")]
    Group { group: String },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. } | RecordKey::Group { group } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    #[serde(default)]
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

/// Bytes as a hex string: assignment and subscription bytes stay compact
/// and readable in the JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(b.len() * 2);
        for byte in b.iter() {
            out.push_str(&format!("{byte:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map(bytes::Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    #[serde(with = "hex_bytes")]
    pub metadata: Bytes,
    #[serde(with = "hex_bytes")]
    pub assignment: Bytes,
}

/// A classic group as of its last completed rebalance (or empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicSnapshot {
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub state_since_ms: i64,
    pub members: Vec<ClassicMemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
    pub revoking: Assignment,
}

/// A KIP-848 group: its epochs, members and target assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSnapshot {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub state_since_ms: i64,
    pub members: Vec<ConsumerMemberSnapshot>,
    pub target: std::collections::BTreeMap<String, Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum GroupValue {
    #[serde(rename = "classic")]
    Classic(ClassicSnapshot),
    #[serde(rename = "consumer")]
    Consumer(ConsumerSnapshot),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    Offset(OffsetValue),
    Group(GroupValue),
}

/// One record of the offsets log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub key: RecordKey,
    /// None: a tombstone.
    pub value: Option<RecordValue>,
}

impl LogRecord {
    pub fn encode_key(&self) -> Vec<u8> {
        serde_json::to_vec(&self.key).expect("record keys always serialize")
    }

    pub fn encode_value(&self) -> Option<Vec<u8>> {
        self.value.as_ref().map(|v| {
            match v {
                RecordValue::Offset(o) => serde_json::to_vec(o),
                RecordValue::Group(g) => serde_json::to_vec(g),
            }
            .expect("record values always serialize")
        })
    }

    /// Parses a record read back from the log.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<LogRecord, String> {
        let key: RecordKey = serde_json::from_slice(key).map_err(|e| format!("key: {e}"))?;
        let value = match (&key, value) {
            (_, None) => None,
            (RecordKey::Offset { .. }, Some(v)) => Some(RecordValue::Offset(
                serde_json::from_slice(v).map_err(|e| format!("offset value: {e}"))?,
            )),
            (RecordKey::Group { .. }, Some(v)) => Some(RecordValue::Group(
                serde_json::from_slice(v).map_err(|e| format!("group value: {e}"))?,
            )),
        };
        Ok(LogRecord { key, value })
    }

    /// Bytes this record takes in a batch, near enough for size budgets.
    pub fn approx_bytes(&self) -> usize {
        self.encode_key().len() + self.encode_value().map_or(0, |v| v.len()) + 16
    }
}

/// Encodes records into uncompressed v2 batches of at most about
/// `batch_bytes_max` each (a single larger record gets a batch of its own).
/// Base offsets are 0: the log assigns them on append.
pub fn encode_batches(records: &[LogRecord], now_ms: i64, batch_bytes_max: usize) -> Vec<Bytes> {
    encode(records, now_ms, batch_bytes_max, None)
}

/// Encodes records as [`encode_batches`] does, into transactional batches
/// of the producer (TxnOffsetCommit's records): they count only once the
/// producer's COMMIT marker follows them in the log. Their base sequence is
/// -1, as Kafka's coordinator writes them: they are not part of the
/// producer's idempotent sequence.
pub fn encode_txn_batches(
    records: &[LogRecord],
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    now_ms: i64,
    batch_bytes_max: usize,
) -> Vec<Bytes> {
    encode(
        records,
        now_ms,
        batch_bytes_max,
        Some((producer_id, producer_epoch)),
    )
}

fn encode(
    records: &[LogRecord],
    now_ms: i64,
    batch_bytes_max: usize,
    txn: Option<(ProducerId, ProducerEpoch)>,
) -> Vec<Bytes> {
    let kvs: Vec<(Vec<u8>, Option<Vec<u8>>)> = records
        .iter()
        .map(|r| (r.encode_key(), r.encode_value()))
        .collect();
    encode_key_values(&kvs, now_ms, batch_bytes_max, txn)
}

/// Encodes any keys and values (None: a tombstone) as [`encode_batches`]
/// does; the transaction log's records (`crate::txn::records`) use it too.
pub(crate) fn encode_key_values(
    records: &[(Vec<u8>, Option<Vec<u8>>)],
    now_ms: i64,
    batch_bytes_max: usize,
    txn: Option<(ProducerId, ProducerEpoch)>,
) -> Vec<Bytes> {
    let (producer_id, producer_epoch) = txn.map_or((-1, -1), |(p, e)| (p.0, e.0));
    let mut out = Vec::new();
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let flush = |pending: &mut Vec<Record>, out: &mut Vec<Bytes>| {
        if pending.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            pending.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("uncompressed v2 batches always encode");
        out.push(buf.freeze());
        pending.clear();
    };
    for (k, v) in records {
        let key = Bytes::from(k.clone());
        let value = v.clone().map(Bytes::from);
        let bytes = key.len() + value.as_ref().map_or(0, |v| v.len()) + 16;
        if pending_bytes + bytes > batch_bytes_max && !pending.is_empty() {
            flush(&mut pending, &mut out);
            pending_bytes = 0;
        }
        pending.push(Record {
            transactional: txn.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: pending.len() as i64,
            // kafka-protocol starts a new batch unless offset minus
            // sequence stays constant; the batch's base sequence is the
            // first record's, which must be -1 (no producer id).
            sequence: pending.len() as i32 - 1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        });
        pending_bytes += bytes;
    }
    flush(&mut pending, &mut out);
    out
}

/// A record's offset and the record, or why it did not parse.
pub type DecodedRecord = (i64, Result<LogRecord, String>);

/// One entry of the offsets log as a coordinator loading it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A record; `txn` names the producer when it came in a transactional
    /// batch (it counts only if that producer's COMMIT marker follows).
    Record {
        offset: i64,
        record: Result<LogRecord, String>,
        txn: Option<(ProducerId, ProducerEpoch)>,
    },
    /// A transaction marker (a control record): the producer's
    /// transaction ended here, committed or aborted.
    Marker {
        offset: i64,
        producer_id: ProducerId,
        commit: bool,
    },
}

/// Decodes every record and transaction marker of a run of whole batches,
/// in log order. A record that does not parse is returned as an error with
/// its offset (the caller logs and skips it); a control record that is not
/// a COMMIT or ABORT marker is skipped, as Kafka's loaders do.
pub fn decode_log(mut bytes: Bytes) -> Result<Vec<LogEntry>, String> {
    let sets = RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            let producer = (ProducerId(r.producer_id), ProducerEpoch(r.producer_epoch));
            if r.control {
                // Control record key: version (i16), type (i16): 0 ABORT, 1 COMMIT.
                let kind = r
                    .key
                    .as_ref()
                    .filter(|k| k.len() >= 4)
                    .map(|k| i16::from_be_bytes([k[2], k[3]]));
                if let Some(kind @ (0 | 1)) = kind {
                    out.push(LogEntry::Marker {
                        offset: r.offset,
                        producer_id: producer.0,
                        commit: kind == 1,
                    });
                }
                continue;
            }
            let record = match &r.key {
                Some(k) => LogRecord::decode(k, r.value.as_deref()),
                None => Err("record without a key".to_string()),
            };
            out.push(LogEntry::Record {
                offset: r.offset,
                record,
                txn: r.transactional.then_some(producer),
            });
        }
    }
    Ok(out)
}

/// Decodes every record of a run of whole batches, in log order. A record
/// that does not parse is returned as an error with its offset, so the
/// caller can log and skip it rather than lose the rest.
pub fn decode_batches(bytes: Bytes) -> Result<Vec<DecodedRecord>, String> {
    decode_key_values(bytes, LogRecord::decode)
}

/// A record's offset and what `parse` made of it.
pub(crate) type Parsed<T> = (i64, Result<T, String>);

/// [`decode_batches`] with any record parser; control records are skipped.
pub(crate) fn decode_key_values<T>(
    mut bytes: Bytes,
    parse: impl Fn(&[u8], Option<&[u8]>) -> Result<T, String>,
) -> Result<Vec<Parsed<T>>, String> {
    let sets = RecordBatchDecoder::decode_all(&mut bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            if r.control {
                continue;
            }
            let parsed = match &r.key {
                Some(k) => parse(k, r.value.as_deref()),
                None => Err("record without a key".to_string()),
            };
            out.push((r.offset, parsed));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(group: &str, p: i32, o: i64) -> LogRecord {
        LogRecord {
            key: RecordKey::Offset {
                group: group.into(),
                topic: "t".into(),
                partition: p,
            },
            value: Some(RecordValue::Offset(OffsetValue {
                offset: o,
                leader_epoch: -1,
                metadata: Some("m".into()),
                commit_ms: 5,
            })),
        }
    }

    #[test]
    fn records_round_trip_through_batches_split_by_size() {
        let mut records: Vec<_> = (0..100).map(|i| offset("g", i, i as i64 * 10)).collect();
        records.push(LogRecord {
            key: RecordKey::Group { group: "g".into() },
            value: Some(RecordValue::Group(GroupValue::Classic(ClassicSnapshot {
                protocol_type: Some("consumer".into()),
                protocol: Some("range".into()),
                generation: 3,
                leader: Some("m1".into()),
                state_since_ms: 9,
                members: vec![ClassicMemberSnapshot {
                    member_id: "m1".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 20_000,
                    metadata: Bytes::from_static(&[0, 1, 0xff]),
                    assignment: Bytes::from_static(&[7]),
                }],
            }))),
        });
        records.push(LogRecord {
            key: RecordKey::Group { group: "h".into() },
            value: None,
        });
        let batches = encode_batches(&records, 1_000, 1024);
        assert!(batches.len() > 1, "split into several batches");
        assert!(
            batches.len() < records.len() / 2,
            "several records share each batch"
        );
        for b in &batches {
            // Each is exactly one batch whose length field covers it.
            let length = i32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
            assert_eq!(length + 12, b.len());
            assert_eq!(
                i32::from_be_bytes([b[53], b[54], b[55], b[56]]),
                -1,
                "base sequence"
            );
        }
        let mut back = Vec::new();
        for b in batches {
            for (_, r) in decode_batches(b).unwrap() {
                back.push(r.unwrap());
            }
        }
        assert_eq!(back, records);
    }
}
