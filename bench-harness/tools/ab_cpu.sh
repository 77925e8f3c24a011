#!/bin/bash
# Interleaved A/B of two broker binaries with the broker's CPU per message.
#
#   bash bench-harness/tools/ab_cpu.sh SCENARIO ROUNDS DURATION_S OUT BIN_A BIN_B
#
# Both brokers run at once, one shard each pinned to core 0 (ports 29101
# and 29102, fresh data directories under OUT); the load generator
# (release/corelog-bench in $CARGO_TARGET_DIR, default target/) is pinned
# to core 1 and runs bench-harness/scenarios/SCENARIO.toml against A and B
# in turns (ABBA...),
# ROUNDS times each, with a 1 s warmup. The generator is given the
# broker's pid (--broker-pid) and records the broker's CPU time over the
# measured window (utime + stime of the whole process, /proc/PID/stat) in
# run.json; the script prints one line per run from it: rate, publish
# p50/p99/p99.9, broker CPU seconds and CPU microseconds per message
# acknowledged in the window. Each broker is started through
# ci/lib/broker.sh (its --ready-file; a build from before that option is
# waited for by its "corelog ready" line), and the generator is told each
# broker's write size. Run records land in OUT/A and OUT/B for
# `corelog-bench compare` and `report`. EXTRA_A / EXTRA_B (environment):
# more `corelog serve` arguments for A or B, e.g. EXTRA_A="--config q.toml".
# CORES (environment, default 1): shards per broker; above 1 the brokers are
# not confined to core 0 (their shards pin themselves to cores 0..CORES-1).
set -u
SCEN=$1; ROUNDS=$2; DUR=$3; OUT=$4; OLD=$5; NEW=$6
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The release build of this tree: in CARGO_TARGET_DIR when that is set.
BENCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog-bench
mkdir -p $OUT
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
start() { # label bin port: starts it and waits until it serves
  rm -rf $OUT/data-$1; mkdir -p $OUT/data-$1
  local pin=(taskset -c 0)
  # Several shards pin themselves to cores 0.. (the generator shares core 1).
  [ "${CORES:-1}" -gt 1 ] && pin=()
  local cmd=(${pin[@]+"${pin[@]}"} $2 serve --cores ${CORES:-1} $(eval echo \${EXTRA_$1:-}) --data-dir $OUT/data-$1 --listen 127.0.0.1:$3)
  if $2 serve --help 2>/dev/null | grep -q -- --ready-file; then
    start_broker $OUT/ready-$1.json $OUT/broker-$1.log 60 "${cmd[@]}" ||
      { echo "broker $1 did not start; its log ends:" >&2; tail -n 15 $OUT/broker-$1.log >&2; exit 1; }
  else
    # A build from before --ready-file: its ready line, and the storage
    # default write size.
    "${cmd[@]}" 2>$OUT/broker-$1.log >/dev/null &
    broker_pid=$!
    broker_write_bytes=""
    for _ in $(seq 600); do
      grep -q "corelog ready" $OUT/broker-$1.log && break
      sleep 0.1
    done
  fi
}
start A $OLD 29101; PA=$broker_pid; WA=$broker_write_bytes
start B $NEW 29102; PB=$broker_pid; WB=$broker_write_bytes
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for l in $order; do
    if [ $l = A ]; then pid=$PA; port=29101; w=$WA; else pid=$PB; port=29102; w=$WB; fi
    taskset -c 1 $BENCH run --scenario $ROOT/bench-harness/scenarios/$SCEN.toml --bootstrap 127.0.0.1:$port \
      --out $OUT/$l --duration-s $DUR --warmup-s 1 --no-limits --topic ab-$SCEN-$r \
      ${w:+--broker-write-bytes $w} --broker-pid $pid > $OUT/run-$l-$r.log 2>&1
    run=$(ls -td $OUT/$l/*/ | head -1)
    python3 "$ROOT/bench-harness/tools/run_line.py" "$run" $l $r
  done
done
kill $PA $PB; wait
# Each run leaves about a gigabyte per broker: keep the records, not the data.
rm -rf $OUT/data-A $OUT/data-B
