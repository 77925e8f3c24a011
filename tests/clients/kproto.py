"""Hand-written Kafka wire-protocol encoders/decoders for the raw-socket tests.

Only what the tests need, written from the Kafka protocol guide and the
message schemas (clients/src/main/resources/common/message/*.json):

  frame          := int32 size, then `size` bytes
  request hdr v1 := int16 api_key, int16 api_version, int32 correlation_id,
                    nullable_string client_id
  request hdr v2 := hdr v1 + tagged fields (uvarint count, here 0)
  response hdr v0:= int32 correlation_id

  ApiVersions v0 request  : (empty body)
  ApiVersions v0 response : int16 error_code,
                            [int16 api_key, int16 min_version, int16 max_version]
  Metadata v1 request     : [string topic] (null array = all topics)
  Metadata v1 response    : [int32 node_id, string host, int32 port, nullable_string rack]
                            int32 controller_id
                            [int16 error_code, string name, bool is_internal,
                              [int16 error_code, int32 partition_index, int32 leader_id,
                               [int32 replica], [int32 isr]]]
  Produce v3 request      : nullable_string transactional_id, int16 acks, int32 timeout_ms,
                            [string topic, [int32 partition, bytes records]]
  Produce v3 response     : [string topic, [int32 partition, int16 error_code,
                              int64 base_offset, int64 log_append_time_ms]],
                            int32 throttle_time_ms
  Fetch v4 request        : int32 replica_id, int32 max_wait_ms, int32 min_bytes,
                            int32 max_bytes, int8 isolation_level,
                            [string topic, [int32 partition, int64 fetch_offset,
                                            int32 partition_max_bytes]]
  JoinGroup v0 request    : string group_id, int32 session_timeout_ms, string member_id,
                            string protocol_type, [string name, bytes metadata]
                            (v0 has no rebalance timeout: the session timeout serves)
  JoinGroup v0 response   : int16 error_code, int32 generation_id, string protocol_name,
                            string leader, string member_id,
                            [string member_id, bytes metadata]
  Fetch v4 response       : int32 throttle_time_ms,
                            [string topic, [int32 partition, int16 error_code,
                              int64 high_watermark, int64 last_stable_offset,
                              [int64 producer_id, int64 first_offset], bytes records]]
"""
import socket
import struct
import time

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_JOIN_GROUP = 11
API_VERSIONS = 18

ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_UNSUPPORTED_VERSION = 35

CLIENT_ID = b"corelog-raw-test"


# --------------------------------------------------------------- primitives --
def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    if isinstance(s, str):
        s = s.encode()
    return i16(len(s)) + s


def kbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def compact_string(s):
    if isinstance(s, str):
        s = s.encode()
    return uvarint(len(s) + 1) + s


def array(items):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(items)


class Reader:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("short response: need %d bytes at %d, have %d" % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(b)

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        return self._take(n).decode()

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        if n > len(self.data):
            raise ValueError("absurd array length %d" % n)
        return [fn(self) for _ in range(n)]

    def remaining(self):
        return len(self.data) - self.pos


# ------------------------------------------------------------------- frames --
def frame(payload):
    return i32(len(payload)) + payload


def request_header_v1(api_key, api_version, correlation_id, client_id=CLIENT_ID):
    return i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)


def request_header_v2(api_key, api_version, correlation_id, client_id=CLIENT_ID):
    return request_header_v1(api_key, api_version, correlation_id, client_id) + uvarint(0)


def api_versions_v0_request(correlation_id):
    return frame(request_header_v1(API_VERSIONS, 0, correlation_id))


def api_versions_request_at(version, correlation_id):
    """An ApiVersions request at any version >= 3 (flexible: header v2, compact body)."""
    body = compact_string("corelog-raw-test") + compact_string("0.0.1") + uvarint(0)
    return frame(request_header_v2(API_VERSIONS, version, correlation_id) + body)


def metadata_v1_request(correlation_id, topics=None):
    body = array(None if topics is None else [string(t) for t in topics])
    return frame(request_header_v1(API_METADATA, 1, correlation_id) + body)


def produce_v3_request(correlation_id, topic, partition, records, acks=-1, timeout_ms=5000):
    body = (string(None) + i16(acks) + i32(timeout_ms)
            + array([string(topic) + array([i32(partition) + kbytes(records)])]))
    return frame(request_header_v1(API_PRODUCE, 3, correlation_id) + body)


def fetch_v4_request(correlation_id, topic, partition, offset, max_wait_ms=500, min_bytes=1,
                     max_bytes=1 << 20, partition_max_bytes=1 << 20):
    body = (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + array([string(topic) + array([i32(partition) + i64(offset) + i32(partition_max_bytes)])]))
    return frame(request_header_v1(API_FETCH, 4, correlation_id) + body)


def join_group_v0_request(correlation_id, group_id, session_timeout_ms=10000, member_id="",
                          protocol_type="consumer", protocols=(("range", b""),)):
    body = (string(group_id) + i32(session_timeout_ms) + string(member_id) + string(protocol_type)
            + array([string(name) + kbytes(meta) for name, meta in protocols]))
    return frame(request_header_v1(API_JOIN_GROUP, 0, correlation_id) + body)


def record_batch(values, key=None, timestamp_ms=None):
    """A magic-2 record batch (uncompressed), built with kafka-python's builder."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=ts, key=key, value=v, headers=[])
    return bytes(b.build())


# ---------------------------------------------------------------- decoders --
def split_response(payload):
    """-> (correlation_id, Reader over the body) for a response with header v0."""
    r = Reader(payload)
    return r.i32(), r


def decode_api_versions_v0(body):
    """-> (error_code, {api_key: (min, max)}) ; trailing bytes are ignored."""
    err = body.i16()
    entries = body.array(lambda r: (r.i16(), r.i16(), r.i16()))
    return err, {k: (lo, hi) for k, lo, hi in (entries or [])}


def decode_metadata_v1(body):
    brokers = body.array(lambda r: {"node_id": r.i32(), "host": r.string(), "port": r.i32(), "rack": r.string()})
    controller_id = body.i32()

    def partition(r):
        return {"error_code": r.i16(), "partition": r.i32(), "leader": r.i32(),
                "replicas": r.array(lambda q: q.i32()), "isr": r.array(lambda q: q.i32())}

    def topic(r):
        return {"error_code": r.i16(), "name": r.string(), "is_internal": r.i8() != 0,
                "partitions": r.array(partition)}

    topics = body.array(topic)
    return {"brokers": brokers, "controller_id": controller_id, "topics": topics}


def decode_join_group_v0(body):
    return {"error_code": body.i16(), "generation_id": body.i32(), "protocol_name": body.string(),
            "leader": body.string(), "member_id": body.string(),
            "members": body.array(lambda r: (r.string(), r._take(max(r.i32(), 0))))}


def decode_produce_v3(body):
    def part(r):
        return {"partition": r.i32(), "error_code": r.i16(), "base_offset": r.i64(),
                "log_append_time_ms": r.i64()}

    topics = body.array(lambda r: (r.string(), r.array(part)))
    return {name: parts for name, parts in topics}


def decode_fetch_v4(body):
    """-> {topic: [{partition, error_code, high_watermark, records_bytes}]}"""
    body.i32()  # throttle_time_ms

    def part(r):
        p = {"partition": r.i32(), "error_code": r.i16(), "high_watermark": r.i64()}
        r.i64()  # last_stable_offset
        r.array(lambda q: (q.i64(), q.i64()))
        n = r.i32()
        p["records_bytes"] = max(n, 0)
        if n > 0:
            r._take(n)
        return p

    topics = body.array(lambda r: (r.string(), r.array(part)))
    return {name: parts for name, parts in topics}


# ------------------------------------------------------------------ sockets --
def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_frame(sock, max_size=64 << 20):
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    if size < 4 or size > max_size:
        raise ValueError("bad response frame size %d" % size)
    return recv_exact(sock, size)


def roundtrip(sock, request):
    sock.sendall(request)
    return split_response(recv_frame(sock))


def api_versions(port, timeout=5.0):
    """One ApiVersions v0 round trip on a fresh connection -> (error, versions)."""
    with connect(port, timeout) as s:
        corr, body = roundtrip(s, api_versions_v0_request(7))
        if corr != 7:
            raise ValueError("correlation id %d, expected 7" % corr)
        return decode_api_versions_v0(body)


def wait_closed_or_response(sock, timeout=10.0):
    """Waits until the peer closes the connection or sends something.

    Returns "closed" or ("response", bytes). Raises TimeoutError if neither
    happens within `timeout` seconds (the broker kept a bad connection open
    and silent)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if data:
                return ("response", bytes(data))
            raise TimeoutError("broker neither closed the connection nor answered within %.0f s" % timeout)
        sock.settimeout(min(left, 0.5))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if data:
                return ("response", bytes(data))
            continue
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return "closed" if not data else ("response", bytes(data))
        if not chunk:
            return "closed" if not data else ("response", bytes(data))
        data += chunk
