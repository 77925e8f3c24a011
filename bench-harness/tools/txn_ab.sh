#!/bin/bash
# Transactions against plain idempotent produce, same broker, same run
# (issue 19): idempotent-1kib and txn-{10,100,1000}-1kib interleaved.
#
#   bash bench-harness/tools/txn_ab.sh ROUNDS DURATION_S OUT [BIN]
#
# Each round starts a fresh broker (BIN or release/corelog in
# $CARGO_TARGET_DIR, default target/; one shard pinned to core 0, data
# under OUT, deleted after the round: a round writes gigabytes), runs the
# four scenarios on it with the load generator (release/corelog-bench)
# pinned to core 1, in an order rotated by one each round (round 1:
# idempotent, 10, 100, 1000; round 2: 10, 100, 1000, idempotent; ...), so
# that every scenario runs in every position. Before each round it waits
# (60 s at a time, at most 20 minutes) until the 1-minute load average is
# below 1.0, and logs the load it started at. Every run measures the
# broker's CPU over its window (--broker-pid). One line per run (rate,
# publish and commit latency, broker CPU per message); run records land in
# OUT/<scenario>/ for `corelog-bench compare` and `report`.
set -u
ROUNDS=$1; DUR=$2; OUT=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${4:-${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog}
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog-bench
SCENARIOS=(idempotent-1kib txn-10-1kib txn-100-1kib txn-1000-1kib)
PORT=29301
mkdir -p "$OUT"
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
quiet() { # waits until the 1-minute load is below 1.0 (at most 20 minutes)
  local i load
  for i in $(seq 0 20); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk "BEGIN { exit !($load < 1.0) }"; then
      echo "load $(cut -d' ' -f1-3 /proc/loadavg) after ${i} min"
      return 0
    fi
    [ "$i" -lt 20 ] && sleep 60
  done
  echo "load $(cut -d' ' -f1-3 /proc/loadavg): never below 1.0 in 20 min, running anyway"
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: $(quiet)" | tee -a "$OUT/loads.log"
  rm -rf "$OUT/data"; mkdir -p "$OUT/data"
  start_broker "$OUT/ready.json" "$OUT/broker-$r.log" 60 taskset -c 0 "$BIN" serve --cores 1 \
    --data-dir "$OUT/data" --listen 127.0.0.1:$PORT ||
    { echo "broker did not start; its log ends:" >&2; tail -n 15 "$OUT/broker-$r.log" >&2; exit 1; }
  for k in 0 1 2 3; do
    scen=${SCENARIOS[$(( (k + r - 1) % 4 ))]}
    taskset -c 1 "$BENCH" run --scenario "$ROOT/bench-harness/scenarios/$scen.toml" \
      --bootstrap 127.0.0.1:$PORT --out "$OUT/$scen" --duration-s "$DUR" --warmup-s 1 --no-limits \
      ${broker_write_bytes:+--broker-write-bytes $broker_write_bytes} --broker-pid "$broker_pid" \
      > "$OUT/run-$scen-$r.log" 2>&1 ||
      { echo "run $scen $r failed:" >&2; tail -n 5 "$OUT/run-$scen-$r.log" >&2; }
    run=$(ls -td "$OUT/$scen"/*/ | head -1)
    python3 "$ROOT/bench-harness/tools/txn_line.py" "$run" "$scen" "$r"
  done
  kill "$broker_pid"; wait "$broker_pid" 2>/dev/null
  rm -rf "$OUT/data"
done
