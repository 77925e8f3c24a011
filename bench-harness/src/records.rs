//! Record batches as the load generator writes and reads them: magic v2
//! batches with optional keys and compression, Kafka's default key
//! partitioner, and the key distributions a scenario can ask for.
//!
//! Every record value starts with the record's intended send time
//! (microseconds since the Unix epoch, big-endian u64), so a consumer can
//! measure end-to-end latency per record, whatever batch or codec carried it.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::compression::{self, Codec};

/// Offset of the attributes field: where the CRC's coverage starts.
const CRC_START: usize = 21;
/// Size of the v2 batch header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes of filler that record values are cut from. Random lowercase text,
/// so that compressed scenarios compress about as much as text does rather
/// than collapsing a run of one repeated byte.
const FILLER_BYTES: usize = 1 << 20;
/// Largest decompressed records section a consumer accepts from one batch.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 << 20;

/// A small, fast, seeded generator (xorshift64*): the generator's choices
/// (keys, filler) must be cheap and reproducible, not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

/// How records are keyed (scenario field `keys`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    /// No key: each request goes to the producer's next partition, round
    /// robin (like Kafka's sticky partitioner, one batch per partition).
    #[default]
    None,
    /// Keys drawn uniformly from `key_space` keys.
    Uniform,
    /// Keys drawn from a Zipf distribution (exponent 1) over `key_space`
    /// keys: the hottest key gets about 1/ln(key_space) of the records, so
    /// the partitions holding hot keys get more load than the rest.
    Skewed,
}

/// Draws key indexes for one producer.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    mode: KeyMode,
    key_space: u64,
    /// Skewed: cumulative probabilities of keys 0..key_space.
    zipf_cdf: Vec<f64>,
}

impl KeyChooser {
    pub fn new(mode: KeyMode, key_space: u64) -> Self {
        let key_space = key_space.max(1);
        let zipf_cdf = if mode == KeyMode::Skewed {
            let mut acc = 0.0;
            let mut cdf: Vec<f64> = (1..=key_space)
                .map(|k| {
                    acc += 1.0 / k as f64;
                    acc
                })
                .collect();
            for c in &mut cdf {
                *c /= acc;
            }
            cdf
        } else {
            Vec::new()
        };
        KeyChooser {
            mode,
            key_space,
            zipf_cdf,
        }
    }

    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// The next key index, or `None` when records carry no key.
    pub fn next(&self, rng: &mut Rng) -> Option<u64> {
        match self.mode {
            KeyMode::None => None,
            KeyMode::Uniform => Some(rng.below(self.key_space)),
            KeyMode::Skewed => {
                let u = rng.next_f64();
                let i = self.zipf_cdf.partition_point(|&c| c < u);
                Some((i as u64).min(self.key_space - 1))
            }
        }
    }
}

/// The key bytes of key index `k`: `key-` and ten decimal digits.
pub fn key_bytes(k: u64) -> [u8; 14] {
    let mut out = *b"key-0000000000";
    let mut v = k % 10_000_000_000;
    for slot in out[4..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

pub use corelog_client::partitioner::{murmur2, partition_for_key};

/// Shared filler text for record values: random words from a vocabulary
/// of 512 made-up words, so that values compress roughly like text (the
/// repeats that LZ codecs find, the skewed letters gzip and zstd code).
pub fn filler() -> &'static [u8] {
    static FILLER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILLER.get_or_init(|| {
        let mut rng = Rng::new(0x00c0_11e6);
        let words: Vec<Vec<u8>> = (0..512)
            .map(|_| {
                let len = 2 + rng.below(8) as usize;
                (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
            })
            .collect();
        let mut out = Vec::with_capacity(FILLER_BYTES + 16);
        while out.len() < FILLER_BYTES {
            out.extend_from_slice(&words[rng.below(words.len() as u64) as usize]);
            out.push(b' ');
        }
        out.truncate(FILLER_BYTES);
        out
    })
}

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
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

pub fn get_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

/// One record to encode: its send time and optional key index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpec {
    pub send_us: u64,
    pub key: Option<u64>,
}

/// Attributes bit of a transactional batch (Kafka's `isTransactional`).
pub const TRANSACTIONAL_BIT: i16 = 0x10;

/// The producer fields of an idempotent or transactional batch: Kafka's
/// producer id, epoch and the base sequence of the batch's first record
/// (the batch header's fields, and attributes bit 4 when transactional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
}

/// The sequence after `sequence` and `records` more records, as Kafka's
/// producer numbers them (`DefaultRecordBatch.incrementSequence`): it
/// wraps from `i32::MAX` to 0.
pub fn next_sequence(sequence: i32, records: u32) -> i32 {
    let records = records as i64;
    let next = i64::from(sequence) + records;
    if next > i64::from(i32::MAX) {
        (next - i64::from(i32::MAX) - 1) as i32
    } else {
        next as i32
    }
}

/// Encodes a v2 batch (non-idempotent producer) of `records`, each value
/// `value_bytes` long (at least 8) starting with the record's send time.
/// `filler_at` picks where in the filler text the values are cut from.
pub fn encode_batch_with(
    records: &[RecordSpec],
    value_bytes: usize,
    codec: Codec,
    filler_at: usize,
) -> Result<Vec<u8>> {
    encode_batch_stamped(records, value_bytes, codec, filler_at, None)
}

/// [`encode_batch_with`], for an idempotent or transactional producer when
/// `producer` is given: its id, epoch and base sequence in the header, and
/// the transactional attribute.
pub fn encode_batch_stamped(
    records: &[RecordSpec],
    value_bytes: usize,
    codec: Codec,
    filler_at: usize,
    producer: Option<ProducerStamp>,
) -> Result<Vec<u8>> {
    if records.is_empty() {
        bail!("a batch needs at least one record");
    }
    let value_bytes = value_bytes.max(8);
    let base_us = records[0].send_us;
    let base_ms = (base_us / 1000) as i64;
    let max_ms = records.iter().map(|r| r.send_us / 1000).max().unwrap_or(0) as i64;
    let fill = filler();
    let tail = value_bytes - 8;
    let mut body = Vec::with_capacity(records.len() * (value_bytes + 32));
    let mut rec = Vec::with_capacity(value_bytes + 32);
    for (i, r) in records.iter().enumerate() {
        rec.clear();
        rec.push(0); // attributes
        put_varint(&mut rec, (r.send_us / 1000) as i64 - base_ms); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        match r.key {
            Some(k) => {
                let kb = key_bytes(k);
                put_varint(&mut rec, kb.len() as i64);
                rec.extend_from_slice(&kb);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, value_bytes as i64);
        rec.extend_from_slice(&r.send_us.to_be_bytes());
        let mut at = (filler_at + i * 7919) % fill.len();
        let mut left = tail;
        while left > 0 {
            let n = left.min(fill.len() - at);
            rec.extend_from_slice(&fill[at..at + n]);
            left -= n;
            at = 0;
        }
        put_varint(&mut rec, 0); // headers
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let body = match codec {
        Codec::None => body,
        c => compression::compress(c, &body)?,
    };
    let n = records.len() as i32;
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, patched
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched
    let (producer_id, epoch, base_sequence, transactional) = match producer {
        Some(p) => (p.producer_id, p.epoch, p.base_sequence, p.transactional),
        None => (-1, -1, -1, false),
    };
    let mut attributes = codec.attribute_bits();
    if transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    out.extend_from_slice(&attributes.to_be_bytes()); // attributes
    out.extend_from_slice(&(n - 1).to_be_bytes()); // last offset delta
    out.extend_from_slice(&base_ms.to_be_bytes()); // base timestamp
    out.extend_from_slice(&max_ms.to_be_bytes()); // max timestamp
    out.extend_from_slice(&producer_id.to_be_bytes()); // producer id
    out.extend_from_slice(&epoch.to_be_bytes()); // producer epoch
    out.extend_from_slice(&base_sequence.to_be_bytes()); // base sequence
    out.extend_from_slice(&n.to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
    out.extend_from_slice(&body);
    let batch_len = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_len.to_be_bytes());
    let crc = crc_fast::crc32_iscsi(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Encodes an uncompressed, unkeyed batch of `records` records that all
/// carry `send_us`.
pub fn encode_batch(records: usize, value_bytes: usize, send_us: u64) -> Vec<u8> {
    let specs = vec![RecordSpec { send_us, key: None }; records.max(1)];
    encode_batch_with(&specs, value_bytes, Codec::None, 0)
        .expect("an uncompressed batch of at least one record always encodes")
}

/// One batch found in fetched record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub records: u32,
    /// Bytes of the batch as stored (compressed, with its header).
    pub stored_bytes: usize,
    /// The send time at the start of each record's value, for records that
    /// have one, in record order.
    pub send_us: Vec<u64>,
    /// The batch is compressed and its records could not be decompressed.
    pub undecodable: bool,
    /// A control batch (a transaction marker, attributes bit 5): no
    /// records of the load generator's; its records are not decoded.
    pub control: bool,
}

/// Attributes bit of a control batch.
pub const CONTROL_BIT: i16 = 0x20;

/// Walks the complete batches in `data` (a trailing partial batch, which
/// Fetch may return, is ignored). With `want_records` false the records are
/// not decoded (a catch-up consumer that only counts).
pub fn walk_batches(data: &[u8], want_records: bool) -> Vec<BatchInfo> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while data.len() - pos >= BATCH_HEADER_BYTES {
        let b = &data[pos..];
        let base_offset = i64::from_be_bytes(b[0..8].try_into().unwrap());
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap());
        if len < (BATCH_HEADER_BYTES - 12) as i32 || 12 + len as usize > b.len() {
            break;
        }
        let batch = &b[..12 + len as usize];
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap());
        let attributes = i16::from_be_bytes(batch[21..23].try_into().unwrap());
        let records = i32::from_be_bytes(batch[57..61].try_into().unwrap()).max(0) as u32;
        let mut info = BatchInfo {
            base_offset,
            last_offset: base_offset + i64::from(last_delta),
            records,
            stored_bytes: batch.len(),
            send_us: Vec::new(),
            undecodable: false,
            control: attributes & CONTROL_BIT != 0,
        };
        if want_records && !info.control {
            let section = &batch[BATCH_HEADER_BYTES..];
            match Codec::from_attributes(attributes) {
                Some(Codec::None) => value_prefixes(section, records, &mut info.send_us),
                Some(c) => {
                    match compression::decompress(c, section, DECOMPRESSED_BATCH_BYTES_MAX) {
                        Ok(plain) => value_prefixes(&plain, records, &mut info.send_us),
                        Err(_) => info.undecodable = true,
                    }
                }
                None => info.undecodable = true,
            }
        }
        out.push(info);
        pos += batch.len();
    }
    out
}

/// Appends the 8-byte big-endian prefix of each record's value in the
/// records section `recs` (values shorter than 8 bytes are skipped).
fn value_prefixes(recs: &[u8], records: u32, out: &mut Vec<u64>) {
    let mut pos = 0usize;
    for _ in 0..records {
        let Some(len) = get_varint(recs, &mut pos) else {
            return;
        };
        let start = pos;
        let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
            return;
        };
        if end > recs.len() {
            return;
        }
        if let Some(v) = record_value_prefix(&recs[start..end]) {
            out.push(v);
        }
        pos = end;
    }
}

fn record_value_prefix(rec: &[u8]) -> Option<u64> {
    let mut pos = 1; // attributes
    get_varint(rec, &mut pos)?; // timestamp delta
    get_varint(rec, &mut pos)?; // offset delta
    let key_len = get_varint(rec, &mut pos)?;
    if key_len > 0 {
        pos = pos.checked_add(key_len as usize)?;
    }
    let value_len = get_varint(rec, &mut pos)?;
    if value_len < 8 {
        return None;
    }
    let v = rec.get(pos..pos.checked_add(8)?)?;
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn key_bytes_are_zero_padded_decimal() {
        assert_eq!(&key_bytes(0), b"key-0000000000");
        assert_eq!(&key_bytes(1234567), b"key-0001234567");
    }

    #[test]
    fn skewed_keys_favour_the_first_keys_and_uniform_keys_do_not() {
        let mut rng = Rng::new(7);
        let skewed = KeyChooser::new(KeyMode::Skewed, 1000);
        let uniform = KeyChooser::new(KeyMode::Uniform, 1000);
        let n = 100_000;
        let hot = |c: &KeyChooser, rng: &mut Rng| {
            (0..n).filter(|_| c.next(rng).unwrap() == 0).count() as f64 / n as f64
        };
        // Zipf(1) over 1000 keys: key 0 has probability 1/H(1000) = 0.134.
        let p0 = hot(&skewed, &mut rng);
        assert!((0.12..0.15).contains(&p0), "{p0}");
        let u0 = hot(&uniform, &mut rng);
        assert!(u0 < 0.003, "{u0}");
        assert_eq!(KeyChooser::new(KeyMode::None, 10).next(&mut rng), None);
        for _ in 0..1000 {
            assert!(skewed.next(&mut rng).unwrap() < 1000);
        }
    }

    #[test]
    fn batches_walk_back_with_every_record_send_time() {
        let specs: Vec<RecordSpec> = (0..3)
            .map(|i| RecordSpec {
                send_us: 1_700_000_000_123_456 + i * 1500,
                key: Some(i),
            })
            .collect();
        let mut data = encode_batch_with(&specs, 100, Codec::None, 5).unwrap();
        data[0..8].copy_from_slice(&10i64.to_be_bytes());
        let second = encode_batch(1, 8, 42);
        data.extend_from_slice(&second);
        data.extend_from_slice(&second[..30]); // partial
        let batches = walk_batches(&data, true);
        assert_eq!(batches.len(), 2);
        assert_eq!((batches[0].base_offset, batches[0].last_offset), (10, 12));
        assert_eq!(batches[0].records, 3);
        assert_eq!(
            batches[0].send_us,
            specs.iter().map(|s| s.send_us).collect::<Vec<_>>()
        );
        assert_eq!(batches[1].send_us, vec![42]);
        assert!(walk_batches(&data, false)[0].send_us.is_empty());
    }

    #[test]
    fn compressed_batches_walk_back() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let specs: Vec<RecordSpec> = (0..50)
                .map(|i| RecordSpec {
                    send_us: 1000 + i,
                    key: None,
                })
                .collect();
            let data = encode_batch_with(&specs, 1024, codec, 0).unwrap();
            assert!(data.len() < 50 * 1024, "{codec:?} did not compress");
            let attributes = i16::from_be_bytes(data[21..23].try_into().unwrap());
            assert_eq!(attributes & 7, codec.attribute_bits());
            let crc = u32::from_be_bytes(data[17..21].try_into().unwrap());
            assert_eq!(crc, crc32c::crc32c(&data[21..]));
            let b = walk_batches(&data, true);
            assert_eq!(b.len(), 1);
            assert!(!b[0].undecodable);
            assert_eq!(b[0].send_us, (1000..1050).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn batch_crc_is_crc32c_of_the_tail() {
        let data = encode_batch(2, 16, 7);
        let crc = u32::from_be_bytes(data[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&data[21..]));
        assert_eq!(
            i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize,
            data.len() - 12
        );
    }

    #[test]
    fn stamped_batches_carry_the_producer_and_the_transactional_bit() {
        let specs = [RecordSpec {
            send_us: 5,
            key: None,
        }; 3];
        let stamp = ProducerStamp {
            producer_id: 0x0102_0304_0506,
            epoch: 7,
            base_sequence: 42,
            transactional: true,
        };
        for (codec, producer) in [
            (Codec::None, Some(stamp)),
            (
                Codec::Lz4,
                Some(ProducerStamp {
                    transactional: false,
                    ..stamp
                }),
            ),
            (Codec::None, None),
        ] {
            let data = encode_batch_stamped(&specs, 64, codec, 0, producer).unwrap();
            let attributes = i16::from_be_bytes(data[21..23].try_into().unwrap());
            let id = i64::from_be_bytes(data[43..51].try_into().unwrap());
            let epoch = i16::from_be_bytes(data[51..53].try_into().unwrap());
            let seq = i32::from_be_bytes(data[53..57].try_into().unwrap());
            assert_eq!(attributes & 7, codec.attribute_bits());
            match producer {
                Some(p) => {
                    assert_eq!((id, epoch, seq), (p.producer_id, 7, 42));
                    assert_eq!(attributes & TRANSACTIONAL_BIT != 0, p.transactional);
                }
                None => {
                    assert_eq!((id, epoch, seq), (-1, -1, -1));
                    assert_eq!(attributes & TRANSACTIONAL_BIT, 0);
                }
            }
            // Never a control batch (bit 5), and the CRC covers the stamp.
            assert_eq!(attributes & 0x20, 0);
            let crc = u32::from_be_bytes(data[17..21].try_into().unwrap());
            assert_eq!(crc, crc32c::crc32c(&data[21..]));
            assert_eq!(walk_batches(&data, true)[0].send_us, vec![5, 5, 5]);
        }
        // The unstamped encoder is the stamped one without a producer.
        assert_eq!(
            encode_batch_with(&specs, 64, Codec::None, 3).unwrap(),
            encode_batch_stamped(&specs, 64, Codec::None, 3, None).unwrap()
        );
    }

    #[test]
    fn sequences_wrap_as_kafkas_producer_numbers_them() {
        assert_eq!(next_sequence(0, 10), 10);
        assert_eq!(next_sequence(i32::MAX - 10, 10), i32::MAX);
        // DefaultRecordBatch.incrementSequence(MAX - 5, 10) = 4.
        assert_eq!(next_sequence(i32::MAX - 5, 10), 4);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
    }

    #[test]
    fn truncated_records_never_panic() {
        let data = encode_batch_with(
            &[RecordSpec {
                send_us: 9,
                key: Some(3),
            }],
            64,
            Codec::None,
            0,
        )
        .unwrap();
        for cut in BATCH_HEADER_BYTES..data.len() {
            let mut v = Vec::new();
            value_prefixes(&data[BATCH_HEADER_BYTES..cut], 1, &mut v);
        }
    }
}
