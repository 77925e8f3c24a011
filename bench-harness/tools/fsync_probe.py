"""Device probe: O_DIRECT write + fdatasync on a fixed schedule, latency from
the intended time. Usage: python3 fsync_probe.py RATE_PER_S SECONDS [BLOCK_BYTES [FILE]]
Writes (and removes) FILE (default /var/tmp/probe.dat), 256 MiB, written once
before timing. ci/bench.sh uses it to tell a stalling disk from a slow broker."""
import os, mmap, time, sys
rate=int(sys.argv[1]); dur=float(sys.argv[2]); bs=int(sys.argv[3]) if len(sys.argv)>3 else 12288
path=sys.argv[4] if len(sys.argv)>4 else '/var/tmp/probe.dat'
fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_DIRECT|os.O_TRUNC)
size=256<<20
buf=mmap.mmap(-1, bs); buf.write(b'x'*bs)
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
    pos=(pos+bs)%size; n+=1
lat.sort()
q=lambda p: lat[min(len(lat)-1,int(p*len(lat)))]*1e6
print(f"n {len(lat)} p50 {q(.5):.0f} us p99 {q(.99):.0f} us p99.9 {q(.999):.0f} max {lat[-1]*1e6:.0f} us")
os.unlink(path)
