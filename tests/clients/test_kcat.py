"""kcat (Debian's, librdkafka 2.0.2): metadata listing, produce with keys and
headers, consume from the beginning."""
import json
import shutil
import subprocess

import pytest

from conftest import NODE_ID, consume_range, create_topic, require_or_skip

KCAT_TIMEOUT = 60


@pytest.fixture
def kcat():
    path = shutil.which("kcat")
    require_or_skip(path is not None, "kcat")
    return path


def run_kcat(kcat, args, stdin=None):
    r = subprocess.run([kcat] + args, input=stdin, capture_output=True, timeout=KCAT_TIMEOUT)
    assert r.returncode == 0, "kcat %s exited %d\nstdout: %s\nstderr: %s" % (
        " ".join(args), r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    return r


def test_kcat_metadata_lists_broker_and_topics(broker, kcat):
    t1 = create_topic(broker.bootstrap, partitions=1)
    t3 = create_topic(broker.bootstrap, partitions=3)
    out = run_kcat(kcat, ["-b", broker.bootstrap, "-L"]).stdout.decode()
    assert "1 brokers:" in out, out
    assert "broker %d at 127.0.0.1:%d" % (NODE_ID, broker.port) in out, out
    assert 'topic "%s" with 1 partitions:' % t1 in out, out
    assert 'topic "%s" with 3 partitions:' % t3 in out, out

    md = json.loads(run_kcat(kcat, ["-b", broker.bootstrap, "-L", "-J"]).stdout)
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(NODE_ID, "127.0.0.1:%d" % broker.port)]
    topics = {t["topic"]: t for t in md["topics"]}
    assert len(topics[t3]["partitions"]) == 3
    for p in topics[t3]["partitions"]:
        assert p["leader"] == NODE_ID and [r["id"] for r in p["replicas"]] == [NODE_ID]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_keys_then_consume(broker, kcat, codec):
    name = create_topic(broker.bootstrap)
    lines = ["key%d:value number %d" % (i, i) for i in range(100)]
    run_kcat(kcat, ["-b", broker.bootstrap, "-P", "-t", name, "-K:", "-z", codec, "-X", "acks=all"],
             stdin=("\n".join(lines) + "\n").encode())
    r = run_kcat(kcat, ["-b", broker.bootstrap, "-C", "-t", name, "-e", "-o", "beginning", "-f", "%k:%s\n"])
    assert r.stdout.decode().splitlines() == lines
    # and a Python client sees the same keys and values
    got = consume_range(broker.bootstrap, name, [0], 100)
    assert ["%s:%s" % (m.key().decode(), m.value().decode()) for m in got] == lines


def test_kcat_headers_partitions_and_offsets(broker, kcat):
    name = create_topic(broker.bootstrap, partitions=2)
    run_kcat(kcat, ["-b", broker.bootstrap, "-P", "-t", name, "-p", "1", "-H", "trace=abc", "-H", "n=1"],
             stdin=b"one\ntwo\nthree\n")
    r = run_kcat(kcat, ["-b", broker.bootstrap, "-C", "-t", name, "-p", "1", "-e", "-o", "beginning",
                        "-f", "%p|%o|%h|%s\n"])
    assert r.stdout.decode().splitlines() == ["1|0|trace=abc,n=1|one", "1|1|trace=abc,n=1|two",
                                              "1|2|trace=abc,n=1|three"]
    # -o 1: from an absolute offset; partition 0 is empty
    r = run_kcat(kcat, ["-b", broker.bootstrap, "-C", "-t", name, "-p", "1", "-e", "-o", "1", "-f", "%s\n"])
    assert r.stdout.decode().splitlines() == ["two", "three"]
    r = run_kcat(kcat, ["-b", broker.bootstrap, "-C", "-t", name, "-p", "0", "-e", "-o", "beginning"])
    assert r.stdout == b""
