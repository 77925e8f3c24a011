#!/bin/bash
# How long a transaction's markers really take: txn-10-1kib with Kafka's
# 20 ms AddPartitionsToTxn backoff (A) against the same scenario with 1 ms
# (B, written to OUT), ABBA, on one broker; the broker's idle CPU over 10 s
# before and after.
#
#   bash bench-harness/tools/txn_backoff_ab.sh ROUNDS DURATION_S OUT [BIN]
#
# Broker (BIN or release/corelog in $CARGO_TARGET_DIR, default target/):
# one shard pinned to core 0; the load generator on core 1. One line per
# run (txn_line.py); run records in OUT/A and OUT/B.
set -u
ROUNDS=$1; DUR=$2; OUT=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${4:-${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog}
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog-bench
A=$ROOT/bench-harness/scenarios/txn-10-1kib.toml
B=$OUT/txn-10-1kib-backoff-1ms.toml
rm -rf "$OUT/data"; mkdir -p "$OUT/data"
sed -e 's/^name = "txn-10-1kib"/name = "txn-10-1kib-backoff-1ms"/' \
  -e 's/^topic = "bench-txn-10-1kib"/topic = "bench-txn-10-1kib-b1"/' "$A" > "$B"
echo 'add_partitions_backoff_ms = 1' >> "$B"
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start_broker "$OUT/ready.json" "$OUT/broker.log" 60 taskset -c 0 "$BIN" serve --cores 1 \
  --data-dir "$OUT/data" --listen 127.0.0.1:29311 || exit 1
idle_cpu() { # the broker's CPU over 10 s, in ms (clock ticks of 10 ms)
  local t0 t1
  t0=$(awk '{print $14+$15}' "/proc/$broker_pid/stat"); sleep 10
  t1=$(awk '{print $14+$15}' "/proc/$broker_pid/stat")
  echo "idle broker CPU over 10 s $1: $(( (t1 - t0) * 10 )) ms"
}
sleep 3; idle_cpu before
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for l in $order; do
    if [ "$l" = A ]; then f=$A; else f=$B; fi
    taskset -c 1 "$BENCH" run --scenario "$f" --bootstrap 127.0.0.1:29311 --out "$OUT/$l" \
      --duration-s "$DUR" --warmup-s 1 --no-limits \
      ${broker_write_bytes:+--broker-write-bytes $broker_write_bytes} --broker-pid "$broker_pid" \
      > "$OUT/run-$l-$r.log" 2>&1
    run=$(ls -td "$OUT/$l"/*/ | head -1)
    python3 "$ROOT/bench-harness/tools/txn_line.py" "$run" "$l" "$r"
  done
done
idle_cpu after
kill "$broker_pid"; wait "$broker_pid" 2>/dev/null
rm -rf "$OUT/data"
