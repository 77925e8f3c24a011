#!/bin/bash
# Two builds, one replicated scenario, interleaved: each run starts a fresh
# 3-node cluster of this machine (`replication_preview = true`, one shard
# per broker, the three brokers on core 0, the load generator on core 1)
# with build A's or build B's binary, runs SCEN on it and stops it.
#
#   bash bench-harness/tools/rf_cluster_bin_ab.sh SCEN ROUNDS DURATION_S OUT BIN_A BIN_B
#
# Rounds alternate AB and BA. Each run measures the CPU of all three
# brokers over its window (`--broker-pid` three times), so "broker CPU per
# message" is what the cluster spent per acknowledged message. One line per
# run; run records land in OUT/A and OUT/B for `corelog-bench compare` and
# `report`.
set -u
SCEN=$1; ROUNDS=$2; DUR=$3; OUT=$4; BIN_A=$5; BIN_B=$6
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog-bench
mkdir -p "$OUT"
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
# shellcheck source=bench-harness/tools/lib/cluster3.sh
source "$ROOT/bench-harness/tools/lib/cluster3.sh"
PIDS=()

BOOT=127.0.0.1:29201
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for l in $order; do
    if [ "$l" = A ]; then bin=$BIN_A; else bin=$BIN_B; fi
    start_cluster "$bin" "$OUT" || exit 1
    taskset -c 1 "$BENCH" run --scenario "$ROOT/bench-harness/scenarios/$SCEN.toml" --bootstrap $BOOT \
      --out "$OUT/$l" --duration-s "$DUR" --warmup-s 2 --no-limits \
      ${W:+--broker-write-bytes $W} --broker-pid "${PIDS[0]}" --broker-pid "${PIDS[1]}" --broker-pid "${PIDS[2]}" \
      > "$OUT/run-$l-$r.log" 2>&1 || { echo "run $l $r failed:" >&2; tail -n 5 "$OUT/run-$l-$r.log" >&2; }
    stop_cluster "$OUT"
    run=$(ls -td "$OUT/$l"/*/ | head -1)
    python3 "$ROOT/bench-harness/tools/run_line.py" "$run" "$l" "$r" cluster_cpu
  done
done
