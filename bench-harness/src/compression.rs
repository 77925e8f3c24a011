//! Compression codecs for the `records` section of a Kafka magic-v2 record batch.
//!
//! A v2 batch keeps its header (base offset, length, epoch, magic, CRC, attributes,
//! offsets, timestamps, producer fields, record count) uncompressed; only the bytes
//! after the record count are compressed, and the codec is named by the low three
//! bits of the batch attributes. The load generator must produce those bytes in
//! exactly the framing that Kafka's own clients write, because a broker that
//! validates or recompresses batches (and any real consumer that reads them back)
//! decodes them with those libraries, and a benchmark that sends a framing no real
//! client sends would measure a path that production never takes.
//!
//! The framings, as Kafka's clients write them:
//!
//! * gzip: a plain gzip stream (RFC 1952), as `java.util.zip.GZIPOutputStream` writes.
//! * snappy: the xerial snappy-java stream framing that the Java producer's
//!   `SnappyOutputStream` writes, not Google's snappy framing format; see
//!   [`SNAPPY_JAVA_MAGIC`]. librdkafka writes a bare raw snappy block instead, so
//!   decompression accepts both.
//! * lz4: the standard LZ4 frame format. KIP-57 fixed the frame-descriptor checksum
//!   for message format v1 and later, so a v2 batch carries a correct checksum, with
//!   independent 64 KiB blocks as `Lz4BlockOutputStream` writes.
//! * zstd: a standard zstd frame, as zstd-jni's `ZstdOutputStream` writes.
//!
//! Every decoder here is bounded by a caller-supplied maximum output size, because
//! the bytes come from the network and a few kilobytes of compressed input can claim
//! gigabytes of output.

use std::io::{Read, Write};

use anyhow::{anyhow, bail, ensure, Context};
use serde::{Deserialize, Serialize};

/// The compression codec of a record batch.
///
/// The serde names are the lowercase codec names, the same words Kafka uses for
/// `compression.type`, so a run configuration reads `compression = "lz4"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// No compression: the records section is stored as is.
    #[default]
    None,
    /// A gzip stream.
    Gzip,
    /// Raw snappy blocks inside the xerial snappy-java stream framing.
    Snappy,
    /// An LZ4 frame.
    Lz4,
    /// A zstd frame.
    Zstd,
}

/// The mask of the batch attribute bits that name the codec.
const CODEC_MASK: i16 = 0x07;

impl Codec {
    /// Returns the value of the low three batch-attribute bits that name this codec.
    ///
    /// Kafka assigns 0 to none, 1 to gzip, 2 to snappy, 3 to lz4 and 4 to zstd; the
    /// other attribute bits (timestamp type, transactional, control, delete horizon)
    /// are the caller's to OR in.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// Reads the codec from a batch's attributes, ignoring every bit but the low three.
    ///
    /// Returns `None` for the values 5 to 7, which Kafka leaves unassigned, so that a
    /// caller can reject such a batch instead of misreading its records.
    pub fn from_attributes(attributes: i16) -> Option<Codec> {
        match attributes & CODEC_MASK {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// The eight-byte magic that opens a snappy-java (xerial) stream.
///
/// Java Kafka compresses snappy batches with `org.xerial.snappy.SnappyOutputStream`,
/// which writes this magic, two big-endian `i32` version fields, and then a sequence
/// of chunks, each a big-endian `i32` length followed by one raw snappy block. That is
/// neither raw snappy nor Google's snappy framing format, but it is what the Java
/// producer (the reference client) has sent since Kafka 0.8, so it is what the load
/// generator sends. librdkafka instead writes one bare raw snappy block; every reader
/// (snappy-java's `SnappyInputStream` in the broker, librdkafka, kafka-python) tells
/// the two apart by this magic, so [`decompress`] accepts both.
pub const SNAPPY_JAVA_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

/// The stream version that snappy-java writes after the magic.
const SNAPPY_JAVA_VERSION: i32 = 1;

/// The oldest reader version that can read the stream, as snappy-java writes it.
const SNAPPY_JAVA_COMPATIBLE_VERSION: i32 = 1;

/// The length of the whole snappy-java header: the magic and the two versions.
const SNAPPY_JAVA_HEADER_LEN: usize = SNAPPY_JAVA_MAGIC.len() + 8;

/// The uncompressed size of one snappy-java chunk.
///
/// This is snappy-java's default block size and the default of Kafka's
/// `SnappyCompression`, so the chunk boundaries match what a Java producer writes.
const SNAPPY_JAVA_CHUNK: usize = 32 * 1024;

/// The four-byte magic number that opens an LZ4 frame (0x184D2204, little-endian).
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

/// The gzip level Kafka uses by default (`Deflater.DEFAULT_COMPRESSION`, which is 6).
const GZIP_LEVEL: u32 = 6;

/// The zstd level Kafka uses by default (`CompressionType.ZSTD.defaultLevel()`).
const ZSTD_LEVEL: i32 = 3;

/// Compresses the records section of a batch with `codec`, in Kafka's framing.
///
/// With [`Codec::None`] the bytes are returned unchanged, so a caller can pass every
/// batch through this function whatever its configured codec.
pub fn compress(codec: Codec, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => gzip_compress(data).context("gzip compression failed"),
        Codec::Snappy => snappy_java_compress(data).context("snappy compression failed"),
        Codec::Lz4 => lz4_compress(data).context("lz4 compression failed"),
        Codec::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).context("zstd compression failed"),
    }
}

/// Decompresses the records section of a batch compressed with `codec`.
///
/// The output may be at most `size_hint_max` bytes; a payload that would expand
/// beyond that is refused with an error before the excess is allocated, which guards
/// the load generator against decompression bombs in fetch responses. Malformed input
/// is reported as an error, never a panic. An empty payload is an error for every
/// codec but [`Codec::None`], since each framing has at least a header or an end mark.
pub fn decompress(codec: Codec, data: &[u8], size_hint_max: usize) -> anyhow::Result<Vec<u8>> {
    if codec != Codec::None {
        ensure!(!data.is_empty(), "{codec:?} payload is empty");
    }
    match codec {
        Codec::None => {
            ensure_within(data.len(), size_hint_max)?;
            Ok(data.to_vec())
        }
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), size_hint_max)
            .context("gzip decompression failed"),
        Codec::Snappy => snappy_decompress(data, size_hint_max),
        Codec::Lz4 => {
            lz4_check_framing(data).context("lz4 frame is malformed")?;
            read_bounded(lz4_flex::frame::FrameDecoder::new(data), size_hint_max)
                .context("lz4 decompression failed")
        }
        Codec::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(data)
                .context("zstd decompression failed")?;
            read_bounded(decoder, size_hint_max).context("zstd decompression failed")
        }
    }
}

/// Fails when an output of `len` bytes would exceed the caller's limit.
fn ensure_within(len: usize, limit: usize) -> anyhow::Result<()> {
    ensure!(
        len <= limit,
        "decompressed size {len} exceeds the limit of {limit} bytes"
    );
    Ok(())
}

/// Reads a streaming decoder to its end, refusing to produce more than `limit` bytes.
///
/// The decoder is read through `take(limit + 1)`, so at most one byte beyond the
/// limit is ever produced: enough to tell "exactly at the limit" from "over it".
fn read_bounded<R: Read>(decoder: R, limit: usize) -> anyhow::Result<Vec<u8>> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    decoder.take(cap).read_to_end(&mut out)?;
    ensure!(
        out.len() <= limit,
        "decompressed size exceeds the limit of {limit} bytes"
    );
    Ok(out)
}

/// Compresses into a gzip stream at Kafka's default level.
fn gzip_compress(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Compresses into an LZ4 frame shaped like the one Kafka's `Lz4BlockOutputStream` writes.
///
/// Kafka's Java reader rejects frames with dependent blocks ("Dependent block stream
/// is unsupported"), so the blocks are made independent explicitly, and the 64 KiB
/// block size matches Kafka's so a Java consumer allocates what it expects. No block
/// or content checksums are written, as in Kafka: the batch CRC already covers the bytes.
fn lz4_compress(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};

    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false);
    let mut encoder = FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2 + 64));
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Walks the frames and blocks of an LZ4 payload, checking that it is complete.
///
/// `lz4_flex`'s decoder treats input that ends at a block boundary (or inside a frame
/// header) as a clean end of stream, and it also accepts the legacy LZ4 format and
/// skippable frames. Kafka's `Lz4BlockInputStream` rejects all of these, so this walk
/// insists on what Kafka insists on: every frame starts with the frame magic and
/// version 01 and ends with an end mark (and its content checksum, when flagged), with
/// every block whole. It only reads lengths; the decoder then checks the descriptor
/// checksum, the block and content checksums, and the compressed data itself.
fn lz4_check_framing(data: &[u8]) -> anyhow::Result<()> {
    const FLG_VERSION_MASK: u8 = 0b1100_0000;
    const FLG_VERSION_01: u8 = 0b0100_0000;
    const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
    const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
    const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
    const FLG_DICT_ID: u8 = 0b0000_0001;
    const UNCOMPRESSED_BIT: u32 = 0x8000_0000;

    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize, what: &str| -> anyhow::Result<usize> {
        let start = *pos;
        ensure!(
            data.len() - start >= n,
            "truncated {what} at byte {start} ({n} bytes needed, {} left)",
            data.len() - start
        );
        *pos += n;
        Ok(start)
    };
    while pos < data.len() {
        let at = take(&mut pos, LZ4_FRAME_MAGIC.len(), "frame magic")?;
        ensure!(
            data[at..pos] == LZ4_FRAME_MAGIC,
            "no LZ4 frame magic at byte {at}"
        );
        let at = take(&mut pos, 2, "frame descriptor")?;
        let flg = data[at];
        ensure!(
            flg & FLG_VERSION_MASK == FLG_VERSION_01,
            "unsupported LZ4 frame version in FLG {flg:#04x}"
        );
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
            let mut len = usize::try_from(word & !UNCOMPRESSED_BIT)?;
            if flg & FLG_BLOCK_CHECKSUM != 0 {
                len += 4;
            }
            take(&mut pos, len, "block")?;
        }
    }
    Ok(())
}

/// Compresses into the snappy-java (xerial) stream framing; see [`SNAPPY_JAVA_MAGIC`].
///
/// The input is cut into 32 KiB chunks, each compressed as one raw snappy block. An
/// empty input yields the bare 16-byte header, which snappy-java reads back as empty.
/// (The Java producer never compresses an empty records section, since a batch holds
/// at least one record, so this case does not arise on the wire.)
fn snappy_java_compress(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let chunks = data.len().div_ceil(SNAPPY_JAVA_CHUNK);
    let mut out = Vec::with_capacity(
        SNAPPY_JAVA_HEADER_LEN
            + chunks * 4
            + snap::raw::max_compress_len(SNAPPY_JAVA_CHUNK.min(data.len())) * chunks,
    );
    out.extend_from_slice(&SNAPPY_JAVA_MAGIC);
    out.extend_from_slice(&SNAPPY_JAVA_VERSION.to_be_bytes());
    out.extend_from_slice(&SNAPPY_JAVA_COMPATIBLE_VERSION.to_be_bytes());

    let mut encoder = snap::raw::Encoder::new();
    let mut block = vec![0u8; snap::raw::max_compress_len(SNAPPY_JAVA_CHUNK)];
    for chunk in data.chunks(SNAPPY_JAVA_CHUNK) {
        let len = encoder.compress(chunk, &mut block)?;
        let prefix = i32::try_from(len).context("snappy chunk longer than i32::MAX")?;
        out.extend_from_slice(&prefix.to_be_bytes());
        out.extend_from_slice(&block[..len]);
    }
    Ok(out)
}

/// Decompresses snappy in either of the two shapes Kafka accepts.
///
/// A payload that opens with [`SNAPPY_JAVA_MAGIC`] is read as a snappy-java stream;
/// anything else is read as one raw snappy block. Batches produced by librdkafka
/// (and the clients built on it) carry raw snappy, batches from the Java producer
/// carry the snappy-java framing, and a broker hands either back unchanged in a fetch
/// response, so the load generator's consumer side must read both, as
/// snappy-java's `SnappyInputStream` and librdkafka do.
fn snappy_decompress(data: &[u8], limit: usize) -> anyhow::Result<Vec<u8>> {
    if data.starts_with(&SNAPPY_JAVA_MAGIC) {
        return snappy_java_decompress(data, limit).context("snappy-java stream is malformed");
    }
    let mut out = Vec::new();
    snappy_raw_append(data, limit, &mut out).context("raw snappy block is malformed")?;
    Ok(out)
}

/// Reads a snappy-java stream: header, then length-prefixed raw snappy chunks.
///
/// A header met again where a chunk length is expected starts a concatenated stream
/// and is skipped, as snappy-java's reader does. The version fields are not checked:
/// only version 1 has ever been written, and librdkafka ignores them too.
fn snappy_java_decompress(data: &[u8], limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(&SNAPPY_JAVA_MAGIC) {
            ensure!(
                rest.len() >= SNAPPY_JAVA_HEADER_LEN,
                "truncated snappy-java header"
            );
            rest = &rest[SNAPPY_JAVA_HEADER_LEN..];
            continue;
        }
        let (prefix, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| anyhow!("truncated chunk length ({} bytes left)", rest.len()))?;
        let len = i32::from_be_bytes(*prefix);
        let len = usize::try_from(len).map_err(|_| anyhow!("negative chunk length {len}"))?;
        ensure!(
            len <= tail.len(),
            "chunk length {len} runs past the end of the payload ({} bytes left)",
            tail.len()
        );
        let (block, next) = tail.split_at(len);
        snappy_raw_append(block, limit, &mut out)?;
        rest = next;
    }
    Ok(out)
}

/// Decompresses one raw snappy block onto the end of `out`, keeping `out` within `limit`.
///
/// A raw snappy block states its uncompressed length up front, so the limit is checked
/// before any output is allocated.
fn snappy_raw_append(block: &[u8], limit: usize, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let len = snap::raw::decompress_len(block)?;
    let start = out.len();
    let end = start
        .checked_add(len)
        .ok_or_else(|| anyhow!("decompressed size overflows"))?;
    ensure_within(end, limit)?;
    out.resize(end, 0);
    let written = snap::raw::Decoder::new().decompress(block, &mut out[start..])?;
    if written != len {
        out.truncate(start);
        bail!("snappy block produced {written} bytes but declared {len}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// A compressible payload that still varies, shaped loosely like record bytes.
    fn sample(len: usize) -> Vec<u8> {
        let mut state: u32 = 0x1234_5678;
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i % 7 == 0 {
                    (state >> 24) as u8
                } else {
                    b"corelog-record-"[i % 15]
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_every_codec_and_size() {
        for codec in ALL {
            for len in [0usize, 1, 100, 32 * 1024, 32 * 1024 + 1, 1_500_000] {
                let data = sample(len);
                let packed = compress(codec, &data).unwrap();
                let unpacked = decompress(codec, &packed, data.len()).unwrap();
                assert_eq!(unpacked, data, "{codec:?} at {len} bytes");
            }
        }
    }

    #[test]
    fn large_compressible_input_shrinks() {
        let data = sample(2 * 1024 * 1024);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = compress(codec, &data).unwrap();
            assert!(
                packed.len() < data.len() * 3 / 4,
                "{codec:?}: {}",
                packed.len()
            );
        }
    }

    #[test]
    fn snappy_output_uses_xerial_framing() {
        let data = sample(100_000);
        let packed = compress(Codec::Snappy, &data).unwrap();
        assert_eq!(&packed[..8], &SNAPPY_JAVA_MAGIC);
        assert_eq!(&packed[8..12], &1i32.to_be_bytes());
        assert_eq!(&packed[12..16], &1i32.to_be_bytes());
        // Walk the chunks by hand: four 32 KiB-or-less chunks, each length-prefixed.
        let mut rest = &packed[16..];
        let mut chunks = 0;
        let mut total = 0;
        while !rest.is_empty() {
            let len = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let block = &rest[4..4 + len];
            let raw = snap::raw::Decoder::new().decompress_vec(block).unwrap();
            assert!(raw.len() <= SNAPPY_JAVA_CHUNK);
            total += raw.len();
            chunks += 1;
            rest = &rest[4 + len..];
        }
        assert_eq!(chunks, 4);
        assert_eq!(total, data.len());

        let empty = compress(Codec::Snappy, &[]).unwrap();
        assert_eq!(empty.len(), SNAPPY_JAVA_HEADER_LEN);
        assert!(decompress(Codec::Snappy, &empty, 0).unwrap().is_empty());
    }

    #[test]
    fn raw_snappy_without_header_is_accepted() {
        let data = sample(70_000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Codec::Snappy, &raw, data.len()).unwrap(), data);
    }

    #[test]
    fn concatenated_snappy_java_streams_are_read_whole() {
        let (a, b) = (sample(40_000), sample(10));
        let mut packed = compress(Codec::Snappy, &a).unwrap();
        packed.extend(compress(Codec::Snappy, &b).unwrap());
        let out = decompress(Codec::Snappy, &packed, usize::MAX).unwrap();
        assert_eq!(out, [a, b].concat());
    }

    #[test]
    fn lz4_frame_header_matches_kafka() {
        let packed = compress(Codec::Lz4, &sample(1000)).unwrap();
        assert_eq!(&packed[..4], &LZ4_FRAME_MAGIC);
        // FLG: version 01, independent blocks, no checksums, no content size.
        assert_eq!(packed[4], 0b0110_0000);
        // BD: 64 KiB maximum block size.
        assert_eq!(packed[5], 0x40);
        // HC: the second byte of xxh32(FLG, BD) with seed 0, the checksum KIP-57 made
        // Kafka write correctly (not over the magic as well); the reference liblz4
        // writes 0x82 for this descriptor.
        assert_eq!(packed[6], 0x82);
        assert_eq!(&packed[packed.len() - 4..], &[0, 0, 0, 0]);
    }

    #[test]
    fn size_guard_refuses_bombs() {
        let bomb = vec![0u8; 64 * 1024 * 1024];
        for codec in ALL {
            let packed = compress(codec, &bomb).unwrap();
            let err = decompress(codec, &packed, 1024 * 1024).unwrap_err();
            assert!(
                format!("{err:#}").contains("exceeds the limit"),
                "{codec:?}: {err:#}"
            );
            // Exactly at the limit is allowed.
            assert_eq!(
                decompress(codec, &packed, bomb.len()).unwrap().len(),
                bomb.len()
            );
        }
        // A raw snappy block that merely claims a huge length is refused before allocation.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(decompress(Codec::Snappy, &claim, 1 << 20).is_err());
    }

    #[test]
    fn attribute_bits_map_both_ways() {
        for (codec, bits) in ALL.into_iter().zip(0i16..) {
            assert_eq!(codec.attribute_bits(), bits);
            assert_eq!(Codec::from_attributes(bits), Some(codec));
            // Other attribute bits (timestamp type, transactional, control) are ignored.
            assert_eq!(
                Codec::from_attributes(bits | 0x08 | 0x10 | 0x20),
                Some(codec)
            );
        }
        for bits in 5..8 {
            assert_eq!(Codec::from_attributes(bits), None);
        }
        assert_eq!(Codec::from_attributes(-1), None);
        assert_eq!(Codec::default(), Codec::None);
    }

    #[test]
    fn serde_names_are_lowercase() {
        let names: Vec<String> = ALL
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        assert_eq!(
            names,
            ["\"none\"", "\"gzip\"", "\"snappy\"", "\"lz4\"", "\"zstd\""]
        );
        let back: Codec = serde_json::from_str("\"zstd\"").unwrap();
        assert_eq!(back, Codec::Zstd);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            // A raw snappy block that declares 7 bytes and carries none.
            vec![7],
            vec![0xff; 3],
            b"definitely not compressed".to_vec(),
            sample(4096),
            SNAPPY_JAVA_MAGIC.to_vec(),
            [
                &SNAPPY_JAVA_MAGIC[..],
                &[0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff],
            ]
            .concat(),
            [
                &SNAPPY_JAVA_MAGIC[..],
                &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
            ]
            .concat(),
            LZ4_FRAME_MAGIC.to_vec(),
            [&LZ4_FRAME_MAGIC[..], &[0x60, 0x40, 0x00]].concat(),
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
            vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0],
        ];
        // Truncations and bit flips of valid payloads.
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let packed = compress(codec, &sample(200_000)).unwrap();
            inputs.push(packed[..packed.len() / 2].to_vec());
            inputs.push(packed[..packed.len() - 1].to_vec());
            let mut flipped = packed.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x5a;
            flipped[20] ^= 0xff;
            inputs.push(flipped);
        }
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            for input in &inputs {
                let result =
                    std::panic::catch_unwind(|| decompress(codec, input, 16 * 1024 * 1024));
                let result = result.unwrap_or_else(|_| panic!("{codec:?} panicked"));
                // A bit flip can land in a literal and still decode; what matters is no
                // panic. Inputs that are not this codec's format at all must fail.
                if input.len() < 64 {
                    assert!(result.is_err(), "{codec:?} accepted {input:?}");
                }
            }
        }
        // Truncated payloads of each codec fail.
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Zstd] {
            let packed = compress(codec, &sample(200_000)).unwrap();
            assert!(decompress(codec, &packed[..packed.len() / 2], usize::MAX).is_err());
        }
        // lz4_flex alone would return the blocks before a cut at a block boundary as a
        // clean, shorter result; the framing walk must turn every cut into an error.
        let lz4 = compress(Codec::Lz4, &sample(200_000)).unwrap();
        for cut in [6, 7, 10, lz4.len() / 2, lz4.len() - 4, lz4.len() - 1] {
            assert!(
                decompress(Codec::Lz4, &lz4[..cut], usize::MAX).is_err(),
                "lz4 accepted a payload cut at {cut} of {}",
                lz4.len()
            );
        }
        let first_block = 7 + 4 + u32::from_le_bytes(lz4[7..11].try_into().unwrap()) as usize;
        assert!(decompress(Codec::Lz4, &lz4[..first_block], usize::MAX).is_err());
    }
}
