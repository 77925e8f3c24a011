"""Produce and consume through real clients: acks, compression codecs, keys,
headers, tombstones, earliest/latest/timestamp positions, 100,000 messages,
idempotence, size limits and unknown topics.

Clients: PyPI confluent-kafka (librdkafka current) and kafka-python."""
import time
import uuid

import pytest
from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

import kproto
from conftest import consume_range, create_topic, produce_all, producer, unique_topic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


# ------------------------------------------------------------ kafka-python --
def kp_producer(bootstrap, **conf):
    from kafka import KafkaProducer
    c = dict(bootstrap_servers=bootstrap, request_timeout_ms=15000, max_block_ms=15000, linger_ms=5,
             bootstrap_timeout_ms=15000)
    c.update(conf)
    return KafkaProducer(**c)


def kp_produce(bootstrap, topic, messages, **conf):
    p = kp_producer(bootstrap, **conf)
    try:
        futs = [p.send(topic, **m) for m in messages]
        p.flush(timeout=30)
        return [f.get(timeout=30) for f in futs]
    finally:
        p.close(timeout=10)


def kp_consume(bootstrap, topic, partitions, count, timeout=30.0, start="beginning", on_ready=None):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=15000, bootstrap_timeout_ms=15000, fetch_max_wait_ms=200)
    try:
        tps = [KTP(topic, p) for p in partitions]
        c.assign(tps)
        if start == "beginning":
            c.seek_to_beginning(*tps)
        elif start == "end":
            c.seek_to_end(*tps)
        else:
            for tp in tps:
                c.seek(tp, start)
        for tp in tps:  # resolve the positions now
            c.position(tp, timeout_ms=15000)
        if on_ready:
            on_ready()
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        assert len(out) >= count, "kafka-python consumed %d of %d" % (len(out), count)
        return out
    finally:
        c.close()


# -------------------------------------------------------------------- acks --
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_acks_confluent(broker, acks):
    name = create_topic(broker.bootstrap)
    values = [b"acks%s-%d" % (acks.encode(), i) for i in range(200)]
    reports = produce_all(broker.bootstrap, name, [{"value": v} for v in values], acks=acks)
    if acks != "0":
        assert sorted(m.offset() for _, m in reports) == list(range(200))
    got = consume_range(broker.bootstrap, name, [0], 200)
    assert [m.value() for m in got] == values
    assert [m.offset() for m in got] == list(range(200))


# kafka-python 2.3.3 never wrote an acks=0 produce to the socket (its I/O
# thread was not woken for a request without an answer); 3.x does.
@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_produce_acks_kafka_python(broker, acks):
    name = create_topic(broker.bootstrap)
    values = [b"kp-acks-%d" % i for i in range(200)]
    metas = kp_produce(broker.bootstrap, name, [{"value": v} for v in values], acks=acks)
    if acks != 0:
        assert [m.offset for m in metas] == list(range(200))
    got = kp_consume(broker.bootstrap, name, [0], 200)
    assert [r.value for r in got] == values


# ------------------------------------------------------------- compression --
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_compression_codecs(broker, client, codec):
    """Produce compressible batches with one client and codec; both clients read them back."""
    name = create_topic(broker.bootstrap, partitions=2)
    n = 500
    msgs = [{"key": b"k%d" % (i % 7), "value": (b"%s-%05d-" % (codec.encode(), i)) + b"abc" * 50,
             "partition": i % 2} for i in range(n)]
    if client == "confluent":
        produce_all(broker.bootstrap, name, msgs, acks="all", compression_type=codec, linger_ms=20)
    else:
        kp_produce(broker.bootstrap, name, msgs, acks="all",
                   compression_type=None if codec == "none" else codec, linger_ms=20)
    want = {p: [m["value"] for m in msgs if m["partition"] == p] for p in (0, 1)}

    got = consume_range(broker.bootstrap, name, [0, 1], n)
    by_part = {p: [m.value() for m in got if m.partition() == p] for p in (0, 1)}
    assert by_part == want
    assert all(m.key() == b"k%d" % (int(m.value().split(b"-")[1]) % 7) for m in got)

    got = kp_consume(broker.bootstrap, name, [0, 1], n)
    by_part = {p: [r.value for r in got if r.partition == p] for p in (0, 1)}
    assert by_part == want
    for p in (0, 1):
        assert [r.offset for r in got if r.partition == p] == list(range(n // 2))


# ------------------------------------------------ keys, headers, tombstones --
def test_keys_headers_and_tombstones_confluent(broker):
    name = create_topic(broker.bootstrap)
    msgs = [
        {"key": b"user-1", "value": b"v1", "headers": [("h1", b"a"), ("h2", b"")]},
        {"key": b"user-2", "value": None},  # tombstone
        {"key": None, "value": b"no-key"},
        {"key": b"", "value": b"", "headers": [("dup", b"1"), ("dup", b"2"), ("null", None)]},
        {"key": b"\x00\xffbin", "value": bytes(range(256))},
    ]
    produce_all(broker.bootstrap, name, msgs, acks="all")
    got = consume_range(broker.bootstrap, name, [0], len(msgs))
    assert [m.key() for m in got] == [m["key"] for m in msgs]
    assert [m.value() for m in got] == [m["value"] for m in msgs]
    assert got[0].headers() == [("h1", b"a"), ("h2", b"")]
    assert got[1].headers() is None and got[1].value() is None
    assert got[3].headers() == [("dup", b"1"), ("dup", b"2"), ("null", None)]


def test_keys_headers_and_tombstones_kafka_python(broker):
    name = create_topic(broker.bootstrap)
    msgs = [
        {"key": b"user-1", "value": b"v1", "headers": [("h1", b"a"), ("h2", b"")]},
        {"key": b"user-2", "value": None},
        {"key": None, "value": b"no-key"},
    ]
    kp_produce(broker.bootstrap, name, msgs, acks="all")
    got = kp_consume(broker.bootstrap, name, [0], len(msgs))
    assert [(r.key, r.value) for r in got] == [(m["key"], m["value"]) for m in msgs]
    assert list(got[0].headers) == [("h1", b"a"), ("h2", b"")]
    # read back by the other client too
    got = consume_range(broker.bootstrap, name, [0], len(msgs))
    assert [(m.key(), m.value()) for m in got] == [(m["key"], m["value"]) for m in msgs]
    assert got[0].headers() == [("h1", b"a"), ("h2", b"")]


# --------------------------------------------------------- start positions --
def test_consume_from_earliest_latest_and_timestamp_confluent(broker):
    name = create_topic(broker.bootstrap)
    base = int(time.time() * 1000) - 100_000
    produce_all(broker.bootstrap, name, [{"value": b"old-%d" % i, "timestamp": base + i * 1000}
                                         for i in range(10)], acks="all")
    # earliest
    got = consume_range(broker.bootstrap, name, [0], 10)
    assert [m.value() for m in got] == [b"old-%d" % i for i in range(10)]
    assert [m.timestamp()[1] for m in got] == [base + i * 1000 for i in range(10)]
    # timestamp: offsets_for_times then consume from there
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "ts", "enable.auto.commit": False})
    try:
        res = c.offsets_for_times([TopicPartition(name, 0, base + 6500)], timeout=10)
        assert res[0].error is None and res[0].offset == 7
        res = c.offsets_for_times([TopicPartition(name, 0, base + 1_000_000)], timeout=10)
        assert res[0].offset == -1  # after the last timestamp: no offset (OFFSET_END)
    finally:
        c.close()
    got = consume_range(broker.bootstrap, name, [0], 3, start=7)
    assert [m.value() for m in got] == [b"old-7", b"old-8", b"old-9"]
    # latest: a consumer placed at the end sees only what is produced after
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "latest", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(name, 0, OFFSET_END)])
        t_end = time.monotonic() + 2.0  # let the end offset resolve (ListOffsets)
        while time.monotonic() < t_end:
            m = c.poll(0.2)
            assert m is None or m.error(), "consumer at the end got an old message %r" % (m.value(),)
        produce_all(broker.bootstrap, name, [{"value": b"new-%d" % i} for i in range(5)], acks="all")
        out = []
        deadline = time.monotonic() + 20
        while len(out) < 5 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
        assert [m.value() for m in out] == [b"new-%d" % i for i in range(5)]
        assert [m.offset() for m in out] == list(range(10, 15))
    finally:
        c.close()


def test_consume_from_latest_and_timestamp_kafka_python(broker):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    name = create_topic(broker.bootstrap)
    base = int(time.time() * 1000) - 100_000
    kp_produce(broker.bootstrap, name, [{"value": b"old-%d" % i, "timestamp_ms": base + i * 1000}
                                        for i in range(10)], acks="all")

    def produce_new():
        kp_produce(broker.bootstrap, name, [{"value": b"new-%d" % i} for i in range(5)], acks="all")

    got = kp_consume(broker.bootstrap, name, [0], 5, start="end", on_ready=produce_new)
    assert [r.value for r in got] == [b"new-%d" % i for i in range(5)]
    assert [r.offset for r in got] == list(range(10, 15))

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, request_timeout_ms=10000)
    try:
        off = c.offsets_for_times({KTP(name, 0): base + 3000})[KTP(name, 0)]
        assert off.offset == 3 and off.timestamp == base + 3000
    finally:
        c.close()
    got = kp_consume(broker.bootstrap, name, [0], 12, start=off.offset)
    assert [r.value for r in got][:3] == [b"old-3", b"old-4", b"old-5"]
    assert [r.timestamp for r in got][:3] == [base + 3000, base + 4000, base + 5000]


# --------------------------------------------------------------- 100k / 8 --
@pytest.mark.timeout(240)
def test_100k_messages_over_8_partitions_no_loss_no_duplicate(broker):
    name = create_topic(broker.bootstrap, partitions=8)
    n = 100_000
    reports = produce_all(broker.bootstrap, name,
                          ({"key": b"key-%d" % (i % 997), "value": b"%08d" % i} for i in range(n)),
                          timeout=120, acks="all", linger_ms=20, batch_num_messages=5000)
    # offsets from the acks are unique per partition and dense
    per_part = {}
    for _, m in reports:
        per_part.setdefault(m.partition(), []).append(m.offset())
    assert set(per_part) == set(range(8)), "keys did not spread over 8 partitions: %s" % sorted(per_part)
    for p, offs in per_part.items():
        assert sorted(offs) == list(range(len(offs))), "partition %d offsets not dense" % p

    got = consume_range(broker.bootstrap, name, list(range(8)), n, timeout=120)
    ids = [int(m.value()) for m in got]
    assert len(ids) == n, "got %d messages, want %d" % (len(ids), n)
    assert len(set(ids)) == n, "duplicates: %d" % (len(ids) - len(set(ids)))
    assert set(ids) == set(range(n))
    # per key, order is the produce order (same key -> same partition)
    last = {}
    for m in got:
        i = int(m.value())
        k = m.key()
        assert i > last.get(k, -1), "key %r out of order" % k
        last[k] = i
    # nothing more than n
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        assert sum(c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in range(8)) == n
    finally:
        c.close()


# -------------------------------------------------------------- idempotent --
def test_idempotent_producer_confluent(broker):
    name = create_topic(broker.bootstrap, partitions=3)
    n = 3000
    reports = produce_all(broker.bootstrap, name, [{"key": b"%d" % (i % 3), "value": b"%d" % i}
                                                   for i in range(n)],
                          enable_idempotence=True, acks="all", max_in_flight_requests_per_connection=5)
    assert all(e is None for e, _ in reports)
    got = consume_range(broker.bootstrap, name, [0, 1, 2], n)
    ids = [int(m.value()) for m in got]
    assert sorted(ids) == list(range(n))
    for p in range(3):
        vals = [int(m.value()) for m in got if m.partition() == p]
        assert vals == sorted(vals), "partition %d out of order" % p


def test_idempotent_producer_kafka_python(broker):
    name = create_topic(broker.bootstrap)
    n = 500
    metas = kp_produce(broker.bootstrap, name, [{"value": b"%d" % i} for i in range(n)],
                       enable_idempotence=True, acks="all")
    assert [m.offset for m in metas] == list(range(n))
    got = consume_range(broker.bootstrap, name, [0], n)
    assert [int(m.value()) for m in got] == list(range(n))


# ----------------------------------------------------------- size limits --
def test_message_over_max_message_bytes_is_refused_confluent(broker):
    name = create_topic(broker.bootstrap, config={"max.message.bytes": "10000"})
    # Kafka checks max.message.bytes per record batch, so the two messages
    # are produced separately: together in one batch, both would be refused.
    reports = []
    for value in (b"small", b"x" * 20000):
        reports += produce_all(broker.bootstrap, name, [{"value": value}],
                               allow_errors=True, acks="all", compression_type="none", linger_ms=0,
                               max_in_flight=1, message_timeout_ms=15000)
    by_value_len = {len(m.value()): e for e, m in reports}
    assert by_value_len[5] is None
    err = by_value_len[20000]
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    got = consume_range(broker.bootstrap, name, [0], 1)
    assert got[0].value() == b"small"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        assert c.get_watermark_offsets(TopicPartition(name, 0), timeout=10) == (0, 1)
    finally:
        c.close()


def test_message_over_max_message_bytes_is_refused_kafka_python(broker):
    from kafka.errors import MessageSizeTooLargeError
    name = create_topic(broker.bootstrap, config={"max.message.bytes": "10000"})
    p = kp_producer(broker.bootstrap, acks="all", retries=0)
    try:
        fut = p.send(name, value=b"y" * 20000)
        with pytest.raises(MessageSizeTooLargeError):
            fut.get(timeout=30)
    finally:
        p.close(timeout=10)


# ------------------------------------------------------------ unknown topic --
def test_produce_to_unknown_topic_raw_is_unknown_topic_or_partition(broker):
    """Auto-creation is off by default: Metadata and Produce for an unknown
    topic answer UNKNOWN_TOPIC_OR_PARTITION (3), and no topic appears."""
    name = unique_topic("ghost")
    with kproto.connect(broker.port) as s:
        corr, body = kproto.roundtrip(s, kproto.metadata_v1_request(11, [name]))
        assert corr == 11
        md = kproto.decode_metadata_v1(body)
        assert [(t["name"], t["error_code"]) for t in md["topics"]] == [(name, 3)]
        corr, body = kproto.roundtrip(s, kproto.produce_v3_request(12, name, 0, kproto.record_batch([b"boo"])))
        assert corr == 12
        resp = kproto.decode_produce_v3(body)
        assert [p["error_code"] for p in resp[name]] == [kproto.ERR_UNKNOWN_TOPIC_OR_PARTITION]
        corr, body = kproto.roundtrip(s, kproto.metadata_v1_request(13, None))
        assert name not in [t["name"] for t in kproto.decode_metadata_v1(body)["topics"]]


def test_produce_to_unknown_topic_confluent_fails(broker):
    name = unique_topic("ghost")
    reports = produce_all(broker.bootstrap, name, [{"value": b"boo"}], allow_errors=True,
                          message_timeout_ms=8000, topic_metadata_propagation_max_ms=1000, timeout=30)
    err = reports[0][0]
    assert err is not None and err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                              KafkaError._MSG_TIMED_OUT), err
    md = producer(broker.bootstrap).list_topics(timeout=10)
    assert name not in md.topics


def test_raw_produce_to_existing_topic(broker):
    """The hand-built Produce v3 request works against a real topic (checks
    the encoder used by the unknown-topic test)."""
    name = create_topic(broker.bootstrap)
    with kproto.connect(broker.port) as s:
        corr, body = kproto.roundtrip(s, kproto.produce_v3_request(5, name, 0, kproto.record_batch([b"a", b"b"])))
        resp = kproto.decode_produce_v3(body)
        assert resp[name][0]["error_code"] == 0 and resp[name][0]["base_offset"] == 0
    got = consume_range(broker.bootstrap, name, [0], 2)
    assert [m.value() for m in got] == [b"a", b"b"]


def test_auto_create_topics_true(broker_factory):
    b = broker_factory(["--auto-create-topics", "true"])
    name = "auto-" + uuid.uuid4().hex[:8]
    produce_all(b.bootstrap, name, [{"value": b"hello"}], acks="all", timeout=30)
    got = consume_range(b.bootstrap, name, [0], 1)
    assert got[0].value() == b"hello"
