"""One connection, many requests in flight: Produce and Fetch requests
overlap (up to requests_in_flight_per_connection_max), every response comes
back in request order, and requests of other APIs keep their place in line.
Raw sockets, so the test controls exactly what is pipelined."""
import time

import kproto
from conftest import consume_range, create_topic

REQUESTS = 40
API_FETCH = 1


def fetch_v4_request(correlation_id, topic, partition, offset, max_wait_ms, min_bytes=1):
    body = (kproto.i32(-1) + kproto.i32(max_wait_ms) + kproto.i32(min_bytes) + kproto.i32(1 << 20)
            + kproto.i8(0)
            + kproto.array([kproto.string(topic)
                            + kproto.array([kproto.i32(partition) + kproto.i64(offset) + kproto.i32(1 << 20)])]))
    return kproto.frame(kproto.request_header_v1(API_FETCH, 4, correlation_id) + body)


def decode_fetch_v4_record_bytes(body):
    """-> the records bytes of the first partition of the first topic."""
    body.i32()  # throttle_time_ms

    def part(r):
        p = {"partition": r.i32(), "error_code": r.i16(), "high_watermark": r.i64(), "lso": r.i64()}
        r.array(lambda q: (q.i64(), q.i64()))
        (n,) = (r.i32(),)
        p["records"] = r._take(n) if n > 0 else b""
        return p

    topics = body.array(lambda r: (r.string(), r.array(part)))
    return topics[0][1][0]


def test_pipelined_produce_answers_in_order_and_appends_in_order(broker):
    topic = create_topic(broker.bootstrap, partitions=1)
    with kproto.connect(broker.port) as s:
        frames = []
        expected = []
        for i in range(REQUESTS):
            corr = 1000 + i
            if i % 10 == 5:
                # A Metadata request in the middle runs alone, in its place.
                frames.append(kproto.metadata_v1_request(corr, [topic]))
                expected.append((corr, "metadata"))
            else:
                batch = kproto.record_batch([b"v%03d" % i])
                frames.append(kproto.produce_v3_request(corr, topic, 0, batch, acks=-1))
                expected.append((corr, "produce"))
        # Everything leaves before the first answer is read.
        s.sendall(b"".join(frames))
        offsets = []
        for corr, kind in expected:
            got, body = kproto.split_response(kproto.recv_frame(s))
            assert got == corr, "responses out of order: got %d, expected %d" % (got, corr)
            if kind == "produce":
                part = kproto.decode_produce_v3(body)[topic][0]
                assert part["error_code"] == 0
                offsets.append(part["base_offset"])
            else:
                md = kproto.decode_metadata_v1(body)
                assert md["topics"][0]["name"] == topic
    # Appends happened in request order: offsets 0, 1, 2, ...
    assert offsets == list(range(len(offsets)))
    values = [m.value() for m in consume_range(broker.bootstrap, topic, [0], len(offsets))]
    assert values == [b"v%03d" % i for i in range(REQUESTS) if i % 10 != 5]


def test_produce_behind_a_long_poll_fetch_on_the_same_connection_is_not_held_back(broker):
    """A consumer-style long poll and a produce share one connection: the
    produce runs while the fetch waits, so the fetch wakes with its record
    long before its 5 s wait is over, and the answers still come in order."""
    topic = create_topic(broker.bootstrap, partitions=1)
    with kproto.connect(broker.port) as s:
        started = time.monotonic()
        s.sendall(fetch_v4_request(1, topic, 0, 0, max_wait_ms=5000)
                  + kproto.produce_v3_request(2, topic, 0, kproto.record_batch([b"wake"]), acks=1))
        corr, body = kproto.split_response(kproto.recv_frame(s))
        assert corr == 1
        part = decode_fetch_v4_record_bytes(body)
        assert part["error_code"] == 0 and part["high_watermark"] == 1
        assert b"wake" in part["records"]
        corr, body = kproto.split_response(kproto.recv_frame(s))
        assert corr == 2
        assert kproto.decode_produce_v3(body)[topic][0]["error_code"] == 0
        elapsed = time.monotonic() - started
    assert elapsed < 2.5, "the produce waited for the fetch's long poll (%.1f s)" % elapsed
