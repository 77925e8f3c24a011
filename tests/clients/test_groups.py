"""Consumer groups through real clients (issue #4): classic groups with
eager and cooperative rebalancing, KIP-848 `group.protocol=consumer` groups,
static membership, committed offsets across broker restarts, the admin
group APIs and `corelog group list|describe`.

Clients: PyPI confluent-kafka (librdkafka current) and kafka-python.

Rebalances are made to happen while no messages flow (each step waits for
the group to settle before producing), so "every message exactly once" is
what Kafka promises here and not a matter of timing: a member commits what
it read before the next rebalance starts.
"""
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType

import kproto
from conftest import NODE_ID, _die_with_parent, admin, corelog_bin, create_topic, produce_all

pytestmark = pytest.mark.timeout(60)

# Broker group settings for fast tests: short minimum session timeout, no
# initial rebalance delay, and KIP-848 members that heartbeat every 500 ms.
GROUPS_TOML = """\
[groups]
min_session_timeout_ms = 1000
initial_rebalance_delay_ms = 0
consumer_session_timeout_ms = 6000
consumer_heartbeat_interval_ms = 500
"""

# Classic members: short heartbeats so a rebalance is noticed within a
# fraction of a second, and a bounded rebalance timeout (max.poll.interval.ms
# is what librdkafka sends as the JoinGroup rebalance timeout).
CLASSIC_CONF = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 300, "max.poll.interval.ms": 15000}
# KIP-848 members: the broker sets the session timeout and heartbeat
# interval; librdkafka refuses the classic settings with this protocol.
KIP848_CONF = {"group.protocol": "consumer"}
SETTLE_TIMEOUT_S = 25.0  # a rebalance, a join, or reading a batch


@pytest.fixture
def gbroker(broker_factory, tmp_path):
    """A broker with the fast group settings above."""
    cfg = tmp_path / "corelog-groups.toml"
    cfg.write_text(GROUPS_TOML)
    return broker_factory(extra_args=["--config", str(cfg)])


@pytest.fixture
def members(gbroker):
    """Tracks the consumers a test creates and closes those still open at
    teardown (before the broker is killed)."""
    made = []
    yield made
    for m in made:
        m.close(quiet=True)


def unique_group(prefix="g"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def wait_until(cond, timeout, what, poll_s=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll_s)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


# ------------------------------------------------------------------ members --
class Member:
    """One confluent-kafka consumer in a group: what it read, and the
    partitions the rebalance callbacks gave and took (librdkafka applies the
    assignment itself after each callback, eager or incremental)."""

    def __init__(self, bootstrap, group, topics, name, protocol="classic", **conf):
        self.name = name
        self.msgs = []  # (partition, offset, value) in delivery order
        self.assigned = []  # list of partition lists, one per on_assign
        self.revoked = []  # list of partition lists, one per on_revoke
        self.lost = []
        self.errors = []  # KafkaError from error_cb and consume()
        self.commit_errors = []
        self.closed = False
        c = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
             "auto.offset.reset": "earliest", "enable.auto.commit": False, "enable.partition.eof": False,
             "error_cb": self.errors.append}
        c.update(CLASSIC_CONF if protocol == "classic" else KIP848_CONF)
        c.update(conf)
        self.c = Consumer(c)
        self.c.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
                         on_lost=self._on_lost)

    def _on_assign(self, _consumer, partitions):
        self.assigned.append(sorted(p.partition for p in partitions))

    def _on_revoke(self, _consumer, partitions):
        self.revoked.append(sorted(p.partition for p in partitions))

    def _on_lost(self, _consumer, partitions):
        self.lost.append(sorted(p.partition for p in partitions))

    def parts(self):
        """Partition numbers currently assigned."""
        if self.closed:
            return set()
        return {tp.partition for tp in self.c.assignment()}

    def poll(self, timeout=0.05, commit=True):
        """Serves callbacks and reads what is there; with `commit`, commits
        what it read before returning (at-least-once, as applications do)."""
        if self.closed:
            return
        got = False
        for m in self.c.consume(num_messages=1000, timeout=timeout):
            if m.error():
                self.errors.append(m.error())
                continue
            self.msgs.append((m.partition(), m.offset(), m.value()))
            got = True
        if got and commit:
            try:
                self.c.commit(asynchronous=False)
            except KafkaException as e:
                self.commit_errors.append(e.args[0])

    def offsets(self, partition):
        return [o for p, o, _ in self.msgs if p == partition]

    def close(self, quiet=False):
        if self.closed:
            return
        self.closed = True
        try:
            self.c.close()
        except (KafkaException, RuntimeError):
            if not quiet:
                raise

    def __repr__(self):
        return "<%s parts=%s read=%d assigned=%s revoked=%s lost=%s errors=%s commit_errors=%s>" % (
            self.name, sorted(self.parts()), len(self.msgs), self.assigned, self.revoked, self.lost,
            [str(e) for e in self.errors[-3:]], [str(e) for e in self.commit_errors[-3:]])


def pump(group_members, until, what, timeout=SETTLE_TIMEOUT_S, commit=True):
    """Polls every member in turn until `until()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in group_members:
            m.poll(commit=commit)
        if until():
            return
    raise AssertionError("timed out after %.0f s waiting for %s: %r" % (timeout, what, group_members))


def pump_for(group_members, seconds, commit=True):
    """Keeps polling for a while (to see that nothing more arrives)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for m in group_members:
            m.poll(commit=commit)


def produce_batch(bootstrap, topic, partitions, per_partition, tag):
    """per_partition messages to each partition; returns the values."""
    msgs = [{"value": b"%s-p%d-%d" % (tag, p, i), "partition": p}
            for p in range(partitions) for i in range(per_partition)]
    produce_all(bootstrap, topic, msgs, acks="all")
    return {m["value"] for m in msgs}


def assert_read_once(group_members, expected_values):
    values = Counter(v for m in group_members for _, _, v in m.msgs)
    dups = {v: n for v, n in values.items() if n > 1}
    assert not dups, "read more than once: %r" % sorted(dups)[:10]
    missing = expected_values - set(values)
    assert not missing, "never read: %r" % sorted(missing)[:10]
    extra = set(values) - expected_values
    assert not extra, "read unexpected messages: %r" % sorted(extra)[:10]


def read_count(group_members):
    return sum(len(m.msgs) for m in group_members)


def assert_each_read_only_own_partitions(group_members, before):
    """Each member read only from partitions it owned; `before` maps a
    member to how many of its messages precede the current assignment."""
    for m in group_members:
        mine = m.parts()
        foreign = {p for p, _, _ in m.msgs[before.get(m, 0):]} - mine
        assert not foreign, "%s read partitions %s it does not own %s" % (m.name, foreign, sorted(mine))


# ------------------------------------------------- child consumer (SIGKILL) --
CHILD_CONSUMER = r'''
import json, os, sys
from confluent_kafka import Consumer
status_path, conf, topic = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
c = Consumer(conf)
c.subscribe([topic])
last = None
while True:
    m = c.poll(0.1)
    if m is not None and m.error():
        print("error:", m.error(), file=sys.stderr, flush=True)
    now = sorted(tp.partition for tp in c.assignment())
    if now != last:
        with open(status_path + ".tmp", "w") as f:
            f.write(json.dumps({"parts": now, "member_id": c.memberid()}))
        os.replace(status_path + ".tmp", status_path)
        last = now
'''


class ChildConsumer:
    """A confluent-kafka group member in another process, so that it can die
    without leaving (librdkafka heartbeats from a background thread, so a
    consumer in this process that merely stops polling stays a member)."""

    def __init__(self, tmp_path, bootstrap, group, topic, session_timeout_ms):
        self.status = tmp_path / ("child-%s.json" % uuid.uuid4().hex[:6])
        script = tmp_path / "child_consumer.py"
        script.write_text(CHILD_CONSUMER)
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": "child",
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": session_timeout_ms, "heartbeat.interval.ms": 300,
                "max.poll.interval.ms": 15000}
        self.log_path = tmp_path / "child-consumer.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.status), json.dumps(conf), topic],
                                     stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def parts(self):
        try:
            return set(json.loads(self.status.read_text())["parts"])
        except (FileNotFoundError, ValueError, KeyError):
            return set()

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()

    def __repr__(self):
        return "<child parts=%s rc=%s log=%s>" % (sorted(self.parts()), self.proc.poll(),
                                                   self.log_path.read_text(errors="replace")[-500:])


# --------------------------------------------------------------- the tests --
def test_two_members_split_partitions_leave_and_crash(gbroker, members, tmp_path):
    """Two librdkafka members of one group share a 4-partition topic 2 + 2
    and read every message once; when one leaves (close) the other takes all
    4 and resumes at the leaver's commits; a member killed without leaving is
    dropped after its session timeout and its partitions move back."""
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=4)
    group = unique_group()
    c1 = Member(b, group, [topic], "c1")
    c2 = Member(b, group, [topic], "c2")
    members += [c1, c2]
    pump([c1, c2], lambda: len(c1.parts()) == 2 and len(c2.parts()) == 2, "a 2 + 2 split")
    assert c1.parts() | c2.parts() == {0, 1, 2, 3}
    assert not c1.parts() & c2.parts()

    batch1 = produce_batch(b, topic, 4, 50, b"one")
    pump([c1, c2], lambda: read_count([c1, c2]) >= 200, "both members to read batch one")
    pump_for([c1, c2], 0.5)
    assert_read_once([c1, c2], batch1)
    assert_each_read_only_own_partitions([c1, c2], {})
    assert c1.msgs and c2.msgs

    # A clean leave: c2 has committed what it read; c1 takes all four
    # partitions and continues from c2's commits (no re-reads of batch one).
    c2.close()
    c1_before = len(c1.msgs)
    pump([c1], lambda: c1.parts() == {0, 1, 2, 3}, "c1 to own all 4 partitions after c2 left")
    batch2 = produce_batch(b, topic, 4, 25, b"two")
    pump([c1], lambda: len(c1.msgs) >= c1_before + 100, "c1 to read batch two")
    pump_for([c1], 0.5)
    assert_read_once([c1, c2], batch1 | batch2)

    # A crash: a member in another process joins, gets 2 partitions, and
    # is killed with SIGKILL (no LeaveGroup). Its partitions return to c1
    # once its session times out, not before.
    session_timeout_ms = 3000
    child = ChildConsumer(tmp_path, b, group, topic, session_timeout_ms)
    try:
        pump([c1], lambda: len(c1.parts()) == 2 and len(child.parts()) == 2,
             "a 2 + 2 split with the child process (%r)" % (child,))
        assert c1.parts() | child.parts() == {0, 1, 2, 3}
        child.kill9()
        killed_at = time.monotonic()
        pump([c1], lambda: c1.parts() == {0, 1, 2, 3},
             "c1 to get the killed member's partitions", timeout=session_timeout_ms / 1000 + 15)
        took_s = time.monotonic() - killed_at
    finally:
        child.cleanup()
    # The member's last heartbeat was at most one interval before the kill.
    assert took_s >= session_timeout_ms / 1000 - 1.0, \
        "the killed member was dropped after %.1f s, before its %d ms session timeout" % (took_s, session_timeout_ms)
    before = len(c1.msgs)
    batch3 = produce_batch(b, topic, 4, 10, b"three")
    pump([c1], lambda: len(c1.msgs) >= before + 40, "c1 to read batch three")
    pump_for([c1], 0.5)
    assert_read_once([c1, c2], batch1 | batch2 | batch3)
    assert not c1.commit_errors, c1.commit_errors


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_committed_offsets_survive_broker_restart(gbroker, members, how):
    """Offsets committed (with metadata) before a crash or a clean shutdown
    are there after the restart: a new member of the group resumes exactly
    after them."""
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=2)
    group = unique_group("restart")
    produce_batch(b, topic, 2, 50, b"r")
    m = Member(b, group, [topic], "before")
    members.append(m)
    pump([m], lambda: len(m.msgs) >= 100, "the first member to read everything", commit=False)
    commit = [TopicPartition(topic, 0, 30, "meta-p0"), TopicPartition(topic, 1, 20, "meta-p1")]
    result = m.c.commit(offsets=commit, asynchronous=False)
    assert all(tp.error is None for tp in result), result
    got = m.c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    assert [(tp.offset, tp.metadata) for tp in got] == [(30, "meta-p0"), (20, "meta-p1")]
    m.close()

    gbroker.restart(kill=(how == "kill9"))

    m2 = Member(b, group, [topic], "after")
    members.append(m2)
    got = m2.c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=20)
    assert [(tp.offset, tp.metadata) for tp in got] == [(30, "meta-p0"), (20, "meta-p1")], got
    pump([m2], lambda: len(m2.msgs) >= 50, "the new member to read what follows the commits", commit=False)
    pump_for([m2], 1.0, commit=False)
    assert m2.offsets(0) == list(range(30, 50))
    assert m2.offsets(1) == list(range(20, 50))
    assert {v for _, _, v in m2.msgs} == {b"r-p0-%d" % i for i in range(30, 50)} | \
        {b"r-p1-%d" % i for i in range(20, 50)}


def test_kafka_python_and_confluent_members_share_a_group(gbroker, members):
    """A kafka-python and a librdkafka consumer agree on a protocol (range),
    get 2 partitions each, read every message once; when the kafka-python
    member leaves, the other takes its partitions and resumes at its commits."""
    from kafka import KafkaConsumer
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=4)
    group = unique_group("interop")
    cc = Member(b, group, [topic], "confluent")
    members.append(cc)
    kc = KafkaConsumer(bootstrap_servers=b, group_id=group, client_id="kafka-python",
                       auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=6000, heartbeat_interval_ms=300, max_poll_interval_ms=15000,
                       request_timeout_ms=20000, fetch_max_wait_ms=100, bootstrap_timeout_ms=15000)
    # The topic's metadata before the subscription, as a long-running
    # application has it. kafka-python 3.0.12 can wedge a leader that joins
    # before it knows the topic: it assigns nothing, rejoins once the
    # metadata arrives, and when a short poll() returns while that join is
    # in flight, the join's own assignment makes need_rejoin() false, so no
    # later poll() collects the finished join; the member never takes its
    # partitions and never heartbeats again, and the broker rightly expires
    # it. Reproduced against this broker in 4 of 30 tries with the topic
    # named at construction, 0 of 70 with it known first (client DEBUG logs:
    # "No partition metadata for topic", then SyncGroup answered and no
    # "Enabling heartbeat"). Two CI runs lost this test to it.
    assert kc.partitions_for_topic(topic) == {0, 1, 2, 3}
    kc.subscribe([topic])
    kc_msgs = []

    class KPoller:
        name = "kafka-python"

        def poll(self, commit=True):
            got = False
            for recs in kc.poll(timeout_ms=50).values():
                for r in recs:
                    kc_msgs.append((r.partition, r.offset, r.value))
                    got = True
            if got and commit:
                kc.commit()

        def __repr__(self):
            return "<kafka-python parts=%s read=%d>" % (sorted(tp.partition for tp in kc.assignment()),
                                                         len(kc_msgs))

    kp = KPoller()
    try:
        pump([cc, kp], lambda: len(cc.parts()) == 2 and len(kc.assignment()) == 2, "a 2 + 2 split")
        kparts = {tp.partition for tp in kc.assignment()}
        assert cc.parts() | kparts == {0, 1, 2, 3} and not cc.parts() & kparts
        batch1 = produce_batch(b, topic, 4, 25, b"ip")
        pump([cc, kp], lambda: len(cc.msgs) + len(kc_msgs) >= 100, "both members to read the batch")
        pump_for([cc, kp], 0.5)
        values = Counter([v for _, _, v in cc.msgs] + [v for _, _, v in kc_msgs])
        assert set(values) == batch1 and max(values.values()) == 1, values
        assert {p for p, _, _ in kc_msgs} == kparts
        assert {p for p, _, _ in cc.msgs} == cc.parts()
    finally:
        kc.close()  # sends LeaveGroup
    before = len(cc.msgs)
    pump([cc], lambda: cc.parts() == {0, 1, 2, 3}, "the librdkafka member to take all 4 partitions")
    batch2 = produce_batch(b, topic, 4, 5, b"ip2")
    pump([cc], lambda: len(cc.msgs) >= before + 20, "the librdkafka member to read batch two")
    pump_for([cc], 0.5)
    assert {v for _, _, v in cc.msgs[before:]} == batch2
    assert len(cc.msgs) == before + 20


def test_cooperative_sticky_moves_only_what_it_must(gbroker, members):
    """With cooperative-sticky, a second member joining takes 2 of the first
    member's 4 partitions; the first keeps the other 2 throughout (its
    revocations name only the moved partitions) and nothing is read twice."""
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=4)
    group = unique_group("coop")
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    c1 = Member(b, group, [topic], "c1", **conf)
    members.append(c1)
    pump([c1], lambda: c1.parts() == {0, 1, 2, 3}, "c1 to own all 4 partitions")
    batch1 = produce_batch(b, topic, 4, 25, b"co")
    pump([c1], lambda: len(c1.msgs) >= 100, "c1 to read batch one")

    c2 = Member(b, group, [topic], "c2", **conf)
    members.append(c2)
    pump([c1, c2], lambda: len(c1.parts()) == 2 and len(c2.parts()) == 2, "a 2 + 2 split")
    moved = c2.parts()
    # Incremental: c1 gave up exactly the partitions c2 got, never all four.
    assert sorted(p for r in c1.revoked for p in r) == sorted(moved), c1
    assert c1.parts() == {0, 1, 2, 3} - moved
    assert not c1.lost, c1
    assert c1.assigned[0] == [0, 1, 2, 3] and all(a == [] for a in c1.assigned[1:]), c1

    batch2 = produce_batch(b, topic, 4, 25, b"co2")
    pump([c1, c2], lambda: read_count([c1, c2]) >= 200, "both members to read batch two")
    pump_for([c1, c2], 0.5)
    assert_read_once([c1, c2], batch1 | batch2)
    assert {p for p, _, _ in c2.msgs} == moved


@pytest.mark.parametrize("assignor", [None, "uniform", "range"])
def test_kip848_consumers(gbroker, members, assignor):
    """KIP-848 (group.protocol=consumer): one member gets all partitions and
    reads; a second one joins and the server-side assignor splits the topic
    2 + 2; every message is read once; the group describes as a consumer
    group with the assignor's name."""
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=4)
    group = unique_group("kip848")
    conf = {} if assignor is None else {"group.remote.assignor": assignor}
    c1 = Member(b, group, [topic], "c1", protocol="consumer", **conf)
    members.append(c1)
    pump([c1], lambda: c1.parts() == {0, 1, 2, 3}, "c1 to own all 4 partitions")
    batch1 = produce_batch(b, topic, 4, 25, b"k")
    pump([c1], lambda: len(c1.msgs) >= 100, "c1 to read batch one")

    c2 = Member(b, group, [topic], "c2", protocol="consumer", **conf)
    members.append(c2)
    pump([c1, c2], lambda: len(c1.parts()) == 2 and len(c2.parts()) == 2, "a 2 + 2 split")
    assert c1.parts() | c2.parts() == {0, 1, 2, 3}
    if assignor == "range":
        assert {frozenset(c1.parts()), frozenset(c2.parts())} == {frozenset({0, 1}), frozenset({2, 3})}

    batch2 = produce_batch(b, topic, 4, 25, b"k2")
    pump([c1, c2], lambda: read_count([c1, c2]) >= 200, "both members to read batch two")
    pump_for([c1, c2], 0.5)
    assert_read_once([c1, c2], batch1 | batch2)
    assert not c1.commit_errors and not c2.commit_errors, (c1, c2)

    desc = admin(b).describe_consumer_groups([group], request_timeout=15)[group].result(timeout=15)
    assert desc.type == ConsumerGroupType.CONSUMER
    assert desc.state == ConsumerGroupState.STABLE
    assert desc.partition_assignor == (assignor or "uniform")
    assert sorted(mb.member_id for mb in desc.members) == sorted([c1.c.memberid(), c2.c.memberid()])
    by_member = {mb.member_id: {tp.partition for tp in mb.assignment.topic_partitions} for mb in desc.members}
    assert by_member == {c1.c.memberid(): c1.parts(), c2.c.memberid(): c2.parts()}

    # The last member leaving takes the group to Empty; its offsets remain.
    c1.close()
    c2.close()
    wait_until(lambda: _listed(b)[group].state == ConsumerGroupState.EMPTY, 15,
               "the group to be Empty after both members left")
    assert _listed(b)[group].type == ConsumerGroupType.CONSUMER
    assert _group_offsets(b, group) == {(topic, p): 50 for p in range(4)}


def _describe(b, group):
    return admin(b).describe_consumer_groups([group], request_timeout=15)[group].result(timeout=15)


def _listed(b, **kwargs):
    res = admin(b).list_consumer_groups(request_timeout=15, **kwargs).result(timeout=15)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def _group_offsets(b, group, tps=None):
    req = ConsumerGroupTopicPartitions(group, tps)
    res = admin(b).list_consumer_group_offsets([req], request_timeout=15)[group].result(timeout=15)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}


def test_admin_list_describe_offsets_and_delete_group(gbroker, members):
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=2)
    group = unique_group("adm")
    produce_batch(b, topic, 2, 10, b"a")
    m = Member(b, group, [topic], "adm-client")
    members.append(m)
    pump([m], lambda: len(m.msgs) >= 20, "the member to read and commit everything")

    listed = _listed(b)
    assert group in listed
    assert listed[group].state == ConsumerGroupState.STABLE
    assert listed[group].type == ConsumerGroupType.CLASSIC
    assert listed[group].is_simple_consumer_group is False
    assert group in _listed(b, states={ConsumerGroupState.STABLE})
    assert group not in _listed(b, states={ConsumerGroupState.EMPTY})
    assert group in _listed(b, types={ConsumerGroupType.CLASSIC})
    assert group not in _listed(b, types={ConsumerGroupType.CONSUMER})

    d = _describe(b, group)
    assert d.group_id == group
    assert d.state == ConsumerGroupState.STABLE
    assert d.type == ConsumerGroupType.CLASSIC
    assert d.is_simple_consumer_group is False
    assert d.partition_assignor == "range"
    assert d.coordinator.id == NODE_ID
    assert len(d.members) == 1
    mb = d.members[0]
    assert mb.member_id == m.c.memberid()
    assert mb.client_id == "adm-client"
    assert mb.host  # the address the member connected from
    assert sorted((tp.topic, tp.partition) for tp in mb.assignment.topic_partitions) == [(topic, 0), (topic, 1)]

    assert _group_offsets(b, group) == {(topic, 0): 10, (topic, 1): 10}
    assert _group_offsets(b, group, [TopicPartition(topic, 1)]) == {(topic, 1): 10}

    # kafka-python's admin client sees the same.
    from kafka.admin import KafkaAdminClient
    ka = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=15000, bootstrap_timeout_ms=15000)
    try:
        assert (group, "consumer") in [(g["group_id"], g["protocol_type"]) for g in ka.list_groups()]
        offsets = ka.list_group_offsets({group: None})[group]
        assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == \
            {(topic, 0): 10, (topic, 1): 10}
    finally:
        ka.close()

    # A group with a live member cannot be deleted.
    fut = admin(b).delete_consumer_groups([group], request_timeout=15)[group]
    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value

    m.close()
    wait_until(lambda: _describe(b, group).state == ConsumerGroupState.EMPTY, 15, "the group to be Empty")
    assert _describe(b, group).members == []
    assert _group_offsets(b, group) == {(topic, 0): 10, (topic, 1): 10}  # an empty group keeps its offsets
    assert admin(b).delete_consumer_groups([group], request_timeout=15)[group].result(timeout=15) is None

    assert group not in _listed(b)
    offsets = _group_offsets(b, group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert all(o < 0 for o in offsets.values()), offsets  # nothing committed any more
    try:
        state = _describe(b, group).state
        assert state == ConsumerGroupState.DEAD, state
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e
    # Deleting it again: GROUP_ID_NOT_FOUND.
    with pytest.raises(KafkaException) as ei:
        admin(b).delete_consumer_groups([group], request_timeout=15)[group].result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value


# OffsetDelete (API 47): neither client has it, so it is sent by hand.
#   request v0 : string group_id, [string name, [int32 partition_index]]
#   response v0: int16 error_code, int32 throttle_time_ms,
#                [string name, [int32 partition_index, int16 error_code]]
API_OFFSET_DELETE = 47
ERR_GROUP_ID_NOT_FOUND = 69
ERR_GROUP_SUBSCRIBED_TO_TOPIC = 86


def offset_delete(port, group, topic, partitions):
    """-> (error_code, {partition: error_code}) from one OffsetDelete v0 to
    the (single) broker, which coordinates every group."""
    body = kproto.string(group) + kproto.array([kproto.string(topic) + kproto.array(
        [kproto.i32(p) for p in partitions])])
    with kproto.connect(port) as s:
        corr, r = kproto.roundtrip(s, kproto.frame(kproto.request_header_v1(API_OFFSET_DELETE, 0, 11) + body))
    assert corr == 11
    err = r.i16()
    r.i32()  # throttle_time_ms
    topics = r.array(lambda q: (q.string(), q.array(lambda z: (z.i32(), z.i16()))))
    parts = {p: e for name, ps in (topics or []) if name == topic for p, e in ps}
    return err, parts


def test_admin_alter_and_delete_offsets(gbroker, members):
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=2)
    group = unique_group("alter")
    produce_batch(b, topic, 2, 10, b"al")
    m = Member(b, group, [topic], "first")
    members.append(m)
    pump([m], lambda: len(m.msgs) >= 20, "the member to read and commit everything")

    # Offsets of a group with live members can neither be reset nor deleted.
    fut = admin(b).alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])], request_timeout=15)[group]
    try:
        res = fut.result(timeout=15)
        codes = [tp.error.code() if tp.error else None for tp in res.topic_partitions]
    except KafkaException as e:
        codes = [e.args[0].code()]
    assert codes == [KafkaError.UNKNOWN_MEMBER_ID], codes
    err, parts = offset_delete(gbroker.port, group, topic, [0])
    assert (err, parts) == (0, {0: ERR_GROUP_SUBSCRIBED_TO_TOPIC}), (err, parts)
    assert _group_offsets(b, group) == {(topic, 0): 10, (topic, 1): 10}

    m.close()
    wait_until(lambda: _describe(b, group).state == ConsumerGroupState.EMPTY, 15, "the group to be Empty")

    res = admin(b).alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 7)])],
        request_timeout=15)[group].result(timeout=15)
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions
    assert _group_offsets(b, group) == {(topic, 0): 3, (topic, 1): 7}

    # A new member starts where the offsets were set.
    m2 = Member(b, group, [topic], "second")
    members.append(m2)
    pump([m2], lambda: len(m2.msgs) >= 10, "the new member to read from the altered offsets", commit=False)
    pump_for([m2], 0.5, commit=False)
    assert m2.offsets(0) == list(range(3, 10)) and m2.offsets(1) == list(range(7, 10))
    m2.close()

    # OffsetDelete on the empty group removes just that partition's offset.
    wait_until(lambda: _describe(b, group).state == ConsumerGroupState.EMPTY, 15, "the group to be Empty again")
    err, parts = offset_delete(gbroker.port, group, topic, [0])
    assert (err, parts) == (0, {0: 0}), (err, parts)
    offsets = _group_offsets(b, group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert offsets[(topic, 0)] < 0 and offsets[(topic, 1)] == 7, offsets
    err, _ = offset_delete(gbroker.port, unique_group("nosuch"), topic, [0])
    assert err == ERR_GROUP_ID_NOT_FOUND


def _fenced(m):
    """librdkafka raises FENCED_INSTANCE_ID as a fatal error: error_cb sees
    _FATAL whose text names the fencing."""
    for e in m.errors:
        if e.code() == KafkaError.FENCED_INSTANCE_ID:
            return True
        if (e.fatal() or e.code() == KafkaError._FATAL) and "fenced" in e.str().lower():
            return True
    return False


STATIC_SESSION_MS = 12000  # long enough that only a rejoin, not expiry, explains a quick return


def _static(b, group, topic, name, instance):
    return Member(b, group, [topic], name, **{"group.instance.id": instance, "session.timeout.ms": STATIC_SESSION_MS})


def _static_pair(b, group, topic, restarting_is_leader, members):
    """Two static members with 2 partitions each. The group leader is the
    member that joined first: -> (the member to restart, the other one)."""
    first = _static(b, group, topic, "first", "inst-first")
    members.append(first)
    pump([first], lambda: first.parts() == {0, 1, 2, 3}, "the first member to own all 4 partitions")
    second = _static(b, group, topic, "second", "inst-second")
    members.append(second)
    pump([first, second], lambda: len(first.parts()) == 2 and len(second.parts()) == 2, "a 2 + 2 split")
    pump_for([first, second], 1.0)  # let the last rebalance callbacks settle
    return (first, second) if restarting_is_leader else (second, first)


@pytest.mark.parametrize("restarting", ["leader", "follower"])
def test_static_member_restart_keeps_its_partitions(gbroker, members, restarting):
    """A static member (group.instance.id) does not leave on close, and when
    it comes back within its session timeout it gets its partitions back
    without a rebalance: the other member keeps its own all along. Checked
    for the group leader (which Kafka lets skip the assignment, JoinGroup
    v9+, or hands the member list again on older versions) and a follower."""
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=4)
    group = unique_group("static")
    a, o = _static_pair(b, group, topic, restarting == "leader", members)
    a_parts, o_parts = a.parts(), o.parts()
    o_revocations = len(o.revoked)
    instance = "inst-first" if restarting == "leader" else "inst-second"

    a.close()
    pump_for([o], 2.0)
    assert o.parts() == o_parts and len(o.revoked) == o_revocations, o
    restarted_at = time.monotonic()
    a2 = _static(b, group, topic, "restarted", instance)
    members.append(a2)
    pump([a2, o], lambda: a2.parts() == a_parts, "the restarted static member to get its partitions back",
         timeout=STATIC_SESSION_MS / 1000 - 2)
    assert time.monotonic() - restarted_at < STATIC_SESSION_MS / 1000
    pump_for([a2, o], 1.0)
    assert o.parts() == o_parts and len(o.revoked) == o_revocations, \
        "the other member was rebalanced by a static rejoin: %r" % o
    d = _describe(b, group)
    assert sorted(mb.group_instance_id for mb in d.members) == ["inst-first", "inst-second"]
    assert a2.c.memberid() in {mb.member_id for mb in d.members}


def test_duplicate_static_instance_fences_the_older_one(gbroker, members):
    """A second consumer with the same group.instance.id takes over the
    instance's partitions; the first gets a fatal FENCED_INSTANCE_ID."""
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=4)
    group = unique_group("fence")
    old, o = _static_pair(b, group, topic, False, members)
    old_parts, o_parts = old.parts(), o.parts()
    new = _static(b, group, topic, "newcomer", "inst-second")
    members.append(new)
    pump([old, new, o], lambda: _fenced(old) and new.parts() == old_parts,
         "the older instance to be fenced and the newcomer to own its partitions", timeout=20)
    assert o.parts() == o_parts, o


# ----------------------------------------------------------- corelog group --
def corelog_group(*args, timeout=30):
    return subprocess.run([str(corelog_bin()), "group", *args], capture_output=True, text=True, timeout=timeout)


def parse_describe(stdout):
    """-> (header fields, {(topic, partition): (committed, end, lag, member)})."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    m = re.match(r"GROUP (\S+)\s+TYPE (\S+)\s+STATE (\S+)\s+PROTOCOL (\S+)\s+MEMBERS (\d+)$", lines[0])
    assert m, "bad header line: %r" % lines[0]
    header = {"group": m.group(1), "type": m.group(2), "state": m.group(3), "protocol": m.group(4),
              "members": int(m.group(5))}
    assert lines[1].split() == ["TOPIC", "PARTITION", "COMMITTED-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER"], lines[1]
    rows = {}
    for line in lines[2:]:
        topic, partition, committed, end, lag, member = line.split()
        rows[(topic, int(partition))] = (committed, end, lag, member)
    return header, rows


def parse_list(stdout):
    lines = stdout.splitlines()
    assert lines[0].split() == ["GROUP", "STATE", "TYPE"], lines[0]
    return {l.split()[0]: tuple(l.split()[1:]) for l in lines[1:] if l.strip()}


def test_cli_group_describe_shows_offsets_lag_and_owner(gbroker, members):
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=2)
    other = create_topic(b, partitions=1)
    group = unique_group("lag")
    produce_all(b, topic, [{"value": b"x%d" % i, "partition": 0} for i in range(30)] +
                [{"value": b"y%d" % i, "partition": 1} for i in range(20)], acks="all")
    produce_all(b, other, [{"value": b"z%d" % i, "partition": 0} for i in range(4)], acks="all")
    m = Member(b, group, [topic, other], "lagger")
    members.append(m)
    pump([m], lambda: len(m.msgs) >= 54, "the member to read everything", commit=False)
    m.c.commit(offsets=[TopicPartition(topic, 0, 10), TopicPartition(topic, 1, 20)], asynchronous=False)
    member_id = m.c.memberid()

    r = corelog_group("describe", group, "--bootstrap-server", b)
    assert r.returncode == 0, r.stderr
    header, rows = parse_describe(r.stdout)
    assert header == {"group": group, "type": "classic", "state": "Stable", "protocol": "range", "members": 1}
    assert rows == {
        (topic, 0): ("10", "30", "20", member_id),
        (topic, 1): ("20", "20", "0", member_id),
        (other, 0): ("-", "4", "-", member_id),  # assigned, never committed
    }, r.stdout

    r = corelog_group("list", "--bootstrap-server", b)
    assert r.returncode == 0, r.stderr
    assert parse_list(r.stdout)[group] == ("Stable", "classic")

    # More data raises the lag; without members the partitions show no owner.
    produce_all(b, topic, [{"value": b"w%d" % i, "partition": 1} for i in range(5)], acks="all")
    m.close()
    wait_until(lambda: _describe(b, group).state == ConsumerGroupState.EMPTY, 15, "the group to be Empty")
    r = corelog_group("describe", group, "--bootstrap-server", b)
    assert r.returncode == 0, r.stderr
    header, rows = parse_describe(r.stdout)
    assert (header["state"], header["members"]) == ("Empty", 0)
    assert rows == {(topic, 0): ("10", "30", "20", "-"), (topic, 1): ("20", "25", "5", "-")}, r.stdout
    assert parse_list(corelog_group("list", "--bootstrap-server", b).stdout)[group] == ("Empty", "classic")

    r = corelog_group("describe", "no-such-group-" + uuid.uuid4().hex[:6], "--bootstrap-server", b)
    assert r.returncode != 0 and "does not exist" in r.stderr, (r.returncode, r.stdout, r.stderr)


def test_cli_group_describe_kip848_group(gbroker, members):
    b = gbroker.bootstrap
    topic = create_topic(b, partitions=2)
    group = unique_group("lag848")
    produce_batch(b, topic, 2, 8, b"n")
    c1 = Member(b, group, [topic], "n1", protocol="consumer")
    c2 = Member(b, group, [topic], "n2", protocol="consumer")
    members += [c1, c2]
    pump([c1, c2], lambda: len(c1.parts()) == 1 and len(c2.parts()) == 1 and read_count([c1, c2]) >= 16,
         "a 1 + 1 split with everything read and committed")
    r = corelog_group("describe", group, "--bootstrap-server", b)
    assert r.returncode == 0, r.stderr
    header, rows = parse_describe(r.stdout)
    assert header["type"] == "consumer" and header["state"].lower() == "stable" and header["members"] == 2, header
    assert header["protocol"] == "uniform"
    owner = {p: m.c.memberid() for m in (c1, c2) for p in m.parts()}
    assert rows == {(topic, p): ("8", "8", "0", owner[p]) for p in (0, 1)}, r.stdout
    r = corelog_group("list", "--bootstrap-server", b)
    assert r.returncode == 0, r.stderr
    state, group_type = parse_list(r.stdout)[group]
    assert (state.lower(), group_type) == ("stable", "consumer"), r.stdout


def test_cli_group_unreachable_broker_fails_fast():
    r = corelog_group("list", "--bootstrap-server", "127.0.0.1:1", timeout=20)
    assert r.returncode != 0 and "cannot reach" in r.stderr, (r.returncode, r.stderr)
    r = corelog_group("describe", "g", "--bootstrap-server", "127.0.0.1:1", timeout=20)
    assert r.returncode != 0 and "cannot reach" in r.stderr, (r.returncode, r.stderr)
