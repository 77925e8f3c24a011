"""Go applications pinned years back (issue 21): Sarama 1.22, as Debian 12
packages it (golang-github-shopify-sarama-dev), configured for Kafka 2.1,
and confluent-kafka-go 0.11.6 (golang-github-confluentinc-confluent-kafka-go-dev,
on Debian's librdkafka 2.0.2): `tests/clients/go/ckgo_check` creates a
topic, produces idempotently with acks=all and lz4, and reads and commits
as a group member; a new consumer sees the commits.

`tests/clients/go/sarama_check` is built here with Debian's Go in GOPATH
mode (no module download) and run against the real broker: it creates a
topic with the cluster admin, produces keyed records in every codec (zstd is
refused, as Kafka refuses it in the Produce v3 that Sarama 1.22 sends),
consumes them, consumes and commits them as a consumer group member, reads
the commit back, lists topics (DescribeConfigs v0), adds partitions, alters
and describes a config, creates and deletes a topic; after a broker restart
the group's commit is still there. Two members of one group split a
topic's partitions 2 + 2, read every record once and commit it all.
Before issue 21 the
group's commits closed the connection (OffsetCommit v1) and ListTopics
failed with EOF.

kafka-go 0.2.1 (golang-github-segmentio-kafka-go-dev), `tests/clients/go/kafkago_check`,
writes message format v1 in Produce v2 and reads with Fetch v2, which the
broker converts (issue 21): every codec it has, a partition reader, and a
consumer group whose next member resumes at the commit. Before, it could not
write at all.
"""
import os
import shutil
import subprocess

import pytest

from conftest import HERE, create_topic, unique_topic

GOPATH_DEBIAN = "/usr/share/gocode"
SARAMA_SRC = GOPATH_DEBIAN + "/src/github.com/Shopify/sarama"


CKGO_SRC = GOPATH_DEBIAN + "/src/github.com/confluentinc/confluent-kafka-go"
KAFKA_GO_SRC = GOPATH_DEBIAN + "/src/github.com/segmentio/kafka-go"


def go_build(tmp_path_factory, name):
    """Builds tests/clients/go/NAME with Debian's Go and packages (GOPATH
    mode, no download) and returns the binary."""
    go = shutil.which("go")
    assert go, "no go on PATH: ci/install-client-deps.sh installs golang-go"
    out = tmp_path_factory.mktemp("go-" + name)
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH_DEBIAN, GOCACHE=str(out / "cache"),
               GOFLAGS="", CGO_ENABLED="1")
    binary = out / name
    r = subprocess.run([go, "build", "-o", str(binary), "."], cwd=HERE / "go" / name, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "go build failed:\n" + r.stdout + r.stderr
    return binary


@pytest.fixture(scope="module")
def sarama_check(tmp_path_factory):
    assert os.path.isdir(SARAMA_SRC), "no Sarama: ci/install-client-deps.sh installs golang-github-shopify-sarama-dev"
    return go_build(tmp_path_factory, "sarama_check")


@pytest.fixture(scope="module")
def ckgo_check(tmp_path_factory):
    assert os.path.isdir(CKGO_SRC), \
        "no confluent-kafka-go: ci/install-client-deps.sh installs golang-github-confluentinc-confluent-kafka-go-dev"
    return go_build(tmp_path_factory, "ckgo_check")


@pytest.fixture(scope="module")
def kafkago_check(tmp_path_factory):
    assert os.path.isdir(KAFKA_GO_SRC), \
        "no kafka-go: ci/install-client-deps.sh installs golang-github-segmentio-kafka-go-dev"
    return go_build(tmp_path_factory, "kafkago_check")


@pytest.mark.timeout(300)
def test_sarama_1_22_produces_consumes_commits_and_lists_topics(broker, sarama_check):
    topic, group = unique_topic("sarama"), unique_topic("sarama-g")
    r = subprocess.run([str(sarama_check), broker.bootstrap, topic, group], capture_output=True, text=True,
                       timeout=240)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + "\n--- broker ---\n" + broker.stderr_tail(30)
    for step in ("ok created topic", "ok consumed 100 records in order", "ok group",
                 "ok committed offset 100", "ok cluster admin lists", "refused in Produce v3",
                 "ok partitions added", "created and deleted"):
        assert step in out, (step, out)
    # Every request version it sent was served: none closed a connection.
    assert "unsupported api version" not in broker.stderr_tail(500)
    # The group's commit survives a broker restart.
    broker.restart()
    r = subprocess.run([str(sarama_check), "--committed", broker.bootstrap, topic, group], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "ok committed offset 100" in r.stdout, r.stdout + r.stderr


@pytest.mark.timeout(180)
def test_two_sarama_members_split_a_group_and_commit_everything_once(broker, sarama_check):
    topic, group = unique_topic("sarama2"), unique_topic("sarama2-g")
    r = subprocess.run([str(sarama_check), "--group-of-two", broker.bootstrap, topic, group],
                       capture_output=True, text=True, timeout=150)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + "\n--- broker ---\n" + broker.stderr_tail(30)
    # Range assignment: each member gets two adjacent partitions, either way round.
    assert ("ok members split the partitions [0 1] + [2 3]" in out
            or "ok members split the partitions [2 3] + [0 1]" in out), out
    for step in ("read 20 + 20 records, each once", "ok every partition committed at 10"):
        assert step in out, (step, out)


@pytest.mark.timeout(180)
def test_confluent_kafka_go_0_11_produces_idempotently_and_a_group_reads_and_commits(broker, ckgo_check):
    topic, group = unique_topic("ckgo"), unique_topic("ckgo-g")
    r = subprocess.run([str(ckgo_check), broker.bootstrap, topic, group], capture_output=True, text=True,
                       timeout=150)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + "\n--- broker ---\n" + broker.stderr_tail(30)
    for step in ("ok created topic", "ok produced 60 records", "read 60 records, each key in order",
                 "ok commits add up to 60"):
        assert step in out, (step, out)
    assert "unsupported api version" not in broker.stderr_tail(500)


@pytest.mark.timeout(240)
def test_kafka_go_0_2_writes_and_reads_message_format_v1_in_every_codec(broker, kafkago_check):
    topic, group = create_topic(broker.bootstrap), unique_topic("kafkago-g")
    r = subprocess.run([str(kafkago_check), broker.bootstrap, topic, group], capture_output=True, text=True,
                       timeout=200)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out + "\n--- broker ---\n" + broker.stderr_tail(30)
    for step in ("ok wrote 25 messages with codec none", "ok wrote 25 messages with codec gzip",
                 "ok wrote 25 messages with codec snappy", "ok wrote 25 messages with codec lz4",
                 "ok read 100 messages back in order with keys, values and times",
                 "ok group read 100 messages and committed", "ok a new member resumed at the committed offset 100"):
        assert step in out, (step, out)
    assert "unsupported api version" not in broker.stderr_tail(500)
    # The broker counted the conversions.
    assert "message-format conversions on this shard" in broker.stderr_tail(500)
