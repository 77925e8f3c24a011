//! `corelog-bench sink`: a Kafka-protocol endpoint that acknowledges every
//! produce request at once and stores nothing, to measure the load
//! generator's own ceiling. Pointing a scenario at the sink instead of a
//! broker shows how fast the generator can go; a broker run that reaches a
//! large fraction of that was limited by the client, not the broker.
//!
//! It speaks just what the generator needs: ApiVersions 0-3, Metadata 9,
//! CreateTopics 5, Produce 9 and Fetch 12 (always empty, after the long
//! poll). Anything else closes the connection. One thread per connection,
//! at most [`CONNECTIONS_MAX`], frames at most [`FRAME_BYTES_MAX`].

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest,
    FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::kafka_client::take_frame_max;

/// Most connections served at once; more are closed on accept.
pub const CONNECTIONS_MAX: usize = 1024;
/// Largest request frame accepted.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Longest long poll a Fetch is held for.
const FETCH_WAIT_MAX: Duration = Duration::from_millis(500);

/// The APIs and the one version of each the sink answers.
const APIS: [(ApiKey, i16, i16); 5] = [
    (ApiKey::Produce, 9, 9),
    (ApiKey::Fetch, 12, 12),
    (ApiKey::Metadata, 9, 9),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 5, 5),
];

#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9099")]
    pub listen: String,
    /// Partitions of a topic that was not created through the sink.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
}

/// Topic name to partition count, and the next offset of each partition.
#[derive(Default)]
struct State {
    topics: HashMap<String, i32>,
    next_offsets: HashMap<(String, i32), i64>,
}

struct Sink {
    advertised: SocketAddr,
    default_partitions: i32,
    state: Mutex<State>,
    connections: AtomicUsize,
}

pub fn run_command(args: &SinkArgs) -> Result<std::process::ExitCode> {
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("corelog-bench sink listening on {addr}");
    serve(listener, args.partitions.max(1))?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Starts a sink on a background thread; returns its address.
pub fn spawn(listen: &str, default_partitions: i32) -> Result<SocketAddr> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("sink".into())
        .spawn(move || serve(listener, default_partitions.max(1)))?;
    Ok(addr)
}

fn serve(listener: TcpListener, default_partitions: i32) -> Result<()> {
    let sink = Arc::new(Sink {
        advertised: listener.local_addr()?,
        default_partitions,
        state: Mutex::new(State::default()),
        connections: AtomicUsize::new(0),
    });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if sink.connections.fetch_add(1, Ordering::AcqRel) >= CONNECTIONS_MAX {
            sink.connections.fetch_sub(1, Ordering::AcqRel);
            eprintln!("sink: connection refused, {CONNECTIONS_MAX} already open");
            continue;
        }
        let sink = sink.clone();
        let spawned = std::thread::Builder::new()
            .name("sink-conn".into())
            .spawn(move || {
                if let Err(e) = sink.connection(stream) {
                    eprintln!("sink: connection closed: {e:#}");
                }
                sink.connections.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            eprintln!("sink: could not start a connection thread");
        }
    }
    Ok(())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Sink {
    fn connection(&self, mut stream: TcpStream) -> Result<()> {
        stream.set_nodelay(true)?;
        let mut buf = BytesMut::with_capacity(256 << 10);
        let mut chunk = vec![0u8; 256 << 10];
        loop {
            while let Some(frame) = take_frame_max(&mut buf, FRAME_BYTES_MAX)? {
                if let Some(response) = self.handle(frame)? {
                    stream.write_all(&response)?;
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Answers one request; `None` for a produce with acks=0.
    fn handle(&self, mut frame: Bytes) -> Result<Option<BytesMut>> {
        if frame.len() < 4 {
            bail!("request frame too short for a header");
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = ApiKey::try_from(key).map_err(|_| anyhow::anyhow!("unknown api key {key}"))?;
        let Some(&(_, min, max)) = APIS.iter().find(|(k, _, _)| *k == api) else {
            bail!("api {api:?} is not served by the sink");
        };
        if api != ApiKey::ApiVersions && !(min..=max).contains(&version) {
            bail!("{api:?} v{version} is not served by the sink");
        }
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))?;
        let cid = header.correlation_id;
        match api {
            ApiKey::ApiVersions => {
                // Kafka answers an unknown ApiVersions version with v0 and
                // UNSUPPORTED_VERSION, so a client can retry lower.
                let (v, code) = if version > max { (0, 35) } else { (version, 0) };
                let resp = ApiVersionsResponse::default()
                    .with_error_code(code)
                    .with_api_keys(
                        APIS.iter()
                            .map(|&(k, lo, hi)| {
                                ApiVersion::default()
                                    .with_api_key(k as i16)
                                    .with_min_version(lo)
                                    .with_max_version(hi)
                            })
                            .collect(),
                    );
                encode(api, v, cid, &resp).map(Some)
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut frame, version)?;
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let topics = req
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.name)
                    .map(|name| {
                        let n = state
                            .topics
                            .get(name.as_str())
                            .copied()
                            .unwrap_or(self.default_partitions);
                        MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_partitions(
                                (0..n)
                                    .map(|p| {
                                        MetadataResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_leader_id(BrokerId(0))
                                            .with_replica_nodes(vec![BrokerId(0)])
                                            .with_isr_nodes(vec![BrokerId(0)])
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let resp = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(0))
                        .with_host(StrBytes::from_string(self.advertised.ip().to_string()))
                        .with_port(i32::from(self.advertised.port()))])
                    .with_controller_id(BrokerId(0))
                    .with_topics(topics);
                encode(api, version, cid, &resp).map(Some)
            }
            ApiKey::CreateTopics => {
                let req = CreateTopicsRequest::decode(&mut frame, version)?;
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let results = req
                    .topics
                    .into_iter()
                    .map(|t| {
                        let n = if t.num_partitions > 0 {
                            t.num_partitions
                        } else {
                            self.default_partitions
                        };
                        state.topics.insert(t.name.as_str().to_string(), n);
                        CreatableTopicResult::default()
                            .with_name(t.name)
                            .with_num_partitions(n)
                            .with_replication_factor(1)
                    })
                    .collect();
                let resp = CreateTopicsResponse::default().with_topics(results);
                encode(api, version, cid, &resp).map(Some)
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut frame, version)?;
                if req.acks == 0 {
                    return Ok(None);
                }
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let responses = req
                    .topic_data
                    .into_iter()
                    .map(|t| {
                        let name = t.name.as_str().to_string();
                        let parts = t
                            .partition_data
                            .into_iter()
                            .map(|p| {
                                let records = p.records.as_deref().map_or(0, count_records);
                                let next = state
                                    .next_offsets
                                    .entry((name.clone(), p.index))
                                    .or_default();
                                let base = *next;
                                *next += records;
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_base_offset(base)
                                    .with_log_append_time_ms(-1)
                            })
                            .collect();
                        TopicProduceResponse::default()
                            .with_name(t.name)
                            .with_partition_responses(parts)
                    })
                    .collect();
                drop(state);
                let resp = ProduceResponse::default().with_responses(responses);
                encode(api, version, cid, &resp).map(Some)
            }
            ApiKey::Fetch => {
                let req = FetchRequest::decode(&mut frame, version)?;
                let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
                std::thread::sleep(wait.min(FETCH_WAIT_MAX));
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let responses = req
                    .topics
                    .into_iter()
                    .map(|t| {
                        let name = t.topic.as_str().to_string();
                        FetchableTopicResponse::default()
                            .with_topic(topic_name(&name))
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        let hw = state
                                            .next_offsets
                                            .get(&(name.clone(), p.partition))
                                            .copied()
                                            .unwrap_or(0);
                                        PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_high_watermark(hw)
                                            .with_last_stable_offset(hw)
                                            .with_log_start_offset(0)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let resp = FetchResponse::default().with_responses(responses);
                encode(api, version, cid, &resp).map(Some)
            }
            _ => bail!("api {api:?} is not served by the sink"),
        }
    }
}

/// Record count of the batches in a produce request's records.
fn count_records(data: &[u8]) -> i64 {
    crate::records::walk_batches(data, false)
        .iter()
        .map(|b| i64::from(b.records))
        .sum()
}

fn encode<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let hv = api.response_header_version(version);
    let size = header.compute_size(hv)? + body.compute_size(version)?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.extend_from_slice(&(size as i32).to_be_bytes());
    header.encode(&mut out, hv)?;
    body.encode(&mut out, version)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_client::KafkaClient;

    #[test]
    fn the_generator_client_can_create_produce_and_fetch_against_the_sink() {
        let addr = spawn("127.0.0.1:0", 1).expect("sink");
        let mut c = KafkaClient::connect(&addr.to_string(), Duration::from_secs(5)).unwrap();
        c.api_versions().unwrap();
        c.create_topic("t", 3, 1, &Default::default()).unwrap();
        assert_eq!(c.topic_partitions("t").unwrap(), Some(vec![0, 1, 2]));
        let batch = Bytes::from(crate::records::encode_batch(5, 100, 1));
        c.send_produce("t", -1, 1000, &[(1, batch.clone())])
            .unwrap();
        c.send_produce("t", -1, 1000, &[(1, batch)]).unwrap();
        let mut bases = Vec::new();
        for _ in 0..2 {
            let (_, _, v, body) = c.poll_response(Duration::from_secs(5)).unwrap().unwrap();
            let r = crate::kafka_client::decode_produce_response(body, v).unwrap();
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0);
            bases.push(p.base_offset);
        }
        assert_eq!(bases, vec![0, 5]);
        let f = c.fetch("t", &[(1, 0)], 0, 1, 1 << 20).unwrap();
        assert_eq!(f.responses[0].partitions[0].high_watermark, 10);
    }
}
