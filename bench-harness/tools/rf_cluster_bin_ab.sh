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
cat > "$OUT/cluster.toml" <<CONF
broker_heartbeat_interval_ms = 500
broker_session_timeout_ms = 3000
replication_preview = true
CONF
VOTERS=1@127.0.0.1:29211,2@127.0.0.1:29212,3@127.0.0.1:29213
PIDS=()

start_cluster() {
  local bin=$1
  PIDS=()
  for i in 1 2 3; do
    rm -rf "$OUT/data-$i"; mkdir -p "$OUT/data-$i"
    start_broker "$OUT/ready-$i.json" "$OUT/broker-$i.log" 60 taskset -c 0 "$bin" serve --cores 1 \
      --config "$OUT/cluster.toml" --data-dir "$OUT/data-$i" --listen 127.0.0.1:2920$i \
      --node-id $i --cluster-listen 127.0.0.1:2921$i --controller-quorum-voters $VOTERS ||
      { echo "broker $i did not start; its log ends:" >&2; tail -n 15 "$OUT/broker-$i.log" >&2; stop_cluster; return 1; }
    PIDS+=("$broker_pid")
  done
  # Until the quorum has a leader and all three brokers are unfenced.
  for _ in $(seq 150); do
    n=$("$bin" cluster status --bootstrap 127.0.0.1:29211 --json 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(1 for b in s["brokers"] if not b["fenced"]) if s.get("leader") else 0)' 2>/dev/null)
    [ "${n:-0}" = 3 ] && return 0
    sleep 0.2
  done
  echo "the cluster did not settle" >&2
  return 1
}

stop_cluster() {
  kill "${PIDS[@]}" 2>/dev/null; wait "${PIDS[@]}" 2>/dev/null
  rm -rf "$OUT"/data-*
}

BOOT=127.0.0.1:29201
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for l in $order; do
    if [ "$l" = A ]; then bin=$BIN_A; else bin=$BIN_B; fi
    start_cluster "$bin" || exit 1
    W=$broker_write_bytes
    taskset -c 1 "$BENCH" run --scenario "$ROOT/bench-harness/scenarios/$SCEN.toml" --bootstrap $BOOT \
      --out "$OUT/$l" --duration-s "$DUR" --warmup-s 2 --no-limits \
      ${W:+--broker-write-bytes $W} --broker-pid "${PIDS[0]}" --broker-pid "${PIDS[1]}" --broker-pid "${PIDS[2]}" \
      > "$OUT/run-$l-$r.log" 2>&1 || { echo "run $l $r failed:" >&2; tail -n 5 "$OUT/run-$l-$r.log" >&2; }
    stop_cluster
    run=$(ls -td "$OUT/$l"/*/ | head -1)
    python3 "$ROOT/bench-harness/tools/run_line.py" "$run" "$l" "$r" cluster_cpu
  done
done
