"""`--listener-mode shard-direct`: each shard is a broker of its own.

In this mode shard s also listens on the listen port + 1 + s and Metadata
describes it as node 1 + s, leader of the partitions it owns; FindCoordinator
names the shard that owns a group's offsets partition. Kafka clients route
each partition's requests to its leader, so they reach the owning shard with
no cross-core hop. These tests check that real clients (librdkafka through
confluent-kafka and kcat, kafka-python) produce, consume and run a consumer
group in this mode, and that they do connect to the shards' own ports.
"""
import json
import socket
import shutil
import subprocess
import time
import uuid

import pytest

import brokerproc
import conftest

from conftest import NODE_ID, consume_range, create_topic, produce_all, require_or_skip

SHARDS = 2
PARTITIONS = 8
NODES = tuple(NODE_ID + s for s in range(SHARDS))


def _free_port_run(count=SHARDS + 1, tries=200):
    """A port p of loopback such that p .. p + count - 1 are all free now:
    the shared listener and every shard's own port. A port picked alone
    can have its successors held by some client's ephemeral port."""
    for _ in range(tries):
        base = brokerproc.free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("found no run of %d free loopback ports" % count)


def _make(broker_factory, monkeypatch):
    """A 2-shard broker in shard-direct mode, on a port whose shard ports
    (port + 1, port + 2) were free a moment before."""
    monkeypatch.setattr(conftest, "free_port", _free_port_run)
    return broker_factory(["--cores", str(SHARDS), "--listener-mode", "shard-direct"])


def established_ports(ports):
    """Local ports of ESTABLISHED loopback TCP connections, from
    /proc/net/tcp: {local_port: count}."""
    counts = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "01":  # TCP_ESTABLISHED
                continue
            port = int(local.split(":")[1], 16)
            if port in ports:
                counts[port] = counts.get(port, 0) + 1
    return counts


def shard_ports(b):
    return [b.port + 1 + s for s in range(SHARDS)]


def test_metadata_describes_one_broker_per_shard_leading_its_partitions(broker_factory, monkeypatch):
    b = _make(broker_factory, monkeypatch)
    assert b.ready["brokers"] == ["127.0.0.1:%d" % p for p in shard_ports(b)]
    topic = create_topic(b.bootstrap, partitions=PARTITIONS, leaders=NODES)
    from conftest import admin
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert sorted((n.id, n.host, n.port) for n in md.brokers.values()) == \
        [(NODE_ID + s, "127.0.0.1", p) for s, p in enumerate(shard_ports(b))]
    assert md.controller_id == NODE_ID
    leaders = {p.id: p.leader for p in md.topics[topic].partitions.values()}
    # New partitions are spread over the shards, so both shards lead some.
    assert set(leaders.values()) == set(NODES), leaders
    for p in md.topics[topic].partitions.values():
        assert p.replicas == [p.leader] and p.isrs == [p.leader]


def test_confluent_producer_and_group_consumer_use_the_shard_ports(broker_factory, monkeypatch):
    from confluent_kafka import Consumer
    b = _make(broker_factory, monkeypatch)
    topic = create_topic(b.bootstrap, partitions=PARTITIONS, leaders=NODES)
    n = 4000
    produce_all(b.bootstrap, topic, ({"key": b"k%d" % i, "value": b"v%d" % i} for i in range(n)),
                acks="all")
    group = "sd-" + uuid.uuid4().hex[:8]
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 60
    try:
        while len(seen) < n and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                seen.add(m.value())
        # The consumer's fetches and its group's requests went to the shard
        # ports while the bootstrap connection, if still open, idles.
        used = established_ports(set(shard_ports(b)))
        assert set(used) == set(shard_ports(b)), used
        c.commit(asynchronous=False)
        committed = c.committed(c.assignment(), timeout=10)
        assert sum(tp.offset for tp in committed) == n
    finally:
        c.close()
    assert seen == {b"v%d" % i for i in range(n)}


def test_kcat_produces_and_consumes_in_shard_direct_mode(broker_factory, monkeypatch):
    kcat = shutil.which("kcat")
    require_or_skip(kcat is not None, "kcat")
    b = _make(broker_factory, monkeypatch)
    topic = create_topic(b.bootstrap, partitions=PARTITIONS, leaders=NODES)
    lines = b"".join(b"key%d:value%d\n" % (i, i) for i in range(500))
    r = subprocess.run([kcat, "-b", b.bootstrap, "-P", "-t", topic, "-K:", "-X", "acks=all"],
                       input=lines, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    md = json.loads(subprocess.run([kcat, "-b", b.bootstrap, "-L", "-J"], capture_output=True,
                                   timeout=60).stdout)
    assert sorted(br["id"] for br in md["brokers"]) == list(NODES)
    got = consume_range(b.bootstrap, topic, range(PARTITIONS), 500)
    assert sorted(m.value() for m in got) == sorted(b"value%d" % i for i in range(500))


def test_kafka_python_produces_and_consumes_in_shard_direct_mode(broker_factory, monkeypatch):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    b = _make(broker_factory, monkeypatch)
    topic = create_topic(b.bootstrap, partitions=PARTITIONS, leaders=NODES)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=5, request_timeout_ms=15000,
                      bootstrap_timeout_ms=15000)
    try:
        futs = [p.send(topic, key=b"k%d" % i, value=b"kp%d" % i) for i in range(800)]
        p.flush(timeout=30)
        parts = {f.get(timeout=30).partition for f in futs}
    finally:
        p.close(timeout=10)
    assert len(parts) > 1
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", bootstrap_timeout_ms=15000,
                      request_timeout_ms=20000, fetch_max_wait_ms=100)
    try:
        c.assign([TopicPartition(topic, i) for i in range(PARTITIONS)])
        c.seek_to_beginning()
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 800 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                got.extend(r.value for r in recs)
    finally:
        c.close()
    assert sorted(got) == sorted(b"kp%d" % i for i in range(800))


def test_a_request_on_another_shards_port_is_still_served(broker_factory, monkeypatch):
    """A client with stale metadata may send a partition's request to the
    wrong shard: it is forwarded, not refused."""
    import kproto as kp
    b = _make(broker_factory, monkeypatch)
    topic = create_topic(b.bootstrap, partitions=PARTITIONS, leaders=NODES)
    for port in shard_ports(b):
        with kp.connect(port) as s:
            for p in range(PARTITIONS):
                req = kp.produce_v3_request(p, topic, p, kp.record_batch([b"via-%d" % port]))
                cid, body = kp.roundtrip(s, req)
                assert cid == p
                [part] = kp.decode_produce_v3(body)[topic]
                assert (part["partition"], part["error_code"]) == (p, 0), part


def test_a_shard_port_in_use_stops_the_broker_with_a_message(tmp_path):
    """A shard that cannot bind its own port must not leave the others
    waiting for it: the broker exits at once, naming the port."""
    import subprocess
    base = _free_port_run()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", base + 2))  # shard 1's own port
        holder.listen(1)
        r = subprocess.run([str(brokerproc.corelog_bin()), "serve", "--data-dir", str(tmp_path / "data"),
                            "--listen", "127.0.0.1:%d" % base, "--cores", str(SHARDS),
                            "--listener-mode", "shard-direct"],
                           capture_output=True, timeout=30)
    finally:
        holder.close()
    assert r.returncode != 0
    assert b"127.0.0.1:%d (shard 1's own port)" % (base + 2) in r.stderr, r.stderr[-2000:]
