"""Prints one line for a run directory of `corelog-bench run` with
transactions (or their idempotent baseline): rate, publish p50/p99, commit
p50/p99 and transactions per second (when the run had transactions),
AddPartitionsToTxn retries, the broker's CPU per acknowledged message,
errors.

    python3 txn_line.py RUN_DIR LABEL ROUND

Used by txn_ab.sh; txn_medians.py reads the run directories themselves.
"""
import json
import os
import sys

run, label, rnd = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(os.path.join(run, "run.json")))
res = d["results"]
t = res["throughput"]
p = res["latency"]["publish"]["summary"]
line = "%s r%s msgs/s=%.0f publish_p50=%.0fus publish_p99=%.0fus" % (
    label, rnd, t["msgs_per_s"], p["p50_us"], p["p99_us"])
c = res["latency"].get("commit")
if c:
    notes = res.get("notes", {})
    a = res["latency"].get("add_partitions", {}).get("summary", {})
    line += " commit_p50=%.0fus commit_p99=%.0fus txns/s=%.1f open_p50=%.0fus add_retries=%s" % (
        c["summary"]["p50_us"], c["summary"]["p99_us"], notes.get("transactions_per_s", float("nan")),
        a.get("p50_us", float("nan")), notes.get("add_partitions_retries"))
line += " cpu_us_per_msg=%.3f errors=%s run=%s" % (
    res.get("broker_cpu_us_per_msg", float("nan")), res.get("errors"), os.path.basename(run.rstrip("/")))
print(line)
