"""Malformed input over raw sockets. After each: the bad connection is closed
or answered with an error, the broker process is alive, a normal client
still produces and consumes, and data produced before is intact."""
import random
import socket
import struct

import pytest

import kproto
from conftest import assert_healthy, create_topic, produce_all

BEFORE = [b"before-%d" % i for i in range(50)]


@pytest.fixture
def seeded(broker):
    topic = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, topic, [{"value": v} for v in BEFORE], acks="all")
    return broker, topic


def _after(b, topic):
    assert_healthy(b, topic, BEFORE)


def _assert_closed_or_error(sock, timeout=10.0):
    r = kproto.wait_closed_or_response(sock, timeout)
    if r == "closed":
        return r
    # an answer is fine only if it is an error response for our request
    data = r[1]
    assert len(data) >= 8, "short answer %r" % data[:32]
    return r


def test_frame_size_over_100_mib(seeded):
    b, topic = seeded
    with kproto.connect(b.port) as s:
        s.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"\x00\x12\x00\x00" + b"\x00" * 64)
        # no more data follows: the broker must refuse by size, not wait for 200 MiB
        assert kproto.wait_closed_or_response(s, 10) == "closed"
    _after(b, topic)


def test_negative_frame_size(seeded):
    b, topic = seeded
    with kproto.connect(b.port) as s:
        s.sendall(struct.pack(">i", -5) + b"\x00" * 16)
        assert kproto.wait_closed_or_response(s, 10) == "closed"
    _after(b, topic)


def test_truncated_frame_then_close(seeded):
    b, topic = seeded
    req = kproto.metadata_v1_request(1, None)
    with kproto.connect(b.port) as s:
        # a frame announcing more bytes than we send, then a hard close
        s.sendall(struct.pack(">i", 1000) + req[4:])
    with kproto.connect(b.port) as s:
        s.sendall(req[:6])  # cut inside the header
        s.shutdown(socket.SHUT_WR)
        assert kproto.wait_closed_or_response(s, 10) == "closed"
    with kproto.connect(b.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        s.sendall(struct.pack(">i", 64) + b"\x00\x03")
    _after(b, topic)


def test_random_garbage(seeded):
    b, topic = seeded
    rng = random.Random(0xC0FFEE)
    for i in range(5):
        junk = bytes(rng.getrandbits(8) for _ in range(4096))
        with kproto.connect(b.port) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)  # if it waits for a longer frame, EOF ends the wait
            except (BrokenPipeError, ConnectionResetError):
                continue  # already closed on us
            _assert_closed_or_error(s)
    # garbage that parses as a small frame of random bytes
    junk = bytes(rng.getrandbits(8) for _ in range(60))
    with kproto.connect(b.port) as s:
        s.sendall(struct.pack(">i", 60) + junk)
        _assert_closed_or_error(s)
    _after(b, topic)


def test_unknown_api_key(seeded):
    b, topic = seeded
    with kproto.connect(b.port) as s:
        s.sendall(kproto.frame(kproto.request_header_v1(9999, 0, 42) + b"\x00" * 8))
        r = _assert_closed_or_error(s)
        if r != "closed":
            (corr,) = struct.unpack(">i", r[1][4:8])
            assert corr == 42
    with kproto.connect(b.port) as s:  # a negative key, too
        s.sendall(kproto.frame(kproto.request_header_v1(-7, 0, 43)))
        _assert_closed_or_error(s)
    _after(b, topic)


def test_unsupported_api_versions_version_gets_kip511_v0_response(seeded):
    b, topic = seeded
    err, versions = kproto.api_versions(b.port)
    assert err == 0
    lo, hi = versions[kproto.API_VERSIONS]
    assert lo == 0 and hi >= 3, "ApiVersions range %r" % ((lo, hi),)
    with kproto.connect(b.port) as s:
        corr, body = kproto.roundtrip(s, kproto.api_versions_request_at(hi + 50, 77))
        assert corr == 77
        err, got = kproto.decode_api_versions_v0(body)
        assert err == kproto.ERR_UNSUPPORTED_VERSION
        assert got.get(kproto.API_VERSIONS) == (lo, hi), "KIP-511: must carry the broker's ApiVersions range, got %r" % got
        # the connection stays usable: the client retries at a version it supports
        corr, body = kproto.roundtrip(s, kproto.api_versions_v0_request(78))
        assert corr == 78 and kproto.decode_api_versions_v0(body)[0] == 0
    _after(b, topic)


def test_valid_header_garbage_body(seeded):
    b, topic = seeded
    # Metadata v1 whose topic array claims 2^31-1 entries
    with kproto.connect(b.port) as s:
        s.sendall(kproto.frame(kproto.request_header_v1(kproto.API_METADATA, 1, 5) + b"\x7f\xff\xff\xff" + b"\x00\x05ab"))
        _assert_closed_or_error(s)
    # Produce v3 with a string length beyond the frame and random bytes after it
    rng = random.Random(7)
    with kproto.connect(b.port) as s:
        body = b"\xff\xff" + struct.pack(">hi", -1, 5000) + b"\x00\x00\x00\x01\x7f\xff" + bytes(
            rng.getrandbits(8) for _ in range(200))
        s.sendall(kproto.frame(kproto.request_header_v1(kproto.API_PRODUCE, 3, 6) + body))
        _assert_closed_or_error(s)
    # Produce v3 to a real topic carrying a corrupt record batch (bad CRC)
    batch = bytearray(kproto.record_batch([b"corrupt"]))
    batch[-1] ^= 0xFF
    with kproto.connect(b.port) as s:
        s.sendall(kproto.produce_v3_request(8, topic, 0, bytes(batch)))
        r = kproto.wait_closed_or_response(s, 10)
        if r != "closed":
            corr, body = kproto.split_response(r[1][4:])
            assert corr == 8
            resp = kproto.decode_produce_v3(body)
            assert resp[topic][0]["error_code"] != 0, "corrupt batch accepted"
    _after(b, topic)
