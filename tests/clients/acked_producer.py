"""Continuous acks=all producer for the crash test, run as its own process.

    python acked_producer.py BOOTSTRAP TOPIC PARTITIONS ACKED_FILE STOP_FILE IDEMPOTENT(0|1)

Sends values b"id-<n>" (n = 0, 1, 2, ...) round-robin over the partitions
until STOP_FILE exists (or 120 s pass), then flushes. Every message whose
delivery report says success is appended to ACKED_FILE as "<n> <partition>
<offset>", flushed line by line, so the test sees what was acknowledged even
while the broker is down. Errors are appended as "ERR <n> <error>".
"""
import os
import sys
import time

from confluent_kafka import Producer


def main():
    bootstrap, topic, partitions, acked_path, stop_path, idem = sys.argv[1:7]
    partitions = int(partitions)
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": idem == "1",
        "linger.ms": 5,
        "message.timeout.ms": 60000,
        "retry.backoff.ms": 100,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "queue.buffering.max.messages": 20000,
    }
    p = Producer(conf)
    out = open(acked_path, "a", buffering=1)

    def cb(err, msg):
        n = int(msg.value()[3:])
        if err is None:
            out.write("%d %d %d\n" % (n, msg.partition(), msg.offset()))
        else:
            out.write("ERR %d %s\n" % (n, err))

    n = 0
    started = time.monotonic()
    while not os.path.exists(stop_path) and time.monotonic() - started < 120:
        try:
            p.produce(topic, value=b"id-%d" % n, partition=n % partitions, on_delivery=cb)
            n += 1
        except BufferError:
            p.poll(0.05)
            continue
        if n % 50 == 0:
            p.poll(0)
            time.sleep(0.005)  # a steady stream, not a flood
    left = p.flush(90)
    out.write("DONE sent=%d undelivered=%d\n" % (n, left))
    out.close()
    sys.exit(0 if left == 0 else 3)


if __name__ == "__main__":
    main()
