#!/bin/bash
# Idle CPU of a 3-node cluster (tools/lib/cluster3.sh) before and after the
# internal offsets topic exists: 50 partitions of three replicas, that is
# 100 followers over the three nodes. Prints the brokers' utime+stime, in
# clock ticks (getconf CLK_TCK, 100 here), over 30 s of each, and the
# established connections to the brokers' Kafka listeners (the followers'
# and the admin client's: 100 with one per followed partition).
#
#   bench-harness/tools/cluster_idle_cpu.sh BIN [OUT]
set -u
cd "$(dirname "$0")/../.."
source ci/lib/broker.sh
source bench-harness/tools/lib/cluster3.sh
BIN=$1; OUT=${2:-$(mktemp -d)}; mkdir -p "$OUT"
cpu() { local t=0 p f; for p in "${PIDS[@]}"; do read -r -a f < "/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo "$t"; }
start_cluster "$BIN" "$OUT" || exit 1
sleep 5
a=$(cpu); sleep 30; b=$(cpu)
echo "no offsets topic: $((b - a)) ticks in 30 s over 3 brokers"
# A group's first DescribeGroups makes the cluster create the offsets topic.
.venv/bin/python - <<'PY'
import time
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": "127.0.0.1:29201"})
for _ in range(60):
    try:
        d = a.describe_consumer_groups(["idle-g"], request_timeout=10)["idle-g"].result(timeout=15)
        print("coordinator", d.coordinator.id)
        break
    except Exception:  # noqa: BLE001 - retried until the topic exists
        time.sleep(1)
PY
sleep 10
a=$(cpu); sleep 30; b=$(cpu)
echo "with the offsets topic: $((b - a)) ticks in 30 s over 3 brokers"
echo "connections to the Kafka listeners: $(ss -Htn state established '( dport = :29201 or dport = :29202 or dport = :29203 )' | wc -l)"
stop_cluster "$OUT"
