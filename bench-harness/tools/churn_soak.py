"""Connection-churn soak: a broker serving a steady producer while clients
connect, ask ApiVersions and disconnect at a steady rate, for a long time.
Samples the broker's RSS and open descriptors; both must stay flat (issue
25: a shard died after about 32,767 connections in its lifetime, and its
descriptors must come back after every close).

Usage:
  python3 bench-harness/tools/churn_soak.py BROKER_BIN OUT_DIR \
      [SECONDS=600] [CONNECTIONS_PER_S=200] [PRODUCE_MSGS_PER_S=2000]

Starts `BROKER_BIN serve --cores 1` on a free loopback port with a fresh
data directory under OUT_DIR, then runs, for SECONDS:
- a producer (confluent-kafka, acks=all, 1 KiB values) at
  PRODUCE_MSGS_PER_S;
- a churn loop: CONNECTIONS_PER_S connections a second, each sending
  ApiVersions v0, reading the answer and closing (three in four with a
  reset, so TIME_WAIT does not run the ephemeral ports out);
- every 10 s: the broker's RSS (VmRSS), open descriptors (/proc/PID/fd)
  and CPU time, and the connections and messages so far.

Writes OUT_DIR/samples.csv and prints a summary: first and last samples,
the growth of RSS and descriptors between the first minute and the end,
failed connections and delivery errors. Exit status 1 when a connection
failed, a delivery failed, or the broker died. Needs the repository's
.venv (ci/install-client-deps.sh) for confluent-kafka.
"""
import csv
import os
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "clients"))
import brokerproc  # noqa: E402
import kproto  # noqa: E402

SAMPLE_EVERY_S = 10


def proc_sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, fds, cpu_s


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    binary, out = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 600
    conn_rate = float(sys.argv[4]) if len(sys.argv) > 4 else 200
    msg_rate = float(sys.argv[5]) if len(sys.argv) > 5 else 2000
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "data")
    port = brokerproc.free_port()
    bootstrap = "127.0.0.1:%d" % port
    log = os.path.join(out, "broker.log")
    if os.path.exists(log):
        os.remove(log)
    try:
        proc, _ = brokerproc.start_broker(
            [binary, "serve", "--cores", "1", "--data-dir", data, "--listen", bootstrap,
             "--auto-create-topics", "true"],
            os.path.join(out, "broker-ready.json"), log_path=log, timeout=30)
    except brokerproc.BrokerStartError as e:
        raise SystemExit(str(e))
    try:
        return run(proc, port, bootstrap, out, seconds, conn_rate, msg_rate)
    finally:
        brokerproc.stop_broker(proc, timeout=30)


def run(proc, port, bootstrap, out, seconds, conn_rate, msg_rate):
    from confluent_kafka import Producer

    stop = threading.Event()
    counts = {"connections": 0, "failed_connections": 0, "delivered": 0, "delivery_errors": 0}
    first_error = []

    def churn():
        request = kproto.api_versions_v0_request(1)
        reset = struct.pack("ii", 1, 0)
        start = time.monotonic()
        i = 0
        while not stop.is_set():
            # Open loop on a fixed schedule.
            due = start + i / conn_rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    if i % 4:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
                    s.sendall(request)
                    corr, _ = kproto.split_response(kproto.recv_frame(s))
                    assert corr == 1
                counts["connections"] += 1
            except (OSError, ValueError, AssertionError) as e:
                counts["failed_connections"] += 1
                if not first_error:
                    first_error.append(repr(e))
            i += 1

    def produce():
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})

        def cb(err, _msg):
            if err is None:
                counts["delivered"] += 1
            else:
                counts["delivery_errors"] += 1

        value = b"v" * 1024
        start = time.monotonic()
        i = 0
        while not stop.is_set():
            due = start + i / msg_rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            try:
                p.produce("soak", value, on_delivery=cb)
            except BufferError:
                p.poll(0.05)
                continue
            i += 1
            if i % 100 == 0:
                p.poll(0)
        p.flush(30)

    threads = [threading.Thread(target=churn), threading.Thread(target=produce)]
    for t in threads:
        t.start()
    samples = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds and proc.poll() is None:
            rss, fds, cpu = proc_sample(proc.pid)
            samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_bytes": rss, "fds": fds,
                            "cpu_s": round(cpu, 2), **counts})
            print("t=%5.0fs rss=%6.1f MiB fds=%4d cpu=%6.1fs connections=%d delivered=%d" % (
                samples[-1]["t_s"], rss / 2**20, fds, cpu, counts["connections"], counts["delivered"]),
                flush=True)
            time.sleep(SAMPLE_EVERY_S)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    alive = proc.poll() is None
    if alive:
        rss, fds, cpu = proc_sample(proc.pid)
        samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_bytes": rss, "fds": fds,
                        "cpu_s": round(cpu, 2), **counts})
    with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(samples[0].keys()))
        w.writeheader()
        w.writerows(samples)
    after_minute = next((s for s in samples if s["t_s"] >= 60), samples[0])
    last = samples[-1]
    print("summary: %.0f s, %d connections (%d failed%s), %d messages delivered (%d errors), broker %s" % (
        last["t_s"], counts["connections"], counts["failed_connections"],
        ", first: " + first_error[0] if first_error else "", counts["delivered"], counts["delivery_errors"],
        "alive" if alive else "DIED with %s" % proc.returncode))
    print("summary: RSS %.1f MiB at %.0f s -> %.1f MiB at %.0f s (%+.1f MiB); descriptors %d -> %d" % (
        after_minute["rss_bytes"] / 2**20, after_minute["t_s"], last["rss_bytes"] / 2**20, last["t_s"],
        (last["rss_bytes"] - after_minute["rss_bytes"]) / 2**20, after_minute["fds"], last["fds"]))
    ok = alive and counts["failed_connections"] == 0 and counts["delivery_errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
