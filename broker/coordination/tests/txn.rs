//! The transaction coordinator's transitions, driven by hand: each test
//! says what Kafka's TransactionCoordinator does in that case.

use std::collections::{BTreeMap, VecDeque};

use corelog_coordination::codes;
use corelog_coordination::txn::records::{decode_txn_log_batches, encode_txn_log_batches};
use corelog_coordination::txn::*;
use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

fn config() -> TxnConfig {
    TxnConfig {
        transaction_max_timeout_ms: 900_000,
        transactional_id_expiration_ms: 600_000,
        abort_timed_out_check_interval_ms: 1_000,
        transactional_ids_max: 100,
        partitions_per_txn_max: 4,
        snapshot_min_bytes: 1 << 20,
        remove_expired_check_interval_ms: 60_000,
    }
}

type MarkerCall = (
    MarkerWriteId,
    ProducerId,
    ProducerEpoch,
    bool,
    Vec<TopicPartition>,
);

struct H {
    c: TransactionCoordinator,
    now: i64,
    next_reply: u64,
    next_pid: i64,
    /// Durable records, in log order.
    log: Vec<TxnLogRecord>,
    appends: VecDeque<(WriteId, Vec<TxnLogRecord>)>,
    markers: Vec<MarkerCall>,
    replies: BTreeMap<ReplyId, TxnResponse>,
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

impl H {
    fn new() -> H {
        H::with(config())
    }

    fn with(config: TxnConfig) -> H {
        let mut c = TransactionCoordinator::new(config, 7);
        let out = c.finish_load(0);
        assert!(out.is_empty());
        H {
            c,
            now: 0,
            next_reply: 0,
            next_pid: 1000,
            log: Vec::new(),
            appends: VecDeque::new(),
            markers: Vec::new(),
            replies: BTreeMap::new(),
        }
    }

    fn absorb(&mut self, out: Vec<TxnOutput>) {
        for o in out {
            match o {
                TxnOutput::Reply(r, x) => {
                    assert!(self.replies.insert(r, x).is_none(), "answered twice")
                }
                TxnOutput::Append { write, records, .. } => {
                    self.appends.push_back((write, records))
                }
                TxnOutput::WriteMarkers {
                    id,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                    commit,
                    partitions,
                    ..
                } => {
                    assert_eq!(coordinator_epoch, 7);
                    self.markers
                        .push((id, producer_id, producer_epoch, commit, partitions))
                }
            }
        }
    }

    fn step(&mut self, input: TxnInput) {
        let out = self.c.step(self.now, input);
        self.absorb(out);
    }

    fn send(&mut self, req: TxnRequest) -> ReplyId {
        self.next_reply += 1;
        let r = ReplyId(self.next_reply);
        self.step(TxnInput::Request(r, Box::new(req)));
        r
    }

    /// Makes every outstanding append durable, in order.
    fn flush(&mut self) {
        while let Some((w, records)) = self.appends.pop_front() {
            self.log.extend(records);
            self.step(TxnInput::AppendDone(w));
        }
    }

    fn fail_appends(&mut self) {
        while let Some((w, _)) = self.appends.pop_front() {
            self.step(TxnInput::AppendFailed(w));
        }
    }

    fn take(&mut self, r: ReplyId) -> TxnResponse {
        self.replies.remove(&r).expect("answered")
    }

    fn init_req(&mut self, id: &str, expected: Option<(i64, i16)>) -> ReplyId {
        self.next_pid += 1;
        self.send(TxnRequest::InitProducerId {
            transactional_id: id.into(),
            transaction_timeout_ms: 10_000,
            expected: expected.map(|(p, e)| (ProducerId(p), ProducerEpoch(e))),
            fresh_producer_id: ProducerId(self.next_pid),
        })
    }

    fn init_with(&mut self, id: &str, expected: Option<(i64, i16)>) -> (i16, i64, i16) {
        let r = self.init_req(id, expected);
        self.flush();
        match self.take(r) {
            TxnResponse::InitProducerId {
                error,
                producer_id,
                producer_epoch,
            } => (error, producer_id.0, producer_epoch.0),
            x => panic!("{x:?}"),
        }
    }

    fn init(&mut self, id: &str) -> (i64, i16) {
        let (e, p, ep) = self.init_with(id, None);
        assert_eq!(e, codes::NONE);
        (p, ep)
    }

    fn add_req(&mut self, id: &str, pe: (i64, i16), parts: &[TopicPartition]) -> ReplyId {
        self.send(TxnRequest::AddPartitions {
            transactional_id: id.into(),
            producer_id: ProducerId(pe.0),
            producer_epoch: ProducerEpoch(pe.1),
            partitions: parts.to_vec(),
        })
    }

    fn add(&mut self, id: &str, pe: (i64, i16), parts: &[TopicPartition]) -> Vec<i16> {
        let r = self.add_req(id, pe, parts);
        self.flush();
        match self.take(r) {
            TxnResponse::AddPartitions { results } => results.into_iter().map(|(_, c)| c).collect(),
            x => panic!("{x:?}"),
        }
    }

    fn end_req(&mut self, id: &str, pe: (i64, i16), commit: bool) -> ReplyId {
        self.send(TxnRequest::EndTxn {
            transactional_id: id.into(),
            producer_id: ProducerId(pe.0),
            producer_epoch: ProducerEpoch(pe.1),
            commit,
        })
    }

    fn end(&mut self, id: &str, pe: (i64, i16), commit: bool) -> i16 {
        let r = self.end_req(id, pe, commit);
        self.flush();
        match self.take(r) {
            TxnResponse::EndTxn { error } => error,
            x => panic!("{x:?}"),
        }
    }

    fn verify(&mut self, id: &str, pe: (i64, i16), parts: &[TopicPartition]) -> Vec<i16> {
        let r = self.send(TxnRequest::VerifyPartitions {
            transactional_id: id.into(),
            producer_id: ProducerId(pe.0),
            producer_epoch: ProducerEpoch(pe.1),
            partitions: parts.to_vec(),
        });
        match self.take(r) {
            TxnResponse::VerifyPartitions { results } => {
                results.into_iter().map(|(_, c)| c).collect()
            }
            x => panic!("{x:?}"),
        }
    }

    /// Answers every marker write with success, then makes the
    /// completions durable.
    fn markers_ok(&mut self) -> Vec<MarkerCall> {
        let calls = std::mem::take(&mut self.markers);
        for (id, _, _, _, parts) in &calls {
            let results = parts.iter().map(|p| (p.clone(), codes::NONE)).collect();
            self.step(TxnInput::MarkersDone(*id, results));
        }
        self.flush();
        calls
    }

    fn describe(&mut self, id: &str) -> TxnDescription {
        let r = self.send(TxnRequest::Describe {
            transactional_ids: vec![id.into()],
        });
        match self.take(r) {
            TxnResponse::Describe { mut states } => states.remove(0),
            x => panic!("{x:?}"),
        }
    }

    fn state(&mut self, id: &str) -> String {
        self.describe(id).state
    }

    fn list(
        &mut self,
        states: &[&str],
        pids: &[i64],
        duration_ms: i64,
    ) -> (Vec<String>, Vec<String>) {
        let r = self.send(TxnRequest::List {
            states: states.iter().map(|s| s.to_string()).collect(),
            producer_ids: pids.iter().map(|p| ProducerId(*p)).collect(),
            duration_ms,
        });
        match self.take(r) {
            TxnResponse::List {
                error,
                states,
                unknown_state_filters,
            } => {
                assert_eq!(error, codes::NONE);
                (
                    states.into_iter().map(|l| l.transactional_id).collect(),
                    unknown_state_filters,
                )
            }
            x => panic!("{x:?}"),
        }
    }

    /// A coordinator rebuilt from the durable log (through v2 batches).
    fn restarted(&self) -> (TransactionCoordinator, Vec<TxnOutput>) {
        let mut c = TransactionCoordinator::new(config(), 8);
        for b in encode_txn_log_batches(&self.log, self.now, 4096) {
            for (_, r) in decode_txn_log_batches(b).unwrap() {
                c.load(r.unwrap());
            }
        }
        let out = c.finish_load(self.now);
        (c, out)
    }
}

#[test]
fn first_init_gives_the_fresh_id_at_epoch_zero_once_durable() {
    let mut h = H::new();
    let r = h.init_req("t", None);
    assert!(
        h.replies.is_empty(),
        "no answer before the record is durable"
    );
    assert_eq!(h.appends.len(), 1);
    let v = h.appends[0].1[0].value.clone().unwrap();
    assert_eq!(
        (v.producer_id, v.producer_epoch, v.state),
        (1001, 0, TxnState::Empty)
    );
    h.flush();
    assert_eq!(
        h.take(r),
        TxnResponse::InitProducerId {
            error: codes::NONE,
            producer_id: ProducerId(1001),
            producer_epoch: ProducerEpoch(0)
        }
    );
    // Again: same id, epoch + 1, fresh id ignored.
    assert_eq!(h.init("t"), (1001, 1));
    assert_eq!(h.state("t"), "Empty");
}

#[test]
fn init_refuses_timeouts_out_of_bounds_and_empty_ids() {
    let mut h = H::new();
    for timeout in [0, -1, 900_001] {
        let r = h.send(TxnRequest::InitProducerId {
            transactional_id: "t".into(),
            transaction_timeout_ms: timeout,
            expected: None,
            fresh_producer_id: ProducerId(1),
        });
        assert!(
            matches!(h.take(r), TxnResponse::InitProducerId { error, .. } if error == codes::INVALID_TRANSACTION_TIMEOUT)
        );
    }
    assert_eq!(h.init_with("", None).0, codes::INVALID_REQUEST);
    assert!(h.appends.is_empty());
    assert_eq!(h.describe("t").error, codes::TRANSACTIONAL_ID_NOT_FOUND);
}

#[test]
fn commit_goes_through_prepare_markers_and_complete() {
    let mut h = H::new();
    let pe = h.init("t");
    assert_eq!(h.add("t", pe, &[tp("a", 0), tp("b", 1)]), vec![0, 0]);
    assert_eq!(h.state("t"), "Ongoing");
    assert_eq!(
        h.verify("t", pe, &[tp("a", 0), tp("a", 1)]),
        vec![0, codes::INVALID_TXN_STATE]
    );
    // Already-present partitions: answered at once, nothing written.
    let r = h.add_req("t", pe, &[tp("a", 0)]);
    assert!(h.appends.is_empty());
    assert!(matches!(h.take(r), TxnResponse::AddPartitions { results } if results[0].1 == 0));

    let r = h.end_req("t", pe, true);
    assert!(!h.replies.contains_key(&r));
    assert!(
        h.markers.is_empty(),
        "no marker before PrepareCommit is durable"
    );
    h.flush();
    assert_eq!(h.take(r), TxnResponse::EndTxn { error: 0 });
    assert_eq!(h.state("t"), "PrepareCommit");
    // While the markers are out, everything else waits (AddPartitions is
    // held: see the test below).
    assert_eq!(h.end("t", pe, false), codes::CONCURRENT_TRANSACTIONS);
    assert_eq!(h.init_with("t", None).0, codes::CONCURRENT_TRANSACTIONS);
    let calls = h.markers_ok();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1 .0, pe.0);
    assert_eq!(calls[0].2 .0, pe.1);
    assert!(calls[0].3, "commit markers");
    assert_eq!(calls[0].4, vec![tp("a", 0), tp("b", 1)]);
    let d = h.describe("t");
    assert_eq!(d.state, "CompleteCommit");
    assert!(d.partitions.is_empty());
    let last = h.log.last().unwrap().value.clone().unwrap();
    assert_eq!(last.state, TxnState::CompleteCommit);
    // Retry of the same decision: NONE; the opposite: INVALID_TXN_STATE.
    assert_eq!(h.end("t", pe, true), codes::NONE);
    assert_eq!(h.end("t", pe, false), codes::INVALID_TXN_STATE);
    // Next transaction, then an abort.
    assert_eq!(h.add("t", pe, &[tp("a", 0)]), vec![0]);
    assert_eq!(h.end("t", pe, false), codes::NONE);
    let calls = h.markers_ok();
    assert!(!calls[0].3);
    assert_eq!(h.state("t"), "CompleteAbort");
    assert_eq!(h.end("t", pe, false), codes::NONE);
    assert_eq!(h.end("t", pe, true), codes::INVALID_TXN_STATE);
}

#[test]
fn end_txn_on_empty_and_wrong_ids_or_epochs() {
    let mut h = H::new();
    let pe = h.init("t");
    assert_eq!(h.end("t", pe, true), codes::INVALID_TXN_STATE);
    assert_eq!(
        h.end("t", (pe.0 + 1, pe.1), true),
        codes::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(h.end("u", pe, true), codes::INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(h.end("t", (pe.0, pe.1 + 1), true), codes::PRODUCER_FENCED);
    assert_eq!(
        h.add("u", pe, &[tp("a", 0)]),
        vec![codes::INVALID_PRODUCER_ID_MAPPING]
    );
    let pe2 = h.init("t");
    assert_eq!(pe2, (pe.0, pe.1 + 1));
    assert_eq!(h.add("t", pe, &[tp("a", 0)]), vec![codes::PRODUCER_FENCED]);
    assert_eq!(
        h.verify("t", pe, &[tp("a", 0)]),
        vec![codes::PRODUCER_FENCED]
    );
    assert_eq!(h.end("t", pe, false), codes::PRODUCER_FENCED);
}

#[test]
fn a_pending_transition_makes_other_requests_wait() {
    let mut h = H::new();
    let pe = h.init("t");
    let r1 = h.add_req("t", pe, &[tp("a", 0)]);
    let r2 = h.add_req("t", pe, &[tp("a", 1)]);
    let r3 = h.end_req("t", pe, true);
    let r4 = h.init_req("t", None);
    assert!(
        matches!(h.take(r2), TxnResponse::AddPartitions { results } if results[0].1 == codes::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        h.take(r3),
        TxnResponse::EndTxn {
            error: codes::CONCURRENT_TRANSACTIONS
        }
    );
    assert!(
        matches!(h.take(r4), TxnResponse::InitProducerId { error, .. } if error == codes::CONCURRENT_TRANSACTIONS)
    );
    // Describe shows the durable state meanwhile.
    assert_eq!(h.state("t"), "Empty");
    h.flush();
    assert!(matches!(h.take(r1), TxnResponse::AddPartitions { results } if results[0].1 == 0));
}

#[test]
fn init_on_an_ongoing_transaction_fences_and_aborts_it_with_a_bumped_epoch() {
    let mut h = H::new();
    let old = h.init("t");
    h.add("t", old, &[tp("a", 0)]);
    let r = h.init_req("t", None);
    // The fence is in memory at once: the old producer is refused.
    assert_eq!(h.end("t", old, true), codes::PRODUCER_FENCED);
    let v = h.log.last().unwrap().value.clone().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch),
        (TxnState::PrepareAbort, old.1 + 1)
    );
    assert!(
        matches!(h.take(r), TxnResponse::InitProducerId { error, .. } if error == codes::CONCURRENT_TRANSACTIONS)
    );
    // Markers carry the bumped epoch.
    let calls = h.markers_ok();
    assert_eq!((calls[0].2 .0, calls[0].3), (old.1 + 1, false));
    assert_eq!(h.state("t"), "CompleteAbort");
    // The retry bumps once more.
    assert_eq!(h.init("t"), (old.0, old.1 + 2));
    assert_eq!(h.add("t", old, &[tp("a", 0)]), vec![codes::PRODUCER_FENCED]);
}

#[test]
fn a_timed_out_transaction_is_aborted_on_tick_and_its_producer_fenced() {
    let mut h = H::new();
    let pe = h.init("t"); // timeout 10 s
    h.now = 100;
    h.add("t", pe, &[tp("a", 0)]);
    assert_eq!(h.c.next_deadline_ms(), Some(1_000));
    h.now = 10_100;
    h.step(TxnInput::Tick);
    assert!(h.appends.is_empty(), "not yet past start + timeout");
    // The check runs every abort_timed_out_check_interval_ms.
    assert_eq!(h.c.next_deadline_ms(), Some(11_100));
    h.now = 11_100;
    h.step(TxnInput::Tick);
    h.flush();
    let calls = h.markers_ok();
    assert_eq!((calls[0].2 .0, calls[0].3), (pe.1 + 1, false));
    assert_eq!(h.state("t"), "CompleteAbort");
    assert_eq!(h.end("t", pe, true), codes::PRODUCER_FENCED);
    assert_eq!(h.add("t", pe, &[tp("a", 0)]), vec![codes::PRODUCER_FENCED]);
    assert_eq!(h.init("t"), (pe.0, pe.1 + 2));
}

#[test]
fn failed_markers_are_retried_after_a_backoff_and_deleted_topics_count_as_done() {
    let mut h = H::new();
    let pe = h.init("t");
    h.add("t", pe, &[tp("a", 0), tp("b", 0), tp("gone", 0)]);
    assert_eq!(h.end("t", pe, true), 0);
    let (id, _, _, _, parts) = h.markers.remove(0);
    assert_eq!(parts.len(), 3);
    h.step(TxnInput::MarkersDone(
        id,
        vec![
            (tp("a", 0), codes::NONE),
            (tp("b", 0), codes::NOT_LEADER_OR_FOLLOWER),
            (tp("gone", 0), codes::UNKNOWN_TOPIC_OR_PARTITION),
        ],
    ));
    assert!(h.appends.is_empty(), "not complete");
    assert_eq!(
        h.c.next_deadline_ms(),
        Some(h.now + MARKER_RETRY_BACKOFF_MS)
    );
    h.now += MARKER_RETRY_BACKOFF_MS;
    h.step(TxnInput::Tick);
    let (id, _, _, _, parts) = h.markers.remove(0);
    assert_eq!(parts, vec![tp("b", 0)]);
    // A partition missing from the answer is retried too.
    h.step(TxnInput::MarkersDone(id, vec![]));
    h.now += MARKER_RETRY_BACKOFF_MS;
    h.step(TxnInput::Tick);
    let calls = h.markers_ok();
    assert_eq!(calls[0].4, vec![tp("b", 0)]);
    assert_eq!(h.state("t"), "CompleteCommit");
}

#[test]
fn a_failed_complete_append_is_retried() {
    let mut h = H::new();
    let pe = h.init("t");
    h.add("t", pe, &[tp("a", 0)]);
    h.end("t", pe, true);
    let (id, ..) = h.markers.remove(0);
    h.step(TxnInput::MarkersDone(id, vec![(tp("a", 0), 0)]));
    h.fail_appends();
    assert_eq!(h.state("t"), "PrepareCommit");
    assert_eq!(h.end("t", pe, true), codes::CONCURRENT_TRANSACTIONS);
    h.now += MARKER_RETRY_BACKOFF_MS;
    h.step(TxnInput::Tick);
    h.flush();
    assert_eq!(h.state("t"), "CompleteCommit");
}

#[test]
fn a_failed_append_rolls_the_transition_back() {
    let mut h = H::new();
    let r = h.init_req("t", None);
    h.fail_appends();
    assert!(
        matches!(h.take(r), TxnResponse::InitProducerId { error, .. } if error == APPEND_FAILED_ERROR)
    );
    assert_eq!(h.describe("t").error, codes::TRANSACTIONAL_ID_NOT_FOUND);
    let pe = h.init("t");
    let r = h.add_req("t", pe, &[tp("a", 0)]);
    h.fail_appends();
    assert!(
        matches!(h.take(r), TxnResponse::AddPartitions { results } if results[0].1 == APPEND_FAILED_ERROR)
    );
    assert_eq!(h.state("t"), "Empty");
    assert_eq!(
        h.verify("t", pe, &[tp("a", 0)]),
        vec![codes::INVALID_TXN_STATE]
    );
    h.add("t", pe, &[tp("a", 0)]);
    let r = h.end_req("t", pe, true);
    h.fail_appends();
    assert_eq!(
        h.take(r),
        TxnResponse::EndTxn {
            error: APPEND_FAILED_ERROR
        }
    );
    assert_eq!(h.state("t"), "Ongoing");
    assert!(h.markers.is_empty());
    assert_eq!(h.end("t", pe, true), 0);
}

#[test]
fn a_failed_epoch_fence_keeps_the_bumped_epoch_and_does_not_bump_twice() {
    let mut h = H::new();
    let old = h.init("t");
    h.add("t", old, &[tp("a", 0)]);
    let r = h.init_req("t", None);
    h.fail_appends();
    assert!(
        matches!(h.take(r), TxnResponse::InitProducerId { error, .. } if error == APPEND_FAILED_ERROR)
    );
    let d = h.describe("t");
    assert_eq!(
        (d.state.as_str(), d.producer_epoch.0),
        ("Ongoing", old.1 + 1)
    );
    assert_eq!(h.end("t", old, true), codes::PRODUCER_FENCED);
    let r = h.init_req("t", None);
    h.flush();
    assert!(
        matches!(h.take(r), TxnResponse::InitProducerId { error, .. } if error == codes::CONCURRENT_TRANSACTIONS)
    );
    let calls = h.markers_ok();
    assert_eq!(calls[0].2 .0, old.1 + 1, "not bumped a second time");
    assert_eq!(h.init("t"), (old.0, old.1 + 2));
}

#[test]
fn kip_360_expected_epoch_bumps_retries_and_fences() {
    let mut h = H::new();
    let (pid, e) = h.init("t");
    let (err, p2, e2) = h.init_with("t", Some((pid, e)));
    assert_eq!((err, p2, e2), (0, pid, e + 1));
    // The answer was lost: the retry gets the same epoch back.
    assert_eq!(h.init_with("t", Some((pid, e))), (0, pid, e + 1));
    // An epoch that is neither current nor last.
    assert_eq!(
        h.init_with("t", Some((pid, e + 5))).0,
        codes::PRODUCER_FENCED
    );
    // Another producer id.
    assert_eq!(
        h.init_with("t", Some((pid + 77, e))).0,
        codes::PRODUCER_FENCED
    );
    // A plain init forgets the last epoch: the old retry is now fenced.
    assert_eq!(h.init("t"), (pid, e + 2));
    assert_eq!(h.init_with("t", Some((pid, e))).0, codes::PRODUCER_FENCED);
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut h = H::new();
    let (pid, _) = h.init("t");
    // Load an id at the edge of its epochs.
    let mut log = h.log.clone();
    let mut v = log.last().unwrap().value.clone().unwrap();
    v.producer_epoch = i16::MAX - 1;
    log.push(TxnLogRecord {
        transactional_id: "t".into(),
        value: Some(v),
    });
    h.log = log;
    let (c, _) = h.restarted();
    h.c = c;
    let (err, p2, e2) = h.init_with("t", Some((pid, i16::MAX - 1)));
    assert_eq!(err, 0);
    assert_ne!(p2, pid);
    assert_eq!(e2, 0);
    let v = h.log.last().unwrap().value.clone().unwrap();
    assert_eq!(
        (v.last_producer_id, v.last_producer_epoch),
        (pid, i16::MAX - 1)
    );
    // A retry naming the old id and its exhausted epoch gets the new one.
    assert_eq!(h.init_with("t", Some((pid, i16::MAX - 1))), (0, p2, 0));
}

#[test]
fn idle_ids_expire_into_tombstones() {
    let mut h = H::new();
    let pe = h.init("t");
    h.init("u");
    h.now = 400_000;
    h.add("u", (pe.0 + 1, 0), &[tp("a", 0)]);
    h.end("u", (pe.0 + 1, 0), true);
    h.markers_ok();
    h.now = 660_000;
    h.step(TxnInput::Tick);
    h.flush();
    assert_eq!(h.describe("t").error, codes::TRANSACTIONAL_ID_NOT_FOUND);
    assert_eq!(h.state("u"), "CompleteCommit");
    assert!(h.log.last().unwrap().value.is_none());
    assert_eq!(h.c.live_records().len(), 1);
    // Gone after a restart too; a new init starts over at epoch 0.
    let (c, _) = h.restarted();
    h.c = c;
    assert_eq!(h.init("t").1, 0);
    let _ = pe;
}

#[test]
fn a_restarted_coordinator_resumes_the_markers_of_prepared_transactions() {
    let mut h = H::new();
    let a = h.init("a");
    let b = h.init("b");
    h.add("a", a, &[tp("x", 0)]);
    h.add("b", b, &[tp("y", 0), tp("y", 1)]);
    assert_eq!(h.end("a", a, true), 0);
    let r = h.end_req("b", b, false);
    h.flush();
    h.take(r);
    assert_eq!(h.markers.len(), 2);
    // The broker dies before any marker is written.
    let (mut c, out) = h.restarted();
    let mut markers: Vec<(bool, i32, Vec<TopicPartition>)> = out
        .iter()
        .filter_map(|o| match o {
            TxnOutput::WriteMarkers {
                commit,
                coordinator_epoch,
                partitions,
                ..
            } => Some((*commit, *coordinator_epoch, partitions.clone())),
            _ => None,
        })
        .collect();
    markers.sort_by(|x, y| x.2.cmp(&y.2));
    assert_eq!(
        markers,
        vec![
            (true, 8, vec![tp("x", 0)]),
            (false, 8, vec![tp("y", 0), tp("y", 1)])
        ]
    );
    let r = c.step(
        h.now,
        TxnInput::Request(
            ReplyId(99),
            Box::new(TxnRequest::EndTxn {
                transactional_id: "a".into(),
                producer_id: ProducerId(a.0),
                producer_epoch: ProducerEpoch(a.1),
                commit: true,
            }),
        ),
    );
    assert_eq!(
        r,
        vec![TxnOutput::Reply(
            ReplyId(99),
            TxnResponse::EndTxn {
                error: codes::CONCURRENT_TRANSACTIONS
            }
        )]
    );
}

#[test]
fn requests_before_the_load_is_over_are_refused() {
    let mut c = TransactionCoordinator::new(config(), 1);
    let out = c.step(
        0,
        TxnInput::Request(
            ReplyId(1),
            Box::new(TxnRequest::List {
                states: vec![],
                producer_ids: vec![],
                duration_ms: -1,
            }),
        ),
    );
    assert!(
        matches!(&out[0], TxnOutput::Reply(_, TxnResponse::List { error, .. }) if *error == codes::COORDINATOR_LOAD_IN_PROGRESS)
    );
    assert_eq!(c.next_deadline_ms(), None);
}

#[test]
fn describe_and_list_with_filters() {
    let mut h = H::new();
    let a = h.init("a");
    let b = h.init("b");
    h.now = 1_000;
    h.add("a", a, &[tp("x", 0)]);
    h.now = 5_000;
    let d = h.describe("a");
    assert_eq!(
        (
            d.error,
            d.state.as_str(),
            d.timeout_ms,
            d.start_ms,
            d.producer_id.0,
            d.producer_epoch.0,
            d.partitions
        ),
        (0, "Ongoing", 10_000, 1_000, a.0, a.1, vec![tp("x", 0)])
    );
    let (all, unknown) = h.list(&[], &[], -1);
    assert_eq!(all, vec!["a", "b"]);
    assert!(unknown.is_empty());
    assert_eq!(h.list(&["Ongoing"], &[], -1).0, vec!["a"]);
    assert_eq!(
        h.list(&["Empty", "Nope"], &[], -1),
        (vec!["b".to_string()], vec!["Nope".to_string()])
    );
    assert_eq!(h.list(&[], &[b.0], -1).0, vec!["b"]);
    // Running longer than 3 s: a (started at 1 s) is; b (no start, -1) too,
    // as in Kafka.
    assert_eq!(h.list(&[], &[], 3_000).0, vec!["a", "b"]);
    assert_eq!(h.list(&["Ongoing"], &[], 4_000).0, Vec::<String>::new());
}

#[test]
fn named_bounds_on_ids_and_partitions() {
    let mut h = H::with(TxnConfig {
        transactional_ids_max: 2,
        ..config()
    });
    h.init("a");
    let b = h.init("b");
    assert_eq!(h.init_with("c", None).0, TRANSACTIONAL_IDS_FULL);
    // Known ids are still served.
    assert_eq!(h.init("b"), (b.0, 1));
    let b = (b.0, 1);
    assert_eq!(
        h.add("b", b, &[tp("x", 0), tp("x", 1), tp("x", 2)]),
        vec![0; 3]
    );
    assert_eq!(
        h.add("b", b, &[tp("x", 3), tp("x", 4)]),
        vec![TXN_PARTITIONS_FULL; 2]
    );
    assert_eq!(h.add("b", b, &[tp("x", 0), tp("x", 3)]), vec![0; 2]);
    assert_eq!(h.describe("b").partitions.len(), 4);
}

#[test]
fn fail_pending_returns_every_held_reply() {
    let mut h = H::new();
    let pe = h.init("t");
    let r1 = h.add_req("t", pe, &[tp("a", 0)]);
    let r2 = h.init_req("u", None);
    assert_eq!(h.c.fail_pending(), vec![r1, r2]);
}

#[test]
fn txn_partition_is_kafkas() {
    // "group".hashCode() == 98629247; 98629247 % 50 == 47.
    assert_eq!(txn_partition_for("group", 50), 47);
    assert_eq!(
        corelog_coordination::txn_partition_for("polygenelubricants", 50),
        0
    );
}

#[test]
fn add_partitions_while_the_markers_are_out_is_answered_once_they_are_written() {
    let mut h = H::new();
    let pe = h.init("t");
    assert_eq!(h.add("t", pe, &[tp("a", 0)]), vec![0]);
    let r = h.end_req("t", pe, true);
    h.flush();
    assert_eq!(h.take(r), TxnResponse::EndTxn { error: 0 });
    // The producer's next transaction begins while the markers are out:
    // held rather than answered CONCURRENT_TRANSACTIONS (clients would back
    // off 20 ms).
    let held = h.add_req("t", pe, &[tp("b", 1)]);
    assert!(!h.replies.contains_key(&held));
    assert!(h
        .c
        .next_deadline_ms()
        .is_some_and(|d| d <= ADD_PARTITIONS_WAIT_MAX_MS));
    h.markers_ok();
    h.flush();
    assert!(
        matches!(h.take(held), TxnResponse::AddPartitions { results } if results == vec![(tp("b", 1), 0)])
    );
    let d = h.describe("t");
    assert_eq!(d.state, "Ongoing");
    assert_eq!(d.partitions, vec![tp("b", 1)]);

    // Markers that are not written in time: the held request is answered
    // CONCURRENT_TRANSACTIONS at its deadline, as Kafka answers at once,
    // and the client's own retry goes on.
    let r = h.end_req("t", pe, true);
    h.flush();
    assert_eq!(h.take(r), TxnResponse::EndTxn { error: 0 });
    let held = h.add_req("t", pe, &[tp("c", 2)]);
    h.now += ADD_PARTITIONS_WAIT_MAX_MS - 1;
    h.step(TxnInput::Tick);
    assert!(!h.replies.contains_key(&held));
    h.now += 1;
    h.step(TxnInput::Tick);
    assert!(
        matches!(h.take(held), TxnResponse::AddPartitions { results } if results == vec![(tp("c", 2), codes::CONCURRENT_TRANSACTIONS)])
    );

    // The client's retry is held again, and answered when the markers
    // finally land.
    let held = h.add_req("t", pe, &[tp("d", 3)]);
    h.markers_ok();
    h.flush();
    assert!(
        matches!(h.take(held), TxnResponse::AddPartitions { results } if results == vec![(tp("d", 3), 0)])
    );
}
