"""Sums the log cleaner's passes from a broker log: the `log cleaner pass
done` lines (bytes_read, bytes_written, elapsed_ms), and prints the
passes, their bytes, their wall time and the cleaner's throughput in MiB/s
(bytes read plus written over the passes' wall time, pacing and waits for
the core included; the swap job after each pass is not in it). With
DISK_MIB_PER_S it also prints that throughput as a fraction of the disk.

    python3 cleaner_passes.py BROKER_LOG [DISK_MIB_PER_S]
"""
import re
import statistics
import sys

ansi = re.compile(r"\x1b\[[0-9;]*m")
passes = []
for line in open(sys.argv[1], errors="replace"):
    line = ansi.sub("", line)
    if "log cleaner pass done" not in line:
        continue
    f = dict(re.findall(r"(\w+)=(\d+)", line))
    if "elapsed_ms" not in f:
        continue
    passes.append((int(f["bytes_read"]), int(f["bytes_written"]), int(f["elapsed_ms"])))
if not passes:
    print("no cleaner passes with elapsed_ms in %s" % sys.argv[1])
    sys.exit(1)
read = sum(p[0] for p in passes)
written = sum(p[1] for p in passes)
secs = sum(p[2] for p in passes) / 1000.0
mib = (read + written) / 2**20
rate = mib / secs if secs > 0 else float("nan")
per_pass = [((p[0] + p[1]) / 2**20) / (p[2] / 1000.0) for p in passes if p[2] > 0]
line = ("passes=%d read_mib=%.1f written_mib=%.1f pass_s=%.2f cleaner_mib_per_s=%.1f "
        "per_pass_median_mib_per_s=%.1f pass_ms_median=%.0f" % (
            len(passes), read / 2**20, written / 2**20, secs, rate,
            statistics.median(per_pass) if per_pass else float("nan"),
            statistics.median(p[2] for p in passes)))
if len(sys.argv) > 2:
    disk = float(sys.argv[2])
    line += " disk_mib_per_s=%.1f fraction_of_disk=%.3f" % (disk, rate / disk)
print(line)
