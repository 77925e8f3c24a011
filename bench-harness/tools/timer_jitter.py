"""Timer lateness: sleep until a deadline every INTERVAL_US, report how late
the wake-ups were. Usage: taskset -c CPU python3 timer_jitter.py INTERVAL_US SECONDS"""
import time,sys
iv=float(sys.argv[1])/1e6; dur=float(sys.argv[2])
t0=time.monotonic(); n=0; lat=[]
while True:
    due=t0+n*iv
    now=time.monotonic()
    if now-t0>dur: break
    if due>now: time.sleep(due-now)
    lat.append(time.monotonic()-due); n+=1
lat.sort(); q=lambda p: lat[min(len(lat)-1,int(p*len(lat)))]*1e6
print(f"timer lateness: n {len(lat)} p50 {q(.5):.0f} us p99 {q(.99):.0f} us p99.9 {q(.999):.0f} us max {lat[-1]*1e6:.0f} us")
