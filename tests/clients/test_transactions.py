"""Transactions through real clients (issue 19): transactional producers of
confluent-kafka (librdkafka) and kafka-python against a single-node broker.

What a user relies on: a committed transaction becomes visible to
read_committed consumers at once and whole; an aborted one never does (a
read_uncommitted consumer still sees its records); each marker occupies an
offset; an open transaction holds read_committed consumers at its first
offset (the last stable offset); offsets sent with
send_offsets_to_transaction are committed with the output or not at all;
a second producer with the same transactional id fences the first; and a
broker killed with SIGKILL mid-transaction comes back with the transaction
aborted by its timeout, nothing of it visible.
"""
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import create_topic, produce_all

pytestmark = pytest.mark.timeout(90)

# Timed-out transactions are looked for every half second, so a test of a
# transaction's timeout takes seconds, not the default ten.
TXN_TOML = """\
[transactions]
abort_timed_out_check_interval_ms = 500
"""


@pytest.fixture
def tbroker(broker_factory, tmp_path):
    cfg = tmp_path / "corelog-txn.toml"
    cfg.write_text(TXN_TOML)
    return broker_factory(extra_args=["--config", str(cfg)])


def txn_producer(bootstrap, txn_id=None, **conf):
    c = {"bootstrap.servers": bootstrap,
         "transactional.id": txn_id or "tx-" + uuid.uuid4().hex[:8],
         "linger.ms": 5, "transaction.timeout.ms": 60000}
    c.update(conf)
    p = Producer(c)
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, partitions, isolation, expect=None, idle_s=2.0, timeout=30.0):
    """Reads the partitions from the beginning with an assign-only consumer
    at `isolation` until `expect` messages came (then `idle_s` more, to see
    that no more come) or, with expect None, until nothing came for idle_s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "r-" + uuid.uuid4().hex[:6],
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": isolation, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=1000, timeout=0.2)
            for m in msgs:
                if m.error():
                    raise AssertionError("consume error: %s" % m.error())
                out.append(m)
                last = time.monotonic()
            done = expect is not None and len(out) >= expect
            if (done or expect is None) and time.monotonic() - last >= idle_s:
                break
    finally:
        c.close()
    return out


def values(msgs):
    return sorted(m.value().decode() for m in msgs)


def high_watermarks(bootstrap, topic, partitions, isolation="read_uncommitted"):
    """ListOffsets LATEST per partition: the high watermark, or with
    read_committed the last stable offset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-" + uuid.uuid4().hex[:6],
                  "isolation.level": isolation})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        c.close()


def test_a_committed_transaction_is_visible_to_read_committed_and_each_marker_takes_an_offset(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=2)
    p = txn_producer(tbroker.bootstrap)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=b"c%d" % i, partition=i % 2)
    p.commit_transaction(30)
    got = read_all(tbroker.bootstrap, topic, [0, 1], "read_committed", expect=10)
    assert values(got) == sorted("c%d" % i for i in range(10))
    # Five records and one COMMIT marker in each partition.
    assert high_watermarks(tbroker.bootstrap, topic, [0, 1]) == {0: 6, 1: 6}


def test_an_aborted_transaction_is_hidden_from_read_committed_but_not_read_uncommitted(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=1)
    p = txn_producer(tbroker.bootstrap)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"a%d" % i)
    p.flush(10)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b"c%d" % i)
    p.commit_transaction(30)
    committed = read_all(tbroker.bootstrap, topic, [0], "read_committed", expect=3)
    assert values(committed) == ["c0", "c1", "c2"]
    uncommitted = read_all(tbroker.bootstrap, topic, [0], "read_uncommitted", expect=8)
    assert values(uncommitted) == sorted(["a%d" % i for i in range(5)] + ["c0", "c1", "c2"])
    # 5 aborted records, ABORT, 3 records, COMMIT.
    assert high_watermarks(tbroker.bootstrap, topic, [0]) == {0: 10}


def test_an_open_transaction_holds_read_committed_consumers_at_its_first_offset(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=1)
    produce_all(tbroker.bootstrap, topic, [{"value": b"before%d" % i} for i in range(3)])
    p = txn_producer(tbroker.bootstrap)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=b"open%d" % i)
    p.flush(10)
    produce_all(tbroker.bootstrap, topic, [{"value": b"after%d" % i} for i in range(2)])
    # read_committed stops at the open transaction's first offset, even
    # for the committed records written after it.
    held = read_all(tbroker.bootstrap, topic, [0], "read_committed", expect=3, idle_s=2.0)
    assert values(held) == ["before0", "before1", "before2"]
    # ListOffsets answers read_committed with the last stable offset.
    assert high_watermarks(tbroker.bootstrap, topic, [0], "read_committed") == {0: 3}
    assert high_watermarks(tbroker.bootstrap, topic, [0]) == {0: 9}
    p.commit_transaction(30)
    got = read_all(tbroker.bootstrap, topic, [0], "read_committed", expect=9)
    assert values(got) == sorted(["before%d" % i for i in range(3)] + ["open%d" % i for i in range(4)]
                                 + ["after0", "after1"])


def test_offsets_sent_to_a_transaction_are_committed_with_it_or_not_at_all(tbroker):
    src = create_topic(tbroker.bootstrap, partitions=1)
    dst = create_topic(tbroker.bootstrap, partitions=1)
    produce_all(tbroker.bootstrap, src, [{"value": b"in%d" % i} for i in range(6)])
    group = "g-" + uuid.uuid4().hex[:6]
    c = Consumer({"bootstrap.servers": tbroker.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed"})
    c.assign([TopicPartition(src, 0, 0)])
    p = txn_producer(tbroker.bootstrap)

    def step(n, commit):
        got = []
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            got += [m for m in c.consume(num_messages=n - len(got), timeout=0.5) if not m.error()]
        assert len(got) == n
        p.begin_transaction()
        for m in got:
            p.produce(dst, value=b"out-" + m.value())
        p.send_offsets_to_transaction([TopicPartition(src, 0, got[-1].offset() + 1)],
                                      c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    def committed():
        cc = Consumer({"bootstrap.servers": tbroker.bootstrap, "group.id": group,
                       "isolation.level": "read_committed"})
        try:
            return cc.committed([TopicPartition(src, 0)], timeout=10)[0].offset
        finally:
            cc.close()

    step(3, commit=True)
    assert committed() == 3
    step(3, commit=False)
    assert committed() == 3, "an aborted transaction's offsets were committed"
    c.close()
    out = read_all(tbroker.bootstrap, dst, [0], "read_committed", expect=3)
    assert values(out) == ["out-in0", "out-in1", "out-in2"]


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=1)
    txn_id = "fence-" + uuid.uuid4().hex[:6]
    first = txn_producer(tbroker.bootstrap, txn_id)
    first.begin_transaction()
    first.produce(topic, value=b"zombie")
    first.flush(10)
    second = txn_producer(tbroker.bootstrap, txn_id)
    # The second's init aborted the first's open transaction and fenced it.
    with pytest.raises(KafkaException) as e:
        first.commit_transaction(15)
    assert e.value.args[0].fatal() or e.value.args[0].code() in (
        KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), e.value
    second.begin_transaction()
    second.produce(topic, value=b"live")
    second.commit_transaction(30)
    got = read_all(tbroker.bootstrap, topic, [0], "read_committed", expect=1)
    assert values(got) == ["live"]


def test_kafka_python_transactional_producer_commits_and_aborts(tbroker):
    from kafka import KafkaProducer
    topic = create_topic(tbroker.bootstrap, partitions=1)
    p = KafkaProducer(bootstrap_servers=tbroker.bootstrap,
                      transactional_id="kp-" + uuid.uuid4().hex[:6])
    p.init_transactions()
    p.begin_transaction()
    for i in range(3):
        p.send(topic, value=b"k%d" % i)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic, value=b"dropped")
    p.abort_transaction()
    p.close()
    got = read_all(tbroker.bootstrap, topic, [0], "read_committed", expect=3)
    assert values(got) == ["k0", "k1", "k2"]


def test_a_transaction_open_when_the_broker_is_killed_is_aborted_by_its_timeout(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=1)
    p = txn_producer(tbroker.bootstrap, **{"transaction.timeout.ms": 3000})
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=b"lost%d" % i)
    p.flush(10)
    tbroker.kill9()
    tbroker.start()
    # After the timeout the restarted coordinator aborts it: read_committed
    # consumers move past it, and see none of it.
    produce_all(tbroker.bootstrap, topic, [{"value": b"later"}])
    got = read_all(tbroker.bootstrap, topic, [0], "read_committed", expect=1, timeout=30)
    assert values(got) == ["later"]
    everything = read_all(tbroker.bootstrap, topic, [0], "read_uncommitted", expect=5)
    assert "later" in values(everything)


def test_a_transaction_committed_before_a_kill_stays_committed_after_the_restart(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=2)
    p = txn_producer(tbroker.bootstrap)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=b"d%d" % i, partition=i % 2)
    p.commit_transaction(30)
    tbroker.kill9()
    tbroker.start()
    got = read_all(tbroker.bootstrap, topic, [0, 1], "read_committed", expect=6)
    assert values(got) == sorted("d%d" % i for i in range(6))


# ------------------------------------------------------------ bad input --
API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26
API_INIT_PRODUCER_ID = 22
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
UNKNOWN_TOPIC_OR_PARTITION = 3


def raw(port, api_key, version, body):
    import kproto
    with kproto.connect(port) as s:
        req = kproto.frame(kproto.request_header_v1(api_key, version, 1) + body)
        _, r = kproto.roundtrip(s, req)
        return r


def init_v0(port, txn_id, timeout_ms=60000):
    import kproto
    r = raw(port, API_INIT_PRODUCER_ID, 0, kproto.string(txn_id) + kproto.i32(timeout_ms))
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def add_partitions_v0(port, txn_id, pid, epoch, topic, partition):
    import kproto
    body = (kproto.string(txn_id) + kproto.i64(pid) + kproto.i16(epoch)
            + kproto.array([kproto.string(topic) + kproto.array([kproto.i32(partition)])]))
    r = raw(port, API_ADD_PARTITIONS_TO_TXN, 0, body)
    r.i32()
    topics = r.array(lambda t: (t.string(), t.array(lambda p: (p.i32(), p.i16()))))
    return topics[0][1][0][1]


def end_txn_v0(port, txn_id, pid, epoch, commit):
    import kproto
    body = kproto.string(txn_id) + kproto.i64(pid) + kproto.i16(epoch) + kproto.i8(1 if commit else 0)
    r = raw(port, API_END_TXN, 0, body)
    r.i32()
    return r.i16()


def test_transactional_requests_with_wrong_ids_epochs_or_states_get_their_kafka_errors(tbroker):
    topic = create_topic(tbroker.bootstrap, partitions=1)
    port = tbroker.port
    txn_id = "raw-" + uuid.uuid4().hex[:6]
    # Over transaction.max.timeout.ms (15 minutes by default).
    assert init_v0(port, txn_id, timeout_ms=3_600_000)[0] == INVALID_TRANSACTION_TIMEOUT
    err, pid, epoch = init_v0(port, txn_id)
    assert err == 0 and pid >= 0 and epoch == 0
    # An id the coordinator never saw, and the right id with another
    # producer id.
    assert add_partitions_v0(port, "never-" + txn_id, pid, epoch, topic, 0) == INVALID_PRODUCER_ID_MAPPING
    assert add_partitions_v0(port, txn_id, pid + 1, epoch, topic, 0) == INVALID_PRODUCER_ID_MAPPING
    # A newer epoch than the coordinator's: not this producer's (fenced;
    # v0 knows it as INVALID_PRODUCER_EPOCH).
    assert add_partitions_v0(port, txn_id, pid, epoch + 5, topic, 0) == INVALID_PRODUCER_EPOCH
    # A partition that does not exist.
    assert add_partitions_v0(port, txn_id, pid, epoch, topic, 7) == UNKNOWN_TOPIC_OR_PARTITION
    # Ending a transaction that never began.
    assert end_txn_v0(port, txn_id, pid, epoch, commit=True) == INVALID_TXN_STATE
    # A second init fences the first epoch.
    err, pid2, epoch2 = init_v0(port, txn_id)
    assert err == 0 and pid2 == pid and epoch2 == epoch + 1
    assert add_partitions_v0(port, txn_id, pid, epoch, topic, 0) == INVALID_PRODUCER_EPOCH
    # Nothing of it reached the topic.
    assert high_watermarks(tbroker.bootstrap, topic, [0]) == {0: 0}


MANY_PARTITIONS = 48


def test_a_commit_cut_by_a_kill_after_its_answer_is_completed_after_the_restart(tbroker):
    # EndTxn is answered once the decision is durable; the markers follow.
    # A kill right after the answer leaves some of them unwritten, and the
    # restarted coordinator writes the rest: every record becomes visible.
    topic = create_topic(tbroker.bootstrap, partitions=MANY_PARTITIONS)
    p = txn_producer(tbroker.bootstrap)
    p.begin_transaction()
    for i in range(MANY_PARTITIONS):
        p.produce(topic, value=b"m%d" % i, partition=i)
    p.commit_transaction(30)
    tbroker.kill9()
    tbroker.start()
    got = read_all(tbroker.bootstrap, topic, range(MANY_PARTITIONS), "read_committed",
                   expect=MANY_PARTITIONS, timeout=40)
    assert values(got) == sorted("m%d" % i for i in range(MANY_PARTITIONS))


def test_a_commit_cut_by_a_kill_before_its_answer_is_all_or_nothing(tbroker):
    # The kill lands while EndTxn is in flight: after the restart the
    # transaction is committed on every partition or on none, never half.
    import threading
    topic = create_topic(tbroker.bootstrap, partitions=MANY_PARTITIONS)
    txn_id = "cut-" + uuid.uuid4().hex[:6]
    p = txn_producer(tbroker.bootstrap, txn_id, **{"transaction.timeout.ms": 4000})
    p.begin_transaction()
    for i in range(MANY_PARTITIONS):
        p.produce(topic, value=b"h%d" % i, partition=i)
    p.flush(10)
    committing = threading.Thread(target=lambda: _ignore_errors(p.commit_transaction, 10))
    committing.start()
    time.sleep(0.01)
    tbroker.kill9()
    committing.join(20)
    tbroker.start()
    # A new instance with the same id waits for a decided transaction to
    # complete, or aborts an undecided one.
    txn_producer(tbroker.bootstrap, txn_id)
    got = read_all(tbroker.bootstrap, topic, range(MANY_PARTITIONS), "read_committed",
                   idle_s=3.0, timeout=40)
    assert len(got) in (0, MANY_PARTITIONS), "half a transaction is visible: %d of %d" % (
        len(got), MANY_PARTITIONS)
    # Either way every partition ends with its marker: nothing is left open.
    produce_all(tbroker.bootstrap, topic, [{"value": b"after", "partition": i}
                                           for i in range(MANY_PARTITIONS)])
    after = read_all(tbroker.bootstrap, topic, range(MANY_PARTITIONS), "read_committed",
                     expect=len(got) + MANY_PARTITIONS, timeout=40)
    assert len(after) == len(got) + MANY_PARTITIONS


def _ignore_errors(fn, *args):
    try:
        fn(*args)
    except KafkaException:
        pass
