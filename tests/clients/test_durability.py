"""Crash (SIGKILL) and graceful (SIGTERM) restarts on the same data dir and
port, checked through real clients."""
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

import kproto
from conftest import admin, consume_to_end, create_topic, produce_all, wait_topic

HERE = Path(__file__).resolve().parent


def _acked(path):
    acked, errors, done = {}, [], None
    try:
        text = path.read_text()
    except FileNotFoundError:
        return acked, errors, done
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "ERR":
            errors.append(line)
        elif parts[0] == "DONE":
            done = line
        elif len(parts) == 3:
            acked[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return acked, errors, done


def _wait_acked(path, at_least, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acked, _, _ = _acked(path)
        if len(acked) >= at_least:
            return len(acked)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    acked, errors, done = _acked(path)
    raise AssertionError("%s: %d acked, wanted >= %d (producer rc %s, errors %s, %s)"
                         % (what, len(acked), at_least, proc.poll(), errors[:5], done))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
def test_kill9_mid_stream_keeps_every_acked_message(broker, tmp_path, idempotent):
    partitions = 2
    topic = create_topic(broker.bootstrap, partitions=partitions)
    acked_path = tmp_path / "acked.txt"
    stop_path = tmp_path / "stop"
    log = open(tmp_path / "producer.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "acked_producer.py"), broker.bootstrap, topic,
                             str(partitions), str(acked_path), str(stop_path), "1" if idempotent else "0"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_acked(acked_path, 3000, proc, 60, "before the crash")
        broker.kill9()
        at_kill, _, _ = _acked(acked_path)
        time.sleep(0.5)
        broker.start()
        _wait_acked(acked_path, len(at_kill) + 2000, proc, 90, "after the restart")
        stop_path.touch()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    acked, errors, done = _acked(acked_path)
    assert done is not None, "producer did not finish: %s" % (tmp_path / "producer.log").read_text()[-2000:]

    marks, msgs = consume_to_end(broker.bootstrap, topic, list(range(partitions)), timeout=90)
    at = {(m.partition(), m.offset()): m.value() for m in msgs}
    ids = Counter()
    for m in msgs:
        v = m.value()
        assert v.startswith(b"id-"), "foreign value %r at %d/%d" % (v, m.partition(), m.offset())
        ids[int(v[3:])] += 1

    missing = sorted(n for n in acked if ids[n] == 0)
    assert not missing, "%d acknowledged messages lost after kill -9 (first: %s); %d acked before the kill" % (
        len(missing), missing[:10], len(at_kill))
    misplaced = [(n, po, at.get(po)) for n, po in acked.items() if at.get(po) != b"id-%d" % n]
    assert not misplaced, "acknowledged (partition, offset) holds another message: %s" % misplaced[:10]
    if idempotent:
        dups = sorted(n for n, c in ids.items() if c > 1)
        assert not dups, "idempotent producer: %d duplicated ids (first: %s)" % (len(dups), dups[:10])
    for p, (lo, hi) in marks.items():
        assert lo == 0 and hi == sum(1 for m in msgs if m.partition() == p)


@pytest.mark.timeout(120)
def test_sigterm_graceful_shutdown_and_restart(broker):
    topic = create_topic(broker.bootstrap, partitions=2, config={"retention.ms": "123456789"})
    values = [b"g-%d" % i for i in range(1000)]
    produce_all(broker.bootstrap, topic, [{"value": v, "key": b"%d" % i, "partition": i % 2}
                                          for i, v in enumerate(values)], acks="all")
    # an idle client connection must not hold up the shutdown
    idle = kproto.connect(broker.port)
    try:
        kproto.roundtrip(idle, kproto.api_versions_v0_request(1))
        t0 = time.monotonic()
        rc = broker.terminate(timeout=10)
        took = time.monotonic() - t0
    finally:
        idle.close()
    assert rc == 0, "broker exited %s after SIGTERM (%.1f s); stderr:\n%s" % (rc, took, broker.stderr_tail())
    assert took <= 10

    broker.start()
    wait_topic(broker.bootstrap, topic, 2)
    marks, msgs = consume_to_end(broker.bootstrap, topic, [0, 1])
    assert marks == {0: (0, 500), 1: (0, 500)}
    for p in (0, 1):
        got = [(m.offset(), m.value(), m.key()) for m in msgs if m.partition() == p]
        assert got == [(j, values[i], b"%d" % i) for j, i in enumerate(range(p, 1000, 2))]
    res = ConfigResource(ResourceType.TOPIC, topic)
    cfg = admin(broker.bootstrap).describe_configs([res], request_timeout=15)[res].result(timeout=15)
    assert cfg["retention.ms"].value == "123456789"
    # and it keeps taking writes after the restart, at the next offsets
    reports = produce_all(broker.bootstrap, topic, [{"value": b"after", "partition": 0}], acks="all")
    assert reports[0][1].offset() == 500
    # a second SIGTERM right after start is clean too
    assert broker.terminate(timeout=10) == 0


@pytest.mark.timeout(120)
def test_kill9_idle_broker_then_restart(broker):
    """Acknowledged data, topics and deletions survive a crash with nothing in flight."""
    keep = create_topic(broker.bootstrap, partitions=3)
    gone = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, keep, [{"value": b"k%d" % i, "partition": i % 3} for i in range(300)],
                acks="all")
    fs = admin(broker.bootstrap).delete_topics([gone], operation_timeout=15, request_timeout=15)
    fs[gone].result(timeout=15)
    broker.kill9()
    broker.start()
    wait_topic(broker.bootstrap, keep, 3)
    assert gone not in admin(broker.bootstrap).list_topics(timeout=10).topics
    marks, msgs = consume_to_end(broker.bootstrap, keep, [0, 1, 2])
    assert marks == {0: (0, 100), 1: (0, 100), 2: (0, 100)}
    assert sorted(m.value() for m in msgs) == sorted(b"k%d" % i for i in range(300))


def _inodes(directory, ext):
    """Inodes of the files in `directory` ending in `.ext`. The broker
    renames and deletes segment files while this runs (retention, recycling
    and rolls go on in the background), so a file listed may be gone by the
    time it is looked at: it is skipped, as a later look sees its new name."""
    inodes = set()
    for p in Path(directory).glob("*." + ext):
        try:
            inodes.add(p.stat().st_ino)
        except FileNotFoundError:
            pass
    return inodes


@pytest.mark.timeout(180)
def test_retention_recycles_segment_files_and_every_kept_record_survives_kill9(broker):
    """Under retention, deleted segments' files are written over by new
    segments (segment recycling); consumers still read every kept record,
    with its own value, before and after a SIGKILL."""
    topic = create_topic(broker.bootstrap, partitions=1,
                         config={"segment.bytes": "262144", "retention.bytes": "1048576"})
    pdir = broker.data_dir / ("%s-0" % topic)
    values = {}
    # A file waits in the pool only from the retention pass that put it there
    # to the next roll, and rolls fall at the same point of every round, so
    # looking between rounds can miss every one (it did, in CI at d9c21a3).
    # A thread watches the directory while the producer runs instead.
    pooled, reused = set(), set()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            pooled.update(_inodes(pdir, "recycled"))
            reused.update(pooled & _inodes(pdir, "log"))
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for round_ in range(8):
            batch = [b"r%d-%d-" % (round_, i) + b"x" * 1000 for i in range(500)]
            # Batches well under segment.bytes (a larger one is refused, as in Kafka).
            reports = produce_all(broker.bootstrap, topic, [{"value": v, "partition": 0} for v in batch],
                                  acks="all", batch_size=65536)
            for _, msg in reports:
                values[msg.offset()] = msg.value()
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert pooled, "retention kept a deleted segment's file for reuse: %s" % sorted(os.listdir(pdir))
    assert reused, "a new segment was written over a recycled file"

    def check():
        marks, msgs = consume_to_end(broker.bootstrap, topic, [0])
        lo, hi = marks[0]
        assert lo > 0, "retention deleted old segments"
        assert hi == max(values) + 1
        assert [m.offset() for m in msgs] == list(range(lo, hi))
        for m in msgs:
            assert m.value() == values[m.offset()], "offset %d holds another record" % m.offset()

    check()
    broker.restart(kill=True)
    wait_topic(broker.bootstrap, topic, 1)
    check()
    reports = produce_all(broker.bootstrap, topic, [{"value": b"after", "partition": 0}], acks="all")
    assert reports[0][1].offset() == max(values) + 1
