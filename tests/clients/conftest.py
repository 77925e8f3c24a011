"""Fixtures for the real-client suite: a fresh `corelog serve` per test.

The binary is never built here (ci does that). It is found at $CORELOG_BIN,
else <repo>/target/release/corelog, else <repo>/target/debug/corelog.
"""
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import brokerproc  # noqa: E402
import kproto  # noqa: E402
from brokerproc import corelog_bin, free_port  # noqa: E402,F401 - used by tests

READY_TIMEOUT_S = brokerproc.READY_TIMEOUT_S
NODE_ID = 1  # the broker's node id: single-node cluster, node 1
DEBIAN_PYTHON = "/usr/bin/python3"
_die_with_parent = brokerproc.die_with_parent


def pytest_configure(config):
    # 1,000 concurrent connections (and the brokers we start, which inherit
    # it) need more than the usual 1,024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class BrokerError(Exception):
    pass


class Broker:
    """One `corelog serve` process on a fixed data dir and port.

    .bootstrap "127.0.0.1:PORT", .port, .data_dir, .proc
    .ready     the broker's --ready-file JSON (pid, listen, shards, ...)
    .restart() kill (if running) and start again on the same dir and port
    .kill9()   SIGKILL and reap
    .terminate(timeout) SIGTERM and wait; returns the exit code
    .stderr_tail(n) last n lines of the broker's stderr (all runs)
    """

    def __init__(self, workdir, extra_args=()):
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.extra_args = list(extra_args)
        self.stderr_path = self.workdir / "broker-stderr.log"
        self.stdout_path = self.workdir / "broker-stdout.log"
        self.ready_file = self.workdir / "broker-ready.json"
        self.ready = None
        self.proc = None
        self.starts = 0
        self.binary = corelog_bin()

    # ------------------------------------------------------------- process --
    def command(self):
        """The command line, without --ready-file (start() adds it)."""
        cmd = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
               "--listen", self.bootstrap, "--advertised-listener", self.bootstrap]
        cores = os.environ.get("CORELOG_TEST_CORES")
        if cores:
            cmd += ["--cores", cores]
        return cmd + self.extra_args

    def start(self, timeout=READY_TIMEOUT_S):
        """Starts the broker and waits until it serves (writes its ready file)."""
        if not self.binary.exists():
            raise BrokerError(
                "corelog binary not found at %s (set CORELOG_BIN, or build it first: cargo build --release)"
                % self.binary)
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError("broker already running (pid %d)" % self.proc.pid)
        self.starts += 1
        cmd = self.command()
        with open(self.stderr_path, "ab") as err:
            err.write(("\n===== start #%d: %s =====\n" % (self.starts, " ".join(cmd))).encode())
        self.ready = None
        try:
            self.proc, self.ready = brokerproc.start_broker(
                cmd, self.ready_file, log_path=self.stderr_path, stdout_path=self.stdout_path,
                cwd=str(self.workdir), timeout=timeout)
        except brokerproc.BrokerStartError as e:
            raise BrokerError(str(e)) from None
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def terminate(self, timeout=10.0):
        """SIGTERM; returns the exit code, or raises if it takes longer than timeout."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise BrokerError("broker did not exit within %.0f s of SIGTERM; stderr tail:\n%s"
                              % (timeout, self.stderr_tail()))

    def restart(self, kill=True):
        if self.alive():
            if kill:
                self.kill9()
            else:
                self.terminate()
        return self.start()

    def stderr_tail(self, n=60):
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no stderr file)"
        return "\n".join(lines[-n:])


# ----------------------------------------------------------------- fixtures --
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in item.stash.get(_BROKERS, []):
            rep.sections.append(("corelog stderr tail (%s, %s)" % (b.bootstrap, b.stderr_path),
                                 b.stderr_tail()))


_BROKERS = pytest.StashKey()


@pytest.fixture
def broker_factory(request, tmp_path):
    """broker_factory(extra_args=()) -> a started Broker; all killed at teardown."""
    started = []
    request.node.stash[_BROKERS] = started

    def make(extra_args=()):
        b = Broker(tmp_path / ("broker%d" % len(started)), extra_args)
        started.append(b)
        b.start()
        return b

    yield make
    for b in started:
        b.kill9()


@pytest.fixture
def broker(broker_factory):
    """A fresh single-node broker (fresh data dir, free port, default flags)."""
    return broker_factory()


# ------------------------------------------------------------------ helpers --
def unique_topic(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


_ADMINS = {}


def admin(bootstrap):
    """A confluent AdminClient kept alive until the end of the test (a client
    that is garbage collected fails its pending futures with _DESTROY)."""
    from confluent_kafka.admin import AdminClient
    a = _ADMINS.get(bootstrap)
    if a is None:
        a = _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return a


@pytest.fixture(autouse=True)
def _drop_admin_clients():
    yield
    _ADMINS.clear()


def create_topic(bootstrap, name=None, partitions=1, replication_factor=1, config=None, timeout=15.0,
                 leaders=(NODE_ID,)):
    """Creates a topic with the confluent AdminClient and waits until its
    metadata shows all partitions with a leader among `leaders` (node ids).
    Returns the name."""
    from confluent_kafka.admin import NewTopic
    name = name or unique_topic()
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                                   config=config or {})], operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout=timeout)
    wait_topic(bootstrap, name, partitions, timeout=timeout, leaders=leaders)
    return name


def wait_topic(bootstrap, name, partitions, timeout=15.0, leaders=(NODE_ID,)):
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    md = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and \
                all(p.leader in leaders for p in t.partitions.values()):
            return t
        time.sleep(0.1)
    raise AssertionError("topic %s never showed %d partitions led by nodes %r: %r"
                         % (name, partitions, leaders, md.topics.get(name) if md else None))


def producer(bootstrap, **conf):
    from confluent_kafka import Producer
    c = {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": 30000}
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(c)


def produce_all(bootstrap, topic, messages, timeout=60.0, **conf):
    """messages: iterable of dicts with value/key/headers/partition/timestamp.
    Returns the delivery reports [(err, msg)] in completion order; raises on
    any delivery error unless conf allow_errors=True."""
    allow_errors = conf.pop("allow_errors", False)
    p = producer(bootstrap, **conf)
    reports = []

    def cb(err, msg):
        reports.append((err, msg))

    n = 0
    for m in messages:
        while True:
            try:
                p.produce(topic, on_delivery=cb, **m)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    left = p.flush(timeout)
    assert left == 0, "%d messages still in flight after %.0f s" % (left, timeout)
    if not allow_errors:
        errs = [e for e, _ in reports if e is not None]
        assert not errs, "delivery errors: %r" % errs[:5]
    assert len(reports) == n
    return reports


def consume_range(bootstrap, topic, partitions, count, start=None, timeout=30.0, **conf):
    """Assign-only consumer (no group coordination needed) reading `count`
    messages from the given partitions starting at `start` (an offset or
    OFFSET_BEGINNING). Returns the messages."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = {"bootstrap.servers": bootstrap, "group.id": "assign-only-" + uuid.uuid4().hex[:6],
         "enable.auto.commit": False, "enable.partition.eof": False, "auto.offset.reset": "earliest"}
    c.update({k.replace("_", "."): v for k, v in conf.items()})
    cons = Consumer(c)
    start = OFFSET_BEGINNING if start is None else start
    cons.assign([TopicPartition(topic, p, start) for p in partitions])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            batch = cons.consume(num_messages=min(10000, count - len(out)), timeout=0.5)
            for m in batch:
                if m.error():
                    raise AssertionError("consume error: %s" % m.error())
                out.append(m)
    finally:
        cons.close()
    assert len(out) >= count, "consumed %d of %d messages from %s in %.0f s" % (len(out), count, topic, timeout)
    return out


def consume_to_end(bootstrap, topic, partitions, timeout=60.0):
    """Reads every partition from its low to its high watermark."""
    from confluent_kafka import Consumer, TopicPartition
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-" + uuid.uuid4().hex[:6],
                     "enable.auto.commit": False})
    try:
        marks = {p: cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        cons.close()
    total = sum(hi - lo for lo, hi in marks.values())
    msgs = consume_range(bootstrap, topic, partitions, total, timeout=timeout) if total else []
    return marks, msgs


def assert_healthy(b, topic=None, expected_values=None):
    """The broker process is alive, a normal client produces and consumes, and
    (if given) the data produced earlier to `topic` partition 0 is intact."""
    assert b.alive(), "broker died; stderr tail:\n%s" % b.stderr_tail()
    err, versions = kproto.api_versions(b.port)
    assert err == 0 and versions
    probe = create_topic(b.bootstrap, unique_topic("probe"))
    produce_all(b.bootstrap, probe, [{"value": b"probe-%d" % i} for i in range(10)], acks="all")
    got = consume_range(b.bootstrap, probe, [0], 10)
    assert [m.value() for m in got] == [b"probe-%d" % i for i in range(10)]
    if topic is not None:
        got = consume_range(b.bootstrap, topic, [0], len(expected_values))
        assert [m.value() for m in got][:len(expected_values)] == list(expected_values)
    assert b.alive()


def debian_confluent_available():
    try:
        r = subprocess.run([DEBIAN_PYTHON, "-I", "-c", "import confluent_kafka"], capture_output=True, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_or_skip(ok, what):
    """Skip when a client is missing, except under CI where it is a failure."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail("%s is missing (CI is set, so this is a failure; run ci/install-client-deps.sh)" % what)
    pytest.skip("%s is missing (run ci/install-client-deps.sh)" % what)
