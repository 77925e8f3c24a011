"""Bounds on group ids (issue 25, item 4).

A group id longer than 32,767 bytes fits only in flexible request versions
(OffsetCommit v8+, as a Java client sends). Before the bound, committing
one stored it, and from then on every ListGroups v0-2 answer (kafka-python
2.x's admin client used those) failed to encode and the broker closed the
connection, across restarts. Now group ids over the bound (1,024 bytes,
`GROUP_ID_BYTES_MAX` in broker/coordination/src/bounds.rs) are refused with
INVALID_GROUP_ID and nothing is stored, while an id of exactly the bound
works with real clients.

Neither Python client can send a 40,000-byte group id at all (librdkafka
and kafka-python use non-flexible FindCoordinator/OffsetCommit versions,
whose strings hold at most 32,767 bytes), so that commit is sent as the
Java client would, by hand (OffsetCommit v8); confluent_kafka commits the
ids just over and exactly at the bound.
"""
import struct

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import kproto
from conftest import admin, create_topic

pytestmark = pytest.mark.timeout(90)

GROUP_ID_BYTES_MAX = 1024
API_OFFSET_COMMIT = 8
ERR_INVALID_GROUP_ID = 24


def _read_uvarint(r):
    shift = value = 0
    while True:
        b = r.i8() & 0xFF
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7


def _read_compact_string(r):
    n = _read_uvarint(r) - 1
    return None if n < 0 else r._take(n).decode()


def _skip_tags(r):
    for _ in range(_read_uvarint(r)):
        _read_uvarint(r)
        r._take(_read_uvarint(r))


def offset_commit_v8(correlation_id, group_id, topic, partition, offset):
    """OffsetCommit v8 (flexible: compact strings, tagged fields), a simple
    commit from outside any membership (generation -1, no member id).

    group_id compact_string, generation_id i32, member_id compact_string,
    group_instance_id compact_nullable_string,
    topics [name, partitions [index i32, offset i64, leader_epoch i32,
    metadata compact_nullable_string, tags], tags], tags"""
    part = kproto.i32(partition) + kproto.i64(offset) + kproto.i32(-1) + kproto.compact_string("") + kproto.uvarint(0)
    topics = kproto.uvarint(2) + kproto.compact_string(topic) + kproto.uvarint(2) + part + kproto.uvarint(0)
    body = (kproto.compact_string(group_id) + kproto.i32(-1) + kproto.compact_string("") + kproto.uvarint(0)
            + topics + kproto.uvarint(0))
    return kproto.frame(kproto.request_header_v2(API_OFFSET_COMMIT, 8, correlation_id) + body)


def decode_offset_commit_v8(body):
    """-> {(topic, partition): error_code}; the body follows a response
    header v1 (correlation id, then tags)."""
    _skip_tags(body)
    body.i32()  # throttle_time_ms
    out = {}
    for _ in range(_read_uvarint(body) - 1):
        name = _read_compact_string(body)
        for _ in range(_read_uvarint(body) - 1):
            p = body.i32()
            out[(name, p)] = body.i16()
            _skip_tags(body)
        _skip_tags(body)
    return out


API_LIST_GROUPS = 16


def list_groups_v0(port):
    """ListGroups v0 by hand, as kafka-python 2.x's admin client sent it
    (v0-2 strings hold at most 32,767 bytes): [(group_id, protocol_type)].
      request v0 : (empty body)
      response v0: int16 error_code, [string group_id, string protocol_type]"""
    with kproto.connect(port) as s:
        corr, body = kproto.roundtrip(s, kproto.frame(kproto.request_header_v1(API_LIST_GROUPS, 0, 21)))
    assert corr == 21
    assert body.i16() == 0
    return body.array(lambda r: (r.string(), r.string()))


def confluent_groups(bootstrap):
    res = admin(bootstrap).list_consumer_groups(request_timeout=15).result(timeout=15)
    assert not res.errors, res.errors
    return {g.group_id for g in res.valid}


def confluent_commit(bootstrap, group, topic, offset):
    """A simple (assign-only) consumer commits `offset` on partition 0 and
    reads it back. Returns the committed offset, or raises KafkaException."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "socket.timeout.ms": 10000})
    try:
        tp = TopicPartition(topic, 0, offset)
        res = c.commit(offsets=[tp], asynchronous=False)
        for r in res or []:
            if r.error is not None:
                raise KafkaException(r.error)
        got = c.committed([TopicPartition(topic, 0)], timeout=15)
        return got[0].offset
    finally:
        c.close()


def test_group_ids_over_the_bound_are_refused_and_listing_groups_keeps_working(broker):
    b = broker.bootstrap
    topic = create_topic(b, partitions=1)

    # The case: 40,000 bytes in a flexible OffsetCommit. Refused
    # with INVALID_GROUP_ID, and the connection stays usable.
    huge = "g" * 40_000
    with kproto.connect(broker.port) as s:
        corr, body = kproto.roundtrip(s, offset_commit_v8(11, huge, topic, 0, 5))
        assert corr == 11
        assert decode_offset_commit_v8(body) == {(topic, 0): ERR_INVALID_GROUP_ID}
        corr, body = kproto.roundtrip(s, kproto.api_versions_v0_request(12))
        assert corr == 12 and kproto.decode_api_versions_v0(body)[0] == 0

    # A real client just over the bound gets the same error.
    with pytest.raises(KafkaException) as ei:
        confluent_commit(b, "o" * (GROUP_ID_BYTES_MAX + 1), topic, 5)
    assert ei.value.args[0].code() == KafkaError.INVALID_GROUP_ID, ei.value

    # Exactly at the bound works: committed, read back, listed.
    at_bound = "a" * GROUP_ID_BYTES_MAX
    assert confluent_commit(b, at_bound, topic, 7) == 7
    # A bounded id also commits through the hand-written v8 request.
    with kproto.connect(broker.port) as s:
        _, body = kproto.roundtrip(s, offset_commit_v8(13, "plain", topic, 0, 3))
        assert decode_offset_commit_v8(body) == {(topic, 0): 0}

    # ListGroups in the old versions (kafka-python 2.x's) and the flexible
    # ones (librdkafka) both answer, with nothing oversized in them.
    old = list_groups_v0(broker.port)
    assert sorted(g for g, _ in old) == sorted([at_bound, "plain"]), [g[:20] for g, _ in old]
    assert confluent_groups(b) == {at_bound, "plain"}

    # Still so after a restart: nothing oversized was written to the log.
    broker.restart()
    assert sorted(g for g, _ in list_groups_v0(broker.port)) == sorted([at_bound, "plain"])
    assert confluent_groups(b) == {at_bound, "plain"}
    assert broker.alive()
