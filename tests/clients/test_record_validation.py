"""Batches a consumer could not read are refused on produce, not stored.

Each test sends, over a raw socket, one Produce request whose batch has a
correct CRC32C but wrong contents (so only the broker's record check can
catch it), and expects Kafka's error code for it. Afterwards the partition
holds exactly what it held before, and real consumers (librdkafka through
confluent-kafka, and kafka-python) read it end to end.
"""
import gzip
import struct
import zlib

import pytest

import kproto
from conftest import assert_healthy, create_topic, produce_all

BEFORE = [b"before-%d" % i for i in range(20)]

CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87

GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
TRANSACTIONAL = 0x10
CONTROL = 0x20


def varint(v):
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def record(offset_delta, value, key=None, tail=b"\x00"):
    """One DefaultRecord with its length prefix; `tail` is the headers part."""
    body = b"\x00" + varint(0) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(len(value)) + value + tail
    return varint(len(body)) + body


def records(n, size=50):
    return b"".join(record(i, b"v%d-" % i + b"x" * size) for i in range(n))


def batch(section, count, attributes=0, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    """A v2 batch around `section` (the records, compressed or not, as given)
    with a correct CRC32C over attributes..end."""
    from kafka.record.util import calc_crc32c

    after_crc = (struct.pack(">hiqqqhii", attributes, count - 1, 1_700_000_000_000,
                             1_700_000_000_000, producer_id, producer_epoch, base_sequence,
                             count)
                 + section)
    crc = calc_crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def produce(b, topic, batch_bytes, version=3):
    """Sends one Produce request (v3 unless said) and returns its error code."""
    with kproto.connect(b.port) as s:
        if version == 3:
            req = kproto.produce_v3_request(1, topic, 0, batch_bytes)
        else:
            body = (kproto.string(None) + kproto.i16(-1) + kproto.i32(5000)
                    + kproto.array([kproto.string(topic)
                                    + kproto.array([kproto.i32(0) + kproto.kbytes(batch_bytes)])]))
            req = kproto.frame(kproto.request_header_v1(kproto.API_PRODUCE, version, 1) + body)
        _, body = kproto.roundtrip(s, req)
        return kproto.decode_produce_v3(body)[topic][0]["error_code"]


@pytest.fixture
def seeded(broker):
    topic = create_topic(broker.bootstrap)
    produce_all(broker.bootstrap, topic, [{"value": v} for v in BEFORE], acks="all")
    return broker, topic


def assert_unchanged(b, topic):
    """Nothing was appended, and real clients read the partition whole."""
    assert_healthy(b, topic, BEFORE)
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False,
                      consumer_timeout_ms=10_000)
    try:
        c.assign([tp])
        assert c.end_offsets([tp])[tp] == len(BEFORE)
        c.seek_to_beginning(tp)
        got = []
        for m in c:
            got.append(m.value)
            if len(got) == len(BEFORE):
                break
        assert got == BEFORE
    finally:
        c.close()


def test_uncompressed_batch_with_correct_crc_is_still_accepted(seeded):
    b, topic = seeded
    assert produce(b, topic, batch(records(3), 3)) == 0
    from conftest import consume_range
    got = consume_range(b.bootstrap, topic, [0], len(BEFORE) + 3)
    assert [m.value() for m in got][len(BEFORE):] == [b"v%d-" % i + b"x" * 50 for i in range(3)]


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_compressed_payload_of_garbage_is_refused(seeded, codec):
    b, topic = seeded
    garbage = bytes((i * 7919) % 251 for i in range(3000))
    version = 7 if codec == ZSTD else 3
    assert produce(b, topic, batch(garbage, 10, attributes=codec), version) == CORRUPT_MESSAGE
    assert_unchanged(b, topic)


def test_payload_of_another_codec_than_the_attributes_say_is_refused(seeded):
    b, topic = seeded
    gz = gzip.compress(records(10))
    for claimed in (SNAPPY, LZ4):
        assert produce(b, topic, batch(gz, 10, attributes=claimed)) == CORRUPT_MESSAGE
    # Gzip bytes in a batch that says "uncompressed" are not records.
    assert produce(b, topic, batch(gz, 10, attributes=0)) == INVALID_RECORD
    assert_unchanged(b, topic)


def test_truncated_gzip_payload_is_refused(seeded):
    b, topic = seeded
    gz = gzip.compress(records(200))
    assert produce(b, topic, batch(gz[: len(gz) // 2], 200, attributes=GZIP)) == CORRUPT_MESSAGE
    assert_unchanged(b, topic)


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unassigned_codec_ids_are_refused(seeded, codec_id):
    b, topic = seeded
    assert produce(b, topic, batch(records(2), 2, attributes=codec_id)) == INVALID_RECORD
    assert_unchanged(b, topic)


def test_control_batch_from_a_client_is_refused(seeded):
    b, topic = seeded
    # A commit marker: key (version 0, type 1), value (version 0, epoch 0).
    marker = record(0, struct.pack(">hi", 0, 0), key=struct.pack(">hh", 0, 1))
    assert produce(b, topic, batch(marker, 1, attributes=CONTROL | TRANSACTIONAL,
                                   producer_id=7, producer_epoch=0, base_sequence=0)) == INVALID_RECORD
    assert_unchanged(b, topic)


def test_transactional_batch_without_a_transactional_id_is_refused(seeded):
    # Produce v3's transactional id is null here: no coordinator could say
    # whether the partition is in the producer's transaction.
    b, topic = seeded
    assert produce(b, topic, batch(records(2), 2, attributes=TRANSACTIONAL, producer_id=7,
                                   producer_epoch=0, base_sequence=0)) == INVALID_TXN_STATE
    assert_unchanged(b, topic)


def test_transactional_batch_of_a_producer_outside_any_transaction_is_refused(seeded):
    # KIP-890 verification: the coordinator knows no such transactional id.
    b, topic = seeded
    body = (kproto.string("nobody-" + topic) + kproto.i16(-1) + kproto.i32(5000)
            + kproto.array([kproto.string(topic) + kproto.array([
                kproto.i32(0) + kproto.kbytes(batch(records(2), 2, attributes=TRANSACTIONAL,
                                                    producer_id=7, producer_epoch=0,
                                                    base_sequence=0))])]))
    with kproto.connect(b.port) as s:
        req = kproto.frame(kproto.request_header_v1(kproto.API_PRODUCE, 3, 1) + body)
        _, resp = kproto.roundtrip(s, req)
        code = kproto.decode_produce_v3(resp)[topic][0]["error_code"]
    assert code == INVALID_PRODUCER_ID_MAPPING
    assert_unchanged(b, topic)


def test_zstd_before_produce_v7_is_refused(seeded):
    b, topic = seeded
    import zstandard

    packed = zstandard.ZstdCompressor().compress(records(5))
    assert produce(b, topic, batch(packed, 5, attributes=ZSTD), version=3) == UNSUPPORTED_COMPRESSION_TYPE
    assert produce(b, topic, batch(packed, 5, attributes=ZSTD), version=7) == 0


def test_uncompressed_record_with_a_corrupt_varint_is_refused(seeded):
    b, topic = seeded
    section = record(0, b"fine") + varint(12) + b"\x00" + b"\xff" * 11
    assert produce(b, topic, batch(section, 2)) == INVALID_RECORD
    assert_unchanged(b, topic)


def test_offset_deltas_out_of_order_are_refused(seeded):
    b, topic = seeded
    section = record(0, b"a") + record(0, b"b")
    assert produce(b, topic, batch(section, 2)) == INVALID_RECORD
    assert_unchanged(b, topic)


def test_decompression_bomb_is_refused_with_message_too_large(seeded):
    """80 MiB of zeros in one record, about 80 KiB gzipped: past the broker's
    default batch_decompressed_bytes_max (64 MiB)."""
    b, topic = seeded
    value = bytes(80 << 20)
    section = record(0, value)
    co = zlib.compressobj(1, zlib.DEFLATED, 31)
    packed = co.compress(section) + co.flush()
    assert len(packed) < 1 << 20
    assert produce(b, topic, batch(packed, 1, attributes=GZIP)) == MESSAGE_TOO_LARGE
    assert_unchanged(b, topic)
