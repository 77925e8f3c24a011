//! Decompression of a record batch's records section, in the framings
//! Kafka's clients write.
//!
//! The broker stores batches exactly as producers send them; it decompresses
//! only to check that every record inside can be decoded
//! ([`crate::records`]), and then throws the output away. The load generator
//! uses the same code to read what it consumes.
//!
//! The framings, as Kafka's clients write them:
//!
//! * gzip: a gzip stream (RFC 1952), possibly several members back to back,
//!   as `java.util.zip.GZIPInputStream` reads them.
//! * snappy: either the xerial snappy-java stream framing that the Java
//!   producer's `SnappyOutputStream` writes ([`SNAPPY_JAVA_MAGIC`]), or one
//!   bare raw snappy block, which librdkafka writes. Every reader tells the
//!   two apart by the magic.
//! * lz4: the standard LZ4 frame format. KIP-57 fixed the frame-descriptor
//!   checksum for message format v1 and later, so a v2 batch carries a
//!   correct one.
//! * zstd: standard zstd frames.
//!
//! Every decoder is bounded by the caller's limit on output bytes: the input
//! comes from the network, and a few kilobytes of it can claim gigabytes of
//! output. Malformed input is an error, never a panic.

use std::io::{Read, Write};

/// A batch's compression codec (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec named by a batch's attributes, ignoring every bit but the
    /// low three. `None` for 5 to 7, which Kafka leaves unassigned: such a
    /// batch must be refused, not read with a guessed codec.
    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & 0x07 {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Why a records section could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The output would pass the caller's limit.
    #[error("decompressed size exceeds the limit of {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    /// The input is not a complete, valid stream of the codec.
    #[error("{codec:?} payload is malformed: {why}")]
    Malformed { codec: Compression, why: String },
}

/// The eight bytes that open a snappy-java (xerial) stream: this magic, two
/// big-endian `i32` versions, then chunks, each a big-endian `i32` length
/// and one raw snappy block.
pub const SNAPPY_JAVA_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The magic and the two version fields.
pub const SNAPPY_JAVA_HEADER_BYTES: usize = SNAPPY_JAVA_MAGIC.len() + 8;
/// The four bytes that open an LZ4 frame (0x184D2204, little-endian).
pub const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];
/// The uncompressed size of one snappy-java chunk: snappy-java's default
/// block size and that of Kafka's `SnappyCompression`, so chunk boundaries
/// match what a Java producer writes.
pub const SNAPPY_JAVA_CHUNK_BYTES: usize = 32 * 1024;
/// The gzip level Kafka uses by default (`Deflater.DEFAULT_COMPRESSION`).
const GZIP_LEVEL: u32 = 6;
/// The zstd level Kafka uses by default (`CompressionType.ZSTD.defaultLevel()`).
const ZSTD_LEVEL: i32 = 3;

/// Compresses a records section with `codec` in the framing Kafka's Java
/// producer writes (the broker never recompresses; the load generator and
/// tests build batches with this). With [`Compression::None`] the bytes
/// are returned as they are.
pub fn compress(codec: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder.write_all(data)?;
            encoder.finish()
        }
        Compression::Snappy => snappy_java_compress(data),
        Compression::Lz4 => lz4_compress(data),
        Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
    }
}

/// An LZ4 frame shaped like the one Kafka's `Lz4BlockOutputStream` writes.
/// Kafka's Java reader rejects dependent blocks ("Dependent block stream is
/// unsupported"), so blocks are independent; the 64 KiB block size is
/// Kafka's; no block or content checksums, as in Kafka, since the batch CRC
/// covers the bytes.
fn lz4_compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};

    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false);
    let mut encoder = FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2 + 64));
    encoder.write_all(data)?;
    encoder.finish().map_err(std::io::Error::other)
}

/// The snappy-java stream framing: the header (magic, version 1,
/// compatible version 1), then 32 KiB chunks, each one raw snappy block
/// after its big-endian `i32` length. An empty input yields the bare
/// header, which snappy-java reads back as empty.
fn snappy_java_compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let chunks = data.len().div_ceil(SNAPPY_JAVA_CHUNK_BYTES);
    let mut out = Vec::with_capacity(
        SNAPPY_JAVA_HEADER_BYTES
            + chunks * 4
            + snap::raw::max_compress_len(SNAPPY_JAVA_CHUNK_BYTES.min(data.len())) * chunks,
    );
    out.extend_from_slice(&SNAPPY_JAVA_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    let mut block = vec![0u8; snap::raw::max_compress_len(SNAPPY_JAVA_CHUNK_BYTES)];
    for chunk in data.chunks(SNAPPY_JAVA_CHUNK_BYTES) {
        let len = encoder
            .compress(chunk, &mut block)
            .map_err(std::io::Error::other)?;
        out.extend_from_slice(&(len as i32).to_be_bytes());
        out.extend_from_slice(&block[..len]);
    }
    Ok(out)
}

/// Decompresses `data`, compressed with `codec`, onto the end of `out`,
/// which ends no longer than `limit_bytes` (counting what it held before).
/// On error `out` holds an unspecified prefix; callers clear it.
///
/// With [`Compression::None`] the bytes are copied as they are.
pub fn decompress_into(
    codec: Compression,
    data: &[u8],
    limit_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let malformed = |why: String| DecompressError::Malformed { codec, why };
    if codec != Compression::None && data.is_empty() {
        // Every framing has at least a header or an end mark.
        return Err(malformed("empty payload".into()));
    }
    match codec {
        Compression::None => {
            within(out.len() + data.len(), limit_bytes)?;
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Gzip => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(data),
            limit_bytes,
            out,
        ),
        Compression::Snappy if data.starts_with(&SNAPPY_JAVA_MAGIC) => {
            snappy_java(data, limit_bytes, out).map_err(|e| e.in_codec(codec))
        }
        Compression::Snappy => {
            snappy_raw_append(data, limit_bytes, out).map_err(|e| e.in_codec(codec))
        }
        Compression::Lz4 => {
            lz4_check_framing(data).map_err(malformed)?;
            read_bounded(
                codec,
                lz4_flex::frame::FrameDecoder::new(data),
                limit_bytes,
                out,
            )
        }
        Compression::Zstd => zstd_into(data, limit_bytes, out),
    }
}

/// The largest zstd window a batch may use, as a power of two: 16 MiB.
/// The decoder allocates the window a frame declares, so without a bound a
/// few bytes of header could claim 128 MiB (zstd's own default limit) of
/// memory per shard. Kafka's clients compress at level 3, whose window is
/// 2 MiB at most.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;
/// Output space added per decoding step, so that the buffer grows with
/// what the frame really holds, not with what it claims.
const ZSTD_STEP_BYTES: usize = 128 << 10;

thread_local! {
    /// One zstd decompression context per shard thread, reset between
    /// batches: creating a context (and faulting in its buffers) for each
    /// batch cost more than decompressing a 16 KiB batch.
    static ZSTD: std::cell::RefCell<Option<zstd::stream::raw::Decoder<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses zstd frames (one or several back to back) onto `out`,
/// refusing output past `limit_bytes` and truncated or corrupt frames.
fn zstd_into(data: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};
    let malformed = |why: String| DecompressError::Malformed {
        codec: Compression::Zstd,
        why,
    };
    ZSTD.with_borrow_mut(|slot| {
        let decoder = match slot {
            Some(d) => d,
            None => {
                let mut d = Decoder::new().map_err(|e| malformed(e.to_string()))?;
                d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
                    .map_err(|e| malformed(e.to_string()))?;
                slot.insert(d)
            }
        };
        let result = (|| {
            let mut input = InBuffer::around(data);
            loop {
                if out.len() > limit_bytes {
                    return Err(DecompressError::TooLarge { limit_bytes });
                }
                let room = limit_bytes
                    .saturating_add(1)
                    .saturating_sub(out.len())
                    .min(ZSTD_STEP_BYTES);
                out.reserve_exact(room);
                let (in_before, out_before) = (input.pos(), out.len());
                let at = out.len();
                let hint = {
                    let mut output = OutBuffer::around_pos(out, at);
                    decoder
                        .run(&mut input, &mut output)
                        .map_err(|e| malformed(e.to_string()))?
                };
                if hint == 0 && input.pos() == data.len() {
                    // The last frame ended exactly where the input does.
                    return within(out.len(), limit_bytes);
                }
                if input.pos() == in_before && out.len() == out_before {
                    return Err(malformed("truncated zstd frame".into()));
                }
            }
        })();
        // A failed frame leaves the context mid-frame: reset it for the
        // next batch, or drop it if even that fails.
        if decoder.reinit().is_err() {
            *slot = None;
        }
        result
    })
}

impl DecompressError {
    fn in_codec(self, codec: Compression) -> DecompressError {
        match self {
            DecompressError::Malformed { why, .. } => DecompressError::Malformed { codec, why },
            e => e,
        }
    }
}

fn within(len: usize, limit_bytes: usize) -> Result<(), DecompressError> {
    if len > limit_bytes {
        return Err(DecompressError::TooLarge { limit_bytes });
    }
    Ok(())
}

/// Reads a streaming decoder to its end through `take(room + 1)`, so at
/// most one byte past the limit is ever produced: enough to tell "exactly
/// at the limit" from "over it".
fn read_bounded<R: Read>(
    codec: Compression,
    decoder: R,
    limit_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let room = limit_bytes.saturating_sub(out.len());
    let cap = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(out)
        .map_err(|e| DecompressError::Malformed {
            codec,
            why: e.to_string(),
        })?;
    within(out.len(), limit_bytes)
}

/// Reads a snappy-java stream: header, then length-prefixed raw snappy
/// chunks. A header met where a chunk length is expected starts a
/// concatenated stream and is skipped, as snappy-java's reader does. The
/// version fields are not checked: only version 1 was ever written, and
/// librdkafka ignores them too.
fn snappy_java(data: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let malformed = |why: String| DecompressError::Malformed {
        codec: Compression::Snappy,
        why,
    };
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(&SNAPPY_JAVA_MAGIC) {
            if rest.len() < SNAPPY_JAVA_HEADER_BYTES {
                return Err(malformed("truncated snappy-java header".into()));
            }
            rest = &rest[SNAPPY_JAVA_HEADER_BYTES..];
            continue;
        }
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(malformed(format!(
                "truncated chunk length ({} bytes left)",
                rest.len()
            )));
        };
        let len = i32::from_be_bytes(*prefix);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= tail.len())
            .ok_or_else(|| {
                malformed(format!(
                    "chunk length {len} does not fit the {} bytes left",
                    tail.len()
                ))
            })?;
        let (block, next) = tail.split_at(len);
        snappy_raw_append(block, limit_bytes, out)?;
        rest = next;
    }
    Ok(())
}

/// Decompresses one raw snappy block onto the end of `out`. A raw block
/// states its uncompressed length first, so the limit is checked before
/// any output is allocated.
fn snappy_raw_append(
    block: &[u8],
    limit_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    let malformed = |why: String| DecompressError::Malformed {
        codec: Compression::Snappy,
        why,
    };
    let len = snap::raw::decompress_len(block).map_err(|e| malformed(e.to_string()))?;
    let start = out.len();
    let end = start
        .checked_add(len)
        .ok_or_else(|| malformed("decompressed size overflows".into()))?;
    within(end, limit_bytes)?;
    out.resize(end, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| malformed(e.to_string()))?;
    if written != len {
        out.truncate(start);
        return Err(malformed(format!(
            "snappy block produced {written} bytes but declared {len}"
        )));
    }
    Ok(())
}

/// Walks the frames and blocks of an LZ4 payload, checking that it is
/// complete. `lz4_flex`'s decoder treats input that ends at a block
/// boundary (or inside a frame header) as a clean end, and it accepts the
/// legacy format and skippable frames; Kafka's `Lz4BlockInputStream`
/// rejects all of these, so this walk insists on what Kafka insists on:
/// every frame opens with the magic and version 01 and ends with an end
/// mark (and its content checksum, when flagged), with every block whole.
/// It reads only lengths; the decoder then checks the descriptor checksum,
/// the block and content checksums, and the data.
fn lz4_check_framing(data: &[u8]) -> Result<(), String> {
    const FLG_VERSION_MASK: u8 = 0b1100_0000;
    const FLG_VERSION_01: u8 = 0b0100_0000;
    const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
    const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
    const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
    const FLG_DICT_ID: u8 = 0b0000_0001;
    const UNCOMPRESSED_BIT: u32 = 0x8000_0000;

    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize, what: &str| -> Result<usize, String> {
        let start = *pos;
        if data.len() - start < n {
            return Err(format!(
                "truncated {what} at byte {start} ({n} bytes needed, {} left)",
                data.len() - start
            ));
        }
        *pos += n;
        Ok(start)
    };
    while pos < data.len() {
        let at = take(&mut pos, LZ4_FRAME_MAGIC.len(), "frame magic")?;
        if data[at..pos] != LZ4_FRAME_MAGIC {
            return Err(format!("no LZ4 frame magic at byte {at}"));
        }
        let at = take(&mut pos, 2, "frame descriptor")?;
        let flg = data[at];
        if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
            return Err(format!("unsupported LZ4 frame version in FLG {flg:#04x}"));
        }
        let mut rest_of_descriptor = 1; // the header checksum byte
        if flg & FLG_CONTENT_SIZE != 0 {
            rest_of_descriptor += 8;
        }
        if flg & FLG_DICT_ID != 0 {
            rest_of_descriptor += 4;
        }
        take(&mut pos, rest_of_descriptor, "frame descriptor")?;
        loop {
            let at = take(&mut pos, 4, "block size")?;
            let word = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            if word == 0 {
                if flg & FLG_CONTENT_CHECKSUM != 0 {
                    take(&mut pos, 4, "content checksum")?;
                }
                break;
            }
            let mut len = (word & !UNCOMPRESSED_BIT) as usize;
            if flg & FLG_BLOCK_CHECKSUM != 0 {
                len += 4;
            }
            take(&mut pos, len, "block")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| b'a' + ((i / 7) as u8 ^ seed) % 26).collect()
    }

    fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, DecompressError> {
        let mut out = Vec::new();
        decompress_into(codec, data, 64 << 20, &mut out).map(|()| out)
    }

    #[test]
    fn gzip_members_back_to_back_decompress_to_their_concatenation() {
        let (a, b) = (text(5000, 1), text(7000, 2));
        let mut both = compress(Compression::Gzip, &a).unwrap();
        both.extend(compress(Compression::Gzip, &b).unwrap());
        assert_eq!(
            decompress(Compression::Gzip, &both).unwrap(),
            [a, b.clone()].concat()
        );
        let mut trailing = compress(Compression::Gzip, &b).unwrap();
        trailing.extend_from_slice(b"garbage");
        assert!(decompress(Compression::Gzip, &trailing).is_err());
    }

    /// lz4_flex's frame decoder ends at the first frame's end mark; the
    /// framing check has walked the frames after it, but their records are
    /// not decoded, so a batch that needs them fails the record count.
    #[test]
    fn lz4_decodes_up_to_the_first_frames_end_mark() {
        let (a, b) = (text(5000, 3), text(70_000, 4));
        let mut both = compress(Compression::Lz4, &a).unwrap();
        both.extend(compress(Compression::Lz4, &b).unwrap());
        assert!(decompress(Compression::Lz4, &both).unwrap() == a);
    }
}
