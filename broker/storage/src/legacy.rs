//! Message formats v0 and v1 (magic 0 and 1), which Produce v0-2 carry and
//! Fetch v0-3 answer with (issue 21), converted to and from record batches
//! (magic 2), the only format the log stores.
//!
//! This is the one place where the broker decodes records and encodes them
//! again (the architecture's rule that a batch is never re-encoded holds for
//! every other path): only requests of those old versions pay for it.
//!
//! The old formats, as Kafka's `LegacyRecord` and `AbstractLegacyRecordBatch`
//! define them: a message set is a sequence of `offset: int64, size: int32,
//! message`; a message is `crc: uint32` (CRC-32, the IEEE polynomial, over
//! the rest of the message), `magic: int8`, `attributes: int8` (bits 0-2 the
//! codec, bit 3 for magic 1 the timestamp type: LogAppendTime when set),
//! `timestamp: int64` (magic 1 only), `key: bytes`, `value: bytes` (an
//! `int32` length, -1 for null). A compressed message (a "wrapper") holds in
//! its value a compressed message set of uncompressed inner messages of the
//! same magic; in magic 1 their offsets are relative to the wrapper's, which
//! carries the absolute offset of the last one.
//!
//! Up-conversion ([`up_convert`], Produce v0-2): every message of the set,
//! inner messages of wrappers included, becomes one record of a single v2
//! batch (producer id -1, no sequence, offsets 0..n), compressed with the
//! codec of the set's first wrapper, as Kafka re-compresses. CRCs are
//! checked first. Timestamps: magic 0 has none, so the records get the
//! broker's append time and the batch says LogAppendTime; magic 1 keeps
//! each message's CreateTime, or gets the append time where it (or its
//! wrapper) says LogAppendTime. Kafka's magic-0 LZ4 framing wrote a wrong
//! frame-descriptor checksum (KIP-57 fixed it for magic 1), so for magic 0
//! that checksum is recomputed before the frame is read, as Kafka ignored it.
//!
//! Down-conversion ([`down_convert`], Fetch v0-3): each record of the read
//! batches becomes one uncompressed message of the requested magic with its
//! absolute offset; control batches (transaction markers) and records before
//! the fetch offset are left out, and record headers are dropped (the old
//! formats have none). Kafka re-compresses with the batch's codec; Corelog
//! answers uncompressed, which every old client reads and which saves the
//! broker a compression per fetch.
//!
//! Both directions are bounded: decompression by the caller's
//! [`RecordLimits`], the converted output by `output_bytes_max` (the
//! server's `legacy_conversion_bytes_max`).

use crate::batch::{read_varint, BatchError, BatchHeader, BATCH_HEADER_BYTES};
use crate::codec::{self, Compression, DecompressError};
use crate::records::RecordLimits;

/// Magic byte of message format v0.
pub const MAGIC_V0: i8 = 0;
/// Magic byte of message format v1 (KIP-32: adds a timestamp).
pub const MAGIC_V1: i8 = 1;
/// `offset` (int64) and `size` (int32) before each message of a set.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// crc, magic, attributes, key length, value length.
const MESSAGE_V0_HEADER_BYTES: usize = 4 + 1 + 1 + 4 + 4;
/// Magic 1 adds the 8-byte timestamp.
const MESSAGE_V1_HEADER_BYTES: usize = MESSAGE_V0_HEADER_BYTES + 8;
/// The codec bits of a message's (and a batch's) attributes.
const CODEC_MASK: i8 = 0x07;
/// Magic 1 message attribute, and batch attribute: the timestamp is the
/// broker's append time.
const LOG_APPEND_TIME_FLAG: i8 = 0x08;
/// A v2 batch's control flag (transaction markers).
const BATCH_CONTROL_FLAG: i16 = 0x20;

/// Where a message-set byte string starts its magic byte: after offset,
/// size and crc. Lets the produce path tell a v2 batch from a message set.
pub const MAGIC_OFFSET: usize = LOG_OVERHEAD_BYTES + 4;

/// One message of a set, its fields borrowed from the set.
#[derive(Debug, Clone, Copy)]
struct Message<'a> {
    magic: i8,
    attributes: i8,
    /// -1 for magic 0.
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// One record to write into the v2 batch.
struct Converted {
    timestamp_ms: i64,
    append_time: bool,
}

/// Converts a message set of magic 0 and/or 1 to one v2 batch (base offset
/// 0), as the log stores it; `append_time_ms` is the broker's time for
/// messages without their own. The caller checks the result like any
/// produced batch ([`crate::ValidBatch::new`]).
///
/// Errors, as Kafka answers them: a bad CRC, a truncated message or
/// trailing bytes are corruption (CORRUPT_MESSAGE); a nested wrapper, an
/// empty set, mixed magic inside a wrapper or a magic 2 message are
/// [`BatchError::Invalid`] (INVALID_RECORD); zstd, which the old formats may
/// not carry, is [`BatchError::UnsupportedCodec`]; output past
/// `output_bytes_max` or decompression past `limits` is too large
/// (MESSAGE_TOO_LARGE).
pub fn up_convert(
    set: &[u8],
    append_time_ms: i64,
    limits: &RecordLimits,
    output_bytes_max: usize,
) -> Result<Vec<u8>, BatchError> {
    // The batch header's place, then the records; an uncompressed set
    // converts to about its own size, the usual case for old producers.
    let mut section = Vec::with_capacity(BATCH_HEADER_BYTES + set.len().min(output_bytes_max));
    section.resize(BATCH_HEADER_BYTES, 0);
    let mut count = 0usize;
    let mut codec_out = Compression::None;
    let mut all_append_time = true;
    let (mut base_ts, mut max_ts) = (None::<i64>, i64::MIN);
    let mut push = |m: &Message<'_>, wrapper_append_time: bool, section: &mut Vec<u8>| {
        let append_time =
            m.magic == MAGIC_V0 || wrapper_append_time || m.attributes & LOG_APPEND_TIME_FLAG != 0;
        let c = Converted {
            timestamp_ms: if append_time {
                append_time_ms
            } else {
                m.timestamp_ms
            },
            append_time,
        };
        all_append_time &= c.append_time;
        let base = *base_ts.get_or_insert(c.timestamp_ms);
        max_ts = max_ts.max(c.timestamp_ms);
        let before = section.len();
        write_v2_record(
            section,
            c.timestamp_ms.wrapping_sub(base),
            count,
            m.key,
            m.value,
        );
        count += 1;
        if section.len() - BATCH_HEADER_BYTES > output_bytes_max {
            section.truncate(before);
            return Err(BatchError::ConversionTooLarge {
                limit_bytes: output_bytes_max,
            });
        }
        Ok(())
    };
    let mut scratch = Vec::new();
    for outer in MessageSet::new(set) {
        let outer = outer?;
        let codec = message_codec(&outer)?;
        if codec == Compression::None {
            push(&outer, false, &mut section)?;
            continue;
        }
        if codec_out == Compression::None {
            codec_out = codec;
        }
        let value = outer
            .value
            .ok_or(BatchError::Invalid("compressed message with a null value"))?;
        scratch.clear();
        decompress_wrapper(codec, outer.magic, value, limits, &mut scratch)?;
        let wrapper_append_time =
            outer.magic == MAGIC_V1 && outer.attributes & LOG_APPEND_TIME_FLAG != 0;
        let mut inner_count = 0usize;
        for inner in MessageSet::new(&scratch) {
            let inner = inner?;
            if inner.magic != outer.magic {
                return Err(BatchError::Invalid(
                    "an inner message's magic differs from its wrapper's",
                ));
            }
            if inner.attributes & CODEC_MASK != 0 {
                return Err(BatchError::Invalid("a compressed message inside another"));
            }
            push(&inner, wrapper_append_time, &mut section)?;
            inner_count += 1;
        }
        if inner_count == 0 {
            return Err(BatchError::Invalid(
                "a compressed message holds no messages",
            ));
        }
    }
    if count == 0 {
        return Err(BatchError::Invalid("empty message set"));
    }
    let records = i32::try_from(count).map_err(|_| BatchError::ConversionTooLarge {
        limit_bytes: output_bytes_max,
    })?;
    let mut batch = if codec_out == Compression::None {
        section
    } else {
        let compressed = codec::compress(codec_out, &section[BATCH_HEADER_BYTES..])
            .map_err(|_| BatchError::Invalid("the converted records do not compress"))?;
        let mut batch = Vec::with_capacity(BATCH_HEADER_BYTES + compressed.len());
        batch.resize(BATCH_HEADER_BYTES, 0);
        batch.extend_from_slice(&compressed);
        batch
    };
    let mut attributes = codec_bits(codec_out);
    if all_append_time {
        attributes |= i16::from(LOG_APPEND_TIME_FLAG);
    }
    let base_ts = base_ts.unwrap_or(append_time_ms);
    fill_v2_header(&mut batch, attributes, records, base_ts, max_ts);
    Ok(batch)
}

/// Converts the v2 batches at the start of `batches` (as the log returns
/// them; a partial batch at the end is ignored) to a message set of `magic`
/// (0 or 1) for an old consumer, appending it to `out`.
///
/// Records before `fetch_offset` and control batches are left out. Whole
/// messages only: conversion stops before the message that would take
/// `out` past `output_bytes_max`, except that the first message always
/// goes in so that a consumer progresses. A batch that does not decode
/// (it passed the produce check, so only damage on disk does that) ends the
/// conversion with an error; what was converted before it stays in `out`.
pub fn down_convert(
    batches: &[u8],
    magic: i8,
    fetch_offset: i64,
    limits: &RecordLimits,
    output_bytes_max: usize,
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    let start = out.len();
    let mut rest = batches;
    let mut scratch = Vec::new();
    while rest.len() >= BATCH_HEADER_BYTES {
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            // A batch cut by the read's limit ends what can be converted.
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        };
        let (batch, next) = rest.split_at(header.total_bytes);
        rest = next;
        if header.attributes & BATCH_CONTROL_FLAG != 0 || header.next_offset().0 <= fetch_offset {
            continue;
        }
        let codec = header
            .compression()
            .ok_or(BatchError::Invalid("unknown compression codec"))?;
        let body = &batch[BATCH_HEADER_BYTES..];
        let records: &[u8] = if codec == Compression::None {
            body
        } else {
            scratch.clear();
            codec::decompress_into(codec, body, limits.decompressed_bytes_max, &mut scratch)
                .map_err(decompress_error)?;
            &scratch
        };
        let append_time = header.attributes & i16::from(LOG_APPEND_TIME_FLAG) != 0;
        let mut r = records;
        while !r.is_empty() {
            let record = read_v2_record(&mut r)?;
            let offset = header.base_offset.0 + i64::from(record.offset_delta);
            if offset < fetch_offset {
                continue;
            }
            let timestamp_ms = if append_time {
                header.max_timestamp_ms
            } else {
                header
                    .base_timestamp_ms
                    .wrapping_add(record.timestamp_delta)
            };
            let before = out.len();
            write_message(
                out,
                offset,
                magic,
                append_time,
                timestamp_ms,
                record.key,
                record.value,
            );
            if out.len() - start > output_bytes_max && before > start {
                out.truncate(before);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The codec a message's attributes name; zstd (4) and the unassigned ids
/// are refused, since the old formats never carried them.
fn message_codec(m: &Message<'_>) -> Result<Compression, BatchError> {
    match Compression::from_attributes(i16::from(m.attributes & CODEC_MASK)) {
        Some(Compression::Zstd) => Err(BatchError::UnsupportedCodec(
            "zstd needs message format v2 (Produce v7 or later)",
        )),
        Some(codec) => Ok(codec),
        None => Err(BatchError::Invalid(
            "unknown compression codec (attributes bits 0-2 are 5, 6 or 7)",
        )),
    }
}

fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

fn decompress_error(e: DecompressError) -> BatchError {
    match e {
        DecompressError::TooLarge { limit_bytes } => {
            BatchError::DecompressedTooLarge { limit_bytes }
        }
        DecompressError::Malformed { .. } => {
            BatchError::Undecompressible("a compressed message does not decompress with its codec")
        }
    }
}

/// Decompresses a wrapper's value onto `out`, within `limits`.
fn decompress_wrapper(
    codec: Compression,
    magic: i8,
    value: &[u8],
    limits: &RecordLimits,
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    let limit = limits.decompressed_bytes_max;
    if codec == Compression::Lz4 && magic == MAGIC_V0 {
        let mut fixed = value.to_vec();
        fix_lz4_header_checksum(&mut fixed);
        return codec::decompress_into(codec, &fixed, limit, out).map_err(decompress_error);
    }
    codec::decompress_into(codec, value, limit, out).map_err(decompress_error)
}

/// Rewrites the frame-descriptor checksum of the LZ4 frame that starts
/// `frame` with the correct one. Kafka's magic-0 writer computed it over
/// the frame magic as well as the descriptor (KIP-57), and its reader
/// ignored it for magic 0; the decoder here checks it, so it is made right
/// rather than trusted. Input too short for a descriptor is left alone (the
/// decoder refuses it).
fn fix_lz4_header_checksum(frame: &mut [u8]) {
    const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
    const FLG_DICT_ID: u8 = 0b0000_0001;
    if frame.len() < 7 || frame[..4] != codec::LZ4_FRAME_MAGIC {
        return;
    }
    let flg = frame[4];
    let mut end = 6; // FLG and BD
    if flg & FLG_CONTENT_SIZE != 0 {
        end += 8;
    }
    if flg & FLG_DICT_ID != 0 {
        end += 4;
    }
    if frame.len() <= end {
        return;
    }
    frame[end] = (xxh32_short(&frame[4..end]) >> 8) as u8;
}

/// XXH32 with seed 0 of fewer than 16 bytes (an LZ4 frame descriptor is 2
/// to 14), the short-input path of the reference algorithm.
fn xxh32_short(data: &[u8]) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    debug_assert!(data.len() < 16);
    let mut h = P5.wrapping_add(data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        h = h
            .wrapping_add(v.wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &b in words.remainder() {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

/// Walks a message set: each item is one message (CRC checked), or the
/// error that ends the walk. Bytes after the last whole message are an
/// error: a producer sends whole messages.
struct MessageSet<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> MessageSet<'a> {
    fn new(set: &'a [u8]) -> MessageSet<'a> {
        MessageSet {
            rest: set,
            failed: false,
        }
    }

    fn next_message(&mut self) -> Result<Message<'a>, BatchError> {
        let truncated = |needed_bytes, have_bytes| BatchError::Truncated {
            needed_bytes,
            have_bytes,
        };
        let rest = self.rest;
        if rest.len() < LOG_OVERHEAD_BYTES {
            return Err(truncated(LOG_OVERHEAD_BYTES, rest.len()));
        }
        let size = be_i32(rest, 8);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s >= MESSAGE_V0_HEADER_BYTES)
            .ok_or(BatchError::Invalid("message size smaller than a message"))?;
        let end = LOG_OVERHEAD_BYTES + size;
        if rest.len() < end {
            return Err(truncated(end, rest.len()));
        }
        let m = &rest[LOG_OVERHEAD_BYTES..end];
        self.rest = &rest[end..];
        let stored = be_i32(m, 0) as u32;
        let computed = crc32_ieee(&m[4..]);
        if stored != computed {
            return Err(BatchError::BadCrc { stored, computed });
        }
        let magic = m[4] as i8;
        let attributes = m[5] as i8;
        let (timestamp_ms, mut at) = match magic {
            MAGIC_V0 => (-1, 6),
            MAGIC_V1 if m.len() >= MESSAGE_V1_HEADER_BYTES => (be_i64(m, 6), 14),
            MAGIC_V1 => return Err(BatchError::Invalid("message size smaller than a message")),
            _ => {
                return Err(BatchError::Invalid(
                    "a message set may hold only magic 0 and 1 messages",
                ))
            }
        };
        let key = nullable_bytes(m, &mut at)?;
        let value = nullable_bytes(m, &mut at)?;
        if at != m.len() {
            return Err(BatchError::Invalid(
                "message size does not match its fields",
            ));
        }
        Ok(Message {
            magic,
            attributes,
            timestamp_ms,
            key,
            value,
        })
    }
}

impl<'a> Iterator for MessageSet<'a> {
    type Item = Result<Message<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let item = self.next_message();
        self.failed = item.is_err();
        Some(item)
    }
}

/// An `int32`-length-prefixed byte string at `*at` (-1: null).
fn nullable_bytes<'a>(m: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let bad = BatchError::Invalid("message key or value length does not fit the message");
    let len_end = at
        .checked_add(4)
        .filter(|&e| e <= m.len())
        .ok_or(bad.clone())?;
    let len = be_i32(m, *at);
    *at = len_end;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| bad.clone())?;
    let end = at.checked_add(len).filter(|&e| e <= m.len()).ok_or(bad)?;
    let bytes = &m[*at..end];
    *at = end;
    Ok(Some(bytes))
}

/// CRC-32 with the IEEE polynomial, as `LegacyRecord` computes it.
fn crc32_ieee(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32
}

/// Writes one uncompressed message with its offset and size.
fn write_message(
    out: &mut Vec<u8>,
    offset: i64,
    magic: i8,
    append_time: bool,
    timestamp_ms: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let header = if magic == MAGIC_V0 {
        MESSAGE_V0_HEADER_BYTES
    } else {
        MESSAGE_V1_HEADER_BYTES
    };
    let size = header + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(size as i32).to_be_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(magic as u8);
    let attributes = if magic == MAGIC_V1 && append_time {
        LOG_APPEND_TIME_FLAG
    } else {
        0
    };
    out.push(attributes as u8);
    if magic == MAGIC_V1 {
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    let crc = crc32_ieee(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One v2 record's fields, borrowed from the records section.
struct V2Record<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// Reads the record at the start of `r` (length prefix included) and moves
/// `r` past it. Headers are skipped: the record's length bounds them.
fn read_v2_record<'a>(r: &mut &'a [u8]) -> Result<V2Record<'a>, BatchError> {
    let bad = |why| BatchError::Record { index: 0, why };
    let (len, used) = read_varint(r).ok_or(bad("record length is not a varint"))?;
    let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
    let end = used
        .checked_add(len)
        .filter(|&e| e <= r.len())
        .ok_or(bad("record runs past the end of the batch"))?;
    let mut rec = &r[used..end];
    *r = &r[end..];
    // Attributes (one byte, unused) come first.
    rec = rec.get(1..).ok_or(bad("record has no attributes"))?;
    let varint = |rec: &mut &'a [u8], what| -> Result<i64, BatchError> {
        let (v, n) = read_varint(rec).ok_or(bad(what))?;
        *rec = &rec[n..];
        Ok(v)
    };
    let timestamp_delta = varint(&mut rec, "timestampDelta is not a varlong")?;
    let offset_delta = i32::try_from(varint(&mut rec, "offsetDelta is not a varint")?)
        .map_err(|_| bad("offsetDelta out of range"))?;
    let key_len = varint(&mut rec, "key length is not a varint")?;
    let key = take_v2(&mut rec, key_len).ok_or(bad("key length is invalid"))?;
    let value_len = varint(&mut rec, "value length is not a varint")?;
    let value = take_v2(&mut rec, value_len).ok_or(bad("value length is invalid"))?;
    Ok(V2Record {
        timestamp_delta,
        offset_delta,
        key,
        value,
    })
}

/// A v2 record's nullable byte field of `len` bytes (-1: null).
fn take_v2<'a>(r: &mut &'a [u8], len: i64) -> Option<Option<&'a [u8]>> {
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let bytes = r.get(..len)?;
    *r = &r[len..];
    Some(Some(bytes))
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends one v2 record (no headers) with its length prefix.
fn write_v2_record(
    out: &mut Vec<u8>,
    timestamp_delta: i64,
    offset_delta: usize,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let field_len = |f: Option<&[u8]>| match f {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    };
    // attributes, the deltas, key, value, and a header count of 0 (one
    // byte): the length is known before anything is written, so the
    // record goes straight into `out`.
    let len = 1
        + varint_len(timestamp_delta)
        + varint_len(offset_delta as i64)
        + field_len(key)
        + field_len(value)
        + 1;
    put_varint(out, len as i64);
    out.push(0); // attributes
    put_varint(out, timestamp_delta);
    put_varint(out, offset_delta as i64);
    for field in [key, value] {
        match field {
            None => put_varint(out, -1),
            Some(b) => {
                put_varint(out, b.len() as i64);
                out.extend_from_slice(b);
            }
        }
    }
    put_varint(out, 0); // no headers
}

/// The bytes `put_varint` writes for `v`.
fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Fills in the v2 batch header (base offset 0, no producer, leader epoch
/// -1) at the start of `batch`, whose records follow it, CRC-32C included.
fn fill_v2_header(batch: &mut [u8], attributes: i16, records: i32, base_ts: i64, max_ts: i64) {
    let mut h = Vec::with_capacity(BATCH_HEADER_BYTES);
    h.extend_from_slice(&0i64.to_be_bytes());
    let batch_length = (batch.len() - 12) as i32;
    h.extend_from_slice(&batch_length.to_be_bytes());
    h.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    h.push(2); // magic
    h.extend_from_slice(&[0; 4]); // crc, below
    h.extend_from_slice(&attributes.to_be_bytes());
    h.extend_from_slice(&(records - 1).to_be_bytes());
    h.extend_from_slice(&base_ts.to_be_bytes());
    h.extend_from_slice(&max_ts.to_be_bytes());
    h.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    h.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    h.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    h.extend_from_slice(&records.to_be_bytes());
    batch[..BATCH_HEADER_BYTES].copy_from_slice(&h);
    let crc = crc_fast::crc32_iscsi(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Builds and reads message sets for tests and tools (the server's tests
/// produce them as old clients do). Lives in the library, like
/// [`crate::batch::build`], so that other crates' tests can use it.
pub mod build {
    use super::*;

    /// One message with its offset and size and a correct CRC, of any
    /// attributes (a wrapper's codec bits included).
    pub fn message(
        offset: i64,
        magic: i8,
        attributes: i8,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = vec![magic as u8, attributes as u8];
        if magic == MAGIC_V1 {
            body.extend_from_slice(&timestamp_ms.to_be_bytes());
        }
        for field in [key, value] {
            match field {
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    body.extend_from_slice(b);
                }
            }
        }
        let mut out = offset.to_be_bytes().to_vec();
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(&crc32_ieee(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// A wrapper message of `magic` holding the message set `inner`
    /// compressed with `codec`, as old producers write it (for magic 0
    /// and LZ4, with Kafka's wrong descriptor checksum), with
    /// `extra_attributes` (the LogAppendTime flag) added.
    pub fn wrapper(
        magic: i8,
        codec: Compression,
        inner: &[u8],
        timestamp_ms: i64,
        extra_attributes: i8,
    ) -> Vec<u8> {
        let mut compressed =
            codec::compress(codec, inner).expect("compressing into memory cannot fail");
        if codec == Compression::Lz4 && magic == MAGIC_V0 {
            break_lz4_header_checksum(&mut compressed);
        }
        let attributes = codec_bits(codec) as i8 | extra_attributes;
        message(0, magic, attributes, timestamp_ms, None, Some(&compressed))
    }

    /// What Kafka's magic-0 LZ4 writer put in the descriptor checksum: the
    /// hash of the frame magic and the descriptor together.
    pub fn break_lz4_header_checksum(frame: &mut [u8]) {
        // Kafka's frames have neither a content size nor a dictionary id.
        let end = 6;
        frame[end] = (xxh32_short(&frame[..end]) >> 8) as u8;
    }

    /// One message read back from a set.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadMessage {
        pub offset: i64,
        pub magic: i8,
        pub attributes: i8,
        /// -1 for magic 0.
        pub timestamp_ms: i64,
        pub key: Option<Vec<u8>>,
        pub value: Option<Vec<u8>>,
    }

    /// Reads the messages of an uncompressed set as an old consumer does:
    /// each CRC checked, a partial message at the end left out.
    pub fn read_messages(set: &[u8]) -> Result<Vec<ReadMessage>, BatchError> {
        let mut out = Vec::new();
        let mut rest = set;
        while !rest.is_empty() {
            let offset = be_i64(rest.get(..8).unwrap_or(&[0; 8]), 0);
            let mut one = MessageSet::new(rest);
            let m = match one.next() {
                Some(Ok(m)) => m,
                Some(Err(BatchError::Truncated { .. })) | None => break,
                Some(Err(e)) => return Err(e),
            };
            rest = one.rest;
            out.push(ReadMessage {
                offset,
                magic: m.magic,
                attributes: m.attributes,
                timestamp_ms: m.timestamp_ms,
                key: m.key.map(<[u8]>::to_vec),
                value: m.value.map(<[u8]>::to_vec),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::build::{break_lz4_header_checksum, message};
    use super::*;
    use crate::batch::{set_base_offset, ValidBatch};
    use crate::txn::{marker_batch, MarkerKind, TxnMarker};
    use crate::types::{ProducerEpoch, ProducerId};

    const NOW_MS: i64 = 1_800_000_000_000;
    const OUT_MAX: usize = 64 << 20;

    /// `n` uncompressed messages: keys "k0".., values "value-0"..,
    /// timestamps 1000, 1010, ...; offsets relative (0..n) as a producer
    /// writes them.
    fn plain_set(magic: i8, n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                message(
                    i as i64,
                    magic,
                    0,
                    1000 + 10 * i as i64,
                    Some(format!("k{i}").as_bytes()),
                    Some(format!("value-{i}").as_bytes()),
                )
            })
            .collect()
    }

    fn wrapper(magic: i8, codec: Compression, inner: &[u8], extra_attributes: i8) -> Vec<u8> {
        build::wrapper(magic, codec, inner, 5000, extra_attributes)
    }

    /// The messages of a down-converted set: (offset, magic, attributes,
    /// timestamp, key, value), every CRC checked.
    #[allow(clippy::type_complexity)]
    fn read_set(set: &[u8]) -> Vec<(i64, i8, i8, i64, Option<Vec<u8>>, Option<Vec<u8>>)> {
        build::read_messages(set)
            .unwrap()
            .into_iter()
            .map(|m| {
                (
                    m.offset,
                    m.magic,
                    m.attributes,
                    m.timestamp_ms,
                    m.key,
                    m.value,
                )
            })
            .collect()
    }

    fn up(set: &[u8]) -> Result<Vec<u8>, BatchError> {
        up_convert(set, NOW_MS, &RecordLimits::default(), OUT_MAX)
    }

    fn down(batches: &[u8], magic: i8, from: i64) -> Vec<u8> {
        let mut out = Vec::new();
        down_convert(
            batches,
            magic,
            from,
            &RecordLimits::default(),
            OUT_MAX,
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn xxh32_matches_the_lz4_encoders_descriptor_checksum() {
        let frame = codec::compress(Compression::Lz4, b"some bytes to compress").unwrap();
        assert_eq!(frame[6], (xxh32_short(&frame[4..6]) >> 8) as u8);
        // Reference values of XXH32 with seed 0.
        assert_eq!(xxh32_short(b""), 0x02CC_5D05);
        assert_eq!(xxh32_short(b"a"), 0x550D_7456);
        assert_eq!(xxh32_short(b"abc"), 0x32D1_53FF);
    }

    #[test]
    fn a_magic_0_set_becomes_one_v2_batch_stamped_with_the_append_time() {
        let batch = up(&plain_set(MAGIC_V0, 3)).unwrap();
        let valid = ValidBatch::new(batch.clone().into(), &RecordLimits::default()).unwrap();
        let h = *valid.header();
        assert_eq!(h.records_count, 3);
        assert_eq!((h.base_timestamp_ms, h.max_timestamp_ms), (NOW_MS, NOW_MS));
        assert_ne!(h.attributes & i16::from(LOG_APPEND_TIME_FLAG), 0);
        assert!(!h.has_producer_id());
        // Back to magic 1: the append time, flagged as such.
        let back = read_set(&down(&batch, MAGIC_V1, 0));
        assert_eq!(back.len(), 3);
        for (i, m) in back.iter().enumerate() {
            assert_eq!(m.0, i as i64);
            assert_eq!((m.1, m.2, m.3), (MAGIC_V1, LOG_APPEND_TIME_FLAG, NOW_MS));
            assert_eq!(m.4.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(m.5.as_deref(), Some(format!("value-{i}").as_bytes()));
        }
    }

    #[test]
    fn every_codec_round_trips_in_both_magics_with_create_times() {
        for magic in [MAGIC_V0, MAGIC_V1] {
            for codec in [
                Compression::None,
                Compression::Gzip,
                Compression::Snappy,
                Compression::Lz4,
            ] {
                let inner = plain_set(magic, 5);
                let set = if codec == Compression::None {
                    inner
                } else {
                    // Two wrappers and a plain message after them.
                    let mut set = wrapper(magic, codec, &inner, 0);
                    set.extend(wrapper(magic, codec, &plain_set(magic, 2), 0));
                    set.extend(message(9, magic, 0, 2000, None, Some(b"last")));
                    set
                };
                let mut batch = up(&set).unwrap_or_else(|e| panic!("{magic} {codec:?}: {e}"));
                let valid = ValidBatch::new(batch.clone().into(), &RecordLimits::default())
                    .unwrap_or_else(|e| panic!("{magic} {codec:?}: {e}"));
                let expected = if codec == Compression::None { 5 } else { 8 };
                assert_eq!(valid.header().records_count, expected);
                // Re-compressed with the wrappers' codec, as Kafka does.
                assert_eq!(valid.header().compression(), Some(codec));
                set_base_offset(&mut batch, crate::types::Offset(100));
                let back = read_set(&down(&batch, MAGIC_V1, 0));
                assert_eq!(back.len(), expected as usize, "{magic} {codec:?}");
                for (i, m) in back.iter().enumerate() {
                    // Absolute offsets, uncompressed.
                    assert_eq!(m.0, 100 + i as i64);
                    assert_eq!(m.2 & CODEC_MASK, 0);
                    if magic == MAGIC_V1 {
                        let ts = match i {
                            0..=4 => 1000 + 10 * i as i64,
                            5..=6 => 1000 + 10 * (i as i64 - 5),
                            _ => 2000,
                        };
                        assert_eq!((m.2, m.3), (0, ts), "{codec:?} message {i}");
                    } else {
                        assert_eq!(m.3, NOW_MS);
                    }
                }
                assert_eq!(back[1].5.as_deref(), Some(&b"value-1"[..]));
                // And to magic 0: no timestamp.
                let v0 = read_set(&down(&batch, MAGIC_V0, 0));
                assert!(v0.iter().all(|m| m.1 == MAGIC_V0 && m.3 == -1));
                assert_eq!(v0.len(), back.len());
            }
        }
    }

    #[test]
    fn log_append_time_on_a_v1_wrapper_applies_to_its_messages() {
        let set = wrapper(
            MAGIC_V1,
            Compression::Gzip,
            &plain_set(MAGIC_V1, 2),
            LOG_APPEND_TIME_FLAG,
        );
        let batch = up(&set).unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.max_timestamp_ms, NOW_MS);
        assert_ne!(h.attributes & i16::from(LOG_APPEND_TIME_FLAG), 0);
    }

    #[test]
    fn kafkas_magic_0_lz4_framing_is_read_but_magic_1_must_be_right() {
        let inner = plain_set(MAGIC_V0, 2);
        assert_eq!(
            up(&wrapper(MAGIC_V0, Compression::Lz4, &inner, 0)).map(|_| ()),
            Ok(())
        );
        // The same broken checksum in magic 1 is refused, as Kafka does.
        let mut frame = codec::compress(Compression::Lz4, &plain_set(MAGIC_V1, 2)).unwrap();
        break_lz4_header_checksum(&mut frame);
        let set = message(0, MAGIC_V1, 3, 0, None, Some(&frame));
        assert!(matches!(up(&set), Err(BatchError::Undecompressible(_))));
    }

    #[test]
    fn bad_input_is_refused_with_kafkas_reasons() {
        let set = plain_set(MAGIC_V1, 2);
        // A flipped byte anywhere in the first message after its size fails
        // the CRC (offsets are the broker's to assign and are not checked).
        let first_end = LOG_OVERHEAD_BYTES + be_i32(&set, 8) as usize;
        for i in 12..first_end {
            let mut bad = set.clone();
            bad[i] ^= 0x01;
            let err = up(&bad).unwrap_err();
            assert!(
                err.is_corruption() || matches!(err, BatchError::Invalid(_)),
                "{i}: {err}"
            );
        }
        let mut bad = set.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(matches!(up(&bad), Err(BatchError::BadCrc { .. })));
        // Every truncation inside a message is refused without a panic.
        for cut in (0..set.len()).filter(|&c| c != first_end) {
            assert!(up(&set[..cut]).is_err(), "cut at {cut}");
        }
        // zstd never existed in these formats.
        let zstd = message(0, MAGIC_V1, 4, 0, None, Some(b"x"));
        assert!(matches!(up(&zstd), Err(BatchError::UnsupportedCodec(_))));
        // A wrapper inside a wrapper.
        let nested = wrapper(
            MAGIC_V1,
            Compression::Gzip,
            &wrapper(MAGIC_V1, Compression::Gzip, &set, 0),
            0,
        );
        assert!(matches!(up(&nested), Err(BatchError::Invalid(_))));
        // Magic 0 inside a magic 1 wrapper.
        let mixed = wrapper(MAGIC_V1, Compression::Gzip, &plain_set(MAGIC_V0, 1), 0);
        assert!(matches!(up(&mixed), Err(BatchError::Invalid(_))));
        // A magic 2 byte where a message set's magic is.
        let mut v2 = set.clone();
        v2[MAGIC_OFFSET] = 2;
        let crc = crc32_ieee(&v2[MAGIC_OFFSET..LOG_OVERHEAD_BYTES + be_i32(&v2, 8) as usize]);
        v2[12..16].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(up(&v2), Err(BatchError::Invalid(_))));
        // Garbage that claims gzip.
        let garbage = message(0, MAGIC_V1, 1, 0, None, Some(b"not gzip"));
        assert!(matches!(up(&garbage), Err(BatchError::Undecompressible(_))));
        assert!(matches!(up(&[]), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn the_conversion_is_bounded() {
        let set = plain_set(MAGIC_V1, 100);
        let err = up_convert(&set, NOW_MS, &RecordLimits::default(), 500).unwrap_err();
        assert_eq!(err, BatchError::ConversionTooLarge { limit_bytes: 500 });
        // A wrapper that decompresses past the decompression limit.
        let bomb = wrapper(MAGIC_V1, Compression::Gzip, &plain_set(MAGIC_V1, 1000), 0);
        let limits = RecordLimits {
            decompressed_bytes_max: 4096,
        };
        assert!(matches!(
            up_convert(&bomb, NOW_MS, &limits, OUT_MAX),
            Err(BatchError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn down_conversion_skips_markers_and_earlier_records_and_stops_at_whole_messages() {
        let mut first = up(&plain_set(MAGIC_V1, 4)).unwrap();
        set_base_offset(&mut first, crate::types::Offset(10));
        let mut marker = marker_batch(
            &TxnMarker {
                producer_id: ProducerId(7),
                producer_epoch: ProducerEpoch(0),
                coordinator_epoch: 0,
                kind: MarkerKind::Commit,
            },
            NOW_MS,
        );
        set_base_offset(&mut marker, crate::types::Offset(14));
        let mut second = up(&wrapper(
            MAGIC_V1,
            Compression::Snappy,
            &plain_set(MAGIC_V1, 3),
            0,
        ))
        .unwrap();
        set_base_offset(&mut second, crate::types::Offset(15));
        let log: Vec<u8> = [first, marker, second].concat();
        let offsets = |set: &[u8]| read_set(set).iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(
            offsets(&down(&log, MAGIC_V1, 0)),
            [10, 11, 12, 13, 15, 16, 17]
        );
        // From the middle of the first batch.
        assert_eq!(offsets(&down(&log, MAGIC_V1, 12)), [12, 13, 15, 16, 17]);
        // A partial batch at the end (a read's limit) is left out.
        assert_eq!(
            offsets(&down(&log[..log.len() - 5], MAGIC_V1, 0)),
            [10, 11, 12, 13]
        );
        // Bounded: whole messages only, and always the first.
        let one = down(&log, MAGIC_V1, 0);
        let size = read_set(&one[..]).len();
        assert_eq!(size, 7);
        let mut out = Vec::new();
        down_convert(&log, MAGIC_V1, 0, &RecordLimits::default(), 1, &mut out).unwrap();
        assert_eq!(offsets(&out), [10]);
        let two = out.len() * 2;
        out.clear();
        down_convert(&log, MAGIC_V1, 0, &RecordLimits::default(), two, &mut out).unwrap();
        assert_eq!(offsets(&out), [10, 11]);
    }

    proptest::proptest! {
        /// Damaged input of either direction is refused or converted,
        /// never a panic: a valid message set (and its batch) in each
        /// codec with a few bytes changed, cut or added.
        #[test]
        fn damaged_input_never_panics(
            codec in 0usize..4,
            magic in 0i8..2,
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..6),
            cut in proptest::prelude::any::<usize>(),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let codec = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4][codec];
            let inner = plain_set(magic, 4);
            let set = if codec == Compression::None { inner } else { wrapper(magic, codec, &inner, 0) };
            let batch = up(&set).unwrap();
            for mut bytes in [set, batch] {
                for &(at, byte) in &edits {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                bytes.truncate(cut % (bytes.len() + 1));
                bytes.extend_from_slice(&tail);
                let _ = up_convert(&bytes, NOW_MS, &RecordLimits { decompressed_bytes_max: 1 << 16 }, 1 << 16);
                let mut out = Vec::new();
                let _ = down_convert(&bytes, magic, 0, &RecordLimits { decompressed_bytes_max: 1 << 16 }, 1 << 16, &mut out);
            }
        }
    }

    #[test]
    fn varint_len_is_what_put_varint_writes() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }

    #[test]
    fn down_conversion_drops_headers_and_keeps_nulls() {
        use crate::batch::build::{batch, BatchSpec};
        let mut b = batch(&BatchSpec {
            records: 3,
            timestamp_step_ms: 5,
            compression: Compression::Gzip,
            ..Default::default()
        });
        set_base_offset(&mut b, crate::types::Offset(3));
        let back = read_set(&down(&b, MAGIC_V1, 0));
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].0, 5);
        assert_eq!(back[2].3, 1_700_000_000_010);
        assert_eq!(back[0].4, None);
        assert_eq!(back[0].5.as_ref().map(Vec::len), Some(16));
    }
}
