"""Requests whose partitions live on several shards.

A Produce or Fetch that names partitions owned by different shards is split
into one message per owning shard, and the answers are put back together in
the request's order. These tests send such requests over a raw socket (the
exact layout is under the test's control, which a client library's batching
would hide) to a broker with two shards, so partitions of one topic land on
both.
"""

import threading
import time

import kproto as kp
from conftest import create_topic

PARTITIONS = 6
UNKNOWN_TOPIC_OR_PARTITION = 3


def produce_v3_many(correlation_id, topics, acks=-1, timeout_ms=10000):
    """topics: [(name, [(partition, records), ...]), ...] in the order sent."""
    body = (kp.string(None) + kp.i16(acks) + kp.i32(timeout_ms)
            + kp.array([kp.string(name) + kp.array([kp.i32(p) + kp.kbytes(r) for p, r in parts])
                        for name, parts in topics]))
    return kp.frame(kp.request_header_v1(kp.API_PRODUCE, 3, correlation_id) + body)


def fetch_v4_many(correlation_id, topics, max_wait_ms=500, min_bytes=1, max_bytes=8 << 20,
                  partition_max_bytes=1 << 20):
    """topics: [(name, [(partition, offset), ...]), ...] in the order sent."""
    body = (kp.i32(-1) + kp.i32(max_wait_ms) + kp.i32(min_bytes) + kp.i32(max_bytes) + kp.i8(0)
            + kp.array([kp.string(name) + kp.array([kp.i32(p) + kp.i64(o) + kp.i32(partition_max_bytes)
                                                    for p, o in parts])
                        for name, parts in topics]))
    return kp.frame(kp.request_header_v1(kp.API_FETCH, 4, correlation_id) + body)


def ordered_produce(body):
    """-> [(topic, [(partition, error_code, base_offset), ...]), ...] in response order."""
    def part(r):
        p = (r.i32(), r.i16(), r.i64())
        r.i64()  # log_append_time_ms
        return p

    return body.array(lambda r: (r.string(), r.array(part)))


def ordered_fetch(body):
    """-> [(topic, [(partition, error_code, high_watermark, records_bytes), ...])]."""
    body.i32()  # throttle_time_ms

    def part(r):
        partition, code, hw = r.i32(), r.i16(), r.i64()
        r.i64()  # last_stable_offset
        r.array(lambda q: (q.i64(), q.i64()))
        n = r.i32()
        if n > 0:
            r._take(n)
        return partition, code, hw, max(n, 0)

    return body.array(lambda r: (r.string(), r.array(part)))


def two_shard_broker(broker_factory):
    b = broker_factory(["--cores", "2"])
    a = create_topic(b.bootstrap, partitions=PARTITIONS)
    c = create_topic(b.bootstrap, partitions=PARTITIONS)
    return b, a, c


def test_one_produce_across_shards_answers_every_partition_in_request_order(broker_factory):
    b, a, c = two_shard_broker(broker_factory)
    # Partitions interleaved and out of order, an unknown partition in the
    # middle, so that the answer's order cannot come from grouping by shard.
    order_a = [5, 0, 3, 1, 4, 2]
    order_c = [2, 4, 0, 5, 1, 3]
    layout = [(a, [(p, kp.record_batch([b"a%d-%d" % (p, i) for i in range(p + 1)])) for p in order_a]),
              (c, [(p, kp.record_batch([b"c%d" % p])) for p in order_c[:3]]
               + [(PARTITIONS + 7, kp.record_batch([b"nowhere"]))]
               + [(p, kp.record_batch([b"c%d" % p])) for p in order_c[3:]])]
    sock = kp.connect(b.port)
    try:
        for round_no in range(2):
            cid, body = (kp.roundtrip(sock, produce_v3_many(10 + round_no, layout)))
            assert cid == 10 + round_no
            answer = ordered_produce(body)
            assert [name for name, _ in answer] == [a, c]
            (_, parts_a), (_, parts_c) = answer
            assert [p for p, _, _ in parts_a] == order_a
            assert [p for p, _, _ in parts_c] == order_c[:3] + [PARTITIONS + 7] + order_c[3:]
            for p, code, base in parts_a:
                assert code == 0, (p, code)
                # Partition p gets p + 1 records per round.
                assert base == round_no * (p + 1), (p, base)
            for p, code, base in parts_c:
                if p == PARTITIONS + 7:
                    assert code == UNKNOWN_TOPIC_OR_PARTITION
                    assert base == -1
                else:
                    assert (code, base) == (0, round_no), (p, code, base)

        # One Fetch over every partition of both topics, in yet another order.
        wanted = [(c, [(p, 0) for p in reversed(range(PARTITIONS))]), (a, [(p, 0) for p in range(PARTITIONS)])]
        cid, body = (kp.roundtrip(sock, fetch_v4_many(20, wanted)))
        answer = ordered_fetch(body)
        assert [name for name, _ in answer] == [c, a]
        (_, parts_c), (_, parts_a) = answer
        assert [p for p, *_ in parts_c] == list(reversed(range(PARTITIONS)))
        assert [p for p, *_ in parts_a] == list(range(PARTITIONS))
        for p, code, hw, n in parts_a:
            assert (code, hw) == (0, 2 * (p + 1)), p
            assert n > 0, p
        for p, code, hw, n in parts_c:
            assert (code, hw) == (0, 2), p
            assert n > 0, p
    finally:
        sock.close()


def test_a_long_poll_over_both_shards_wakes_for_data_on_either(broker_factory):
    b, a, _ = two_shard_broker(broker_factory)
    for target in (0, PARTITIONS - 1, 3):
        sock = kp.connect(b.port, timeout=30)
        try:
            ends = {}
            cid, body = (kp.roundtrip(
                sock, fetch_v4_many(1, [(a, [(p, 0) for p in range(PARTITIONS)])], max_wait_ms=0)))
            for p, code, hw, _ in ordered_fetch(body)[0][1]:
                assert code == 0
                ends[p] = hw

            def produce_later():
                time.sleep(0.5)
                s2 = kp.connect(b.port)
                try:
                    _, body2 = (kp.roundtrip(
                        s2, produce_v3_many(2, [(a, [(target, kp.record_batch([b"wake"]))])])))
                    assert ordered_produce(body2)[0][1][0][1] == 0
                finally:
                    s2.close()

            t = threading.Thread(target=produce_later)
            started = time.monotonic()
            t.start()
            cid, body = (kp.roundtrip(
                sock, fetch_v4_many(3, [(a, [(p, ends[p]) for p in range(PARTITIONS)])],
                                    max_wait_ms=20000, min_bytes=1)))
            waited = time.monotonic() - started
            t.join()
            parts = ordered_fetch(body)[0][1]
            got = {p: n for p, code, hw, n in parts if n > 0}
            assert list(got) == [target], parts
            # Answered by the new data, long before the 20 s deadline.
            assert waited < 10, waited
        finally:
            sock.close()
