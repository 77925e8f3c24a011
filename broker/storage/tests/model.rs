//! Property test: random sequences of operations on a real log give the
//! answers of a plain in-memory model.
//!
//! The model is a list of batches (base offset, record count, fill byte)
//! plus the log start. A crash (dropping the log without closing it) loses
//! exactly the batches that were not flushed; retention may only move the
//! log start forward, by whole segments, and must keep the log within its
//! byte bound.

mod common;

use common::*;
use corelog_storage::batch::{self};
use corelog_storage::{BatchCache, LogConfig, Offset, PartitionLog, StorageError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, value_bytes: usize },
    Flush,
    Read { at_permille: u32, max_bytes: usize },
    AdvanceStart { at_permille: u32 },
    Reopen { clean: bool },
    Tick { ms: i64 },
    Truncate { at_permille: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 1usize..400).prop_map(|(records, value_bytes)| Op::Append { records, value_bytes }),
        3 => Just(Op::Flush),
        4 => (0u32..=1000, 1usize..20_000).prop_map(|(at_permille, max_bytes)| Op::Read { at_permille, max_bytes }),
        1 => (0u32..=1000).prop_map(|at_permille| Op::AdvanceStart { at_permille }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0i64..40_000).prop_map(|ms| Op::Tick { ms }),
        1 => (0u32..=1000).prop_map(|at_permille| Op::Truncate { at_permille }),
    ]
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base: Offset,
    next: Offset,
    fill: u8,
}

struct Model {
    batches: Vec<ModelBatch>,
    start: Offset,
}

impl Model {
    fn end(&self) -> Offset {
        self.batches.last().map_or(self.start, |b| b.next)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 << 10,
        preallocate_step_bytes: 16 << 10,
        checkpoint_interval_bytes: 24 << 10,
        retention_bytes: Some(48 << 10),
        retention_ms: Some(60_000),
        ..LogConfig::default()
    }
}

fn reopen(dir: &std::path::Path) -> PartitionLog<corelog_storage::io::StdIo> {
    open(
        corelog_storage::io::StdIo,
        dir,
        config(),
        BatchCache::shared(8 << 10),
    )
    .0
}

fn check_read(
    log: &PartitionLog<corelog_storage::io::StdIo>,
    model: &Model,
    at: Offset,
    max_bytes: usize,
) {
    let end = log.next_offset();
    let got = block_on(log.plan_read(at, max_bytes, end).unwrap().execute()).unwrap();
    if at == end {
        assert!(got.is_empty());
        return;
    }
    assert!(!got.is_empty(), "nothing read at {at} below end {end}");
    let bytes = got.to_vec();
    let mut pos = 0;
    let mut first = true;
    let mut expect_base = None;
    while pos < bytes.len() {
        let h = batch::validate_prefix(&bytes[pos..]).expect("valid batch");
        let m = model
            .batches
            .iter()
            .find(|b| b.base == h.base_offset)
            .expect("batch the model knows");
        assert_eq!(h.next_offset(), m.next);
        if first {
            assert!(
                h.base_offset <= at && at < h.next_offset(),
                "first batch must hold {at}"
            );
            first = false;
        }
        if let Some(e) = expect_base {
            assert_eq!(h.base_offset, e, "batches are contiguous");
        }
        expect_base = Some(h.next_offset());
        assert_eq!(
            bytes[pos + h.total_bytes - 2],
            m.fill,
            "batch at {} holds its own data",
            h.base_offset
        );
        pos += h.total_bytes;
    }
    assert!(
        got.bytes <= max_bytes.max(bytes.len()),
        "at least one batch, else within max_bytes"
    );
    assert_eq!(got.next_offset, expect_base.unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_the_in_memory_model(ops in proptest::collection::vec(op(), 1..120)) {
        run_model(ops)?;
    }
}

/// Found by the property test in CI: the flush a truncation starts with ran
/// retention, which deleted the segment holding the cut point and moved the
/// log start past it; the truncation then panicked looking for that segment.
#[test]
fn truncation_at_a_start_that_retention_moves_during_its_flush_is_refused() {
    let mut ops = Vec::new();
    for (records, value_bytes) in [
        (1, 35),
        (4, 290),
        (3, 164),
        (5, 340),
        (5, 50),
        (4, 103),
        (5, 68),
        (4, 348),
        (5, 296),
        (5, 352),
        (5, 360),
        (1, 346),
        (5, 395),
        (4, 221),
        (4, 125),
    ] {
        ops.push(Op::Append {
            records,
            value_bytes,
        });
    }
    ops.push(Op::Tick { ms: 22_078 });
    ops.push(Op::Append {
        records: 5,
        value_bytes: 63,
    });
    ops.push(Op::Reopen { clean: true });
    ops.push(Op::Tick { ms: 37_923 });
    ops.push(Op::Truncate { at_permille: 0 });
    run_model(ops).unwrap();
}

/// Also from CI: a truncation that succeeds can still run retention in its
/// flush, so the log start moves; a read afterwards must see the new start.
#[test]
fn truncation_whose_flush_runs_retention_moves_the_log_start() {
    let mut ops = Vec::new();
    let first = [
        (5, 286),
        (4, 205),
        (2, 355),
        (2, 191),
        (5, 366),
        (1, 1),
        (3, 57),
        (4, 1),
        (2, 1),
        (5, 1),
        (1, 1),
        (5, 1),
    ];
    for (records, value_bytes) in first {
        ops.push(Op::Append {
            records,
            value_bytes,
        });
    }
    ops.push(Op::Truncate { at_permille: 565 });
    ops.push(Op::AdvanceStart { at_permille: 546 });
    for (records, value_bytes) in [
        (4, 221),
        (4, 245),
        (5, 305),
        (3, 60),
        (4, 169),
        (4, 370),
        (3, 99),
    ] {
        ops.push(Op::Append {
            records,
            value_bytes,
        });
    }
    ops.push(Op::Flush);
    ops.push(Op::Append {
        records: 3,
        value_bytes: 68,
    });
    ops.push(Op::Flush);
    for (records, value_bytes) in [(5, 185), (1, 20), (3, 143), (2, 391)] {
        ops.push(Op::Append {
            records,
            value_bytes,
        });
    }
    ops.push(Op::Tick { ms: 23_494 });
    for (records, value_bytes) in [(3, 286), (5, 1), (3, 1)] {
        ops.push(Op::Append {
            records,
            value_bytes,
        });
    }
    ops.push(Op::Tick { ms: 36_507 });
    ops.push(Op::Truncate { at_permille: 823 });
    ops.push(Op::Read {
        at_permille: 0,
        max_bytes: 1,
    });
    run_model(ops).unwrap();
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(reopen(dir.path()));
        let mut model = Model {
            batches: Vec::new(),
            start: Offset(0),
        };
        let mut now = NOW_MS;
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append {
                    records,
                    value_bytes,
                } => {
                    let base = l.next_offset();
                    let info = l
                        .append(patterned(base, records, value_bytes, now))
                        .unwrap();
                    prop_assert_eq!(info.base_offset, model.end());
                    model.batches.push(ModelBatch {
                        base,
                        next: info.last_offset.plus(1),
                        fill: (base.0 % 251) as u8,
                    });
                }
                Op::Flush => {
                    block_on(l.flush_all(now)).unwrap();
                    prop_assert_eq!(l.flushed_offset(), model.end());
                    // Retention may have moved the start, by whole segments.
                    prop_assert!(l.log_start_offset() >= model.start);
                    model.start = l.log_start_offset();
                    prop_assert!(l.size_bytes() <= (48 << 10) + (16 << 10));
                }
                Op::Read {
                    at_permille,
                    max_bytes,
                } => {
                    let span = (model.end().0 - model.start.0) as u64;
                    let at = Offset(model.start.0 + (span * at_permille as u64 / 1000) as i64);
                    prop_assert_eq!(l.log_start_offset(), model.start);
                    prop_assert_eq!(l.next_offset(), model.end());
                    check_read(l, &model, at, max_bytes);
                    if model.start > Offset(0) {
                        let below = l.plan_read(Offset(model.start.0 - 1), 100, l.next_offset());
                        let out_of_range =
                            matches!(below, Err(StorageError::OffsetOutOfRange { .. }));
                        prop_assert!(
                            out_of_range,
                            "read below the log start must be out of range"
                        );
                    }
                }
                Op::AdvanceStart { at_permille } => {
                    let flushed = l.flushed_offset();
                    let span = (flushed.0 - model.start.0).max(0) as u64;
                    let to = Offset(model.start.0 + (span * at_permille as u64 / 1000) as i64);
                    l.advance_log_start(to).unwrap();
                    model.start = model.start.max(to);
                }
                Op::Reopen { clean } => {
                    let l = log.take().unwrap();
                    if clean {
                        block_on(l.close(now)).unwrap();
                    } else {
                        // A crash: what was not flushed is gone.
                        let flushed = l.flushed_offset();
                        drop(l);
                        model.batches.retain(|b| b.next <= flushed);
                    }
                    let l = reopen(dir.path());
                    prop_assert_eq!(l.next_offset(), model.end());
                    if clean {
                        // Closing runs pending retention, which may only move the start forward.
                        prop_assert!(l.log_start_offset() >= model.start);
                    }
                    // A start moved by DeleteRecords but not yet checkpointed
                    // may fall back on a crash; Kafka has the same window.
                    // The model follows what was made durable.
                    model.start = l.log_start_offset();
                    log = Some(l);
                }
                Op::Tick { ms } => now += ms,
                Op::Truncate { at_permille } => {
                    let span = (model.end().0 - model.start.0) as u64;
                    let to = Offset(model.start.0 + (span * at_permille as u64 / 1000) as i64);
                    // Whole batches: the log ends at the start of the batch holding `to`.
                    let expected = model
                        .batches
                        .iter()
                        .find(|b| b.next > to)
                        .map_or(model.end(), |b| b.base);
                    let result = block_on(l.truncate_to(to, now));
                    if matches!(result, Err(StorageError::OffsetOutOfRange { .. }))
                        && l.log_start_offset() > to
                    {
                        // The flush before the cut ran retention, which moved
                        // the start past `to`: refused, nothing else changes.
                        model.start = l.log_start_offset();
                        prop_assert_eq!(l.next_offset(), model.end());
                        prop_assert_eq!(l.flushed_offset(), model.end());
                        continue;
                    }
                    if expected < model.start {
                        // That batch starts before the log start: refused, nothing changes.
                        let refused = matches!(result, Err(StorageError::OffsetOutOfRange { .. }));
                        prop_assert!(refused, "truncation below the log start must be refused");
                        prop_assert_eq!(l.next_offset(), model.end());
                        continue;
                    }
                    let end = result.unwrap();
                    prop_assert_eq!(end, expected);
                    model.batches.retain(|b| b.next <= expected);
                    // The flush the truncation starts with may run retention,
                    // which may only move the start forward, as for Flush.
                    prop_assert!(l.log_start_offset() >= model.start);
                    model.start = l.log_start_offset();
                    prop_assert_eq!(l.next_offset(), model.end());
                    prop_assert!(l.flushed_offset() <= model.end());
                }
            }
        }
    }
    Ok(())
}
