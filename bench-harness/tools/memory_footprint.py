#!/usr/bin/env python3
"""Measures the broker's memory with many partitions and idle connections.

Starts `corelog serve` on a fresh data directory, creates TOPICS topics of
PARTITIONS partitions each, opens CONNECTIONS idle client connections (each
does one ApiVersions round trip, then stays open), and reports the broker
process's resident set size (VmRSS) and peak (VmHWM) from /proc.

Usage: .venv/bin/python bench-harness/tools/memory_footprint.py \
           [--bin target/release/corelog] [--topics 100] [--partitions 100] [--connections 1000]
"""
import argparse, os, resource, shutil, socket, struct, sys, tempfile, time

from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "clients"))
import brokerproc  # noqa: E402


def rss_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def api_versions_v0(corr):
    client = b"mem-probe"
    body = struct.pack(">hhih", 18, 0, corr, len(client)) + client
    return struct.pack(">i", len(body)) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/corelog")
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--cores", type=int, default=0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = tempfile.mkdtemp(prefix="corelog-mem-")
    port = brokerproc.free_port()
    cmd = [a.bin, "serve", "--data-dir", os.path.join(work, "data"), "--listen", "127.0.0.1:%d" % port]
    if a.cores:
        cmd += ["--cores", str(a.cores)]
    broker = None
    try:
        broker, _ = brokerproc.start_broker(cmd, os.path.join(work, "ready.json"),
                                            log_path=os.path.join(work, "broker.log"), timeout=60)
        base = rss_kib(broker.pid)
        admin = AdminClient({"bootstrap.servers": "127.0.0.1:%d" % port})
        t0 = time.time()
        batch = []
        for i in range(a.topics):
            batch.append(NewTopic("mem-%04d" % i, num_partitions=a.partitions, replication_factor=1))
            if len(batch) == 10 or i == a.topics - 1:
                for f in admin.create_topics(batch, request_timeout=600).values():
                    f.result(timeout=600)
                batch = []
        created_s = time.time() - t0
        with_partitions = rss_kib(broker.pid)
        conns = []
        for i in range(a.connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(api_versions_v0(i))
            (n,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
            s.recv(n, socket.MSG_WAITALL)
            conns.append(s)
        time.sleep(2)
        with_conns = rss_kib(broker.pid)
        parts = a.topics * a.partitions
        print("| state | VmRSS | VmHWM |")
        print("|---|---:|---:|")
        print("| started, no topics | %.1f MiB | %.1f MiB |" % (base["VmRSS"] / 1024, base["VmHWM"] / 1024))
        print("| %d partitions (created in %.1f s) | %.1f MiB | %.1f MiB |"
              % (parts, created_s, with_partitions["VmRSS"] / 1024, with_partitions["VmHWM"] / 1024))
        print("| + %d idle connections | %.1f MiB | %.1f MiB |"
              % (len(conns), with_conns["VmRSS"] / 1024, with_conns["VmHWM"] / 1024))
        per_part = (with_partitions["VmRSS"] - base["VmRSS"]) / max(parts, 1)
        per_conn = (with_conns["VmRSS"] - with_partitions["VmRSS"]) / max(len(conns), 1)
        print()
        print("per partition: %.1f KiB; per idle connection: %.1f KiB" % (per_part, per_conn))
        for s in conns:
            s.close()
    finally:
        if broker is not None:
            brokerproc.stop_broker(broker, timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
