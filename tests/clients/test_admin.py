"""Admin API against the real broker: topics, partitions, configs, records,
cluster description, list offsets, and the error codes a Java client expects.

Mostly PyPI confluent-kafka (current librdkafka); kafka-python where it reads
the raw error code of a response."""
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
                                   OffsetSpec, ResourceType)

from conftest import (NODE_ID, admin, consume_range, create_topic, produce_all, unique_topic, wait_topic)

TIMEOUT = 15


def _create_err(bootstrap, new_topic):
    fs = admin(bootstrap).create_topics([new_topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[new_topic.topic].result(timeout=TIMEOUT)
    return ei.value.args[0]


def _describe(bootstrap, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    fs = admin(bootstrap).describe_configs([res], request_timeout=TIMEOUT)
    entries = fs[res].result(timeout=TIMEOUT)
    return {k: v.value for k, v in entries.items()}, entries


# ------------------------------------------------------------------ topics --
def test_create_topics_and_list(broker):
    a = admin(broker.bootstrap)
    names = [unique_topic("a"), unique_topic("b")]
    fs = a.create_topics([NewTopic(names[0], num_partitions=1, replication_factor=1),
                          NewTopic(names[1], num_partitions=4, replication_factor=1)],
                         operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    for n in names:
        assert fs[n].result(timeout=TIMEOUT) is None
    wait_topic(broker.bootstrap, names[0], 1)
    t = wait_topic(broker.bootstrap, names[1], 4)
    for p in t.partitions.values():
        assert p.leader == NODE_ID and list(p.replicas) == [NODE_ID] and list(p.isrs) == [NODE_ID]
    md = a.list_topics(timeout=10)
    assert set(names) <= set(md.topics)


def test_create_topic_default_partitions(broker):
    """num_partitions=-1 / replication_factor=-1 (CreateTopics v4+ defaults) -> 1 partition."""
    name = unique_topic("dflt")
    fs = admin(broker.bootstrap).create_topics([NewTopic(name)], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    fs[name].result(timeout=TIMEOUT)
    wait_topic(broker.bootstrap, name, 1)


def test_create_existing_topic_is_topic_already_exists(broker):
    name = create_topic(broker.bootstrap)
    err = _create_err(broker.bootstrap, NewTopic(name, num_partitions=1, replication_factor=1))
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err


def test_create_existing_topic_kafka_python_error_code(broker):
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic
    name = create_topic(broker.bootstrap)
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        try:
            resp = ka.create_topics([KNewTopic(name, 1, 1)])
            codes = [e[1] for e in resp.topic_errors]
        except Exception as e:  # newer kafka-python raises the mapped error
            codes = [getattr(e, "errno", None)]
    finally:
        ka.close()
    assert codes == [36], codes  # TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("bad_name", ["bad topic!", "..", "x" * 250, "slash/name"])
def test_invalid_topic_name_is_invalid_topic_exception(broker, bad_name):
    err = _create_err(broker.bootstrap, NewTopic(bad_name, num_partitions=1, replication_factor=1))
    assert err.code() == KafkaError.TOPIC_EXCEPTION, err  # 17 INVALID_TOPIC_EXCEPTION


def test_replication_factor_3_is_invalid_replication_factor(broker):
    err = _create_err(broker.bootstrap, NewTopic(unique_topic(), num_partitions=1, replication_factor=3))
    assert err.code() == KafkaError.INVALID_REPLICATION_FACTOR, err  # 38


def test_zero_partitions_is_invalid_partitions(broker):
    err = _create_err(broker.bootstrap, NewTopic(unique_topic(), num_partitions=0, replication_factor=1))
    assert err.code() == KafkaError.INVALID_PARTITIONS, err  # 37


def test_delete_topic(broker):
    name = create_topic(broker.bootstrap, partitions=2)
    produce_all(broker.bootstrap, name, [{"value": b"v%d" % i, "partition": i % 2} for i in range(20)])
    a = admin(broker.bootstrap)
    fs = a.delete_topics([name], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    assert fs[name].result(timeout=TIMEOUT) is None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        md = a.list_topics(timeout=5)
        if name not in md.topics:
            break
        time.sleep(0.2)
    assert name not in a.list_topics(timeout=5).topics
    # deleting again: UNKNOWN_TOPIC_OR_PARTITION
    fs = a.delete_topics([name], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[name].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # re-created under the same name it starts empty
    create_topic(broker.bootstrap, name, partitions=2)
    res = a.list_offsets({TopicPartition(name, p): OffsetSpec.latest() for p in range(2)}, request_timeout=TIMEOUT)
    assert [f.result(timeout=TIMEOUT).offset for f in res.values()] == [0, 0]


# -------------------------------------------------------------- partitions --
def test_create_partitions(broker):
    name = create_topic(broker.bootstrap, partitions=1)
    a = admin(broker.bootstrap)
    fs = a.create_partitions([NewPartitions(name, 3)], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    assert fs[name].result(timeout=TIMEOUT) is None
    wait_topic(broker.bootstrap, name, 3)
    produce_all(broker.bootstrap, name, [{"value": b"p2-%d" % i, "partition": 2} for i in range(5)])
    got = consume_range(broker.bootstrap, name, [2], 5)
    assert [m.value() for m in got] == [b"p2-%d" % i for i in range(5)]
    assert {m.partition() for m in got} == {2}


@pytest.mark.parametrize("new_count", [2, 3])
def test_create_partitions_not_more_is_invalid_partitions(broker, new_count):
    name = create_topic(broker.bootstrap, partitions=3)
    fs = admin(broker.bootstrap).create_partitions([NewPartitions(name, new_count)],
                                                   operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[name].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS, ei.value
    wait_topic(broker.bootstrap, name, 3)


def test_create_partitions_unknown_topic(broker):
    name = unique_topic("nope")
    fs = admin(broker.bootstrap).create_partitions([NewPartitions(name, 2)],
                                                   operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[name].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value


# ----------------------------------------------------------------- configs --
CONFIG_KEYS = ["retention.ms", "retention.bytes", "segment.bytes", "segment.ms", "cleanup.policy",
               "max.message.bytes", "min.insync.replicas", "compression.type", "min.cleanable.dirty.ratio",
               "min.compaction.lag.ms", "max.compaction.lag.ms", "delete.retention.ms"]


def test_describe_configs_has_defaults(broker):
    name = create_topic(broker.bootstrap)
    values, entries = _describe(broker.bootstrap, name)
    missing = [k for k in CONFIG_KEYS if k not in values]
    assert not missing, "describe_configs lacks %s" % missing
    # Kafka's defaults for the ones with fixed documented defaults
    assert values["cleanup.policy"] == "delete"
    assert values["min.insync.replicas"] == "1"
    assert values["min.cleanable.dirty.ratio"] == "0.5"
    assert values["delete.retention.ms"] == "86400000"
    assert values["compression.type"] == "producer"
    assert int(values["max.message.bytes"]) > 0
    assert int(values["segment.bytes"]) > 0


def test_create_topic_with_configs(broker):
    cfg = {"retention.ms": "3600000", "cleanup.policy": "delete", "max.message.bytes": "2000000"}
    name = create_topic(broker.bootstrap, config=cfg)
    values, entries = _describe(broker.bootstrap, name)
    for k, v in cfg.items():
        assert values[k] == v, (k, values[k])
        assert not entries[k].is_default, k


def test_alter_configs_round_trip(broker):
    name = create_topic(broker.bootstrap)
    want = {"retention.ms": "3600000", "retention.bytes": "1073741824", "segment.bytes": "16777216",
            "segment.ms": "600000", "cleanup.policy": "delete", "max.message.bytes": "2000000",
            "min.insync.replicas": "1", "compression.type": "producer"}
    res = ConfigResource(ResourceType.TOPIC, name, set_config=want)
    fs = admin(broker.bootstrap).alter_configs([res], request_timeout=TIMEOUT)
    fs[res].result(timeout=TIMEOUT)
    values, _ = _describe(broker.bootstrap, name)
    for k, v in want.items():
        assert values[k] == v, (k, values[k], v)

    # AlterConfigs is not incremental: a second call resets what it leaves out
    res = ConfigResource(ResourceType.TOPIC, name, set_config={"retention.ms": "7200000"})
    fs = admin(broker.bootstrap).alter_configs([res], request_timeout=TIMEOUT)
    fs[res].result(timeout=TIMEOUT)
    values, entries = _describe(broker.bootstrap, name)
    assert values["retention.ms"] == "7200000"
    assert values["cleanup.policy"] == "delete" and entries["cleanup.policy"].is_default
    assert values["compression.type"] == "producer" and entries["compression.type"].is_default


def test_incremental_alter_configs_round_trip(broker):
    name = create_topic(broker.bootstrap)
    a = admin(broker.bootstrap)
    sets = {"retention.ms": "86400000", "retention.bytes": "5368709120", "segment.bytes": "33554432",
            "segment.ms": "3600000", "cleanup.policy": "delete", "max.message.bytes": "500000",
            "min.insync.replicas": "1", "compression.type": "producer"}
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sets.items()])
    a.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    values, _ = _describe(broker.bootstrap, name)
    for k, v in sets.items():
        assert values[k] == v, (k, values[k], v)

    # one more SET leaves the others alone; DELETE reverts to the default
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("compression.type", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    values, entries = _describe(broker.bootstrap, name)
    assert values["retention.ms"] == "1000"
    assert values["segment.bytes"] == "33554432"
    assert values["cleanup.policy"] == "delete" and not entries["cleanup.policy"].is_default
    assert values["compression.type"] == "producer" and entries["compression.type"].is_default


def test_alter_configs_invalid_value_is_invalid_config(broker):
    name = create_topic(broker.bootstrap)
    a = admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "bogus", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as ei:
        a.incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value
    values, _ = _describe(broker.bootstrap, name)
    assert values["cleanup.policy"] == "delete"


@pytest.mark.parametrize("key,value", [("compression.type", "zstd")])
def test_unimplemented_config_values_are_refused_with_a_reason(broker, key, value):
    # Broker-side recompression is not implemented: the broker says so
    # (INVALID_CONFIG with a message) instead of storing a setting it would
    # not honour.
    name = create_topic(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as ei:
        admin(broker.bootstrap).incremental_alter_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value
    assert "supported" in ei.value.args[0].str(), ei.value
    with pytest.raises(KafkaException):
        create_topic(broker.bootstrap, config={key: value})


def test_describe_configs_unknown_topic(broker):
    res = ConfigResource(ResourceType.TOPIC, unique_topic("nope"))
    fs = admin(broker.bootstrap).describe_configs([res], request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        fs[res].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value


# ----------------------------------------------------------------- records --
def test_delete_records_moves_low_watermark(broker):
    from confluent_kafka import Consumer
    name = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, name, [{"value": b"r%d" % i} for i in range(10)], acks="all")
    a = admin(broker.bootstrap)
    tp = TopicPartition(name, 0, 4)
    res = a.delete_records([tp], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    deleted = list(res.values())[0].result(timeout=TIMEOUT)
    assert deleted.low_watermark == 4
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        assert c.get_watermark_offsets(TopicPartition(name, 0), timeout=10) == (4, 10)
    finally:
        c.close()
    off = a.list_offsets({TopicPartition(name, 0): OffsetSpec.earliest()}, request_timeout=TIMEOUT)
    assert list(off.values())[0].result(timeout=TIMEOUT).offset == 4
    got = consume_range(broker.bootstrap, name, [0], 6)
    assert [m.offset() for m in got] == list(range(4, 10))
    assert [m.value() for m in got] == [b"r%d" % i for i in range(4, 10)]
    # deleting up to the high watermark (-1 = HWM) empties the partition
    res = a.delete_records([TopicPartition(name, 0, -1)], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)
    assert list(res.values())[0].result(timeout=TIMEOUT).low_watermark == 10


def test_delete_records_beyond_high_watermark_is_offset_out_of_range(broker):
    name = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, name, [{"value": b"x"}] * 3)
    res = admin(broker.bootstrap).delete_records([TopicPartition(name, 0, 100)], request_timeout=TIMEOUT,
                                                 operation_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as ei:
        list(res.values())[0].result(timeout=TIMEOUT)
    assert ei.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE, ei.value


# ----------------------------------------------------------------- cluster --
def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    desc = a.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert desc.cluster_id, "empty cluster id"
    assert [n.id for n in desc.nodes] == [NODE_ID]
    node = desc.nodes[0]
    assert (node.host, node.port) == ("127.0.0.1", broker.port)
    assert desc.controller is not None and desc.controller.id == NODE_ID
    md = a.list_topics(timeout=10)
    assert list(md.brokers) == [NODE_ID]
    assert (md.brokers[NODE_ID].host, md.brokers[NODE_ID].port) == ("127.0.0.1", broker.port)
    assert md.controller_id == NODE_ID
    assert md.cluster_id == desc.cluster_id


def test_elect_leaders_on_a_single_node_is_not_needed(broker):
    """Every partition of a single node has one replica, which leads it:
    an election is not needed (Kafka's ELECTION_NOT_NEEDED), and an unknown
    partition is UNKNOWN_TOPIC_OR_PARTITION."""
    from confluent_kafka import ElectionType
    name = create_topic(broker.bootstrap, partitions=2)
    a = admin(broker.bootstrap)
    asked = [TopicPartition(name, 0), TopicPartition(name, 1), TopicPartition(name, 5)]
    for election in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        got = a.elect_leaders(election, asked).result(timeout=TIMEOUT)
        codes = {(tp.topic, tp.partition): (e.code() if e is not None else None)
                 for tp, e in got.items()}
        assert codes == {(name, 0): KafkaError.ELECTION_NOT_NEEDED,
                         (name, 1): KafkaError.ELECTION_NOT_NEEDED,
                         (name, 5): KafkaError.UNKNOWN_TOPIC_OR_PART}, codes


def test_describe_cluster_kafka_python(broker):
    from kafka.admin import KafkaAdminClient
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        d = ka.describe_cluster()
    finally:
        ka.close()
    assert d["controller_id"] == NODE_ID
    # kafka-python 3 names the id as DescribeCluster's schema does
    # (BrokerId); 2.x named it node_id.
    assert [(b.get("broker_id", b.get("node_id")), b["host"], b["port"]) for b in d["brokers"]] == \
        [(NODE_ID, "127.0.0.1", broker.port)]


# --------------------------------------------------------- describe log dirs --
def test_describe_log_dirs_kafka_python(broker):
    """kafka-python 3's own call (DescribeLogDirs at the highest version
    both sides speak), for every partition and for some."""
    from kafka.admin import KafkaAdminClient

    sizes = create_topic(broker.bootstrap, partitions=3)
    other = create_topic(broker.bootstrap, partitions=2)
    produce_all(broker.bootstrap, sizes,
                [{"value": b"x" * 1000, "partition": 0} for _ in range(20)]
                + [{"value": b"y" * 1000, "partition": 1}])
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        every = ka.describe_log_dirs()
        some = ka.describe_log_dirs({sizes: [1, 0, 7], "no-such-topic": [0], other: [9]})
    finally:
        ka.close()

    def dirs(resp):
        assert [r["broker"] for r in resp] == [NODE_ID], resp
        log_dirs = resp[0]["log_dirs"]
        assert len(log_dirs) == 1, resp
        d = log_dirs[0]
        assert d["error_code"] == 0
        assert d["log_dir"] == str(broker.data_dir.absolute())
        out = {}
        for t in d["topics"]:
            for p in t["partitions"]:
                assert p["offset_lag"] == 0 and p["is_future_key"] is False
                out[(t["name"], p["partition_index"])] = p["partition_size"]
        return out

    # Every partition of every topic, sized; only partitions 0 and 1 of the
    # first topic hold data, partition 0 twenty times as much.
    every = dirs(every)
    assert set(every) == {(sizes, 0), (sizes, 1), (sizes, 2), (other, 0), (other, 1)}
    assert every[(sizes, 0)] >= 20 * 1000 and every[(sizes, 1)] >= 1000
    assert every[(sizes, 0)] > every[(sizes, 1)] > 0
    assert every[(sizes, 2)] == 0 and every[(other, 0)] == 0
    # Only what was asked about and exists: no unknown topic, no partition
    # 7 or 9, and no topic left with nothing to describe.
    some = dirs(some)
    assert some == {(sizes, 1): every[(sizes, 1)], (sizes, 0): every[(sizes, 0)]}


# ------------------------------------------------------------ list offsets --
def test_list_offsets_earliest_latest_timestamp_max(broker):
    name = create_topic(broker.bootstrap)
    base = int(time.time() * 1000) - 600_000
    # offsets 0..9 with timestamps base + i s, except offset 6 which carries
    # the largest timestamp of all
    ts = [base + i * 1000 for i in range(10)]
    ts[6] = base + 60_000
    produce_all(broker.bootstrap, name, [{"value": b"m%d" % i, "timestamp": t} for i, t in enumerate(ts)],
                acks="all", linger_ms=50)
    a = admin(broker.bootstrap)
    tp = TopicPartition(name, 0)

    def one(spec):
        return a.list_offsets({tp: spec}, request_timeout=TIMEOUT)[tp].result(timeout=TIMEOUT)

    assert one(OffsetSpec.earliest()).offset == 0
    assert one(OffsetSpec.latest()).offset == 10
    # first offset whose timestamp >= the asked one
    assert one(OffsetSpec.for_timestamp(base + 2500)).offset == 3
    assert one(OffsetSpec.for_timestamp(base)).offset == 0
    r = one(OffsetSpec.for_timestamp(base + 7000))
    assert r.offset == 6  # offset 6's timestamp (base+60 s) is the first >= base+7 s
    assert one(OffsetSpec.for_timestamp(base + 3_600_000)).offset == -1
    r = one(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (6, base + 60_000)


def test_list_offsets_kafka_python(broker):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    name = create_topic(broker.bootstrap)
    base = int(time.time() * 1000) - 60_000
    produce_all(broker.bootstrap, name, [{"value": b"k%d" % i, "timestamp": base + i * 100} for i in range(20)])
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, request_timeout_ms=10000)
    try:
        tp = KTP(name, 0)
        assert c.beginning_offsets([tp])[tp] == 0
        assert c.end_offsets([tp])[tp] == 20
        r = c.offsets_for_times({tp: base + 1050})[tp]
        assert (r.offset, r.timestamp) == (11, base + 1100)
    finally:
        c.close()
