//! The partition checkpoint: the small file that makes opening a partition
//! cost the same whatever the log's size.
//!
//! It records the log start offset, every sealed segment (size, newest
//! timestamp) and the recovery point of the active segment: the byte position
//! and next offset up to which the data was flushed and its index persisted.
//! Recovery trusts everything before the recovery point and re-validates only
//! what follows it.
//!
//! It also keeps the log's leader-epoch cache as of the checkpoint; recovery
//! adds the epochs of the batches it walks after the recovery point.
//!
//! On disk: magic `CLCP`, a format version (u32 LE), the CRC32C of the payload
//! (u32 LE), the payload length (u32 LE), then the rkyv archive of
//! [`Checkpoint`]. The file is replaced atomically (write, fsync, rename, fsync dir).
//!
//! Format 2 added the leader-epoch cache. Format 1 files (written before
//! batches were stamped with their leader's epoch) are still read, with
//! [`Checkpoint::leader_epochs`] `None`.
//!
//! Format 3 added the replicated partition's high watermark as of the
//! checkpoint (Kafka keeps it in `replication-offset-checkpoint`), so that
//! a restarted replica does not start from nothing committed. Format 2
//! files are read with [`Checkpoint::high_watermark`] `None`.
//!
//! Format 4 added transactions: each producer's ongoing transaction (its
//! first offset), the coordinator epoch of its last marker and its last
//! timestamp, and the segments whose `.txnindex` file the checkpoint
//! covers ([`Checkpoint::txn_index_bases`]). Formats 1 to 3 are read with no
//! ongoing transaction, coordinator epoch -1, no timestamp and no
//! `.txnindex` (brokers of those formats refused transaction markers).

use rkyv::{Archive, Deserialize, Serialize};

pub const CHECKPOINT_FILE: &str = "partition.checkpoint";
const MAGIC: &[u8; 4] = b"CLCP";
const FORMAT_VERSION: u32 = 4;
const FORMAT_VERSION_WITHOUT_TRANSACTIONS: u32 = 3;
const FORMAT_VERSION_WITHOUT_HIGH_WATERMARK: u32 = 2;
const FORMAT_VERSION_WITHOUT_EPOCHS: u32 = 1;
const HEADER_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SealedSegmentMeta {
    pub base_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ActiveSegmentMeta {
    pub base_offset: i64,
    /// Bytes of the active segment that were flushed and indexed.
    pub recovery_position_bytes: u64,
    /// The offset of the first batch at `recovery_position_bytes`.
    pub recovery_next_offset: i64,
    /// Newest timestamp in the bytes before the recovery point.
    pub max_timestamp_ms: i64,
    /// Wall-clock time of the segment's first write, for `segment.ms`; 0 if empty.
    pub first_write_ms: i64,
    /// The log ends at the recovery point: recovery keeps nothing after it,
    /// even valid batches. Set while a truncation is cutting the log short,
    /// so that a crash in the middle cannot bring the cut data back.
    pub recovery_point_is_end: bool,
}

/// One remembered batch of an idempotent producer.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ProducerBatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// An idempotent producer's state as of the recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ProducerMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: Vec<ProducerBatchMeta>,
    /// The first offset of its ongoing transaction.
    pub current_txn_first_offset: Option<i64>,
    /// The coordinator epoch of its last marker; -1 if none.
    pub coordinator_epoch: i32,
    /// The newest timestamp of its last batch or marker; -1 if unknown.
    pub last_timestamp_ms: i64,
}

/// A producer in formats 1 to 3.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
struct ProducerMetaV3 {
    producer_id: i64,
    epoch: i16,
    batches: Vec<ProducerBatchMeta>,
}

impl From<ProducerMetaV3> for ProducerMeta {
    fn from(m: ProducerMetaV3) -> Self {
        ProducerMeta {
            producer_id: m.producer_id,
            epoch: m.epoch,
            batches: m.batches,
            current_txn_first_offset: None,
            coordinator_epoch: -1,
            last_timestamp_ms: -1,
        }
    }
}

fn producers_v3(producers: &[ProducerMeta]) -> Vec<ProducerMetaV3> {
    producers
        .iter()
        .map(|m| ProducerMetaV3 {
            producer_id: m.producer_id,
            epoch: m.epoch,
            batches: m.batches.clone(),
        })
        .collect()
}

fn producers_from_v3(producers: Vec<ProducerMetaV3>) -> Vec<ProducerMeta> {
    producers.into_iter().map(ProducerMeta::from).collect()
}

/// One entry of the leader-epoch cache: the first offset of an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct LeaderEpochMeta {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Checkpoint {
    pub log_start_offset: i64,
    pub sealed: Vec<SealedSegmentMeta>,
    pub active: ActiveSegmentMeta,
    pub producers: Vec<ProducerMeta>,
    /// The leader-epoch cache; `None` in a format 1 file, whose batches
    /// carry whatever epoch their producer wrote.
    pub leader_epochs: Option<Vec<LeaderEpochMeta>>,
    /// The high watermark the replication layer last reported to the log
    /// (a lower bound of what was committed when the checkpoint was
    /// written; it may pass this log's end on a follower, and recovery
    /// bounds it by the log). `None` in a format 1 or 2 file, and when
    /// nothing was reported (an unreplicated partition).
    pub high_watermark: Option<i64>,
    /// Base offsets of the segments whose `.txnindex` file holds their
    /// aborted transactions as of this checkpoint (sealed segments, and the
    /// active one for its markers below the recovery point). A segment not
    /// listed has none there. Empty in formats 1 to 3.
    pub txn_index_bases: Vec<i64>,
}

/// Format 3, read from data directories written before format 4.
#[derive(Archive, Serialize, Deserialize)]
struct CheckpointV3 {
    log_start_offset: i64,
    sealed: Vec<SealedSegmentMeta>,
    active: ActiveSegmentMeta,
    producers: Vec<ProducerMetaV3>,
    leader_epochs: Option<Vec<LeaderEpochMeta>>,
    high_watermark: Option<i64>,
}

/// Format 2, read from data directories written before format 3.
#[derive(Archive, Serialize, Deserialize)]
struct CheckpointV2 {
    log_start_offset: i64,
    sealed: Vec<SealedSegmentMeta>,
    active: ActiveSegmentMeta,
    producers: Vec<ProducerMetaV3>,
    leader_epochs: Option<Vec<LeaderEpochMeta>>,
}

/// Format 1, read from data directories written before format 2.
#[derive(Archive, Serialize, Deserialize)]
struct CheckpointV1 {
    log_start_offset: i64,
    sealed: Vec<SealedSegmentMeta>,
    active: ActiveSegmentMeta,
    producers: Vec<ProducerMetaV3>,
}

/// Why a checkpoint file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint file is too short or has the wrong magic")]
    BadHeader,
    #[error("checkpoint format version {0} is not supported")]
    Version(u32),
    #[error("checkpoint crc mismatch")]
    Crc,
    #[error("checkpoint payload does not decode: {0}")]
    Decode(String),
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(self).expect("checkpoint serialises");
        framed(FORMAT_VERSION, &payload)
    }

    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
            return Err(CheckpointError::BadHeader);
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let version = word(4);
        if version != FORMAT_VERSION
            && version != FORMAT_VERSION_WITHOUT_TRANSACTIONS
            && version != FORMAT_VERSION_WITHOUT_HIGH_WATERMARK
            && version != FORMAT_VERSION_WITHOUT_EPOCHS
        {
            return Err(CheckpointError::Version(version));
        }
        let len = word(12) as usize;
        let payload = bytes
            .get(HEADER_BYTES..HEADER_BYTES + len)
            .ok_or(CheckpointError::BadHeader)?;
        if crc_fast::crc32_iscsi(payload) != word(8) {
            return Err(CheckpointError::Crc);
        }
        // rkyv validates archives in place and wants them aligned.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        let decode_error = |e: rkyv::rancor::Error| CheckpointError::Decode(e.to_string());
        if version == FORMAT_VERSION_WITHOUT_EPOCHS {
            let v1 = rkyv::from_bytes::<CheckpointV1, rkyv::rancor::Error>(&aligned)
                .map_err(decode_error)?;
            return Ok(Checkpoint {
                log_start_offset: v1.log_start_offset,
                sealed: v1.sealed,
                active: v1.active,
                producers: producers_from_v3(v1.producers),
                leader_epochs: None,
                high_watermark: None,
                txn_index_bases: Vec::new(),
            });
        }
        if version == FORMAT_VERSION_WITHOUT_HIGH_WATERMARK {
            let v2 = rkyv::from_bytes::<CheckpointV2, rkyv::rancor::Error>(&aligned)
                .map_err(decode_error)?;
            return Ok(Checkpoint {
                log_start_offset: v2.log_start_offset,
                sealed: v2.sealed,
                active: v2.active,
                producers: producers_from_v3(v2.producers),
                leader_epochs: v2.leader_epochs,
                high_watermark: None,
                txn_index_bases: Vec::new(),
            });
        }
        if version == FORMAT_VERSION_WITHOUT_TRANSACTIONS {
            let v3 = rkyv::from_bytes::<CheckpointV3, rkyv::rancor::Error>(&aligned)
                .map_err(decode_error)?;
            return Ok(Checkpoint {
                log_start_offset: v3.log_start_offset,
                sealed: v3.sealed,
                active: v3.active,
                producers: producers_from_v3(v3.producers),
                leader_epochs: v3.leader_epochs,
                high_watermark: v3.high_watermark,
                txn_index_bases: Vec::new(),
            });
        }
        rkyv::from_bytes::<Checkpoint, rkyv::rancor::Error>(&aligned).map_err(decode_error)
    }

    /// A format 1 file, as brokers before format 2 wrote it: for tests of
    /// upgrades, never written by the broker.
    #[doc(hidden)]
    pub fn encode_format_1_for_tests(&self) -> Vec<u8> {
        let v1 = CheckpointV1 {
            log_start_offset: self.log_start_offset,
            sealed: self.sealed.clone(),
            active: self.active.clone(),
            producers: producers_v3(&self.producers),
        };
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&v1).expect("checkpoint serialises");
        framed(FORMAT_VERSION_WITHOUT_EPOCHS, &payload)
    }

    /// A format 2 file, as brokers before format 3 wrote it: for tests of
    /// upgrades, never written by the broker.
    #[doc(hidden)]
    pub fn encode_format_2_for_tests(&self) -> Vec<u8> {
        let v2 = CheckpointV2 {
            log_start_offset: self.log_start_offset,
            sealed: self.sealed.clone(),
            active: self.active.clone(),
            producers: producers_v3(&self.producers),
            leader_epochs: self.leader_epochs.clone(),
        };
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&v2).expect("checkpoint serialises");
        framed(FORMAT_VERSION_WITHOUT_HIGH_WATERMARK, &payload)
    }

    /// A format 3 file, as brokers before format 4 wrote it: for tests of
    /// upgrades, never written by the broker.
    #[doc(hidden)]
    pub fn encode_format_3_for_tests(&self) -> Vec<u8> {
        let v3 = CheckpointV3 {
            log_start_offset: self.log_start_offset,
            sealed: self.sealed.clone(),
            active: self.active.clone(),
            producers: producers_v3(&self.producers),
            leader_epochs: self.leader_epochs.clone(),
            high_watermark: self.high_watermark,
        };
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&v3).expect("checkpoint serialises");
        framed(FORMAT_VERSION_WITHOUT_TRANSACTIONS, &payload)
    }
}

/// The header of a file of format `version` around `payload`.
fn framed(version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&crc_fast::crc32_iscsi(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            log_start_offset: 10,
            sealed: vec![SealedSegmentMeta {
                base_offset: 0,
                size_bytes: 4096,
                max_timestamp_ms: 5,
            }],
            active: ActiveSegmentMeta {
                base_offset: 40,
                recovery_position_bytes: 777,
                recovery_next_offset: 52,
                max_timestamp_ms: 9,
                first_write_ms: 1,
                recovery_point_is_end: false,
            },
            producers: vec![ProducerMeta {
                producer_id: 9,
                epoch: 2,
                batches: vec![ProducerBatchMeta {
                    first_seq: 0,
                    last_seq: 4,
                    base_offset: 40,
                    last_offset: 44,
                }],
                current_txn_first_offset: Some(41),
                coordinator_epoch: 6,
                last_timestamp_ms: 1234,
            }],
            leader_epochs: Some(vec![LeaderEpochMeta {
                epoch: 3,
                start_offset: 41,
            }]),
            high_watermark: Some(50),
            txn_index_bases: vec![0],
        }
    }

    /// The sample as formats 1 to 3 hold it: no transactions.
    fn without_transactions(mut cp: Checkpoint) -> Checkpoint {
        for p in &mut cp.producers {
            p.current_txn_first_offset = None;
            p.coordinator_epoch = -1;
            p.last_timestamp_ms = -1;
        }
        cp.txn_index_bases = Vec::new();
        cp
    }

    #[test]
    fn checkpoint_round_trips() {
        assert_eq!(Checkpoint::decode(&sample().encode()).unwrap(), sample());
    }

    #[test]
    fn a_format_1_checkpoint_is_read_without_an_epoch_cache() {
        let read = Checkpoint::decode(&sample().encode_format_1_for_tests()).unwrap();
        assert_eq!(
            read,
            Checkpoint {
                leader_epochs: None,
                high_watermark: None,
                ..without_transactions(sample())
            }
        );
    }

    #[test]
    fn a_format_2_checkpoint_is_read_without_a_high_watermark() {
        let read = Checkpoint::decode(&sample().encode_format_2_for_tests()).unwrap();
        assert_eq!(
            read,
            Checkpoint {
                high_watermark: None,
                ..without_transactions(sample())
            }
        );
    }

    #[test]
    fn a_format_3_checkpoint_is_read_without_transactions() {
        let read = Checkpoint::decode(&sample().encode_format_3_for_tests()).unwrap();
        assert_eq!(read, without_transactions(sample()));
    }

    #[test]
    fn any_damaged_byte_of_a_checkpoint_is_detected() {
        let good = sample().encode();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(Checkpoint::decode(&bad).is_err(), "flip at {i} accepted");
        }
        for cut in 0..good.len() {
            assert!(Checkpoint::decode(&good[..cut]).is_err());
        }
    }
}
