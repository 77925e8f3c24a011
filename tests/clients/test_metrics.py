"""The admin HTTP listener (--admin-listen): Prometheus metrics and probes.

Read the way Prometheus and an orchestrator read them: /metrics parsed by
the Prometheus client library's text-format parser, /health and /ready by
plain HTTP GETs. The numbers must match what Kafka clients see.
"""
import http.client
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BrokerError, admin, consume_range, create_topic, free_port, produce_all


def _get(port, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        conn.close()


def _metrics(port):
    status, ctype, body = _get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _one(samples, name, **labels):
    found = [v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == v2
                                                                      for k, v2 in labels.items())]
    assert len(found) == 1, "%s%r: %r" % (name, labels, found)
    return found[0]


@pytest.fixture
def admin_broker(broker_factory):
    port = free_port()
    b = broker_factory(["--admin-listen", "127.0.0.1:%d" % port, "--cores", "2"])
    b.admin_port = port
    return b


def test_probes_answer_health_and_readiness(admin_broker):
    assert _get(admin_broker.admin_port, "/health")[0] == 200
    assert _get(admin_broker.admin_port, "/ready")[0:1] == (200,)
    status, _, body = _get(admin_broker.admin_port, "/ready", method="HEAD")
    assert status == 200 and body == ""
    assert _get(admin_broker.admin_port, "/nope")[0] == 404
    assert _get(admin_broker.admin_port, "/metrics", method="POST")[0] == 405


def test_partition_offsets_and_sizes_match_what_clients_see(admin_broker):
    b = admin_broker
    topic = create_topic(b.bootstrap, partitions=4)
    counts = {0: 10, 1: 0, 2: 25, 3: 7}
    produce_all(b.bootstrap, topic, [{"value": b"x" * 100, "partition": p}
                                     for p, n in counts.items() for _ in range(n)], acks="all")
    samples = _metrics(b.admin_port)
    for p, n in counts.items():
        assert _one(samples, "corelog_partition_log_end_offset", topic=topic, partition=str(p)) == n
        assert _one(samples, "corelog_partition_high_watermark", topic=topic, partition=str(p)) == n
        assert _one(samples, "corelog_partition_log_start_offset", topic=topic, partition=str(p)) == 0
        size = _one(samples, "corelog_partition_size_bytes", topic=topic, partition=str(p))
        assert (size > n * 100) if n else (size == 0), (p, size)
    # The four partitions are spread over the two shards.
    shards = {dict(ls)["shard"] for (n, ls) in samples
              if n == "corelog_partition_log_end_offset" and dict(ls)["topic"] == topic}
    assert shards == {"0", "1"}
    assert _one(samples, "corelog_shards") == 2
    assert _one(samples, "corelog_ready") == 1
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 1 << 20
    assert 0 < samples[("process_open_fds", ())] <= samples[("process_max_fds", ())]
    assert _one(samples, "corelog_batch_cache_bytes_max", shard="0") > 0


def test_connections_are_counted_per_shard(admin_broker):
    b = admin_broker
    socks = [socket.create_connection(("127.0.0.1", b.port)) for _ in range(6)]
    try:
        deadline = time.monotonic() + 10
        while True:
            samples = _metrics(b.admin_port)
            total = sum(v for (n, _), v in samples.items() if n == "corelog_connections")
            if total >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert total >= 6, samples
    finally:
        for s in socks:
            s.close()


def test_bad_admin_requests_are_refused_and_the_broker_goes_on(admin_broker):
    b = admin_broker
    # A head larger than the bound: 431, connection closed.
    s = socket.create_connection(("127.0.0.1", b.admin_port), timeout=10)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n")
        reply = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:80]
    except (ConnectionResetError, BrokenPipeError):
        pass  # the broker may close before it has read everything sent
    finally:
        s.close()
    # Garbage: closed or 400, never a crash.
    s = socket.create_connection(("127.0.0.1", b.admin_port), timeout=10)
    s.sendall(b"\x16\x03\x01\x00\xff\r\n\r\n")
    s.recv(4096)
    s.close()
    assert _get(b.admin_port, "/health")[0] == 200
    assert b.alive()


def test_an_admin_port_in_use_stops_the_start_with_its_reason(admin_broker, broker_factory):
    with pytest.raises(BrokerError) as ei:
        broker_factory(["--admin-listen", "127.0.0.1:%d" % admin_broker.admin_port])
    assert "admin_listen on 127.0.0.1:%d" % admin_broker.admin_port in str(ei.value), ei.value
    assert admin_broker.alive()


def _conversions(samples, direction):
    return sum(v for (n, ls), v in samples.items()
               if n == "corelog_message_format_conversions_total" and dict(ls)["direction"] == direction)


def test_message_format_conversions_are_counted_for_old_clients_only(admin_broker):
    """Produce v0-2 and Fetch v0-3 convert message formats (issue 21): the
    shards count each conversion, and a current client's traffic adds none."""
    pytest.importorskip("kafka")
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    b = admin_broker
    topic = create_topic(b.bootstrap)
    produce_all(b.bootstrap, topic, [{"value": b"current"}], acks="all")
    before = _metrics(b.admin_port)
    assert _conversions(before, "up") == 0 and _conversions(before, "down") == 0

    p = KafkaProducer(bootstrap_servers=b.bootstrap, api_version=(0, 10, 0), acks="all")
    p.send(topic, value=b"old").get(timeout=30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, api_version=(0, 10, 0), enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200).values():
            got.extend(r.value for r in records)
    c.close()
    assert got == [b"current", b"old"]
    after = _metrics(b.admin_port)
    assert _conversions(after, "up") == 1
    assert _conversions(after, "down") >= 1
    assert sum(v for (n, ls), v in after.items()
               if n == "corelog_message_format_conversion_bytes_total" and dict(ls)["direction"] == "up") > 0


def _sum(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == v2 for k, v2 in labels.items()))


def test_requests_traffic_syncs_and_group_lag_follow_what_clients_did(admin_broker):
    """Per-api request counts, errors and durations; bytes and records in and
    out per partition; durable writes; a group's committed offsets and lag:
    each checked against what the test's clients did."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import NewTopic
    b = admin_broker
    topic = create_topic(b.bootstrap, partitions=2)
    produce_all(b.bootstrap, topic, [{"value": b"v" * 100, "partition": p}
                                     for p, n in ((0, 30), (1, 20)) for _ in range(n)], acks="all")
    # Read everything back: bytes out.
    out = consume_range(b.bootstrap, topic, [0, 1], 50)
    assert len(out) == 50
    # An error the broker answers with a code: the topic exists.
    fs = admin(b.bootstrap).create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                                          request_timeout=15)
    with pytest.raises(Exception) as ei:
        fs[topic].result(timeout=15)
    assert "TOPIC_ALREADY_EXISTS" in str(ei.value), ei.value
    # A group commits offsets 10 and 5 without consuming.
    group = "lag-" + topic
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 10), TopicPartition(topic, 1, 5)], asynchronous=False)
    finally:
        c.close()

    samples = _metrics(b.admin_port)
    # Records and bytes in, per partition, summed over the shards.
    assert _one(samples, "corelog_partition_records_in_total", topic=topic, partition="0") == 30
    assert _one(samples, "corelog_partition_records_in_total", topic=topic, partition="1") == 20
    assert _one(samples, "corelog_partition_bytes_in_total", topic=topic, partition="0") > 30 * 100
    bytes_out = _sum(samples, "corelog_partition_bytes_out_total", topic=topic)
    assert bytes_out > 50 * 100, bytes_out
    # Requests: counted per shard and api; the histogram's count is the
    # request count and its buckets never decrease.
    produces = _sum(samples, "corelog_requests_total", api="Produce")
    assert produces >= 1
    assert _sum(samples, "corelog_request_duration_seconds_count", api="Produce") == produces
    for shard in ("0", "1"):
        buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in samples.items()
                          if n == "corelog_request_duration_seconds_bucket"
                          and dict(ls)["api"] == "Metadata" and dict(ls)["shard"] == shard),
                         key=lambda x: x[0])
        if buckets:
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), buckets
            assert buckets[-1][0] == float("inf")
    assert _sum(samples, "corelog_request_errors_total", api="CreateTopics",
                error="TOPIC_ALREADY_EXISTS") == 1
    assert _sum(samples, "corelog_request_errors_total", api="Produce") == 0
    # acks=all: the appends were made durable, in writes the shards timed.
    assert _sum(samples, "corelog_log_sync_duration_seconds_count") >= 1
    assert _sum(samples, "corelog_log_synced_bytes_total") > 50 * 100
    assert _sum(samples, "corelog_batch_cache_hits_total") + _sum(samples, "corelog_batch_cache_misses_total") >= 1
    # The group's lag: high watermark less committed offset.
    assert _one(samples, "corelog_group_committed_offset", group=group, topic=topic, partition="0") == 10
    assert _one(samples, "corelog_group_lag", group=group, topic=topic, partition="0") == 20
    assert _one(samples, "corelog_group_lag", group=group, topic=topic, partition="1") == 15
    # The benchmark's CPU per message, derived from the metrics alone.
    records_in = _sum(samples, "corelog_partition_records_in_total")
    assert records_in >= 50 and samples[("process_cpu_seconds_total", ())] / records_in > 0


def test_promtool_accepts_the_exposition_and_prometheus_scrapes_it(admin_broker, tmp_path):
    """Debian's promtool lints /metrics, and a real Prometheus server scrapes
    the broker: a query returns the records the test produced."""
    import json
    import shutil
    import subprocess
    import urllib.parse
    import urllib.request
    from conftest import require_or_skip
    require_or_skip(shutil.which("promtool") and shutil.which("prometheus"),
                    "Prometheus (Debian package prometheus)")
    b = admin_broker
    topic = create_topic(b.bootstrap, partitions=3)
    produce_all(b.bootstrap, topic, [{"value": b"p%d" % i, "partition": i % 3} for i in range(42)], acks="all")
    _, _, body = _get(b.admin_port, "/metrics")
    check = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), capture_output=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      "scrape_configs:\n  - job_name: corelog\n    static_configs:\n"
                      "      - targets: ['127.0.0.1:%d']\n" % b.admin_port)
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(["prometheus", "--config.file=%s" % config,
                             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT)
    def ask(query):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(query))
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)

    query = 'sum(corelog_partition_records_in_total{topic="%s"})' % topic
    value, answer, dashboard = None, None, {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = ask(query)
                result = answer["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                    if value == 42:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        # The shipped Grafana dashboard's queries, with its variables set as
        # Grafana would: each is valid PromQL, every metric it names is in
        # the exposition, and the server answers it.
        for expr in _dashboard_queries():
            dashboard[expr] = ask(expr.replace("$__rate_interval", "1m").replace("$job", ".*"))
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
    assert value == 42, (answer, (tmp_path / "prometheus.log").read_text()[-2000:])
    assert len(dashboard) >= 10
    for expr, answer in dashboard.items():
        assert answer["status"] == "success", (expr, answer)
    typed = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")}
    import re
    for expr in dashboard:
        for name in re.findall(r"\b((?:corelog|process)_[a-z_]+)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
            assert base in typed, "the dashboard's %s is not in /metrics" % name


def _dashboard_queries():
    import json
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "broker", "corelog", "dashboards",
                        "grafana-corelog.json")
    with open(path) as f:
        dashboard = json.load(f)
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
