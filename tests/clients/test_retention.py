"""Retention by time on a partition that nobody writes to any more.

Appends look for deletable segments as they go, but an idle partition has
no appends: the broker checks every `log_retention_check_interval_ms`
(Kafka's `log.retention.check.interval.ms`), so expired data goes even
when the topic has gone quiet.
"""
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import create_topic, produce_all

CHECK_INTERVAL_MS = 200
RETENTION_MS = 1500
SEGMENT_MS = 300


def _low_watermark(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lw"})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return low, high
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_expired_segments_of_an_idle_partition_are_deleted(broker_factory, tmp_path):
    cfg = tmp_path / "retention.toml"
    cfg.write_text("log_retention_check_interval_ms = %d\n" % CHECK_INTERVAL_MS)
    b = broker_factory(["--config", str(cfg)])
    topic = create_topic(b.bootstrap, config={"retention.ms": str(RETENTION_MS),
                                              "segment.ms": str(SEGMENT_MS)})
    produce_all(b.bootstrap, topic, [{"value": b"old-%d" % i, "partition": 0} for i in range(5)])
    # The next append finds the first segment older than segment.ms and
    # rolls: the five old records are in a sealed segment, which is what
    # retention deletes (never the active one).
    time.sleep(SEGMENT_MS * 2 / 1000)
    produce_all(b.bootstrap, topic, [{"value": b"new", "partition": 0}])
    assert _low_watermark(b.bootstrap, topic) == (0, 6)
    # No more appends from here: only the periodic check can delete.
    deadline = time.monotonic() + RETENTION_MS / 1000 + 10
    low = 0
    while time.monotonic() < deadline:
        low, high = _low_watermark(b.bootstrap, topic)
        if low == 5:
            break
        time.sleep(0.2)
    assert (low, high) == (5, 6), "the expired sealed segment of an idle partition stayed"
