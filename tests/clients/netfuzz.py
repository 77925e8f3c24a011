"""A network fuzzer for the broker (issue 24, "Hostile input").

It starts the real broker, seeds canary data with a real client, and then,
for a fixed time, sends it hostile input over real sockets:

  * mutated request frames of every api and version the broker advertises.
    The valid requests they start from are the fully populated requests of
    the protocol crate's tests, written out to `fuzz_seeds.txt` by
    broker/protocol/tests/fuzz_seeds.rs (which fails when the file falls
    behind the api table). Mutations: bit flips, random bytes, "interesting"
    16- and 32-bit values (lengths of -1, 2^15-1, 2^31-1, ...), huge varints,
    inserted, deleted and duplicated ranges, truncation, another api key or
    version, and now and then a size prefix that lies;
  * Produce requests whose record batch was mutated inside its records (for
    compressed batches: inside the compressed payload, or inside the records
    before compression) and whose length and CRC32C were then fixed, so that
    the mutation reaches the record checks instead of stopping at the CRC.

Throughout it checks that the broker lives: an ApiVersions request on a fresh
connection answered within a few seconds, resident memory below a bound, no
panic in its log. At the end every batch the broker accepted is read back by
two real consumers (confluent-kafka and kafka-python) without a decode error,
and after kill -9 and a restart the canary data is all there.

The case sequence is a function of the seed alone (the broker's answers
change only the counts), so a failure replays with the seed it prints:

    python tests/clients/netfuzz.py --seconds 3600 --seed 7

With --workers N, N fuzzers (seeds SEED..SEED+N-1, each with a produce topic
of its own) run at once against the one broker, which keeps it busy.

tests/clients/test_fuzz_network.py runs it for about a minute in CI.
"""
import argparse
import collections
import os
import random
import re
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import brokerproc  # noqa: E402
import kproto  # noqa: E402

SEEDS_FILE = HERE / "fuzz_seeds.txt"

# The topics the seed frames name (see broker/protocol/tests/common), made
# real so that mutated requests reach the handlers' topic paths rather than
# stopping at UNKNOWN_TOPIC_OR_PARTITION. Fuzzed DeleteTopics requests delete
# them now and then; the fuzzer creates them again.
SEED_TOPICS = {"orders": 3, "payments": 1}
# Mutated Produce batches go here, and only here, so that what the broker
# accepted can be counted back.
PRODUCE_TOPIC = "fuzz-produce"
PRODUCE_PARTITIONS = 2
# Written once by a real producer with acks=all; must survive everything.
CANARY_TOPIC = "fuzz-canary"
CANARY_MESSAGES = 200

# For the summary only.
API_NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
             9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
             13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
             18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords",
             22: "InitProducerId", 32: "DescribeConfigs", 33: "AlterConfigs", 35: "DescribeLogDirs", 43: "ElectLeaders",
             45: "AlterPartitionReassignments", 46: "ListPartitionReassignments",
             37: "CreatePartitions", 42: "DeleteGroups", 44: "IncrementalAlterConfigs",
             47: "OffsetDelete", 60: "DescribeCluster", 68: "ConsumerGroupHeartbeat",
             69: "ConsumerGroupDescribe"}

RSS_MAX_BYTES = 2 << 30
LIVENESS_TIMEOUT_S = 5.0
LIVENESS_EVERY_S = 1.0
# How long a mutated frame may go unanswered before the fuzzer gives up on
# its connection. Silence is allowed (a lying size prefix makes the broker
# wait for bytes that never come; a mutated Fetch may long-poll); the
# liveness check is what catches a broker that stops serving.
ANSWER_WAIT_S = 1.0
# A valid request is answered well within this, or it is a finding.
VALID_ANSWER_WAIT_S = 10.0

PANIC_RE = re.compile(r"panicked|RUST_BACKTRACE|stack backtrace|fatal runtime error")

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
# Produce versions the fuzzer builds by hand; zstd needs v7.
PRODUCE_VERSIONS = (3, 5, 7, 8)
BATCH_HEADER_BYTES = 61

INTERESTING16 = (0, 1, -1, 0x7FFF, -0x8000, 0x100, 0xFF)
INTERESTING32 = (0, 1, -1, 0x7FFFFFFF, -0x80000000, 0x10000, 0xFFFF, 1 << 24)
HUGE_VARINTS = (b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\xff\x07", b"\xfe\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x10")


class FuzzFailure(AssertionError):
    pass


# -------------------------------------------------------------------- seeds --
def load_seeds(path=SEEDS_FILE):
    """-> {(api_key, version): frame bytes (size prefix included)}"""
    seeds = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        api, version, hexframe = line.split()
        seeds[(int(api), int(version))] = bytes.fromhex(hexframe)
    return seeds


# ---------------------------------------------------------------- mutations --
def mutate_bytes(rng, data, start=0, ops=None):
    """Applies 1-4 random byte-level mutations to data[start:] and returns
    (new bytes, list of op names). `data[:start]` is never touched."""
    buf = bytearray(data)
    names = []
    for _ in range(rng.randint(1, 4) if ops is None else ops):
        end = len(buf)
        if end <= start:
            buf += bytes([rng.randrange(256)])
            names.append("append")
            continue
        pos = rng.randrange(start, end)
        op = rng.choice(("flip", "byte", "int16", "int32", "varint", "insert", "delete",
                         "duplicate", "truncate", "zero"))
        if op == "flip":
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == "byte":
            buf[pos] = rng.randrange(256)
        elif op == "int16":
            buf[pos:pos + 2] = struct.pack(">h", rng.choice(INTERESTING16))
        elif op == "int32":
            buf[pos:pos + 4] = struct.pack(">i", rng.choice(INTERESTING32))
        elif op == "varint":
            v = rng.choice(HUGE_VARINTS)
            if rng.random() < 0.5:
                buf[pos:pos + len(v)] = v
            else:
                buf[pos:pos] = v
        elif op == "insert":
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == "delete":
            del buf[pos:pos + rng.randint(1, 16)]
        elif op == "duplicate":
            n = rng.randint(1, 32)
            buf[pos:pos] = buf[pos:pos + n]
        elif op == "truncate":
            del buf[pos:]
        elif op == "zero":
            buf[pos:pos + rng.randint(1, 8)] = bytes(rng.randint(1, 8))
        names.append(op)
    return bytes(buf), names


def mutate_frame(rng, frame, versions):
    """A mutated copy of `frame` (size prefix included) and a description.
    Mostly the body; sometimes the header's api key or version; sometimes a
    size prefix that does not match the bytes sent."""
    body = frame[4:]
    kind = rng.random()
    if kind < 0.08:
        # Another version of the same api, supported or not: the body no
        # longer matches the schema the header names.
        buf = bytearray(body)
        buf[2:4] = struct.pack(">h", rng.choice(versions + [-1, 0x7FFF, rng.randrange(0, 20)]))
        body, names = bytes(buf), ["version"]
    elif kind < 0.12:
        buf = bytearray(body)
        buf[0:2] = struct.pack(">h", rng.choice((rng.randrange(0, 80), -1, 0x7FFF, 1000)))
        body, names = bytes(buf), ["api_key"]
    else:
        # Leave the fixed header (api key, version, correlation id) alone
        # most of the time, so that the mutation reaches the body's decoder.
        start = 8 if rng.random() < 0.9 else 0
        body, names = mutate_bytes(rng, body, start)
    size = len(body)
    if rng.random() < 0.04:
        size = rng.choice((size + rng.randint(1, 64), max(0, size - rng.randint(1, 8)), 0x7FFFFFFF,
                           -1, 100 << 20, (100 << 20) + 1))
        names.append("size_prefix")
    return struct.pack(">i", size) + body, names


# ------------------------------------------------------------------ batches --
def build_batch(rng, codec):
    """A valid magic-2 record batch with 1-10 records of random keys, values
    and headers, and its record count."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    count = rng.randint(1, 10)
    base_ts = 1_700_000_000_000 + rng.randrange(1 << 20)
    for i in range(count):
        key = None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 32))
        value = None if rng.random() < 0.1 else rng.randbytes(rng.randint(0, 300))
        headers = [("h%d" % j, rng.randbytes(rng.randint(0, 8))) for j in range(rng.randint(0, 2))]
        builder.append(i, timestamp=base_ts + i, key=key, value=value, headers=headers)
    return bytes(builder.build()), count


def compress(codec, data):
    from kafka import codec as kcodec

    return {1: kcodec.gzip_encode, 2: kcodec.snappy_encode, 3: kcodec.lz4_encode,
            4: kcodec.zstd_encode}[codec](data)


def fix_batch(batch, fix_length=True, fix_crc=True):
    """Rewrites batchLength and the CRC32C (over attributes..end) so that a
    mutation inside the records gets past the header checks."""
    from kafka.record.util import calc_crc32c

    buf = bytearray(batch)
    if len(buf) < BATCH_HEADER_BYTES:
        return bytes(buf)
    if fix_length:
        buf[8:12] = struct.pack(">i", len(buf) - 12)
    if fix_crc:
        buf[17:21] = struct.pack(">I", calc_crc32c(bytes(buf[21:])))
    return bytes(buf)


def mutated_batch(rng):
    """-> (batch bytes, codec, declared record count, description). About one
    batch in eight is left valid, and must be accepted."""
    codec = rng.choice(list(CODECS))
    if rng.random() < 0.12:
        batch, count = build_batch(rng, codec)
        return batch, codec, count, ["valid"]
    if codec != 0 and rng.random() < 0.4:
        # Mutate the records before compressing them: the payload is a
        # valid stream of the codec, and what it holds is not valid records.
        plain, count = build_batch(rng, 0)
        records, names = mutate_bytes(rng, plain[BATCH_HEADER_BYTES:])
        header = bytearray(plain[:BATCH_HEADER_BYTES])
        header[21:23] = struct.pack(">h", codec)
        batch = fix_batch(bytes(header) + compress(codec, records))
        return batch, codec, count, ["inner"] + names
    batch, count = build_batch(rng, codec)
    buf = bytearray(batch)
    names = []
    roll = rng.random()
    if roll < 0.15:
        # Header fields the CRC covers: record count, last offset delta,
        # attributes (codec, transactional and control bits).
        field = rng.choice(("count", "last_delta", "attributes"))
        at = {"count": 57, "last_delta": 23, "attributes": 21}[field]
        if field == "attributes":
            buf[at:at + 2] = struct.pack(">h", rng.choice((codec ^ (1 << rng.randrange(7)), rng.randrange(8), 0x7FFF)))
        else:
            buf[at:at + 4] = struct.pack(">i", rng.choice((count + 1, count - 1, 0, -1, 0x7FFFFFFF)))
        names.append(field)
    if roll > 0.05:
        # The records section: for a compressed batch, the compressed bytes.
        mutated, more = mutate_bytes(rng, bytes(buf), BATCH_HEADER_BYTES)
        buf = bytearray(mutated)
        names += more
    fix_length = rng.random() < 0.95
    fix_crc = rng.random() < 0.95
    if not fix_length:
        names.append("stale_length")
    if not fix_crc:
        names.append("stale_crc")
    return fix_batch(bytes(buf), fix_length, fix_crc), codec, count, names


def _varint(buf, pos, quirks, bits=32):
    """A zigzag varint (bits=32) or varlong (bits=64) as Kafka's
    ByteUtils reads it, at most 5 (10) bytes. Java drops bits past the
    32nd (64th); the broker refuses them (librdkafka stalls on them), so
    here they fail. -> (value, next position)."""
    value = 0
    for i in range(bits // 7 + 1):
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            if value >> bits:
                raise ValueError("varint with bits past %d" % bits)
            return (value >> 1) ^ -(value & 1), pos
    raise ValueError("varint too long")


def _records_section(batch):
    from kafka import codec as kcodec

    codec = struct.unpack(">h", batch[21:23])[0] & 0x7
    payload = batch[BATCH_HEADER_BYTES:]
    if codec == 0:
        return payload
    return {1: kcodec.gzip_decode, 2: kcodec.snappy_decode, 3: kcodec.lz4_decode,
            4: kcodec.zstd_decode}[codec](payload)


def walk_batch(batch, count):
    """Walks a batch's records exactly as Kafka's DefaultRecord.readFrom
    does (attributes one byte, varint lengths, -1 for null) and checks that
    each ends where its length says and the count is right; raises
    ValueError otherwise. Returns what it met that Kafka reads but other
    decoders may not (a set of descriptions)."""
    from kafka.record.util import calc_crc32c

    if struct.unpack(">I", batch[17:21])[0] != calc_crc32c(batch[21:]):
        raise ValueError("CRC")
    records = _records_section(batch)
    quirks = set()
    pos = 0
    for i in range(count):
        length, pos = _varint(records, pos, quirks)
        end = pos + length
        if records[pos] >= 0x80:
            quirks.add("record attributes byte >= 0x80 (unused bits)")
        pos += 1
        _, pos = _varint(records, pos, quirks, bits=64)  # timestamp delta
        offset_delta, pos = _varint(records, pos, quirks)
        if offset_delta != i:
            raise ValueError("record %d has offset delta %d" % (i, offset_delta))
        for _ in range(2):  # key, value
            n, pos = _varint(records, pos, quirks)
            pos += max(n, 0)
        headers, pos = _varint(records, pos, quirks)
        if headers < 0:
            raise ValueError("negative header count")
        for _ in range(headers):
            n, pos = _varint(records, pos, quirks)
            if n < 0:
                raise ValueError("null header key")
            try:
                bytes(records[pos:pos + n]).decode("utf-8")
            except UnicodeDecodeError:
                quirks.add("header key not UTF-8")
            pos += n
            n, pos = _varint(records, pos, quirks)
            pos += max(n, 0)
        if pos != end:
            raise ValueError("record %d ends at %d, its length says %d" % (i, pos, end))
    if pos != len(records):
        raise ValueError("%d bytes after the last record" % (len(records) - pos))
    return quirks


def produce_request(version, correlation_id, topic, partition, batch, acks=-1, timeout_ms=10000):
    body = (kproto.string(None) + kproto.i16(acks) + kproto.i32(timeout_ms)
            + kproto.array([kproto.string(topic) + kproto.array([kproto.i32(partition) + kproto.kbytes(batch)])]))
    return kproto.frame(kproto.request_header_v1(kproto.API_PRODUCE, version, correlation_id) + body)


def decode_produce(version, body):
    """A Produce v3-v8 response -> [(partition, error_code, base_offset)]."""
    out = []

    def part(r):
        p, err, base = r.i32(), r.i16(), r.i64()
        r.i64()  # log_append_time_ms
        if version >= 5:
            r.i64()  # log_start_offset
        if version >= 8:
            r.array(lambda q: (q.i32(), q.string()))
            r.string()
        out.append((p, err, base))

    body.array(lambda r: (r.string(), r.array(part)))
    return out


# ------------------------------------------------------------------ sockets --
def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Closing with a reset leaves no TIME_WAIT behind: an hour of short
    # connections would otherwise run out of local ports.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return s


def read_answer(sock, timeout):
    """-> ("answer", payload) | ("closed", None) | ("silent", None)"""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    need = 4
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "silent", None
        sock.settimeout(left)
        try:
            chunk = sock.recv(max(need - len(buf), 4096))
        except socket.timeout:
            return "silent", None
        except OSError:
            return "closed", None
        if not chunk:
            return "closed", None
        buf += chunk
        if len(buf) >= 4:
            size = struct.unpack(">i", buf[:4])[0]
            need = 4 + size
            if len(buf) >= need:
                return "answer", bytes(buf[4:need])


# ------------------------------------------------------------------- broker --
class BrokerProcess:
    """`corelog serve` on its own data dir and port, started with the same
    command line as the test fixtures use."""

    def __init__(self, binary, workdir, cores=None):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = brokerproc.free_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.log_path = self.workdir / "broker.log"
        self.cores = cores
        self.proc = None

    def start(self):
        cmd = [self.binary, "serve", "--data-dir", self.data_dir, "--listen", self.bootstrap,
               "--advertised-listener", self.bootstrap]
        if self.cores:
            cmd += ["--cores", str(self.cores)]
        self.proc, _ = brokerproc.start_broker(cmd, self.workdir / "ready.json", log_path=self.log_path,
                                               cwd=str(self.workdir))

    def kill9(self):
        if self.proc is not None:
            brokerproc.stop_broker(self.proc, kill=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self):
        try:
            for line in Path("/proc/%d/status" % self.proc.pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def cpu_seconds(self):
        """User plus system CPU time the broker process has used."""
        try:
            fields = Path("/proc/%d/stat" % self.proc.pid).read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# ------------------------------------------------------------ real clients --
def admin_client(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def ensure_topics(admin, topics, timeout=10.0):
    """Creates the topics that do not exist; errors (already exists, a
    concurrent fuzzed delete) are ignored and show in the next check."""
    from confluent_kafka.admin import NewTopic

    fs = admin.create_topics([NewTopic(name, num_partitions=n, replication_factor=1)
                              for name, n in topics.items()],
                             operation_timeout=timeout, request_timeout=timeout)
    for f in fs.values():
        try:
            f.result(timeout=timeout)
        except Exception:
            pass


def produce_canary(bootstrap):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": True, "message.timeout.ms": 30000})
    errors = []
    values = {}
    for i in range(CANARY_MESSAGES):
        partition = i % 2
        value = b"canary-%06d" % i
        values.setdefault(partition, []).append(value)
        p.produce(CANARY_TOPIC, value=value, key=b"%d" % i, partition=partition,
                  on_delivery=lambda err, msg: err and errors.append(err))
    left = p.flush(30)
    if left or errors:
        raise FuzzFailure("canary produce failed: %d left, errors %r" % (left, errors[:3]))
    return values


def read_all_confluent(bootstrap, topic, partitions, timeout=60.0):
    """Every message of every partition, low to high watermark, with
    confluent-kafka -> {partition: [value]}; a consume error fails."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "netfuzz-check",
                  "enable.auto.commit": False, "enable.partition.eof": False,
                  "check.crcs": True})
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
        c.assign([TopicPartition(topic, p, marks[p][0]) for p in partitions])
        out = {p: [] for p in partitions}
        need = sum(hi - lo for lo, hi in marks.values())
        got = 0
        deadline = time.monotonic() + timeout
        while got < need and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    raise FuzzFailure("confluent-kafka consume error on %s: %s" % (topic, m.error()))
                out[m.partition()].append(m.value())
                got += 1
        if got < need:
            raise FuzzFailure("confluent-kafka read %d of %d messages of %s in %.0f s"
                              % (got, need, topic, timeout))
        return out
    finally:
        c.close()


def read_all_kafka_python(bootstrap, topic, partitions, timeout=60.0):
    """The same read with kafka-python, whose record decoder is a second,
    independent one (it checks CRCs and decodes header keys as UTF-8)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      check_crcs=True, consumer_timeout_ms=int(timeout * 1000))
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for tp, records in c.poll(timeout_ms=500).items():
                out[tp.partition].extend(r.value for r in records)
        short = [tp.partition for tp in tps if c.position(tp) < ends[tp]]
        if short:
            raise FuzzFailure("kafka-python did not reach the end of %s partitions %r" % (topic, short))
        return out
    except FuzzFailure:
        raise
    except Exception as e:
        raise FuzzFailure("kafka-python could not read %s: %r" % (topic, e)) from e
    finally:
        c.close()


# -------------------------------------------------------------------- fuzzer --
class Fuzzer:
    def __init__(self, broker, seed, log=print, produce_topic=PRODUCE_TOPIC, leader=True, stop=None):
        self.broker = broker
        self.seed = seed
        # Each worker produces to a topic of its own, so that what it
        # accepted can be counted back without the others' batches.
        self.produce_topic = produce_topic
        # The leader (worker 0) writes the canary and keeps the seed topics
        # there; the others only fuzz.
        self.leader = leader
        # Set by any worker that fails, so that the others stop too.
        self.stop = stop if stop is not None else threading.Event()
        self.rng = random.Random(seed)
        self.log = log
        self.seeds = load_seeds()
        self.pairs = []
        self.frames = collections.defaultdict(collections.Counter)  # api -> outcome counts
        self.produce = collections.Counter()  # (codec, outcome)
        self.produce_errors = collections.Counter()  # error code -> count
        self.accepted = []  # (partition, base_offset, count, codec, batch)
        self.findings = []
        self.cases = 0
        self.conn = None
        self.correlation = 0
        self.rss_max = 0
        self.liveness_max_s = 0.0
        self.liveness_checks = 0
        self.last_liveness = 0.0
        self.last_topics = 0.0
        self.admin = None

    # ---------------------------------------------------------- set-up --
    def setup(self):
        err, versions = kproto.api_versions(self.broker.port)
        if err != 0:
            raise FuzzFailure("ApiVersions error %d" % err)
        missing = []
        for api, (lo, hi) in sorted(versions.items()):
            for v in range(lo, hi + 1):
                if (api, v) in self.seeds:
                    self.pairs.append((api, v))
                else:
                    missing.append((api, v))
        if missing:
            raise FuzzFailure("advertised but no seed frame (regenerate fuzz_seeds.txt): %r" % missing)
        self.versions = {api: list(range(lo, hi + 1)) for api, (lo, hi) in versions.items()}
        self.admin = admin_client(self.broker.bootstrap)
        if self.leader:
            ensure_topics(self.admin, dict(SEED_TOPICS, **{self.produce_topic: PRODUCE_PARTITIONS,
                                                         CANARY_TOPIC: 2}))
            self.canary = produce_canary(self.broker.bootstrap)
        else:
            ensure_topics(self.admin, {self.produce_topic: PRODUCE_PARTITIONS})

    # ----------------------------------------------------------- checks --
    def check_alive(self, force=False):
        now = time.monotonic()
        if not force and now - self.last_liveness < LIVENESS_EVERY_S:
            return
        self.last_liveness = now
        if not self.broker.alive():
            code = self.broker.proc.poll()
            how = "killed by signal %d" % -code if code < 0 else "exited with code %d" % code
            raise FuzzFailure("broker %s after %d cases" % (how, self.cases))
        t0 = time.monotonic()
        try:
            err, _ = kproto.api_versions(self.broker.port, timeout=LIVENESS_TIMEOUT_S)
        except Exception as e:
            raise FuzzFailure("liveness: ApiVersions on a fresh connection failed after %.1f s: %r"
                              % (time.monotonic() - t0, e)) from e
        took = time.monotonic() - t0
        self.liveness_checks += 1
        self.liveness_max_s = max(self.liveness_max_s, took)
        if err != 0:
            raise FuzzFailure("liveness: ApiVersions answered error %d" % err)
        rss = self.broker.rss_bytes()
        self.rss_max = max(self.rss_max, rss)
        if rss > RSS_MAX_BYTES:
            raise FuzzFailure("broker RSS %d MiB passed the %d MiB bound" % (rss >> 20, RSS_MAX_BYTES >> 20))

    def check_log(self):
        m = PANIC_RE.search(self.broker.log_text())
        if m:
            text = self.broker.log_text()
            at = m.start()
            raise FuzzFailure("panic in the broker log:\n%s" % text[max(0, at - 500):at + 1500])

    # ------------------------------------------------------------ cases --
    def next_correlation(self):
        self.correlation = (self.correlation + 1) & 0x7FFFFFFF
        return self.correlation

    def send(self, frame, wait):
        """Sends one frame on the current connection (a new one if there is
        none) -> ("answer", payload) | ("closed", None) | ("silent", None)."""
        if self.conn is None:
            try:
                self.conn = connect(self.broker.port)
            except OSError as e:
                # Refused or timed out: say whether the broker is gone (and
                # how it exited) rather than only that a socket failed.
                self.check_alive(force=True)
                raise FuzzFailure("connect to the live broker failed: %r" % e) from e
        try:
            self.conn.sendall(frame)
        except OSError:
            self.drop_conn()
            return "closed", None
        outcome, payload = read_answer(self.conn, wait)
        if outcome != "answer":
            self.drop_conn()
        return outcome, payload

    def drop_conn(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def frame_case(self):
        rng = self.rng
        api, version = rng.choice(self.pairs)
        seed = bytearray(self.seeds[(api, version)])
        corr = self.next_correlation()
        seed[8:12] = struct.pack(">i", corr)
        counts = self.frames["%d" % api]
        if rng.random() < 0.05:
            # The seed itself: a valid request of an advertised version must
            # be answered, with its correlation id.
            outcome, payload = self.send(bytes(seed), VALID_ANSWER_WAIT_S)
            counts["valid_" + outcome] += 1
            if outcome != "answer" or struct.unpack(">i", payload[:4])[0] != corr:
                self.finding("valid request api %d v%d not answered: %s" % (api, version, outcome))
            return
        frame, names = mutate_frame(rng, bytes(seed), self.versions[api])
        declared = struct.unpack(">i", frame[:4])[0]
        if declared != len(frame) - 4:
            # A lying size prefix: the broker either refuses it at once or
            # waits for bytes that never come. Either way this connection is
            # done after a short look.
            outcome, _ = self.send(frame, 0.2)
            self.drop_conn()
        else:
            outcome, _ = self.send(frame, ANSWER_WAIT_S)
        counts["sent"] += 1
        counts[outcome] += 1

    def produce_case(self):
        rng = self.rng
        batch, codec, count, names = mutated_batch(rng)
        version = rng.choice([v for v in PRODUCE_VERSIONS if codec != 4 or v >= 7])
        partition = rng.randrange(PRODUCE_PARTITIONS)
        corr = self.next_correlation()
        frame = produce_request(version, corr, self.produce_topic, partition, batch)
        outcome, payload = self.send(frame, VALID_ANSWER_WAIT_S)
        key = CODECS[codec]
        if outcome != "answer":
            self.produce[(key, outcome)] += 1
            self.finding("produce v%d (%s, %s) got no answer: %s" % (version, key, names, outcome))
            return
        corr_back, body = kproto.split_response(payload)
        parts = decode_produce(version, body)
        if corr_back != corr or len(parts) != 1:
            self.finding("produce v%d: odd response %r" % (version, payload[:64]))
            return
        _, err, base = parts[0]
        self.produce_errors[err] += 1
        if err == 0:
            self.produce[(key, "accepted")] += 1
            self.accepted.append((partition, base, count, codec, batch))
        else:
            self.produce[(key, "refused")] += 1
            if names == ["valid"]:
                self.finding("valid %s batch refused with error %d (produce v%d)" % (key, err, version))

    def finding(self, text):
        self.findings.append(text)
        self.log("FINDING: %s" % text)

    def run(self, seconds):
        deadline = time.monotonic() + seconds
        last_report = time.monotonic()
        while time.monotonic() < deadline and not self.stop.is_set():
            self.check_alive()
            now = time.monotonic()
            if self.leader and now - self.last_topics > 5.0:
                # Fuzzed DeleteTopics requests remove the seed topics; keep
                # them there so the other apis meet real topics.
                self.last_topics = now
                ensure_topics(self.admin, SEED_TOPICS, timeout=5.0)
            if self.rng.random() < 0.3:
                self.produce_case()
            else:
                self.frame_case()
            self.cases += 1
            if now - last_report > 60:
                last_report = now
                self.log("netfuzz: %d cases, %d accepted batches, rss %d MiB"
                         % (self.cases, len(self.accepted), self.rss_max >> 20))
                self.check_log()
        self.drop_conn()
        self.check_alive(force=True)
        self.check_log()

    # ----------------------------------------------------------- ending --
    def classify_accepted(self):
        """Checks every accepted batch with `walk_batch`, the record format
        as Kafka reads it, and then with kafka-python's record decoder.

        A batch the reference walk refuses is a failure: the broker took in
        something no consumer should have to read. kafka-python is stricter
        than Kafka in two places the broker trusts by design
        (ARCHITECTURE.md, "What the broker validates, and what it
        trusts"): it decodes record header keys as UTF-8 (Java replaces bad
        bytes), and it reads a record's attributes byte as a varint (Kafka
        reads one byte, whose bits are unused). Such batches are counted,
        and
        kafka-python's consumer is not asked to read the partitions that
        hold one; confluent-kafka reads everything."""
        from kafka.record.default_records import DefaultRecordBatch

        self.kafka_python_unreadable = collections.Counter()
        self.kafka_python_skip = set()
        for partition, base, count, codec, batch in self.accepted:
            try:
                quirks = walk_batch(batch, count)
            except Exception as e:
                self.dump_accepted()
                raise FuzzFailure("accepted %s batch at %s[%d] offset %d breaks the record format: %r"
                                  % (CODECS[codec], self.produce_topic, partition, base, e)) from e
            try:
                decoded = DefaultRecordBatch(batch)
                if sum(1 for _ in decoded) != count:
                    raise ValueError("record count")
            except Exception as e:
                if not quirks:
                    self.dump_accepted()
                    raise FuzzFailure("kafka-python cannot decode accepted %s batch at %s[%d] offset %d, "
                                      "which Kafka's format allows: %r"
                                      % (CODECS[codec], self.produce_topic, partition, base, e)) from e
                for q in quirks:
                    self.kafka_python_unreadable[q] += 1
                self.kafka_python_skip.add(partition)

    def check_accepted_readable(self):
        """Every accepted batch is read back, by both consumers, with its
        record count."""
        self.classify_accepted()
        partitions = list(range(PRODUCE_PARTITIONS))
        want = collections.Counter()
        for partition, _, count, _, _ in self.accepted:
            want[partition] += count
        readable = [p for p in partitions if p not in self.kafka_python_skip]
        for name, reader, parts in (("confluent-kafka", read_all_confluent, partitions),
                                    ("kafka-python", read_all_kafka_python, readable)):
            if not parts:
                continue
            try:
                got = reader(self.broker.bootstrap, self.produce_topic, parts)
            except FuzzFailure:
                self.dump_accepted()
                raise
            for p in parts:
                if len(got[p]) != want[p]:
                    self.dump_accepted()
                    raise FuzzFailure("%s read %d records from %s[%d]; accepted batches hold %d"
                                      % (name, len(got[p]), self.produce_topic, p, want[p]))

    def dump_accepted(self):
        path = self.broker.workdir / ("accepted-batches-%s.txt" % self.produce_topic)
        with open(path, "w") as f:
            for partition, base, count, codec, batch in self.accepted:
                f.write("%d %d %d %s %s\n" % (partition, base, count, CODECS[codec], batch.hex()))
        self.log("accepted batches written to %s" % path)

    def check_canary(self):
        got = read_all_confluent(self.broker.bootstrap, CANARY_TOPIC, [0, 1])
        for p, values in self.canary.items():
            if got[p] != values:
                raise FuzzFailure("canary partition %d: read %d values, wrote %d; first difference at %r"
                                  % (p, len(got[p]), len(values),
                                     next((i for i, (a, b) in enumerate(zip(got[p], values)) if a != b), None)))

    def absorb(self, other):
        """Adds another worker's counts and findings to this one's, for one
        summary of the whole session (accepted batches stay per worker)."""
        self.cases += other.cases
        self.seeds_run = getattr(self, "seeds_run", [self.seed]) + [other.seed]
        for api, c in other.frames.items():
            self.frames[api].update(c)
        self.produce.update(other.produce)
        self.produce_errors.update(other.produce_errors)
        self.findings += other.findings
        self.rss_max = max(self.rss_max, other.rss_max)
        self.liveness_checks += other.liveness_checks
        self.liveness_max_s = max(self.liveness_max_s, other.liveness_max_s)
        self.accepted_total = getattr(self, "accepted_total", len(self.accepted)) + len(other.accepted)
        self.accepted_records = (getattr(self, "accepted_records", sum(a[2] for a in self.accepted))
                                 + sum(a[2] for a in other.accepted))
        mine = getattr(self, "kafka_python_unreadable", collections.Counter())
        mine.update(getattr(other, "kafka_python_unreadable", {}))
        self.kafka_python_unreadable = mine

    def summary(self, seconds):
        seeds = getattr(self, "seeds_run", [self.seed])
        lines = ["netfuzz seed=%s seconds=%.0f cases=%d workers=%d broker_cpu_s=%.0f"
                 % (",".join(map(str, seeds)), seconds, self.cases, len(seeds),
                    getattr(self, "broker_cpu_s", 0.0)),
                 "mutated frames per api (versions: outcomes; valid_* are unmutated seeds):"]
        for api in sorted(self.frames, key=int):
            c = self.frames[api]
            versions = self.versions[int(api)]
            lines.append("  %3s %-24s v%d-%d: %s" % (api, API_NAMES.get(int(api), "?"), versions[0], versions[-1],
                                                  " ".join("%s=%d" % kv for kv in sorted(c.items()))))
        lines.append("produce batches (codec, outcome): %s"
                     % " ".join("%s/%s=%d" % (k[0], k[1], v) for k, v in sorted(self.produce.items())))
        lines.append("produce error codes: %s"
                     % " ".join("%d=%d" % kv for kv in sorted(self.produce_errors.items())))
        lines.append("accepted batches: %d (%d records); liveness checks %d, slowest %.3f s; max RSS %d MiB"
                     % (getattr(self, "accepted_total", len(self.accepted)),
                        getattr(self, "accepted_records", sum(a[2] for a in self.accepted)),
                        self.liveness_checks,
                        self.liveness_max_s, self.rss_max >> 20))
        lines.append("accepted batches kafka-python cannot read (trusted by design, as Kafka): %s"
                     % dict(getattr(self, "kafka_python_unreadable", {})))
        lines.append("findings: %d" % len(self.findings))
        lines += ["  " + f for f in self.findings[:20]]
        return "\n".join(lines)


def run(binary, workdir, seconds, seed, cores=None, log=print, workers=1):
    """Runs the whole fuzz session; returns the Fuzzer (its .findings and
    .summary(), with every worker's counts added). Raises FuzzFailure on a
    crash, hang, memory bound, panic line, unreadable accepted batch or lost
    canary data.

    With `workers` > 1, that many fuzzers run at once against the one
    broker, in threads, worker i with seed `seed + i` and a produce topic of
    its own. One fuzzer alone mostly waits on the broker's answers (a lying
    size prefix costs it a 0.2 s look), so workers are how a run keeps the
    broker busy. Each worker's case sequence is still a function of its
    seed; the interleaving of the workers is not."""
    broker = BrokerProcess(binary, workdir, cores)
    log("netfuzz: seed %d, %d worker(s), %d s, broker %s, log %s"
        % (seed, workers, seconds, broker.bootstrap, broker.log_path))
    broker.start()
    try:
        stop = threading.Event()
        fuzzers = [Fuzzer(broker, seed + i, log,
                          produce_topic=PRODUCE_TOPIC if i == 0 else "%s-%d" % (PRODUCE_TOPIC, i),
                          leader=i == 0, stop=stop)
                   for i in range(workers)]
        for f in fuzzers:
            f.setup()
        failures = []

        def work(f):
            try:
                f.run(seconds)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                failures.append(e)
                stop.set()

        t0 = time.monotonic()
        threads = [threading.Thread(target=work, args=(f,), daemon=True) for f in fuzzers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fuzzed_s = time.monotonic() - t0
        if failures:
            raise failures[0]
        for f in fuzzers:
            f.check_accepted_readable()
        broker_cpu_s = broker.cpu_seconds()
        broker.kill9()
        broker.start()
        fuzzers[0].check_canary()
        # Accepted with acks=all: they must have survived the kill too.
        for f in fuzzers:
            f.check_accepted_readable()
        fuzzers[0].check_log()
        lead = fuzzers[0]
        for f in fuzzers[1:]:
            lead.absorb(f)
        lead.broker_cpu_s = broker_cpu_s
        log(lead.summary(fuzzed_s))
        return lead
    finally:
        broker.kill9()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None, help="default: random, printed")
    ap.add_argument("--bin", default=None, help="corelog binary (default: $CORELOG_BIN or target/)")
    ap.add_argument("--workdir", default=None, help="broker data and log (default: a temp dir)")
    ap.add_argument("--cores", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1,
                    help="fuzzers at once against the one broker, seeds SEED..SEED+N-1")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    workdir = args.workdir or tempfile.mkdtemp(prefix="netfuzz-")
    os.makedirs(workdir, exist_ok=True)
    binary = args.bin or brokerproc.corelog_bin()
    try:
        fuzzer = run(binary, workdir, args.seconds, seed, args.cores, workers=args.workers)
    except FuzzFailure as e:
        print("netfuzz FAILED (seed %d, workdir %s): %s" % (seed, workdir, e), flush=True)
        return 1
    return 1 if fuzzer.findings else 0


if __name__ == "__main__":
    sys.exit(main())
