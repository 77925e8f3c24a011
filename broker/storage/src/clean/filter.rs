//! The pure part of the cleaner: the key map and the rewriting of batches.
//! No I/O happens here; [`super`] reads the segments and writes the output.

use std::collections::HashMap;

use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::codec::{self, Compression};
use crate::types::Offset;

/// What one map entry costs beside its key bytes: the offset, the
/// hash-table slot and the key's heap allocation header. An estimate on the
/// safe side, so that the map stays under its budget in real memory too.
pub(crate) const OFFSET_MAP_ENTRY_OVERHEAD_BYTES: usize = 64;

/// Key -> offset of the latest record with that key in the dirty range.
///
/// Kafka's cleaner keeps a 16-byte hash of each key (so two keys that
/// collide lose one another's records); this map keeps the whole key, so a
/// record is never dropped for another key's sake, at the price of
/// counting key bytes against the budget.
///
/// Lives on: the cleaning job that builds it (one per pass, dropped after).
pub(crate) struct OffsetMap {
    entries: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub(crate) fn new(bytes_max: usize) -> OffsetMap {
        OffsetMap {
            entries: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Records `offset` as the latest for `key`. Returns false, changing
    /// nothing, when a new key would take the map past its budget.
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(o) = self.entries.get_mut(key) {
            *o = (*o).max(offset);
            return true;
        }
        let cost = key.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
        if self.bytes + cost > self.bytes_max {
            return false;
        }
        self.bytes += cost;
        self.entries.insert(key.into(), offset);
        true
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(key).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One record of a batch, as the cleaner looks at it.
pub(crate) struct Rec<'a> {
    /// The record as stored: its length prefix, then its fields.
    pub raw: &'a [u8],
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// A tombstone: the value is null.
    pub tombstone: bool,
}

/// Walks the records of an (uncompressed) records section. None when the
/// section does not parse; the caller then keeps the batch as it is.
pub(crate) fn records(section: &[u8], base: Offset) -> Option<Vec<Rec<'_>>> {
    let mut out = Vec::new();
    let mut rest = section;
    while !rest.is_empty() {
        let before = rest;
        let len = usize::try_from(varint(&mut rest)?).ok()?;
        let body = rest.get(..len)?;
        let raw_len = before.len() - rest.len() + len;
        let raw = &before[..raw_len];
        rest = &rest[len..];
        let mut r = body;
        r = r.get(1..)?; // attributes
        varint(&mut r)?; // timestamp delta (a varlong; a varint reader of 10 bytes)
        let offset_delta = varint(&mut r)?;
        let key_len = varint(&mut r)?;
        let key = if key_len < 0 {
            None
        } else {
            let k = r.get(..usize::try_from(key_len).ok()?)?;
            r = &r[k.len()..];
            Some(k)
        };
        let value_len = varint(&mut r)?;
        let value = if value_len < 0 {
            None
        } else {
            Some(r.get(..usize::try_from(value_len).ok()?)?)
        };
        out.push(Rec {
            raw,
            offset: base.0.checked_add(offset_delta)?,
            key,
            value,
            tombstone: value_len < 0,
        });
    }
    Some(out)
}

/// A zig-zag varint of up to 10 bytes (Kafka's varint and varlong share
/// the encoding).
fn varint(r: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *r.get(i)?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *r = &r[i + 1..];
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// What becomes of one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every record is kept: the batch is copied byte for byte.
    Keep,
    /// No record is kept and nothing needs the batch.
    Drop,
    /// Some records are kept (or none, in an empty batch kept for its
    /// producer's sequence): the rebuilt batch.
    Rebuilt(Vec<u8>),
}

/// The records section of `bytes`, decompressed if need be, within
/// `decompressed_bytes_max`. None when it does not decompress.
pub(crate) fn section<'a>(
    bytes: &'a [u8],
    h: &BatchHeader,
    decompressed_bytes_max: usize,
) -> Option<(Compression, std::borrow::Cow<'a, [u8]>)> {
    let codec = h.compression()?;
    let raw = bytes.get(BATCH_HEADER_BYTES..h.total_bytes)?;
    if codec == Compression::None {
        return Some((codec, std::borrow::Cow::Borrowed(raw)));
    }
    let mut out = Vec::new();
    codec::decompress_into(codec, raw, decompressed_bytes_max, &mut out).ok()?;
    Some((codec, std::borrow::Cow::Owned(out)))
}

/// Filters the records of one data batch with `keep`. `keep_empty` keeps
/// an empty batch when no record is left (the last batch of a producer,
/// see [`super`]). Anything that does not parse is kept as it is: the
/// cleaner never drops data it cannot read.
pub(crate) fn filter_batch(
    bytes: &[u8],
    h: &BatchHeader,
    decompressed_bytes_max: usize,
    keep_empty: bool,
    mut keep: impl FnMut(&Rec<'_>) -> bool,
) -> Outcome {
    let Some((codec, section)) = section(bytes, h, decompressed_bytes_max) else {
        return Outcome::Keep;
    };
    let Some(recs) = records(&section, h.base_offset) else {
        return Outcome::Keep;
    };
    if usize::try_from(h.records_count).ok() != Some(recs.len()) {
        return Outcome::Keep;
    }
    let kept: Vec<&Rec<'_>> = recs.iter().filter(|r| keep(r)).collect();
    if kept.len() == recs.len() {
        return Outcome::Keep;
    }
    if kept.is_empty() && !keep_empty {
        return Outcome::Drop;
    }
    let mut plain = Vec::with_capacity(kept.iter().map(|r| r.raw.len()).sum());
    for r in &kept {
        plain.extend_from_slice(r.raw);
    }
    // An empty batch carries no records section, uncompressed, as Kafka
    // writes one; a non-empty one keeps its codec.
    let codec = if kept.is_empty() {
        Compression::None
    } else {
        codec
    };
    let body = if codec == Compression::None {
        plain
    } else {
        match codec::compress(codec, &plain) {
            Ok(b) => b,
            // Compressing into memory does not fail; if it ever did, the
            // batch stays as it was.
            Err(_) => return Outcome::Keep,
        }
    };
    Outcome::Rebuilt(rebuild(bytes, h, codec, kept.len(), &body))
}

const OFF_BATCH_LENGTH: usize = 8;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_RECORDS_COUNT: usize = 57;

/// The batch `bytes` with a new records section: the header as it was
/// (base offset, lastOffsetDelta, timestamps, producer id, epoch and base
/// sequence, leader epoch) except the length, the codec bits, the record
/// count and the CRC.
pub(crate) fn rebuild(
    bytes: &[u8],
    h: &BatchHeader,
    codec: Compression,
    records: usize,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&bytes[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(body);
    let batch_length = (out.len() - 12) as i32;
    out[OFF_BATCH_LENGTH..OFF_BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    let codec_bits: i16 = match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    };
    let attributes = (h.attributes & !0x07) | codec_bits;
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[OFF_RECORDS_COUNT..OFF_RECORDS_COUNT + 4].copy_from_slice(&(records as i32).to_be_bytes());
    let crc = crc_fast::crc32_iscsi(&out[OFF_ATTRIBUTES..]);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Encodes keyed records into a batch and decodes them again, for tests
/// here and in `tests/`.
pub mod build {
    use crate::batch::build::{wrap, BatchSpec};
    use crate::batch::BatchHeader;
    use crate::codec::Compression;

    /// A record to encode: (key, value), `None` being null.
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// A record as [`decode`] returns it: (offset, key, value).
    pub type DecodedRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    /// The records of one stored batch (decompressed within 64 MiB); None
    /// when they do not parse.
    pub fn decode(bytes: &[u8]) -> Option<Vec<DecodedRecord>> {
        let h = BatchHeader::parse(bytes).ok()?;
        let (_, section) = super::section(bytes, &h, 64 << 20)?;
        let recs = super::records(&section, h.base_offset)?;
        Some(
            recs.iter()
                .map(|r| {
                    (
                        r.offset,
                        r.key.map(<[u8]>::to_vec),
                        r.value.map(<[u8]>::to_vec),
                    )
                })
                .collect(),
        )
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

    /// A valid batch (base offset 0) of one record per `(key, value)`,
    /// `None` being null, with `spec`'s producer fields and codec (its
    /// `records` and `value_bytes` are ignored), transactional if asked.
    pub fn keyed_batch(spec: &BatchSpec, transactional: bool, records: &[KeyValue<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (k, v)) in records.iter().enumerate() {
            let mut rec = vec![0u8];
            put_varint(&mut rec, spec.timestamp_step_ms * i as i64);
            put_varint(&mut rec, i as i64);
            for field in [k, v] {
                match field {
                    Some(b) => {
                        put_varint(&mut rec, b.len() as i64);
                        rec.extend_from_slice(b);
                    }
                    None => put_varint(&mut rec, -1),
                }
            }
            put_varint(&mut rec, 0);
            put_varint(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let spec = BatchSpec {
            records: records.len(),
            ..spec.clone()
        };
        let codec_bits = match spec.compression {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        let body = crate::codec::compress(spec.compression, &body)
            .expect("compressing into memory cannot fail");
        let transactional_bit: i16 = if transactional { 0x10 } else { 0 };
        wrap(&spec, codec_bits | transactional_bit, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::build::keyed_batch;
    use super::*;
    use crate::batch::{self, build::BatchSpec};
    use crate::types::{ProducerEpoch, ProducerId};

    fn spec(codec: Compression) -> BatchSpec {
        BatchSpec {
            compression: codec,
            producer_id: ProducerId(7),
            producer_epoch: ProducerEpoch(3),
            base_sequence: 40,
            timestamp_step_ms: 5,
            ..BatchSpec::default()
        }
    }

    #[test]
    fn the_map_keeps_the_latest_offset_and_refuses_keys_past_its_budget() {
        let mut m = OffsetMap::new(2 * (OFFSET_MAP_ENTRY_OVERHEAD_BYTES + 1));
        assert!(m.put(b"a", 5));
        assert!(m.put(b"a", 3));
        assert_eq!(m.get(b"a"), Some(5));
        assert!(m.put(b"b", 6));
        assert!(!m.put(b"c", 7), "a third key passes the budget");
        assert!(m.put(b"b", 9), "a known key costs nothing more");
        assert_eq!((m.len(), m.get(b"b"), m.get(b"c")), (2, Some(9), None));
        assert_eq!(m.bytes(), 2 * (OFFSET_MAP_ENTRY_OVERHEAD_BYTES + 1));
    }

    #[test]
    fn a_rebuilt_batch_keeps_offsets_producer_fields_and_codec_with_a_valid_crc() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = keyed_batch(
                &spec(codec),
                false,
                &[
                    (Some(b"k1"), Some(b"v1")),
                    (Some(b"k2"), Some(b"v2")),
                    (Some(b"k1"), None),
                    (Some(b"k3"), Some(b"v3")),
                ],
            );
            batch::set_base_offset(&mut b, Offset(100));
            let h = batch::validate(&b).unwrap();
            // Keep the records at offsets 101 and 102 only.
            let out = filter_batch(&b, &h, 1 << 20, false, |r| {
                r.offset == 101 || r.offset == 102
            });
            let Outcome::Rebuilt(nb) = out else {
                panic!("{codec:?}: expected a rebuilt batch, got {out:?}");
            };
            let nh = batch::validate(&nb).expect("the rebuilt batch validates as stored");
            assert_eq!(nh.base_offset, Offset(100));
            assert_eq!(nh.last_offset_delta, 3, "the last offset is kept");
            assert_eq!(nh.records_count, 2);
            assert_eq!(nh.compression(), Some(codec));
            assert_eq!(
                (nh.producer_id, nh.producer_epoch, nh.base_sequence),
                (h.producer_id, h.producer_epoch, h.base_sequence)
            );
            assert_eq!(
                (nh.base_timestamp_ms, nh.max_timestamp_ms),
                (h.base_timestamp_ms, h.max_timestamp_ms)
            );
            let (_, sec) = section(&nb, &nh, 1 << 20).unwrap();
            let recs = records(&sec, nh.base_offset).unwrap();
            let got: Vec<(i64, Option<&[u8]>, bool)> = recs
                .iter()
                .map(|r| (r.offset, r.key, r.tombstone))
                .collect();
            assert_eq!(
                got,
                vec![
                    (101, Some(&b"k2"[..]), false),
                    (102, Some(&b"k1"[..]), true)
                ]
            );
        }
    }

    #[test]
    fn all_kept_is_a_copy_none_kept_is_dropped_or_an_empty_batch() {
        let b = keyed_batch(
            &spec(Compression::Lz4),
            false,
            &[(Some(b"k"), Some(b"v")), (Some(b"j"), Some(b"w"))],
        );
        let h = batch::validate(&b).unwrap();
        assert_eq!(
            filter_batch(&b, &h, 1 << 20, false, |_| true),
            Outcome::Keep
        );
        assert_eq!(
            filter_batch(&b, &h, 1 << 20, false, |_| false),
            Outcome::Drop
        );
        let Outcome::Rebuilt(e) = filter_batch(&b, &h, 1 << 20, true, |_| false) else {
            panic!("expected an empty batch");
        };
        let eh = batch::validate(&e).unwrap();
        assert_eq!(
            (eh.records_count, eh.last_offset_delta, eh.base_sequence),
            (0, 1, 40)
        );
        assert_eq!(eh.compression(), Some(Compression::None));
        assert_eq!(e.len(), BATCH_HEADER_BYTES);
    }

    #[test]
    fn a_batch_that_does_not_parse_is_kept_as_it_is() {
        let mut b = keyed_batch(&spec(Compression::None), false, &[(Some(b"k"), Some(b"v"))]);
        // A record length that runs past the batch.
        b[BATCH_HEADER_BYTES] = 0x7e;
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            filter_batch(&b, &h, 1 << 20, false, |_| false),
            Outcome::Keep
        );
    }
}
