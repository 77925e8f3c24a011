"""The device's own durable-append loop, for as long as a storage benchmark
case runs: O_DIRECT write of BLOCK_BYTES then fdatasync, closed loop, for
SECONDS, over a FILE_MIB ring written once first (so these are overwrites,
as on a recycled segment file). `corelog-bench limits` measures the same
thing in short bursts; over ten seconds the device's tail is longer, and
this is the figure a one-writer append case can be held against.

Usage: python3 sustained_write.py SECONDS FILE_MIB [BLOCK_BYTES [FILE]]
(default BLOCK_BYTES 1 MiB, FILE /var/tmp/sustained.dat, removed after)."""
import mmap, os, sys, time

secs = float(sys.argv[1])
mib = int(sys.argv[2])
bs = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20
path = sys.argv[4] if len(sys.argv) > 4 else '/var/tmp/sustained.dat'
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_TRUNC)
fill = mmap.mmap(-1, 1 << 20)
fill.write(b'y' * (1 << 20))
for off in range(0, mib << 20, 1 << 20):
    os.pwritev(fd, [fill], off)
os.fsync(fd)
buf = mmap.mmap(-1, bs)
buf.write(b'x' * bs)
lat = []
pos = 0
t0 = time.monotonic()
while time.monotonic() - t0 < secs:
    s = time.monotonic()
    os.pwritev(fd, [buf], pos)
    os.fdatasync(fd)
    lat.append(time.monotonic() - s)
    pos = (pos + bs) % (mib << 20)
elapsed = time.monotonic() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
print(f"{bs >> 10} KiB x {len(lat)} in {elapsed:.1f} s: {len(lat) * bs / elapsed / 2**20:.0f} MiB/s, "
      f"p50 {q(.5):.0f} us, p99 {q(.99):.0f} us, p99.9 {q(.999):.0f} us, max {lat[-1] * 1e6:.0f} us")
os.close(fd)
os.unlink(path)
