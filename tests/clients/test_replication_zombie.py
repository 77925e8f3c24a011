"""A zombie partition leader (issue 18), made for real in network
namespaces the test builds (as test_cluster_partition.py does).

The leader of a three-replica partition is cut off from the metadata
quorum only: iptables in its namespace drops its cluster port (9093) both
ways, while its Kafka port stays open. The majority fences it and elects
another in-sync replica, so the cut-off broker still believes it leads, in
the old epoch. Then:

- it acknowledges no `acks=all` write (its followers now follow the new
  leader, so its high watermark cannot move), while it does take `acks=1`
  writes, which no other replica has: a divergent tail;
- the new leader takes `acks=all` writes at the same offsets;
- healed, the zombie learns it follows, finds where its log diverges
  (OffsetForLeaderEpoch), truncates its tail, catches up and rejoins the
  ISR;
- a consumer reads every acknowledged write once and nothing of the
  zombie's tail, and after a clean stop the three replicas' segment files
  hold the same batches (offsets, epochs, CRCs).
"""
import json
import os
import struct

import pytest

from test_cluster_partition import namespace_cluster, settled, sh
from test_cluster_quorum import wait_for

pytestmark = pytest.mark.timeout(240)

TOPIC = "z"
# replica_lag_time_max_ms of the brokers here: a follower that cannot
# fetch leaves the ISR this long after it stopped catching up.
LAG_MS = 3000


def cut_port(net, i, number):
    """Drops node i's TCP traffic to or from `number` (9092 Kafka, 9093 the
    metadata quorum), in and out."""
    for chain, flag, port in (("INPUT", "-i", "--dport"), ("INPUT", "-i", "--sport"),
                              ("OUTPUT", "-o", "--dport"), ("OUTPUT", "-o", "--sport")):
        sh("ip", "netns", "exec", net.ns(i), "iptables", "-A", chain, flag, net.veth(i),
           "-p", "tcp", port, str(number), "-j", "DROP")


def cut_cluster_port(net, i):
    cut_port(net, i, 9093)


def py(node, code, timeout=90):
    """Runs a confluent-kafka snippet inside `node`'s namespace; returns
    the JSON its last output line holds."""
    prelude = ("import json, sys\nfrom confluent_kafka import Producer, Consumer, TopicPartition\n"
               "from confluent_kafka.admin import AdminClient, NewTopic\n")
    python = os.path.abspath(".venv/bin/python") if os.path.exists(".venv/bin/python") else "python3"
    out = sh("ip", "netns", "exec", node.net.ns(node.i), python, "-c", prelude + code,
             check=False, timeout=timeout, cwd=os.getcwd())
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and lines, out.stdout + out.stderr
    return json.loads(lines[-1])


def describe(node):
    """[leader, replicas, isr] of partition 0 as `node` describes it, or None."""
    return py(node, """
try:
    t = AdminClient({'bootstrap.servers': %r}).list_topics(topic=%r, timeout=5).topics.get(%r)
except Exception:
    t = None
if t is None or t.error is not None or 0 not in t.partitions:
    print('null')
else:
    p = t.partitions[0]
    print(json.dumps([p.leader, sorted(p.replicas), sorted(p.isrs)]))
""" % (node.bootstrap, TOPIC, TOPIC))


def produce(node, bootstrap, values, acks, timeout_ms=30000):
    """Produces `values` (str) to partition 0 through `bootstrap` from
    inside `node`'s namespace; returns [[offset or None, error or None]]."""
    return py(node, """
p = Producer({'bootstrap.servers': %r, 'acks': %r, 'linger.ms': 5,
              'message.timeout.ms': %d, 'enable.idempotence': False, 'retries': 0})
out = {}
def done(err, msg):
    out[msg.value().decode()] = [None if err else msg.offset(), str(err) if err else None]
for v in %r:
    p.produce(%r, value=v.encode(), partition=0, on_delivery=done)
p.flush(%d)
print(json.dumps([out.get(v, [None, 'no answer']) for v in %r]))
""" % (bootstrap, acks, timeout_ms, values, TOPIC, timeout_ms // 1000 + 20, values))


def raw_produce(node, values, acks, timeout_ms):
    """Produces each value as its own batch to `node` alone (raw Produce v3
    over one connection, from inside its namespace: a client library would
    follow another broker's metadata); returns [[error_code, base_offset]]."""
    return py(node, """
import socket
sys.path.insert(0, 'tests/clients')
import kproto
s = socket.create_connection((%r, %d), timeout=%d)
out = []
for i, v in enumerate(%r):
    req = kproto.produce_v3_request(i + 1, %r, 0, kproto.record_batch([v.encode()]), acks=%d,
                                    timeout_ms=%d)
    _, body = kproto.roundtrip(s, req)
    r = kproto.decode_produce_v3(body)[%r][0]
    out.append([r['error_code'], r['base_offset']])
print(json.dumps(out))
""" % (node.bootstrap.split(":")[0], 9092, timeout_ms // 1000 + 10, values, TOPIC, acks,
       timeout_ms, TOPIC))


def consume(node, bootstrap, expected):
    return py(node, """
c = Consumer({'bootstrap.servers': %r, 'group.id': 'unused', 'enable.auto.commit': False})
c.assign([TopicPartition(%r, 0, 0)])
got, idle = [], 0
while len(got) < %d and idle < 40:
    m = c.poll(0.5)
    if m is None or m.error() is not None:
        idle += 1
        continue
    got.append([m.offset(), m.value().decode()])
c.close()
print(json.dumps(got))
""" % (bootstrap, TOPIC, expected + 10))


def batches(data_dir):
    """(base offset, last offset delta, leader epoch, crc) of every batch
    in the partition's segment files, in order, up to the end of its data."""
    d = data_dir / (TOPIC + "-0")
    out, expect = [], None
    for seg in sorted(d.glob("*.log")):
        raw = seg.read_bytes()
        at = 0
        while at + 61 <= len(raw):
            base, length, epoch, magic, crc = struct.unpack_from(">qiibI", raw, at)
            if length <= 0 or magic != 2 or (expect is not None and base != expect):
                break
            (delta,) = struct.unpack_from(">i", raw, at + 23)
            out.append((base, delta, epoch, crc))
            expect = base + delta + 1
            at += 12 + length
    return out


@pytest.fixture
def zombie_net(request, tmp_path):
    yield from namespace_cluster(
        request, tmp_path,
        "replication_preview = true\nreplica_lag_time_max_ms = %d\n" % LAG_MS)


def test_a_zombie_leader_acknowledges_nothing_and_its_tail_is_truncated(zombie_net):
    net, nodes = zombie_net
    wait_for("a settled cluster", lambda: settled(nodes), 45)
    leader, replicas, isr = create_and_describe(nodes)
    assert replicas == [1, 2, 3] and isr == [1, 2, 3]
    all_nodes = ",".join(nodes[i].bootstrap for i in (1, 2, 3))
    first = ["a%d" % k for k in range(100)]
    acked = produce(nodes[1], all_nodes, first, "all")
    assert acked == [[k, None] for k in range(100)], acked[:3]

    # Cut the leader off the quorum only; the majority moves on.
    zombie = leader
    rest = [i for i in (1, 2, 3) if i != zombie]
    cut_cluster_port(net, zombie)
    new = wait_for("a new leader named by the majority",
                   lambda: (lambda ds: ds[0][0] if all(d and d[0] == ds[0][0] and d[0] in rest
                                                       for d in ds) else None)(
                       [describe(nodes[i]) for i in rest]), 30)
    # The zombie, which still believes it leads in the old epoch, appends
    # acks=all writes and acknowledges none (REQUEST_TIMED_OUT: its
    # followers follow the new leader now, so its high watermark is stuck),
    # and takes acks=1 writes: a tail no other replica has.
    zombie_all = raw_produce(nodes[zombie], ["zall-%d" % k for k in range(5)], -1, 3000)
    assert zombie_all == [[7, -1]] * 5, zombie_all
    zombie_one = raw_produce(nodes[zombie], ["zone-%d" % k for k in range(5)], 1, 3000)
    assert zombie_one == [[0, 105 + k] for k in range(5)], zombie_one
    # The new leader takes acks=all writes at the same offsets.
    rest_nodes = ",".join(nodes[i].bootstrap for i in rest)
    second = ["b%d" % k for k in range(50)]
    acked2 = produce(nodes[new], rest_nodes, second, "all")
    assert acked2 == [[100 + k, None] for k in range(50)], acked2[:3]

    # Healed: the zombie follows, truncates its tail, catches up, rejoins.
    net.heal(zombie)
    wait_for("the healed node back in the ISR",
             lambda: (lambda d: d if d and d[0] == new and d[2] == [1, 2, 3] else None)(
                 describe(nodes[new])), 60)
    got = consume(nodes[new], rest_nodes, 150)
    assert got == [[k, first[k]] for k in range(100)] + [[100 + k, second[k]] for k in range(50)], \
        (len(got), got[-3:], zombie_one)

    # Stopped cleanly, the three replicas hold the same batches.
    for i in (1, 2, 3):
        assert nodes[i].terminate(timeout=30) == 0
    logs = {i: batches(nodes[i].data_dir) for i in (1, 2, 3)}
    assert logs[1] and logs[1][-1][0] + logs[1][-1][1] == 149, logs[1][-3:]
    assert logs[1] == logs[2] == logs[3], {i: l[-3:] for i, l in logs.items()}
    # The first 100 were written in the first leader's epoch, the rest in
    # the next.
    assert {e for b, _, e, _ in logs[1] if b < 100} == {0}
    assert {e for b, _, e, _ in logs[1] if b >= 100} == {1}


def create_and_describe(nodes):
    created = py(nodes[1], """
a = AdminClient({'bootstrap.servers': %r})
a.create_topics([NewTopic(%r, 1, replication_factor=3)], request_timeout=30)[%r].result(timeout=40)
print('true')
""" % (nodes[1].bootstrap, TOPIC, TOPIC))
    assert created is True
    return wait_for(
        "every node to describe the topic",
        lambda: (lambda ds: ds[0] if ds[0] and all(d == ds[0] for d in ds) else None)(
            [describe(nodes[i]) for i in (1, 2, 3)]), 30)


def test_a_follower_that_cannot_fetch_leaves_the_isr_and_rejoins(zombie_net):
    """A follower alive to the quorum (so never fenced) but cut off from
    its leader's Kafka port: the leader's acks=all writes wait only until
    it drops the follower from the ISR (replica_lag_time_max_ms, then
    AlterPartition); healed, the follower catches up and rejoins."""
    net, nodes = zombie_net
    wait_for("a settled cluster", lambda: settled(nodes), 45)
    leader, replicas, isr = create_and_describe(nodes)
    assert isr == [1, 2, 3]
    lagging = next(i for i in (1, 2, 3) if i != leader)
    first = ["c%d" % k for k in range(20)]
    assert produce(nodes[leader], nodes[leader].bootstrap, first, "all") == \
        [[k, None] for k in range(20)]

    cut_port(net, lagging, 9092)
    second = ["d%d" % k for k in range(20)]
    acked = produce(nodes[leader], nodes[leader].bootstrap, second, "all")
    assert acked == [[20 + k, None] for k in range(20)], acked[:3]
    _, _, isr = describe(nodes[leader])
    assert lagging not in isr and len(isr) == 2, isr
    # It left the ISR for lag, not because it was fenced.
    brokers = {b["id"]: b for b in nodes[leader].status()["brokers"]}
    assert not brokers[lagging]["fenced"], brokers

    net.heal(lagging)
    wait_for("the lagging follower back in the ISR",
             lambda: (lambda d: d if d and d[2] == [1, 2, 3] else None)(describe(nodes[leader])), 40)
    got = consume(nodes[leader], nodes[leader].bootstrap, 40)
    assert got == [[k, first[k]] for k in range(20)] + [[20 + k, second[k]] for k in range(20)]
    for i in (1, 2, 3):
        assert nodes[i].terminate(timeout=30) == 0
    logs = {i: batches(nodes[i].data_dir) for i in (1, 2, 3)}
    assert logs[1] == logs[2] == logs[3] and logs[1][-1][0] + logs[1][-1][1] == 39
