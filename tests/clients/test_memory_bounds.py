"""What a shard's memory holds is what its bounds say, against the real broker.

The batch cache is bounded by the bytes of the batches it holds. A batch
arrives as a slice of the connection's read buffer; kept as it was, a
170-byte batch pinned the whole buffer it was read into (4 KiB or more),
and a broker receiving small produce requests grew by about 4.3 KiB of
resident memory per request, so a cache bounded to 256 MiB of batches could
hold gigabytes. The broker now copies small batches into an allocation of
their own when it caches them (storage's `cache.rs`).
"""
import pytest

import kproto
from conftest import assert_healthy, create_topic
from test_resilience import _rss_bytes

REQUESTS = 20_000
# Measured with one shard, debug build: 4,283 and 4,297 bytes of RSS per
# request before the copy, 446 and 436 after. The bound sits between them
# with room for the allocator's arenas on either side.
RSS_BYTES_PER_REQUEST_MAX = 1536


@pytest.mark.timeout(300)
def test_small_produce_requests_grow_the_broker_by_their_size_not_by_their_read_buffers(broker_factory):
    b = broker_factory(["--cores", "1"])
    topic = create_topic(b.bootstrap)
    batch = kproto.record_batch([b"x" * 100], key=b"k")
    sock = kproto.connect(b.port)
    try:
        # A few hundred first, so that the connection's and the shard's
        # one-time allocations are in the starting figure.
        for i in range(500):
            corr, body = kproto.roundtrip(sock, kproto.produce_v3_request(i, topic, 0, batch, acks=1))
            assert kproto.decode_produce_v3(body)[topic][0]["error_code"] == 0
        rss0 = _rss_bytes(b.proc.pid)
        # One request at a time, each answered before the next is sent, so
        # that every batch is read into a buffer of its own, as it is from
        # a client producing a record at a time.
        for i in range(REQUESTS):
            corr, body = kproto.roundtrip(sock, kproto.produce_v3_request(i, topic, 0, batch, acks=1))
            (p,) = kproto.decode_produce_v3(body)[topic]
            assert p["error_code"] == 0, p
        grown = _rss_bytes(b.proc.pid) - rss0
    finally:
        sock.close()
    per_request = grown / REQUESTS
    assert per_request < RSS_BYTES_PER_REQUEST_MAX, (
        "RSS grew by %d MiB over %d produce requests of one %d-byte batch: %.0f bytes per request "
        "(bound %d): cached batches pin the buffers they were read into" % (
            grown >> 20, REQUESTS, len(batch), per_request, RSS_BYTES_PER_REQUEST_MAX))
    assert_healthy(b)
