"""The consume-transform-produce process of test_exactly_once.py: one
confluent-kafka (librdkafka) consumer in a group and one transactional
producer, copying every record of INPUT to OUTPUT exactly once. The test
kills it with SIGKILL again and again and starts it anew.

    python eos_worker.py BOOTSTRAP INPUT OUTPUT GROUP TXN_ID STATUS INCARNATION BATCH TXN_TIMEOUT_MS MIN_TXN_MS

Its identity is fixed over restarts, as a real exactly-once application's
is: the transactional id TXN_ID (so that a new incarnation's
init_transactions fences the previous one and aborts its open transaction)
and the group's static member id (group.instance.id, so that a new
incarnation takes over the dead one's membership and partitions at once
instead of waiting for its session to time out).

The loop, as in confluent-kafka's examples/eos-transactions.py: consume up
to BATCH records; begin a transaction; produce each as key -> value + b"|out"
(the same key, so the same output partition) with headers naming the input
partition, offset and this incarnation; wait until the transaction has
been open MIN_TXN_MS (the "transform" work: it bounds the pipeline's rate
to BATCH records per MIN_TXN_MS whatever the broker's speed, and keeps
the produced records in an open transaction for a while, where a kill
leaves them to be aborted); send the consumer's positions (the
next offset of each partition it read) to the transaction with the group's
metadata; commit. A retriable commit error is retried; an abortable one
aborts the transaction and rewinds the consumer to the group's committed
offsets; a fatal one ends the process (exit 3). The process exits 0 once
the group's committed offsets reach the input's high watermarks (the input
is written in full before the first incarnation starts).

STATUS gets one line per event, written at once (line buffered), so that
the test sees them even from a process it killed:
    S <incarnation> <pid> <t>     started
    I <t>                          init_transactions done
    R <t> <partitions>             partitions assigned (ready)
    B <n>                          transaction n begun (its records follow)
    C <n> <records> <t>            transaction n committed
    A <n> <error>                  transaction n aborted after the error
    X <error>                      other client error (logged, not fatal)
    F <error>                      fatal error: exit 3
    D <t> <json committed>         done: exit 0
Times are time.monotonic().
"""
import json
import os
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaException, Producer,
                             TopicPartition)


def main():
    bootstrap, inp, out, group, txn_id, status_path, inc = sys.argv[1:8]
    batch, txn_timeout_ms, min_txn_ms = (int(a) for a in sys.argv[8:11])
    status = open(status_path, "a", buffering=1)

    def log(*fields):
        status.write(" ".join(str(f).replace("\n", " ") for f in fields) + "\n")

    log("S", inc, os.getpid(), time.monotonic())
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": txn_timeout_ms,
        "linger.ms": 5,
        "message.timeout.ms": txn_timeout_ms,
    })
    # Before the consumer reads the committed offsets: this fences the
    # previous incarnation and ends its open transaction (aborted, or
    # completed if it had already asked to commit), so that the offsets
    # the consumer starts from are the ones of its last committed one.
    producer.init_transactions(60)
    log("I", time.monotonic())

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": txn_id,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    })
    meta = consumer.list_topics(inp, timeout=30).topics[inp]
    parts = sorted(meta.partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(inp, p), timeout=30)[1] for p in parts}

    def on_assign(c, assigned):
        log("R", time.monotonic(), ",".join(str(tp.partition) for tp in assigned))

    def on_revoke(c, revoked):
        log("X", "revoked", ",".join(str(tp.partition) for tp in revoked))

    consumer.subscribe([inp], on_assign=on_assign, on_revoke=on_revoke)

    def rewind():
        """Back to the group's committed offsets: what the aborted
        transaction read will be read again."""
        assigned = consumer.assignment()
        if not assigned:
            return
        for tp in consumer.committed(assigned, timeout=30):
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            consumer.seek(tp)

    def finished():
        assigned = consumer.assignment()
        if sorted(tp.partition for tp in assigned) != parts:
            return None
        committed = {tp.partition: tp.offset for tp in consumer.committed(assigned, timeout=30)}
        if all(committed[p] >= ends[p] for p in parts):
            return committed
        return None

    def produce(msg, n):
        while True:
            try:
                producer.produce(out, key=msg.key(), value=msg.value() + b"|out",
                                 headers=[("src", b"%d:%d" % (msg.partition(), msg.offset())),
                                          ("inc", inc.encode()), ("txn", b"%d" % n)])
                return
            except BufferError:
                producer.poll(0.05)

    n = 0
    while True:
        msgs = consumer.consume(num_messages=batch, timeout=0.5)
        good = []
        for m in msgs:
            if m.error():
                log("X", m.error())
            else:
                good.append(m)
        if not good:
            done = finished()
            if done is not None:
                log("D", time.monotonic(), json.dumps(done))
                consumer.close()
                return 0
            continue
        n += 1
        log("B", n)
        began = time.monotonic()
        try:
            producer.begin_transaction()
            for m in good:
                produce(m, n)
            pause = began + min_txn_ms / 1000.0 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            positions = {}
            for m in good:
                positions[m.partition()] = m.offset() + 1
            offsets = [TopicPartition(inp, p, o) for p, o in sorted(positions.items())]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            while True:
                try:
                    producer.commit_transaction(30)
                    break
                except KafkaException as e:
                    if e.args[0].retriable():
                        log("X", "commit-retry", e.args[0])
                        continue
                    raise
            log("C", n, len(good), time.monotonic())
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort():
                log("A", n, err)
                while True:
                    try:
                        producer.abort_transaction(30)
                        break
                    except KafkaException as e2:
                        if e2.args[0].retriable():
                            continue
                        log("F", "abort", e2.args[0])
                        return 3
                rewind()
                continue
            log("F", err)
            return 3


if __name__ == "__main__":
    sys.exit(main())
