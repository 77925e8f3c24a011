#!/usr/bin/env bash
# Every shipped load-generator scenario against a fresh one-shard broker,
# plus the generator's own ceiling against the discarding sink, with the
# machine's limits measured once after the runs and attached to each of
# them, and one report per run under perf-reports/.
#
# Layout of the 2-core machine: the broker (or the sink) on the first
# allowed CPU, the generator on the second, as in ci/bench.sh.
#
# Usage: bash bench-harness/tools/full_report.sh
# Environment:
#   DURATION_S   measured seconds per scenario (default: the scenario's own)
#   SCENARIOS    space-separated scenario names (default: all shipped)
#   CEILING      space-separated scenarios run against the sink
#                (default "max-1kib small-100b producers-50"; empty skips)
#   WORK         scratch directory on the disk under test (default /var/tmp/corelog-full-report)
#   REPORTS      where reports go (default perf-reports; "" skips reports)
#   TITLE_PREFIX prefix of each report's title (default "Full report")
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${WORK:-/var/tmp/corelog-full-report}
REPORTS=${REPORTS-$ROOT/perf-reports}
TITLE_PREFIX=${TITLE_PREFIX:-Full report}
SCENARIOS=${SCENARIOS:-"latency-1kib-acks-all latency-1kib-half-max max-1kib small-100b producers-50 partitions-1000 keyed-1kib retention-1kib catchup-1kib"}
CEILING=${CEILING-"max-1kib small-100b producers-50"}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BROKER=$TARGET_DIR/release/corelog
BENCH=$TARGET_DIR/release/corelog-bench

say() { echo "full-report: $*"; }

cargo build --release --locked --quiet -p corelog -p corelog-bench

# shellcheck source=ci/lib/cpus.sh
source "$ROOT/ci/lib/cpus.sh"
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
allowed_cpus
server_pin=()
gen_pin=()
if [ "${#cpus[@]}" -ge 2 ]; then
  server_pin=(taskset -c "${cpus[0]}")
  gen_pin=(taskset -c "${cpus[1]}")
  say "broker/sink on cpu ${cpus[0]}, generator on cpu ${cpus[1]}"
fi

rm -rf "$WORK"
mkdir -p "$WORK/runs"
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap 'stop_server; rm -rf "$WORK/data"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

duration=()
[ -n "${DURATION_S:-}" ] && duration=(--duration-s "$DURATION_S")

run_dirs=()
if [ -n "$CEILING" ]; then
  port=$(free_port)
  ${server_pin[@]+"${server_pin[@]}"} "$BENCH" sink --listen "127.0.0.1:$port" 2>"$WORK/sink.log" &
  server_pid=$!
  sleep 0.5
  for sc in $CEILING; do
    say "generator ceiling: $sc against the sink"
    ${gen_pin[@]+"${gen_pin[@]}"} "$BENCH" run --scenario "bench-harness/scenarios/$sc.toml" \
      --bootstrap "127.0.0.1:$port" --no-limits ${duration[@]+"${duration[@]}"} \
      --consumers 0 --catchup-consumers 0 --out "$WORK/runs/ceiling-$sc" | tail -n 1
    run_dirs+=("ceiling-$sc")
  done
  stop_server
fi

for sc in $SCENARIOS; do
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data"
  port=$(free_port)
  start_broker "$WORK/broker-ready.json" "$WORK/broker-$sc.log" 30 \
    ${server_pin[@]+"${server_pin[@]}"} "$BROKER" serve --cores 1 --data-dir "$WORK/data" \
    --listen "127.0.0.1:$port" || {
    say "broker did not start; its log ends:"
    tail -n 15 "$WORK/broker-$sc.log"
    exit 1
  }
  server_pid=$broker_pid
  say "scenario $sc"
  ${gen_pin[@]+"${gen_pin[@]}"} "$BENCH" run --scenario "bench-harness/scenarios/$sc.toml" \
    --bootstrap "127.0.0.1:$port" --no-limits ${duration[@]+"${duration[@]}"} \
    --broker-write-bytes "$broker_write_bytes" --out "$WORK/runs/$sc" | tail -n 1
  stop_server
  run_dirs+=("$sc")
done
rm -rf "$WORK/data"

say "measuring the machine's limits on $WORK (full measurement)"
attach=()
for d in "${run_dirs[@]}"; do attach+=(--attach "$WORK/runs/$d"); done
mkdir -p "$WORK/limits-scratch"
"$BENCH" limits --dir "$WORK/limits-scratch" --out "$WORK/limits" "${attach[@]}" >/dev/null

if [ -n "$REPORTS" ]; then
  for d in "${run_dirs[@]}"; do
    run=$(find "$WORK/runs/$d" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    "$BENCH" report "$run" --out "$REPORTS" --slug "$d" --title "$TITLE_PREFIX: $d" >/dev/null
  done
  say "reports written under $REPORTS (index: $REPORTS/index.md)"
fi
say "runs kept in $WORK/runs"
