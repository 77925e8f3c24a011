//! Kafka record batches (magic v2) as they travel on the wire and lie on disk.
//!
//! The broker never decodes a batch into records and re-encodes it: it reads
//! the fixed 61-byte header in place, checks it, and rewrites only the
//! `baseOffset` field, which the CRC does not cover.

use bytes::Bytes;

pub use crate::codec::Compression;
use crate::records::{check_records, RecordLimits, RecordsSummary};
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// Size of the fixed record batch header, up to and including `recordsCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` ends: `baseOffset` (8) plus `batchLength` (4).
/// A batch's total size is this plus the value of `batchLength`.
pub const BATCH_LOG_OVERHEAD_BYTES: usize = 12;
const MAGIC_V2: i8 = 2;

// Field positions inside the header, as the Kafka message format defines them.
const OFF_BASE_OFFSET: usize = 0;
const OFF_BATCH_LENGTH: usize = 8;
const OFF_PARTITION_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORDS_COUNT: usize = 57;

const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused. Each maps to a Kafka error code in the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The bytes end before the header or before `batchLength` says they do.
    /// Kafka answers CORRUPT_MESSAGE.
    #[error("batch truncated: need {needed_bytes} bytes, have {have_bytes}")]
    Truncated {
        needed_bytes: usize,
        have_bytes: usize,
    },
    /// `batchLength` is smaller than the header it must contain.
    #[error("batch length {0} is smaller than the batch header")]
    LengthTooSmall(i32),
    /// Only magic v2 batches are accepted; older formats are refused, not converted.
    #[error("unsupported magic {0}")]
    BadMagic(i8),
    /// The CRC32C over attributes..end does not match. CORRUPT_MESSAGE.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    /// Header fields contradict each other or the records. INVALID_RECORD.
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// One record's fields do not decode (`index` counts from 0 in the
    /// batch). INVALID_RECORD.
    #[error("invalid record {index} in batch: {why}")]
    Record { index: usize, why: &'static str },
    /// The compressed records section is not a valid stream of the codec
    /// the attributes name. CORRUPT_MESSAGE.
    #[error("invalid compressed batch: {0}")]
    Undecompressible(&'static str),
    /// The records section decompresses to more than the check allows
    /// (`batch_decompressed_bytes_max`). MESSAGE_TOO_LARGE.
    #[error("batch decompresses to more than {limit_bytes} bytes (batch_decompressed_bytes_max)")]
    DecompressedTooLarge { limit_bytes: usize },
    /// A message set of an old format (magic 0 or 1) converts to more than
    /// `legacy_conversion_bytes_max` (see [`crate::legacy`]).
    /// MESSAGE_TOO_LARGE.
    #[error("message set converts to more than {limit_bytes} bytes (legacy_conversion_bytes_max)")]
    ConversionTooLarge { limit_bytes: usize },
    /// A codec the message's format may not carry (zstd in magic 0 or 1).
    /// UNSUPPORTED_COMPRESSION_TYPE.
    #[error("unsupported compression: {0}")]
    UnsupportedCodec(&'static str),
}

impl BatchError {
    /// True for damage to the bytes (CORRUPT_MESSAGE); false for well-formed
    /// bytes carrying inconsistent fields (INVALID_RECORD).
    pub fn is_corruption(&self) -> bool {
        !matches!(
            self,
            BatchError::Invalid(_)
                | BatchError::Record { .. }
                | BatchError::DecompressedTooLarge { .. }
                | BatchError::ConversionTooLarge { .. }
                | BatchError::UnsupportedCodec(_)
        )
    }
}

/// A read-only view of a batch header. Cheap to build: it only reads fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    /// Bytes of the whole batch, header included.
    pub total_bytes: usize,
    /// The epoch of the leader that appended the batch (-1 as a producer
    /// sends it, before a leader stamps it).
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `bytes` without validating the CRC.
    /// Fails if the bytes are too short for the header or the declared length.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_BYTES,
                have_bytes: bytes.len(),
            });
        }
        let batch_length = be_i32(bytes, OFF_BATCH_LENGTH);
        if batch_length < (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32 {
            return Err(BatchError::LengthTooSmall(batch_length));
        }
        let magic = bytes[OFF_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let total_bytes = batch_length as usize + BATCH_LOG_OVERHEAD_BYTES;
        if bytes.len() < total_bytes {
            return Err(BatchError::Truncated {
                needed_bytes: total_bytes,
                have_bytes: bytes.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: Offset(be_i64(bytes, OFF_BASE_OFFSET)),
            total_bytes,
            partition_leader_epoch: be_i32(bytes, OFF_PARTITION_LEADER_EPOCH),
            attributes: be_i16(bytes, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(bytes, OFF_LAST_OFFSET_DELTA),
            base_timestamp_ms: be_i64(bytes, OFF_BASE_TIMESTAMP),
            max_timestamp_ms: be_i64(bytes, OFF_MAX_TIMESTAMP),
            producer_id: ProducerId(be_i64(bytes, OFF_PRODUCER_ID)),
            producer_epoch: ProducerEpoch(be_i16(bytes, OFF_PRODUCER_EPOCH)),
            base_sequence: be_i32(bytes, OFF_BASE_SEQUENCE),
            records_count: be_i32(bytes, OFF_RECORDS_COUNT),
        })
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset.0 + self.last_offset_delta as i64)
    }

    /// The offset right after this batch.
    pub fn next_offset(&self) -> Offset {
        Offset(self.base_offset.0 + self.last_offset_delta as i64 + 1)
    }

    /// The codec, or None for the unassigned ids 5-7 (which a
    /// [`ValidBatch`] never has).
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Whether the batch carries idempotent producer fields.
    pub fn has_producer_id(&self) -> bool {
        !self.producer_id.is_none()
    }
}

/// Fully validates the single batch that `bytes` must hold exactly: length,
/// magic, CRC32C, record count and producer fields, as the log may store
/// the batch: a batch the cleaner rebuilt may have gaps in its offsets and
/// no record. Used on recovery (for every batch past the recovery point)
/// and on reads from disk; produce uses [`ValidBatch::new`], which accepts
/// only a producer's shape.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.total_bytes != bytes.len() {
        return Err(BatchError::Invalid("batch length does not match the bytes"));
    }
    validate_at(bytes, &header)?;
    Ok(header)
}

/// Validates the batch that starts `bytes` (which may continue past it), as
/// recovery does when it walks a segment.
pub fn validate_prefix(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    validate_at(&bytes[..header.total_bytes], &header)?;
    Ok(header)
}

fn validate_at(bytes: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    check_crc_and_header(bytes, header, Shape::Stored)?;
    if header.compression() == Some(Compression::None) {
        let counted = count_records(&bytes[BATCH_HEADER_BYTES..]).ok_or(BatchError::Invalid(
            "record lengths do not add up to the batch",
        ))?;
        if counted != header.records_count as usize {
            return Err(BatchError::Invalid(
                "record count does not match the records",
            ));
        }
    }
    Ok(())
}

/// Which batches a check accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// As a producer sends it: at least one record, one per offset.
    Produced,
    /// As a log may store it: also a batch the cleaner rebuilt (see
    /// [`crate::clean`]), whose dropped records leave gaps below its kept
    /// last offset, and which may hold no record at all (kept for a
    /// producer's sequence).
    Stored,
}

/// The CRC and the header fields' agreement with each other.
fn check_crc_and_header(
    bytes: &[u8],
    header: &BatchHeader,
    shape: Shape,
) -> Result<(), BatchError> {
    let stored = be_i32(bytes, OFF_CRC) as u32;
    let computed = crc_fast::crc32_iscsi(&bytes[OFF_ATTRIBUTES..]);
    if stored != computed {
        return Err(BatchError::BadCrc { stored, computed });
    }
    match shape {
        Shape::Produced => {
            if header.records_count <= 0 {
                return Err(BatchError::Invalid("batch has no records"));
            }
            if header.last_offset_delta != header.records_count - 1 {
                return Err(BatchError::Invalid(
                    "lastOffsetDelta does not match the record count",
                ));
            }
        }
        Shape::Stored => {
            if header.records_count < 0 {
                return Err(BatchError::Invalid("negative record count"));
            }
            if header.last_offset_delta < header.records_count - 1 {
                return Err(BatchError::Invalid(
                    "lastOffsetDelta is below the record count",
                ));
            }
        }
    }
    if header.has_producer_id() {
        if header.producer_epoch.is_none() {
            return Err(BatchError::Invalid("producer id without a producer epoch"));
        }
        // A transaction marker (a control batch) carries no sequence, as
        // Kafka writes it, and neither does a group coordinator's
        // transactional batch of offsets (TxnOffsetCommit); the log refuses
        // both from clients (`PartitionLog::append_valid`).
        if header.base_sequence < 0 && !header.is_control() && !header.is_transactional() {
            return Err(BatchError::Invalid("producer id without a base sequence"));
        }
    } else if header.is_transactional() {
        return Err(BatchError::Invalid(
            "transactional batch without a producer id",
        ));
    }
    Ok(())
}

/// The checks of [`ValidBatch::new`] before it walks the records: the
/// single batch `bytes` must hold, its header fields and its CRC.
pub fn validate_header_and_crc(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.total_bytes != bytes.len() {
        return Err(BatchError::Invalid("batch length does not match the bytes"));
    }
    check_crc_and_header(bytes, &header, Shape::Produced)?;
    Ok(header)
}

/// One batch that passed every check the log makes before it stores bytes:
/// the header, the CRC, and every record inside, decompressed if need be
/// ([`check_records`]). The only way to build one is [`ValidBatch::new`], so
/// a log that appends only `ValidBatch`es stores nothing a consumer cannot
/// decode. Checking is separate from appending so that the produce path can
/// do it on the connection's shard, before the batch travels to the shard
/// that owns the partition, and outside that partition's log borrow.
#[derive(Debug, Clone)]
pub struct ValidBatch {
    bytes: Bytes,
    header: BatchHeader,
    summary: RecordsSummary,
}

impl ValidBatch {
    /// Checks `bytes`, which must hold exactly one batch.
    pub fn new(bytes: Bytes, limits: &RecordLimits) -> Result<ValidBatch, BatchError> {
        let header = validate_header_and_crc(&bytes)?;
        let summary = check_records(&bytes, &header, limits)?;
        Ok(ValidBatch {
            bytes,
            header,
            summary,
        })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn summary(&self) -> &RecordsSummary {
        &self.summary
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// Counts the records of an uncompressed batch body by walking their length
/// prefixes. Returns None if the lengths do not end exactly at the end.
fn count_records(mut body: &[u8]) -> Option<usize> {
    let mut count = 0usize;
    while !body.is_empty() {
        let (len, used) = read_varint(body)?;
        if len < 0 {
            return None;
        }
        let rest = body.get(used..)?;
        body = rest.get(len as usize..)?;
        count += 1;
    }
    Some(count)
}

/// Finds the timestamp and offset of the first record at or after
/// `target_ms` in an uncompressed batch. Returns None for compressed batches,
/// whose records this layer does not decompress; callers then use the batch
/// as a whole.
pub fn first_record_at_or_after(bytes: &[u8], target_ms: i64) -> Option<(Offset, i64)> {
    let header = BatchHeader::parse(bytes).ok()?;
    if header.compression() != Some(Compression::None) {
        return None;
    }
    let mut body = bytes.get(BATCH_HEADER_BYTES..header.total_bytes)?;
    while !body.is_empty() {
        let (len, used) = read_varint(body)?;
        let record = body.get(used..used + usize::try_from(len).ok()?)?;
        // Record layout: attributes (int8), timestampDelta (varlong), offsetDelta (varint), ...
        let (ts_delta, n1) = read_varint(record.get(1..)?)?;
        let (off_delta, _) = read_varint(record.get(1 + n1..)?)?;
        let ts = header.base_timestamp_ms + ts_delta;
        if ts >= target_ms {
            return Some((Offset(header.base_offset.0 + off_delta), ts));
        }
        body = body.get(used + len as usize..)?;
    }
    None
}

/// Reads a zig-zag varint (up to 64 bits), returning the value and the bytes used.
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, b) in bytes.iter().take(10).enumerate() {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

/// Rewrites the `baseOffset` field in place. The CRC does not cover it, so
/// the batch stays valid.
pub fn set_base_offset(bytes: &mut [u8], base: Offset) {
    bytes[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base.0.to_be_bytes());
}

/// Rewrites the `partitionLeaderEpoch` field in place. The CRC does not
/// cover it (Kafka leaves it outside so that a leader can stamp a batch
/// without recomputing the CRC), so the batch stays valid.
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: LeaderEpoch) {
    bytes[OFF_PARTITION_LEADER_EPOCH..OFF_PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&epoch.0.to_be_bytes());
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Builds valid batches for tests and benchmarks. Lives in the library (not
/// behind cfg(test)) so the crash-test child, the benchmark and the server
/// tests can all make real batches.
pub mod build {
    use super::*;

    /// Options for a built batch.
    #[derive(Debug, Clone)]
    pub struct BatchSpec {
        pub records: usize,
        pub value_bytes: usize,
        pub base_timestamp_ms: i64,
        /// Added to the base timestamp for each following record.
        pub timestamp_step_ms: i64,
        pub producer_id: ProducerId,
        pub producer_epoch: ProducerEpoch,
        pub base_sequence: i32,
        /// A byte stamped into every value so that tests can recognise a batch.
        pub fill: u8,
        /// The codec of the records section.
        pub compression: Compression,
    }

    impl Default for BatchSpec {
        fn default() -> Self {
            BatchSpec {
                records: 1,
                value_bytes: 16,
                base_timestamp_ms: 1_700_000_000_000,
                timestamp_step_ms: 0,
                producer_id: ProducerId::NONE,
                producer_epoch: ProducerEpoch::NONE,
                base_sequence: -1,
                fill: 0xab,
                compression: Compression::None,
            }
        }
    }

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// Encodes a complete, valid batch with base offset 0.
    pub fn batch(spec: &BatchSpec) -> Vec<u8> {
        let section = records_section(spec);
        let section = crate::codec::compress(spec.compression, &section)
            .expect("compressing into memory cannot fail");
        let codec_bits = match spec.compression {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        wrap(spec, codec_bits, &section)
    }

    /// The uncompressed records of `spec`, each with its length prefix.
    pub fn records_section(spec: &BatchSpec) -> Vec<u8> {
        let mut body = Vec::with_capacity(spec.records * (spec.value_bytes + 16));
        for i in 0..spec.records {
            let mut rec = Vec::with_capacity(spec.value_bytes + 12);
            rec.push(0); // attributes
            put_varint(&mut rec, spec.timestamp_step_ms * i as i64);
            put_varint(&mut rec, i as i64);
            put_varint(&mut rec, -1); // null key
            put_varint(&mut rec, spec.value_bytes as i64);
            rec.extend(std::iter::repeat_n(spec.fill, spec.value_bytes));
            put_varint(&mut rec, 0); // no headers
            put_varint(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        body
    }

    /// A batch header for `spec` (its record count, timestamps and producer
    /// fields) with `attributes`, followed by `section` as the records,
    /// whatever they hold, with a correct CRC: for tests that need a batch
    /// whose checksum passes but whose contents are wrong.
    pub fn wrap(spec: &BatchSpec, attributes: i16, section: &[u8]) -> Vec<u8> {
        let max_ts = spec.base_timestamp_ms + spec.timestamp_step_ms * (spec.records as i64 - 1);
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + section.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        let batch_length = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES + section.len()) as i32;
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&[0; 4]); // crc, filled below
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(spec.records as i32 - 1).to_be_bytes());
        out.extend_from_slice(&spec.base_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&max_ts.to_be_bytes());
        out.extend_from_slice(&spec.producer_id.0.to_be_bytes());
        out.extend_from_slice(&spec.producer_epoch.0.to_be_bytes());
        out.extend_from_slice(&spec.base_sequence.to_be_bytes());
        out.extend_from_slice(&(spec.records as i32).to_be_bytes());
        out.extend_from_slice(section);
        let crc = crc_fast::crc32_iscsi(&out[OFF_ATTRIBUTES..]);
        out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::{batch, BatchSpec};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The batch CRC is Kafka's CRC-32C (Castagnoli): the fast crate
        /// must agree with the plain `crc32c` crate on every length,
        /// including the lengths where its folding loops change strides.
        #[test]
        fn batch_crc_agrees_with_the_reference_crc32c(
            len in 0usize..5000,
            big in prop::bool::ANY,
            seed in any::<u64>(),
        ) {
            let len = if big { len * 257 } else { len };
            let mut x = seed | 1;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            prop_assert_eq!(crc_fast::crc32_iscsi(&data), crc32c::crc32c(&data));
        }
    }

    #[test]
    fn built_batch_validates_and_reports_its_fields() {
        let b = batch(&BatchSpec {
            records: 5,
            timestamp_step_ms: 10,
            ..Default::default()
        });
        let h = validate(&b).unwrap();
        assert_eq!(h.records_count, 5);
        assert_eq!(h.last_offset_delta, 4);
        assert_eq!(h.max_timestamp_ms - h.base_timestamp_ms, 40);
        assert_eq!(h.total_bytes, b.len());
    }

    #[test]
    fn rewriting_base_offset_keeps_the_crc_valid() {
        let mut b = batch(&BatchSpec::default());
        set_base_offset(&mut b, Offset(1234));
        let h = validate(&b).unwrap();
        assert_eq!(h.base_offset, Offset(1234));
    }

    #[test]
    fn any_flipped_byte_after_the_offset_field_is_rejected() {
        let b = batch(&BatchSpec {
            records: 3,
            ..Default::default()
        });
        // Bytes 0..8 are baseOffset (not covered); 12..16 is the leader epoch,
        // which the CRC does not cover either.
        for i in (8..12).chain(16..b.len()) {
            let mut damaged = b.clone();
            damaged[i] ^= 0x40;
            assert!(validate(&damaged).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn truncated_batch_is_corruption_not_a_panic() {
        let b = batch(&BatchSpec {
            records: 3,
            ..Default::default()
        });
        for cut in 0..b.len() {
            let err = validate(&b[..cut]).unwrap_err();
            assert!(err.is_corruption() || matches!(err, BatchError::Invalid(_)));
        }
    }

    #[test]
    fn record_count_mismatch_is_invalid_record() {
        let mut b = batch(&BatchSpec {
            records: 3,
            ..Default::default()
        });
        b[OFF_RECORDS_COUNT..OFF_RECORDS_COUNT + 4].copy_from_slice(&2i32.to_be_bytes());
        b[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
        b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate(&b),
            Err(BatchError::Invalid(
                "record count does not match the records"
            ))
        );
    }

    #[test]
    fn first_record_at_or_after_finds_the_record_inside_the_batch() {
        let mut b = batch(&BatchSpec {
            records: 4,
            base_timestamp_ms: 1000,
            timestamp_step_ms: 100,
            ..Default::default()
        });
        set_base_offset(&mut b, Offset(50));
        assert_eq!(first_record_at_or_after(&b, 1150), Some((Offset(52), 1200)));
        assert_eq!(first_record_at_or_after(&b, 0), Some((Offset(50), 1000)));
        assert_eq!(first_record_at_or_after(&b, 1301), None);
    }
}
