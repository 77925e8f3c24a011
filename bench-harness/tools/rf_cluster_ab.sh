#!/bin/bash
# Replication's cost, same cluster, same run: max-1kib (one replica, A)
# against max-1kib-rf3 (three replicas, B), interleaved, on one 3-node
# cluster of this machine with `replication_preview = true`.
#
#   bash bench-harness/tools/rf_cluster_ab.sh ROUNDS DURATION_S OUT [BIN]
#
# The three brokers (one shard each, BIN or target/release/corelog) share
# core 0; the load generator (release/corelog-bench) runs on core 1. Each
# run measures the CPU of all three brokers over its window
# (`--broker-pid` three times), so "broker CPU per message" is what the
# cluster spent per acknowledged message: with three replicas, the
# leader's produce path plus two followers' fetch and append paths. Both
# scenarios use acks=all. One line per run; run records land in OUT/A and
# OUT/B for `corelog-bench compare` and `report`.
set -u
ROUNDS=$1; DUR=$2; OUT=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${4:-${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog}
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog-bench
mkdir -p "$OUT"
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
# shellcheck source=bench-harness/tools/lib/cluster3.sh
source "$ROOT/bench-harness/tools/lib/cluster3.sh"
start_cluster "$BIN" "$OUT" || exit 1
BOOT=127.0.0.1:29201
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for l in $order; do
    if [ "$l" = A ]; then scen=max-1kib; else scen=max-1kib-rf3; fi
    taskset -c 1 "$BENCH" run --scenario "$ROOT/bench-harness/scenarios/$scen.toml" --bootstrap $BOOT \
      --out "$OUT/$l" --duration-s "$DUR" --warmup-s 1 --no-limits --topic "rf-$scen-$r" \
      ${W:+--broker-write-bytes $W} --broker-pid "${PIDS[0]}" --broker-pid "${PIDS[1]}" --broker-pid "${PIDS[2]}" \
      > "$OUT/run-$l-$r.log" 2>&1 || { echo "run $l $r failed:" >&2; tail -n 5 "$OUT/run-$l-$r.log" >&2; }
    run=$(ls -td "$OUT/$l"/*/ | head -1)
    python3 "$ROOT/bench-harness/tools/run_line.py" "$run" "$l" "$r" cluster_cpu
  done
done
stop_cluster "$OUT"
