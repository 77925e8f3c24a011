"""The metadata quorum in real broker processes (issue 17, in progress).

Three `corelog serve` processes on loopback, each a voter of the metadata
quorum (`--node-id`, `--cluster-listen`, `--controller-quorum-voters`),
observed with `corelog cluster status --bootstrap HOST:PORT --json`:
a leader is elected and every node's broker registers and is unfenced;
kill -9 of the leader elects a new one within 10 s and loses nothing
committed; the restarted node catches up; with two of three gone there is
no leader and no progress, and progress resumes when one returns. Bad
input on the internal listener is refused and never applied.

Heartbeats and the session timeout are shortened through the TOML config
(`broker_heartbeat_interval_ms`, `broker_session_timeout_ms`), which also
exercises those keys beside the command-line flags.
"""
import json
import socket
import struct
import subprocess
import time

import pytest

from conftest import Broker, _BROKERS, corelog_bin, free_port

HEARTBEAT_MS = 500
SESSION_MS = 3000


def cluster_status(addr, timeout=10):
    out = subprocess.run([str(corelog_bin()), "cluster", "status", "--bootstrap", addr, "--json"],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def cluster_status_text(addr):
    out = subprocess.run([str(corelog_bin()), "cluster", "status", "--bootstrap", addr],
                         capture_output=True, text=True, timeout=10)
    return out.returncode, out.stdout + out.stderr


# Why the last `Cluster.settled` call found no settled cluster (the reason
# and the status it saw), for the message of a `wait_for` that times out.
_unsettled = [None]


def wait_for(what, fn, timeout):
    _unsettled[0] = None
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    why = _unsettled[0]
    raise AssertionError("timed out after %.0f s waiting for %s; last: %r%s"
                         % (timeout, what, last, "; why: %r" % (why,) if why else ""))


class Cluster:
    def __init__(self, tmp_path, started, n=3, extra_config=""):
        self.nodes = {}
        # free_port() may hand out a port twice (it is free again once
        # probed): every node's two ports must differ from all others'.
        used = set()

        def unique_port():
            while True:
                p = free_port()
                if p not in used:
                    used.add(p)
                    return p

        self.cluster_ports = {i: unique_port() for i in range(1, n + 1)}
        voters = ",".join("%d@127.0.0.1:%d" % (i, p) for i, p in self.cluster_ports.items())
        config = tmp_path / "cluster.toml"
        config.write_text("broker_heartbeat_interval_ms = %d\nbroker_session_timeout_ms = %d\n"
                          % (HEARTBEAT_MS, SESSION_MS) + extra_config)
        for i in range(1, n + 1):
            b = Broker(tmp_path / ("node%d" % i))
            if b.port in used:
                b.port = unique_port()
                b.bootstrap = "127.0.0.1:%d" % b.port
            used.add(b.port)
            b.extra_args = ["--cores", "1", "--config", str(config), "--node-id", str(i),
                            "--cluster-listen", "127.0.0.1:%d" % self.cluster_ports[i],
                            "--controller-quorum-voters", voters]
            started.append(b)
            self.nodes[i] = b

    def addr(self, i):
        return "127.0.0.1:%d" % self.cluster_ports[i]

    def status(self, via=None):
        ids = [via] if via else [i for i, b in self.nodes.items() if b.alive()]
        for i in ids:
            s = cluster_status(self.addr(i))
            if s is not None:
                return s
        return None

    def settled(self, alive, unfenced=None):
        """A status with a leader, every `alive` voter reachable at the same
        applied index, and the `unfenced` brokers unfenced; else None, with
        the reason and the status kept for the message of a wait that
        times out."""
        s = self.status()
        if not s:
            _unsettled[0] = ("no node answered a status", s)
            return None
        if s["leader"] is None:
            _unsettled[0] = ("no quorum leader", s)
            return None
        voters = {v["id"]: v for v in s["voters"]}
        if any(not voters[i]["reachable"] for i in alive):
            _unsettled[0] = ("a voter is unreachable", s)
            return None
        applied = {voters[i]["applied_index"] for i in alive}
        if len(applied) != 1:
            _unsettled[0] = ("the voters' applied indexes differ", s)
            return None
        brokers = {b["id"]: b for b in s["brokers"]}
        for i in unfenced or ():
            if i not in brokers or brokers[i]["fenced"]:
                _unsettled[0] = ("broker %d is fenced or unregistered" % i, s)
                return None
        _unsettled[0] = None
        return s


def started_cluster(request, tmp_path, extra_config="", settled=False, n=3):
    """`n` nodes (three unless told) on loopback (`extra_config` appended
    to their config file); with `settled`, waits for a quorum leader and
    every broker unfenced. Yields the Cluster and kills its brokers
    afterwards."""
    started = []
    request.node.stash[_BROKERS] = started
    c = Cluster(tmp_path, started, n=n, extra_config=extra_config)
    for b in c.nodes.values():
        b.start()
    if settled:
        every = list(range(1, n + 1))
        wait_for("a leader and %d unfenced brokers" % n,
                 lambda: c.settled(every, unfenced=every), 30)
    yield c
    for b in started:
        b.kill9()


@pytest.fixture
def cluster(request, tmp_path):
    yield from started_cluster(request, tmp_path)


def test_three_nodes_form_a_quorum_and_register(cluster):
    s = wait_for("a leader and three unfenced brokers",
                 lambda: cluster.settled([1, 2, 3], unfenced=[1, 2, 3]), 30)
    leaders = [v["id"] for v in s["voters"] if v.get("role") == "leader"]
    assert leaders == [s["leader"]]
    assert all(v["term"] == s["term"] for v in s["voters"])
    brokers = {b["id"]: b for b in s["brokers"]}
    assert sorted(brokers) == [1, 2, 3]
    for i, b in brokers.items():
        # The endpoint is the node's Kafka listener, not its internal one.
        assert b["endpoints"] == ["PLAINTEXT://%s" % cluster.nodes[i].bootstrap]
        assert b["epoch"] > 0
    code, text = cluster_status_text(cluster.addr(1))
    assert code == 0
    assert "quorum: leader %d, term %d" % (s["leader"], s["term"]) in text
    assert text.count("unfenced") == 3


def test_leader_kill9_new_leader_then_restart_catches_up(cluster):
    s = wait_for("a settled cluster", lambda: cluster.settled([1, 2, 3], unfenced=[1, 2, 3]), 30)
    old = s["leader"]
    committed = max(v["commit_index"] for v in s["voters"])
    cluster.nodes[old].kill9()
    killed_at = time.monotonic()
    rest = [i for i in cluster.nodes if i != old]

    def new_leader():
        st = cluster.status()
        return st if st and st["leader"] not in (None, old) else None

    s2 = wait_for("a new leader", new_leader, 10)
    assert time.monotonic() - killed_at < 10
    # Nothing committed is lost: every broker is still in the image, and
    # the survivors' logs reach at least what was committed before.
    assert sorted(b["id"] for b in s2["brokers"]) == [1, 2, 3]
    for v in s2["voters"]:
        if v["id"] in rest:
            assert v["commit_index"] >= committed
    # Its broker stops heartbeating: the new controller fences it.
    wait_for("the killed node's broker fenced",
             lambda: (lambda st: st and any(b["id"] == old and b["fenced"] for b in st["brokers"]))(
                 cluster.settled(rest)), SESSION_MS / 1000 + 15)

    cluster.nodes[old].start()
    s3 = wait_for("the restarted node caught up and unfenced",
                  lambda: cluster.settled([1, 2, 3], unfenced=[1, 2, 3]), 40)
    voters = {v["id"]: v for v in s3["voters"]}
    assert voters[old]["applied_index"] == voters[s3["leader"]]["applied_index"]
    assert voters[old]["applied_index"] > committed


def test_two_of_three_down_no_leader_then_progress_resumes(cluster):
    s = wait_for("a settled cluster", lambda: cluster.settled([1, 2, 3], unfenced=[1, 2, 3]), 30)
    survivor = next(i for i in cluster.nodes if i != s["leader"])
    down = [i for i in cluster.nodes if i != survivor]
    for i in down:
        cluster.nodes[i].kill9()

    def no_leader():
        st = cluster.status(via=survivor)
        return st if st and st["leader"] is None else None

    st = wait_for("no leader", no_leader, 15)
    commit = st["voters"][[v["id"] for v in st["voters"]].index(survivor)]["commit_index"]
    code, text = cluster_status_text(cluster.addr(survivor))
    assert code == 0
    assert "NO LEADER" in text and "cannot make progress" in text
    # No progress: the survivor's commit index stays put.
    time.sleep(3)
    st = cluster.status(via=survivor)
    me = next(v for v in st["voters"] if v["id"] == survivor)
    assert st["leader"] is None
    assert me["commit_index"] == commit

    back = down[0]
    cluster.nodes[back].start()
    s2 = wait_for("a leader again, and both live brokers unfenced",
                  lambda: cluster.settled([survivor, back], unfenced=[survivor, back]), 40)
    voters = {v["id"]: v for v in s2["voters"]}
    assert voters[survivor]["commit_index"] > commit


def _frame(kind, body):
    return struct.pack(">IB", len(body) + 1, kind) + body


def _hello(node_id):
    return _frame(1, b"CLCQ" + bytes([1]) + struct.pack(">i", node_id))


def _send_and_wait_close(addr, data, timeout=10):
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.settimeout(timeout)
            while s.recv(4096):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass


def test_internal_listener_refuses_bad_input(cluster):
    s = wait_for("a settled cluster", lambda: cluster.settled([1, 2, 3], unfenced=[1, 2, 3]), 30)
    addr = cluster.addr(1)
    _send_and_wait_close(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # garbage
    _send_and_wait_close(addr, _hello(99) + _frame(2, b"\x01\x03junk"))  # unknown node
    _send_and_wait_close(addr, struct.pack(">I", 0xFFFFFFF0))  # length over the bound
    # A voter's hello, then a raft frame that does not decode.
    _send_and_wait_close(addr, _hello(2) + _frame(2, b"\x01\xff" + b"\x00" * 40))
    # An admin hello may not send raft frames or requests.
    _send_and_wait_close(addr, _hello(-1) + _frame(2, b"\x01\x03"))
    # A voter forwarding a request for another broker.
    req = json.dumps({"Heartbeat": {"broker": 3, "epoch": 1}}).encode()
    _send_and_wait_close(addr, _hello(2) + _frame(3, req))
    s2 = wait_for("still settled", lambda: cluster.settled([1, 2, 3], unfenced=[1, 2, 3]), 15)
    assert s2["term"] == s["term"]
    assert cluster.nodes[1].alive()
    log = cluster.nodes[1].stderr_path.read_text(errors="replace")
    assert "internal listener refused a connection" in log
    assert "node 99 is not a voter" in log


@pytest.mark.parametrize("args,message", [
    (["--node-id", "4"], "node_id: 4 is not among controller_quorum_voters"),
    (["--node-id", "1", "--cluster-listen", "127.0.0.1:{kafka}"], "is also the Kafka listen port"),
    (["--node-id", "1", "--cluster-listen", None, "--controller-quorum-voters", "1@h:1,1@h:2"],
     "node id 1 is named twice"),
])
def test_cluster_settings_are_validated(tmp_path, args, message):
    kafka = free_port()
    cport = free_port()
    base = {"--cluster-listen": "127.0.0.1:%d" % cport,
            "--controller-quorum-voters": "1@127.0.0.1:%d,2@127.0.0.1:%d" % (cport, free_port())}
    argv = [str(corelog_bin()), "serve", "--data-dir", str(tmp_path / "d"),
            "--listen", "127.0.0.1:%d" % kafka]
    given = dict(zip(args[::2], args[1::2]))
    for k, v in {**base, **given}.items():
        if v is None:
            v = base[k]
        argv += [k, v.replace("{kafka}", str(kafka))]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out
    assert message in out.stderr


def test_cluster_flags_go_together(tmp_path):
    out = subprocess.run([str(corelog_bin()), "serve", "--data-dir", str(tmp_path / "d"),
                          "--listen", "127.0.0.1:%d" % free_port(), "--node-id", "1"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "set all three" in out.stderr
