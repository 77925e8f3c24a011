# Sourced by scripts that start `corelog serve` and wait until it serves
# (ci/bench.sh, bench-harness/tools/full_report.sh, ab_cpu.sh).
#
# start_broker READY_FILE LOG TIMEOUT_S CMD...
#   Removes READY_FILE (an old one would say the broker serves), runs
#   `CMD... --ready-file READY_FILE` in the background (CMD is a `corelog
#   serve ...` command line, possibly behind taskset) with stderr to LOG and
#   stdout discarded, and waits up to TIMEOUT_S seconds for the broker to
#   write READY_FILE, which it does once every shard serves (as it logs
#   "corelog ready"). Sets broker_pid, and broker_write_bytes: the broker's
#   group-commit write size (write_bytes_max) from the file, for
#   `corelog-bench run --broker-write-bytes`. Returns 0 when the broker
#   serves; 1 when it exited first or the time ran out, after killing and
#   reaping it (broker_pid is then empty).
start_broker() {
  local ready=$1 log=$2 timeout_s=$3 i
  shift 3
  rm -f "$ready"
  "$@" --ready-file "$ready" 2>"$log" >/dev/null &
  broker_pid=$!
  broker_write_bytes=""
  for ((i = 0; i < timeout_s * 10; i++)); do
    # The broker renames the file into place: when it is there, it is whole.
    if [ -s "$ready" ]; then
      broker_write_bytes=$(sed -n 's/.*"write_bytes_max":\([0-9][0-9]*\).*/\1/p' "$ready")
      return 0
    fi
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=""
  return 1
}
