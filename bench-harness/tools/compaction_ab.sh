#!/bin/bash
# Produce latency with and without the log cleaner, in one interleaved run,
# and the cleaner's throughput against the disk's.
#
#   bash bench-harness/tools/compaction_ab.sh ROUNDS DURATION_S OUT
#
# Runs the compact-1kib scenario through ab_cpu.sh against two brokers of
# this tree's release build: A with the cleaner on (log_cleaner.backoff_ms
# 1000, so that a pass follows every sealed segment within a second) and B
# with it off (log_cleaner.enable false: the compacted topic keeps every
# record). Both run at once, pinned to core 0, and the scenario runs
# against them in turns (ABBA...), ROUNDS times each on a fresh topic.
# Then measures the disk with dd (O_DIRECT, 1 MiB blocks, 256 MiB, in OUT)
# and sums broker A's cleaner passes (cleaner_passes.py).
set -u
ROUNDS=$1; DUR=$2; OUT=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/corelog
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
printf '[log_cleaner]\nenable = true\nbackoff_ms = 1000\n' > "$OUT/cleaner-on.toml"
printf '[log_cleaner]\nenable = false\n' > "$OUT/cleaner-off.toml"
echo "load before: $(cat /proc/loadavg)" | tee "$OUT/load.txt"
EXTRA_A="--config $OUT/cleaner-on.toml" EXTRA_B="--config $OUT/cleaner-off.toml" \
  bash "$ROOT/bench-harness/tools/ab_cpu.sh" compact-1kib "$ROUNDS" "$DUR" "$OUT" "$BIN" "$BIN" \
  | tee "$OUT/ab.txt"
echo "load after: $(cat /proc/loadavg)" | tee -a "$OUT/load.txt"
dd if=/dev/zero of="$OUT/dd.dat" bs=1M count=256 oflag=direct conv=fdatasync 2>&1 | tail -1 | tee "$OUT/dd-write.txt"
dd if="$OUT/dd.dat" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1 | tee "$OUT/dd-read.txt"
rm -f "$OUT/dd.dat"
DISK=$(python3 -c "
import re,sys
t=open('$OUT/dd-write.txt').read()
m=re.search(r'([0-9.]+) ([kMG])B/s',t)
v=float(m.group(1))*{'k':1e3,'M':1e6,'G':1e9}[m.group(2)]
print('%.1f'%(v/2**20))")
python3 "$ROOT/bench-harness/tools/cleaner_passes.py" "$OUT/broker-A.log" "$DISK" | tee "$OUT/cleaner.txt"
