"""aiokafka (PyPI), the asyncio client (issue 21): its admin client creates
a topic, its idempotent producer writes keyed records in every codec with
acks=all, and its group consumers share the partitions, read every record
once, commit, and a consumer that comes back resumes at the commits.
"""
import asyncio
import time

import pytest

from conftest import unique_topic

aiokafka = pytest.importorskip("aiokafka")
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def create(bootstrap, topic, partitions):
    a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await a.start()
    try:
        await a.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await a.close()


async def produce(bootstrap, topic, records, codec):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                         compression_type=codec, linger_ms=5)
    await p.start()
    try:
        futures = [await p.send(topic, value, key=key) for key, value in records]
        return [await f for f in futures]
    finally:
        await p.stop()


async def drain(consumers, want, timeout_s=30):
    """Polls every consumer until `want` records arrived in all, or the time
    is up. -> {consumer index: [record]}"""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout_s
    while sum(len(v) for v in got.values()) < want and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            for recs in (await c.getmany(timeout_ms=200)).values():
                got[i].extend(recs)
    return got


@pytest.mark.parametrize("codec", CODECS)
def test_an_idempotent_aiokafka_producer_writes_every_codec_and_a_group_reads_it(broker, codec):
    topic = unique_topic("aio")
    records = [(b"k%d" % (i % 5), b"%s-%d-" % (str(codec).encode(), i) + b"z" * 200) for i in range(60)]

    async def go():
        await create(broker.bootstrap, topic, 3)
        metas = await produce(broker.bootstrap, topic, records, codec)
        # Keys pick partitions; offsets in each partition are dense from 0.
        by_partition = {}
        for m in metas:
            by_partition.setdefault(m.partition, []).append(m.offset)
        assert all(sorted(o) == list(range(len(o))) for o in by_partition.values()), by_partition
        c = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="aio-" + topic,
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            got = (await drain([c], len(records)))[0]
        finally:
            await c.stop()
        assert sorted((r.key, r.value) for r in got) == sorted(records)
        # Records of one key stay in order (one partition per key).
        for key in {k for k, _ in records}:
            assert [r.value for r in got if r.key == key] == [v for k, v in records if k == key]

    run(go())


def test_two_aiokafka_members_share_a_group_and_a_returning_member_resumes_at_the_commits(broker):
    topic = unique_topic("aio-group")
    group = "aio-group-" + topic
    first = [(None, b"first-%d" % i) for i in range(40)]
    second = [(None, b"second-%d" % i) for i in range(20)]

    async def member():
        c = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=10000, heartbeat_interval_ms=500)
        await c.start()
        return c

    async def go():
        await create(broker.bootstrap, topic, 4)
        a, b = await member(), await member()
        try:
            # The two members settle on two partitions each before anything
            # is written, so that no record is read by both.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (len(a.assignment()) == 2 and len(b.assignment()) == 2):
                await drain([a, b], 1, timeout_s=0.3)
            assert len(a.assignment()) == 2 and len(b.assignment()) == 2, (a.assignment(), b.assignment())
            assert not set(a.assignment()) & set(b.assignment())
            await produce(broker.bootstrap, topic, first, None)
            got = await drain([a, b], len(first))
            values = [r.value for rs in got.values() for r in rs]
            assert sorted(values) == sorted(v for _, v in first), len(values)
            await a.commit()
            await b.commit()
        finally:
            await a.stop()
            await b.stop()
        # More records; a member that comes back reads only those.
        await produce(broker.bootstrap, topic, second, None)
        c = await member()
        try:
            got = (await drain([c], len(second)))[0]
            committed = {tp.partition: await c.committed(tp) for tp in c.assignment()}
        finally:
            await c.stop()
        assert sorted(r.value for r in got) == sorted(v for _, v in second)
        assert set(committed) == {0, 1, 2, 3}
        # What the first two members committed: the end of the first records.
        assert sum(committed.values()) == len(first), committed

    run(go(), timeout=90)
