"""Leader epochs on a single node (issue 18): every batch is stamped with
its leader's epoch whatever the producer wrote, OffsetForLeaderEpoch
(v2-4) says where an epoch ends, and Fetch, ListOffsets and
OffsetForLeaderEpoch fence a `current_leader_epoch` that is not the
leader's (KIP-320), the way consumers with a stale or too new view of the
cluster expect.

Raw frames over a real socket (the fields are what the tests are about),
and librdkafka through confluent-kafka for what a consumer sees: the epoch
of each message and a position validated against the broker.
"""
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import create_topic, produce_all
from kproto import (API_FETCH, array, connect, decode_produce_v3, frame, i8, i32,
                    i64, produce_v3_request, record_batch, request_header_v1, roundtrip, string)

LIST_OFFSETS = 2
OFFSET_FOR_LEADER_EPOCH = 23
ERR_NONE = 0
ERR_OFFSET_OUT_OF_RANGE = 1
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_FENCED_LEADER_EPOCH = 74
ERR_UNKNOWN_LEADER_EPOCH = 75
# A single node leads every partition in epoch 0.
EPOCH = 0


# ------------------------------------------------------------------ frames --
def offset_for_leader_epoch(corr, topic, partitions, version=3, replica_id=-1):
    """partitions: [(partition, current_leader_epoch, leader_epoch)] (v2 and v3)."""
    body = i32(replica_id) if version >= 3 else b""
    body += array([string(topic) + array([i32(p) + i32(cur) + i32(e) for p, cur, e in partitions])])
    return frame(request_header_v1(OFFSET_FOR_LEADER_EPOCH, version, corr) + body)


def decode_offset_for_leader_epoch(body):
    """-> {partition: (error_code, leader_epoch, end_offset)} of the one topic."""
    body.i32()  # throttle_time_ms
    topics = body.array(lambda r: (r.string(), r.array(lambda q: (q.i16(), q.i32(), q.i32(), q.i64()))))
    assert len(topics) == 1
    return {p: (code, epoch, end) for code, p, epoch, end in topics[0][1]}


def ask_epoch(port, topic, partitions, version=3):
    with connect(port) as s:
        corr, body = roundtrip(s, offset_for_leader_epoch(5, topic, partitions, version))
        assert corr == 5
        return decode_offset_for_leader_epoch(body)


def fetch_v9(corr, topic, partition, offset, current_leader_epoch, max_wait_ms=3000):
    body = (i32(-1) + i32(max_wait_ms) + i32(1) + i32(1 << 20) + i8(0) + i32(0) + i32(-1)
            + array([string(topic) + array([i32(partition) + i32(current_leader_epoch) + i64(offset)
                                            + i64(-1) + i32(1 << 20)])])
            + array([]))
    return frame(request_header_v1(API_FETCH, 9, corr) + body)


def decode_fetch_v9(body):
    """-> (error_code, high_watermark, records bytes) of the one partition."""
    body.i32()  # throttle_time_ms
    assert body.i16() == ERR_NONE
    body.i32()  # session_id

    def part(r):
        index, code, hw = r.i32(), r.i16(), r.i64()
        r.i64()  # last_stable_offset
        r.i64()  # log_start_offset
        r.array(lambda q: (q.i64(), q.i64()))
        n = r.i32()
        return code, hw, r._take(n) if n > 0 else b""

    topics = body.array(lambda r: (r.string(), r.array(part)))
    return topics[0][1][0]


def list_offsets_v4(corr, topic, partition, timestamp, current_leader_epoch):
    body = (i32(-1) + i8(0)
            + array([string(topic) + array([i32(partition) + i32(current_leader_epoch) + i64(timestamp)])]))
    return frame(request_header_v1(LIST_OFFSETS, 4, corr) + body)


def decode_list_offsets_v4(body):
    """-> (error_code, timestamp, offset, leader_epoch) of the one partition."""
    body.i32()  # throttle_time_ms
    topics = body.array(lambda r: (r.string(), r.array(
        lambda q: (q.i32(), q.i16(), q.i64(), q.i64(), q.i32()))))
    _, code, ts, offset, epoch = topics[0][1][0]
    return code, ts, offset, epoch


def batch_epochs(records):
    """(base offset, partitionLeaderEpoch) of each batch in a Fetch's records."""
    out, at = [], 0
    while at + 17 <= len(records):
        base, length, epoch = struct.unpack(">qii", records[at:at + 16])
        out.append((base, epoch))
        at += 12 + length
    return out


def with_epoch(batch, epoch):
    """The batch with its partitionLeaderEpoch field (bytes 12-16, outside
    the CRC) set to `epoch`, as a producer may send it."""
    return batch[:12] + struct.pack(">i", epoch) + batch[16:]


# ------------------------------------------------------------------- tests --
def test_batches_carry_the_leaders_epoch_whatever_the_producer_wrote(broker):
    topic = create_topic(broker.bootstrap)
    with connect(broker.port) as s:
        for i, producer_epoch in enumerate([-1, 1234, 7]):
            batch = with_epoch(record_batch([b"v%d" % i, b"w%d" % i]), producer_epoch)
            _, body = roundtrip(s, produce_v3_request(10 + i, topic, 0, batch))
            assert decode_produce_v3(body)[topic][0]["error_code"] == ERR_NONE
        # From memory, at once, and again from disk after a restart.
        _, body = roundtrip(s, fetch_v9(20, topic, 0, 0, EPOCH))
        code, hw, records = decode_fetch_v9(body)
        assert (code, hw) == (ERR_NONE, 6)
        assert batch_epochs(records) == [(0, EPOCH), (2, EPOCH), (4, EPOCH)]
    broker.restart()
    with connect(broker.port) as s:
        _, body = roundtrip(s, fetch_v9(21, topic, 0, 0, EPOCH))
        assert batch_epochs(decode_fetch_v9(body)[2]) == [(0, EPOCH), (2, EPOCH), (4, EPOCH)]


def test_offset_for_leader_epoch_answers_where_each_epoch_ends(broker):
    topic = create_topic(broker.bootstrap, partitions=2)
    produce_all(broker.bootstrap, topic, [{"value": b"m%d" % i, "partition": 0} for i in range(25)])
    for version in (2, 3):
        got = ask_epoch(broker.port, topic, [(0, EPOCH, EPOCH), (1, -1, EPOCH), (9, -1, 0)],
                        version=version)
        assert got[9] == (ERR_UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
        assert got[0] == (ERR_NONE, EPOCH, 25)
        assert ask_epoch(broker.port, topic, [(0, EPOCH, EPOCH)], version) == {0: (ERR_NONE, EPOCH, 25)}
        assert ask_epoch(broker.port, topic, [(1, -1, EPOCH)], version) == {1: (ERR_NONE, EPOCH, 0)}, \
            "an empty partition's epoch ends at its (empty) end"
        assert ask_epoch(broker.port, topic, [(0, -1, 3)], version) == {0: (ERR_NONE, -1, -1)}, \
            "an epoch the leader has not reached is undefined"
    # The answer survives a kill -9 (the epoch is rebuilt from the batches).
    broker.restart()
    assert ask_epoch(broker.port, topic, [(0, EPOCH, EPOCH)]) == {0: (ERR_NONE, EPOCH, 25)}


def test_a_current_leader_epoch_other_than_the_leaders_is_fenced(broker):
    topic = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, topic, [{"value": b"x"}] * 3)
    newer, older = EPOCH + 1, EPOCH - 1
    assert ask_epoch(broker.port, topic, [(0, newer, EPOCH)]) == {0: (ERR_UNKNOWN_LEADER_EPOCH, -1, -1)}
    with connect(broker.port) as s:
        # A fenced Fetch is answered at once, not after max_wait_ms.
        started = time.monotonic()
        _, body = roundtrip(s, fetch_v9(1, topic, 0, 0, newer, max_wait_ms=5000))
        code, _, records = decode_fetch_v9(body)
        assert (code, records) == (ERR_UNKNOWN_LEADER_EPOCH, b"")
        assert time.monotonic() - started < 4.0
        _, body = roundtrip(s, list_offsets_v4(2, topic, 0, -1, newer))
        assert decode_list_offsets_v4(body)[0] == ERR_UNKNOWN_LEADER_EPOCH
        # -1 skips the check; the leader's own epoch passes it.
        for cur in (-1, EPOCH):
            _, body = roundtrip(s, fetch_v9(3, topic, 0, 0, cur))
            code, hw, records = decode_fetch_v9(body)
            assert (code, hw) == (ERR_NONE, 3) and records
            _, body = roundtrip(s, list_offsets_v4(4, topic, 0, -1, cur))
            assert decode_list_offsets_v4(body) == (ERR_NONE, -1, 3, EPOCH)
            _, body = roundtrip(s, list_offsets_v4(5, topic, 0, -2, cur))
            assert decode_list_offsets_v4(body) == (ERR_NONE, -1, 0, EPOCH)
    if older >= 0:
        assert ask_epoch(broker.port, topic, [(0, older, EPOCH)]) == {0: (ERR_FENCED_LEADER_EPOCH, -1, -1)}


def test_librdkafka_sees_each_messages_epoch_and_resumes_from_a_validated_position(broker):
    topic = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, topic, [{"value": b"r%d" % i} for i in range(20)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "epochs",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        # A position that carries the epoch it was read in, as an
        # application that stores offsets with their epochs resumes:
        # librdkafka validates it with OffsetForLeaderEpoch before fetching.
        c.assign([TopicPartition(topic, 0, 12, leader_epoch=EPOCH)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 8 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append(m)
        assert [m.offset() for m in got] == list(range(12, 20))
        assert {m.leader_epoch() for m in got} == {EPOCH}
        assert [m.value() for m in got] == [b"r%d" % i for i in range(12, 20)]
    finally:
        c.close()


def fetch_v12(port, topic, offset, current_leader_epoch, last_fetched_epoch, max_wait_ms=0):
    """A raw Fetch v12 of partition 0 naming the fetcher's last fetched
    epoch -> (error code, high watermark, records bytes, diverging (epoch,
    end offset) or None)."""
    from test_cluster_topics import fetch_v12_answer
    code, hw, records, diverging, _ = fetch_v12_answer(
        port, topic, 0, offset=offset, current_leader_epoch=current_leader_epoch,
        last_fetched_epoch=last_fetched_epoch, max_wait_ms=max_wait_ms, min_bytes=1)
    return code, hw, records, diverging


def test_a_fetcher_whose_last_epoch_ends_before_its_offset_is_told_where_it_diverges(broker):
    topic = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, topic, [{"value": b"d%d" % i} for i in range(5)])
    # Epoch 0 ends at 5, past the fetch offset 0: no divergence, a normal answer.
    code, hw, records, diverging = fetch_v12(broker.port, topic, 0, EPOCH, EPOCH)
    assert (code, hw, diverging) == (ERR_NONE, 5, None) and records
    # A fetcher at 7 whose last batch was of epoch 0: this log ends epoch 0
    # at 5, so its log diverges there. Answered at once, without records.
    started = time.monotonic()
    code, hw, records, diverging = fetch_v12(broker.port, topic, 7, EPOCH, EPOCH, max_wait_ms=5000)
    assert (code, hw, records, diverging) == (ERR_NONE, 5, b"", (EPOCH, 5))
    assert time.monotonic() - started < 4.0
    # An epoch this log never had: out of range, as Kafka answers it.
    code, _, _, diverging = fetch_v12(broker.port, topic, 5, EPOCH, EPOCH + 3)
    assert (code, diverging) == (ERR_OFFSET_OUT_OF_RANGE, None)


# ------------------------------------------------------------------ cluster --
# A cluster node leads its partitions in the epoch the quorum's image names.
# With one replica, a partition whose broker is fenced (killed) loses its
# leader, and gets it back in a later epoch when the broker returns.
from test_cluster_topics import cluster, create, described  # noqa: E402,F401 (cluster is a fixture)
from test_cluster_quorum import wait_for  # noqa: E402


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def leader_epoch_of(node, topic):
    """The partition's leader epoch as its leader reports it (ListOffsets
    v4 "latest" answers in the leader's epoch)."""
    with connect(node.port) as s:
        _, body = roundtrip(s, list_offsets_v4(1, topic, 0, -1, -1))
    code, _, _, epoch = decode_list_offsets_v4(body)
    return epoch if code == ERR_NONE else None


@pytest.mark.timeout(180)
def test_a_new_leader_epoch_fences_the_old_one_and_stamps_the_batches_after_it(cluster):
    n = cluster.nodes
    create(n[1], "epochs", 1)
    _, leaders = wait_for("node 1 to describe the topic", lambda: described(n[1], "epochs"), 15)
    leader = n[leaders[0]]
    other = n[next(i for i in (1, 2, 3) if i != leaders[0])]
    p = Producer({"bootstrap.servers": other.bootstrap})
    for i in range(5):
        p.produce("epochs", value=b"before-%d" % i)
        p.flush(30)
    old = leader_epoch_of(leader, "epochs")
    assert old is not None and old >= 0

    # The leader's broker is killed (fenced: no leader), and comes back.
    leader.kill9()
    wait_for("the partition without a leader",
             lambda: admin(other.bootstrap).list_topics(topic="epochs", timeout=10)
             .topics["epochs"].partitions[0].leader == -1, 30)
    leader.start()
    wait_for("the partition led again",
             lambda: (described(other, "epochs") or (None, {}))[1].get(0) == leaders[0], 30)
    new = wait_for("a newer leader epoch", lambda: (lambda e: e if e is not None and e > old else None)(
        leader_epoch_of(leader, "epochs")), 15)
    for i in range(3):
        p.produce("epochs", value=b"after-%d" % i)
        p.flush(30)

    with connect(leader.port) as s:
        # A consumer still in the old epoch is fenced; one in the new is served.
        _, body = roundtrip(s, fetch_v9(1, "epochs", 0, 0, old))
        assert decode_fetch_v9(body)[0] == ERR_FENCED_LEADER_EPOCH
        _, body = roundtrip(s, fetch_v9(2, "epochs", 0, 0, new))
        code, hw, records = decode_fetch_v9(body)
        assert (code, hw) == (ERR_NONE, 8)
        epochs = batch_epochs(records)
        assert [e for base, e in epochs if base < 5] == [old] * 5
        assert [e for base, e in epochs if base >= 5] == [new] * 3
    # Where each epoch ends, and the fencing of the asker's own epoch.
    assert ask_epoch(leader.port, "epochs", [(0, new, old)]) == {0: (ERR_NONE, old, 5)}
    assert ask_epoch(leader.port, "epochs", [(0, new, new)]) == {0: (ERR_NONE, new, 8)}
    assert ask_epoch(leader.port, "epochs", [(0, old, old)]) == {0: (ERR_FENCED_LEADER_EPOCH, -1, -1)}
    # A fetcher (a deposed leader's follower, say) at 7 whose last batch
    # was of the old epoch learns that the old epoch ends at 5 here.
    code, _, records, diverging = fetch_v12(leader.port, "epochs", 7, new, old)
    assert (code, records, diverging) == (ERR_NONE, b"", (old, 5))

    # librdkafka reads every record with the epoch it was written in.
    c = Consumer({"bootstrap.servers": other.bootstrap, "group.id": "epochs",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("epochs", 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 8 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.offset(), m.leader_epoch()))
        assert got == [(i, old) for i in range(5)] + [(i, new) for i in range(5, 8)]
    finally:
        c.close()
