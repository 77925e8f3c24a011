"""Client scenarios run in a subprocess by test_flavors.py, once with Debian's
/usr/bin/python3 (python3-confluent-kafka 1.7 on librdkafka 2.0.2) and once
with the venv's python (PyPI confluent-kafka, current librdkafka), so that
neither shadows the other.

    python flavor_client.py SCENARIO BOOTSTRAP TOPIC CODEC NODE_ID

Exits 0 and prints a JSON line {"ok": true, ...} on success; exits 1 with
the reason on stderr otherwise. Only uses APIs present in confluent-kafka 1.7.
"""
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

T = 15
NODE_ID = 1  # set from argv


def fail(msg):
    sys.stderr.write("FAIL: %s\n" % msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait_partitions(admin, topic, n):
    deadline = time.time() + T
    while time.time() < deadline:
        t = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == n and \
                all(p.leader == NODE_ID for p in t.partitions.values()):
            return
        time.sleep(0.1)
    fail("topic %s never had %d partitions with leader %d" % (topic, n, NODE_ID))


def create(admin, topic, partitions):
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                             operation_timeout=T, request_timeout=T)
    fs[topic].result(timeout=T)
    wait_partitions(admin, topic, partitions)


def produce(bootstrap, topic, msgs, **conf):
    c = {"bootstrap.servers": bootstrap, "linger.ms": 10, "message.timeout.ms": 30000}
    c.update(conf)
    p = Producer(c)
    errors = []
    delivered = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append((msg.partition(), msg.offset()))

    for m in msgs:
        while True:
            try:
                p.produce(topic, on_delivery=cb, **m)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(60)
    check(left == 0, "%d messages undelivered after 60 s" % left)
    check(not errors, "delivery errors: %s" % errors[:5])
    check(len(delivered) == len(msgs), "delivered %d of %d" % (len(delivered), len(msgs)))
    return delivered


def consume(bootstrap, topic, partitions, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "flavor-assign", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    deadline = time.time() + 30
    try:
        while len(out) < count and time.time() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    fail("consume error %s" % m.error())
                out.append(m)
    finally:
        c.close()
    check(len(out) == count, "consumed %d of %d" % (len(out), count))
    return out


def roundtrip(bootstrap, topic, codec):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, topic, 2)
    msgs = []
    for i in range(300):
        m = {"key": b"k%d" % i, "value": b"value-%d-" % i + b"z" * 40, "partition": i % 2,
             "headers": [("i", str(i).encode())]}
        if i % 50 == 49:
            m["value"] = None  # tombstone
        msgs.append(m)
    produce(bootstrap, topic, msgs, **{"acks": "all", "compression.type": codec})
    got = consume(bootstrap, topic, [0, 1], len(msgs))
    for p in (0, 1):
        want = [(m["key"], m["value"], m["headers"]) for m in msgs if m["partition"] == p]
        have = [(m.key(), m.value(), m.headers()) for m in got if m.partition() == p]
        check(have == want, "partition %d differs: first have %r want %r" % (p, have[:2], want[:2]))
        offs = [m.offset() for m in got if m.partition() == p]
        check(offs == list(range(150)), "partition %d offsets %r..." % (p, offs[:5]))
    return {"messages": len(got)}


def admin_ops(bootstrap, topic, _codec):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, topic, 3)
    md = admin.list_topics(timeout=10)
    check(list(md.brokers) == [NODE_ID], "brokers %r" % md.brokers)
    check(md.controller_id == NODE_ID, "controller %r" % md.controller_id)
    # creating it again
    fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=T)
    try:
        fs[topic].result(timeout=T)
        fail("second create of %s succeeded" % topic)
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, "second create: %s" % e)
    # replication factor 3
    bad = topic + "-rf3"
    fs = admin.create_topics([NewTopic(bad, num_partitions=1, replication_factor=3)], request_timeout=T)
    try:
        fs[bad].result(timeout=T)
        fail("replication factor 3 accepted")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR, "rf 3: %s" % e)
    # partitions
    fs = admin.create_partitions([NewPartitions(topic, 5)], request_timeout=T)
    fs[topic].result(timeout=T)
    wait_partitions(admin, topic, 5)
    fs = admin.create_partitions([NewPartitions(topic, 4)], request_timeout=T)
    try:
        fs[topic].result(timeout=T)
        fail("shrinking partitions accepted")
    except KafkaException as e:
        check(e.args[0].code() == KafkaError.INVALID_PARTITIONS, "shrink: %s" % e)
    # delete
    fs = admin.delete_topics([topic], operation_timeout=T, request_timeout=T)
    fs[topic].result(timeout=T)
    deadline = time.time() + T
    while time.time() < deadline and topic in admin.list_topics(timeout=5).topics:
        time.sleep(0.2)
    check(topic not in admin.list_topics(timeout=5).topics, "topic still listed after delete")
    return {}


def idempotent(bootstrap, topic, codec):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create(admin, topic, 2)
    n = 2000
    msgs = [{"value": b"%d" % i, "partition": i % 2} for i in range(n)]
    delivered = produce(bootstrap, topic, msgs, **{"enable.idempotence": True, "acks": "all",
                                                   "compression.type": codec})
    check(len(set(delivered)) == n, "duplicate (partition, offset) in delivery reports")
    got = consume(bootstrap, topic, [0, 1], n)
    for p in (0, 1):
        vals = [int(m.value()) for m in got if m.partition() == p]
        check(vals == list(range(p, n, 2)), "partition %d: not exactly once in order" % p)
    return {"messages": n}


SCENARIOS = {"roundtrip": roundtrip, "admin": admin_ops, "idempotent": idempotent}

if __name__ == "__main__":
    import confluent_kafka
    scenario, bootstrap, topic = sys.argv[1:4]
    codec = sys.argv[4] if len(sys.argv) > 4 else "none"
    NODE_ID = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    result = SCENARIOS[scenario](bootstrap, topic, codec)
    result.update(ok=True, scenario=scenario, client=confluent_kafka.version()[0] if isinstance(
        confluent_kafka.version(), tuple) else confluent_kafka.version(), librdkafka=confluent_kafka.libversion()[0])
    print(json.dumps(result))
