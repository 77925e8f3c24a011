"""1,000 concurrent client connections, each doing ApiVersions v0 and
Metadata v1 (hand-encoded, see kproto.py), all open at the same time."""
import asyncio
import resource
import struct
import time

import pytest

import kproto
from conftest import NODE_ID, assert_healthy, create_topic

N_CONNECTIONS = 1000
TOTAL_TIMEOUT_S = 60


async def _read_frame(reader):
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    assert 4 <= size < (16 << 20), "bad frame size %d" % size
    return await reader.readexactly(size)


async def _client(port, i, all_open, opened):
    for attempt in range(5):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    try:
        opened.append(i)
        await all_open.wait()
        writer.write(kproto.api_versions_v0_request(2 * i) + kproto.metadata_v1_request(2 * i + 1, None))
        await writer.drain()
        corr, body = kproto.split_response(await _read_frame(reader))
        assert corr == 2 * i, "connection %d: ApiVersions correlation %d" % (i, corr)
        err, versions = kproto.decode_api_versions_v0(body)
        assert err == 0 and kproto.API_METADATA in versions
        corr, body = kproto.split_response(await _read_frame(reader))
        assert corr == 2 * i + 1, "connection %d: Metadata correlation %d" % (i, corr)
        return kproto.decode_metadata_v1(body)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def _run(port):
    all_open = asyncio.Event()
    opened = []
    tasks = [asyncio.ensure_future(_client(port, i, all_open, opened)) for i in range(N_CONNECTIONS)]
    deadline = time.monotonic() + TOTAL_TIMEOUT_S / 2
    while len(opened) < N_CONNECTIONS and time.monotonic() < deadline:
        done = [t for t in tasks if t.done() and t.exception() is not None]
        if done:
            break
        await asyncio.sleep(0.05)
    n_open = len(opened)
    all_open.set()  # go, whatever we got: the results below say how many were open together
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return n_open, results


@pytest.mark.timeout(TOTAL_TIMEOUT_S + 60)
def test_1000_concurrent_connections_api_versions_and_metadata(broker):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft > N_CONNECTIONS + 200, "RLIMIT_NOFILE %d too low" % soft
    topic = create_topic(broker.bootstrap, partitions=2)
    t0 = time.monotonic()
    n_open, results = asyncio.run(asyncio.wait_for(_run(broker.port), TOTAL_TIMEOUT_S))
    took = time.monotonic() - t0
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, "%d of %d connections failed; first: %r" % (len(errors), N_CONNECTIONS, errors[:3])
    assert n_open == N_CONNECTIONS, "only %d connections were open at once" % n_open
    for md in results:
        assert [(x["node_id"], x["host"], x["port"]) for x in md["brokers"]] == [(NODE_ID, "127.0.0.1", broker.port)]
        assert md["controller_id"] == NODE_ID
        t = {x["name"]: x for x in md["topics"]}[topic]
        assert t["error_code"] == 0 and len(t["partitions"]) == 2
    print("%d connections in %.1f s" % (N_CONNECTIONS, took))
    assert_healthy(broker)
