"""Device probe: O_DIRECT write + fdatasync on a fixed schedule, latency from
the intended time (open loop, so one long stall counts for every write it
delayed, as it does for a broker's requests).

Usage: python3 fsync_probe.py RATE_PER_S SECONDS [BLOCK_BYTES [FILE [FILE_MIB]]]

Writes (and removes) FILE (default /var/tmp/probe.dat) of FILE_MIB (default
256) MiB, written once before timing and then overwritten in a ring, so the
timed writes allocate nothing. FILE_MIB 0 appends instead: the file grows,
so every fdatasync also commits the filesystem's journal (block allocation
and file size), as a broker's writes into a new segment do; a journal slowed
by other work (ext4 mounted with discard commits the discards of deleted
files) stalls these while overwrites still pass. ci/bench.sh uses it to tell a stalling disk
from a slow broker: alone between sets, and as a low-rate witness next to
each measured run (a small file, so its first fill does not disturb the
run)."""
import os, mmap, time, sys
rate=int(sys.argv[1]); dur=float(sys.argv[2]); bs=int(sys.argv[3]) if len(sys.argv)>3 else 12288
path=sys.argv[4] if len(sys.argv)>4 else '/var/tmp/probe.dat'
fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_DIRECT|os.O_TRUNC)
size=(int(sys.argv[5]) if len(sys.argv)>5 else 256)<<20
buf=mmap.mmap(-1, bs); buf.write(b'x'*bs)
if size:
    # zero fill (written once)
    big=mmap.mmap(-1, 1<<20)
    for off in range(0,size,1<<20): os.pwritev(fd,[big],off)
    os.fsync(fd)
lat=[]; pos=0; t0=time.monotonic(); n=0
while True:
    due=t0+n/rate
    now=time.monotonic()
    if now-t0>dur: break
    if due>now: time.sleep(due-now)
    s=time.monotonic()
    os.pwritev(fd,[buf],pos); os.fdatasync(fd)
    lat.append(time.monotonic()-due)
    pos=(pos+bs)%size if size else pos+bs; n+=1
lat.sort()
q=lambda p: lat[min(len(lat)-1,int(p*len(lat)))]*1e6
print(f"n {len(lat)} p50 {q(.5):.0f} us p99 {q(.99):.0f} us p99.9 {q(.999):.0f} max {lat[-1]*1e6:.0f} us")
os.unlink(path)
