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

use anyhow::{anyhow, Context};
use corelog_storage::codec::{self, Compression};
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

    /// The broker's name for the same codec.
    pub fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
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
pub use codec::SNAPPY_JAVA_MAGIC;

/// The length of the whole snappy-java header: the magic and the two versions.
#[cfg(test)]
const SNAPPY_JAVA_HEADER_LEN: usize = codec::SNAPPY_JAVA_HEADER_BYTES;

#[cfg(test)]
use codec::{LZ4_FRAME_MAGIC, SNAPPY_JAVA_CHUNK_BYTES as SNAPPY_JAVA_CHUNK};

/// Compresses the records section of a batch with `codec`, in Kafka's framing.
///
/// With [`Codec::None`] the bytes are returned unchanged, so a caller can pass every
/// batch through this function whatever its configured codec.
pub fn compress(codec: Codec, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    codec::compress(codec.compression(), data)
        .with_context(|| format!("{codec:?} compression failed"))
}

/// Decompresses the records section of a batch compressed with `codec`.
///
/// The output may be at most `size_hint_max` bytes; a payload that would expand
/// beyond that is refused with an error before the excess is allocated, which guards
/// the load generator against decompression bombs in fetch responses. Malformed input
/// is reported as an error, never a panic. The decoders are the broker's own
/// (`corelog_storage::codec`), so the generator reads exactly what the broker accepts.
pub fn decompress(codec: Codec, data: &[u8], size_hint_max: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    codec::decompress_into(codec.compression(), data, size_hint_max, &mut out)
        .map_err(|e| anyhow!("{codec:?} decompression failed: {e}"))?;
    Ok(out)
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
