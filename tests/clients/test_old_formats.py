"""Message formats v0 and v1 (issue 21): Produce v0-2 and Fetch v0-3 from
real clients. kafka-python 3, pinned with `api_version` to Kafka 0.8.2, 0.9,
0.10.0 and 0.10.1, sends Produce v0, v1, v2, v2 and Fetch v0, v1, v2, v3
with message sets of magic 0 (0.8.2, 0.9) or 1 (0.10); the broker converts
them to record batches on append and back for the fetch. Records written by
an old producer are read by a current consumer and the other way round.

kafka-go 0.2.1 (Produce v2 and Fetch v2 only) is tested in
`test_go_clients.py`; the conversions themselves in
`broker/storage/src/legacy.rs` and `broker/server/tests/legacy_formats.rs`.
"""
import time

import pytest

from conftest import create_topic, unique_topic

PRODUCE, FETCH = 0, 1

# (api_version, the Produce and Fetch versions kafka-python sends with it,
# the codecs it may use there). Magic-0 LZ4 needs the xxhash module on the
# client side (kafka-python writes Kafka's old descriptor checksum with it),
# which the suite does not install; the broker side is tested in legacy.rs.
PINNED = [
    ((0, 8, 2), 0, 0, [None, "gzip", "snappy"]),
    ((0, 9), 1, 1, [None, "gzip", "snappy"]),
    ((0, 10, 0), 2, 2, [None, "gzip", "snappy", "lz4"]),
    ((0, 10, 1), 2, 3, [None, "lz4"]),
]


def _record_versions(manager, sent):
    """Wraps a kafka-python 3 connection manager's send to keep each
    request; its connection sets the version it is sent at
    (`API_VERSION`) on it."""
    send = manager.send

    def recording(request, *args, **kwargs):
        sent.append(request)
        return send(request, *args, **kwargs)

    manager.send = recording


def _versions(sent):
    return {(r.API_KEY, r.API_VERSION) for r in sent}


def _read(bootstrap, topic, count, api_version=None, sent=None):
    from kafka import KafkaConsumer, TopicPartition
    conf = {} if api_version is None else {"api_version": api_version}
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **conf)
    if sent is not None:
        _record_versions(c._client._manager, sent)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200).values():
            got.extend(records)
    c.close()
    return got


@pytest.mark.timeout(240)
@pytest.mark.parametrize("api_version,produce_v,fetch_v,codecs", PINNED,
                         ids=[".".join(map(str, p[0])) for p in PINNED])
def test_kafka_python_pinned_to_an_old_kafka_writes_and_reads_every_codec(broker, api_version, produce_v,
                                                                          fetch_v, codecs):
    pytest.importorskip("kafka")
    from kafka import KafkaProducer
    for codec in codecs:
        topic = create_topic(broker.bootstrap)
        sent = []
        p = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=api_version, compression_type=codec,
                          acks="all", linger_ms=20)
        _record_versions(p._sender._client._manager, sent)
        before = int(time.time() * 1000)
        for i in range(30):
            # Messages of format v1 carry their own time; half carry one
            # given here.
            ts = 1_600_000_000_000 + i if i % 2 == 0 else None
            p.send(topic, key=b"k%d" % i, value=b"v%d-" % i * (1 + i % 5), timestamp_ms=ts)
        p.flush(timeout=30)
        p.close()
        assert (PRODUCE, produce_v) in _versions(sent), (codec, _versions(sent))

        sent = []
        got = _read(broker.bootstrap, topic, 30, api_version, sent)
        assert (FETCH, fetch_v) in _versions(sent), (codec, _versions(sent))
        assert [(m.offset, m.key, m.value) for m in got] == \
            [(i, b"k%d" % i, b"v%d-" % i * (1 + i % 5)) for i in range(30)], codec
        for i, m in enumerate(got):
            if produce_v < 2:
                # Format v0 has no time: the broker stamped its append time,
                # which a v0 reader does not see either.
                assert m.timestamp is None or m.timestamp == -1, (codec, m)
            elif i % 2 == 0:
                assert m.timestamp == 1_600_000_000_000 + i, (codec, m)
            else:
                assert before - 60_000 <= m.timestamp <= int(time.time() * 1000) + 60_000, (codec, m)

        # A current consumer reads the converted batches.
        current = _read(broker.bootstrap, topic, 30)
        assert [m.value for m in current] == [m.value for m in got], codec
    assert "unsupported api version" not in broker.stderr_tail(500)


@pytest.mark.timeout(120)
def test_an_old_consumer_reads_what_a_current_producer_wrote(broker):
    pytest.importorskip("kafka")
    from kafka import KafkaProducer
    topic = create_topic(broker.bootstrap)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type="zstd", acks="all")
    for i in range(12):
        p.send(topic, key=b"k%d" % i, value=b"v%d" % i, timestamp_ms=1_700_000_000_000 + i,
               headers=[("h", b"dropped for old readers")])
    p.flush(timeout=30)
    p.close()
    for api_version, magic_has_time in (((0, 9), False), ((0, 10, 1), True)):
        got = _read(broker.bootstrap, topic, 12, api_version)
        assert [(m.offset, m.key, m.value) for m in got] == [(i, b"k%d" % i, b"v%d" % i) for i in range(12)]
        if magic_has_time:
            assert [m.timestamp for m in got] == [1_700_000_000_000 + i for i in range(12)]
