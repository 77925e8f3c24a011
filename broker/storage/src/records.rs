//! The records inside a batch, checked the way a consumer will read them.
//!
//! A batch whose CRC is right can still carry records no consumer can
//! decode: a compressed payload that is garbage or of another codec, record
//! lengths or varints that do not add up, offset deltas out of order. Once
//! stored, such a batch fails every consumer that reaches its offsets, so
//! one faulty producer would poison a partition. Before a batch is appended,
//! [`check_records`] walks every record (after decompressing the records
//! section, within a bound) the way Kafka's log validator and its clients
//! do. The walk only reads: the bytes are stored exactly as sent.

use std::cell::RefCell;

use crate::batch::{BatchError, BatchHeader, BATCH_HEADER_BYTES};
use crate::codec::{self, Compression, DecompressError};

/// Bounds on what checking a batch's records may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// The most bytes a batch's records section may decompress to. The
    /// check holds the decompressed bytes while it walks them, so this is
    /// also the most memory one check takes; a batch over it is refused
    /// (MESSAGE_TOO_LARGE, which makes the Java producer split the batch).
    pub decompressed_bytes_max: usize,
}

impl Default for RecordLimits {
    fn default() -> Self {
        RecordLimits {
            decompressed_bytes_max: DECOMPRESSED_BYTES_MAX_DEFAULT,
        }
    }
}

/// 64 MiB: a batch is at most `max.message.bytes` (1 MiB by default) on
/// the wire, and real record data compresses well under 64:1, while a
/// decompression bomb (a megabyte of zeros per kilobyte) stops here.
pub const DECOMPRESSED_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// What the walk learned about the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    pub records: usize,
    /// Records with a null key, which a compacted topic cannot hold.
    pub keyless_records: usize,
    /// Bytes of the records section once decompressed.
    pub records_bytes: usize,
}

/// Decompressed bytes kept between checks, so that a shard checking one
/// compressed batch after another does not allocate and fault in a fresh
/// buffer for each; anything larger is given back after the check.
const SCRATCH_KEPT_BYTES: usize = 4 << 20;

thread_local! {
    /// Lives on: each shard's thread (checks are synchronous, never nested).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Checks every record of the batch `bytes` (whose header is `header`):
/// the codec is one Kafka defines, a compressed section decompresses within
/// `limits`, each record's length, varints, key, value and headers end
/// exactly where its length says, offset deltas run 0, 1, 2, ..., and the
/// count matches `recordsCount`. Does not check the CRC (see
/// [`crate::batch::ValidBatch`]).
pub fn check_records(
    bytes: &[u8],
    header: &BatchHeader,
    limits: &RecordLimits,
) -> Result<RecordsSummary, BatchError> {
    let codec = Compression::from_attributes(header.attributes).ok_or(BatchError::Invalid(
        "unknown compression codec (attributes bits 0-2 are 5, 6 or 7)",
    ))?;
    let section = bytes
        .get(BATCH_HEADER_BYTES..header.total_bytes)
        .ok_or(BatchError::Invalid("batch shorter than its header says"))?;
    let expected = usize::try_from(header.records_count)
        .map_err(|_| BatchError::Invalid("negative record count"))?;
    if codec == Compression::None {
        return walk(section, expected, section.len());
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let result =
            match codec::decompress_into(codec, section, limits.decompressed_bytes_max, scratch) {
                Ok(()) => walk(scratch, expected, scratch.len()),
                Err(DecompressError::TooLarge { limit_bytes }) => {
                    Err(BatchError::DecompressedTooLarge { limit_bytes })
                }
                Err(DecompressError::Malformed { .. }) => Err(BatchError::Undecompressible(
                    "the records section does not decompress with the batch's codec",
                )),
            };
        scratch.clear();
        if scratch.capacity() > SCRATCH_KEPT_BYTES {
            scratch.shrink_to(SCRATCH_KEPT_BYTES);
        }
        result
    })
}

/// Walks `expected` length-prefixed records that must fill `section`.
fn walk(
    mut section: &[u8],
    expected: usize,
    records_bytes: usize,
) -> Result<RecordsSummary, BatchError> {
    let mut index = 0usize;
    let mut keyless_records = 0usize;
    while !section.is_empty() {
        if index == expected {
            return Err(BatchError::Invalid(
                "more records than the batch's recordsCount",
            ));
        }
        let fail = |why| BatchError::Record { index, why };
        let len = varint(&mut section).ok_or(fail("record length is not a varint"))?;
        let len = usize::try_from(len).map_err(|_| fail("negative record length"))?;
        let record = section
            .get(..len)
            .ok_or(fail("record runs past the end of the batch"))?;
        section = &section[len..];
        if !record_has_key(record, index).map_err(fail)? {
            keyless_records += 1;
        }
        index += 1;
    }
    if index != expected {
        return Err(BatchError::Invalid(
            "fewer records than the batch's recordsCount",
        ));
    }
    Ok(RecordsSummary {
        records: index,
        keyless_records,
        records_bytes,
    })
}

/// Reads one record's fields (its length prefix already taken) and
/// reports whether it has a key.
///
/// Layout (Kafka's `DefaultRecord`): attributes int8, timestampDelta
/// varlong, offsetDelta varint, keyLength varint, key, valueLength varint,
/// value, headers count varint, then per header keyLength varint, key,
/// valueLength varint, value.
fn record_has_key(mut r: &[u8], index: usize) -> Result<bool, &'static str> {
    skip(&mut r, 1).ok_or("record has no attributes")?;
    varlong(&mut r).ok_or("timestampDelta is not a varlong")?;
    let offset_delta = varint(&mut r).ok_or("offsetDelta is not a varint")?;
    // Consumers compute each record's offset as base + offsetDelta; any
    // other sequence would give records offsets that repeat or fall in
    // another batch's range.
    if usize::try_from(offset_delta).ok() != Some(index) {
        return Err("offsetDelta is not the record's position in the batch");
    }
    let key_len = varint(&mut r).ok_or("key length is not a varint")?;
    nullable_bytes(&mut r, key_len).ok_or("key length is invalid")?;
    let value_len = varint(&mut r).ok_or("value length is not a varint")?;
    nullable_bytes(&mut r, value_len).ok_or("value length is invalid")?;
    let headers = varint(&mut r).ok_or("header count is not a varint")?;
    if headers < 0 {
        return Err("negative header count");
    }
    // Each header takes at least two bytes, so a count larger than the
    // record fails within the record's length, not after `headers` turns.
    for _ in 0..headers {
        let key_len = varint(&mut r).ok_or("header key length is not a varint")?;
        if key_len < 0 {
            return Err("negative header key length");
        }
        skip(&mut r, key_len as usize).ok_or("header key runs past the record")?;
        let value_len = varint(&mut r).ok_or("header value length is not a varint")?;
        nullable_bytes(&mut r, value_len).ok_or("header value length is invalid")?;
    }
    if !r.is_empty() {
        return Err("record length does not match its fields");
    }
    Ok(key_len >= 0)
}

/// Skips a field of `len` bytes, where -1 means null.
fn nullable_bytes(r: &mut &[u8], len: i32) -> Option<()> {
    match len {
        -1 => Some(()),
        l if l >= 0 => skip(r, l as usize),
        _ => None,
    }
}

fn skip(r: &mut &[u8], n: usize) -> Option<()> {
    *r = r.get(n..)?;
    Some(())
}

/// A zig-zag varint of at most 5 bytes, as Kafka's `ByteUtils.readVarint`,
/// except that a fifth byte with bits past the 32nd is refused. Java drops
/// those bits silently; librdkafka (2.16) stops consuming the partition at
/// such a record and kafka-python reads another length, so a batch holding
/// one would stall or break those consumers (found by the network fuzzer,
/// issue 24). No correct encoder writes one.
fn varint(r: &mut &[u8]) -> Option<i32> {
    let mut raw: u32 = 0;
    for i in 0..5 {
        let b = *r.get(i)?;
        if i == 4 && b > 0x0f {
            return None;
        }
        raw |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *r = &r[i + 1..];
            return Some((raw >> 1) as i32 ^ -((raw & 1) as i32));
        }
    }
    None
}

/// A zig-zag varlong of at most 10 bytes, as Kafka's `ByteUtils.readVarlong`,
/// with a tenth byte past the 64th bit refused, as in [`varint`].
fn varlong(r: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *r.get(i)?;
        if i == 9 && b > 0x01 {
            return None;
        }
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *r = &r[i + 1..];
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}
