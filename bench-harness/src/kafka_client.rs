//! A minimal blocking Kafka client over `std::net::TcpStream`, for the load
//! generator: ApiVersions, Metadata, CreateTopics, Produce, Fetch,
//! FindCoordinator and InitProducerId (the request bodies of
//! AddPartitionsToTxn and EndTxn are built here too, for the producers'
//! transactions). Record
//! batches are built and walked in [`crate::records`]. [`Leaders`] reads
//! each partition's leader endpoint from a Metadata response, for the
//! producers' routing.
//!
//! Requests may be pipelined: [`KafkaClient::send`] writes a request and
//! returns its correlation id; [`KafkaClient::poll_response`] returns the
//! next complete response (Kafka answers in order on one connection), waiting
//! at most the given time, so a producer can keep several requests in flight
//! and still wake up on its own send schedule.
//!
//! Why this is not `corelog_client`, the project's one blocking client:
//! the producers' hot path needs what that client does not offer and
//! should not (a non-blocking poll for the next of many responses,
//! bounded by the producer's own schedule, and produce requests built and
//! framed without an ApiVersions round trip per connection), and the
//! benchmark's numbers must not move with a change of client. The load
//! generator's topic setup does use `corelog_client` (`loadgen.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, EndTxnRequest,
    FetchRequest, FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, ProducerId, RequestHeader, ResponseHeader, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// API versions this client speaks (all supported by the Corelog broker).
pub const API_VERSIONS_VERSION: i16 = 3;
pub const METADATA_VERSION: i16 = 9;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
/// v3: one key per request (v4+ batch them).
pub const FIND_COORDINATOR_VERSION: i16 = 3;
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// v3: the newest a client sends (v4+ are KIP-890's broker-to-broker
/// verification).
pub const ADD_PARTITIONS_TO_TXN_VERSION: i16 = 3;
pub const END_TXN_VERSION: i16 = 3;

/// FindCoordinator key type of a transactional id.
pub const COORDINATOR_KEY_TRANSACTION: i8 = 1;
/// Kafka error codes a transactional client retries after a short wait:
/// the coordinator is loading its state, or is still finishing the
/// previous transaction (writing its markers).
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;

/// Kafka error code TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka error code NOT_LEADER_OR_FOLLOWER: the partition's leader is
/// elsewhere now, and the client should refresh its metadata.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;

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
        let buf = encode_request(api_key, version, correlation_id, body)?;
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
            if let Some(mut frame) = take_frame(&mut self.read_buf)? {
                let header =
                    ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
                if header.correlation_id != correlation_id {
                    bail!(
                        "response correlation id {} where {correlation_id} was expected",
                        header.correlation_id
                    );
                }
                self.in_flight.pop_front();
                return Ok(Some((correlation_id, api_key, version, frame)));
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

    /// Metadata for the given topics (brokers, and each partition's
    /// leader), without creating topics.
    pub fn metadata(&mut self, topics: &[String]) -> Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        self.call(ApiKey::Metadata, METADATA_VERSION, &req)
    }

    /// Metadata for one topic; `Ok(None)` when it does not exist.
    /// Returns the topic's partition indexes.
    pub fn topic_partitions(&mut self, topic: &str) -> Result<Option<Vec<i32>>> {
        let resp = self.metadata(&[topic.to_string()])?;
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

    /// Creates `topic` with `replication_factor` replicas (-1: the broker's
    /// default) and the given topic configs; an existing topic is not an
    /// error (and keeps its own settings). Returns the topic's error code
    /// (0 or TOPIC_ALREADY_EXISTS).
    pub fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<i16> {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                )])
            .with_timeout_ms(30_000);
        let resp: CreateTopicsResponse =
            self.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &req)?;
        let code = resp.topics.first().map_or(-1, |t| t.error_code);
        if code != 0 && code != TOPIC_ALREADY_EXISTS {
            let message = resp
                .topics
                .first()
                .and_then(|t| t.error_message.as_ref())
                .map_or(String::new(), |m| format!(": {}", m.as_str()));
            bail!("CreateTopics error {code} for topic {topic}{message}");
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
        let req = produce_request(topic, acks, timeout_ms, batches.to_vec());
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
        let topics = [(topic.to_string(), partitions.to_vec())];
        self.fetch_topics(&topics, max_wait_ms, min_bytes, partition_max_bytes)
    }

    /// One Fetch (no fetch session) of several topics, each from its
    /// `(partition, offset)` pairs.
    pub fn fetch_topics(
        &mut self,
        topics: &[(String, Vec<(i32, i64)>)],
        max_wait_ms: i32,
        min_bytes: i32,
        partition_max_bytes: i32,
    ) -> Result<FetchResponse> {
        self.fetch_isolated(topics, max_wait_ms, min_bytes, partition_max_bytes, 0)
    }

    /// [`KafkaClient::fetch_topics`] at an isolation level: 0
    /// read_uncommitted (up to the high watermark), 1 read_committed (up
    /// to the last stable offset, with the aborted transactions).
    pub fn fetch_isolated(
        &mut self,
        topics: &[(String, Vec<(i32, i64)>)],
        max_wait_ms: i32,
        min_bytes: i32,
        partition_max_bytes: i32,
        isolation_level: i8,
    ) -> Result<FetchResponse> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(i32::MAX)
            .with_isolation_level(isolation_level)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        FetchTopic::default()
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
                            )
                    })
                    .collect(),
            );
        self.send(ApiKey::Fetch, FETCH_VERSION, &req, true)?;
        let wait = Duration::from_millis(max_wait_ms.max(0) as u64) + self.call_timeout;
        self.recv(wait)
    }
}

impl KafkaClient {
    /// The endpoint (`host:port`) of transactional id `transactional_id`'s
    /// coordinator (FindCoordinator, key type 1), retrying a coordinator
    /// that is not available yet for up to `patience`.
    pub fn find_transaction_coordinator(
        &mut self,
        transactional_id: &str,
        patience: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + patience;
        loop {
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(transactional_id.to_string()))
                .with_key_type(COORDINATOR_KEY_TRANSACTION);
            let resp: FindCoordinatorResponse =
                self.call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &req)?;
            if resp.error_code == 0 {
                return Ok(format!("{}:{}", resp.host.as_str(), resp.port));
            }
            if !retriable_coordinator_error(resp.error_code) || Instant::now() >= deadline {
                let message = resp.error_message.as_ref().map_or("", |m| m.as_str());
                bail!(
                    "FindCoordinator({transactional_id}) error {}: {message}",
                    resp.error_code
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// InitProducerId: a producer id and epoch, for an idempotent producer
    /// (`transactional_id` None) or a transactional one (sent to its
    /// coordinator), retrying the coordinator's retriable answers for up to
    /// `patience`.
    pub fn init_producer_id(
        &mut self,
        transactional_id: Option<&str>,
        transaction_timeout_ms: i32,
        patience: Duration,
    ) -> Result<(i64, i16)> {
        let deadline = Instant::now() + patience;
        loop {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(
                    transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.into()))),
                )
                .with_transaction_timeout_ms(transaction_timeout_ms)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let resp: InitProducerIdResponse =
                self.call(ApiKey::InitProducerId, INIT_PRODUCER_ID_VERSION, &req)?;
            if resp.error_code == 0 {
                return Ok((resp.producer_id.0, resp.producer_epoch));
            }
            let retriable = retriable_coordinator_error(resp.error_code)
                || resp.error_code == CONCURRENT_TRANSACTIONS;
            if !retriable || Instant::now() >= deadline {
                bail!(
                    "InitProducerId({}) error {}",
                    transactional_id.unwrap_or("none"),
                    resp.error_code
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether a coordinator's error says "ask again shortly".
pub fn retriable_coordinator_error(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// AddPartitionsToTxn (v3 and below: one transaction) naming `partitions`
/// of each topic.
pub fn add_partitions_to_txn_request(
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, Vec<i32>)],
) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(
            partitions
                .iter()
                .map(|(topic, ps)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(ps.clone())
                })
                .collect(),
        )
}

/// The error codes of an AddPartitionsToTxn answer (v3 and below), one per
/// partition: `(topic, partition, code)`.
pub fn add_partitions_to_txn_errors(resp: &AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    resp.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(move |p| {
                (
                    t.name.0.as_str().to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

/// EndTxn: commit (or abort) the producer's transaction.
pub fn end_txn_request(
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

/// Each partition's leader endpoint (`host:port`), as a Metadata response
/// names it: where a Kafka client sends the partition's produce requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leaders {
    by_partition: BTreeMap<(String, i32), String>,
}

impl Leaders {
    /// The leaders `resp` names. A partition whose leader is unknown (-1,
    /// or a broker id the response does not list) is left out:
    /// [`Leaders::endpoint`] says `None` for it.
    pub fn from_metadata(resp: &MetadataResponse) -> Leaders {
        let brokers: BTreeMap<i32, String> = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let mut by_partition = BTreeMap::new();
        for t in resp.topics.iter().filter(|t| t.error_code == 0) {
            let Some(name) = &t.name else { continue };
            for p in t.partitions.iter().filter(|p| p.error_code == 0) {
                if let Some(endpoint) = brokers.get(&p.leader_id.0) {
                    by_partition.insert(
                        (name.as_str().to_string(), p.partition_index),
                        endpoint.clone(),
                    );
                }
            }
        }
        Leaders { by_partition }
    }

    /// The leader endpoint of `partition` of `topic`, when known.
    pub fn endpoint(&self, topic: &str, partition: i32) -> Option<&str> {
        self.by_partition
            .get(&(topic.to_string(), partition))
            .map(String::as_str)
    }
}

/// Encodes one request frame (size prefix, header, body).
pub fn encode_request<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut> {
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
    Ok(buf)
}

/// Splits one complete response frame (without its size prefix) off the
/// front of `buf`, or returns `None` while it is incomplete.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<Bytes>> {
    take_frame_max(buf, RESPONSE_BYTES_MAX)
}

/// [`take_frame`] with a given largest frame.
pub fn take_frame_max(buf: &mut BytesMut, frame_bytes_max: usize) -> Result<Option<Bytes>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
    if size < 0 || size as usize > frame_bytes_max {
        bail!("frame of {size} bytes (at most {frame_bytes_max})");
    }
    if buf.len() < 4 + size as usize {
        return Ok(None);
    }
    let _ = buf.split_to(4);
    Ok(Some(buf.split_to(size as usize).freeze()))
}

/// A Produce request with one batch per listed partition of `topic`.
pub fn produce_request(
    topic: &str,
    acks: i16,
    timeout_ms: i32,
    batches: Vec<(i32, Bytes)>,
) -> ProduceRequest {
    produce_request_txn(topic, acks, timeout_ms, batches, None)
}

/// [`produce_request`] of a transactional producer: the request carries
/// its transactional id, as its transactional batches require.
pub fn produce_request_txn(
    topic: &str,
    acks: i16,
    timeout_ms: i32,
    batches: Vec<(i32, Bytes)>,
    transactional_id: Option<&str>,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
        )
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(
                batches
                    .into_iter()
                    .map(|(p, b)| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(b))
                    })
                    .collect(),
            )])
}

/// Reads a produce response body.
pub fn decode_produce_response(mut body: Bytes, version: i16) -> Result<ProduceResponse> {
    ProduceResponse::decode(&mut body, version)
}

/// Metadata responses for tests of the routing.
#[cfg(test)]
pub(crate) mod testutil {
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, MetadataResponse};
    use kafka_protocol::protocol::StrBytes;

    /// A Metadata response listing `brokers` (id, host, port) and `topic`
    /// with `(partition, leader id)`.
    pub fn metadata(
        brokers: &[(i32, &str, i32)],
        topic: &str,
        leaders: &[(i32, i32)],
    ) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(
                brokers
                    .iter()
                    .map(|&(id, host, port)| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(StrBytes::from_string(host.to_string()))
                            .with_port(port)
                    })
                    .collect(),
            )
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(super::topic_name(topic)))
                .with_partitions(
                    leaders
                        .iter()
                        .map(|&(p, leader)| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(leader))
                        })
                        .collect(),
                )])
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::metadata;
    use super::*;

    #[test]
    fn leaders_come_from_the_brokers_metadata_names() {
        // Two brokers (a shard-direct broker advertises one per shard);
        // partition 2 has no leader and partition 3 names a broker the
        // response does not list.
        let resp = metadata(
            &[(0, "127.0.0.1", 9092), (1, "127.0.0.1", 9093)],
            "t",
            &[(0, 0), (1, 1), (2, -1), (3, 7)],
        );
        let leaders = Leaders::from_metadata(&resp);
        assert_eq!(leaders.endpoint("t", 0), Some("127.0.0.1:9092"));
        assert_eq!(leaders.endpoint("t", 1), Some("127.0.0.1:9093"));
        assert_eq!(leaders.endpoint("t", 2), None);
        assert_eq!(leaders.endpoint("t", 3), None);
        assert_eq!(leaders.endpoint("other", 0), None);
    }
}
