"""Fetch response limits over raw sockets: a request's max_bytes bounds the
records returned across partitions, the first batch always comes back (a
consumer never stalls), and the broker's fetch_bytes_max caps a client that
asks for more."""
import kproto
from conftest import create_topic, produce_all

API_FETCH = 1
BATCH_VALUE_BYTES = 10_000


def fetch_v4(correlation_id, topic, partitions, max_bytes, partition_max_bytes=1 << 20):
    parts = [kproto.i32(p) + kproto.i64(0) + kproto.i32(partition_max_bytes) for p in partitions]
    body = (kproto.i32(-1) + kproto.i32(0) + kproto.i32(1) + kproto.i32(max_bytes) + kproto.i8(0)
            + kproto.array([kproto.string(topic) + kproto.array(parts)]))
    return kproto.frame(kproto.request_header_v1(API_FETCH, 4, correlation_id) + body)


def record_bytes_by_partition(body):
    body.i32()  # throttle_time_ms
    out = {}

    def part(r):
        p = r.i32()
        r.i16()
        r.i64()
        r.i64()
        r.array(lambda q: (q.i64(), q.i64()))
        n = r.i32()
        out[p] = len(r._take(n)) if n > 0 else 0

    body.array(lambda r: (r.string(), r.array(part)))
    return out


def test_fetch_max_bytes_bounds_the_response_across_partitions(broker):
    topic = create_topic(broker.bootstrap, partitions=3)
    # Ten 10 KB records per partition, each its own batch.
    produce_all(broker.bootstrap, topic,
                [{"value": bytes([i]) * BATCH_VALUE_BYTES, "partition": i % 3} for i in range(30)],
                linger_ms=0, batch_num_messages=1)
    with kproto.connect(broker.port) as s:
        corr, body = kproto.roundtrip(s, fetch_v4(1, topic, [0, 1, 2], max_bytes=35_000))
        got = record_bytes_by_partition(body)
        total = sum(got.values())
        assert got[0] > 0, "the first partition must return data"
        # At most max_bytes, plus the one batch a starved partition may return.
        assert total <= 35_000 + BATCH_VALUE_BYTES + 200, got
        assert total < 3 * 10 * BATCH_VALUE_BYTES
        # max_bytes smaller than one batch: the first batch still comes back.
        corr, body = kproto.roundtrip(s, fetch_v4(2, topic, [0, 1, 2], max_bytes=1))
        got = record_bytes_by_partition(body)
        assert got[0] > BATCH_VALUE_BYTES
        assert got[1] == 0 and got[2] == 0, got


def test_broker_fetch_bytes_max_caps_a_larger_client_max_bytes(broker_factory, tmp_path):
    cfg = tmp_path / "small-fetch.toml"
    cfg.write_text("fetch_bytes_max = 25000\n")
    broker = broker_factory(["--config", str(cfg)])
    topic = create_topic(broker.bootstrap, partitions=1)
    produce_all(broker.bootstrap, topic,
                [{"value": b"x" * BATCH_VALUE_BYTES, "partition": 0} for _ in range(10)],
                linger_ms=0, batch_num_messages=1)
    with kproto.connect(broker.port) as s:
        corr, body = kproto.roundtrip(s, fetch_v4(1, topic, [0], max_bytes=50 << 20))
        got = record_bytes_by_partition(body)
        assert BATCH_VALUE_BYTES < got[0] <= 25_000 + BATCH_VALUE_BYTES + 200, got


def test_fetch_max_bytes_is_filled_partition_by_partition_in_request_order(broker):
    """Kafka's filling of max_bytes: each partition in request order takes
    whole batches up to its partition_max_bytes and what the partitions
    before it left, so an empty partition leaves its share to the next and
    a partition with less than its limit leaves the rest to later ones
    (rather than max_bytes being split among the partitions up front)."""
    topic = create_topic(broker.bootstrap, partitions=3)
    # Partition 0 stays empty; 1 and 2 get ten 10 KB records, each its own
    # batch of the same size.
    produce_all(broker.bootstrap, topic,
                [{"value": bytes([i]) * BATCH_VALUE_BYTES, "partition": 1 + i % 2} for i in range(20)],
                linger_ms=0, batch_num_messages=1)
    partition_max, max_bytes = 40_000, 65_000
    with kproto.connect(broker.port) as s:
        # One batch's size on the wire: partition 1 alone, limited to 1 byte.
        _, body = kproto.roundtrip(s, fetch_v4(1, topic, [1], max_bytes=1))
        batch = record_bytes_by_partition(body)[1]
        assert BATCH_VALUE_BYTES < batch < BATCH_VALUE_BYTES + 200

        _, body = kproto.roundtrip(
            s, fetch_v4(2, topic, [0, 1, 2], max_bytes=max_bytes, partition_max_bytes=partition_max))
        got = record_bytes_by_partition(body)
        first = partition_max // batch  # 3 batches fit in partition 1's limit
        second = min(partition_max, max_bytes - first * batch) // batch  # 3 in what is left
        assert (first, second) == (3, 3)
        assert got == {0: 0, 1: first * batch, 2: second * batch}, (got, batch)
        assert sum(got.values()) <= max_bytes

        # The same partitions asked in the other order fill the other way:
        # partition 2 first, then 1; 0 contributes nothing wherever it is.
        _, body = kproto.roundtrip(
            s, fetch_v4(3, topic, [2, 0, 1], max_bytes=max_bytes, partition_max_bytes=partition_max))
        assert record_bytes_by_partition(body) == {2: first * batch, 0: 0, 1: second * batch}

        # A response limit below partition 1's: partition 1 takes all of it
        # that whole batches fill, partition 2 what is left (nothing, as less
        # than a batch remains).
        _, body = kproto.roundtrip(
            s, fetch_v4(4, topic, [0, 1, 2], max_bytes=25_000, partition_max_bytes=partition_max))
        assert record_bytes_by_partition(body) == {0: 0, 1: 2 * batch, 2: 0}
