"""Request versions Kafka 4.0 removed (KIP-896) that old clients still send
(issue 21): OffsetCommit v0-1, OffsetFetch v0, DescribeConfigs v0,
CreateTopics v0-1, DeleteTopics v0, ListOffsets v0 and DescribeLogDirs v0,
served through kafka-protocol 0.15.1 (broker/protocol/src/legacy.rs).

Raw frames over a real socket for each newly served version (round trip,
truncated frames, inflated counts), the log line for an unsupported
version, and kafka-python 2.3.3 (in a pytest of its own,
kafka_python_2_old_versions.py, since the suite runs kafka-python 3) with
`api_version=(0, 8, 2)` (OffsetCommit v1,
OffsetFetch v1) and `(0, 8, 1)` (OffsetCommit v0, OffsetFetch v0), whose
commits survive a consumer restart and are what a current client reads, and
its admin client with `(0, 10, 1)` (CreateTopics v0, DeleteTopics v0) and
`(0, 10, 2)` (CreateTopics v1), and its consumer pinned to Kafka 0.9 (ListOffsets
v0) finding a partition's ends.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import create_topic, unique_topic
from kproto import (api_versions, api_versions_request_at, array, connect, frame, i8, i16, i32, i64,
                    recv_frame, request_header_v1, roundtrip, string, wait_closed_or_response)

OFFSET_COMMIT = 8
OFFSET_FETCH = 9
DESCRIBE_CONFIGS = 32
CREATE_TOPICS = 19
LIST_OFFSETS = 2
DESCRIBE_LOG_DIRS = 35
DELETE_TOPICS = 20
ERR_TOPIC_ALREADY_EXISTS = 36
ERR_INVALID_PARTITIONS = 37
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
CONFIG_RESOURCE_TOPIC = 2


# ------------------------------------------------------------------ frames --
def offset_commit_v0(corr, group, topic, offsets):
    """offsets: [(partition, offset, metadata)]"""
    body = string(group) + array([
        string(topic) + array([i32(p) + i64(o) + string(m) for p, o, m in offsets])])
    return frame(request_header_v1(OFFSET_COMMIT, 0, corr) + body)


def offset_commit_v1(corr, group, topic, offsets, generation=-1, member="", timestamp=-1):
    body = string(group) + i32(generation) + string(member) + array([
        string(topic) + array([i32(p) + i64(o) + i64(timestamp) + string(m) for p, o, m in offsets])])
    return frame(request_header_v1(OFFSET_COMMIT, 1, corr) + body)


def offset_fetch_v0(corr, group, topic, partitions):
    body = string(group) + array([string(topic) + array([i32(p) for p in partitions])])
    return frame(request_header_v1(OFFSET_FETCH, 0, corr) + body)


def describe_configs_v0(corr, resources):
    """resources: [(type, name, keys or None)]"""
    body = array([i8(t) + string(n) + array(None if keys is None else [string(k) for k in keys])
                  for t, n, keys in resources])
    return frame(request_header_v1(DESCRIBE_CONFIGS, 0, corr) + body)


def create_topics_v0_v1(corr, version, topics, timeout_ms=10000, validate_only=False):
    """topics: [(name, partitions, replication_factor, assignments, configs)]
    with assignments [(partition, [broker ids])] and configs [(name, value)]."""
    body = array([string(name) + i32(n) + i16(rf)
                  + array([i32(p) + array([i32(b) for b in brokers]) for p, brokers in assignments])
                  + array([string(k) + string(v) for k, v in configs])
                  for name, n, rf, assignments, configs in topics]) + i32(timeout_ms)
    if version >= 1:
        body += i8(1 if validate_only else 0)
    return frame(request_header_v1(CREATE_TOPICS, version, corr) + body)


def delete_topics_v0(corr, names, timeout_ms=10000):
    body = array([string(n) for n in names]) + i32(timeout_ms)
    return frame(request_header_v1(DELETE_TOPICS, 0, corr) + body)


def decode_create_topics_v0_v1(body, version):
    """-> {name: (error_code, error_message or None)}; v0 has no message."""
    def result(r):
        name, code = r.string(), r.i16()
        return name, (code, r.string() if version >= 1 else None)

    results = body.array(result)
    assert body.remaining() == 0
    return dict(results)


def decode_delete_topics_v0(body):
    results = body.array(lambda r: (r.string(), r.i16()))
    assert body.remaining() == 0
    return dict(results)


def list_offsets_v0(corr, topic, queries):
    """queries: [(partition, timestamp, max_num_offsets)]"""
    body = i32(-1) + array([string(topic) + array([i32(p) + i64(ts) + i32(n) for p, ts, n in queries])])
    return frame(request_header_v1(LIST_OFFSETS, 0, corr) + body)


def decode_list_offsets_v0(body):
    """-> {partition: (error_code, [offsets])} for the one topic asked."""
    def part(r):
        return r.i32(), (r.i16(), r.array(lambda q: q.i64()))

    [(name, parts)] = body.array(lambda r: (r.string(), r.array(part)))
    assert body.remaining() == 0
    return dict(parts)


def describe_log_dirs_v0(corr, topics):
    """topics: [(name, [partitions])] or None for all."""
    body = array(None if topics is None else [string(t) + array([i32(p) for p in ps]) for t, ps in topics])
    return frame(request_header_v1(DESCRIBE_LOG_DIRS, 0, corr) + body)


def decode_describe_log_dirs_v0(body):
    """-> [(error_code, log_dir, {topic: {partition: size}})]"""
    assert body.i32() >= 0  # throttle

    def topic(r):
        name = r.string()
        parts = r.array(lambda q: (q.i32(), q.i64(), q.i64(), q.i8()))
        return name, {p: size for p, size, _lag, _future in parts}

    results = body.array(lambda r: (r.i16(), r.string(), dict(r.array(topic))))
    assert body.remaining() == 0
    return results


def decode_offset_commit_v0(body):
    topics = body.array(lambda r: (r.string(), r.array(lambda q: (q.i32(), q.i16()))))
    assert body.remaining() == 0
    return {name: dict(parts) for name, parts in topics}


def decode_offset_fetch_v0(body):
    def part(r):
        return r.i32(), (r.i64(), r.string(), r.i16())

    topics = body.array(lambda r: (r.string(), r.array(part)))
    assert body.remaining() == 0
    return {name: dict(parts) for name, parts in topics}


def decode_describe_configs_v0(body):
    throttle = body.i32()
    assert throttle >= 0

    def config(r):
        return r.string(), {"value": r.string(), "read_only": r.i8() != 0,
                            "is_default": r.i8() != 0, "is_sensitive": r.i8() != 0}

    def result(r):
        return {"error_code": r.i16(), "error_message": r.string(), "type": r.i8(),
                "name": r.string(), "configs": dict(r.array(config))}

    results = body.array(result)
    assert body.remaining() == 0
    return results


def call(sock, request, corr):
    got, body = roundtrip(sock, request)
    assert got == corr
    return body


def broker_alive(b):
    err, versions = api_versions(b.port)
    assert err == 0 and versions


# ------------------------------------------------------------------- tests --
def test_api_versions_advertises_the_old_versions(broker):
    err, versions = api_versions(broker.port)
    assert err == 0
    assert versions[OFFSET_COMMIT] == (0, 9)
    assert versions[OFFSET_FETCH] == (0, 9)
    assert versions[DESCRIBE_CONFIGS] == (0, 4)
    assert versions[CREATE_TOPICS] == (0, 7)
    assert versions[LIST_OFFSETS] == (0, 7)
    assert versions[DESCRIBE_LOG_DIRS] == (0, 4)
    assert versions[DELETE_TOPICS] == (0, 6)


def test_offset_commit_v0_v1_and_offset_fetch_v0_round_trip(broker):
    topic = create_topic(broker.bootstrap, partitions=2)
    group = unique_topic("g")
    with connect(broker.port) as s:
        # v0: Kafka's simple commit, no generation.
        body = call(s, offset_commit_v0(11, group, topic, [(0, 42, "m0"), (1, 7, None)]), 11)
        assert decode_offset_commit_v0(body) == {topic: {0: 0, 1: 0}}
        body = call(s, offset_fetch_v0(12, group, topic, [0, 1]), 12)
        got = decode_offset_fetch_v0(body)[topic]
        assert got[0] == (42, "m0", 0)
        assert got[1][0] == 7 and got[1][2] == 0
        # v1: generation -1 and no member, a commit timestamp: also simple.
        body = call(s, offset_commit_v1(13, group, topic, [(0, 43, "m1")], timestamp=1234), 13)
        assert decode_offset_commit_v0(body) == {topic: {0: 0}}
        body = call(s, offset_fetch_v0(14, group, topic, [0]), 14)
        assert decode_offset_fetch_v0(body)[topic][0] == (43, "m1", 0)
        # Unknown partition: the error code, the connection stays open.
        body = call(s, offset_commit_v1(15, group, topic, [(9, 1, "")]), 15)
        assert decode_offset_commit_v0(body) == {topic: {9: ERR_UNKNOWN_TOPIC_OR_PARTITION}}
        # A generation the group does not have: refused, nothing stored.
        body = call(s, offset_commit_v1(16, group, topic, [(0, 99, "")], generation=5, member="m"), 16)
        assert decode_offset_commit_v0(body)[topic][0] != 0
        body = call(s, offset_fetch_v0(17, group, topic, [0]), 17)
        assert decode_offset_fetch_v0(body)[topic][0][0] == 43
        # An uncommitted group: offset -1, as v0-1 report it.
        body = call(s, offset_fetch_v0(18, unique_topic("g"), topic, [0]), 18)
        assert decode_offset_fetch_v0(body)[topic][0][0] == -1


def test_describe_configs_v0(broker):
    topic = create_topic(broker.bootstrap, config={"retention.ms": "123456"})
    with connect(broker.port) as s:
        body = call(s, describe_configs_v0(21, [(CONFIG_RESOURCE_TOPIC, topic, None)]), 21)
        [result] = decode_describe_configs_v0(body)
        assert result["error_code"] == 0 and result["name"] == topic
        configs = result["configs"]
        assert configs["retention.ms"]["value"] == "123456"
        assert configs["retention.ms"]["is_default"] is False
        assert configs["cleanup.policy"]["is_default"] is True
        body = call(s, describe_configs_v0(22, [(CONFIG_RESOURCE_TOPIC, topic, ["retention.ms"]),
                                                (CONFIG_RESOURCE_TOPIC, "no-such-topic", None)]), 22)
        first, second = decode_describe_configs_v0(body)
        assert list(first["configs"]) == ["retention.ms"]
        assert second["error_code"] == ERR_UNKNOWN_TOPIC_OR_PARTITION


def _partitions(bootstrap, topic):
    """The topic's partition count from a current client's Metadata, or None."""
    from conftest import admin
    md = admin(bootstrap).list_topics(topic=topic, timeout=10)
    t = md.topics.get(topic)
    return None if t is None or t.error is not None else len(t.partitions)


def test_create_topics_v0_v1_and_delete_topics_v0_round_trip(broker):
    a, b, c = unique_topic("old-a"), unique_topic("old-b"), unique_topic("old-c")
    with connect(broker.port) as s:
        # v0: a count, and explicit assignments with a config.
        body = call(s, create_topics_v0_v1(61, 0, [(a, 3, 1, [], []),
                                                   (b, -1, -1, [(0, [1]), (1, [1])],
                                                    [("retention.ms", "60000")])]), 61)
        assert decode_create_topics_v0_v1(body, 0) == {a: (0, None), b: (0, None)}
        # Again: TOPIC_ALREADY_EXISTS, the code a v0 client knows.
        body = call(s, create_topics_v0_v1(62, 0, [(a, 3, 1, [], [])]), 62)
        assert decode_create_topics_v0_v1(body, 0)[a][0] == ERR_TOPIC_ALREADY_EXISTS
        # v1: validate_only creates nothing; a bad count has its message.
        body = call(s, create_topics_v0_v1(63, 1, [(c, 2, 1, [], [])], validate_only=True), 63)
        assert decode_create_topics_v0_v1(body, 1) == {c: (0, None)}
        body = call(s, create_topics_v0_v1(64, 1, [(c, 0, 1, [], [])]), 64)
        code, message = decode_create_topics_v0_v1(body, 1)[c]
        assert code == ERR_INVALID_PARTITIONS and message, (code, message)
    assert _partitions(broker.bootstrap, a) == 3
    assert _partitions(broker.bootstrap, b) == 2
    assert _partitions(broker.bootstrap, c) is None
    with connect(broker.port) as s:
        body = call(s, delete_topics_v0(65, [a, "no-such-topic-" + a]), 65)
        assert decode_delete_topics_v0(body) == {a: 0, "no-such-topic-" + a: ERR_UNKNOWN_TOPIC_OR_PARTITION}
    deadline = time.monotonic() + 10
    while _partitions(broker.bootstrap, a) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _partitions(broker.bootstrap, a) is None
    assert _partitions(broker.bootstrap, b) == 2


def test_list_offsets_v0_and_describe_log_dirs_v0(broker):
    from conftest import produce_all
    topic = create_topic(broker.bootstrap, partitions=2)
    produce_all(broker.bootstrap, topic, [{"value": b"v%d" % i, "partition": 0} for i in range(5)], acks="all")
    with connect(broker.port) as s:
        body = call(s, list_offsets_v0(71, topic, [(0, -1, 1), (0, -2, 1), (1, -1, 1), (7, -1, 1)]), 71)
        got = decode_list_offsets_v0(body)
        # One answer per partition asked; the last query for partition 0
        # (earliest) is the one answered, as Kafka keys answers by partition.
        assert got[1] == (0, [0])
        assert got[7][0] == ERR_UNKNOWN_TOPIC_OR_PARTITION and got[7][1] == []
        body = call(s, list_offsets_v0(72, topic, [(0, -1, 1)]), 72)
        assert decode_list_offsets_v0(body) == {0: (0, [5])}
        body = call(s, list_offsets_v0(73, topic, [(0, -2, 1)]), 73)
        assert decode_list_offsets_v0(body) == {0: (0, [0])}
        # A time after every record: no offset, an empty list.
        far = int(time.time() * 1000) + 3_600_000
        body = call(s, list_offsets_v0(74, topic, [(0, far, 1)]), 74)
        assert decode_list_offsets_v0(body) == {0: (0, [])}
        body = call(s, list_offsets_v0(75, topic, [(0, 0, 1)]), 75)
        assert decode_list_offsets_v0(body) == {0: (0, [0])}

        body = call(s, describe_log_dirs_v0(76, [(topic, [0, 1])]), 76)
        [(code, log_dir, topics)] = decode_describe_log_dirs_v0(body)
        assert code == 0 and log_dir, (code, log_dir)
        assert topics[topic][0] > 0 and topics[topic][1] == 0, topics
        body = call(s, describe_log_dirs_v0(77, None), 77)
        [(code, _, topics)] = decode_describe_log_dirs_v0(body)
        assert code == 0 and topic in topics


def _bodies(topic, group):
    """The newly served versions' frames, each (api, version, frame)."""
    return [
        (OFFSET_COMMIT, 0, offset_commit_v0(31, group, topic, [(0, 1, "x"), (1, 2, "y")])),
        (OFFSET_COMMIT, 1, offset_commit_v1(31, group, topic, [(0, 1, "x")], timestamp=5)),
        (OFFSET_FETCH, 0, offset_fetch_v0(31, group, topic, [0, 1, 2])),
        (DESCRIBE_CONFIGS, 0, describe_configs_v0(31, [(CONFIG_RESOURCE_TOPIC, topic, ["a", "b"])])),
        (CREATE_TOPICS, 0, create_topics_v0_v1(31, 0, [(topic + "-x", 1, 1, [(0, [1])], [("k", "v")])])),
        (CREATE_TOPICS, 1, create_topics_v0_v1(31, 1, [(topic + "-y", 1, 1, [], [])], validate_only=True)),
        (DELETE_TOPICS, 0, delete_topics_v0(31, [topic + "-z", topic + "-w"])),
        (LIST_OFFSETS, 0, list_offsets_v0(31, topic, [(0, -1, 1), (1, -2, 3)])),
        (DESCRIBE_LOG_DIRS, 0, describe_log_dirs_v0(31, [(topic, [0, 1])])),
    ]


def test_truncated_frames_close_the_connection(broker):
    topic = create_topic(broker.bootstrap, partitions=2)
    for api, version, whole in _bodies(topic, "g-trunc"):
        payload = whole[4:]
        # Cut inside the body, at several places, with a size prefix that
        # matches the shorter payload: a complete frame that ends too soon.
        header_len = len(request_header_v1(api, version, 31))
        for cut in sorted({header_len + 1, header_len + 5, len(payload) - 3, len(payload) - 1}):
            with connect(broker.port) as s:
                s.sendall(frame(payload[:cut]))
                assert wait_closed_or_response(s) == "closed", (api, version, cut)
    broker_alive(broker)


def test_inflated_counts_are_refused_without_allocating(broker):
    rss_before = _rss_kib(broker.proc.pid)
    group = "g-inflate"
    huge = i32(0x7FFFFFFF)
    frames = [
        # OffsetCommit v0: topics count, then a partitions count.
        request_header_v1(OFFSET_COMMIT, 0, 41) + string(group) + huge,
        request_header_v1(OFFSET_COMMIT, 0, 41) + string(group) + i32(1) + string("t") + huge,
        request_header_v1(OFFSET_COMMIT, 1, 41) + string(group) + i32(-1) + string("") + huge,
        request_header_v1(OFFSET_FETCH, 0, 41) + string(group) + i32(1) + string("t") + huge,
        request_header_v1(DESCRIBE_CONFIGS, 0, 41) + huge,
        request_header_v1(DESCRIBE_CONFIGS, 0, 41) + i32(1) + i8(2) + string("t") + huge,
        request_header_v1(CREATE_TOPICS, 0, 41) + huge,
        request_header_v1(CREATE_TOPICS, 1, 41) + i32(1) + string("t") + i32(1) + i16(1) + huge,
        request_header_v1(DELETE_TOPICS, 0, 41) + huge,
        request_header_v1(LIST_OFFSETS, 0, 41) + i32(-1) + huge,
        request_header_v1(LIST_OFFSETS, 0, 41) + i32(-1) + i32(1) + string("t") + huge,
        request_header_v1(DESCRIBE_LOG_DIRS, 0, 41) + huge,
    ]
    for payload in frames:
        for _ in range(20):
            with connect(broker.port) as s:
                s.sendall(frame(payload + b"\0" * 64))
                assert wait_closed_or_response(s) == "closed", payload
    broker_alive(broker)
    # 240 frames claiming 2^31-1 elements each: an allocation from any of
    # them would show (2^31 elements of even 8 bytes is 16 GiB).
    assert _rss_kib(broker.proc.pid) - rss_before < 64 * 1024


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unsupported_version_closes_and_logs_the_client_software(broker):
    with connect(broker.port) as s:
        s.sendall(api_versions_request_at(3, 51))
        recv_frame(s)
        # OffsetCommit v10 is beyond the table (kafka-protocol 0.18 has up to 9).
        body = string("g") + array([])
        s.sendall(frame(request_header_v1(OFFSET_COMMIT, 10, 52) + body))
        assert wait_closed_or_response(s) == "closed"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = broker.stderr_tail(200)
        if "unsupported api version" in log:
            break
        time.sleep(0.1)
    line = [ln for ln in log.splitlines() if "unsupported api version" in ln][-1]
    assert "OffsetCommit" in line and "version=10" in line, line
    assert "corelog-raw-test/0.0.1" in line, line
    assert "corelog-raw-test" in line.split("client_software")[0], line  # the client id
    broker_alive(broker)


# ------------------------------------------------------------ kafka-python --
# kafka-python 2.3.3, pinned to old Kafka protocol versions as applications
# that pin it do, in a pytest of its own (kafka_python_2_old_versions.py):
# the suite itself runs kafka-python 3, which no longer sends these versions.
KAFKA_PYTHON_2 = Path(__file__).resolve().parents[2] / ".kafka-python-2"


@pytest.mark.timeout(400)
def test_kafka_python_2_pinned_to_old_protocol_versions():
    if not (KAFKA_PYTHON_2 / "kafka").is_dir():
        pytest.fail("kafka-python 2.3.3 is not installed at %s; run ci/install-client-deps.sh" % KAFKA_PYTHON_2)
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(KAFKA_PYTHON_2), str(here)]))
    proc = subprocess.run([sys.executable, "-m", "pytest", str(here / "kafka_python_2_old_versions.py"),
                           "-q", "-p", "no:cacheprovider"],
                          env=env, cwd=str(here), capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, "kafka-python 2.3.3 tests failed:\n%s\n%s" % (
        proc.stdout[-6000:], proc.stderr[-2000:])
    assert re.search(r"^3 passed", proc.stdout, re.M), proc.stdout[-2000:]
