#!/usr/bin/env python3
"""Round trip of 100,000 keyed, zstd, idempotent messages over 8 partitions
with confluent-kafka: prints produce and consume times, errors, duplicates.

Usage: .venv/bin/python bench-harness/tools/roundtrip_100k.py 127.0.0.1:9092
(against a running broker with an empty data directory)."""
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bs = sys.argv[1]
a = AdminClient({'bootstrap.servers': bs})
fs = a.create_topics([NewTopic('py8', num_partitions=8, replication_factor=1)])
for t, f in fs.items(): print('create', t, f.result())
p = Producer({'bootstrap.servers': bs, 'enable.idempotence': True, 'compression.type': 'zstd', 'linger.ms': 5})
errs = []
def cb(e, m):
    if e: errs.append(e)
N = 100000
t0 = time.time()
for i in range(N):
    while True:
        try:
            p.produce('py8', key=str(i % 97).encode(), value=('v%d' % i).encode(), headers=[('h', b'x')], on_delivery=cb); break
        except BufferError:
            p.poll(0.01)
    if i % 1000 == 0: p.poll(0)
print('unflushed', p.flush(30), 'errors', len(errs), errs[:2], 'produce s', round(time.time()-t0, 2))
c = Consumer({'bootstrap.servers': bs, 'group.id': 'x', 'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
c.assign([TopicPartition('py8', i, 0) for i in range(8)])
seen = set(); dup = 0; t0 = time.time()
while len(seen) < N and time.time() - t0 < 60:
    for m in c.consume(1000, 1.0):
        if m.error(): print('err', m.error()); continue
        if m.value() in seen: dup += 1
        seen.add(m.value())
print('consumed', len(seen), 'dups', dup, 'consume s', round(time.time()-t0, 2))
lo, hi = c.get_watermark_offsets(TopicPartition('py8', 0), timeout=5)
print('watermarks p0', lo, hi)
