//! The web console on the admin listener (issue 20): `/ui` serves a page,
//! its script, its style sheet and its icon, all compiled into the binary
//! (`include_str!` of the files beside this one: nothing is fetched at run
//! time and there is no build step), and `/api/...` answers the page in
//! JSON.
//!
//! The JSON API asks the broker what a Kafka client would: every answer is
//! built by calling the broker's own Kafka handlers ([`crate::handlers`])
//! in process, on shard 0, with the request a client would send (Metadata,
//! ListOffsets, DescribeLogDirs, DescribeConfigs, CreateTopics,
//! DeleteTopics, Produce, Fetch, ListGroups, DescribeGroups, OffsetFetch).
//! So the console sees what clients see, partitions on other shards
//! included (the handlers forward to them), and it has no read or write
//! path of its own into storage or the group coordinator.
//!
//! State: none of its own. Each request builds its answer from the
//! handlers' responses and forgets it; the only per-request resource is the
//! Fetch budget a browse holds while it decodes ([`BROWSE_BYTES_MAX`]).
//! Whether writes are allowed is the broker's configuration
//! (`admin_read_only`), read on every request.
//!
//! Every write (create or delete a topic, produce) is a POST or DELETE and
//! is refused with 403 under `admin_read_only`. A POST must say
//! `Content-Type: application/json`: a cross-site HTML form cannot send
//! that type, and a cross-site script that sets it (or sends DELETE) needs
//! a CORS preflight, which this listener never grants.
//!
//! The page treats everything that comes from the broker (topic and group
//! names, keys, values, headers) as text: it builds the DOM with
//! `textContent`, and the Content-Security-Policy sent with every answer
//! ([`SECURITY_HEADERS`]) allows no inline script at all.
//!
//! Lives on: shard 0, like the admin listener that calls it.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use corelog_protocol::kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    describe_configs_request::DescribeConfigsResource,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_fetch_request::OffsetFetchRequestGroup,
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, FetchRequest,
    FetchResponse, GroupId, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use corelog_protocol::kafka_protocol::protocol::Decodable;
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_protocol::kafka_protocol::records::{
    Compression as WireCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use corelog_protocol::{Request, RequestHeader, ResponseError};
use serde_json::{json, Value};

use crate::handlers::{self, Reply, RequestContext};
use crate::shard::Shard;

mod text;

pub use text::{base64, percent_decode, query_param};

/// The page, its script and its style sheet, compiled in.
const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const FAVICON_SVG: &str = include_str!("favicon.svg");

/// Headers sent with every answer of the admin listener. The policy allows
/// scripts, styles and requests only from this origin and no inline script
/// or style attribute: even a value that slipped into the DOM as markup
/// could not run. `nosniff` keeps a browser from reading a JSON answer
/// (which holds user data) as a script or a page.
pub const SECURITY_HEADERS: &str =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
Cache-Control: no-store\r\n";

/// The most bytes of a request body (a produced record as JSON, a topic to
/// create); a larger one is answered 413 unread.
pub const REQUEST_BODY_BYTES_MAX: usize = 1 << 20;
/// The most records one browse returns, and the number when none is asked.
pub const BROWSE_RECORDS_MAX: usize = 500;
pub const BROWSE_RECORDS_DEFAULT: usize = 50;
/// The most record-batch bytes one browse reads from the partition, over
/// all its Fetches (their max_bytes). A first batch larger than this is
/// still read whole, as Fetch always returns the first batch.
pub const BROWSE_BYTES_MAX: usize = 1 << 20;
/// The most bytes a compressed batch may decompress to while browsing:
/// the broker's own bound on checking produced batches.
const BROWSE_DECOMPRESSED_BYTES_MAX: usize =
    corelog_storage::records::DECOMPRESSED_BYTES_MAX_DEFAULT;
/// Fetches one browse makes at most to fill its record count; a partition
/// of many small batches may need more than one.
const BROWSE_FETCHES_MAX: usize = 8;
/// The most partitions one create may ask for, well under Kafka's own
/// bounds: a typo in the form should not create a million partitions.
const CREATE_PARTITIONS_MAX: i32 = 10_000;
/// How long a create, delete or produce may take in the handler.
const WRITE_TIMEOUT_MS: i32 = 5_000;

/// An HTTP request as the admin listener read it.
#[derive(Debug)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The query string after `?`, still percent-encoded; "" when none.
    pub query: &'a str,
    /// Whether the request said `Content-Type: application/json`.
    pub json_body: bool,
    pub body: &'a [u8],
}

/// What the listener sends back.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    fn json(status: &'static str, value: &Value) -> HttpAnswer {
        HttpAnswer {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }

    fn ok(value: Value) -> HttpAnswer {
        HttpAnswer::json("200 OK", &value)
    }

    fn static_file(content_type: &'static str, text: &'static str) -> HttpAnswer {
        HttpAnswer {
            status: "200 OK",
            content_type,
            body: text.as_bytes().to_vec(),
        }
    }
}

/// Why a console request failed: the HTTP status and a reason for the user.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: &'static str,
    pub reason: String,
}

fn bad_request(reason: impl Into<String>) -> Failure {
    Failure {
        status: "400 Bad Request",
        reason: reason.into(),
    }
}

fn server_error(reason: impl Into<String>) -> Failure {
    Failure {
        status: "500 Internal Server Error",
        reason: reason.into(),
    }
}

/// A Kafka error code in a handler's answer, as the page shows it: the
/// broker refused (a topic that exists, a bad config), so 400 or 404, not
/// a failure of the console.
fn kafka_failure(what: &str, code: i16, message: Option<&StrBytes>) -> Failure {
    let status = if code == corelog_protocol::error_code::UNKNOWN_TOPIC_OR_PARTITION {
        "404 Not Found"
    } else {
        "400 Bad Request"
    };
    let mut reason = format!("{what}: {}", code_name(code));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        reason.push_str(": ");
        reason.push_str(m);
    }
    Failure { status, reason }
}

/// Kafka's name of an error code (`TOPIC_ALREADY_EXISTS`).
fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code).filter(|e| !matches!(e, ResponseError::Unknown(_))) {
        Some(e) => {
            let mut name = String::new();
            for (i, c) in format!("{e:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
        None => format!("error code {code}"),
    }
}

/// Whether a path is the console's (the page or its API).
pub fn is_console_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/") || path.starts_with("/api/")
}

/// Answers one console request. Never panics on input: every bad input is
/// a 4xx with its reason.
pub async fn answer(shard: &Rc<Shard>, request: &HttpRequest<'_>) -> HttpAnswer {
    match route(shard, request).await {
        Ok(answer) => answer,
        Err(f) => HttpAnswer::json(f.status, &json!({ "error": f.reason })),
    }
}

async fn route(shard: &Rc<Shard>, r: &HttpRequest<'_>) -> Result<HttpAnswer, Failure> {
    let write = match (r.method, r.path) {
        ("GET" | "HEAD", "/ui" | "/ui/" | "/ui/index.html") => {
            return Ok(HttpAnswer::static_file(
                "text/html; charset=utf-8",
                INDEX_HTML,
            ))
        }
        ("GET" | "HEAD", "/ui/app.js") => {
            return Ok(HttpAnswer::static_file(
                "text/javascript; charset=utf-8",
                APP_JS,
            ))
        }
        ("GET" | "HEAD", "/ui/app.css") => {
            return Ok(HttpAnswer::static_file("text/css; charset=utf-8", APP_CSS))
        }
        ("GET" | "HEAD", "/ui/favicon.svg") => {
            return Ok(HttpAnswer::static_file("image/svg+xml", FAVICON_SVG))
        }
        ("POST", "/api/topics" | "/api/messages") | ("DELETE", "/api/topic") => true,
        ("GET" | "HEAD", _) => false,
        _ => {
            return Err(Failure {
                status: "405 Method Not Allowed",
                reason: format!("{} {} is not served", r.method, r.path),
            })
        }
    };
    if write {
        if shard.config().admin_read_only {
            return Err(Failure {
                status: "403 Forbidden",
                reason: "the console is read-only (admin_read_only)".into(),
            });
        }
        if r.method == "POST" && !r.json_body {
            return Err(Failure {
                status: "415 Unsupported Media Type",
                reason: "a POST must send Content-Type: application/json".into(),
            });
        }
    }
    let q = r.query;
    // HEAD is answered as GET; the listener leaves the body out.
    let method = if r.method == "HEAD" { "GET" } else { r.method };
    let value = match (method, r.path) {
        ("GET", "/api/cluster") => cluster(shard).await?,
        ("GET", "/api/topics") => topics(shard).await?,
        ("GET", "/api/topic") => topic(shard, &required(q, "name")?).await?,
        ("GET", "/api/messages") => browse(shard, &BrowseQuery::parse(q)?).await?,
        ("GET", "/api/groups") => groups(shard).await?,
        ("GET", "/api/group") => group(shard, &required(q, "id")?).await?,
        ("POST", "/api/topics") => create_topic(shard, &NewTopic::parse(r.body)?).await?,
        ("DELETE", "/api/topic") => delete_topic(shard, &required(q, "name")?).await?,
        ("POST", "/api/messages") => produce(shard, &NewRecord::parse(r.body)?).await?,
        _ => {
            return Err(Failure {
                status: "404 Not Found",
                reason: format!("no such console path: {}", r.path),
            })
        }
    };
    Ok(HttpAnswer::ok(value))
}

/// A query parameter that must be present and non-empty.
fn required(query: &str, name: &str) -> Result<String, Failure> {
    match query_param(query, name).map_err(bad_request)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(bad_request(format!("missing query parameter {name:?}"))),
    }
}

/// A number in a query parameter, if present.
fn number<T: std::str::FromStr>(query: &str, name: &str) -> Result<Option<T>, Failure> {
    match query_param(query, name).map_err(bad_request)? {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| bad_request(format!("{name}={v:?} is not a number in range"))),
    }
}

// ------------------------------------------------------------ handlers ---

/// Calls the Kafka handler of `request` in process, as a client's request
/// on shard 0 would be at `version`, and reads its answer as the client
/// would: the bytes [`handlers::dispatch`] would write, decoded.
async fn ask<Resp: Decodable>(
    shard: &Rc<Shard>,
    version: i16,
    request: Request,
) -> Result<Resp, Failure> {
    let api_key = request.api_key();
    let header = RequestHeader {
        api_key,
        api_version: version,
        correlation_id: 0,
        client_id: Some(StrBytes::from_static_str("corelog-console")),
        header_version: api_key.request_header_version(version),
        unknown_tagged_fields: Default::default(),
    };
    // The console's own Fetch budget, for this request only: its browse
    // reads at most [`BROWSE_BYTES_MAX`].
    let budget = Rc::new(glommio::sync::Semaphore::new(BROWSE_BYTES_MAX as u64));
    let cx = RequestContext {
        shard,
        header: &header,
        client_host: "/console",
        fetch_budget: &budget,
    };
    // Boxed: the dispatch future holds every handler's, too deep a type to
    // nest inside the listener's own futures.
    let wire: Vec<u8> = match Box::pin(handlers::dispatch(&cx, request)).await {
        Ok(Reply::Bytes(b)) => b.to_vec(),
        Ok(Reply::Segments(segments, _permit)) => segments.concat(),
        Ok(Reply::None) => return Err(server_error(format!("{api_key:?} answered nothing"))),
        Err(close) => {
            return Err(server_error(format!(
                "{api_key:?} failed: {}",
                close.reason
            )))
        }
    };
    decode(&wire, api_key, version)
        .map_err(|e| server_error(format!("decoding the {api_key:?} answer: {e}")))
}

/// Decodes a response frame as it would go out on the wire.
fn decode<Resp: Decodable>(mut wire: &[u8], api_key: ApiKey, version: i16) -> Result<Resp, String> {
    let (_, mut body) = corelog_client::read_response(&mut wire, api_key, version)?;
    corelog_client::decode_response(&mut body, version)
}

async fn metadata(
    shard: &Rc<Shard>,
    topics: Option<Vec<String>>,
) -> Result<MetadataResponse, Failure> {
    use corelog_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .into_iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(&n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    ask(shard, 12, Request::Metadata(request)).await
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn s(v: &StrBytes) -> String {
    v.to_string()
}

/// The offsets ListOffsets answers for `timestamp` (-2 earliest, -1
/// latest, or a time in ms) for every partition named, by (topic,
/// partition); a partition answered with an error is left out.
async fn list_offsets(
    shard: &Rc<Shard>,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> Result<std::collections::HashMap<(String, i32), i64>, Failure> {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response: ListOffsetsResponse = ask(shard, 7, Request::ListOffsets(request)).await?;
    let mut out = std::collections::HashMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 {
                out.insert((s(&t.name.0), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}

/// Each partition's size on disk (DescribeLogDirs over every partition).
async fn sizes(
    shard: &Rc<Shard>,
) -> Result<std::collections::HashMap<(String, i32), i64>, Failure> {
    let response: DescribeLogDirsResponse = ask(
        shard,
        4,
        Request::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
    )
    .await?;
    let mut out = std::collections::HashMap::new();
    for dir in response.results {
        for t in dir.topics {
            for p in t.partitions {
                out.insert((s(&t.name.0), p.partition_index), p.partition_size);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- reads ---

async fn cluster(shard: &Rc<Shard>) -> Result<Value, Failure> {
    let md = metadata(shard, Some(Vec::new())).await?;
    let brokers: Vec<Value> = md
        .brokers
        .iter()
        .map(|b| {
            json!({
                "id": b.node_id.0,
                "host": s(&b.host),
                "port": b.port,
                "rack": b.rack.as_ref().map(s),
            })
        })
        .collect();
    Ok(json!({
        "cluster_id": md.cluster_id.as_ref().map(s),
        "controller_id": md.controller_id.0,
        "brokers": brokers,
        "shards": shard.shard_count(),
        "ready": shard.all_shards_ready() && !shard.is_stopping(),
        "read_only": shard.config().admin_read_only,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// One partition's row: leader, replicas, offsets and size.
fn partition_json(
    topic: &str,
    p: &corelog_protocol::kafka_protocol::messages::metadata_response::MetadataResponsePartition,
    start: &std::collections::HashMap<(String, i32), i64>,
    end: &std::collections::HashMap<(String, i32), i64>,
    size: &std::collections::HashMap<(String, i32), i64>,
) -> Value {
    let key = (topic.to_string(), p.partition_index);
    json!({
        "partition": p.partition_index,
        "error": (p.error_code != 0).then(|| code_name(p.error_code)),
        "leader": p.leader_id.0,
        "replicas": p.replica_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
        "isr": p.isr_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
        "log_start_offset": start.get(&key),
        "high_watermark": end.get(&key),
        "size_bytes": size.get(&key),
    })
}

/// Every topic with its partitions' offsets and sizes.
async fn topics(shard: &Rc<Shard>) -> Result<Value, Failure> {
    let md = metadata(shard, None).await?;
    let all: Vec<(String, i32)> = md
        .topics
        .iter()
        .filter_map(|t| Some((s(&t.name.as_ref()?.0), t)))
        .flat_map(|(n, t)| {
            t.partitions
                .iter()
                .map(move |p| (n.clone(), p.partition_index))
        })
        .collect();
    let (start, end) = if all.is_empty() {
        Default::default()
    } else {
        (
            list_offsets(shard, &all, -2).await?,
            list_offsets(shard, &all, -1).await?,
        )
    };
    let size = sizes(shard).await?;
    let mut out: Vec<Value> = Vec::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| s(&n.0)) else {
            continue;
        };
        let partitions: Vec<Value> = t
            .partitions
            .iter()
            .map(|p| partition_json(&name, p, &start, &end, &size))
            .collect();
        let sum = |m: &std::collections::HashMap<(String, i32), i64>| -> i64 {
            t.partitions
                .iter()
                .filter_map(|p| m.get(&(name.clone(), p.partition_index)))
                .sum()
        };
        out.push(json!({
            "name": name,
            "internal": t.is_internal,
            "error": (t.error_code != 0).then(|| code_name(t.error_code)),
            "partition_count": t.partitions.len(),
            "replication_factor": t.partitions.first().map_or(0, |p| p.replica_nodes.len()),
            "records": sum(&end) - sum(&start),
            "size_bytes": sum(&size),
            "partitions": partitions,
        }));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({ "topics": out }))
}

/// One topic: its partitions and its configs.
async fn topic(shard: &Rc<Shard>, name: &str) -> Result<Value, Failure> {
    let md = metadata(shard, Some(vec![name.to_string()])).await?;
    let Some(t) = md.topics.first() else {
        return Err(server_error("Metadata answered no topic"));
    };
    if t.error_code != 0 {
        return Err(kafka_failure(
            &format!("topic {name:?}"),
            t.error_code,
            None,
        ));
    }
    let all: Vec<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (name.to_string(), p.partition_index))
        .collect();
    let start = list_offsets(shard, &all, -2).await?;
    let end = list_offsets(shard, &all, -1).await?;
    let size = sizes(shard).await?;
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .map(|p| partition_json(name, p, &start, &end, &size))
        .collect();
    // Resource type 2 is a topic.
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let described: DescribeConfigsResponse =
        ask(shard, 4, Request::DescribeConfigs(request)).await?;
    let mut configs: Vec<Value> = Vec::new();
    for r in &described.results {
        if r.error_code != 0 {
            return Err(kafka_failure(
                "DescribeConfigs",
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
        for c in &r.configs {
            configs.push(json!({
                "name": s(&c.name),
                // A sensitive value is never shown (Kafka answers null).
                "value": c.value.as_ref().map(s),
                "source": config_source(c.config_source),
                "read_only": c.read_only,
                "sensitive": c.is_sensitive,
            }));
        }
    }
    Ok(json!({
        "name": name,
        "topic_id": t.topic_id.to_string(),
        "internal": t.is_internal,
        "partitions": partitions,
        "configs": configs,
    }))
}

/// DescribeConfigs' config_source, as Kafka's tools name it.
fn config_source(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Where a browse starts and how much it returns.
#[derive(Debug, PartialEq, Eq)]
struct BrowseQuery {
    topic: String,
    partition: i32,
    start: BrowseStart,
    limit: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum BrowseStart {
    /// The partition's first offset.
    Earliest,
    /// `limit` records before the high watermark.
    Latest,
    Offset(i64),
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl BrowseQuery {
    fn parse(query: &str) -> Result<BrowseQuery, Failure> {
        let topic = required(query, "topic")?;
        let partition = number::<i32>(query, "partition")?.unwrap_or(0);
        if partition < 0 {
            return Err(bad_request("partition must be 0 or more"));
        }
        let limit = number::<usize>(query, "limit")?.unwrap_or(BROWSE_RECORDS_DEFAULT);
        if limit == 0 || limit > BROWSE_RECORDS_MAX {
            return Err(bad_request(format!(
                "limit must be 1 to {BROWSE_RECORDS_MAX}"
            )));
        }
        let offset = number::<i64>(query, "offset")?;
        let timestamp = number::<i64>(query, "timestamp")?;
        let from = query_param(query, "from").map_err(bad_request)?;
        let start = match (offset, timestamp, from.as_deref()) {
            (Some(_), Some(_), _) => {
                return Err(bad_request("give an offset or a timestamp, not both"))
            }
            (Some(o), None, _) if o >= 0 => BrowseStart::Offset(o),
            (Some(_), None, _) => return Err(bad_request("offset must be 0 or more")),
            (None, Some(t), _) if t >= 0 => BrowseStart::Timestamp(t),
            (None, Some(_), _) => return Err(bad_request("timestamp must be 0 or more")),
            (None, None, None | Some("" | "earliest")) => BrowseStart::Earliest,
            (None, None, Some("latest")) => BrowseStart::Latest,
            (None, None, Some(other)) => {
                return Err(bad_request(format!("from={other:?}: earliest or latest")))
            }
        };
        Ok(BrowseQuery {
            topic,
            partition,
            start,
            limit,
        })
    }
}

/// Reads up to `limit` records of one partition from where the query says.
async fn browse(shard: &Rc<Shard>, q: &BrowseQuery) -> Result<Value, Failure> {
    let tp = [(q.topic.clone(), q.partition)];
    let earliest = list_offsets(shard, &tp, -2).await?;
    let latest = list_offsets(shard, &tp, -1).await?;
    let (Some(&log_start), Some(&high_watermark)) = (earliest.get(&tp[0]), latest.get(&tp[0]))
    else {
        return Err(Failure {
            status: "404 Not Found",
            reason: format!("no partition {} of topic {:?}", q.partition, q.topic),
        });
    };
    let mut offset = match q.start {
        BrowseStart::Earliest => log_start,
        BrowseStart::Latest => (high_watermark - q.limit as i64).max(log_start),
        BrowseStart::Offset(o) => o.max(log_start),
        BrowseStart::Timestamp(t) => match list_offsets(shard, &tp, t).await?.get(&tp[0]) {
            // -1: no record at or after that time.
            Some(&o) if o >= 0 => o,
            _ => high_watermark,
        },
    };
    let mut records: Vec<Value> = Vec::new();
    let mut bytes_read = 0usize;
    for _ in 0..BROWSE_FETCHES_MAX {
        if records.len() >= q.limit || offset >= high_watermark || bytes_read >= BROWSE_BYTES_MAX {
            break;
        }
        // What is left of the browse's bytes; Fetch still returns the
        // first batch whole if it is larger.
        let max_bytes = BROWSE_BYTES_MAX - bytes_read;
        let (batch_records, read) =
            fetch_records(shard, &q.topic, q.partition, offset, max_bytes).await?;
        bytes_read += read;
        let before = offset;
        for r in batch_records {
            // The first batch may start before the offset asked for.
            if r.offset < offset {
                continue;
            }
            offset = r.offset + 1;
            if r.control {
                continue;
            }
            records.push(record_json(&r));
            if records.len() >= q.limit {
                break;
            }
        }
        if offset == before {
            // Nothing past `offset` came back (a batch of control records
            // only moves it; an empty answer means the end).
            break;
        }
    }
    Ok(json!({
        "topic": q.topic,
        "partition": q.partition,
        "log_start_offset": log_start,
        "high_watermark": high_watermark,
        "next_offset": offset,
        "records": records,
    }))
}

/// One Fetch of a partition from `offset`: its records, decoded, and the
/// bytes of record batches it read.
async fn fetch_records(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: usize,
) -> Result<(Vec<Record>, usize), Failure> {
    let max_bytes = i32::try_from(max_bytes.min(BROWSE_BYTES_MAX)).unwrap_or(i32::MAX);
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_fetch_offset(offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(max_bytes)])]);
    let response: FetchResponse = ask(shard, 12, Request::Fetch(request)).await?;
    let mut records = Vec::new();
    let mut read = 0usize;
    for t in response.responses {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(kafka_failure("Fetch", p.error_code, None));
            }
            if let Some(mut batches) = p.records {
                read += batches.len();
                records.extend(decode_batches(&mut batches)?);
            }
        }
    }
    Ok((records, read))
}

/// Every record of the batches in `bytes`. A batch cut short at the end
/// (Fetch may end on a partial batch) is left out, as clients do.
fn decode_batches(bytes: &mut Bytes) -> Result<Vec<Record>, Failure> {
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let length = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let Ok(length) = usize::try_from(length) else {
            return Err(server_error("a batch of negative length"));
        };
        if bytes.len() < 12 + length {
            break;
        }
        let set = RecordBatchDecoder::decode_with_custom_compression(
            bytes,
            Some(
                |section: &mut Bytes, compression: WireCompression| -> anyhow::Result<Bytes> {
                    decompress(section, compression)
                },
            ),
        )
        .map_err(|e| server_error(format!("decoding a record batch: {e}")))?;
        out.extend(set.records);
    }
    Ok(out)
}

/// Decompresses a batch's records section with the broker's own codecs
/// (`corelog_storage::codec`, bounded), so that browsing reads every codec
/// the broker accepts.
fn decompress(section: &mut Bytes, compression: WireCompression) -> anyhow::Result<Bytes> {
    use corelog_storage::codec::{decompress_into, Compression};
    let codec = match compression {
        WireCompression::None => Compression::None,
        WireCompression::Gzip => Compression::Gzip,
        WireCompression::Snappy => Compression::Snappy,
        WireCompression::Lz4 => Compression::Lz4,
        WireCompression::Zstd => Compression::Zstd,
    };
    let mut out = Vec::new();
    decompress_into(codec, section, BROWSE_DECOMPRESSED_BYTES_MAX, &mut out)?;
    Ok(Bytes::from(out))
}

/// A record as the page gets it: keys, values and header values in
/// base64 (they are bytes, not text); the page decides how to show them.
fn record_json(r: &Record) -> Value {
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": s(k), "value": v.as_deref().map(base64) }))
        .collect();
    json!({
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": match r.timestamp_type {
            TimestampType::Creation => "CreateTime",
            TimestampType::LogAppend => "LogAppendTime",
        },
        "key": r.key.as_deref().map(base64),
        "value": r.value.as_deref().map(base64),
        "headers": headers,
        "transactional": r.transactional,
    })
}

async fn groups(shard: &Rc<Shard>) -> Result<Value, Failure> {
    let listed: ListGroupsResponse =
        ask(shard, 4, Request::ListGroups(ListGroupsRequest::default())).await?;
    if listed.error_code != 0 {
        return Err(kafka_failure("ListGroups", listed.error_code, None));
    }
    let mut out: Vec<Value> = listed
        .groups
        .iter()
        .map(|g| {
            json!({
                "group_id": s(&g.group_id.0),
                "protocol_type": s(&g.protocol_type),
                "state": s(&g.group_state),
            })
        })
        .collect();
    out.sort_by(|a, b| a["group_id"].as_str().cmp(&b["group_id"].as_str()));
    Ok(json!({ "groups": out }))
}

/// One group: its members and assignments, and its committed offsets with
/// the lag behind each partition's high watermark.
async fn group(shard: &Rc<Shard>, id: &str) -> Result<Value, Failure> {
    let gid = GroupId(StrBytes::from_string(id.to_string()));
    let described: DescribeGroupsResponse = ask(
        shard,
        5,
        Request::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![gid.clone()])),
    )
    .await?;
    let Some(g) = described.groups.first() else {
        return Err(server_error("DescribeGroups answered no group"));
    };
    if g.error_code != 0 {
        return Err(kafka_failure(&format!("group {id:?}"), g.error_code, None));
    }
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| {
            let assignment: Vec<Value> = if s(&g.protocol_type) == "consumer"
                && !m.member_assignment.is_empty()
            {
                match corelog_protocol::consumer_protocol::decode_assignment(&m.member_assignment) {
                    Ok(a) => a
                        .assigned_partitions
                        .iter()
                        .map(|tp| json!({ "topic": s(&tp.topic.0), "partitions": tp.partitions }))
                        .collect(),
                    Err(_) => Vec::new(),
                }
            } else {
                Vec::new()
            };
            json!({
                "member_id": s(&m.member_id),
                "group_instance_id": m.group_instance_id.as_ref().map(s),
                "client_id": s(&m.client_id),
                "client_host": s(&m.client_host),
                "assignment": assignment,
            })
        })
        .collect();
    let fetched: OffsetFetchResponse = ask(
        shard,
        8,
        Request::OffsetFetch(OffsetFetchRequest::default().with_groups(
            vec![OffsetFetchRequestGroup::default()
            .with_group_id(gid)
            .with_topics(None)],
        )),
    )
    .await?;
    // Committed offsets, and partitions a member is assigned that have
    // none yet (shown without a lag, as Kafka's tools show them).
    let mut committed: std::collections::BTreeMap<(String, i32), Option<i64>> = Default::default();
    for fg in &fetched.groups {
        if fg.error_code != 0 {
            return Err(kafka_failure("OffsetFetch", fg.error_code, None));
        }
        for t in &fg.topics {
            for p in &t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    committed.insert((s(&t.name.0), p.partition_index), Some(p.committed_offset));
                }
            }
        }
    }
    for m in &members {
        for a in m["assignment"].as_array().into_iter().flatten() {
            let topic = a["topic"].as_str().unwrap_or_default();
            for p in a["partitions"].as_array().into_iter().flatten() {
                if let Some(p) = p.as_i64().and_then(|p| i32::try_from(p).ok()) {
                    committed.entry((topic.to_string(), p)).or_insert(None);
                }
            }
        }
    }
    let tps: Vec<(String, i32)> = committed.keys().cloned().collect();
    let ends = if tps.is_empty() {
        Default::default()
    } else {
        list_offsets(shard, &tps, -1).await?
    };
    let offsets: Vec<Value> = committed
        .iter()
        .map(|((t, p), c)| {
            let end = ends.get(&(t.clone(), *p)).copied();
            json!({
                "topic": t,
                "partition": p,
                "committed_offset": c,
                "high_watermark": end,
                "lag": end.zip(*c).map(|(e, c)| (e - c).max(0)),
            })
        })
        .collect();
    let total_lag: i64 = offsets.iter().filter_map(|o| o["lag"].as_i64()).sum();
    Ok(json!({
        "group_id": id,
        "state": s(&g.group_state),
        "protocol_type": s(&g.protocol_type),
        "protocol": s(&g.protocol_data),
        "members": members,
        "offsets": offsets,
        "total_lag": total_lag,
    }))
}

// --------------------------------------------------------------- writes ---

/// A topic to create, as the page sends it.
#[derive(Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopic {
    name: String,
    #[serde(default = "one")]
    partitions: i32,
    /// -1: the broker's default.
    #[serde(default = "minus_one")]
    replication_factor: i16,
    #[serde(default)]
    configs: std::collections::BTreeMap<String, String>,
}

fn one() -> i32 {
    1
}

fn minus_one() -> i16 {
    -1
}

impl NewTopic {
    fn parse(body: &[u8]) -> Result<NewTopic, Failure> {
        let t: NewTopic = serde_json::from_slice(body)
            .map_err(|e| bad_request(format!("bad topic JSON: {e}")))?;
        if t.name.is_empty() {
            return Err(bad_request("a topic needs a name"));
        }
        if t.partitions < 1 || t.partitions > CREATE_PARTITIONS_MAX {
            return Err(bad_request(format!(
                "partitions must be 1 to {CREATE_PARTITIONS_MAX}"
            )));
        }
        if t.replication_factor == 0 || t.replication_factor < -1 {
            return Err(bad_request("replication_factor must be 1 or more (or -1)"));
        }
        Ok(t)
    }
}

async fn create_topic(shard: &Rc<Shard>, t: &NewTopic) -> Result<Value, Failure> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(WRITE_TIMEOUT_MS)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(&t.name))
            .with_num_partitions(t.partitions)
            .with_replication_factor(t.replication_factor)
            .with_configs(
                t.configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            )]);
    let response: CreateTopicsResponse = ask(shard, 7, Request::CreateTopics(request)).await?;
    for r in &response.topics {
        if r.error_code != 0 {
            return Err(kafka_failure(
                &format!("creating {:?}", t.name),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(json!({ "created": t.name }))
}

async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<Value, Failure> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(WRITE_TIMEOUT_MS)
        .with_topic_names(vec![topic_name(name)]);
    let response: DeleteTopicsResponse = ask(shard, 5, Request::DeleteTopics(request)).await?;
    for r in &response.responses {
        if r.error_code != 0 {
            return Err(kafka_failure(
                &format!("deleting {name:?}"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(json!({ "deleted": name }))
}

/// A test record, as the page sends it: text key, value and headers.
#[derive(Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRecord {
    topic: String,
    /// None: by the key's hash as Kafka's clients do, or 0 without a key.
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

impl NewRecord {
    fn parse(body: &[u8]) -> Result<NewRecord, Failure> {
        let r: NewRecord = serde_json::from_slice(body)
            .map_err(|e| bad_request(format!("bad record JSON: {e}")))?;
        if r.topic.is_empty() {
            return Err(bad_request("a record needs a topic"));
        }
        if r.partition.is_some_and(|p| p < 0) {
            return Err(bad_request("partition must be 0 or more"));
        }
        Ok(r)
    }
}

async fn produce(shard: &Rc<Shard>, r: &NewRecord) -> Result<Value, Failure> {
    let partition = match r.partition {
        Some(p) => p,
        None => match &r.key {
            None => 0,
            Some(key) => {
                let md = metadata(shard, Some(vec![r.topic.clone()])).await?;
                let count = md.topics.first().map_or(0, |t| t.partitions.len());
                if count == 0 {
                    return Err(Failure {
                        status: "404 Not Found",
                        reason: format!("no topic {:?}", r.topic),
                    });
                }
                corelog_client::partitioner::partition_for_key(key.as_bytes(), count) as i32
            }
        },
    };
    let mut headers: corelog_protocol::kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>> =
        Default::default();
    for (k, v) in &r.headers {
        headers.insert(
            StrBytes::from_string(k.clone()),
            Some(Bytes::from(v.clone().into_bytes())),
        );
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: r.key.as_ref().map(|k| Bytes::from(k.clone().into_bytes())),
        value: r
            .value
            .as_ref()
            .map(|v| Bytes::from(v.clone().into_bytes())),
        headers,
        delete_horizon: false,
    };
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: WireCompression::None,
        },
    )
    .map_err(|e| bad_request(format!("encoding the record: {e}")))?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(WRITE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(&r.topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.freeze()))])]);
    let response: ProduceResponse = ask(shard, 9, Request::Produce(request)).await?;
    // One partition was asked for: its answer is the only one.
    let Some(p) = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .next()
    else {
        return Err(server_error("Produce answered no partition"));
    };
    if p.error_code != 0 {
        return Err(kafka_failure(
            &format!("producing to {:?} partition {partition}", r.topic),
            p.error_code,
            p.error_message.as_ref(),
        ));
    }
    Ok(json!({ "topic": r.topic, "partition": p.index, "offset": p.base_offset }))
}

#[cfg(test)]
mod tests;
