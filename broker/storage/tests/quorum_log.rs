//! The metadata quorum's durable log (`corelog_storage::quorum_log`): one
//! test per fault on disk, each asserting what Raft relies on afterwards,
//! and a property test against an in-memory model with crashes.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use corelog_storage::quorum_log::{
    CrashPoint, Entry, HardState, QuorumLog, QuorumLogError, Recovered, Snapshot,
};
use proptest::prelude::*;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        kind: (index % 3) as u8,
        data: Bytes::from(format!("entry {index} of term {term}").repeat((index % 4) as usize + 1)),
        context: if index.is_multiple_of(5) {
            Bytes::from_static(b"ctx")
        } else {
            Bytes::new()
        },
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        index,
        term,
        voters: vec![1, 2, 3],
        data: Bytes::from(format!("image at {index}")),
    }
}

/// The live log file (the only `log-*` once a call has returned).
fn log_file(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .collect();
    logs.sort();
    logs.pop().expect("a log file")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn open(dir: &Path) -> (QuorumLog, Recovered) {
    QuorumLog::open(dir).expect("open")
}

fn state(r: &Recovered) -> (HardState, Option<Snapshot>, Vec<Entry>) {
    (r.hard_state, r.snapshot.clone(), r.entries.clone())
}

#[test]
fn new_log_recovers_empty_and_persisted_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, r) = open(dir.path());
    assert_eq!(r, Recovered::default());
    log.persist(None, &entries(1..=3, 1), Some(hs(1, 1, 0)))
        .unwrap();
    log.persist(None, &entries(4..=5, 1), Some(hs(1, 1, 3)))
        .unwrap();
    drop(log);
    let (log, r) = open(dir.path());
    assert_eq!(r.truncated_bytes, 0);
    assert_eq!(r.hard_state, hs(1, 1, 3));
    assert_eq!(r.snapshot, None);
    assert_eq!(r.entries, entries(1..=5, 1));
    assert_eq!((log.snapshot_index(), log.last_index()), (0, 5));
}

#[test]
fn torn_tail_frame_is_truncated_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=3, 1), Some(hs(1, 1, 2)))
        .unwrap();
    let path = log_file(dir.path());
    let synced = file_len(&path);
    log.persist(None, &entries(4..=6, 2), Some(hs(2, 2, 3)))
        .unwrap();
    drop(log);
    let full = std::fs::read(&path).unwrap();
    // A crash before the second persist's fdatasync may leave any prefix of
    // its bytes: every one recovers the first persist exactly.
    for cut in synced..full.len() as u64 {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(r.entries, entries(1..=3, 1), "cut at {cut}");
        assert_eq!(r.hard_state, hs(1, 1, 2), "cut at {cut}");
        assert_eq!(r.truncated_bytes, cut - synced);
        assert_eq!(
            file_len(&path),
            synced,
            "the torn tail is cut from the file"
        );
    }
    // After the cut the log takes persists again, and they stick.
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(4..=4, 3), Some(hs(3, 1, 3)))
        .unwrap();
    drop(log);
    let (_, r) = open(dir.path());
    let mut want = entries(1..=3, 1);
    want.push(entry(4, 3));
    assert_eq!((r.entries, r.hard_state), (want, hs(3, 1, 3)));
}

#[test]
fn corrupt_crc_in_the_tail_frame_drops_its_whole_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=2, 1), Some(hs(1, 1, 0)))
        .unwrap();
    let path = log_file(dir.path());
    let synced = file_len(&path);
    log.persist(None, &entries(3..=5, 1), Some(hs(1, 1, 2)))
        .unwrap();
    drop(log);
    let full = std::fs::read(&path).unwrap();
    for at in synced..full.len() as u64 {
        let mut bad = full.clone();
        bad[at as usize] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(r.entries, entries(1..=2, 1), "flip at {at}");
        assert_eq!(r.hard_state, hs(1, 1, 0), "flip at {at}");
        assert_eq!(file_len(&path), synced);
    }
}

#[test]
fn damaged_frame_in_a_synced_persist_with_more_after_it_is_corruption_not_a_torn_tail() {
    // Each persist is synced before the next is written, so only the last
    // can be torn. Bit rot in an earlier one must not be cut away as if it
    // were a tail (that would drop persists reported durable).
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=2, 1), Some(hs(1, 1, 0)))
        .unwrap();
    let path = log_file(dir.path());
    let a = file_len(&path);
    log.persist(None, &entries(3..=4, 1), Some(hs(1, 1, 2)))
        .unwrap();
    let b = file_len(&path);
    log.persist(None, &entries(5..=5, 1), Some(hs(1, 1, 4)))
        .unwrap();
    drop(log);
    let full = std::fs::read(&path).unwrap();
    // Past the middle persist's begin marker (17 bytes): its entries, hard
    // state and commit marker.
    for at in a + 17..b {
        let mut bad = full.clone();
        bad[at as usize] ^= 0x08;
        std::fs::write(&path, &bad).unwrap();
        match QuorumLog::open(dir.path()) {
            Err(QuorumLogError::Corrupt { reason, .. }) => {
                assert!(reason.contains("not a torn tail"), "{reason}")
            }
            other => panic!("flip at {at} read as {other:?}"),
        }
        assert_eq!(file_len(&path), full.len() as u64, "nothing was cut");
    }
}

#[test]
fn torn_hard_state_record_drops_the_persist_it_ends() {
    // The hard state is a record of its persist's batch, just before the
    // commit marker: tearing it (or the marker) must not leave the batch's
    // entries without the hard state that came with them, nor a vote
    // without the entries.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=2, 1), Some(hs(1, 1, 0)))
        .unwrap();
    let path = log_file(dir.path());
    let before_vote = file_len(&path);
    log.persist(None, &[], Some(hs(2, 3, 1))).unwrap();
    drop(log);
    let full = std::fs::read(&path).unwrap();
    for cut in before_vote..full.len() as u64 {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(r.hard_state, hs(1, 1, 0), "cut at {cut}");
        assert_eq!(r.entries, entries(1..=2, 1));
    }
    std::fs::write(&path, &full).unwrap();
    assert_eq!(open(dir.path()).1.hard_state, hs(2, 3, 1));
}

#[test]
fn replacing_a_suffix_then_crash_before_the_new_entries_are_durable_keeps_the_old_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=5, 1), Some(hs(1, 1, 2)))
        .unwrap();
    let path = log_file(dir.path());
    let synced = file_len(&path);
    // A new leader's entries from index 3 on replace 3..=5.
    log.persist(None, &entries(3..=4, 2), Some(hs(2, 2, 2)))
        .unwrap();
    assert_eq!(log.last_index(), 4);
    drop(log);
    let full = std::fs::read(&path).unwrap();
    for cut in synced..full.len() as u64 {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(
            r.entries,
            entries(1..=5, 1),
            "cut at {cut}: the old suffix stays whole"
        );
        assert_eq!(r.hard_state, hs(1, 1, 2));
    }
    std::fs::write(&path, &full).unwrap();
    let (_, r) = open(dir.path());
    let mut want = entries(1..=2, 1);
    want.extend(entries(3..=4, 2));
    assert_eq!((r.entries, r.hard_state), (want, hs(2, 2, 2)));
}

#[test]
fn crash_between_writing_a_new_snapshot_and_compacting_the_log_leaves_a_matching_pair() {
    for point in [
        CrashPoint::AfterNewLog,
        CrashPoint::AfterSnapshotTemp,
        CrashPoint::AfterRename,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        log.persist(None, &entries(1..=6, 1), Some(hs(1, 1, 5)))
            .unwrap();
        let old = (hs(1, 1, 5), None, entries(1..=6, 1));
        let new = (hs(1, 1, 5), Some(snapshot(4, 1)), entries(5..=6, 1));
        log.compact_until(&snapshot(4, 1), Some(point)).unwrap();
        drop(log);
        // Every intermediate state has two log files; one is a leftover.
        let (mut log, r) = open(dir.path());
        let want = if point == CrashPoint::AfterRename {
            &new
        } else {
            &old
        };
        assert_eq!(&state(&r), want, "{point:?}");
        let logs = names(dir.path())
            .into_iter()
            .filter(|n| n.starts_with("log-"))
            .count();
        assert_eq!(logs, 1, "{point:?}: leftovers removed");
        assert!(!names(dir.path()).iter().any(|n| n.ends_with(".tmp")));
        // And the recovered pair goes on working: compact again, persist.
        log.compact(&snapshot(5, 1)).unwrap();
        log.persist(None, &entries(7..=7, 2), Some(hs(2, 1, 6)))
            .unwrap();
        drop(log);
        let (_, r) = open(dir.path());
        assert_eq!(
            state(&r),
            (
                hs(2, 1, 6),
                Some(snapshot(5, 1)),
                vec![entry(6, 1), entry(7, 2)]
            )
        );
    }
}

#[test]
fn snapshot_from_the_leader_replaces_the_whole_log_even_across_a_crash() {
    for point in [
        None,
        Some(CrashPoint::AfterNewLog),
        Some(CrashPoint::AfterRename),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = open(dir.path());
        // A divergent log: entries of term 1 past the leader's snapshot.
        log.persist(None, &entries(1..=8, 1), Some(hs(1, 1, 2)))
            .unwrap();
        match point {
            None => {
                log.persist(Some(&snapshot(5, 3)), &entries(6..=6, 3), Some(hs(3, 2, 5)))
                    .unwrap();
            }
            // The same switch as a compaction, stopped part way.
            Some(p) => {
                log.compact_until(&snapshot(5, 1), Some(p)).unwrap();
            }
        }
        drop(log);
        let (_, r) = open(dir.path());
        match point {
            None => assert_eq!(
                state(&r),
                (hs(3, 2, 5), Some(snapshot(5, 3)), entries(6..=6, 3)),
                "no entry of the old log survives the snapshot"
            ),
            Some(CrashPoint::AfterRename) => {
                assert_eq!(
                    state(&r),
                    (hs(1, 1, 2), Some(snapshot(5, 1)), entries(6..=8, 1))
                )
            }
            Some(_) => assert_eq!(state(&r), (hs(1, 1, 2), None, entries(1..=8, 1))),
        }
    }
}

#[test]
fn a_gap_in_the_middle_of_the_log_is_corruption_not_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=3, 1), None).unwrap();
    let path = log_file(dir.path());
    let a = file_len(&path);
    log.persist(None, &entries(4..=5, 1), None).unwrap();
    let b = file_len(&path);
    log.persist(None, &entries(6..=7, 1), Some(hs(1, 1, 7)))
        .unwrap();
    drop(log);
    // Lose the middle persist's bytes: 1..=3 then 6..=7.
    let full = std::fs::read(&path).unwrap();
    let mut spliced = full[..a as usize].to_vec();
    spliced.extend_from_slice(&full[b as usize..]);
    std::fs::write(&path, &spliced).unwrap();
    match QuorumLog::open(dir.path()) {
        Err(QuorumLogError::Corrupt {
            position, reason, ..
        }) => {
            assert!(reason.contains("gap"), "{reason}");
            assert!(position >= a);
        }
        other => panic!("a gap was accepted: {other:?}"),
    }
}

#[test]
fn persist_refuses_a_gap_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=3, 1), None).unwrap();
    let path = log_file(dir.path());
    let len = file_len(&path);
    for bad in [
        entries(5..=6, 1),
        vec![entry(4, 1), entry(6, 1)],
        vec![entry(4, 1), entry(4, 1)],
    ] {
        assert!(matches!(
            log.persist(None, &bad, Some(hs(1, 1, 1))),
            Err(QuorumLogError::Refused(_))
        ));
        assert_eq!(file_len(&path), len);
    }
    // The log still works: a refusal is not an I/O failure.
    log.persist(None, &entries(4..=4, 1), None).unwrap();
    assert!(matches!(
        log.compact(&snapshot(3, 9)),
        Err(QuorumLogError::Refused(_))
    ));
    assert!(matches!(
        log.compact(&snapshot(9, 1)),
        Err(QuorumLogError::Refused(_))
    ));
    assert!(log.compact(&snapshot(3, 1)).unwrap());
    assert!(!log.compact(&snapshot(2, 1)).unwrap(), "already compacted");
}

#[test]
fn damaged_snapshot_file_or_missing_log_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=4, 1), Some(hs(1, 1, 4)))
        .unwrap();
    log.compact(&snapshot(3, 1)).unwrap();
    drop(log);
    let snap = dir.path().join("snapshot");
    let good = std::fs::read(&snap).unwrap();
    for at in [0, 9, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        std::fs::write(&snap, &bad).unwrap();
        assert!(
            matches!(
                QuorumLog::open(dir.path()),
                Err(QuorumLogError::Corrupt { .. })
            ),
            "flip at {at} accepted"
        );
    }
    std::fs::write(&snap, &good[..good.len() - 3]).unwrap();
    assert!(matches!(
        QuorumLog::open(dir.path()),
        Err(QuorumLogError::Corrupt { .. })
    ));
    std::fs::write(&snap, &good).unwrap();
    std::fs::remove_file(log_file(dir.path())).unwrap();
    assert!(matches!(
        QuorumLog::open(dir.path()),
        Err(QuorumLogError::Corrupt { .. })
    ));
}

#[test]
fn log_named_by_a_snapshot_that_lost_its_first_batch_is_corruption() {
    // Compaction syncs the new log (hard state and retained entries) before
    // the snapshot naming it is renamed in: without that batch the vote
    // would silently be forgotten.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=4, 1), Some(hs(3, 2, 4)))
        .unwrap();
    log.compact(&snapshot(2, 1)).unwrap();
    drop(log);
    let path = log_file(dir.path());
    let full = std::fs::read(&path).unwrap();
    for cut in [0, 10, 30, full.len() - 1] {
        std::fs::write(&path, &full[..cut]).unwrap();
        assert!(
            matches!(
                QuorumLog::open(dir.path()),
                Err(QuorumLogError::Corrupt { .. })
            ),
            "cut at {cut} accepted"
        );
    }
    std::fs::write(&path, &full).unwrap();
    let (_, r) = open(dir.path());
    assert_eq!(
        state(&r),
        (hs(3, 2, 4), Some(snapshot(2, 1)), entries(3..=4, 1))
    );
}

#[test]
fn damaged_header_of_a_log_with_persists_is_corruption_but_a_torn_new_log_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let path = log_file(dir.path());
    let header = file_len(&path);
    log.persist(None, &entries(1..=2, 1), None).unwrap();
    drop(log);
    let full = std::fs::read(&path).unwrap();
    let mut bad = full.clone();
    bad[10] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        QuorumLog::open(dir.path()),
        Err(QuorumLogError::Corrupt { .. })
    ));
    // The creation of a new log cut short: nothing was ever persisted.
    for cut in 0..header {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(state(&r), (HardState::default(), None, vec![]));
        assert_eq!(file_len(&path), header);
    }
}

#[test]
fn garbage_in_the_log_never_panics_and_never_yields_an_entry_it_did_not_persist() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=3, 1), Some(hs(1, 1, 1)))
        .unwrap();
    drop(log);
    let path = log_file(dir.path());
    let good = std::fs::read(&path).unwrap();
    for round in 0..200 {
        let mut bytes = good.clone();
        let garbage = (next() % 300) as usize;
        for _ in 0..garbage {
            bytes.push(next() as u8);
        }
        // Sometimes a frame header that claims a huge or plausible length.
        if round % 3 == 0 {
            let len = [u32::MAX, 1 << 24, 5, 40][round % 4];
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&(next() as u32).to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(r.entries, entries(1..=3, 1));
        assert_eq!(file_len(&path), good.len() as u64);
    }
    // A whole file of garbage is a damaged header.
    let junk: Vec<u8> = (0..500).map(|_| next() as u8).collect();
    std::fs::write(&path, &junk).unwrap();
    assert!(QuorumLog::open(dir.path()).is_err());
}

// ---- property test against a model ----

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Model {
    hs: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Model {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }
    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }
    fn persist(&mut self, snap: Option<&Snapshot>, ents: &[Entry], hs: Option<HardState>) {
        if let Some(s) = snap {
            self.snapshot = Some(s.clone());
            self.entries.clear();
        }
        for e in ents {
            if e.index <= self.snapshot_index() {
                continue;
            }
            self.entries
                .truncate((e.index - self.snapshot_index() - 1) as usize);
            self.entries.push(e.clone());
        }
        if let Some(hs) = hs {
            self.hs = hs;
        }
    }
    fn compact(&mut self, s: &Snapshot) {
        let keep = self
            .entries
            .split_off((s.index - self.snapshot_index()) as usize);
        self.entries = keep;
        self.snapshot = Some(s.clone());
    }
    fn of(r: &Recovered) -> Model {
        Model {
            hs: r.hard_state,
            snapshot: r.snapshot.clone(),
            entries: r.entries.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Entries from `back` before the end (overwriting), `count` of them.
    Persist {
        back: u64,
        count: u64,
        term: u64,
        hs: Option<(u64, u64)>,
    },
    /// A snapshot `ahead` past the snapshot index, then `count` entries.
    Install {
        ahead: u64,
        count: u64,
        term: u64,
    },
    Compact {
        back: u64,
        crash: Option<u8>,
    },
    Reopen,
    /// Crash before the last persist's fdatasync: cut the log file at a
    /// byte inside what it appended.
    CrashInLastPersist {
        permille: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..4, 0u64..4, 1u64..4, proptest::option::of((0u64..3, 0u64..20)))
            .prop_map(|(back, count, term, hs)| Op::Persist { back, count, term, hs }),
        1 => (0u64..8, 0u64..3, 1u64..5).prop_map(|(ahead, count, term)| Op::Install { ahead, count, term }),
        2 => (0u64..4, proptest::option::of(0u8..3)).prop_map(|(back, crash)| Op::Compact { back, crash }),
        1 => Just(Op::Reopen),
        2 => (0u64..=1000).prop_map(|permille| Op::CrashInLastPersist { permille }),
    ]
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let mut model = Model::default();
    // The last persist that appended to the log file: the model before it
    // and the file's length before and after it.
    let mut last_append: Option<(Model, u64, u64)> = None;
    let mut stamp = 0u64;
    for op in ops {
        stamp += 1;
        match op {
            Op::Persist {
                back,
                count,
                term,
                hs,
            } => {
                let start = (model.last() + 1).saturating_sub(back).max(1);
                let ents: Vec<Entry> = (start..start + count)
                    .map(|i| Entry {
                        data: Bytes::from(format!("{i}/{term}/{stamp}")),
                        ..entry(i, term)
                    })
                    .collect();
                let hs = hs.map(|(vote, commit)| HardState {
                    term: stamp,
                    vote,
                    commit,
                });
                let before = model.clone();
                let path = log_file(dir.path());
                let l0 = file_len(&path);
                log.persist(None, &ents, hs).unwrap();
                model.persist(None, &ents, hs);
                let l1 = file_len(&path);
                last_append = (l1 > l0).then_some((before, l0, l1));
            }
            Op::Install { ahead, count, term } => {
                let s = Snapshot {
                    data: Bytes::from(format!("installed {stamp}")),
                    ..snapshot(model.snapshot_index() + 1 + ahead, term)
                };
                let ents = entries(s.index + 1..=s.index + count, term);
                let hs = HardState {
                    term: stamp,
                    vote: 1,
                    commit: s.index,
                };
                log.persist(Some(&s), &ents, Some(hs)).unwrap();
                model.persist(Some(&s), &ents, Some(hs));
                last_append = None;
            }
            Op::Compact { back, crash } => {
                let index = model.last().saturating_sub(back);
                if index <= model.snapshot_index() {
                    continue;
                }
                let term = model.entries[(index - model.snapshot_index() - 1) as usize].term;
                let s = Snapshot {
                    data: Bytes::from(format!("compacted {stamp}")),
                    ..snapshot(index, term)
                };
                let point = crash.map(|c| {
                    [
                        CrashPoint::AfterNewLog,
                        CrashPoint::AfterSnapshotTemp,
                        CrashPoint::AfterRename,
                    ][c as usize]
                });
                prop_assert!(log.compact_until(&s, point).unwrap());
                let before = model.clone();
                model.compact(&s);
                last_append = None;
                if let Some(p) = point {
                    drop(log);
                    let (l, r) = open(dir.path());
                    log = l;
                    if p != CrashPoint::AfterRename {
                        model = before;
                    }
                    prop_assert_eq!(Model::of(&r), model.clone(), "crash {:?}", p);
                }
            }
            Op::Reopen => {
                drop(log);
                let (l, r) = open(dir.path());
                log = l;
                prop_assert_eq!(Model::of(&r), model.clone());
                prop_assert_eq!(r.truncated_bytes, 0);
            }
            Op::CrashInLastPersist { permille } => {
                let Some((before, l0, l1)) = last_append.take() else {
                    continue;
                };
                drop(log);
                let cut = l0 + (l1 - l0) * permille / 1000;
                let path = log_file(dir.path());
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                let (l, r) = open(dir.path());
                log = l;
                // Every persist before the last is there; the last one is
                // there whole or not at all.
                let got = Model::of(&r);
                if cut == l1 {
                    prop_assert_eq!(got, model.clone());
                } else {
                    prop_assert_eq!(got, before.clone());
                    model = before;
                }
            }
        }
        prop_assert_eq!(log.last_index(), model.last());
        prop_assert_eq!(log.snapshot_index(), model.snapshot_index());
    }
    drop(log);
    let (_, r) = open(dir.path());
    prop_assert_eq!(Model::of(&r), model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_persists_compactions_and_crashes_recover_a_prefix_of_the_model(
        ops in proptest::collection::vec(op(), 1..30)
    ) {
        run(ops)?;
    }
}

#[test]
fn file_writes_are_positional_and_the_log_is_appended_in_place() {
    // The log file grows only by what persists append: no rewrite of
    // synced bytes outside compaction and snapshot install.
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.persist(None, &entries(1..=2, 1), None).unwrap();
    let path = log_file(dir.path());
    let first = std::fs::read(&path).unwrap();
    log.persist(None, &entries(2..=3, 2), Some(hs(2, 1, 1)))
        .unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let mut prefix = vec![0u8; first.len()];
    f.read_exact_at(&mut prefix, 0).unwrap();
    assert_eq!(prefix, first);
}
