#!/usr/bin/env bash
# Short broker benchmark for CI (issue #5, "In CI"; the CPU per message:
# issue 16), about 2.3 minutes after the release build:
#
#   1. build the release broker and corelog-bench;
#   2. start `corelog serve` (one shard) on a free loopback port with a fresh
#      data directory under target/, pinned to one core, the load generator
#      pinned to another (when there are two), and wait for its
#      --ready-file (ci/lib/broker.sh), which also gives the broker's write
#      size to the load generator (--broker-write-bytes);
#   3. run the latency scenario (bench-harness/scenarios/latency-1kib-acks-all.toml,
#      open loop, 20,000 msgs/s of 1 KiB, acks=all, one tail consumer) once
#      for CORELOG_BENCH_PRIME_S, discarded (the first seconds of a fresh
#      broker and topic have a tail of seconds), then CORELOG_BENCH_REPEATS
#      times for CORELOG_BENCH_DURATION_S each, each given the broker's pid
#      (--broker-pid) so that its run record holds the broker's CPU per
#      message over the measured window;
#   4. stop the broker (SIGTERM), then measure the machine's limits (quick) on
#      the same filesystem and attach them to every repeat; measuring after
#      the runs means the limits' own disk writes cannot disturb them;
#   5. compare the medians over the quiet repeats (step 6) with the
#      committed baseline in perf-reports/ci-baseline/runs and print the
#      table, the broker's CPU per message in it (judged by the rule of
#      step 8 where the baseline has it too, else only printed);
#   6. next to every measured run, a witness probes the disk alone: a
#      12 KiB O_DIRECT append + fdatasync CORELOG_BENCH_WITNESS_RATE (100)
#      times a second on the generator's core, latency from the intended
#      time (bench-harness/tools/fsync_probe.py, its own file). Appends
#      commit the filesystem journal as the broker's writes into a new
#      segment do, so the witness also sees a journal slowed by other work
#      (ext4 with online discard), not only a slow device. A shared
#      machine's disk stalls for whole runs at times (measured: fdatasync
#      p99 from under 1 ms to 836 ms within an hour, no broker running). A
#      run whose witness p99 is over CORELOG_BENCH_DISK_STALL_US (5,000 us;
#      next to quiet runs it measured 1.8-4.8 ms), or whose witness p50 is
#      over CORELOG_BENCH_DISK_SLOW_P50_US (500 us: a disk slow throughout,
#      not only stalling; measured 560-920 us in a phase where the broker's
#      publish p99 was 16 ms-2 s against the baseline's 10 ms, and about
#      2x the overwrite fdatasync p50 of the same phase), measured the
#      disk, not the broker: it is set aside (in <set>/disturbed) and the
#      comparison uses the quiet runs. With fewer than CORELOG_BENCH_QUIET_MIN (3)
#      quiet runs a set cannot say anything and is "inconclusive". The
#      price: a change that made the broker itself stall the disk would be
#      set aside too; `corelog-bench storage` measures the write path on
#      its own;
#   7. unless the first set says ok: steps 2-6 once more on a fresh broker
#      (about 1.5 minutes more). Only two sets that both regressed fail the
#      check; a set that is ok passes it; otherwise (a disk that stalled
#      through a set) the result is INCONCLUSIVE and printed as such, and
#      not counted as a regression;
#   8. the 2-shard case, about 45 s: a fresh `corelog serve --cores 2`, not
#      under taskset (its shards pin themselves to cores 0 and 1), the load
#      generator on the second allowed cpu as above; a discarded priming run
#      of CORELOG_BENCH_2SHARDS_PRIME_S, then CORELOG_BENCH_2SHARDS_REPEATS
#      runs of bench-harness/scenarios/max-1kib.toml (closed loop, 1 KiB
#      records in 16 KiB batches, acks=all, two partitions) for
#      CORELOG_BENCH_2SHARDS_DURATION_S each, with --broker-pid. The median
#      broker CPU per message is compared with the committed baseline in
#      perf-reports/ci-baseline-2shards/runs and printed as a table beside
#      throughput and p99, which only inform (a closed loop's rate follows
#      the shared machine's disk; the CPU a message costs barely does). The
#      set regressed when the median is over CORELOG_BENCH_CPU_MAX_RATIO
#      (1.5) times the baseline's; as in step 7 a second set on a fresh
#      broker is measured then, and only two regressed sets fail the check.
#
# Exit status: 0 ok (or inconclusive on a stalling disk); 1 gross
# regression (1 shard: throughput as a fraction of what the run could reach
# down by more than a third, p99 divided by the same-run fdatasync p50 more
# than doubled, or, where the baseline measured it, the broker's CPU per
# message up more than 1.5x; 2 shards: the broker's CPU per message up more
# than 1.5x); 2 the benchmark itself failed (no build, broker did not start
# or died, a run measured nothing, no CPU measured in the 2-shard case, no
# baseline).
#
#   bash ci/bench.sh                    # compare with the baselines
#   bash ci/bench.sh --update-baseline  # replace the baselines (then commit them)
#   CORELOG_BENCH_CASES=2shards bash ci/bench.sh --update-baseline
#                                       # replace only the 2-shard baseline
#
# Knobs (environment): CORELOG_BENCH_REPEATS (5), CORELOG_BENCH_DURATION_S
# (15), CORELOG_BENCH_WARMUP_S (2), CORELOG_BENCH_PRIME_S (5, 0 = no priming
# run), CORELOG_BENCH_WITNESS_RATE (100 a second, 0 = no witness: every run
# counts), CORELOG_BENCH_DISK_STALL_US (5000),
# CORELOG_BENCH_DISK_SLOW_P50_US (500), CORELOG_BENCH_QUIET_MIN (3),
# CORELOG_BENCH_BASELINE
# (perf-reports/ci-baseline), CORELOG_BENCH_WORK (<target dir>/ci-bench);
# for the 2-shard case CORELOG_BENCH_2SHARDS_REPEATS (3),
# CORELOG_BENCH_2SHARDS_DURATION_S (8), CORELOG_BENCH_2SHARDS_PRIME_S (3, 0 =
# none), CORELOG_BENCH_BASELINE_2SHARDS (perf-reports/ci-baseline-2shards);
# CORELOG_BENCH_CPU_MAX_RATIO (1.5, both cases); CORELOG_BENCH_CASES
# (1shard,2shards: which cases run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

update_baseline=0
case "${1:-}" in
  "") ;;
  --update-baseline) update_baseline=1 ;;
  *) echo "usage: bash ci/bench.sh [--update-baseline]" >&2; exit 2 ;;
esac

REPEATS=${CORELOG_BENCH_REPEATS:-5}
DURATION_S=${CORELOG_BENCH_DURATION_S:-15}
WARMUP_S=${CORELOG_BENCH_WARMUP_S:-2}
PRIME_S=${CORELOG_BENCH_PRIME_S:-5}
BASELINE=${CORELOG_BENCH_BASELINE:-$ROOT/perf-reports/ci-baseline}
SCENARIO=$ROOT/bench-harness/scenarios/latency-1kib-acks-all.toml
# The 2-shard case (step 8).
BASELINE_2SHARDS=${CORELOG_BENCH_BASELINE_2SHARDS:-$ROOT/perf-reports/ci-baseline-2shards}
SCENARIO_2SHARDS=$ROOT/bench-harness/scenarios/max-1kib.toml
REPEATS_2SHARDS=${CORELOG_BENCH_2SHARDS_REPEATS:-3}
DURATION_2SHARDS_S=${CORELOG_BENCH_2SHARDS_DURATION_S:-8}
PRIME_2SHARDS_S=${CORELOG_BENCH_2SHARDS_PRIME_S:-3}
CPU_MAX_RATIO=${CORELOG_BENCH_CPU_MAX_RATIO:-1.5}
CASES=${CORELOG_BENCH_CASES:-1shard,2shards}
case ",$CASES," in
  *,1shard,* | *,2shards,*) ;;
  *) echo "CORELOG_BENCH_CASES must name 1shard, 2shards or both (comma-separated), not '$CASES'" >&2; exit 2 ;;
esac
# Whether the case $1 (1shard or 2shards) is to run.
case_on() { [[ ",$CASES," == *",$1,"* ]]; }
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
# The data directory must be on the filesystem the tests use (not tmpfs):
# the limits are measured there too.
WORK=${CORELOG_BENCH_WORK:-$TARGET_DIR/ci-bench}
BROKER=$TARGET_DIR/release/corelog
BENCH=$TARGET_DIR/release/corelog-bench

say() { echo "ci/bench: $*"; }
fail() {
  say "ERROR: $*" >&2
  exit 2
}

# Exit status 1 means "regressed" only: any other failure is the benchmark's.
trap 'fail "unexpected failure (exit $?) at ci/bench.sh line $LINENO: $BASH_COMMAND"' ERR

started=$(date +%s)
echo "== ci/bench.sh: latency scenario (1 shard) and broker CPU per message (2 shards) against the committed baselines =="

say "building release binaries (cargo build --release --locked -p corelog -p corelog-bench)"
cargo build --release --locked --quiet -p corelog -p corelog-bench ||
  fail "release build failed"
built=$(date +%s)

[ -x "$BROKER" ] && [ -x "$BENCH" ] || fail "no $BROKER or $BENCH after the build"
if [ "$update_baseline" -eq 0 ] && case_on 1shard && [ ! -d "$BASELINE/runs" ]; then
  fail "no baseline at $BASELINE/runs; make one with: bash ci/bench.sh --update-baseline"
fi
if [ "$update_baseline" -eq 0 ] && case_on 2shards && [ ! -d "$BASELINE_2SHARDS/runs" ]; then
  fail "no baseline at $BASELINE_2SHARDS/runs; make one with: CORELOG_BENCH_CASES=2shards bash ci/bench.sh --update-baseline"
fi

# Pin the broker and the generator to different cores when there are two.
# shellcheck source=ci/lib/cpus.sh
source "$ROOT/ci/lib/cpus.sh"
allowed_cpus
broker_pin=()
gen_pin=()
if [ "${#cpus[@]}" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  broker_pin=(taskset -c "${cpus[0]}")
  gen_pin=(taskset -c "${cpus[1]}")
  say "1-shard broker pinned to cpu ${cpus[0]} (a 2-shard one pins its shards itself), load generator to cpu ${cpus[1]}"
else
  say "fewer than 2 cpus (or no taskset): broker and load generator share the machine"
fi

rm -rf "$WORK"
mkdir -p "$WORK"
# Write back what the build (and the tests before it) left dirty, so that
# writeback does not land in the measured runs.
sync
DATA=$WORK/data
LOG=$WORK/broker.log
READY=$WORK/broker-ready.json
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
broker_pid=""

stop_broker() {
  # SIGTERM, then up to 15 s for a graceful stop, then SIGKILL.
  [ -n "$broker_pid" ] || return 0
  local pid=$broker_pid rc=0
  broker_pid=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "broker did not stop within 15 s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return $rc
}
cleanup() {
  stop_broker || true
  # The runs write about 20 MiB/s; do not leave gigabytes behind.
  rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 40000))
}

# Starts `corelog serve --cores $1` on a fresh data directory and a free
# port, behind the command prefix in the remaining arguments (taskset, or
# nothing); sets port, broker_pid and write_args. A port taken between
# choosing and binding gets a retry.
serve_fresh() {
  local cores=$1 attempt ready=0
  shift
  port=""
  for attempt in 1 2 3; do
    port=$(free_port)
    rm -rf "$DATA"
    if start_broker "$READY" "$LOG" 60 "$@" "$BROKER" serve --cores "$cores" \
      --data-dir "$DATA" --listen "127.0.0.1:$port"; then
      ready=1
      break
    fi
    say "broker start attempt $attempt failed; its log ends:" >&2
    tail -n 15 "$LOG" >&2 || true
  done
  [ "$ready" -eq 1 ] || fail "the broker did not write its ready file $READY (log: $LOG)"
  # The load generator measures against the disk limits at the broker's
  # own write size.
  [ -n "$broker_write_bytes" ] || fail "no write_bytes_max in the ready file $READY"
  write_args=(--broker-write-bytes "$broker_write_bytes")
  say "broker ($cores shard(s)) ready on 127.0.0.1:$port (pid $broker_pid, data $DATA, writes up to $broker_write_bytes bytes)"
}

# One set of measurements into the directory $1: a fresh broker, a priming
# run, $REPEATS measured runs (in $1/runs), then the machine's limits
# measured after them and attached to them.
measure_set() {
  local set=$1
  mkdir -p "$set/runs"
  serve_fresh 1 ${broker_pin[@]+"${broker_pin[@]}"}

  if [ "$PRIME_S" != 0 ]; then
    # Topic creation and the broker's first seconds (first segment, caches)
    # are not what the comparison is about; this run is printed, not kept.
    printf 'priming run (%s s, discarded): ' "$PRIME_S"
    rc=0
    ${gen_pin[@]+"${gen_pin[@]}"} "$BENCH" run --scenario "$SCENARIO" --bootstrap "127.0.0.1:$port" \
      --out "$set/priming" --duration-s "$PRIME_S" --warmup-s 0 --no-limits "${write_args[@]}" || rc=$?
    [ "$rc" -eq 0 ] || fail "the priming run failed (exit $rc; broker log: $LOG)"
  fi
  for i in $(seq 1 "$REPEATS"); do
    out=$set/out-$i
    rc=0
    witness_pid=""
    if [ "$WITNESS_RATE" != 0 ]; then
      ${gen_pin[@]+"${gen_pin[@]}"} python3 "$ROOT/bench-harness/tools/fsync_probe.py" "$WITNESS_RATE" \
        $((DURATION_S + WARMUP_S)) 12288 "$set/witness.dat" 0 >"$set/witness-$i.txt" 2>&1 &
      witness_pid=$!
    fi
    ${gen_pin[@]+"${gen_pin[@]}"} "$BENCH" run --scenario "$SCENARIO" --bootstrap "127.0.0.1:$port" \
      --out "$out" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --no-limits "${write_args[@]}" \
      --broker-pid "$broker_pid" || rc=$?
    [ -z "$witness_pid" ] || wait "$witness_pid" || true
    [ "$rc" -eq 0 ] || fail "load generator run $i of $REPEATS failed (exit $rc; broker log: $LOG)"
    kill -0 "$broker_pid" 2>/dev/null || fail "the broker died during run $i (log: $LOG)"
    witness_p99=""
    witness_p50=""
    if [ -n "$witness_pid" ]; then
      witness_p99=$(awk '{ for (i = 1; i < NF; i++) if ($i == "p99") print $(i + 1) }' "$set/witness-$i.txt" | tail -n 1)
      witness_p50=$(awk '{ for (i = 1; i < NF; i++) if ($i == "p50") print $(i + 1) }' "$set/witness-$i.txt" | tail -n 1)
      say "run $i disk witness (O_DIRECT 12 KiB append + fdatasync, $WITNESS_RATE/s): $(tail -n 1 "$set/witness-$i.txt")"
    fi
    for d in "$out"/*/; do
      local dest
      dest=$set/runs/$(printf '%02d' "$i")-$(basename "$d")
      mv "$d" "$dest"
      # A run is set aside when the disk alone stalled, or was slow
      # throughout, next to it. A witness that measured nothing (no
      # python3) leaves the run counted.
      if { [ -n "$witness_p99" ] && [ "$witness_p99" -gt "$DISK_STALL_US" ]; } ||
        { [ -n "$witness_p50" ] && [ "$witness_p50" -gt "$DISK_SLOW_P50_US" ]; }; then
        mkdir -p "$set/disturbed"
        mv "$dest" "$set/disturbed/"
      fi
    done
    rmdir "$out"
  done
  rm -f "$set/witness.dat"
  quiet=$(find "$set/runs" -mindepth 1 -maxdepth 1 -type d | wc -l)
  say "$quiet of $REPEATS runs had a quiet disk (witness p99 at most $DISK_STALL_US us, p50 at most $DISK_SLOW_P50_US us)"

  stop_rc=0
  stop_broker || stop_rc=$?
  [ "$stop_rc" -eq 0 ] || say "warning: the broker exited with status $stop_rc after SIGTERM (log: $LOG)" >&2
  rm -rf "$DATA"

  say "measuring machine limits (quick) on $WORK after the runs"
  local attach=()
  [ "$quiet" -eq 0 ] || attach+=(--attach "$set/runs")
  [ ! -d "$set/disturbed" ] || attach+=(--attach "$set/disturbed")
  "$BENCH" limits --dir "$WORK" --quick --out "$set/limits" ${attach[@]+"${attach[@]}"} \
    >"$set/limits.txt" 2>&1 || {
    cat "$set/limits.txt" >&2
    fail "measuring the machine's limits failed"
  }
  awk '
    /^ +1 MiB +preallocated/ { bw = $4 }
    /^ +1 MiB +[0-9]+ / { p50 = $4; p99 = $5 }
    /^Loopback TCP/ { for (i = 1; i < NF; i++) if ($i == "writes:") tcp = $(i + 1) }
    END { printf "  limits: 1 MiB O_DIRECT writes %s MiB/s, 1 MiB fdatasync p50 %s us, p99 %s us; loopback TCP %s MiB/s (all: %s)\n", bw, p50, p99, tcp, FILENAME }
  ' "$set/limits.txt" || true
}

WITNESS_RATE=${CORELOG_BENCH_WITNESS_RATE:-100}
DISK_STALL_US=${CORELOG_BENCH_DISK_STALL_US:-5000}
DISK_SLOW_P50_US=${CORELOG_BENCH_DISK_SLOW_P50_US:-500}
QUIET_MIN=${CORELOG_BENCH_QUIET_MIN:-3}
[ "$QUIET_MIN" -le "$REPEATS" ] || QUIET_MIN=$REPEATS

# Compares the quiet runs of the set in $1 with the baseline and sets
# verdict to ok, regressed or inconclusive (too few quiet runs to say).
judge_set() {
  local set=$1 rc=0
  if [ "$quiet" -lt "$QUIET_MIN" ]; then
    say "$(basename "$set"): only $quiet quiet run(s), fewer than $QUIET_MIN: the disk, not the broker, was measured; inconclusive"
    verdict=inconclusive
    return 0
  fi
  say "comparing $quiet quiet run(s) of $(basename "$set") with $BASELINE/runs (medians over repeats)"
  # The broker's CPU per message is judged too where the baseline has it;
  # a baseline from before it was measured shows it without judging.
  "$BENCH" compare "$BASELINE/runs" "$set/runs" --latency-basis fdatasync-p50 \
    --max-cpu-ratio "$CPU_MAX_RATIO" --save "$set/comparison.json" || rc=$?
  case "$rc" in
    0) verdict=ok ;;
    1) verdict=regressed ;;
    *) fail "compare failed (exit $rc)" ;;
  esac
}

# The 2-shard case into the directory $1: a fresh `corelog serve --cores 2`
# (its shards pin themselves to cores 0 and 1, so no taskset), a priming
# run, then $REPEATS_2SHARDS runs of the closed-loop max-1kib scenario (in
# $1/runs), each recording the broker's CPU per message. No disk witness
# and no limits: CPU per message is what is judged, and a slow disk lowers
# the rate but not the CPU each message costs.
measure_2shards() {
  local set=$1 i out rc d
  mkdir -p "$set/runs"
  serve_fresh 2
  if [ "$PRIME_2SHARDS_S" != 0 ]; then
    # The topic's creation and the broker's first seconds are not judged.
    printf 'priming run (2 shards, %s s, discarded): ' "$PRIME_2SHARDS_S"
    rc=0
    ${gen_pin[@]+"${gen_pin[@]}"} "$BENCH" run --scenario "$SCENARIO_2SHARDS" --bootstrap "127.0.0.1:$port" \
      --out "$set/priming" --duration-s "$PRIME_2SHARDS_S" --warmup-s 0 --no-limits "${write_args[@]}" || rc=$?
    [ "$rc" -eq 0 ] || fail "the 2-shard priming run failed (exit $rc; broker log: $LOG)"
  fi
  for i in $(seq 1 "$REPEATS_2SHARDS"); do
    out=$set/out-$i
    rc=0
    ${gen_pin[@]+"${gen_pin[@]}"} "$BENCH" run --scenario "$SCENARIO_2SHARDS" --bootstrap "127.0.0.1:$port" \
      --out "$out" --duration-s "$DURATION_2SHARDS_S" --warmup-s "$WARMUP_S" --no-limits "${write_args[@]}" \
      --broker-pid "$broker_pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "2-shard run $i of $REPEATS_2SHARDS failed (exit $rc; broker log: $LOG)"
    kill -0 "$broker_pid" 2>/dev/null || fail "the broker died during 2-shard run $i (log: $LOG)"
    for d in "$out"/*/; do
      mv "$d" "$set/runs/$(printf '%02d' "$i")-$(basename "$d")"
    done
    rmdir "$out"
  done
  stop_rc=0
  stop_broker || stop_rc=$?
  [ "$stop_rc" -eq 0 ] || say "warning: the broker exited with status $stop_rc after SIGTERM (log: $LOG)" >&2
  rm -rf "$DATA"
}

# Compares the broker's CPU per message (the median over the runs) of the
# 2-shard set in $1 with the 2-shard baseline; prints it as a table and
# sets verdict to ok or regressed. Throughput and latency are shown, not
# judged: the closed loop's rate follows the shared machine's disk.
judge_2shards() {
  local set=$1 rc=0
  "$BENCH" compare "$BASELINE_2SHARDS/runs" "$set/runs" --max-cpu-ratio "$CPU_MAX_RATIO" --cpu-only \
    --save "$set/comparison.json" >"$set/comparison.txt" 2>&1 || rc=$?
  case "$rc" in
    0) verdict=ok ;;
    1) verdict=regressed ;;
    *) cat "$set/comparison.txt" >&2; fail "compare of the 2-shard set failed (exit $rc)" ;;
  esac
  say "2 shards, $(basename "$SCENARIO_2SHARDS" .toml): $(basename "$set") (B) against $BASELINE_2SHARDS/runs (A), medians; regressed when broker CPU per message B/A > $CPU_MAX_RATIO"
  grep -E '^(metric|throughput \(msgs/s\)|publish p99 \(us\)|broker CPU \(us/msg\)|errors) ' "$set/comparison.txt" || true
  # Runs that could not read the broker's CPU leave nothing to judge.
  awk '/^broker CPU \(us\/msg\)/ { found = ($5 != "-") } END { exit !found }' \
    "$set/comparison.txt" || fail "the 2-shard runs recorded no broker CPU per message ($set/comparison.txt)"
  say "2 shards: $verdict"
}

bench_started=$(date +%s)
status=0
inconclusive=0
regressed_cases=()

if case_on 1shard; then
  measure_set "$WORK/set-1"

  if [ "$update_baseline" -eq 1 ]; then
    RUNS=$WORK/set-1/runs
    [ "$quiet" -ge "$QUIET_MIN" ] ||
      fail "only $quiet quiet run(s) (the disk stalled next to the others): not a baseline; try again later"
    if [ -d "$BASELINE/runs" ]; then
      say "new runs against the old baseline (for information):"
      "$BENCH" compare "$BASELINE/runs" "$RUNS" --latency-basis fdatasync-p50 || true
    fi
    rm -rf "$BASELINE/runs"
    mkdir -p "$BASELINE"
    cp -r "$RUNS" "$BASELINE/runs"
    say "baseline replaced: $BASELINE/runs ($quiet quiet runs of $REPEATS). Review and commit it deliberately:"
    say "  git add ${BASELINE#"$ROOT"/}/runs && git commit -m 'ci bench: new baseline (why)'"
  else
    judge_set "$WORK/set-1"
    first=$verdict
    if [ "$first" != ok ]; then
      # A regression counts only if a second, fresh set of repeats shows it
      # too; a set the disk stalled through gets a second chance as well.
      say "set-1 $first; measuring a second set on a fresh broker"
      measure_set "$WORK/set-2"
      judge_set "$WORK/set-2"
      if [ "$first" = regressed ] && [ "$verdict" = regressed ]; then
        status=1
        regressed_cases+=("1 shard (sets $WORK/set-1 and $WORK/set-2)")
      elif [ "$verdict" != ok ]; then
        say "INCONCLUSIVE: set-1 $first, set-2 $verdict; the disk stalled next to too many runs to tell a slow broker from a slow disk (witness lines above): not counted as a regression" >&2
        inconclusive=1
      fi
    fi
  fi
fi

if case_on 2shards; then
  if [ "$update_baseline" -eq 1 ]; then
    measure_2shards "$WORK/2shards-1"
    if [ -d "$BASELINE_2SHARDS/runs" ]; then
      say "new 2-shard runs against the old baseline (for information):"
      judge_2shards "$WORK/2shards-1" || true
    fi
    rm -rf "$BASELINE_2SHARDS/runs"
    mkdir -p "$BASELINE_2SHARDS"
    cp -r "$WORK/2shards-1/runs" "$BASELINE_2SHARDS/runs"
    say "2-shard baseline replaced: $BASELINE_2SHARDS/runs ($REPEATS_2SHARDS runs). Review it, update its README.md and commit it deliberately:"
    say "  git add ${BASELINE_2SHARDS#"$ROOT"/} && git commit -m 'ci bench: new 2-shard baseline (why)'"
  else
    measure_2shards "$WORK/2shards-1"
    judge_2shards "$WORK/2shards-1"
    if [ "$verdict" = regressed ]; then
      # As for the 1-shard set: a regression counts only if a second,
      # fresh set shows it too.
      say "2-shard set regressed; measuring a second set on a fresh broker"
      measure_2shards "$WORK/2shards-2"
      judge_2shards "$WORK/2shards-2"
      if [ "$verdict" = regressed ]; then
        status=1
        regressed_cases+=("2 shards, broker CPU per message (sets $WORK/2shards-1 and $WORK/2shards-2)")
      fi
    fi
  fi
fi
finished=$(date +%s)

say "build $((built - started)) s; benchmark $((finished - built)) s ($((finished - bench_started)) s of runs, limits and compare); total $((finished - started)) s"
if [ $((finished - built)) -gt 240 ] && [ ! -d "$WORK/set-2" ] && [ ! -d "$WORK/2shards-2" ]; then
  say "warning: the benchmark took over 4 minutes; shorten CORELOG_BENCH_DURATION_S or CORELOG_BENCH_REPEATS" >&2
fi
case "$status" in
  0)
    if [ "$inconclusive" -eq 1 ]; then
      say "ok: inconclusive on a stalling disk (see above)"
    else
      say "ok: no gross regression against the baseline"
    fi
    ;;
  1)
    for c in "${regressed_cases[@]}"; do
      say "REGRESSED against the baseline on two sets of runs: $c (see the tables above)" >&2
    done
    ;;
esac
exit "$status"
