"""Exactly-once pipeline (issue 19): a consume-transform-produce process
(confluent-kafka, eos_worker.py) is killed with SIGKILL again and again while
it copies the input topic to the output topic in transactions; afterwards
the read_committed output holds each input record exactly once, in order per
key, and nothing else.

The input: RECORDS records over PARTITIONS partitions, keyed by KEYS keys
("k000".."k199"), record i has key i % KEYS and value "<key>:<seq>" where
seq = i // KEYS is its number among its key's records; written up front by
an idempotent producer, so each key's records are in one partition in seq
order. The worker (one process, a fixed transactional id and a fixed static
group member id, see eos_worker.py) copies each record to the output topic
under the same key, in transactions of up to BATCH records, each committing
the consumer's offsets with its output (send_offsets_to_transaction).

The test starts the worker, waits until it has its partitions, lets it run a
seeded random 0.3-2.5 s and kills it (SIGKILL), KILLS times, each time
starting the next incarnation, which fences the dead one and aborts its open
transaction (init_transactions with the same transactional id) and resumes
at the group's committed offsets; then a last incarnation runs until the
committed offsets reach the input's end. It fails if the input is finished
before the KILLS-th kill (then the kills did not all interrupt work).
CORELOG_EOS_SEED=<n> repeats a run's kill schedule (the seed is printed, and
named in every assertion message).

Checked on the output: read_committed sees exactly RECORDS records, each
input (key, seq) once, each key's records in one partition in seq order,
every value the input's value plus the worker's "|out"; a read_uncommitted
reader sees more (the aborted transactions' records as well,
duplicates of committed ones; the counts are printed).

Size and time: all RECORDS = 100,000 records of the issue are processed.
The worker holds each transaction open at least MIN_TXN_MS (its "transform"
work), which bounds its rate at BATCH / MIN_TXN_MS = 2,000 records/s
whatever the broker's speed: unpaced, with batches of 500, it copied the
100,000 records in about 10 s of its own time against the debug broker,
so the input was finished after 10 kills, not 20. Paced, the kills (about
28 s of work in all, 20 delays of 1.4 s on average) leave most of the
input to the last incarnation, and most kills land in an open transaction
whose records are on the broker. With the debug broker on a 2-core machine
a run takes 82-88 s (input 1 s, kills 40-48 s, last run 32-41 s, reads
4-5 s; the timings are printed); the test is bounded at 360 s.

The broker's timed-out transactions are looked for every 500 ms and the
worker's transaction timeout is 5 s, so even an open transaction that no
new incarnation fenced would be aborted within seconds. The group's initial
rebalance delay is 0 (Kafka's 3 s would only slow down a group that became
empty).
"""
import collections
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from conftest import HERE, _die_with_parent, create_topic, produce_all

RECORDS = 100_000
KEYS = 200
PARTITIONS = 4
KILLS = 20
BATCH = 100
MIN_TXN_MS = 50
TXN_TIMEOUT_MS = 5000
KILL_DELAY_S = (0.3, 2.5)
READY_TIMEOUT_S = 60.0
FINAL_TIMEOUT_S = 150.0

EOS_TOML = """\
[transactions]
abort_timed_out_check_interval_ms = 500

[groups]
initial_rebalance_delay_ms = 0
"""

WORKER = str(HERE / "eos_worker.py")


def input_value(i):
    key = "k%03d" % (i % KEYS)
    return key, "%s:%06d" % (key, i // KEYS)


class Worker:
    """The incarnations of eos_worker.py, all with one identity and one
    status file (see eos_worker.py for its lines)."""

    def __init__(self, tmp_path, bootstrap, inp, out):
        self.status = tmp_path / "worker-status.log"
        self.stderr = tmp_path / "worker-stderr.log"
        tag = uuid.uuid4().hex[:6]
        self.args = [bootstrap, inp, out, "eos-group-" + tag, "eos-txn-" + tag, str(self.status)]
        self.proc = None
        self.inc = 0
        self.status.touch()

    def start(self):
        self.inc += 1
        with open(self.stderr, "ab") as err:
            err.write(b"===== incarnation %d =====\n" % self.inc)
            err.flush()
            self.proc = subprocess.Popen(
                [sys.executable, WORKER] + self.args + [str(self.inc), str(BATCH), str(TXN_TIMEOUT_MS), str(MIN_TXN_MS)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, preexec_fn=_die_with_parent)

    def events(self):
        """{incarnation: [status line fields]}"""
        per = collections.defaultdict(list)
        inc = 0
        for line in self.status.read_text(errors="replace").splitlines():
            f = line.split(" ")
            if f[0] == "S":
                inc = int(f[1])
            per[inc].append(f)
        return per

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(f[0] == "R" for f in self.events().get(self.inc, [])):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-n:])

    def status_tail(self, n=30):
        return "\n".join(self.status.read_text(errors="replace").splitlines()[-n:])


def read_output(bootstrap, topic, isolation, timeout=90.0):
    """Every record of the topic's partitions from offset 0 to the end (each
    partition's end-of-partition event), at `isolation`: a list of
    (partition, offset, key, value, headers dict)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eos-check-" + uuid.uuid4().hex[:6],
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": isolation})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    out = []
    at_end = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < deadline, "%s read of %s not at the end after %.0f s (%d records, at end: %r)" % (
                isolation, topic, timeout, len(out), sorted(at_end))
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                        continue
                    raise AssertionError("%s consume error: %s" % (isolation, err))
                at_end.discard(m.partition())
                out.append((m.partition(), m.offset(), m.key().decode(), m.value().decode(),
                            {k: v.decode() for k, v in (m.headers() or [])}))
    finally:
        c.close()
    return out


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_a_consume_transform_produce_pipeline_killed_repeatedly_outputs_each_input_exactly_once(
        broker_factory, tmp_path):
    seed = int(os.environ.get("CORELOG_EOS_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    tag = "seed=%d" % seed
    print("\nexactly-once pipeline: %s (CORELOG_EOS_SEED=%d repeats the kill schedule)" % (tag, seed))
    cfg = tmp_path / "corelog-eos.toml"
    cfg.write_text(EOS_TOML)
    b = broker_factory(extra_args=["--config", str(cfg)])
    inp = create_topic(b.bootstrap, partitions=PARTITIONS)
    out = create_topic(b.bootstrap, partitions=PARTITIONS)

    t0 = time.monotonic()
    messages = []
    for i in range(RECORDS):
        key, value = input_value(i)
        messages.append({"key": key.encode(), "value": value.encode()})
    produce_all(b.bootstrap, inp, messages, timeout=120, enable_idempotence=True, acks="all")
    del messages
    t_input = time.monotonic() - t0

    w = Worker(tmp_path, b.bootstrap, inp, out)
    kills = []  # (incarnation, delay, the incarnation's last status event)
    t1 = time.monotonic()
    try:
        while len(kills) < KILLS:
            w.start()
            ready = w.wait_ready(READY_TIMEOUT_S)
            assert ready, "%s: incarnation %d not ready (assigned) in %.0f s (exit %s)\nstatus:\n%s\nstderr:\n%s" % (
                tag, w.inc, READY_TIMEOUT_S, w.proc.poll(), w.status_tail(), w.stderr_tail())
            delay = rng.uniform(*KILL_DELAY_S)
            time.sleep(delay)
            rc = w.proc.poll()
            assert rc is None, (
                "%s: incarnation %d exited (%s) before its kill (%d kills so far; exit 0 means the input was "
                "finished before %d kills)\nstatus:\n%s\nstderr:\n%s"
                % (tag, w.inc, rc, len(kills), KILLS, w.status_tail(), w.stderr_tail()))
            w.kill9()
            kills.append((w.inc, delay, " ".join(w.events()[w.inc][-1])))
        t_kills = time.monotonic() - t1

        # The last incarnation runs to the end of the input.
        t2 = time.monotonic()
        w.start()
        try:
            rc = w.proc.wait(timeout=FINAL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
        assert rc == 0, "%s: the final incarnation %d %s\nstatus:\n%s\nstderr:\n%s" % (
            tag, w.inc, "did not finish in %.0f s" % FINAL_TIMEOUT_S if rc is None else "exited %s" % rc,
            w.status_tail(), w.stderr_tail())
        t_final = time.monotonic() - t2
    finally:
        w.kill9()

    events = w.events()
    committed_by = {inc: sum(int(f[2]) for f in ev if f[0] == "C") for inc, ev in events.items()}
    txns = sum(1 for ev in events.values() for f in ev if f[0] == "C")
    aborts = [(inc, " ".join(f)) for inc, ev in events.items() for f in ev if f[0] == "A"]
    in_txn = sum(1 for _, _, last in kills if last.startswith("B "))
    fatal = [(inc, " ".join(f)) for inc, ev in events.items() for f in ev if f[0] == "F"]
    assert not fatal, "%s: fatal errors in the worker: %r" % (tag, fatal)

    t3 = time.monotonic()
    rc_out = read_output(b.bootstrap, out, "read_committed")
    ru_out = read_output(b.bootstrap, out, "read_uncommitted")
    t_read = time.monotonic() - t3

    summary = ("%s: %d kills (%d after a transaction began and before it was seen committed), %d incarnations, %d committed transactions, "
               "%d aborted by the worker; read_committed %d records, read_uncommitted %d; "
               "input %.1f s, kills %.1f s, final run %.1f s, reads %.1f s; "
               "records committed per incarnation %r"
               % (tag, len(kills), in_txn, w.inc, txns, len(aborts), len(rc_out), len(ru_out),
                  t_input, t_kills, t_final, t_read, [committed_by.get(i, 0) for i in range(1, w.inc + 1)]))
    print(summary)

    # Each input once.
    expected = {input_value(i)[1] for i in range(RECORDS)}
    seen = collections.defaultdict(list)
    bad = []
    for rec in rc_out:
        part, off, key, value, headers = rec
        base, sep, suffix = value.rpartition("|")
        if sep != "|" or suffix != "out" or base not in expected or not base.startswith(key + ":"):
            bad.append(rec)
            continue
        seen[base].append(rec)
    dups = {v: recs for v, recs in seen.items() if len(recs) > 1}
    missing = sorted(expected - set(seen))
    assert not bad and not dups and not missing, (
        "%s: read_committed output is not each input exactly once: %d foreign records %r, %d duplicated inputs "
        "(first: %r), %d missing inputs (first: %r)\n%s"
        % (tag, len(bad), bad[:5], len(dups), sorted(dups.items())[:5], len(missing), missing[:10], summary))
    assert len(rc_out) == RECORDS, summary

    # In order per key, each key in one partition.
    by_key = collections.defaultdict(list)
    for part, off, key, value, headers in sorted(rc_out, key=lambda r: (r[0], r[1])):
        by_key[key].append((part, int(value.split("|")[0].split(":")[1]), off))
    disorder = []
    for key, recs in by_key.items():
        if len({p for p, _, _ in recs}) != 1 or [s for _, s, _ in recs] != list(range(len(recs))):
            disorder.append((key, recs[:20]))
    assert not disorder, "%s: %d keys out of order or split over partitions (first: %r)\n%s" % (
        tag, len(disorder), disorder[:2], summary)

    # read_uncommitted also sees the aborted transactions' records: the
    # kills left some (each kill lands in an open transaction whose records
    # are on the broker with a chance of some 70%, so all 20 missing is
    # practically impossible), and all are copies of input records.
    assert len(ru_out) > len(rc_out), "%s: no aborted records: the kills interrupted no transaction" % summary
    ru_values = {r[3] for r in ru_out}
    assert ru_values == {r[3] for r in rc_out}, (
        "%s: read_uncommitted holds values read_committed does not have, beyond duplicates" % tag)
