"""kafka-python 2.3.3 pinned to old Kafka protocol versions (issue 21), as
applications that pin that client do: its consumer on Kafka 0.9's protocol
(ListOffsets v0), its admin client on 0.10.1 and 0.10.2 (CreateTopics v0
and v1, DeleteTopics v0), and its consumer on 0.8.2 and 0.8.1 (OffsetCommit
v1 and v0, OffsetFetch v1 and v0), whose commits survive a restart and are
what a current client reads.

Not collected by the suite (whose kafka-python is 3.x): the wrapper test
`test_old_versions.py::test_kafka_python_2_pinned_to_old_protocol_versions`
runs this file in a pytest of its own with kafka-python 2.3.3 first on the
path (`<repo>/.kafka-python-2`, installed by ci/install-client-deps.sh).
"""
import time

import kafka
import pytest

from conftest import create_topic, unique_topic
from test_old_versions import CREATE_TOPICS, DELETE_TOPICS, LIST_OFFSETS, OFFSET_COMMIT, OFFSET_FETCH, _partitions

assert kafka.__version__ == "2.3.3", "this file tests kafka-python 2.3.3, got %s from %s" % (
    kafka.__version__, kafka.__file__)


def test_kafka_python_consumer_on_kafka_0_9_finds_the_ends_of_a_partition(broker):
    pytest.importorskip("kafka")
    from kafka import TopicPartition
    from conftest import produce_all
    topic = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, topic, [{"value": b"x%d" % i} for i in range(7)], acks="all")
    tp = TopicPartition(topic, 0)
    sent = []
    c = _consumer(broker.bootstrap, unique_topic("g"), (0, 9), sent)
    c.assign([tp])
    c.seek_to_end(tp)
    assert c.position(tp) == 7
    c.seek_to_beginning(tp)
    assert c.position(tp) == 0
    c.close()
    assert (LIST_OFFSETS, 0) in [(k, v) for _, k, v in sent], sent


def test_kafka_python_admin_on_old_api_versions_creates_and_deletes_topics(broker):
    pytest.importorskip("kafka")
    from kafka.admin import KafkaAdminClient, NewTopic

    for api_version, create_version in (((0, 10, 1), 0), ((0, 10, 2), 1)):
        sent = []
        a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, api_version=api_version)
        client_send = a._client.send

        def send(node_id, request, **kw):
            sent.append((request.API_KEY, request.API_VERSION))
            return client_send(node_id, request, **kw)

        a._client.send = send
        name = unique_topic("kp-old")
        a.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
        assert (CREATE_TOPICS, create_version) in sent, sent
        assert _partitions(broker.bootstrap, name) == 2
        a.delete_topics([name])
        assert (DELETE_TOPICS, 0) in sent, sent
        a.close()
        deadline = time.monotonic() + 10
        while _partitions(broker.bootstrap, name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _partitions(broker.bootstrap, name) is None



def _consumer(bootstrap, group, api_version, sent):
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, api_version=api_version,
                      enable_auto_commit=False)
    client_send = c._client.send

    def send(node_id, request, **kw):
        sent.append((type(request).__name__, request.API_KEY, request.API_VERSION))
        return client_send(node_id, request, **kw)

    c._client.send = send
    return c


def test_kafka_python_old_api_version_commits_survive_a_restart(broker):
    pytest.importorskip("kafka")
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = create_topic(broker.bootstrap, partitions=2)
    group = unique_topic("g")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    # Kafka 0.8.2's protocol: OffsetCommit v1 and OffsetFetch v1.
    sent = []
    c = _consumer(broker.bootstrap, group, (0, 8, 2), sent)
    c.assign([tp0, tp1])
    c.commit({tp0: OffsetAndMetadata(5, "a", -1), tp1: OffsetAndMetadata(9, "b", -1)})
    assert c.committed(tp0) == 5
    c.close()
    assert (OFFSET_COMMIT, 1) in [(k, v) for _, k, v in sent], sent

    # A restarted consumer on Kafka 0.8.1's protocol (OffsetCommit v0,
    # OffsetFetch v0) reads what the first one committed, and commits more.
    sent = []
    c = _consumer(broker.bootstrap, group, (0, 8, 1), sent)
    c.assign([tp0, tp1])
    assert c.committed(tp0) == 5
    assert c.committed(tp1) == 9
    c.commit({tp0: OffsetAndMetadata(6, "", -1)})
    c.close()
    versions = [(k, v) for _, k, v in sent]
    assert (OFFSET_FETCH, 0) in versions and (OFFSET_COMMIT, 0) in versions, sent

    # A current client (versions from ApiVersions) sees the same offsets.
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    assert c.committed(tp0) == 6
    assert c.committed(tp1) == 9
    c.close()

    # And they survive a broker restart.
    broker.restart()
    sent = []
    c = _consumer(broker.bootstrap, group, (0, 8, 1), sent)
    assert c.committed(tp0) == 6
    c.close()
