"""Device probe: O_DIRECT write + fdatasync in a loop, the device's own
durable append.

Usage: python3 fsync_probe.py RATE_PER_S SECONDS [BLOCK_BYTES [FILE [FILE_MIB]]]

- RATE_PER_S > 0: open loop on a fixed schedule, latency from the intended
  time, so one long stall counts for every write it delayed, as it does
  for a broker's requests. ci/bench.sh runs it this way as the disk witness
  beside each measured run (100 a second, 12 KiB, appending).
- RATE_PER_S 0: closed loop, as fast as the device goes, latency of each
  write + fdatasync: the figure a one-writer storage benchmark case can be
  held against over the same duration (`corelog-bench limits` measures it
  in short bursts only), for example
  `python3 fsync_probe.py 0 10 1048576 /var/tmp/probe.dat 2048`.

FILE (default /var/tmp/probe.dat, removed afterwards) of FILE_MIB (default
256) MiB is written once before timing and then overwritten in a ring, so
the timed writes allocate nothing. FILE_MIB 0 appends instead: the file
grows, so every fdatasync also commits the filesystem's journal (block
allocation and file size), as a broker's writes into a new segment do.

Prints one line: n, p50, p99, p99.9 and max latency, then MiB/s."""
import mmap
import os
import sys
import time

rate = int(sys.argv[1])
dur = float(sys.argv[2])
bs = int(sys.argv[3]) if len(sys.argv) > 3 else 12288
path = sys.argv[4] if len(sys.argv) > 4 else '/var/tmp/probe.dat'
size = (int(sys.argv[5]) if len(sys.argv) > 5 else 256) << 20
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_TRUNC)
if bs >= 1 << 20:
    # Like the broker's large write buffers (AlignedBuf): 2 MiB aligned and
    # on transparent huge pages, so a write is one request to the device.
    import ctypes
    area = mmap.mmap(-1, bs + (2 << 20), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.madvise(mmap.MADV_HUGEPAGE)
    skip = -ctypes.addressof(ctypes.c_char.from_buffer(area)) % (2 << 20)
    buf = memoryview(area)[skip:skip + bs]
    buf[:] = b'x' * bs
else:
    buf = mmap.mmap(-1, bs)
    buf.write(b'x' * bs)
if size:
    # Written once, so that the timed writes are overwrites.
    fill = mmap.mmap(-1, 1 << 20)
    for off in range(0, size, 1 << 20):
        os.pwritev(fd, [fill], off)
    os.fsync(fd)
lat = []
pos = 0
n = 0
t0 = time.monotonic()
while True:
    now = time.monotonic()
    if now - t0 > dur:
        break
    if rate > 0:
        start = t0 + n / rate
        if start > now:
            time.sleep(start - now)
    else:
        start = now
    os.pwritev(fd, [buf], pos)
    os.fdatasync(fd)
    lat.append(time.monotonic() - start)
    pos = (pos + bs) % size if size else pos + bs
    n += 1
elapsed = time.monotonic() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
print(f"n {len(lat)} p50 {q(.5):.0f} us p99 {q(.99):.0f} us p99.9 {q(.999):.0f} max {lat[-1] * 1e6:.0f} us"
      f" MiB/s {n * bs / elapsed / 2**20:.0f}")
os.close(fd)
os.unlink(path)
