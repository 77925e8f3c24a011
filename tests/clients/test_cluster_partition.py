"""A network partition of the metadata quorum, made for real (issue 17).

The test builds its own network: four network namespaces, one per node and
one holding a bridge, joined by veth pairs (10.77.0.1-3/24). Each node's
`corelog serve` runs inside its namespace (`ip netns exec`), as do the
tools that talk to it. Nothing touches the host's network.

Then it cuts the quorum leader off with iptables inside the leader's
namespace (every packet in or out of its veth dropped) and checks what
Raft promises: the majority elects a new leader and goes on committing
(a topic created through it, the cut-off broker fenced), while the
minority commits nothing (a topic asked of it is refused, and after the
heal it does not exist: no split brain). Once healed, the old leader
catches up to the same applied index and knows the majority's topic.
"""
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import Broker, _BROKERS, corelog_bin, require_or_skip
from test_cluster_quorum import wait_for

SUBNET = "10.77.0."
KAFKA_PORT = 9092
CLUSTER_PORT = 9093
SESSION_MS = 3000


def sh(*cmd, check=True, **kw):
    return subprocess.run([str(c) for c in cmd], check=check, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 30), **kw)


class Net:
    """Namespaces `<tag>-1..3` (nodes) and `<tag>-br` (bridge)."""

    def __init__(self):
        self.tag = "cl" + uuid.uuid4().hex[:6]
        self.made = []

    def ns(self, i):
        return "%s-%s" % (self.tag, i)

    def build(self):
        br = self.ns("br")
        sh("ip", "netns", "add", br)
        self.made.append(br)
        sh("ip", "netns", "exec", br, "ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "netns", "exec", br, "ip", "link", "set", "br0", "up")
        for i in (1, 2, 3):
            ns = self.ns(i)
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            a, b = "%sa%d" % (self.tag, i), "%sb%d" % (self.tag, i)
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", ns)
            sh("ip", "link", "set", b, "netns", br)
            sh("ip", "netns", "exec", br, "ip", "link", "set", b, "master", "br0")
            sh("ip", "netns", "exec", br, "ip", "link", "set", b, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", "%s%d/24" % (SUBNET, i), "dev", a)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", a, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def veth(self, i):
        return "%sa%d" % (self.tag, i)

    def cut(self, i):
        """Drops every packet in or out of node i's veth."""
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            sh("ip", "netns", "exec", self.ns(i), "iptables", "-A", chain, flag, self.veth(i),
               "-j", "DROP")

    def heal(self, i):
        for chain in ("INPUT", "OUTPUT"):
            sh("ip", "netns", "exec", self.ns(i), "iptables", "-F", chain)

    def destroy(self):
        for ns in reversed(self.made):
            sh("ip", "netns", "del", ns, check=False)


class NsBroker(Broker):
    """A broker inside a namespace, at its namespace's address."""

    def __init__(self, workdir, net, i, voters):
        super().__init__(workdir)
        self.net, self.i = net, i
        self.port = KAFKA_PORT
        self.bootstrap = "%s%d:%d" % (SUBNET, i, KAFKA_PORT)
        self.extra_args = ["--cores", "1", "--config", str(workdir.parent / "cluster.toml"),
                           "--node-id", str(i),
                           "--cluster-listen", "%s%d:%d" % (SUBNET, i, CLUSTER_PORT),
                           "--controller-quorum-voters", voters]

    def command(self):
        return ["ip", "netns", "exec", self.net.ns(self.i)] + super().command()

    def status(self):
        """`corelog cluster status` of this node, asked from inside its namespace."""
        out = sh("ip", "netns", "exec", self.net.ns(self.i), corelog_bin(), "cluster", "status",
                 "--bootstrap", "%s%d:%d" % (SUBNET, self.i, CLUSTER_PORT), "--json",
                 check=False, timeout=15)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def node_view(self):
        """This node's own voter entry in its status."""
        s = self.status()
        if not s:
            return None
        return next((v for v in s["voters"] if v["id"] == self.i and v.get("reachable")), None)

    def admin(self, script):
        """Runs a confluent-kafka snippet inside this node's namespace with
        `a` an AdminClient of this node; returns (exit code, output)."""
        code = ("import sys\nfrom confluent_kafka.admin import AdminClient, NewTopic\n"
                "a = AdminClient({'bootstrap.servers': %r})\n" % self.bootstrap) + script
        out = sh("ip", "netns", "exec", self.net.ns(self.i), os.path.abspath(".venv/bin/python")
                 if os.path.exists(".venv/bin/python") else "python3", "-c", code,
                 check=False, timeout=90, cwd=os.getcwd())
        return out.returncode, out.stdout + out.stderr

    def create_topic(self, name, timeout=40):
        return self.admin(
            "f = a.create_topics([NewTopic(%r, 1)], request_timeout=%d)\n"
            "try:\n    f[%r].result(timeout=%d)\n    print('created')\n"
            "except Exception as e:\n    print('refused:', e)\n    sys.exit(3)\n"
            % (name, timeout, name, timeout + 10))

    def topics(self):
        code, out = self.admin("print(sorted(a.list_topics(timeout=10).topics))")
        return out if code == 0 else None


def namespace_cluster(request, tmp_path, extra_config=""):
    """Three nodes in namespaces of their own (`extra_config` appended to
    their config file); yields (net, {id: NsBroker}) and tears it all down."""
    require_or_skip(os.geteuid() == 0, "root (network namespaces)")
    require_or_skip(shutil.which("ip") is not None, "ip (iproute2)")
    require_or_skip(shutil.which("iptables") is not None, "iptables")
    net = Net()
    started = []
    request.node.stash[_BROKERS] = started
    (tmp_path / "cluster.toml").write_text(
        "broker_heartbeat_interval_ms = 500\nbroker_session_timeout_ms = %d\n" % SESSION_MS
        + extra_config)
    voters = ",".join("%d@%s%d:%d" % (i, SUBNET, i, CLUSTER_PORT) for i in (1, 2, 3))
    try:
        net.build()
        nodes = {i: NsBroker(tmp_path / ("node%d" % i), net, i, voters) for i in (1, 2, 3)}
        for b in nodes.values():
            started.append(b)
            b.start()
        yield net, nodes
    finally:
        for b in started:
            b.kill9()
        net.destroy()


@pytest.fixture
def partitioned(request, tmp_path):
    yield from namespace_cluster(request, tmp_path)


def leader_seen_by(nodes, ids):
    """The leader every node of `ids` names, when they agree on one."""
    leaders = set()
    for i in ids:
        s = nodes[i].status()
        if not s or s["leader"] is None:
            return None
        leaders.add(s["leader"])
    return leaders.pop() if len(leaders) == 1 else None


def settled(nodes):
    """The leader all three nodes name, once every broker is registered
    and unfenced in its image; else None. (Cutting a node off before its
    broker registered would leave the majority nothing to fence.)"""
    leader = leader_seen_by(nodes, (1, 2, 3))
    if leader is None:
        return None
    brokers = {b["id"]: b for b in (nodes[leader].status() or {}).get("brokers", [])}
    if sorted(brokers) != [1, 2, 3] or any(b["fenced"] for b in brokers.values()):
        return None
    return leader


def test_only_the_majority_side_of_a_partition_makes_progress(partitioned):
    net, nodes = partitioned
    old = wait_for("a settled cluster", lambda: settled(nodes), 45)
    rest = [i for i in (1, 2, 3) if i != old]
    net.cut(old)
    cut_at = time.monotonic()

    # The majority elects another leader and commits: a topic created
    # through it, and the cut-off node's broker fenced.
    new = wait_for("a new leader on the majority side",
                   lambda: (lambda l: l if l in rest else None)(leader_seen_by(nodes, rest)), 20)
    assert new != old
    code, out = nodes[rest[0]].create_topic("majority-side")
    assert code == 0, out
    wait_for("the cut-off broker fenced by the majority",
             lambda: any(b["id"] == old and b["fenced"]
                         for b in (nodes[new].status() or {}).get("brokers", [])), 20)

    # The minority commits nothing: a write asked of it is refused.
    committed_before = nodes[old].node_view()["commit_index"]
    code, out = nodes[old].create_topic("minority-side", timeout=15)
    assert code == 3 and "REQUEST_TIMED_OUT" in out, out
    assert nodes[old].node_view()["commit_index"] == committed_before
    assert time.monotonic() - cut_at < 90

    # Healed: the old leader follows the new one, catches up, and the
    # refused write was never made anywhere.
    net.heal(old)

    def caught_up():
        views = [nodes[i].node_view() for i in (1, 2, 3)]
        if any(v is None for v in views):
            return None
        if len({v["applied_index"] for v in views}) != 1:
            return None
        return leader_seen_by(nodes, (1, 2, 3))

    assert wait_for("the healed node caught up", caught_up, 30) in rest
    for i in (1, 2, 3):
        listed = wait_for("node %d to list the majority's topic" % i,
                          lambda: (lambda t: t if t and "majority-side" in t else None)(
                              nodes[i].topics()), 20)
        assert "minority-side" not in listed, (i, listed)
