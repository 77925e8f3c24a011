//! The in-process test harness: a broker of N shards on a loopback port,
//! run by `corelog_server::run_until` on a thread of the test process and
//! stopped and joined when dropped, and a blocking Kafka client
//! (`corelog_client`'s).
//!
//! Several servers may run in one test process, one after another or at
//! once: each has its own data directory (a temporary one unless given),
//! port and ready file, and the server installs no signal handling and no
//! panic hook when run in-process. What is shared by the whole process:
//!
//! - Panics. The `corelog` binary makes any panic abort the process; this
//!   harness does not (the panic hook is process-global and would end every
//!   test of the binary). A panic in a shard unwinds that shard's thread
//!   only; [`TestServer::stop`] then fails the test with the shard's error,
//!   and a server that does not stop within [`STOP_TIMEOUT`] is left
//!   running (leaked) with a message rather than hanging the test.
//! - `RLIMIT_NOFILE`: each start raises the soft limit to the hard one.
//! - Cores: with no more shards than cores, shard `i` of every server is
//!   pinned to core `i`, so servers running at once share those cores.

#![allow(dead_code)]

use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corelog_client::{Connection, Options};
use corelog_server::ServerConfig;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::batch::{validate_prefix, BatchHeader};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long a server may take to serve, or to stop once asked.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on every read and write of the test client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

/// A broker running in this process. Dropping it stops and joins it.
pub struct TestServer {
    port: u16,
    data_dir: PathBuf,
    /// The temporary data directory, when the server made its own.
    _own_dir: Option<tempfile::TempDir>,
    /// Holds the ready file.
    _ready_dir: tempfile::TempDir,
    /// Keeps the port from being handed to anyone else (see [`reserve_port`]).
    _port: OwnedFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// A server of `shards` shards with a temporary data directory.
    pub fn start(shards: usize) -> TestServer {
        TestServer::start_with(shards, None, |_| {})
    }

    /// A server of `shards` shards on `data_dir` (for restarts: the
    /// directory outlives the server).
    pub fn start_in(data_dir: &Path, shards: usize) -> TestServer {
        TestServer::start_with(shards, Some(data_dir), |_| {})
    }

    /// A server of `shards` shards on `data_dir` (a temporary one if None),
    /// with `configure` applied to the default settings. The harness sets
    /// `data_dir`, `listen`, `cores` and `ready_file` after it. Returns once
    /// every shard serves (the ready file is written); panics if the server
    /// fails first or takes longer than [`START_TIMEOUT`].
    pub fn start_with(
        shards: usize,
        data_dir: Option<&Path>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let own_dir = match data_dir {
            Some(_) => None,
            None => Some(
                tempfile::Builder::new()
                    .prefix("corelog-server-test-")
                    .tempdir()
                    .expect("temp data dir"),
            ),
        };
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| own_dir.as_ref().expect("own dir").path().to_path_buf());
        let ready_dir = tempfile::tempdir().expect("ready file dir");
        let ready_file = ready_dir.path().join("ready.json");
        let (reservation, port) = reserve_port();
        let mut config = ServerConfig::default();
        configure(&mut config);
        config.data_dir = data_dir.clone();
        config.listen = format!("127.0.0.1:{port}").parse().expect("address");
        config.cores = shards;
        config.ready_file = Some(ready_file.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("corelog-{port}"))
            .spawn({
                let stop = stop.clone();
                move || corelog_server::run_until(config, stop)
            })
            .expect("spawn server thread");
        let mut server = TestServer {
            port,
            data_dir,
            _own_dir: own_dir,
            _ready_dir: ready_dir,
            _port: reservation,
            stop,
            thread: Some(thread),
        };
        let started = Instant::now();
        while !ready_file.exists() {
            if server.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let result = server.thread.take().expect("thread").join();
                panic!("the server on port {port} stopped before it served: {result:?}");
            }
            if started.elapsed() > START_TIMEOUT {
                panic!("the server on port {port} did not serve within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as a Kafka client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// Stops the server (as SIGTERM stops the binary: in-flight requests
    /// finish, partitions are flushed and checkpointed) and asserts that it
    /// stopped cleanly.
    pub fn stop(mut self) {
        if let Err(e) = self.shut_down() {
            panic!("{e}");
        }
    }

    fn shut_down(&mut self) -> Result<(), String> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Relaxed);
        let started = Instant::now();
        while !thread.is_finished() {
            if started.elapsed() > STOP_TIMEOUT {
                // Leak the thread: joining would hang the test.
                return Err(format!(
                    "the server on port {} did not stop within {STOP_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the server on port {} failed: {e}", self.port)),
            Err(_) => Err(format!("the server thread on port {} panicked", self.port)),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Err(e) = self.shut_down() {
            if std::thread::panicking() {
                eprintln!("{e}");
            } else {
                panic!("{e}");
            }
        }
    }
}

/// A free port of 127.0.0.1, held by a bound (not listening) socket with
/// SO_REUSEPORT until the returned descriptor is closed: the server's
/// listeners (SO_REUSEPORT too) can bind it, and no other socket of the
/// machine is given it meanwhile, so servers started at once never share
/// a port (a port found free and released could be found again by the next
/// server before the first one binds it, and SO_REUSEPORT would then let
/// both listen on it).
pub fn reserve_port() -> (OwnedFd, u16) {
    // SAFETY: plain socket calls on a descriptor this function owns, with
    // pointers to locals of the right sizes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let rc = libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_REUSEPORT: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        addr.sin_port = 0;
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let rc = libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
        (fd, u16::from_be(addr.sin_port))
    }
}

/// A blocking Kafka client over `corelog_client`, which sends requests as
/// they are (no api-versions handshake). [`Client::request`] sends one
/// request and reads its answer; [`Client::send`] and [`Client::receive`]
/// split the two, for pipelining.
pub struct Client {
    conn: Connection,
}

/// Named in the broker's logs as the harness's client.
const CLIENT_ID: &str = "corelog-server-test";

impl Client {
    pub fn connect(port: u16) -> Client {
        let options = Options {
            client_id: CLIENT_ID,
            connect_timeout: IO_TIMEOUT,
            request_timeout: IO_TIMEOUT,
            api_versions_handshake: false,
        };
        let conn = Connection::connect(&format!("127.0.0.1:{port}"), &options)
            .unwrap_or_else(|e| panic!("connect to broker: {e}"));
        Client { conn }
    }

    pub fn stream(&self) -> &TcpStream {
        self.conn.stream()
    }

    /// Sends `request` as `api_key` version `version` and decodes the answer.
    /// Panics if the broker closes the connection instead.
    pub fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.try_request(api_key, version, request)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"))
    }

    pub fn try_request<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        self.conn
            .request(api_key, version, request)
            .map_err(|e| e.to_string())
    }

    /// Writes one request without reading its answer; returns its
    /// correlation id.
    pub fn send<Req: Encodable>(&mut self, api_key: ApiKey, version: i16, request: &Req) -> i32 {
        self.conn
            .send(api_key, version, request)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"))
    }

    /// Reads the next answer, which must be that to `correlation_id`, an
    /// `api_key` request of version `version`.
    pub fn receive<Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Resp {
        self.conn
            .receive(api_key, version, correlation_id)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"))
    }

    /// Creates a topic (CreateTopics v7) and asserts success.
    pub fn create_topic(&mut self, name: &str, partitions: i32) {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(10_000);
        let resp: CreateTopicsResponse = self.request(ApiKey::CreateTopics, 7, &req);
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(
            resp.topics[0].error_code, 0,
            "creating {name}: {:?}",
            resp.topics[0].error_message
        );
    }

    /// Metadata v12 for all topics: proves the broker still answers.
    pub fn metadata(&mut self) -> MetadataResponse {
        let resp: MetadataResponse = self.request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        );
        assert_eq!(resp.brokers.len(), 1);
        resp
    }

    /// The partition count Metadata reports for `name`, or None if unknown.
    pub fn partition_count(&mut self, name: &str) -> Option<usize> {
        self.metadata()
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
            .filter(|t| t.error_code == 0)
            .map(|t| t.partitions.len())
    }
}

/// A request frame: size, header (with the harness's client id), body.
pub fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Result<Bytes, String> {
    corelog_client::encode_request(api_key, version, correlation_id, CLIENT_ID, request)
        .map(BytesMut::freeze)
}

/// Reads one response frame: its correlation id and the body after the
/// header.
pub fn read_response(
    stream: &mut impl std::io::Read,
    api_key: ApiKey,
    version: i16,
) -> Result<(i32, Bytes), String> {
    corelog_client::read_response(stream, api_key, version)
}

/// Whether the partition directory `<data>/<topic>-<p>` exists.
pub fn partition_dir_exists(data_dir: &Path, topic: &str, partition: i32) -> bool {
    data_dir.join(format!("{topic}-{partition}")).is_dir()
}

/// A valid uncompressed batch of `spec` (base offset 0).
pub fn records(spec: &BatchSpec) -> Bytes {
    Bytes::from(batch(spec))
}

/// A batch of `records` records of `value_bytes` bytes, every value byte
/// `fill`.
pub fn records_of(records: usize, value_bytes: usize, fill: u8) -> Bytes {
    self::records(&BatchSpec {
        records,
        value_bytes,
        fill,
        ..BatchSpec::default()
    })
}

/// A Produce request with one batch per entry `(topic, partition, batch)`,
/// topics in order of first appearance, partitions in the order given.
pub fn produce_request(acks: i16, batches: &[(&str, i32, Bytes)]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (name, partition, records) in batches {
        let data = PartitionProduceData::default()
            .with_index(*partition)
            .with_records(Some(records.clone()));
        match topics.iter_mut().find(|t| t.name == topic(name)) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(topic(name))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(topics)
}

/// The Fetch version the tests speak (v12: topics by name, sessions).
pub const FETCH_VERSION: i16 = 12;
pub const PRODUCE_VERSION: i16 = 9;

/// A sessionless Fetch (v12 fields) of `(topic, partition, fetch_offset,
/// partition_max_bytes)`, topics in order of first appearance.
pub fn fetch_request(
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partitions: &[(&str, i32, i64, i32)],
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (name, partition, offset, partition_max) in partitions {
        let p = FetchPartition::default()
            .with_partition(*partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(*offset)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(*partition_max);
        match topics.iter_mut().find(|t| t.topic == topic(name)) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic(name))
                    .with_partitions(vec![p]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The whole batches of a Fetch answer's records, each validated (CRC
/// included), with the byte its values are filled with (that of the
/// batch's last value byte). A partial batch at the end is left out, as
/// clients do.
pub fn fetched_batches(records: Option<&Bytes>) -> Vec<(BatchHeader, u8)> {
    let mut out = Vec::new();
    let Some(mut rest) = records.map(|r| &r[..]) else {
        return out;
    };
    while !rest.is_empty() {
        // A header that does not parse is a partial batch; one that does
        // must validate.
        if BatchHeader::parse(rest).is_err() {
            break;
        }
        let header = validate_prefix(rest).unwrap_or_else(|e| panic!("fetched a bad batch: {e}"));
        // The last record ends with its value, then a 0 header count.
        out.push((header, rest[header.total_bytes - 2]));
        rest = &rest[header.total_bytes..];
    }
    out
}
