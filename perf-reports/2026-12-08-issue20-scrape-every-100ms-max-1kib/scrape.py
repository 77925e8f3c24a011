# Scrapes http://127.0.0.1:PORT/metrics every 100 ms until killed; counts
# answers and failures (the broker behind PORT restarts between rounds).
import http.client, sys, time
port = int(sys.argv[1]); ok = fail = 0
while True:
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/metrics"); r = c.getresponse(); body = r.read(); c.close()
        ok += 1
        if ok % 100 == 0:
            print("scrapes ok=%d failed=%d last_bytes=%d" % (ok, fail, len(body)), flush=True)
    except OSError:
        fail += 1
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
