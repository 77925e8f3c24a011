"""Producer and consumer processes for the replication fault harness
(test_replication_faults.py), each run as its own process inside the
harness's client network namespace.

    python fault_worker.py produce LIB BOOTSTRAP TOPIC PARTITIONS OUT STOP TAG RATE
    python fault_worker.py consume LIB BOOTSTRAP TOPIC PARTITIONS OUT STOP
    python fault_worker.py final   LIB BOOTSTRAP TOPIC PARTITIONS OUT TIMEOUT_S

LIB is `confluent` (confluent-kafka / librdkafka) or `kafka-python`.
Every line goes to OUT as soon as it is known (line buffered), so the
history survives a worker that is killed. Times are time.monotonic(),
which every process on the machine shares.

produce: an idempotent acks=all producer sending unique values
  "<TAG>.<incarnation>.<n>" round-robin over the partitions at RATE per
  second until the file STOP exists, then flushing (60 s at most).
    A <value> <partition> <offset> <t_send> <t_ack>   acknowledged
    E <value> <partition> <t> <error>                 delivery failed
    F <t> <error>          fatal (idempotence) error; a new producer
                           (next incarnation) takes over
    D <sent> <undelivered> done
consume: reads every partition from offset 0 (assigned, no group) until
  STOP exists and holds {partition: end offset} it has read up to, or
  45 s passed after STOP appeared.
    R <partition> <offset> <value> <t>
    X <t> <error>          an error the client reported
    D <complete|incomplete> <json positions>
final: learns each partition's high watermark, then reads from offset 0
  up to it (TIMEOUT_S at most).
    W <partition> <high watermark>
    R <partition> <offset> <value> <t>
    X <t> <error>
    D <complete|incomplete> <json positions>
"""
import json
import os
import sys
import threading
import time


def now():
    return time.monotonic()


class Out:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def line(self, *fields):
        with self.lock:
            self.f.write(" ".join(str(x) for x in fields) + "\n")

    def close(self):
        self.f.close()


def one_word(text):
    return str(text).replace("\n", " ").replace(" ", "_")[:300]


def pace(rate, stop_path, send):
    """Calls send(n) about `rate` times a second until stop_path exists;
    returns how many were sent."""
    n, started = 0, now()
    deadline = started + 600
    while not os.path.exists(stop_path) and now() < deadline:
        due = started + n / rate
        wait = due - now()
        if wait > 0:
            time.sleep(min(wait, 0.05))
            continue
        if send(n):
            n += 1
    return n


# ------------------------------------------------------------- producers --
def produce_confluent(bootstrap, topic, partitions, out, stop_path, tag, rate):
    from confluent_kafka import KafkaException, Producer

    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 60000,
        "request.timeout.ms": 10000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 500,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": 5000,
        "queue.buffering.max.messages": 20000,
    }
    state = {"incarnation": 0, "fatal": False}

    def error_cb(err):
        if err.fatal():
            state["fatal"] = True
            out.line("F", "%.6f" % now(), one_word(err))

    conf["error_cb"] = error_cb
    p = Producer(conf)
    sent = [0]

    def send(n):
        nonlocal p
        if state["fatal"]:
            # A fatal idempotence error: the producer refuses everything
            # from now on. What it had not delivered fails in flush; a new
            # producer (new producer id) goes on.
            p.flush(5)
            state["fatal"] = False
            state["incarnation"] += 1
            p = Producer(conf)
        value = "%s.%d.%d" % (tag, state["incarnation"], n)
        part = n % partitions
        t_send = now()

        def done(err, msg, value=value, part=part, t_send=t_send):
            if err is None:
                out.line("A", value, msg.partition(), msg.offset(), "%.6f" % t_send,
                         "%.6f" % now())
            else:
                out.line("E", value, part, "%.6f" % now(), one_word(err))

        try:
            p.produce(topic, value=value.encode(), partition=part, on_delivery=done)
        except BufferError:
            p.poll(0.1)
            return False
        except KafkaException as e:
            out.line("E", value, part, "%.6f" % now(), one_word(e))
            return True
        sent[0] += 1
        p.poll(0)
        return True

    n = pace(rate, stop_path, send)
    left = p.flush(60)
    out.line("D", n, left)
    return left == 0


def produce_kafka_python(bootstrap, topic, partitions, out, stop_path, tag, rate):
    from kafka import KafkaProducer

    if os.environ.get("FAULT_WORKER_DEBUG"):
        # kafka-python's sender says at debug level what each produce
        # answer was (DUPLICATE_SEQUENCE_NUMBER taken as success, retries).
        import logging
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("kafka.producer.sender").setLevel(logging.DEBUG)

    p = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all",
                      enable_idempotence=True, linger_ms=5, retries=2 ** 31 - 1,
                      delivery_timeout_ms=60000, request_timeout_ms=10000,
                      retry_backoff_ms=100, reconnect_backoff_ms=50,
                      reconnect_backoff_max_ms=500, max_in_flight_requests_per_connection=5)

    def send(n):
        value = "%s.0.%d" % (tag, n)
        part = n % partitions
        t_send = now()
        try:
            fut = p.send(topic, value=value.encode(), partition=part)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            out.line("E", value, part, "%.6f" % now(), one_word(repr(e)))
            return True
        fut.add_callback(lambda md, value=value, t_send=t_send: out.line(
            "A", value, md.partition, md.offset, "%.6f" % t_send, "%.6f" % now()))
        fut.add_errback(lambda e, value=value, part=part: out.line(
            "E", value, part, "%.6f" % now(), one_word(repr(e))))
        return True

    n = pace(rate, stop_path, send)
    try:
        p.flush(timeout=60)
        left = 0
    except Exception as e:  # noqa: BLE001
        out.line("X", "%.6f" % now(), one_word(repr(e)))
        left = -1
    p.close(timeout=5)
    out.line("D", n, left)
    return left == 0


# ------------------------------------------------------------- consumers --
def read_stop(stop_path):
    """None until the stop file exists; then its {partition: end} (empty
    when it holds no JSON yet)."""
    try:
        text = open(stop_path).read()
    except FileNotFoundError:
        return None
    try:
        return {int(k): v for k, v in json.loads(text).items()}
    except ValueError:
        return {}


class Reader:
    """Polls the topic's partitions from offset 0 and records every record;
    `position[p]` is the next offset to read of partition p."""

    def __init__(self, lib, bootstrap, topic, partitions, out):
        self.lib, self.topic, self.out = lib, topic, out
        self.position = {p: 0 for p in range(partitions)}
        if lib == "confluent":
            from confluent_kafka import Consumer, TopicPartition
            self.c = Consumer({
                "bootstrap.servers": bootstrap, "group.id": "fault-reader",
                "enable.auto.commit": False, "enable.partition.eof": False,
                "auto.offset.reset": "earliest", "fetch.wait.max.ms": 200,
                "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
                "socket.connection.setup.timeout.ms": 5000,
                "error_cb": lambda err: out.line("X", "%.6f" % now(), one_word(err)),
            })
            self.c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        else:
            from kafka import KafkaConsumer, TopicPartition
            self.c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None,
                                   enable_auto_commit=False, auto_offset_reset="earliest",
                                   fetch_max_wait_ms=200, request_timeout_ms=10000,
                                   reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            self.c.assign(tps)
            for tp in tps:
                self.c.seek(tp, 0)

    def record(self, part, offset, value):
        self.out.line("R", part, offset, value, "%.6f" % now())
        self.position[part] = max(self.position[part], offset + 1)

    def poll(self):
        if self.lib == "confluent":
            for m in self.c.consume(500, 0.2):
                if m.error() is not None:
                    self.out.line("X", "%.6f" % now(), one_word(m.error()))
                    continue
                self.record(m.partition(), m.offset(), m.value().decode())
        else:
            try:
                batches = self.c.poll(timeout_ms=200, max_records=500)
            except Exception as e:  # noqa: BLE001 - recorded, reading goes on
                self.out.line("X", "%.6f" % now(), one_word(repr(e)))
                time.sleep(0.2)
                return
            for tp, msgs in batches.items():
                for m in msgs:
                    self.record(tp.partition, m.offset, m.value.decode())

    def high_watermarks(self, partitions):
        """{partition: high watermark}, or None if a broker did not say."""
        if self.lib == "confluent":
            from confluent_kafka import TopicPartition
            out = {}
            for p in range(partitions):
                try:
                    _, high = self.c.get_watermark_offsets(TopicPartition(self.topic, p),
                                                           timeout=5)
                except Exception as e:  # noqa: BLE001
                    self.out.line("X", "%.6f" % now(), one_word(repr(e)))
                    return None
                out[p] = high
            return out
        from kafka import TopicPartition
        try:
            ends = self.c.end_offsets([TopicPartition(self.topic, p) for p in range(partitions)])
        except Exception as e:  # noqa: BLE001
            self.out.line("X", "%.6f" % now(), one_word(repr(e)))
            return None
        return {tp.partition: o for tp, o in ends.items()}

    def close(self):
        try:
            self.c.close()
        except Exception:  # noqa: BLE001
            pass


def consume(lib, bootstrap, topic, partitions, out, stop_path):
    r = Reader(lib, bootstrap, topic, partitions, out)
    stop_seen = None
    while True:
        r.poll()
        ends = read_stop(stop_path)
        if ends is None:
            continue
        stop_seen = stop_seen or now()
        done = ends and all(r.position[p] >= ends.get(p, 0) for p in r.position)
        if done or now() - stop_seen > 45:
            break
    r.close()
    out.line("D", "complete" if done else "incomplete", json.dumps(r.position))
    return bool(done)


def final(lib, bootstrap, topic, partitions, out, timeout):
    deadline = now() + timeout
    r = Reader(lib, bootstrap, topic, partitions, out)
    ends = None
    while ends is None and now() < deadline:
        ends = r.high_watermarks(partitions)
        if ends is None:
            time.sleep(0.5)
    done = False
    if ends is not None:
        for p, high in sorted(ends.items()):
            out.line("W", p, high)
        while now() < deadline:
            if all(r.position[p] >= ends[p] for p in ends):
                done = True
                break
            r.poll()
    r.close()
    out.line("D", "complete" if done else "incomplete", json.dumps(r.position))
    return done


def main():
    mode, lib = sys.argv[1], sys.argv[2]
    bootstrap, topic, partitions, path = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    out = Out(path)
    if mode == "produce":
        stop_path, tag, rate = sys.argv[7], sys.argv[8], float(sys.argv[9])
        fn = produce_confluent if lib == "confluent" else produce_kafka_python
        ok = fn(bootstrap, topic, partitions, out, stop_path, tag, rate)
    elif mode == "consume":
        ok = consume(lib, bootstrap, topic, partitions, out, sys.argv[7])
    else:
        ok = final(lib, bootstrap, topic, partitions, out, float(sys.argv[7]))
    out.close()
    sys.exit(0 if ok else 3)


if __name__ == "__main__":
    main()
