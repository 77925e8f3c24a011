//! Offsets committed inside transactions (TxnOffsetCommit): invisible
//! until the producer's COMMIT marker reaches the offsets partition,
//! dropped by an ABORT, rebuilt from transactional batches and markers on
//! load, and never lost to a snapshot.

mod common;

use common::*;
use corelog_coordination::*;

const PID: ProducerId = ProducerId(7);

fn txn_commit(s: &mut Sim, group: &str, epoch: i16, offsets: &[(&str, i32, i64)]) -> ReplyId {
    s.send(Request::TxnOffsetCommit(TxnOffsetCommit {
        group_id: group.into(),
        producer_id: PID,
        producer_epoch: ProducerEpoch(epoch),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: offsets
            .iter()
            .map(|(t, p, o)| CommitPartition {
                topic: t.to_string(),
                partition: *p,
                offset: *o,
                leader_epoch: -1,
                metadata: None,
            })
            .collect(),
    }))
}

fn txn_committed(s: &mut Sim, id: ReplyId) -> Vec<i16> {
    match s.take(id) {
        Some(Response::TxnOffsetCommit(v)) => v.into_iter().map(|(_, e)| e).collect(),
        other => panic!("expected a TxnOffsetCommit reply, got {other:?}"),
    }
}

/// OffsetFetch of one partition with `require_stable`: (error, offset).
fn fetch_stable(s: &mut Sim, group: &str, topic: &str, partition: i32) -> (i16, i64) {
    match s.call(Request::OffsetFetch(OffsetFetch {
        group_id: group.into(),
        partitions: Some(vec![TopicPartition::new(topic, partition)]),
        member: None,
        require_stable: true,
    })) {
        Response::OffsetFetch(r) => {
            assert_eq!(r.error, codes::NONE);
            (r.offsets[0].error, r.offsets[0].offset)
        }
        other => panic!("expected a fetch reply, got {other:?}"),
    }
}

#[test]
fn transactional_offsets_are_invisible_until_the_commit_marker() {
    let mut s = Sim::new(config());
    let id = txn_commit(&mut s, "g", 0, &[("t", 0, 10), ("t", 1, 20)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE, codes::NONE]);
    let append = s
        .log
        .iter()
        .find(|a| a.txn.is_some())
        .expect("a transactional append");
    assert_eq!(append.txn, Some((PID, ProducerEpoch(0))));
    assert_eq!(append.records.len(), 2);

    assert!(
        s.offsets("g").is_empty(),
        "nothing visible before the marker"
    );
    assert_eq!(
        fetch_stable(&mut s, "g", "t", 0),
        (codes::UNSTABLE_OFFSET_COMMIT, -1)
    );

    s.marker(PID, true);
    let offsets = s.offsets("g");
    assert_eq!(offsets.get(&TopicPartition::new("t", 0)), Some(&10));
    assert_eq!(offsets.get(&TopicPartition::new("t", 1)), Some(&20));
    assert_eq!(fetch_stable(&mut s, "g", "t", 0), (codes::NONE, 10));
}

#[test]
fn an_abort_marker_drops_the_transactions_offsets() {
    let mut s = Sim::new(config());
    assert_eq!(s.commit_now("g", -1, "", &[("t", 0, 5)]), vec![codes::NONE]);
    let id = txn_commit(&mut s, "g", 0, &[("t", 0, 10)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE]);
    s.marker(PID, false);
    assert_eq!(s.offsets("g").get(&TopicPartition::new("t", 0)), Some(&5));
    assert_eq!(fetch_stable(&mut s, "g", "t", 0), (codes::NONE, 5));
}

#[test]
fn a_marker_that_arrives_while_the_offsets_are_being_written_decides_them() {
    // A transaction aborted by its timeout: the coordinator's marker can
    // overtake the producer's last TxnOffsetCommit write.
    let mut s = Sim::new(config());
    s.auto_ack = false;
    let id = txn_commit(&mut s, "g", 0, &[("t", 0, 10)]);
    s.marker(PID, false);
    s.ack_all();
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE]);
    assert!(s.offsets("g").is_empty());
    assert_eq!(fetch_stable(&mut s, "g", "t", 0), (codes::NONE, -1));
}

#[test]
fn an_older_producer_epoch_is_refused_and_nothing_written() {
    let mut s = Sim::new(config());
    let id = txn_commit(&mut s, "g", 3, &[("t", 0, 10)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE]);
    let appends = s.log.len();
    let id = txn_commit(&mut s, "g", 2, &[("t", 0, 11)]);
    assert_eq!(
        txn_committed(&mut s, id),
        vec![codes::INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(
        s.log.len(),
        appends,
        "nothing written for a fenced producer"
    );
}

#[test]
fn a_restarted_coordinator_rebuilds_decided_and_pending_transactions_from_the_log() {
    let mut s = Sim::new(config());
    let id = txn_commit(&mut s, "g", 0, &[("t", 0, 10)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE]);
    s.marker(PID, true);
    // A second transaction of the same producer, not decided at the crash.
    let id = txn_commit(&mut s, "g", 0, &[("t", 0, 30)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE]);

    let rebuilt = replay_log(config(), &s.log, s.now);
    let mut r = Sim::from_coordinator(rebuilt, s.now);
    assert_eq!(r.offsets("g").get(&TopicPartition::new("t", 0)), Some(&10));
    assert_eq!(
        fetch_stable(&mut r, "g", "t", 0),
        (codes::UNSTABLE_OFFSET_COMMIT, -1)
    );
    // The coordinator finishes the transaction after the restart.
    r.marker(PID, true);
    assert_eq!(fetch_stable(&mut r, "g", "t", 0), (codes::NONE, 30));

    // An aborted one replays as aborted.
    let mut log = s.log.clone();
    log.push(Append {
        write: WriteId(0),
        records: Vec::new(),
        compacts: false,
        txn: None,
        marker: Some((PID, false)),
    });
    let mut r = Sim::from_coordinator(replay_log(config(), &log, s.now), s.now);
    assert_eq!(fetch_stable(&mut r, "g", "t", 0), (codes::NONE, 10));
}

#[test]
fn no_snapshot_drops_the_log_while_a_transaction_has_offsets_here() {
    let mut s = Sim::new(CoordinatorConfig {
        snapshot_min_bytes: 1,
        ..config()
    });
    let id = txn_commit(&mut s, "g", 0, &[("t", 0, 10)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE]);
    // Far more superseded log than live state: a snapshot would be due.
    for i in 0..200 {
        assert_eq!(
            s.commit_now("other", -1, "", &[("t", 0, i)]),
            vec![codes::NONE]
        );
    }
    assert!(
        !s.log.iter().any(|a| a.compacts),
        "a snapshot while the transaction's records still count"
    );
    s.marker(PID, true);
    assert_eq!(
        s.commit_now("other", -1, "", &[("t", 0, 1)]),
        vec![codes::NONE]
    );
    let snapshot = s
        .log
        .iter()
        .rposition(|a| a.compacts)
        .expect("a snapshot once decided");
    // The snapshot holds the committed transactional offset, so dropping
    // the log before it loses nothing.
    let rebuilt = replay_log(config(), &s.log[snapshot..], s.now);
    let mut r = Sim::from_coordinator(rebuilt, s.now);
    assert_eq!(r.offsets("g").get(&TopicPartition::new("t", 0)), Some(&10));
}

#[test]
fn transactional_offsets_round_trip_through_transactional_batches() {
    use corelog_coordination::records::{decode_log, encode_txn_batches, LogEntry, RecordKey};
    let mut s = Sim::new(config());
    let id = txn_commit(&mut s, "g", 4, &[("t", 0, 10), ("t", 1, 11)]);
    assert_eq!(txn_committed(&mut s, id), vec![codes::NONE, codes::NONE]);
    let records = s
        .log
        .iter()
        .find(|a| a.txn.is_some())
        .unwrap()
        .records
        .clone();
    let batches = encode_txn_batches(&records, PID, ProducerEpoch(4), 1_000, 1 << 20);
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    // Attributes: transactional (bit 4), not control (bit 5).
    let attributes = i16::from_be_bytes([b[21], b[22]]);
    assert_eq!(attributes & 0x30, 0x10);
    assert_eq!(i64::from_be_bytes(b[43..51].try_into().unwrap()), PID.0);
    assert_eq!(i16::from_be_bytes([b[51], b[52]]), 4);
    let entries = decode_log(b.clone()).unwrap();
    assert_eq!(entries.len(), 2);
    for (e, want) in entries.iter().zip(&records) {
        match e {
            LogEntry::Record { record, txn, .. } => {
                assert_eq!(record.as_ref().unwrap(), want);
                assert_eq!(*txn, Some((PID, ProducerEpoch(4))));
                assert!(matches!(
                    record.as_ref().unwrap().key,
                    RecordKey::Offset { .. }
                ));
            }
            other => panic!("expected a record, got {other:?}"),
        }
    }
}
