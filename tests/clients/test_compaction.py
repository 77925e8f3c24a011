"""Log compaction (cleanup.policy=compact) against the real broker.

What a user of a compacted topic relies on, checked with real clients:
- the latest value of every key stays readable, at the offset its producer
  was told, and older values of a key go once their segment is cleaned;
- offsets only increase (with gaps) for a consumer reading from the start;
- a tombstone (null value) is kept for delete.retention.ms after the
  cleaner first passed it, then removed, also when nothing more is written;
- a record without a key is refused with INVALID_RECORD;
- a SIGKILL while the cleaner works loses no latest value.

Segments roll on the first append after segment.ms, so each test produces
in rounds with a pause longer than segment.ms between them: every round
but the last ends in a sealed (cleanable) segment.
"""
import random
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from conftest import admin, create_topic, free_port, produce_all

SEGMENT_MS = 150
CLEANER_BACKOFF_MS = 100

# The broker's cleaner looks for dirty logs every backoff_ms; a test broker
# looks often so that the tests wait little.
CLEANER_CONFIG = "[log_cleaner]\nbackoff_ms = %d\n" % CLEANER_BACKOFF_MS


def _broker(broker_factory, tmp_path, extra_config="", extra_args=()):
    cfg = tmp_path / "cleaner.toml"
    cfg.write_text(CLEANER_CONFIG + extra_config)
    return broker_factory(["--config", str(cfg)] + list(extra_args))


def _compacted_topic(b, **extra):
    config = {"cleanup.policy": "compact", "segment.ms": str(SEGMENT_MS),
              "min.cleanable.dirty.ratio": "0.01"}
    config.update(extra)
    return create_topic(b.bootstrap, config=config)


def _produce_rounds(b, topic, rounds):
    """rounds: lists of (key, value). Each round is produced, flushed and
    followed by a pause past segment.ms, so that the next round's first
    append rolls the segment. Returns {(key, value): offset}."""
    offsets = {}
    for i, records in enumerate(rounds):
        if i:
            time.sleep(SEGMENT_MS * 1.5 / 1000)
        reports = produce_all(b.bootstrap, topic, [{"key": k, "value": v, "partition": 0} for k, v in records],
                              acks="all")
        for err, msg in reports:
            offsets[(msg.key(), msg.value())] = msg.offset()
    return offsets


def _read_all(bootstrap, topic, timeout=30.0):
    """Every record of partition 0 from the log start to the end, as
    [(offset, key, value)], aborted transactions' records included
    (read_uncommitted: what the log holds)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cmp-" + uuid.uuid4().hex[:6],
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "isolation.level": "read_uncommitted"})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError("consume error: %s" % m.error())
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    raise AssertionError("never reached the end of %s in %.0f s (read %d)" % (topic, timeout, len(out)))


def _wait_until(what, check, timeout_s):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(0.2)
    raise AssertionError("%s within %.0f s; last seen: %r" % (what, timeout_s, last))


def _check_log(records, latest):
    """What holds at any moment of a compacted log: offsets increase, and
    every key's latest value is there at the offset its producer got."""
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets do not strictly increase"
    at = {o: (k, v) for o, k, v in records}
    for (key, value), offset in latest.items():
        assert at.get(offset) == (key, value), (
            "the latest value of %r (offset %d) is gone or moved: found %r" % (key, offset, at.get(offset)))


@pytest.mark.timeout(120)
def test_compaction_keeps_the_latest_value_of_each_key_at_its_offset(broker_factory, tmp_path):
    b = _broker(broker_factory, tmp_path)
    topic = _compacted_topic(b)
    keys = [b"key-%02d" % i for i in range(20)]
    rounds = [[(k, b"v%d-%s" % (r, k)) for k in keys] for r in range(6)]
    # A last round of new keys only, so that every key above has its latest
    # value in a sealed segment: all of those are cleanable.
    rounds.append([(b"tail-%d" % i, b"t") for i in range(3)])
    offsets = _produce_rounds(b, topic, rounds)
    latest = {(k, b"v5-%s" % k): offsets[(k, b"v5-%s" % k)] for k in keys}
    total = sum(len(r) for r in rounds)

    def cleaned():
        records = _read_all(b.bootstrap, topic)
        return len(records) == len(keys) + 3, records

    records = _wait_until("the cleaner left one record per key", cleaned, 60)
    _check_log(records, latest)
    assert len(records) < total
    # The log end and the offsets of what remains are what they were.
    assert records[-1][0] == total - 1


@pytest.mark.timeout(120)
def test_metrics_show_each_compacted_partitions_dirty_ratio_and_last_cleaned_offset(broker_factory, tmp_path):
    from test_metrics import _metrics, _one
    port = free_port()
    b = _broker(broker_factory, tmp_path, extra_args=["--admin-listen", "127.0.0.1:%d" % port])
    topic = _compacted_topic(b)
    plain = create_topic(b.bootstrap)
    rounds = [[(b"k%d" % i, b"r%d" % r) for i in range(10)] for r in range(3)] + [[(b"tail", b"t")]]
    _produce_rounds(b, topic, rounds)
    # The first two rounds' segments (offsets 0-19) are superseded by the
    # third's; all three are sealed and cleanable.

    def cleaned():
        samples = _metrics(port)
        last = _one(samples, "corelog_partition_cleaner_last_cleaned_offset", topic=topic)
        return last == 30, samples

    samples = _wait_until("the metrics show the log cleaned up to the active segment", cleaned, 60)
    assert _one(samples, "corelog_partition_cleaner_dirty_ratio", topic=topic) == 0
    # A topic that does not compact has no cleaner state.
    assert not [k for k in samples if k[0].startswith("corelog_partition_cleaner") and dict(k[1])["topic"] == plain]


@pytest.mark.timeout(60)
def test_a_record_without_a_key_is_refused_for_a_compacted_topic(broker_factory, tmp_path):
    b = _broker(broker_factory, tmp_path)
    topic = _compacted_topic(b)
    reports = produce_all(b.bootstrap, topic, [{"value": b"no key", "partition": 0}], allow_errors=True,
                          retries=0)
    (err, _), = reports
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
    # Keyed records still go in, and nothing of the refused batch is there.
    produce_all(b.bootstrap, topic, [{"key": b"k", "value": b"keyed", "partition": 0}])
    assert [(k, v) for _, k, v in _read_all(b.bootstrap, topic)] == [(b"k", b"keyed")]


@pytest.mark.timeout(120)
def test_tombstones_stay_for_delete_retention_ms_then_go(broker_factory, tmp_path):
    b = _broker(broker_factory, tmp_path)
    delete_retention_ms = 3000
    topic = _compacted_topic(b, **{"delete.retention.ms": str(delete_retention_ms)})
    keys = [b"k%d" % i for i in range(10)]
    rounds = [
        [(k, b"first") for k in keys],
        [(k, None) for k in keys[:5]],  # tombstones for half the keys
        [(b"other", b"x")],
    ]
    offsets = _produce_rounds(b, topic, rounds)
    live = {(k, b"first"): offsets[(k, b"first")] for k in keys[5:]}

    def tombstones_only():
        records = _read_all(b.bootstrap, topic)
        old = [r for r in records if r[1] in keys[:5] and r[2] is not None]
        return not old, records

    records = _wait_until("the deleted keys' old values are cleaned", tombstones_only, 60)
    _check_log(records, live)
    tombstones = {k for _, k, v in records if v is None}
    # Within delete.retention.ms of the first pass: a consumer reading from
    # the start still learns that these keys were deleted.
    assert tombstones == set(keys[:5]), records
    first_seen = time.monotonic()

    # More appends make the log dirty again, so that the cleaner passes
    # over the tombstones once their time is up.
    def tombstones_gone():
        produce_all(b.bootstrap, topic, [{"key": b"other", "value": b"y", "partition": 0}])
        time.sleep(SEGMENT_MS * 1.5 / 1000)
        records = _read_all(b.bootstrap, topic)
        return not any(v is None for _, _, v in records), records

    records = _wait_until("the tombstones are removed", tombstones_gone, 60)
    assert time.monotonic() - first_seen >= delete_retention_ms / 1000 * 0.5
    _check_log(records, live)


@pytest.mark.timeout(120)
def test_tombstones_go_after_delete_retention_ms_without_new_writes(broker_factory, tmp_path):
    # Kafka 3.x: a compacted topic that is no longer written still loses
    # its tombstones once their delete horizon passes (the log is due for
    # a pass then, without a dirty byte).
    b = _broker(broker_factory, tmp_path)
    delete_retention_ms = 3000
    topic = _compacted_topic(b, **{"delete.retention.ms": str(delete_retention_ms)})
    keys = [b"k%d" % i for i in range(10)]
    rounds = [
        [(k, b"first") for k in keys],
        [(k, None) for k in keys[:5]],
        [(b"other", b"x")],
    ]
    offsets = _produce_rounds(b, topic, rounds)
    live = {(k, b"first"): offsets[(k, b"first")] for k in keys[5:]}

    def tombstones_only():
        records = _read_all(b.bootstrap, topic)
        old = [r for r in records if r[1] in keys[:5] and r[2] is not None]
        return not old, records

    records = _wait_until("the deleted keys' old values are cleaned", tombstones_only, 60)
    assert {k for _, k, v in records if v is None} == set(keys[:5]), records
    first_seen = time.monotonic()

    # Nothing more is produced.
    def tombstones_gone():
        records = _read_all(b.bootstrap, topic)
        return not any(v is None for _, _, v in records), records

    records = _wait_until("the tombstones are removed without new writes", tombstones_gone, 60)
    assert time.monotonic() - first_seen >= delete_retention_ms / 1000 * 0.5
    _check_log(records, live)


@pytest.mark.timeout(300)
def test_sigkill_while_cleaning_loses_no_latest_value(broker_factory, tmp_path):
    # Paced to 500 KB/s, a pass over the 5 MB below (mapped, then
    # rewritten) takes about fifteen seconds: the kills fall inside passes.
    b = _broker(broker_factory, tmp_path, "io_max_bytes_per_second = 500000\n")
    # Nothing is cleanable while the data goes in (min.compaction.lag.ms of
    # an hour), so that the kills below fall into passes over all of it.
    topic = _compacted_topic(b, **{"segment.bytes": str(1 << 20), "min.compaction.lag.ms": "3600000"})
    rng = random.Random(7)
    keys = [b"key-%04d" % i for i in range(600)]
    latest = {}
    value = b"v" * 900
    for r in range(10):
        if r:
            time.sleep(SEGMENT_MS * 1.5 / 1000)
        batch = [(k, b"%d-" % r + value) for k in keys if rng.random() < 0.7]
        reports = produce_all(b.bootstrap, topic,
                              [{"key": k, "value": v, "partition": 0} for k, v in batch], acks="all")
        for err, msg in reports:
            latest[msg.key()] = (msg.value(), msg.offset())
    # A new key last, so the earlier rounds are all in sealed segments.
    time.sleep(SEGMENT_MS * 1.5 / 1000)
    produce_all(b.bootstrap, topic, [{"key": b"last", "value": b"x", "partition": 0}], acks="all")
    expect = {(k, v): o for k, (v, o) in latest.items()}
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)])
    admin(b.bootstrap).incremental_alter_configs([res], request_timeout=15)[res].result(timeout=15)
    partition_dir = b.data_dir / ("%s-0" % topic)

    def kill_and_check():
        b.kill9()
        since_start = b.stderr_path.read_text(errors="replace").rsplit("===== start #", 1)[-1]
        assert "log cleaner pass done" not in since_start, "the pass ended before the kill"
        files = sorted(f.name for f in partition_dir.iterdir())
        b.start()
        _check_log(_read_all(b.bootstrap, topic, timeout=60), expect)
        return files

    # While the pass maps keys (nothing written yet), then while it
    # rewrites segments (.cleaned files on disk). A killed pass is undone
    # on open and starts again from the last cleaned offset.
    time.sleep(2)
    kill_and_check()
    time.sleep(10)
    files = kill_and_check()
    assert any(f.endswith(".cleaned") for f in files), files

    def cleaned():
        records = _read_all(b.bootstrap, topic, timeout=60)
        return len(records) == len(latest) + 1, records

    records = _wait_until("the cleaner finished after the kills", cleaned, 120)
    _check_log(records, expect)


@pytest.mark.timeout(120)
def test_the_cleaner_removes_aborted_transactions_records(broker_factory, tmp_path):
    from test_transactions import TXN_TOML, txn_producer
    b = _broker(broker_factory, tmp_path, extra_config="\n" + TXN_TOML)
    topic = _compacted_topic(b)
    p = txn_producer(b.bootstrap)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, key=b"k%d" % i, value=b"committed", partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, key=b"k%d" % i, value=b"aborted", partition=0)
    # Sent before the abort: librdkafka drops what it has not sent yet.
    p.flush(30)
    p.abort_transaction(30)
    # Roll past both transactions, so that they are in sealed segments.
    time.sleep(SEGMENT_MS * 1.5 / 1000)
    produce_all(b.bootstrap, topic, [{"key": b"tail", "value": b"t", "partition": 0}])

    # A read_uncommitted consumer sees aborted records until the cleaner
    # removes them; the committed values are what stays for each key
    # (an aborted record never supersedes a committed one).
    def no_aborted():
        records = _read_all(b.bootstrap, topic)
        return not any(v == b"aborted" for _, _, v in records), records

    records = _wait_until("the aborted records are cleaned away", no_aborted, 60)
    values = {k: v for _, k, v in records}
    assert all(values[b"k%d" % i] == b"committed" for i in range(5)), values
