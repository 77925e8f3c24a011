"""Prints one line for a run directory of `corelog-bench run`: rate,
publish p50/p99/p99.9, the brokers' CPU seconds and CPU microseconds per
acknowledged message (nan when the run could not read them), errors.

    python3 run_line.py RUN_DIR LABEL ROUND [CPU_NAME]

Used by ab_cpu.sh ("broker_cpu") and rf_cluster_ab.sh ("cluster_cpu").
"""
import json
import os
import sys

run, label, rnd = sys.argv[1], sys.argv[2], sys.argv[3]
cpu_name = sys.argv[4] if len(sys.argv) > 4 else "broker_cpu"
d = json.load(open(os.path.join(run, "run.json")))
res = d["results"]
t = res["throughput"]
p = res["latency"]["publish"]["summary"]
cpu_s = res.get("broker_cpu_s", float("nan"))
per_msg = res.get("broker_cpu_us_per_msg", float("nan"))
print("%s r%s msgs/s=%.0f p50=%.0fus p99=%.0fus p999=%.0fus %s=%.2fs cpu_us_per_msg=%.3f errors=%s run=%s" % (
    label, rnd, t["msgs_per_s"], p["p50_us"], p["p99_us"], p["p999_us"], cpu_name, cpu_s, per_msg,
    res.get("errors"), os.path.basename(run.rstrip("/"))))
