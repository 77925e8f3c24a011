"""Partition replication across three real brokers (issue 18, third
increment, behind `replication_preview = true`).

A topic with three replicas: followers copy the leader's log by fetching
as replicas, and an `acks=all` produce is answered only once every in-sync
replica holds it on disk. Then the leader is killed with SIGKILL: the
controller fences it, takes it out of the ISR and elects another in-sync
replica, and a consumer reads every acknowledged record from the new
leader, each once, at its offset. Produce goes on through the new leader.
The killed broker comes back as a follower, catches up and rejoins the ISR
(AlterPartition), and a second leader kill loses nothing either.
"""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic)

import kproto
from test_cluster_quorum import started_cluster, wait_for

pytestmark = pytest.mark.timeout(240)

TOPIC = "r3"


@pytest.fixture
def cluster(request, tmp_path):
    yield from started_cluster(request, tmp_path, "replication_preview = true\n", settled=True)


@pytest.fixture
def manual_cluster(request, tmp_path):
    """Leadership goes back to preferred replicas only when asked."""
    yield from started_cluster(
        request, tmp_path,
        "replication_preview = true\nleader_imbalance_check_interval_ms = 0\n"
        "replica_lag_time_max_ms = 3000\n", settled=True)


@pytest.fixture
def rebalancing_cluster(request, tmp_path):
    """The controller gives leadership back to preferred replicas every 2 s."""
    yield from started_cluster(
        request, tmp_path,
        "replication_preview = true\nleader_imbalance_check_interval_ms = 2000\n"
        "replica_lag_time_max_ms = 3000\n", settled=True)


def bootstrap(cluster, ids):
    return ",".join(cluster.nodes[i].bootstrap for i in ids)


def partition_state(cluster, via):
    """(leader, replicas, isr) of partition 0 as node `via` describes it."""
    try:
        md = AdminClient({"bootstrap.servers": cluster.nodes[via].bootstrap}).list_topics(
            topic=TOPIC, timeout=5)
    except Exception:  # noqa: BLE001 - a node that is down or starting
        return None
    t = md.topics.get(TOPIC)
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    p = t.partitions[0]
    return p.leader, sorted(p.replicas), sorted(p.isrs)


def produce(cluster, ids, values):
    """Produces `values` with acks=all through the brokers `ids`; returns
    the (offset, value) of each acknowledged record."""
    p = Producer({"bootstrap.servers": bootstrap(cluster, ids), "enable.idempotence": True,
                  "acks": "all", "linger.ms": 5, "message.timeout.ms": 30000})
    acked, errors = [], []

    def done(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.offset(), msg.value()))

    for v in values:
        p.produce(TOPIC, value=v, partition=0, on_delivery=done)
    assert p.flush(60) == 0
    assert errors == [], errors[:3]
    return acked


def consume(cluster, ids, expected, timeout=40):
    """Reads partition 0 from the start through `ids` until `expected`
    records came; returns their (offset, value)."""
    c = Consumer({"bootstrap.servers": bootstrap(cluster, ids), "group.id": "unused",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error() is not None:
            assert m.error().code() == KafkaError._PARTITION_EOF or m.error().retriable(), m.error()
            continue
        got.append((m.offset(), m.value()))
    c.close()
    return got


def new_leader(cluster, alive, old):
    """The leader every node of `alive` names, once it is not `old`."""
    states = [partition_state(cluster, i) for i in alive]
    if any(s is None for s in states):
        return None
    leaders = {s[0] for s in states}
    if len(leaders) != 1:
        return None
    leader = leaders.pop()
    return leader if leader in alive and leader != old else None


def test_acknowledged_writes_survive_leader_kills(cluster):
    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, 1, replication_factor=3)],
                    request_timeout=30)[TOPIC].result(timeout=40)
    state = wait_for("every node to describe the topic with its three replicas",
                     lambda: (lambda s: s if s and all(partition_state(cluster, i) == s
                                                       for i in (1, 2, 3)) else None)(
                         partition_state(cluster, 1)), 20)
    leader, replicas, isr = state
    assert replicas == [1, 2, 3] and isr == [1, 2, 3], state
    # Each node keeps a copy of the log.
    for i in (1, 2, 3):
        assert any(d.name == TOPIC + "-0" for d in n[i].data_dir.iterdir()), i

    first = [b"one-%d" % k for k in range(200)]
    acked = produce(cluster, [1, 2, 3], first)
    assert sorted(acked) == [(k, first[k]) for k in range(200)]

    # SIGKILL the leader: the controller fences it (its heartbeats stop),
    # drops it from the ISR and elects an in-sync follower.
    n[leader].kill9()
    alive = [i for i in (1, 2, 3) if i != leader]
    second = wait_for("a new leader among the survivors",
                      lambda: new_leader(cluster, alive, leader), 30)
    _, _, isr = partition_state(cluster, second)
    assert leader not in isr and second in isr, isr
    got = consume(cluster, alive, 200)
    assert got == [(k, first[k]) for k in range(200)], got[:5]

    # Writes go on through the new leader (its ISR is the two survivors).
    more = [b"two-%d" % k for k in range(50)]
    acked = produce(cluster, alive, more)
    assert sorted(acked) == [(200 + k, more[k]) for k in range(50)]

    # The killed broker comes back as a follower, catches up, and its
    # leader asks the controller to take it back into the ISR.
    n[leader].start()
    wait_for("the restarted broker back in the ISR",
             lambda: (lambda s: s if s and sorted(s[2]) == [1, 2, 3] else None)(
                 partition_state(cluster, second)), 40)

    # Kill the second leader too: whichever replica leads next (the one
    # that was killed first is eligible again) has every acknowledged record.
    n[second].kill9()
    alive = [i for i in (1, 2, 3) if i != second]
    third = wait_for("a third leader", lambda: new_leader(cluster, alive, second), 30)
    assert third in alive
    everything = [(k, first[k]) for k in range(200)] + [(200 + k, more[k]) for k in range(50)]
    got = consume(cluster, alive, 250)
    assert got == everything, (len(got), got[-3:])


def test_an_idempotent_producer_through_a_leader_kill_loses_and_duplicates_nothing(cluster):
    """Records keep coming while the leader is killed: the idempotent
    producer's retries reach the new leader, which has the producer state
    the old one built (replicated with the log), so every record is
    acknowledged, none twice, and a consumer reads them in order."""
    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, 1, replication_factor=3)],
                    request_timeout=30)[TOPIC].result(timeout=40)
    leader = wait_for("the topic's leader",
                      lambda: (lambda s: s[0] if s and s[2] == [1, 2, 3] else None)(
                          partition_state(cluster, 1)), 20)
    p = Producer({"bootstrap.servers": bootstrap(cluster, [1, 2, 3]), "enable.idempotence": True,
                  "acks": "all", "linger.ms": 2, "message.timeout.ms": 60000})
    acked, errors, acked_at = [], [], []

    def done(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.offset(), msg.value()))
            acked_at.append(time.monotonic())

    total, killed_at = 3000, None
    for k in range(total):
        p.produce(TOPIC, value=b"i-%d" % k, partition=0, on_delivery=done)
        p.poll(0)
        if k % 100 == 99:
            p.flush(30)
        if killed_at is None and len(acked) >= 1000:
            n[leader].kill9()
            killed_at = time.monotonic()
        time.sleep(0.001)
    assert p.flush(90) == 0
    assert killed_at is not None
    assert errors == [], errors[:3]
    assert len(acked) == total
    # Each record once, at consecutive offsets, in the order produced.
    assert sorted(acked) == [(k, b"i-%d" % k) for k in range(total)], sorted(acked)[:3]
    resumed = min(t for t in acked_at if t > killed_at) - killed_at
    alive = [i for i in (1, 2, 3) if i != leader]
    got = consume(cluster, alive, total)
    assert got == [(k, b"i-%d" % k) for k in range(total)], (len(got), got[-3:])
    print("produce resumed %.1f s after the leader was killed" % resumed)


def leader_with_a_follower_down(cluster, config):
    """Creates TOPIC (one partition, three replicas, `config`), writes one
    record, kills a follower and waits until it is out of the ISR; returns
    (leader, killed follower)."""
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, 1, replication_factor=3, config=config)],
                    request_timeout=30)[TOPIC].result(timeout=40)
    leader = wait_for("the topic's leader",
                      lambda: (lambda s: s[0] if s and s[2] == [1, 2, 3] else None)(
                          partition_state(cluster, 1)), 20)
    assert produce(cluster, [leader], [b"before"]) == [(0, b"before")]
    follower = next(i for i in (1, 2, 3) if i != leader)
    cluster.nodes[follower].kill9()
    wait_for("the killed follower out of the ISR",
             lambda: (lambda s: s if s and follower not in s[2] else None)(
                 partition_state(cluster, leader)), 30)
    return leader, follower


def produce_raw(port, correlation_id, acks):
    """One record to TOPIC-0 with Produce v3 and `acks`, on a connection of
    its own: (error code, base offset)."""
    with kproto.connect(port) as s:
        req = kproto.produce_v3_request(correlation_id, TOPIC, 0, kproto.record_batch([b"x"]),
                                        acks=acks)
        _, body = kproto.roundtrip(s, req)
        r = kproto.decode_produce_v3(body)[TOPIC][0]
        return r["error_code"], r["base_offset"]


def test_acks_all_below_min_insync_replicas_is_refused_and_acks_1_goes_on(cluster):
    """min.insync.replicas=3 with a follower down: once it has left the ISR,
    acks=all produce is NOT_ENOUGH_REPLICAS (appended nowhere), while
    acks=1 is still taken; back, caught up and in the ISR again, acks=all
    is taken again."""
    n = cluster.nodes
    leader, follower = leader_with_a_follower_down(cluster, {"min.insync.replicas": "3"})
    codes = [produce_raw(n[leader].port, i + 1, acks) for i, acks in enumerate((-1, 1))]
    # NOT_ENOUGH_REPLICAS (19) appends nothing: the acks=1 record is next.
    assert codes == [(19, -1), (0, 1)], codes
    n[follower].start()
    wait_for("the follower back in the ISR",
             lambda: (lambda s: s if s and s[2] == [1, 2, 3] else None)(
                 partition_state(cluster, leader)), 40)
    assert produce(cluster, [leader], [b"after"]) == [(2, b"after")]


def leader_of_all(cluster, ids):
    """The leader every node of `ids` names for partition 0, if they agree."""
    states = [partition_state(cluster, i) for i in ids]
    if any(s is None for s in states) or len({s[0] for s in states}) != 1:
        return None
    return states[0]


def fail_over_and_back(cluster):
    """Creates the topic, writes, kills its preferred replica (the first
    leader), writes through the new leader, restarts the killed one and
    waits until it is in the ISR again. Returns (preferred, acked)."""
    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, 1, replication_factor=3)],
                    request_timeout=30)[TOPIC].result(timeout=40)
    preferred = wait_for("the topic's leader, its ISR whole",
                         lambda: (lambda s: s[0] if s and s[2] == [1, 2, 3] else None)(
                             leader_of_all(cluster, [1, 2, 3])), 20)
    acked = produce(cluster, [1, 2, 3], [b"a-%d" % k for k in range(100)])
    n[preferred].kill9()
    alive = [i for i in (1, 2, 3) if i != preferred]
    wait_for("a new leader", lambda: new_leader(cluster, alive, preferred), 30)
    acked += produce(cluster, alive, [b"b-%d" % k for k in range(50)])
    n[preferred].start()
    wait_for("the preferred replica back in the ISR",
             lambda: (lambda s: s if s and s[2] == [1, 2, 3] else None)(
                 leader_of_all(cluster, [1, 2, 3])), 40)
    return preferred, sorted(acked)


def test_a_preferred_election_gives_leadership_back_after_a_failover(manual_cluster):
    """ElectLeaders (preferred) moves leadership back to the first replica
    once it is in the ISR again, in a new epoch, losing nothing; asked
    again, the election is not needed."""
    from confluent_kafka import ElectionType
    cluster = manual_cluster
    preferred, acked = fail_over_and_back(cluster)
    assert leader_of_all(cluster, [1, 2, 3])[0] != preferred, "nothing moves it back unasked"
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    tp = [TopicPartition(TOPIC, 0)]
    got = a.elect_leaders(ElectionType.PREFERRED, tp).result(timeout=40)
    assert list(got.values()) == [None], got
    wait_for("the preferred replica leading on every node",
             lambda: leader_of_all(cluster, [1, 2, 3]) if (leader_of_all(cluster, [1, 2, 3]) or
                                                            (None,))[0] == preferred else None, 30)
    assert consume(cluster, [1, 2, 3], len(acked)) == acked
    got = a.elect_leaders(ElectionType.PREFERRED, tp).result(timeout=40)
    (err,) = got.values()
    assert err is not None and err.code() == KafkaError.ELECTION_NOT_NEEDED, got


def test_leadership_goes_back_to_the_preferred_replica_on_its_own(rebalancing_cluster):
    """Kafka's auto.leader.rebalance: once the killed preferred replica is
    back in the ISR, the controller makes it leader again unasked."""
    cluster = rebalancing_cluster
    preferred, acked = fail_over_and_back(cluster)
    wait_for("the preferred replica leading again",
             lambda: (lambda s: s if s and s[0] == preferred else None)(
                 leader_of_all(cluster, [1, 2, 3])), 30)
    assert consume(cluster, [1, 2, 3], len(acked)) == acked



def test_a_raised_min_insync_replicas_applies_to_the_live_leader(cluster):
    """min.insync.replicas changed on a topic whose leader stays: the
    leader applies the new value at once (it used to keep the one it was
    elected with). Raised above the ISR's size, acks=all produce is
    NOT_ENOUGH_REPLICAS and appends nothing; lowered again, it is taken."""
    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    leader, _ = leader_with_a_follower_down(cluster, {})

    def alter(value):
        res = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
            ConfigEntry("min.insync.replicas", value,
                        incremental_operation=AlterConfigOpType.SET)])
        a.incremental_alter_configs([res])[res].result(timeout=30)

    def acks_all_code(i):
        return produce_raw(n[leader].port, i, -1)

    alter("3")
    # NOT_ENOUGH_REPLICAS (19) once the leader's node has the change.
    assert wait_for("acks=all refused", lambda: (lambda c: c if c[0] == 19 else None)(
        acks_all_code(1)), 20) == (19, -1)
    alter("2")
    assert acks_all_code(2) == (0, 1)


def test_deleted_records_stay_deleted_after_a_failover(cluster):
    """DeleteRecords is answered by the leader; its followers move their
    log start to the leader's as they fetch, so the leader elected after a
    kill -9 does not serve the deleted records again (they used to come
    back, each follower keeping its whole copy)."""
    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, 1, replication_factor=3)],
                    request_timeout=30)[TOPIC].result(timeout=40)
    leader, _, _ = wait_for("three replicas in sync", lambda: (
        lambda s: s if s and s[2] == [1, 2, 3] else None)(partition_state(cluster, 1)), 20)
    values = [b"d-%d" % k for k in range(100)]
    assert len(produce(cluster, [1, 2, 3], values)) == 100
    res = a.delete_records([TopicPartition(TOPIC, 0, 60)], request_timeout=30,
                           operation_timeout=30)
    assert list(res.values())[0].result(timeout=30).low_watermark == 60
    # An acks=all write after the deletion is answered once every in-sync
    # follower has fetched past it, and each moved its log start on the
    # fetch before that report.
    assert produce(cluster, [1, 2, 3], [b"after"]) == [(100, b"after")]

    n[leader].kill9()
    alive = [i for i in (1, 2, 3) if i != leader]
    wait_for("a new leader", lambda: new_leader(cluster, alive, leader), 30)
    c = Consumer({"bootstrap.servers": bootstrap(cluster, alive), "group.id": "unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10) == (60, 101)
    finally:
        c.close()
    # A consumer that asks for offset 0 is reset to the log start, 60.
    c = Consumer({"bootstrap.servers": bootstrap(cluster, alive), "group.id": "unused",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 41 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.offset(), m.value()))
    c.close()
    assert got == [(k, b"d-%d" % k) for k in range(60, 100)] + [(100, b"after")], got[:2]


def test_a_partition_moves_to_other_brokers_under_load_without_losing_a_write(cluster):
    """AlterPartitionReassignments from {1, 2} to {2, 3} while an
    idempotent producer writes with acks=all: broker 3 joins as a follower
    (its copy starting at the leader's log start, records below it having
    been deleted), the move completes once it is in sync, broker 1 drops
    its copy, leadership moves off it, and every acknowledged record is
    there once, in order. kafka-python's admin client sends the requests."""
    import threading
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient

    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, num_partitions=1, replica_assignment=[[1, 2]])],
                    request_timeout=30)[TOPIC].result(timeout=40)
    wait_for("replicas 1 and 2 in sync", lambda: (
        lambda s: s if s and s[0] == 1 and s[2] == [1, 2] else None)(partition_state(cluster, 1)), 20)
    first = [b"before-%d" % k for k in range(100)]
    assert len(produce(cluster, [1, 2, 3], first)) == 100
    res = a.delete_records([TopicPartition(TOPIC, 0, 40)], request_timeout=30, operation_timeout=30)
    assert list(res.values())[0].result(timeout=30).low_watermark == 40

    acked, stop = [], threading.Event()

    def load():
        while not stop.is_set() and len(acked) < 3000:
            acked.extend(produce(cluster, [1, 2, 3],
                                 [b"during-%d-%d" % (len(acked), k) for k in range(50)]))

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.5)
        k = KafkaAdminClient(bootstrap_servers=bootstrap(cluster, [1, 2, 3]))
        try:
            assert k.alter_partition_reassignments({KTP(TOPIC, 0): [2, 3]}) == {KTP(TOPIC, 0): None}
            moving = k.list_partition_reassignments()
            # Done already, or in progress with 3 being added and 1 removed.
            assert moving in ({}, {KTP(TOPIC, 0): {"replicas": [2, 3, 1], "adding_replicas": [3],
                                                    "removing_replicas": [1]}}), moving
            wait_for("the move to complete", lambda: k.list_partition_reassignments() == {}, 60)
        finally:
            k.close()
        state = wait_for("replicas 2 and 3, in sync, leading", lambda: (
            lambda s: s if s and s[1] == [2, 3] and s[2] == [2, 3] else None)(
                partition_state(cluster, 2)), 30)
        assert state[0] in (2, 3), state
    finally:
        stop.set()
        t.join(120)
    assert not t.is_alive()
    # Broker 1 no longer keeps a copy.
    wait_for("broker 1's copy deleted",
             lambda: not any(d.name == TOPIC + "-0" for d in n[1].data_dir.iterdir()), 20)
    assert any(d.name == TOPIC + "-0" for d in n[3].data_dir.iterdir())
    # Every acknowledged record, once, at its offset, from the log start.
    everything = sorted([(k, v) for k, v in enumerate(first)][40:] + acked)
    c = Consumer({"bootstrap.servers": bootstrap(cluster, [2, 3]), "group.id": "unused",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < len(everything) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.offset(), m.value()))
    c.close()
    assert got == everything, (len(got), len(everything), got[:2], everything[:2])
    # The moved copy on broker 3 starts at the leader's log start.
    state = partition_state(cluster, 3)
    if state and state[0] == 3:
        c = Consumer({"bootstrap.servers": n[3].bootstrap, "group.id": "unused"})
        try:
            assert c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)[0] == 40
        finally:
            c.close()


def test_describe_topic_partitions_shows_a_replica_that_left_a_too_small_isr_as_eligible(cluster):
    """KIP-966 through kafka-python's DescribeTopicPartitions: with
    min.insync.replicas=3, a follower killed -9 leaves the ISR, which is
    then below the minimum, so the high watermark cannot pass what the
    killed replica holds: it is an eligible leader replica, and offline."""
    from kafka.admin import KafkaAdminClient

    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [1, 2, 3])})
    a.create_topics([NewTopic(TOPIC, 1, replication_factor=3,
                              config={"min.insync.replicas": "3"})],
                    request_timeout=30)[TOPIC].result(timeout=40)
    leader, _, _ = wait_for("three replicas in sync", lambda: (
        lambda s: s if s and s[2] == [1, 2, 3] else None)(partition_state(cluster, 1)), 20)
    victim = next(i for i in (1, 2, 3) if i != leader)
    others = sorted(i for i in (1, 2, 3) if i != victim)
    k = KafkaAdminClient(bootstrap_servers=bootstrap(cluster, others))
    try:
        def described():
            # The admin client may pick the broker just killed: that try
            # fails (None), the next goes to another.
            try:
                d = k.describe_topic_partitions([TOPIC])
            except Exception:  # noqa: BLE001 - kafka-python's connection errors
                return None
            assert d["next_cursor"] is None
            (t,) = d["topics"]
            assert t["error_code"] == 0 and t["name"] == TOPIC, t
            (p,) = t["partitions"]
            return p

        p = wait_for("a description", described, 20)
        assert (p["leader_id"], sorted(p["isr_nodes"])) == (leader, [1, 2, 3]), p
        assert not p["eligible_leader_replicas"], p
        n[victim].kill9()
        p = wait_for("the killed replica out of the ISR and eligible", lambda: (
            lambda p: p if p and sorted(p["isr_nodes"]) == others else None)(described()), 40)
        assert p["eligible_leader_replicas"] == [victim], p
        assert p["offline_replicas"] == [victim], p
        assert sorted(p["replica_nodes"]) == [1, 2, 3] and p["leader_id"] == leader, p
    finally:
        k.close()


@pytest.fixture
def five_node_cluster(request, tmp_path):
    """Five voters: two brokers down still leave a quorum."""
    yield from started_cluster(request, tmp_path, "replication_preview = true\n",
                               settled=True, n=5)


def test_an_eligible_leader_replica_leads_when_the_last_in_sync_replica_is_gone(
        five_node_cluster):
    """KIP-966 with real processes: a partition on brokers {1, 2} with
    min.insync.replicas=2. Broker 2 is killed: the ISR {1} is below the
    minimum, so nothing more is committed and 2 holds everything that was;
    it is eligible. Broker 1, the last in-sync replica, is killed too: no
    leader. Broker 2 comes back and leads at once (no unclean election is
    allowed), with every acknowledged record, readable once 1 is back in
    sync; 1 is eligible in its place meanwhile."""
    from kafka.admin import KafkaAdminClient

    cluster = five_node_cluster
    n = cluster.nodes
    a = AdminClient({"bootstrap.servers": bootstrap(cluster, [3, 4, 5])})
    a.create_topics([NewTopic(TOPIC, num_partitions=1, replica_assignment=[[1, 2]],
                              config={"min.insync.replicas": "2"})],
                    request_timeout=30)[TOPIC].result(timeout=40)
    wait_for("1 leading, 2 in sync", lambda: (
        lambda s: s if s and s[0] == 1 and s[2] == [1, 2] else None)(partition_state(cluster, 3)), 20)
    values = [b"committed-%d" % k for k in range(50)]
    assert len(produce(cluster, [1, 2, 3], values)) == 50
    k = KafkaAdminClient(bootstrap_servers=bootstrap(cluster, [3, 4, 5]))
    try:
        def partition():
            # The admin client may pick a broker that was just killed:
            # that try fails, the next goes to another.
            try:
                (t,) = k.describe_topic_partitions([TOPIC])["topics"]
            except Exception:  # noqa: BLE001 - kafka-python's connection errors
                return None
            (p,) = t["partitions"]
            return p

        def when(cond):
            return lambda: (lambda p: p if p and cond(p) else None)(partition())

        n[2].kill9()
        p = wait_for("2 out of the ISR and eligible", when(lambda p: p["isr_nodes"] == [1]), 40)
        assert p["eligible_leader_replicas"] == [2], p
        n[1].kill9()
        wait_for("no leader", when(lambda p: p["leader_id"] < 0), 40)
        n[2].start()
        p = wait_for("2 leading", when(lambda p: p["leader_id"] == 2), 40)
        assert p["isr_nodes"] == [2] and p["eligible_leader_replicas"] == [1], p
        # An ISR below the minimum commits nothing more (KIP-966), and the
        # high watermark 2 knew may be older than the last commit (its
        # checkpoint did not survive the kill): once 1 is back, follows 2
        # and is in sync, every acknowledged record is readable.
        n[1].start()
        wait_for("1 back in sync", when(lambda p: sorted(p["isr_nodes"]) == [1, 2]), 60)
    finally:
        k.close()
    got = consume(cluster, [2, 3], 50)
    assert got == [(i, v) for i, v in enumerate(values)], got[:3]
