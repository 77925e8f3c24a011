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
cat > "$OUT/cluster.toml" <<EOF
broker_heartbeat_interval_ms = 500
broker_session_timeout_ms = 3000
replication_preview = true
EOF
VOTERS=1@127.0.0.1:29211,2@127.0.0.1:29212,3@127.0.0.1:29213
PIDS=()
for i in 1 2 3; do
  rm -rf "$OUT/data-$i"; mkdir -p "$OUT/data-$i"
  start_broker "$OUT/ready-$i.json" "$OUT/broker-$i.log" 60 taskset -c 0 "$BIN" serve --cores 1 \
    --config "$OUT/cluster.toml" --data-dir "$OUT/data-$i" --listen 127.0.0.1:2920$i \
    --node-id $i --cluster-listen 127.0.0.1:2921$i --controller-quorum-voters $VOTERS ||
    { echo "broker $i did not start; its log ends:" >&2; tail -n 15 "$OUT/broker-$i.log" >&2; kill "${PIDS[@]}" 2>/dev/null; exit 1; }
  PIDS+=("$broker_pid")
done
W=$broker_write_bytes
# Until the quorum has a leader and all three brokers are unfenced.
for _ in $(seq 150); do
  n=$("$BIN" cluster status --bootstrap 127.0.0.1:29211 --json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(1 for b in s["brokers"] if not b["fenced"]) if s.get("leader") else 0)' 2>/dev/null)
  [ "${n:-0}" = 3 ] && break
  sleep 0.2
done
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
kill "${PIDS[@]}"; wait
rm -rf "$OUT"/data-*
