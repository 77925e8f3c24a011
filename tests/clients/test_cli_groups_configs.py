"""The admin CLI's group, config and cluster verbs (`corelog group
reset-offsets|delete`, `corelog config get|set`, `corelog cluster status`,
`corelog consume --group`) against the real broker, checked with a real
client's view (confluent-kafka's consumer and AdminClient)."""
import json
import subprocess
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from conftest import admin, corelog_bin, create_topic, produce_all, unique_topic


def corelog(b, *args, check=True, bootstrap=None):
    r = subprocess.run([str(corelog_bin()), *args, "--bootstrap-server", bootstrap or b.bootstrap],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def fails(b, *args, bootstrap=None):
    r = corelog(b, *args, check=False, bootstrap=bootstrap)
    assert r.returncode == 1, (args, r.stdout, r.stderr)
    assert r.stderr.startswith("corelog: "), r.stderr
    return r.stderr


def committed(b, group, topic, partitions):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_cluster_status_and_configs(broker):
    b = broker
    topic = create_topic(b.bootstrap, partitions=3)

    status = json.loads(corelog(b, "cluster", "status", "--format", "json").stdout)
    assert [br["address"] for br in status["brokers"]] == [b.bootstrap], status
    assert status["controller_id"] == status["brokers"][0]["node_id"], status
    assert status["cluster_id"], status
    assert status["topics"] >= 1 and status["partitions"] >= 3 and status["offline_partitions"] == 0
    text = corelog(b, "cluster", "status").stdout
    assert "CONTROLLER" in text and b.bootstrap in text, text

    # Topic configs: set, read back by a client and by the CLI, remove.
    out = corelog(b, "config", "set", "--topic", topic, "retention.ms=3600000", "segment.ms=60000")
    assert out.stdout == "topic %s: 2 set, 0 removed\n" % topic
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin(b.bootstrap).describe_configs([res])[res].result(timeout=15)
    assert entries["retention.ms"].value == "3600000" and entries["segment.ms"].value == "60000"
    got = json.loads(corelog(b, "config", "get", "--topic", topic, "retention.ms", "--format",
                             "json").stdout)
    assert got["configs"] == [{"name": "retention.ms", "value": "3600000",
                               "source": "DYNAMIC_TOPIC_CONFIG", "read_only": False,
                               "sensitive": False}], got
    text = corelog(b, "config", "get", "--topic", topic).stdout
    assert text.startswith("NAME") and "retention.ms" in text and "cleanup.policy" in text, text
    corelog(b, "config", "set", "--topic", topic, "--delete", "retention.ms")
    entries = admin(b.bootstrap).describe_configs([res])[res].result(timeout=15)
    assert entries["retention.ms"].is_default

    # The bootstrap broker's configs.
    broker_configs = json.loads(corelog(b, "config", "get", "--format", "json").stdout)
    assert broker_configs["resource"].startswith("broker "), broker_configs
    assert broker_configs["configs"], broker_configs

    # Errors carry Kafka's name and what to do.
    err = fails(b, "config", "set", "--topic", topic, "no.such.config=1")
    assert "INVALID_CONFIG (40)" in err and "no.such.config" in err, err
    err = fails(b, "config", "get", "--topic", topic, "no.such.config")
    assert "no config named 'no.such.config'" in err, err
    err = fails(b, "config", "get", "--topic", unique_topic("missing"))
    assert "UNKNOWN_TOPIC_OR_PARTITION (3)" in err, err
    err = fails(b, "config", "set", "--topic", topic)
    assert "nothing to do" in err, err
    for verb in (("cluster", "status"), ("config", "get"), ("group", "delete", "g")):
        err = fails(b, *verb, bootstrap="127.0.0.1:1")
        assert "cannot reach the broker at 127.0.0.1:1" in err, (verb, err)


def test_group_consume_reset_offsets_and_delete(broker):
    b = broker
    topic = create_topic(b.bootstrap, partitions=2)
    before = int(time.time() * 1000)
    produce_all(b.bootstrap, topic, [{"value": b"v%d" % i, "partition": i % 2} for i in range(10)])
    group = "cli-" + uuid.uuid4().hex[:8]

    # consume --group reads everything, commits it and says so.
    r = corelog(b, "consume", topic, "--group", group, "--format", "json")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted((x["partition"], x["offset"]) for x in records) == [
        (p, o) for p in (0, 1) for o in range(5)]
    assert "consumed 10 record(s) from 2 partition(s)" in r.stderr, r.stderr
    assert committed(b, group, topic, [0, 1]) == {0: 5, 1: 5}
    described = json.loads(corelog(b, "group", "describe", group, "--format", "json").stdout)
    assert described["members"] == 0 and described["type"] == "classic", described
    assert [(p["partition"], p["committed_offset"], p["log_end_offset"], p["lag"])
            for p in described["partitions"]] == [(0, 5, 5, 0), (1, 5, 5, 0)], described
    listed = json.loads(corelog(b, "group", "list", "--format", "json").stdout)
    assert {"group": group, "state": "Empty", "type": "classic"} in listed, listed
    # ... and the next run starts from the committed offsets.
    assert corelog(b, "consume", topic, "--group", group).stdout == ""
    # Consuming from a time: everything produced after `before`.
    assert len(corelog(b, "consume", topic, "-o", "@%d" % before).stdout.splitlines()) == 10
    assert corelog(b, "consume", topic, "-o", "@%d" % (before + 3_600_000)).stdout == ""

    def reset(*args):
        out = corelog(b, "group", "reset-offsets", group, "--topic", topic, *args,
                      "--format", "json").stdout
        return {p["partition"]: (p["previous"], p["new"]) for p in json.loads(out)["partitions"]}

    assert reset("--to", "earliest", "--dry-run") == {0: (5, 0), 1: (5, 0)}
    assert committed(b, group, topic, [0, 1]) == {0: 5, 1: 5}
    assert reset("--to-offset", "2") == {0: (5, 2), 1: (5, 2)}
    assert reset("--shift-by", "-1", "-p", "1") == {1: (2, 1)}
    assert committed(b, group, topic, [0, 1]) == {0: 2, 1: 1}
    # A real consumer of the group starts where the reset put it.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "latest"})
    c.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 7 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append((m.partition(), m.offset()))
    assert sorted(seen) == [(0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4)], seen
    # While that consumer is a member, the group cannot be reset or deleted.
    err = fails(b, "group", "reset-offsets", group, "--topic", topic, "--to", "latest")
    assert "active member" in err and "stop its consumers first" in err, err
    err = fails(b, "group", "delete", group)
    assert "NON_EMPTY_GROUP (68)" in err, err
    c.close()

    assert reset("--to-timestamp", str(before + 3_600_000)) == {0: (2, 5), 1: (1, 5)}
    assert reset("--to-timestamp", "0") == {0: (5, 0), 1: (5, 0)}
    assert reset("--to", "latest") == {0: (0, 5), 1: (0, 5)}
    text = corelog(b, "group", "reset-offsets", group, "--topic", topic, "--to", "earliest").stdout
    assert text.splitlines()[0].split() == ["TOPIC", "PARTITION", "PREVIOUS", "NEW"], text
    assert text.endswith("reset 2 partition(s) of group %s\n" % group), text

    err = fails(b, "group", "reset-offsets", group, "--topic", unique_topic("missing"), "--to",
                "earliest")
    assert "UNKNOWN_TOPIC_OR_PARTITION (3)" in err, err
    assert json.loads(corelog(b, "group", "delete", group, "--format", "json").stdout) == {
        "group": group, "result": "deleted"}
    err = fails(b, "group", "delete", group)
    assert "GROUP_ID_NOT_FOUND (69)" in err, err


def test_a_following_group_consumer_commits_and_leaves_on_ctrl_c(broker):
    import signal
    b = broker
    topic = create_topic(b.bootstrap, partitions=1)
    produce_all(b.bootstrap, topic, [{"value": b"v%d" % i} for i in range(3)])
    group = "follow-" + uuid.uuid4().hex[:8]
    p = subprocess.Popen([str(corelog_bin()), "consume", topic, "--group", group, "--follow",
                          "--bootstrap-server", b.bootstrap],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        assert lines == ["v0\n", "v1\n", "v2\n"], lines
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "consumed 3 record(s) from 1 partition(s)" in err, err
    assert committed(b, group, topic, [0]) == {0: 3}
    # It left: the group has no members, so its offsets can be reset.
    corelog(b, "group", "reset-offsets", group, "--topic", topic, "--to", "earliest")
