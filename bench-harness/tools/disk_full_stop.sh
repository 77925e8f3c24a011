#!/bin/bash
# Reproduces a stop on a full data disk: the broker's data directory on a
# small loop-mounted ext4 image, the load generator filling it at full
# speed, SIGTERM 5 s after the load ends, then how long the broker takes to
# exit. Before `CLOSE_FAILED_JOBS_MAX` (broker/runtime/src/partition.rs) a
# broker in this state retried its partitions' final checkpoints for ever
# and never exited (3 of 3 runs by hand on 2026-12-05, the same steps on a
# 400 MiB image; 0 of 1 from this script, so the state is timing-bound);
# with the fix it exited within 1 s in 6 of 6 runs, twice through the new
# give-up path. Not a CI test for that reason: whether the partitions are
# caught retrying a refused checkpoint depends on timing that only a
# full-speed producer reached here.
#
#   sudo bash bench-harness/tools/disk_full_stop.sh BROKER_BIN [ROUNDS]
set -u
BIN=$1; ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$ROOT/target/release/corelog-bench
WORK=$(mktemp -d); IMG=$WORK/fs.img; MNT=$WORK/mnt; PORT=29301
# shellcheck source=ci/lib/broker.sh
source "$ROOT/ci/lib/broker.sh"
mkdir -p $MNT
truncate -s 400M $IMG && mkfs.ext4 -q -F $IMG && mount -o loop $IMG $MNT || exit 1
broker_pid=""
trap '[ -n "$broker_pid" ] && kill -9 $broker_pid 2>/dev/null; umount $MNT || umount -l $MNT; rm -rf $WORK' EXIT
for r in $(seq 1 $ROUNDS); do
  rm -rf $MNT/data
  # The ready file lives off the small disk, which the run fills.
  start_broker $WORK/ready-$r.json $WORK/broker-$r.log 30 \
    $BIN serve --cores 1 --data-dir $MNT/data --listen 127.0.0.1:$PORT ||
    { echo "round $r: the broker did not serve; $WORK/broker-$r.log:"; cat $WORK/broker-$r.log; exit 1; }
  pid=$broker_pid
  timeout 60 $BENCH run --scenario $ROOT/bench-harness/scenarios/max-1kib.toml --bootstrap 127.0.0.1:$PORT \
    --out $WORK/run --duration-s 8 --warmup-s 1 --no-limits --topic dfull >/dev/null 2>&1
  sleep 5
  kill -TERM $pid
  result="still running 15 s after SIGTERM"
  for i in $(seq 1 15); do
    sleep 1
    kill -0 $pid 2>/dev/null || { result="exited ${i} s after SIGTERM"; break; }
  done
  echo "round $r: $result; $(grep -c 'closing without a final checkpoint' $WORK/broker-$r.log) partitions closed without their final checkpoint"
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
done
