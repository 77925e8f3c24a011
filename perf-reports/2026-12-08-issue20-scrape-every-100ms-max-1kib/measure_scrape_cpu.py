# Measures the broker's CPU per /metrics scrape: the broker idle for 20 s
# without scrapes, then 20 s scraped every 100 ms; CPU from /proc/PID/stat.
import http.client, os, subprocess, sys, time
binary, port, admin = sys.argv[1], 29301, 29302
p = subprocess.Popen([binary, "serve", "--cores", "1", "--data-dir", "data", "--listen", "127.0.0.1:%d" % port,
                      "--admin-listen", "127.0.0.1:%d" % admin], stdout=open("broker.log", "w"), stderr=subprocess.STDOUT)
def cpu():
    f = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def get():
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5); c.request("GET", "/metrics")
    body = c.getresponse().read(); c.close(); return body
deadline = time.time() + 30
while True:
    try: get(); break
    except OSError: time.sleep(0.2)
# Topics like the scenario's, so the exposition has partitions.
subprocess.run([binary, "topic", "create", "t", "--partitions", "8", "--bootstrap-server", "127.0.0.1:%d" % port], capture_output=True)
subprocess.run(["bash", "-c", "seq 1 2000 | %s produce t --bootstrap-server 127.0.0.1:%d" % (binary, port)], capture_output=True)
time.sleep(2)
for label, scrape in (("idle", False), ("scraped", True), ("idle", False), ("scraped", True)):
    c0, t0, n, size = cpu(), time.time(), 0, 0
    while time.time() - t0 < 20:
        if scrape:
            size = len(get()); n += 1
        time.sleep(0.1)
    used = cpu() - c0
    print("%-8s %5.2f s broker CPU in 20 s, %d scrapes of %d bytes" % (label, used, n, size), flush=True)
p.terminate(); p.wait()
