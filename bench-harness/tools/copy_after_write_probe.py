"""Probe: how long a copy into an O_DIRECT write buffer takes right after
that buffer was written to the device, against the same copy into a buffer
the device never read.

Usage: python3 copy_after_write_probe.py SECONDS [BLOCK_BYTES [FILE [BUFFERS]]]

Why: a log that writes with O_DIRECT copies each group commit into an
aligned buffer, then writes and fdatasyncs it, again and again with the
same buffer. On the project's virtual machine that copy, 25-30 us at p50
for 1 MiB, took 170-570 us at p99 in a Rust loop that did only that
(copy, pwrite, fdatasync), with no page fault and no context switch
counted by the guest. This probe shows whether a machine does it: each
loop copies BLOCK_BYTES (default 1 MiB) into buffer A and writes A with
O_DIRECT plus fdatasync, then copies the same bytes into buffer B, which
is never written anywhere. If copies into A have a tail that copies into
B lack, the cost comes with the device's use of the buffer (on a virtual
machine, the host's side of the DMA), not with the copy or the log.

FILE (default /var/tmp/copy-probe.dat, removed afterwards) holds 256
blocks, written once before timing and then overwritten in a ring.
BUFFERS (default 1): write from that many buffers in turn, so that each
rests longer between its write and the next copy into it.

Prints one line per buffer: n, p50, p90, p99, p99.9 and max copy time in
microseconds, and one line for write + fdatasync."""
import mmap
import os
import sys
import time

dur = float(sys.argv[1])
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
path = sys.argv[3] if len(sys.argv) > 3 else "/var/tmp/copy-probe.dat"
buffers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
ring = 256

src = os.urandom(bs)
# Anonymous mappings are page-aligned, as O_DIRECT needs.
ring_buffers = [mmap.mmap(-1, bs) for _ in range(buffers)]
control = mmap.mmap(-1, bs)
for b in ring_buffers:
    b[:] = src
control[:] = src

fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
try:
    for i in range(ring):
        os.pwritev(fd, [ring_buffers[0]], i * bs)
    os.fsync(fd)
    copy_written, copy_control, write_sync = [], [], []
    end = time.perf_counter() + dur
    i = 0
    while time.perf_counter() < end:
        written = ring_buffers[i % buffers]
        t0 = time.perf_counter()
        written[:] = src
        t1 = time.perf_counter()
        os.pwritev(fd, [written], (i % ring) * bs)
        os.fdatasync(fd)
        t2 = time.perf_counter()
        control[:] = src
        t3 = time.perf_counter()
        copy_written.append((t1 - t0) * 1e6)
        write_sync.append((t2 - t1) * 1e6)
        copy_control.append((t3 - t2) * 1e6)
        i += 1
finally:
    os.close(fd)
    os.unlink(path)


def line(name, v):
    v.sort()
    n = len(v)
    q = lambda p: v[min(n - 1, int(p * n))]
    print(
        f"{name}: n {n} p50 {q(0.5):.0f} p90 {q(0.9):.0f} p99 {q(0.99):.0f} "
        f"p99.9 {q(0.999):.0f} max {v[-1]:.0f} us"
    )


line("copy into the written buffer", copy_written)
line("copy into the control buffer", copy_control)
line("write + fdatasync", write_sync)
