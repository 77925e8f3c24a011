//! A minimal blocking Kafka client over `std::net::TcpStream`, for the load
//! generator: ApiVersions, Metadata, CreateTopics, Produce and Fetch, plus a
//! magic v2 record batch encoder and a small batch walker for fetched data.
//!
//! Requests may be pipelined: [`KafkaClient::send`] writes a request and
//! returns its correlation id; [`KafkaClient::poll_response`] returns the
//! next complete response (Kafka answers in order on one connection), waiting
//! at most the given time, so a producer can keep several requests in flight
//! and still wake up on its own send schedule.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// API versions this client speaks (all supported by the Corelog broker).
pub const API_VERSIONS_VERSION: i16 = 3;
pub const METADATA_VERSION: i16 = 9;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;

/// Kafka error code TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Largest response accepted (a guard against a corrupt size prefix).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// One blocking connection to a broker.
pub struct KafkaClient {
    stream: TcpStream,
    next_correlation_id: i32,
    /// Requests sent whose responses are still expected, oldest first.
    in_flight: VecDeque<(i32, ApiKey, i16)>,
    read_buf: BytesMut,
    /// Timeout for synchronous calls.
    call_timeout: Duration,
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl KafkaClient {
    /// Connects to `addr` (host:port) with TCP_NODELAY.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Self> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(KafkaClient {
            stream,
            next_correlation_id: 1,
            in_flight: VecDeque::new(),
            read_buf: BytesMut::with_capacity(64 * 1024),
            call_timeout: Duration::from_secs(30),
        })
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Writes one request; returns its correlation id. With `expect_response`
    /// false (Produce with acks=0) no response is awaited.
    pub fn send<R: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &R,
        expect_response: bool,
    ) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("corelog-bench")));
        let header_version = api_key.request_header_version(version);
        let size = header.compute_size(header_version)? + body.compute_size(version)?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.extend_from_slice(&(size as i32).to_be_bytes());
        header.encode(&mut buf, header_version)?;
        body.encode(&mut buf, version)?;
        self.stream.write_all(&buf).context("writing request")?;
        if expect_response {
            self.in_flight.push_back((correlation_id, api_key, version));
        }
        Ok(correlation_id)
    }

    /// Waits at most `timeout` for the next response; returns its
    /// correlation id, api key, version and body (header removed).
    /// `Ok(None)` means the wait ran out (or nothing is in flight).
    pub fn poll_response(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(i32, ApiKey, i16, Bytes)>> {
        let Some(&(correlation_id, api_key, version)) = self.in_flight.front() else {
            return Ok(None);
        };
        let deadline = Instant::now() + timeout;
        loop {
            if self.read_buf.len() >= 4 {
                let size = i32::from_be_bytes(self.read_buf[..4].try_into().unwrap());
                if size < 0 || size as usize > RESPONSE_BYTES_MAX {
                    bail!("bad response size {size}");
                }
                if self.read_buf.len() >= 4 + size as usize {
                    let _ = self.read_buf.split_to(4);
                    let mut frame = self.read_buf.split_to(size as usize).freeze();
                    let header = ResponseHeader::decode(
                        &mut frame,
                        api_key.response_header_version(version),
                    )?;
                    if header.correlation_id != correlation_id {
                        bail!(
                            "response correlation id {} where {correlation_id} was expected",
                            header.correlation_id
                        );
                    }
                    self.in_flight.pop_front();
                    return Ok(Some((correlation_id, api_key, version, frame)));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).max(Duration::from_micros(100));
            self.stream.set_read_timeout(Some(wait))?;
            self.read_buf.reserve(64 * 1024);
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("broker closed the connection"),
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading response"),
            }
        }
    }

    /// Waits for the next response and decodes it as `T`.
    pub fn recv<T: Decodable>(&mut self, timeout: Duration) -> Result<T> {
        match self.poll_response(timeout)? {
            Some((_, _, version, mut body)) => Ok(T::decode(&mut body, version)?),
            None if self.in_flight.is_empty() => bail!("no request in flight"),
            None => bail!("timed out after {timeout:?} waiting for a response"),
        }
    }

    fn call<R: Encodable, T: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &R,
    ) -> Result<T> {
        if !self.in_flight.is_empty() {
            bail!("synchronous call with requests in flight");
        }
        self.send(api_key, version, body, true)?;
        self.recv(self.call_timeout)
    }

    /// ApiVersions; returns the broker's (api key, min, max) table.
    pub fn api_versions(&mut self) -> Result<ApiVersionsResponse> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("corelog-bench"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse =
            self.call(ApiKey::ApiVersions, API_VERSIONS_VERSION, &req)?;
        if resp.error_code != 0 {
            bail!("ApiVersions error {}", resp.error_code);
        }
        Ok(resp)
    }

    /// Metadata for one topic; `Ok(None)` when it does not exist.
    /// Returns the topic's partition indexes.
    pub fn topic_partitions(&mut self, topic: &str) -> Result<Option<Vec<i32>>> {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        let resp: MetadataResponse = self.call(ApiKey::Metadata, METADATA_VERSION, &req)?;
        let Some(t) = resp.topics.into_iter().next() else {
            return Ok(None);
        };
        if t.error_code == 3 {
            return Ok(None); // UNKNOWN_TOPIC_OR_PARTITION
        }
        if t.error_code != 0 {
            bail!("Metadata error {} for topic {topic}", t.error_code);
        }
        let mut parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        parts.sort_unstable();
        Ok(Some(parts))
    }

    /// Creates `topic`; an existing topic is not an error. Returns the
    /// topic's error code (0 or TOPIC_ALREADY_EXISTS).
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<i16> {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000);
        let resp: CreateTopicsResponse =
            self.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &req)?;
        let code = resp.topics.first().map_or(-1, |t| t.error_code);
        if code != 0 && code != TOPIC_ALREADY_EXISTS {
            bail!("CreateTopics error {code} for topic {topic}");
        }
        Ok(code)
    }

    /// Sends a Produce request with one batch per listed partition. With
    /// acks 0 no response comes back.
    pub fn send_produce(
        &mut self,
        topic: &str,
        acks: i16,
        timeout_ms: i32,
        batches: &[(i32, Bytes)],
    ) -> Result<i32> {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(
                    batches
                        .iter()
                        .map(|(p, b)| {
                            PartitionProduceData::default()
                                .with_index(*p)
                                .with_records(Some(b.clone()))
                        })
                        .collect(),
                )]);
        self.send(ApiKey::Produce, PRODUCE_VERSION, &req, acks != 0)
    }

    /// One Fetch (no fetch session) of `topic` from the given
    /// `(partition, offset)` pairs.
    pub fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        max_wait_ms: i32,
        min_bytes: i32,
        partition_max_bytes: i32,
    ) -> Result<FetchResponse> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(i32::MAX)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, offset)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                )]);
        self.send(ApiKey::Fetch, FETCH_VERSION, &req, true)?;
        let wait = Duration::from_millis(max_wait_ms.max(0) as u64) + self.call_timeout;
        self.recv(wait)
    }
}

/// Reads a produce response body.
pub fn decode_produce_response(mut body: Bytes, version: i16) -> Result<ProduceResponse> {
    ProduceResponse::decode(&mut body, version)
}

// ---------------------------------------------------------------------------
// Record batches (magic v2, uncompressed).

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

/// Offset of the attributes field: where the CRC's coverage starts.
const CRC_START: usize = 21;
/// Size of the v2 batch header.
pub const BATCH_HEADER_BYTES: usize = 61;

/// Encodes a v2 batch of `records` records whose values are `value_bytes`
/// long (at least 8) and begin with `send_us` (microseconds since the Unix
/// epoch, big-endian), the rest filler.
pub fn encode_batch(records: usize, value_bytes: usize, send_us: u64) -> Vec<u8> {
    let value_bytes = value_bytes.max(8);
    let records = records.max(1);
    let ts_ms = (send_us / 1000) as i64;
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records * (value_bytes + 16));
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, patched
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched
    out.extend_from_slice(&0i16.to_be_bytes()); // attributes
    out.extend_from_slice(&(records as i32 - 1).to_be_bytes()); // last offset delta
    out.extend_from_slice(&ts_ms.to_be_bytes()); // base timestamp
    out.extend_from_slice(&ts_ms.to_be_bytes()); // max timestamp
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&(records as i32).to_be_bytes());
    debug_assert_eq!(out.len(), BATCH_HEADER_BYTES);
    let mut rec = Vec::with_capacity(value_bytes + 16);
    for i in 0..records {
        rec.clear();
        rec.push(0); // attributes
        put_varint(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, i as i64); // offset delta
        put_varint(&mut rec, -1); // key length (null)
        put_varint(&mut rec, value_bytes as i64);
        rec.extend_from_slice(&send_us.to_be_bytes());
        rec.resize(rec.len() + value_bytes - 8, b'x');
        put_varint(&mut rec, 0); // headers
        put_varint(&mut out, rec.len() as i64);
        out.extend_from_slice(&rec);
    }
    let batch_len = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_len.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// One batch found in fetched record data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub records: u32,
    /// The send timestamp in the first record's value, when it has one.
    pub send_us: Option<u64>,
}

/// Walks the complete batches in `data` (a trailing partial batch, which
/// Fetch may return, is ignored).
pub fn walk_batches(data: &[u8]) -> Vec<BatchInfo> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while data.len() - pos >= BATCH_HEADER_BYTES {
        let b = &data[pos..];
        let base_offset = i64::from_be_bytes(b[0..8].try_into().unwrap());
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap());
        if len < (BATCH_HEADER_BYTES - 12) as i32 || 12 + len as usize > b.len() {
            break;
        }
        let batch = &b[..12 + len as usize];
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap());
        let attributes = i16::from_be_bytes(batch[21..23].try_into().unwrap());
        let records = i32::from_be_bytes(batch[57..61].try_into().unwrap()).max(0) as u32;
        let send_us = if attributes & 0x07 == 0 {
            first_value_prefix(&batch[BATCH_HEADER_BYTES..])
        } else {
            None
        };
        out.push(BatchInfo {
            base_offset,
            last_offset: base_offset + i64::from(last_delta),
            records,
            send_us,
        });
        pos += batch.len();
    }
    out
}

fn first_value_prefix(recs: &[u8]) -> Option<u64> {
    let mut pos = 0;
    let _len = get_varint(recs, &mut pos)?;
    pos += 1; // attributes
    get_varint(recs, &mut pos)?; // timestamp delta
    get_varint(recs, &mut pos)?; // offset delta
    let key_len = get_varint(recs, &mut pos)?;
    if key_len > 0 {
        pos += key_len as usize;
    }
    let value_len = get_varint(recs, &mut pos)?;
    if value_len < 8 {
        return None;
    }
    let v = recs.get(pos..pos + 8)?;
    Some(u64::from_be_bytes(v.try_into().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn batch_walks_back() {
        let mut data = encode_batch(3, 100, 1_700_000_000_123_456);
        data[0..8].copy_from_slice(&10i64.to_be_bytes());
        let second = encode_batch(1, 8, 42);
        data.extend_from_slice(&second);
        data.extend_from_slice(&second[..30]); // partial
        let batches = walk_batches(&data);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].base_offset, 10);
        assert_eq!(batches[0].last_offset, 12);
        assert_eq!(batches[0].records, 3);
        assert_eq!(batches[0].send_us, Some(1_700_000_000_123_456));
        assert_eq!(batches[1].send_us, Some(42));
    }

    #[test]
    fn batch_crc_is_crc32c_of_the_tail() {
        let data = encode_batch(2, 16, 7);
        let crc = u32::from_be_bytes(data[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&data[21..]));
        assert_eq!(
            i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize,
            data.len() - 12
        );
    }
}
