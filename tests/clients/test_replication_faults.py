"""Seeded fault schedules against three replicating brokers (issue 18).

Three `corelog serve` nodes in network namespaces (namespace_cluster of
test_cluster_partition.py) and a fourth namespace for the clients, on
the same bridge (10.77.0.10), so that cutting a node off never cuts the
clients off the others. A topic of PARTITIONS partitions, three replicas
each, min.insync.replicas=2. While a schedule of faults runs:

- two idempotent acks=all producers (confluent-kafka and kafka-python 3)
  write unique values and record each acknowledged (partition, offset)
  with its send and ack time;
- a confluent-kafka consumer reads every partition from offset 0.

A schedule is a list of faults drawn from random.Random(seed) (see
make_schedule; seed s starts with kind KINDS[s % len(KINDS)], so any
len(KINDS) consecutive seeds cover every kind). Before each fault the
harness waits (bounded) until every partition has its three replicas in
sync and has acknowledged a write since the last fault action, so that
one fault's failover is over before the next fault begins. The kinds:

kill_leader      kill -9 the leader of partition 0, restart it 1-8 s later
kill_follower    kill -9 a follower of partition 0, restart it 1-5 s later
kill_controller  kill -9 the metadata quorum's leader, restart it 1-5 s later
pause            SIGSTOP a broker for 5-20 s, then SIGCONT
isolate_leader   drop every packet in and out of partition 0's leader's veth
                 (iptables INPUT and OUTPUT in its namespace) for 4-10 s
one_way          drop only INPUT or only OUTPUT of one node's veth for 4-10 s
loss             10% packet loss both ways on one node's veth for 5-10 s:
                 `tc qdisc ... netem loss 10%` on the node's veth and on its
                 bridge-side peer where netem exists; where tc cannot load
                 netem, iptables `-m statistic --probability 0.1 -j DROP`
                 on INPUT and OUTPUT of the node's veth instead
rolling_restart  SIGTERM, restart and wait for a full ISR, node after node
kill_all         kill -9 all three, restart them 1-3 s later

Then everything is healed, the producers are seen to make progress, are
stopped and flushed, the live consumer reads to the end offsets, two
final readers (confluent-kafka and kafka-python) read everything from
offset 0, and history_check.check reports lost, duplicated, divergent,
non-monotonic and unseen writes (all must be none). Last, the three
brokers are stopped cleanly and their segment files compared: each
partition's replicas hold the same batches (offset, epoch, CRC), one a
prefix of another at most.

After each kill of a partition leader the time from the kill to the next
acknowledged write in each partition it led is measured; it must be at
most RESUME_BOUND_S.

FAULT_SEEDS (how many, default 12) and FAULT_SEED_BASE (the first,
default 0) choose the schedules; FAULT_SEED=N runs schedule N alone, and
FAULT_SCHEDULE='[{"kind": "kill_leader", "gap": 1, "down": 3}, ...]' runs
that schedule instead of a drawn one (to reduce a failing schedule);
FAULT_OFFSETS_RF=3 gives the internal offsets topic three replicas (one
by default); FAULT_WORKER_DEBUG=1 has the kafka-python producer log every produce answer
to producer-kafka-python.stderr. Histories, worker output and broker logs
stay in each test's tmp_path (keep them with -o tmp_path_retention_policy=all).
"""
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import types

import pytest

import history_check
from brokerproc import die_with_parent
from test_cluster_partition import SUBNET, namespace_cluster, settled, sh
from test_cluster_quorum import wait_for
from test_replication_zombie import py

TOPIC = "faults"
PARTITIONS = 3
MIN_INSYNC = 2
LAG_MS = 3000
# The readers name a group (librdkafka wants one), so the cluster creates
# the internal offsets topic. With three replicas its 150 logs shared this
# 2-core VM with the faults topic and lengthened its failovers: in CI at
# 6fc7022 two of the twelve schedules resumed produce after 11.7 and
# 12.3 s, past the bound, when each offsets partition had its own follower
# connection and each ISR change its own metadata commit. ISR changes are
# batched per node since (AlterPartitions). With one fetcher per leader
# broker as well (tried, then reverted for its tail latency) the twelve
# schedules passed locally with three replicas (kill_leader resumes
# 3.5-5.8 s, FAULT_OFFSETS_RF=3); the suite keeps one replica until the
# follower connections are batched too and CI has shown the same. The
# harness is about the faults topic; the offsets topic's replication has
# tests of its own (test_cluster_topics.py).
OFFSETS_RF = int(os.environ.get("FAULT_OFFSETS_RF", "1"))
CONFIG = ("replication_preview = true\nreplica_lag_time_max_ms = %d\n"
          "[groups]\noffsets_topic_replication_factor = %d\n" % (LAG_MS, OFFSETS_RF))
CLIENT_ADDR = SUBNET + "10"
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_worker.py")
# Issue 18: produce resumes within 10 s of a leader kill (3 s broker
# session in namespace_cluster, then the controller's election, then the
# client's metadata refresh).
RESUME_BOUND_S = 10.0
# How long after healing every partition must have three in-sync replicas.
RECOVERY_S = 45
CONFLUENT_RATE = 100
KAFKA_PYTHON_RATE = 40

KINDS = ("kill_leader", "kill_follower", "kill_controller", "pause", "isolate_leader",
         "one_way", "loss", "rolling_restart", "kill_all")

# Schedules known to find a broker bug: seed -> reason (xfail, not strict).
# Empty: the two this harness found are fixed (see STUCK_FOLLOWER_LINE).
KNOWN_BUGS = {}

pytestmark = pytest.mark.timeout(300)


def seeds():
    one = os.environ.get("FAULT_SEED")
    if one:
        return [int(one)]
    base = int(os.environ.get("FAULT_SEED_BASE", "0"))
    return list(range(base, base + int(os.environ.get("FAULT_SEEDS", "12"))))


def make_schedule(seed):
    """The faults of schedule `seed`: 15-25 s of faults (as their expected
    durations add up, restarts included), at most 4 of them."""
    rng = random.Random(seed)
    budget = rng.uniform(15, 25)
    faults, total, kind = [], 0.0, KINDS[seed % len(KINDS)]
    while True:
        f = {"kind": kind, "gap": round(rng.uniform(0.5, 3), 1)}
        if kind in ("kill_leader", "kill_follower", "kill_controller"):
            # A killed leader down longer than the failover takes (3 s
            # broker session, then an election) shows the failover alone.
            f["down"] = round(rng.uniform(1, 8 if kind == "kill_leader" else 5), 1)
            if kind == "kill_follower":
                f["which"] = rng.randrange(2)
            cost = f["down"] + 1.5
        elif kind == "pause":
            f["node"] = rng.randint(1, 3)
            f["for"] = round(rng.uniform(5, 20), 1)
            cost = f["for"] + 1
        elif kind == "isolate_leader":
            f["for"] = round(rng.uniform(4, 10), 1)
            cost = f["for"] + 1
        elif kind == "one_way":
            f["node"] = rng.randint(1, 3)
            f["chain"] = rng.choice(("INPUT", "OUTPUT"))
            f["for"] = round(rng.uniform(4, 10), 1)
            cost = f["for"] + 1
        elif kind == "loss":
            f["node"] = rng.randint(1, 3)
            f["for"] = round(rng.uniform(5, 10), 1)
            cost = f["for"] + 1
        elif kind == "rolling_restart":
            f["order"] = rng.sample([1, 2, 3], 3)
            cost = 5
        else:  # kill_all
            f["down"] = round(rng.uniform(1, 3), 1)
            cost = f["down"] + 2
        faults.append(f)
        total += cost + f["gap"]
        if total >= budget or len(faults) == 4:
            return faults
        kind = rng.choice(KINDS)


def describe_schedule(schedule):
    return "; ".join(" ".join("%s=%s" % kv for kv in f.items()) for f in schedule)


# ------------------------------------------------------------------ harness --
def python():
    return os.path.abspath(".venv/bin/python") if os.path.exists(".venv/bin/python") \
        else sys.executable


def add_client_namespace(net):
    """A namespace `<tag>-c` on the cluster's bridge at CLIENT_ADDR (removed
    with the others by net.destroy())."""
    ns, br = net.ns("c"), net.ns("br")
    sh("ip", "netns", "add", ns)
    net.made.append(ns)
    a, b = net.tag + "ac", net.tag + "bc"
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    sh("ip", "link", "set", a, "netns", ns)
    sh("ip", "link", "set", b, "netns", br)
    sh("ip", "netns", "exec", br, "ip", "link", "set", b, "master", "br0")
    sh("ip", "netns", "exec", br, "ip", "link", "set", b, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", CLIENT_ADDR + "/24", "dev", a)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", a, "up")
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    return ns


def netem_works(net, i):
    """Whether tc can put netem on node i's veth (the kernel may lack it)."""
    if shutil.which("tc") is None:
        return False
    ok = sh("ip", "netns", "exec", net.ns(i), "tc", "qdisc", "add", "dev", net.veth(i), "root",
            "netem", "loss", "0%", check=False).returncode == 0
    if ok:
        sh("ip", "netns", "exec", net.ns(i), "tc", "qdisc", "del", "dev", net.veth(i), "root",
           check=False)
    return ok


VIEWS = """
out = {}
for i, b in %r:
    try:
        a = AdminClient({'bootstrap.servers': b, 'socket.connection.setup.timeout.ms': 2000})
        t = a.list_topics(topic=%r, timeout=3).topics.get(%r)
    except Exception:
        t = None
    if t is None or t.error is not None or len(t.partitions) != %d:
        out[i] = None
    else:
        out[i] = {p: [x.leader, sorted(x.replicas), sorted(x.isrs)] for p, x in t.partitions.items()}
print(json.dumps(out))
"""


class Harness:
    def __init__(self, net, nodes, workdir, seed, schedule):
        self.net, self.nodes, self.workdir = net, nodes, workdir
        self.seed, self.schedule = seed, schedule
        self.client = types.SimpleNamespace(net=net, i="c")  # for py()
        self.paused = set()
        self.t0 = time.monotonic()
        self.events = []
        self.kills = []        # {t, kind, node, led (partitions), restarted (t)}
        self.workers = {}      # name -> (Popen, out path)
        self.netem = None
        # When the last fault action (a kill, a start, a heal) happened;
        # None until the producers run. See healthy().
        self.disturbed = None
        self.all_bootstrap = ",".join(nodes[i].bootstrap for i in (1, 2, 3))

    # ----------------------------------------------------------- records --
    def log(self, text):
        self.events.append("%6.1f %s" % (time.monotonic() - self.t0, text))

    def context(self):
        return "seed %d (replay: FAULT_SEED=%d)\nschedule: %s\nevents:\n  %s" % (
            self.seed, self.seed, describe_schedule(self.schedule), "\n  ".join(self.events))

    # ------------------------------------------------------------- views --
    def up(self):
        return [i for i in (1, 2, 3) if self.nodes[i].alive() and i not in self.paused]

    def views(self, ids=None):
        """{node: {partition: [leader, replicas, isr]} or None}, as each node
        of `ids` (the running ones by default) describes the topic."""
        ids = self.up() if ids is None else ids
        try:
            got = py(self.client, VIEWS % ([(i, self.nodes[i].bootstrap) for i in ids], TOPIC,
                                           TOPIC, PARTITIONS), timeout=40)
        except subprocess.TimeoutExpired:
            return {i: None for i in ids}
        return {int(i): v and {int(p): s for p, s in v.items()} for i, v in got.items()}

    def agreed(self):
        """The partitions' [leader, replicas, isr] every running node
        describes alike, or None."""
        vs = list(self.views().values())
        if not vs or any(v is None for v in vs) or any(v != vs[0] for v in vs):
            return None
        return vs[0]

    def healthy(self):
        """The agreed state when every partition has three in-sync
        replicas and, once the producers run, has acknowledged a write since
        the last fault action. The metadata alone is not enough: a leader
        killed and restarted before the controller fenced it is still
        described as the leader with a full ISR until its new registration
        makes the controller elect again. Starting the next fault then
        would cut that failover short, and the kill's resume time would
        measure both faults (CI at 1718a9e, seed 8: a kill_all 4 s after a
        kill_leader made it 11.5 s)."""
        if len(self.up()) != 3:
            return None
        state = self.agreed()
        if not state or any(s[0] not in (1, 2, 3) or s[2] != [1, 2, 3] for s in state.values()):
            return None
        if self.disturbed is not None and self.unserved_since(self.disturbed):
            return None
        return state

    def unserved_since(self, t):
        """The partitions without an acknowledged write after `t`."""
        served = set()
        for name, (_, out) in self.workers.items():
            if name.startswith("producer"):
                p = history_check.parse_producer(name, history_check.read_lines(out))
                served.update(a[0] for a in p.acked.values() if a[3] > t)
        return [p for p in range(PARTITIONS) if p not in served]

    def wait_healthy(self, timeout, why):
        start = time.monotonic()
        try:
            state = wait_for("every partition with three in-sync replicas and, once producing, "
                             "a write acknowledged since the last fault (%s)" % why,
                             self.healthy, timeout)
            self.log("healthy after %.1f s (%s): %s" % (time.monotonic() - start, why, state))
            return state
        except AssertionError:
            self.log("NOT healthy within %d s (%s): %s" % (timeout, why, self.views()))
            return None

    def recovery_s(self):
        """How long to wait for three in-sync replicas: not long once a
        follower is stuck for good (STUCK_FOLLOWER_LINE), which fails the
        run anyway."""
        return 10 if stuck_follower(self.nodes) else RECOVERY_S

    def controller(self):
        for i in self.up():
            try:
                s = self.nodes[i].status()
            except subprocess.TimeoutExpired:
                continue
            if s and s.get("leader") in (1, 2, 3):
                return s["leader"]
        return None

    # ------------------------------------------------------------ actions --
    def kill(self, i, kind, state):
        led = sorted(p for p, s in (state or {}).items() if s[0] == i)
        self.nodes[i].kill9()
        t = time.monotonic()
        self.disturb(t)
        self.kills.append({"t": t, "kind": kind, "node": i, "led": led, "restarted": None})
        self.log("kill -9 node %d (%s; it led partitions %s)" % (i, kind, led))
        return t

    def disturb(self, t=None):
        if self.disturbed is not None:
            self.disturbed = time.monotonic() if t is None else t

    def start(self, i):
        self.nodes[i].start(timeout=60)
        self.disturb()
        for k in self.kills:
            if k["node"] == i and k["restarted"] is None:
                k["restarted"] = time.monotonic()
        self.log("node %d started" % i)

    def iptables(self, i, *rule):
        sh("ip", "netns", "exec", self.net.ns(i), "iptables", *rule)

    def heal_all(self):
        """Every fault undone: rules flushed, qdiscs removed, paused
        brokers continued, stopped brokers started."""
        for i in (1, 2, 3):
            self.net.heal(i)
            sh("ip", "netns", "exec", self.net.ns(i), "tc", "qdisc", "del", "dev",
               self.net.veth(i), "root", check=False)
            sh("ip", "netns", "exec", self.net.ns("br"), "tc", "qdisc", "del", "dev",
               "%sb%d" % (self.net.tag, i), "root", check=False)
        for i in sorted(self.paused):
            try:
                os.kill(self.nodes[i].proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.paused.clear()
        for i in (1, 2, 3):
            if not self.nodes[i].alive():
                self.start(i)

    def run_fault(self, f):
        try:
            self.run_fault_actions(f)
        finally:
            # Heals and SIGCONT count as fault actions too.
            self.disturb()

    def run_fault_actions(self, f):
        kind = f["kind"]
        state = self.wait_healthy(self.recovery_s(), "before " + kind)
        time.sleep(f["gap"])
        if kind in ("kill_leader", "kill_follower", "isolate_leader"):
            state = state or self.agreed() or {}
            leader = state.get(0, [None])[0]
            if leader not in (1, 2, 3):
                self.log("%s skipped: partition 0 has no known leader" % kind)
                return
        if kind == "kill_leader":
            self.kill(leader, kind, state)
            time.sleep(f["down"])
            self.start(leader)
        elif kind == "kill_follower":
            follower = [i for i in (1, 2, 3) if i != leader][f["which"]]
            self.kill(follower, kind, state)
            time.sleep(f["down"])
            self.start(follower)
        elif kind == "kill_controller":
            c = self.controller()
            if c is None:
                self.log("kill_controller skipped: no quorum leader known")
                return
            self.kill(c, kind, state)
            time.sleep(f["down"])
            self.start(c)
        elif kind == "pause":
            i = f["node"]
            os.kill(self.nodes[i].proc.pid, signal.SIGSTOP)
            self.paused.add(i)
            self.log("SIGSTOP node %d for %.1f s" % (i, f["for"]))
            time.sleep(f["for"])
            os.kill(self.nodes[i].proc.pid, signal.SIGCONT)
            self.paused.discard(i)
            self.log("SIGCONT node %d" % i)
        elif kind == "isolate_leader":
            self.net.cut(leader)
            self.log("node %d (leader of partition 0) cut off for %.1f s" % (leader, f["for"]))
            time.sleep(f["for"])
            self.net.heal(leader)
            self.log("node %d healed" % leader)
        elif kind == "one_way":
            i, chain = f["node"], f["chain"]
            self.iptables(i, "-A", chain, "-i" if chain == "INPUT" else "-o", self.net.veth(i),
                          "-j", "DROP")
            self.log("node %d drops its %s for %.1f s" % (i, chain, f["for"]))
            time.sleep(f["for"])
            self.net.heal(i)
            self.log("node %d healed" % i)
        elif kind == "loss":
            i = f["node"]
            if self.netem is None:
                self.netem = netem_works(self.net, i)
            if self.netem:
                sh("ip", "netns", "exec", self.net.ns(i), "tc", "qdisc", "add", "dev",
                   self.net.veth(i), "root", "netem", "loss", "10%")
                sh("ip", "netns", "exec", self.net.ns("br"), "tc", "qdisc", "add", "dev",
                   "%sb%d" % (self.net.tag, i), "root", "netem", "loss", "10%")
                how = "tc netem"
            else:
                for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
                    self.iptables(i, "-A", chain, flag, self.net.veth(i), "-m", "statistic",
                                  "--mode", "random", "--probability", "0.1", "-j", "DROP")
                how = "iptables statistic (no netem)"
            self.log("node %d loses 10%% of its packets both ways for %.1f s (%s)"
                     % (i, f["for"], how))
            time.sleep(f["for"])
            self.heal_all()
            self.log("node %d healed" % i)
        elif kind == "rolling_restart":
            for n, i in enumerate(f["order"]):
                if n:
                    self.wait_healthy(40, "rolling restart, before node %d" % i)
                code = self.nodes[i].terminate(timeout=30)
                self.log("node %d stopped (SIGTERM, exit %s)" % (i, code))
                self.start(i)
        elif kind == "kill_all":
            for i in (1, 2, 3):  # at once, then each reaped and recorded
                self.nodes[i].proc.send_signal(signal.SIGKILL)
            for i in (1, 2, 3):
                self.kill(i, kind, state)
            time.sleep(f["down"])
            for i in (1, 2, 3):
                self.start(i)

    # ------------------------------------------------------------ workers --
    def spawn(self, name, *args):
        out = self.workdir / (name + ".history")
        err = open(self.workdir / (name + ".stderr"), "ab")
        cmd = ["ip", "netns", "exec", self.net.ns("c"), python(), WORKER, args[0], args[1],
               self.all_bootstrap, TOPIC, str(PARTITIONS), str(out)] + [str(a) for a in args[2:]]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                cwd=os.getcwd(), preexec_fn=die_with_parent)
        err.close()
        self.workers[name] = (proc, out)
        return proc

    def stop_path(self, name):
        return self.workdir / (name + ".stop")

    def acks_since(self, t):
        n = 0
        for name, (_, out) in self.workers.items():
            if name.startswith("producer"):
                p = history_check.parse_producer(name, history_check.read_lines(out))
                n += sum(1 for a in p.acked.values() if a[3] > t)
        return n

    def kill_workers(self):
        for proc, _ in self.workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def parsed(self):
        producers, reads = [], []
        for name, (_, out) in self.workers.items():
            lines = history_check.read_lines(out)
            if name.startswith("producer"):
                producers.append(history_check.parse_producer(name, lines))
            else:
                reads.append(history_check.parse_read(name, lines, name.startswith("final")))
        return producers, reads


# ------------------------------------------------------- replica segments --
def segment_batches(data_dir, partition):
    """[(base offset, last offset delta, leader epoch, crc)] of the record
    batches in the partition's segment files, in order."""
    out, expect = [], None
    d = data_dir / ("%s-%d" % (TOPIC, partition))
    for seg in sorted(d.glob("*.log")):
        raw = seg.read_bytes()
        at = 0
        # base offset, batch length, leader epoch, magic, crc, attributes,
        # last offset delta
        while at + 27 <= len(raw):
            base, length, epoch, magic, crc, _, delta = struct.unpack_from(">qiibIhi", raw, at)
            if length <= 0 or magic != 2 or at + 12 + length > len(raw) \
                    or (expect is not None and base != expect):
                break
            out.append((base, delta, epoch, crc))
            expect = base + delta + 1
            at += 12 + length
    return out


def compare_replicas(nodes, watermarks):
    """Problems found comparing the replicas' batches of each partition:
    one must be a prefix of the other, and each must reach the high
    watermark."""
    problems = []
    for p in range(PARTITIONS):
        logs = {i: segment_batches(nodes[i].data_dir, p) for i in (1, 2, 3)}
        longest = max(logs.values(), key=len)
        for i, log in logs.items():
            if log != longest[:len(log)]:
                at = next(k for k, (a, b) in enumerate(zip(log, longest)) if a != b) \
                    if any(a != b for a, b in zip(log, longest)) else len(log)
                problems.append("partition %d: node %d's batches diverge at batch %d: %s vs %s" % (
                    p, i, at, log[at:at + 2], longest[at:at + 2]))
            end = log[-1][0] + log[-1][1] + 1 if log else 0
            if end < watermarks.get(p, 0):
                problems.append("partition %d: node %d holds offsets up to %d, below the high "
                                "watermark %d" % (p, i, end, watermarks[p]))
    return problems


# -------------------------------------------------------------------- test --
@pytest.fixture
def cluster(request, tmp_path):
    yield from namespace_cluster(request, tmp_path, CONFIG)


def create_topic(h):
    return py(h.client, """
a = AdminClient({'bootstrap.servers': %r})
f = a.create_topics([NewTopic(%r, %d, replication_factor=3,
                              config={'min.insync.replicas': '%d'})], request_timeout=30)
f[%r].result(timeout=40)
print('true')
""" % (h.all_bootstrap, TOPIC, PARTITIONS, MIN_INSYNC, TOPIC))


def params():
    out = []
    for s in seeds():
        marks = [pytest.mark.xfail(reason=KNOWN_BUGS[s], strict=False)] if s in KNOWN_BUGS else []
        out.append(pytest.param(s, id="seed%d" % s, marks=marks))
    return out


@pytest.mark.parametrize("seed", params())
def test_a_fault_schedule_loses_and_duplicates_nothing(cluster, tmp_path, seed):
    net, nodes = cluster
    schedule = json.loads(os.environ["FAULT_SCHEDULE"]) if os.environ.get("FAULT_SCHEDULE") \
        else make_schedule(seed)
    h = Harness(net, nodes, tmp_path, seed, schedule)
    try:
        add_client_namespace(net)
        run_schedule(h)
    except (KeyboardInterrupt, pytest.xfail.Exception, pytest.skip.Exception):
        raise
    except BaseException as e:
        # Whatever went wrong, the seed, schedule and what happened so far
        # go with it.
        raise AssertionError("%s\n%s: %s" % (h.context(), type(e).__name__, e)) from e
    finally:
        h.kill_workers()


def run_schedule(h):
    nodes = h.nodes
    wait_for("a settled cluster", lambda: settled(nodes), 60)
    assert create_topic(h) is True
    h.wait_healthy(40, "topic created")
    h.log("schedule: " + describe_schedule(h.schedule))

    h.spawn("producer-confluent", "produce", "confluent", h.stop_path("producers"), "c",
            CONFLUENT_RATE)
    h.spawn("producer-kafka-python", "produce", "kafka-python", h.stop_path("producers"), "k",
            KAFKA_PYTHON_RATE)
    h.spawn("consumer-confluent", "consume", "confluent", h.stop_path("consumers"))
    started = time.monotonic()
    wait_for("both producers' first acknowledged writes",
             lambda: all(any(line.startswith("A ") for line in
                             history_check.read_lines(h.workers[n][1]))
                         for n in ("producer-confluent", "producer-kafka-python")), 60)
    h.log("producing (first acks after %.1f s)" % (time.monotonic() - started))
    h.disturbed = time.monotonic()

    try:
        for f in h.schedule:
            h.run_fault(f)
    finally:
        h.heal_all()
    healed = time.monotonic()
    h.log("all healed")
    recovered = h.wait_healthy(h.recovery_s(), "after the schedule")
    wait_for("writes acknowledged after healing", lambda: h.acks_since(healed) >= 50, 60)

    # Stop the producers (each flushes), then the live consumer reads to
    # the end offsets; then the final readers.
    h.stop_path("producers").write_text("")
    for name in ("producer-confluent", "producer-kafka-python"):
        code = h.workers[name][0].wait(timeout=90)
        h.log("%s exited %d" % (name, code))
    h.spawn("final-confluent", "final", "confluent", 60)
    assert h.workers["final-confluent"][0].wait(timeout=90) in (0, 3)
    final = history_check.parse_read("final-confluent",
                                     history_check.read_lines(h.workers["final-confluent"][1]),
                                     True)
    h.stop_path("consumers").write_text(json.dumps(final.watermarks))
    h.spawn("final-kafka-python", "final", "kafka-python", 60)
    for name in ("consumer-confluent", "final-kafka-python"):
        code = h.workers[name][0].wait(timeout=90)
        h.log("%s exited %d" % (name, code))

    producers, reads = h.parsed()
    report = history_check.check(producers, reads)
    resumes = []
    for k in h.kills:
        r = history_check.resume_time(producers, k["t"], k["led"]) if k["led"] else None
        down = k["restarted"] - k["t"]
        h.log("%s of node %d (restarted after %.1f s)%s" % (
            k["kind"], k["node"], down, "" if not k["led"] else
            ": produce to partitions %s resumed after %s" % (
                k["led"], "never" if r is None else "%.1f s" % r)))
        if k["led"]:
            print("RESUME seed=%d kind=%s resumed=%s down=%.1f before_restart=%s"
                  % (h.seed, k["kind"], r, down, r is not None and r < down))
        if k["kind"] == "kill_leader":
            resumes.append(r)
    h.log("acked: %s" % {p.name: len(p.acked) for p in producers})

    assert report.ok(), report.text()
    slow = [r for r in resumes if r is None or r > RESUME_BOUND_S]
    assert not slow, "produce resumed after %s s (bound %s s)" % (resumes, RESUME_BOUND_S)

    # The replicas, stopped cleanly, hold the same batches.
    if recovered:
        h.wait_healthy(30, "before the replica comparison")
    for i in (1, 2, 3):
        nodes[i].proc.send_signal(signal.SIGTERM)
    for i in (1, 2, 3):
        nodes[i].proc.wait(timeout=30)
    replica_problems = compare_replicas(nodes, final.watermarks)
    stuck = stuck_follower(nodes)
    assert recovered, "not every partition back to three in-sync replicas within %d s of " \
        "healing%s" % (RECOVERY_S, "; a follower refuses its leader's batches: %s" % stuck
                       if stuck else "")
    assert not replica_problems, replica_problems
    print("seed %d ok: %s" % (h.seed, report.text()))
    print(h.context())


# Two broker bugs this harness found, fixed in the broker since (the
# seeded simulation in broker/replication/tests/sim.rs found them too):
# - A follower stuck for good (seeds 45 and 56 of FAULT_SEED_BASE=12
#   FAULT_SEEDS=100 with an earlier schedule generator; reduced:
#   FAULT_SEED=45 FAULT_SCHEDULE='[{"kind": "kill_leader", "gap": 1.7,
#   "down": 1.6}, {"kind": "one_way", "gap": 0.6, "node": 2, "chain":
#   "INPUT", "for": 4.7}]'). The controller made a broker leader (epoch E)
#   while it could not hear it, then replaced it (E+1); healed, the broker
#   led E for a few milliseconds, writing nothing but recording that E
#   starts at its log end, then followed, and refused every batch of the
#   new leader's with an epoch below E ("replicated batch of leader epoch
#   E-1 after epoch E"). Fixed by letting a batch replace an epoch recorded
#   where no batch followed (EpochCache::assign, latest_before). The line is
#   still looked for, to say why a run did not recover.
# - Acknowledged acks=all writes lost (seed 6, 1 run in 6): a broker
#   restarted after a SIGTERM led its partitions for ~0.3 s in the epochs
#   its own quorum log still named, acknowledged the kafka-python
#   producer's retries there, then learned it followed and truncated them.
#   Fixed by showing a node no leadership until the image holds its own
#   new registration (cluster::Host::view).
STUCK_FOLLOWER_LINE = "replicated batch of leader epoch"


def stuck_follower(nodes):
    """The first log line of a follower refusing its leader's batches for an
    epoch it led without writing (STUCK_FOLLOWER_LINE), or None."""
    for i in (1, 2, 3):
        try:
            text = nodes[i].stderr_path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if STUCK_FOLLOWER_LINE in line:
                return "node %d: %s" % (i, line.strip())
    return None


def test_the_checker_finds_each_kind_of_anomaly():
    """history_check on made-up histories: each anomaly is reported."""
    producer = history_check.parse_producer("p", [
        "A v1 0 0 1.0 1.1", "A v2 0 1 1.0 1.2", "A v3 0 2 1.0 1.3", "A v4 0 3 1.0 1.4",
        "E v5 0 2.0 timed_out", "D 5 0"])
    final = history_check.parse_read("final", [
        "W 0 4", "R 0 0 v1 3.0", "R 0 1 v2 3.0", "R 0 2 v3 3.0", "R 0 3 v2 3.0",
        'D complete {"0": 4}'], True)
    live = history_check.parse_read("live", [
        "R 0 0 v1 2.0", "R 0 2 v9 2.0", "R 0 1 v2 2.0", "R 0 3 v4 2.0",
        'D complete {"0": 4}'], False)
    cut = history_check.parse_read("cut", ["R 0 0 v1 2.0"], False)
    rep = history_check.check([producer], [final, live, cut])
    c = rep.counts()
    # v4 is not in the final read; v2 sits at 0/1 and 0/3; 0/2 holds v3 and
    # v9, 0/3 holds v4 and v2; live went back from 2 to 1, skipped 0/1
    # first, never delivered v3, read v9 and v4, which the final read does
    # not hold; `cut` has no end line.
    assert c == {"lost": 1, "duplicates": 1, "divergent": 2, "nonmonotonic": 1, "unseen": 1,
                 "gaps": 1, "phantom": 2, "incomplete": 1}, rep.text()
    assert history_check.resume_time([producer], 1.15, [0]) == pytest.approx(0.05)
    assert history_check.resume_time([producer], 1.5, [0]) is None
    # An answer the killed leader sent before it died is not a resumption.
    stalled = history_check.parse_producer("s", [
        "A w1 0 0 0 1.00", "A w2 0 1 0 1.05", "A w3 0 2 0 3.00", "A w4 0 3 0 3.01"])
    assert history_check.resume_time([stalled], 1.02, [0]) == pytest.approx(1.98)
    clean = history_check.check([producer], [history_check.parse_read("f", [
        "R 0 0 v1 3", "R 0 1 v2 3", "R 0 2 v3 3", "R 0 3 v4 3", 'D complete {"0": 4}'], True)])
    assert clean.ok(), clean.text()


def test_schedules_are_reproducible_and_cover_every_kind():
    assert make_schedule(7) == make_schedule(7)
    kinds = {f["kind"] for s in range(len(KINDS)) for f in make_schedule(s)}
    assert kinds == set(KINDS)
