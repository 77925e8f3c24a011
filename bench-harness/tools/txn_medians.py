"""Medians of txn_ab.sh's runs, as a markdown table, and each
transactional scenario's ratios to the idempotent baseline of the same
round (same broker, minutes apart), medians over the rounds.

    python3 txn_medians.py OUT

Reads OUT/<scenario>/<run>/run.json for idempotent-1kib and
txn-{10,100,1000}-1kib, in the order of their start times (run i of a
scenario is round i).
"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]
SCENARIOS = ["idempotent-1kib", "txn-10-1kib", "txn-100-1kib", "txn-1000-1kib"]


def runs(scen):
    recs = []
    for f in glob.glob(os.path.join(out, scen, "*", "run.json")):
        d = json.load(open(f))
        recs.append(d)
    recs.sort(key=lambda d: d["started_at_unix_s"])
    return recs


def metrics(d):
    res = d["results"]
    m = {
        "msgs": res["throughput"]["msgs_per_s"],
        "cpu": res.get("broker_cpu_us_per_msg", float("nan")),
        "pub50": res["latency"]["publish"]["summary"]["p50_us"],
        "pub99": res["latency"]["publish"]["summary"]["p99_us"],
        "errors": sum(res.get("errors", {}).values()),
        "dur": d["duration_s"],
    }
    c = res["latency"].get("commit")
    if c:
        m["c50"] = c["summary"]["p50_us"]
        m["c99"] = c["summary"]["p99_us"]
        m["txns"] = res["notes"].get("transactions_per_s", float("nan"))
        m["retries"] = res["notes"].get("add_partitions_retries", 0)
        a = res["latency"].get("add_partitions")
        m["a50"] = a["summary"]["p50_us"] if a else float("nan")
        m["records"] = d["config"]["transaction_records"]
    return m


data = {s: [metrics(d) for d in runs(s)] for s in SCENARIOS}
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| scenario | runs | msgs/s | broker CPU us/msg | publish p50 | publish p99 | commit p50 | commit p99 | txns/s | opening a txn p50 | AddPartitions retries per txn | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in SCENARIOS:
    ms = data[s]
    if not ms:
        continue
    row = [s, str(len(ms)), "%.0f" % med([m["msgs"] for m in ms]), "%.2f" % med([m["cpu"] for m in ms]),
           "%.1f ms" % (med([m["pub50"] for m in ms]) / 1000), "%.1f ms" % (med([m["pub99"] for m in ms]) / 1000)]
    if "c50" in ms[0]:
        row += ["%.1f ms" % (med([m["c50"] for m in ms]) / 1000), "%.1f ms" % (med([m["c99"] for m in ms]) / 1000),
                "%.1f" % med([m["txns"] for m in ms]),
                "%.1f ms" % (med([m["a50"] for m in ms]) / 1000),
                # Retries per committed transaction: both count the window.
                "%.2f" % med([m["retries"] / max(m["txns"] * m["dur"], 1e-9) for m in ms])]
    else:
        row += ["-", "-", "-", "-", "-"]
    row.append(str(sum(m["errors"] for m in ms)))
    print("| " + " | ".join(row) + " |")

base = data["idempotent-1kib"]
print()
print("Ratios to idempotent-1kib of the same round, medians over rounds:")
print()
print("| scenario | msgs/s | broker CPU us/msg | publish p50 | publish p99 | broker CPU per transaction above the baseline |")
print("|---|---:|---:|---:|---:|---:|")
for s in SCENARIOS[1:]:
    pairs = list(zip(data[s], base))
    if not pairs:
        continue
    r = lambda k: med([a[k] / b[k] for a, b in pairs if b[k]])
    # (CPU per message - the baseline's) x records per transaction.
    extra = med([(a["cpu"] - b["cpu"]) * a["records"] for a, b in pairs])
    print("| %s | %.2f | %.2f | %.2f | %.2f | %.0f us |" % (s, r("msgs"), r("cpu"), r("pub50"), r("pub99"), extra))
