//! The records of the internal `__transaction_state` log: one key per
//! transactional id, its value the id's whole transaction metadata as of
//! its last transition (None: a tombstone, the id expired).
//!
//! As in the offsets log (`crate::records`), keys and values are JSON,
//! versioned by field names, in ordinary uncompressed v2 batches. The
//! fields are those of Kafka's `TransactionLogValue` (producer id, last
//! producer id, epoch, last epoch, timeout, state, partitions, start and
//! update times), so a record says the same thing as Kafka's would.

use bytes::Bytes;
use corelog_model::TopicPartition;
use serde::{Deserialize, Serialize};

use crate::records::{decode_key_values, encode_key_values};

/// Kafka's transaction states, with Kafka's names (as ListTransactions
/// filters and DescribeTransactions report them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// Kafka's name (`TransactionState.name`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Kafka's `TransactionState.fromName`: an exact (case-sensitive) match.
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One topic's partitions in a transaction, as Kafka's log value groups
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// A transactional id's metadata after a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnValue {
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion), or -1.
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump, or -1 (KIP-360: a
    /// retried InitProducerId naming it gets the current epoch back).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: Vec<TxnTopic>,
    /// When the transaction started (its first AddPartitions), or -1.
    pub start_ms: i64,
    pub update_ms: i64,
}

impl TxnValue {
    /// The partitions, flattened and sorted.
    pub fn topic_partitions(&self) -> Vec<TopicPartition> {
        let mut out: Vec<TopicPartition> = self
            .partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.clone(), *p))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Groups sorted partitions by topic, as the value holds them.
    pub fn group_partitions<'a>(
        parts: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Vec<TxnTopic> {
        let mut out: Vec<TxnTopic> = Vec::new();
        for tp in parts {
            match out.last_mut() {
                Some(t) if t.topic == tp.topic => t.partitions.push(tp.partition),
                _ => out.push(TxnTopic {
                    topic: tp.topic.clone(),
                    partitions: vec![tp.partition],
                }),
            }
        }
        out
    }
}

#[derive(Serialize, Deserialize)]
struct TxnKeyJson {
    transactional_id: String,
}

/// One record of the transaction log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogRecord {
    pub transactional_id: String,
    /// None: a tombstone.
    pub value: Option<TxnValue>,
}

impl TxnLogRecord {
    pub fn encode_key(&self) -> Vec<u8> {
        serde_json::to_vec(&TxnKeyJson {
            transactional_id: self.transactional_id.clone(),
        })
        .expect("record keys always serialize")
    }

    pub fn encode_value(&self) -> Option<Vec<u8>> {
        self.value
            .as_ref()
            .map(|v| serde_json::to_vec(v).expect("record values always serialize"))
    }

    /// Parses a record read back from the log.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnLogRecord, String> {
        let key: TxnKeyJson = serde_json::from_slice(key).map_err(|e| format!("key: {e}"))?;
        let value = match value {
            None => None,
            Some(v) => Some(serde_json::from_slice(v).map_err(|e| format!("value: {e}"))?),
        };
        Ok(TxnLogRecord {
            transactional_id: key.transactional_id,
            value,
        })
    }

    /// Bytes this record takes in a batch, near enough for size budgets.
    pub fn approx_bytes(&self) -> usize {
        self.encode_key().len() + self.encode_value().map_or(0, |v| v.len()) + 16
    }
}

/// Encodes transaction-log records into uncompressed v2 batches of at most
/// about `batch_bytes_max` each (see `crate::records::encode_batches`).
pub fn encode_txn_log_batches(
    records: &[TxnLogRecord],
    now_ms: i64,
    batch_bytes_max: usize,
) -> Vec<Bytes> {
    let kvs: Vec<(Vec<u8>, Option<Vec<u8>>)> = records
        .iter()
        .map(|r| (r.encode_key(), r.encode_value()))
        .collect();
    encode_key_values(&kvs, now_ms, batch_bytes_max, None)
}

/// A record's offset and the record, or why it did not parse.
pub type DecodedTxnLogRecord = (i64, Result<TxnLogRecord, String>);

/// Decodes every record of a run of whole batches, in log order; a record
/// that does not parse comes back as an error with its offset.
pub fn decode_txn_log_batches(bytes: Bytes) -> Result<Vec<DecodedTxnLogRecord>, String> {
    decode_key_values(bytes, TxnLogRecord::decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_records_round_trip_through_batches() {
        let parts = [
            TopicPartition::new("a", 0),
            TopicPartition::new("a", 3),
            TopicPartition::new("b", 1),
        ];
        let mut records: Vec<TxnLogRecord> = (0..50)
            .map(|i| TxnLogRecord {
                transactional_id: format!("tx-{i}"),
                value: Some(TxnValue {
                    producer_id: 1000 + i,
                    last_producer_id: -1,
                    producer_epoch: 3,
                    last_producer_epoch: 2,
                    timeout_ms: 60_000,
                    state: TxnState::ALL[i as usize % 8],
                    partitions: TxnValue::group_partitions(&parts),
                    start_ms: 5,
                    update_ms: 7,
                }),
            })
            .collect();
        records.push(TxnLogRecord {
            transactional_id: "gone".into(),
            value: None,
        });
        let batches = encode_txn_log_batches(&records, 1, 2048);
        assert!(batches.len() > 1);
        let back: Vec<TxnLogRecord> = batches
            .into_iter()
            .flat_map(|b| decode_txn_log_batches(b).unwrap())
            .map(|(_, r)| r.unwrap())
            .collect();
        assert_eq!(back, records);
        assert_eq!(
            records[0].value.as_ref().unwrap().topic_partitions(),
            parts.to_vec()
        );
        let json = String::from_utf8(records[1].encode_value().unwrap()).unwrap();
        assert!(json.contains("\"state\":\"Ongoing\""), "{json}");
    }

    #[test]
    fn state_names_are_kafkas() {
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_name("ongoing"), None);
    }
}
