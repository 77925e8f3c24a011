//! Kafka transactions, the storage part: transaction markers (control
//! batches), the aborted-transaction index and its `.txnindex` files
//! (Kafka's `TransactionIndex`).
//!
//! # Markers
//! A transaction ends with a marker that the coordinator has each partition
//! leader write ([`crate::PartitionLog::append_marker`]): a v2 control batch
//! (attributes transactional|control) from the producer's id and epoch with
//! base sequence -1 and one record whose key is `version i16 (0), type i16`
//! (0 ABORT, 1 COMMIT) and whose value is `version i16 (0), coordinator
//! epoch i32`, exactly as Kafka's `MemoryRecords.withEndTransactionMarker`
//! builds it. Clients may not write control batches; a follower copies them
//! from its leader and recovery replays them like any batch.
//!
//! # Aborted-transaction index
//! Every ABORT marker that ends a transaction with data in the partition
//! adds an entry (producer id, first offset, the marker's offset, and the
//! last stable offset once it completed) to the segment that holds the
//! marker. A read_committed fetch asks for the aborted transactions that
//! overlap what it returns ([`crate::PartitionLog::aborted_transactions`])
//! and the consumer drops their records.
//!
//! In memory the log keeps every segment's entries in one map ordered by
//! the marker's offset: a segment's entries are the map's range
//! `[segment base, next segment base)`. One map rather than a list per
//! segment because a marker is indexed when it is appended, before the
//! write that decides which segment it lands in (a roll may come first).
//!
//! # Durability contract of the `.txnindex` files
//! - A `.txnindex` file is written only for a segment with entries, in
//!   Kafka's layout (34 bytes per entry, big-endian, see [`encode`]), and
//!   replaced atomically. The checkpoint lists the segments whose file it
//!   covers ([`crate::checkpoint::Checkpoint::txn_index_bases`]).
//! - A sealed segment's file is written once, by the roll job that seals
//!   it, before the roll's checkpoint lists it.
//! - The active segment's file is written with each checkpoint (like its
//!   offset and time indexes), holding the entries whose markers lie below
//!   the checkpoint's recovery point; entries after it are rebuilt by
//!   recovery's replay of the batches after the recovery point.
//! - On open, recovery loads the files the checkpoint lists. A listed file
//!   that is missing or torn (a length that is not a whole number of
//!   entries, or entries that do not belong to the segment) is rebuilt by
//!   scanning the log from its first segment through that segment, and
//!   written again; it is logged at warn.
//! - Retention deletes a segment's `.txnindex` with it; truncation drops
//!   the entries whose markers are cut and rewrites (or removes) the cut
//!   segment's file.

use std::collections::BTreeMap;

use crate::batch::{build, read_varint, BatchHeader, BATCH_HEADER_BYTES};
use crate::types::{Offset, ProducerEpoch, ProducerId};

/// What a transaction marker decides. Kafka's control record types 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    /// The control record type Kafka writes in the marker's key.
    pub fn control_type(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }

    pub fn from_control_type(t: i16) -> Option<MarkerKind> {
        match t {
            0 => Some(MarkerKind::Abort),
            1 => Some(MarkerKind::Commit),
            _ => None,
        }
    }
}

/// A transaction marker the coordinator asks a partition leader to write
/// (WriteTxnMarkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub coordinator_epoch: i32,
    pub kind: MarkerKind,
}

/// An aborted transaction as a read_committed Fetch returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    /// The offset of the ABORT marker.
    pub last_offset: Offset,
}

/// One entry of a `.txnindex`: an aborted transaction and the last stable
/// offset once it completed (the first offset of the transactions still
/// open then, or the marker's offset + 1 if none was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnIndexEntry {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl TxnIndexEntry {
    pub fn aborted(&self) -> AbortedTxn {
        AbortedTxn {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
        }
    }
}

/// Bytes of one `.txnindex` entry: version i16, producer id i64, first
/// offset i64, last offset i64, last stable offset i64.
pub const TXN_INDEX_ENTRY_BYTES: usize = 34;
const TXN_INDEX_VERSION: i16 = 0;

/// The most aborted transactions one [`crate::PartitionLog::aborted_transactions`]
/// call returns (the ones with the smallest first offsets). A fetch that
/// would need more should read less: see
/// [`crate::PartitionLog::aborted_transactions_bounded`], which says below
/// which offset the list is complete.
pub const ABORTED_TXNS_PER_READ_MAX: usize = 10_000;

/// Kafka's file layout of the entries (in marker order).
pub fn encode<'a>(entries: impl IntoIterator<Item = &'a TxnIndexEntry>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&TXN_INDEX_VERSION.to_be_bytes());
        out.extend_from_slice(&e.producer_id.0.to_be_bytes());
        out.extend_from_slice(&e.first_offset.0.to_be_bytes());
        out.extend_from_slice(&e.last_offset.0.to_be_bytes());
        out.extend_from_slice(&e.last_stable_offset.0.to_be_bytes());
    }
    out
}

/// Reads a segment's `.txnindex`. `None` when it is torn or does not
/// belong to the segment `[base, next)`: a partial entry, an unknown
/// version, a marker outside the segment or out of order, a first offset
/// after its marker.
pub fn decode(bytes: &[u8], base: Offset, next: Offset) -> Option<Vec<TxnIndexEntry>> {
    if !bytes.len().is_multiple_of(TXN_INDEX_ENTRY_BYTES) {
        return None;
    }
    let mut out: Vec<TxnIndexEntry> = Vec::with_capacity(bytes.len() / TXN_INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks_exact(TXN_INDEX_ENTRY_BYTES) {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&chunk[at..at + 8]);
            i64::from_be_bytes(a)
        };
        if i16::from_be_bytes([chunk[0], chunk[1]]) != TXN_INDEX_VERSION {
            return None;
        }
        let e = TxnIndexEntry {
            producer_id: ProducerId(i64_at(2)),
            first_offset: Offset(i64_at(10)),
            last_offset: Offset(i64_at(18)),
            last_stable_offset: Offset(i64_at(26)),
        };
        let in_segment = e.last_offset >= base && e.last_offset < next;
        let ordered = out.last().is_none_or(|p| p.last_offset < e.last_offset);
        if !in_segment || !ordered || e.first_offset > e.last_offset {
            return None;
        }
        out.push(e);
    }
    Some(out)
}

/// The `.txnindex` entries of a partition, keyed by marker offset.
pub(crate) type AbortedIndex = BTreeMap<i64, TxnIndexEntry>;

/// The entries of the segment `[base, next)`, for its file.
pub(crate) fn segment_entries(
    index: &AbortedIndex,
    base: Offset,
    next: Offset,
) -> Vec<TxnIndexEntry> {
    index
        .range(base.0..next.0.max(base.0))
        .map(|(_, e)| *e)
        .collect()
}

/// Aborted transactions overlapping `[from, upper)`, in first-offset
/// order, at most `max`, and the offset below which the list is complete
/// (`upper` unless `max` cut it).
///
/// Walks the entries in marker order from `from` and stops after one whose
/// last stable offset reaches `upper`: every transaction that completed
/// after it started at or after that offset (Kafka's
/// `collectAbortedTransactions`).
pub(crate) fn collect(
    index: &AbortedIndex,
    from: Offset,
    upper: Offset,
    max: usize,
) -> (Vec<AbortedTxn>, Offset) {
    let mut out = Vec::new();
    if from >= upper {
        return (out, upper);
    }
    for e in index.range(from.0..).map(|(_, e)| e) {
        if e.first_offset < upper {
            out.push(e.aborted());
        }
        if e.last_stable_offset >= upper {
            break;
        }
    }
    out.sort_by_key(|a| (a.first_offset, a.last_offset));
    if out.len() > max {
        let complete_below = out[max].first_offset;
        out.truncate(max);
        return (out, complete_below);
    }
    (out, upper)
}

/// What a control batch's record says, for the producer state. `None` for
/// a control type other than ABORT and COMMIT, or a record that does not
/// decode (Kafka ignores such control batches for transaction state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedMarker {
    pub kind: MarkerKind,
    pub coordinator_epoch: i32,
}

/// Reads the marker in a control batch (its first record).
pub fn parse_marker(bytes: &[u8], h: &BatchHeader) -> Option<ParsedMarker> {
    if !h.is_control() || h.compression() != Some(crate::codec::Compression::None) {
        return None;
    }
    let body = bytes.get(BATCH_HEADER_BYTES..h.total_bytes)?;
    let (len, used) = read_varint(body)?;
    let record = body.get(used..used + usize::try_from(len).ok()?)?;
    // attributes (int8), timestampDelta (varlong), offsetDelta (varint),
    // keyLength (varint), key, valueLength (varint), value, headers.
    let mut at = 1;
    let (_, n) = read_varint(record.get(at..)?)?;
    at += n;
    let (_, n) = read_varint(record.get(at..)?)?;
    at += n;
    let (key_len, n) = read_varint(record.get(at..)?)?;
    at += n;
    let key = record.get(at..at + usize::try_from(key_len).ok()?)?;
    at += key.len();
    if key.len() < 4 {
        return None;
    }
    let kind = MarkerKind::from_control_type(i16::from_be_bytes([key[2], key[3]]))?;
    let (value_len, n) = read_varint(record.get(at..)?)?;
    at += n;
    let value = record.get(at..at + usize::try_from(value_len).ok()?)?;
    let coordinator_epoch = if value.len() >= 6 {
        i32::from_be_bytes([value[2], value[3], value[4], value[5]])
    } else {
        -1
    };
    Some(ParsedMarker {
        kind,
        coordinator_epoch,
    })
}

const TRANSACTIONAL_CONTROL_ATTRIBUTES: i16 = 0x10 | 0x20;

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

/// The control batch of `marker`, with base offset 0 and timestamp
/// `now_ms`, as Kafka's `MemoryRecords.withEndTransactionMarker` builds it.
pub fn marker_batch(marker: &TxnMarker, now_ms: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.kind.control_type().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut rec = Vec::with_capacity(24);
    rec.push(0); // attributes
    put_varint(&mut rec, 0); // timestamp delta
    put_varint(&mut rec, 0); // offset delta
    put_varint(&mut rec, key.len() as i64);
    rec.extend_from_slice(&key);
    put_varint(&mut rec, value.len() as i64);
    rec.extend_from_slice(&value);
    put_varint(&mut rec, 0); // no headers
    let mut section = Vec::with_capacity(rec.len() + 2);
    put_varint(&mut section, rec.len() as i64);
    section.extend_from_slice(&rec);
    let spec = build::BatchSpec {
        records: 1,
        base_timestamp_ms: now_ms,
        timestamp_step_ms: 0,
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
        base_sequence: -1,
        ..Default::default()
    };
    build::wrap(&spec, TRANSACTIONAL_CONTROL_ATTRIBUTES, &section)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;
    use crate::records::{check_records, RecordLimits};

    fn marker(kind: MarkerKind) -> TxnMarker {
        TxnMarker {
            producer_id: ProducerId(42),
            producer_epoch: ProducerEpoch(3),
            coordinator_epoch: 17,
            kind,
        }
    }

    #[test]
    fn marker_batch_is_a_valid_kafka_control_batch_that_parses_back() {
        for kind in [MarkerKind::Abort, MarkerKind::Commit] {
            let b = marker_batch(&marker(kind), 1234);
            let h = validate(&b).unwrap();
            check_records(&b, &h, &RecordLimits::default()).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(h.producer_id, ProducerId(42));
            assert_eq!(h.producer_epoch, ProducerEpoch(3));
            assert_eq!(h.base_sequence, -1);
            assert_eq!((h.base_timestamp_ms, h.max_timestamp_ms), (1234, 1234));
            assert_eq!(
                parse_marker(&b, &h),
                Some(ParsedMarker {
                    kind,
                    coordinator_epoch: 17
                })
            );
        }
        // The record bytes as Kafka writes them for an ABORT, epoch 17:
        // length 16 (zig-zag 32), attributes 0, deltas 0, key (4 bytes,
        // zig-zag 8) 0 0 0 0, value (6 bytes, zig-zag 12) 0 0 0 0 0 17, no
        // headers.
        let b = marker_batch(&marker(MarkerKind::Abort), 0);
        assert_eq!(
            &b[BATCH_HEADER_BYTES..],
            &[32, 0, 0, 0, 8, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 17, 0]
        );
    }

    #[test]
    fn txn_index_round_trips_and_a_torn_or_foreign_file_is_refused() {
        let entries = vec![
            TxnIndexEntry {
                producer_id: ProducerId(1),
                first_offset: Offset(3),
                last_offset: Offset(10),
                last_stable_offset: Offset(11),
            },
            TxnIndexEntry {
                producer_id: ProducerId(2),
                first_offset: Offset(5),
                last_offset: Offset(12),
                last_stable_offset: Offset(9),
            },
        ];
        let bytes = encode(&entries);
        assert_eq!(bytes.len(), 2 * TXN_INDEX_ENTRY_BYTES);
        assert_eq!(decode(&bytes, Offset(8), Offset(20)).unwrap(), entries);
        assert!(decode(&bytes[..bytes.len() - 1], Offset(8), Offset(20)).is_none());
        assert!(decode(&bytes, Offset(11), Offset(20)).is_none());
        assert!(decode(&bytes, Offset(0), Offset(12)).is_none());
        assert_eq!(decode(&[], Offset(0), Offset(1)).unwrap(), vec![]);
    }
}
