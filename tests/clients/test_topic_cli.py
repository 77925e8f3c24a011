"""`corelog topic ...`, the admin CLI, against the real broker, checked
with a real client's view (confluent-kafka's AdminClient and producer)."""
import json
import subprocess

from confluent_kafka.admin import ConfigResource, ResourceType

from conftest import admin, corelog_bin, produce_all, unique_topic, wait_topic


def cli(b, *args, check=True):
    r = subprocess.run([str(corelog_bin()), "topic", *args, "--bootstrap-server", b.bootstrap],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_create_describe_alter_add_partitions_and_delete(broker):
    b = broker
    topic = unique_topic("cli")
    assert cli(b, "create", topic, "-p", "2", "-c", "retention.ms=3600000",
               "-c", "cleanup.policy=compact").stdout == "created: %s\n" % topic
    wait_topic(b.bootstrap, topic, 2)

    # What a client sees matches.
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin(b.bootstrap).describe_configs([res])[res].result(timeout=15)
    assert entries["retention.ms"].value == "3600000"
    assert entries["cleanup.policy"].value == "compact"

    produce_all(b.bootstrap, topic, [{"key": b"k", "value": b"v", "partition": 1}] * 3)
    d = json.loads(cli(b, "describe", topic, "--format", "json").stdout)
    assert d["configs"] == {"cleanup.policy": "compact", "retention.ms": "3600000"}
    offsets = {p["partition"]: (p["low_watermark"], p["high_watermark"]) for p in d["partitions"]}
    assert offsets == {0: (0, 0), 1: (0, 3)}
    text = cli(b, "describe", topic).stdout
    assert "PARTITION  LEADER  REPLICAS  ISR  LOW  HIGH" in text, text

    cli(b, "alter-config", topic, "--set", "segment.ms=60000", "--delete", "retention.ms")
    entries = admin(b.bootstrap).describe_configs([res])[res].result(timeout=15)
    assert entries["segment.ms"].value == "60000" and not entries["segment.ms"].is_default
    assert entries["retention.ms"].is_default

    cli(b, "add-partitions", topic, "--count", "5")
    wait_topic(b.bootstrap, topic, 5)
    listed = json.loads(cli(b, "list", "--format", "json").stdout)
    assert {"name": topic, "partitions": 5, "replicas": 1, "internal": False} in listed

    cli(b, "delete", topic)
    assert topic not in admin(b.bootstrap).list_topics(timeout=10).topics


def test_errors_name_the_kafka_error_and_fail(broker):
    b = broker
    topic = unique_topic("cli")
    cli(b, "create", topic)
    r = cli(b, "create", topic, check=False)
    assert r.returncode == 1 and "TOPIC_ALREADY_EXISTS (36)" in r.stderr, r.stderr
    r = cli(b, "alter-config", topic, "--set", "cleanup.policy=shred", check=False)
    assert r.returncode == 1 and "INVALID_CONFIG (40)" in r.stderr and "shred" in r.stderr, r.stderr
    r = cli(b, "describe", unique_topic("none"), check=False)
    assert r.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION (3)" in r.stderr, r.stderr
    r = subprocess.run([str(corelog_bin()), "topic", "list", "--bootstrap-server", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("corelog: 127.0.0.1:1:"), r.stderr
