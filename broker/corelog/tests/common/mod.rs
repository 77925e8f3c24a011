//! Test helpers: a real `corelog serve` child process on 127.0.0.1, killed
//! when dropped, and a blocking Kafka client (`corelog_client`'s).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corelog_client::{Connection, Options};
use corelog_protocol::kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use corelog_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

mod ready;
pub use ready::{free_port, wait_for_ready_file};

/// How long a broker may take to write its ready file or to exit.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on every request/response exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A running broker. Dropping it kills the process (SIGKILL) and reaps it.
pub struct Broker {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub port: u16,
    /// The `--ready-file` the broker wrote once it served, and its JSON.
    pub ready_file: PathBuf,
    pub ready: serde_json::Value,
    /// What the broker logged so far, line by line.
    log: Arc<Mutex<Vec<String>>>,
    /// Holds the ready file; removed with the broker.
    _ready_dir: tempfile::TempDir,
}

impl Broker {
    /// Starts `corelog serve` with 2 shards on a free port of 127.0.0.1.
    pub fn start(data_dir: &Path) -> Broker {
        let port = free_port();
        Broker::start_on(data_dir, port)
    }

    pub fn start_on(data_dir: &Path, port: u16) -> Broker {
        Broker::start_with(data_dir, port, 2)
    }

    /// Starts `corelog serve --cores <cores>` on 127.0.0.1:`port` and waits
    /// until it serves: until it wrote its `--ready-file`. Panics if it
    /// exits first or takes longer than [`START_TIMEOUT`].
    pub fn start_with(data_dir: &Path, port: u16, cores: usize) -> Broker {
        let ready_dir = tempfile::tempdir().expect("ready file directory");
        let ready_file = ready_dir.path().join("ready.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_corelog"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--cores")
            .arg(cores.to_string())
            .arg("--ready-file")
            .arg(&ready_file)
            .env("CORELOG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corelog");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        // Forwards the broker's log to the test output and keeps it; reading
        // it also keeps the broker from blocking on a full pipe.
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[corelog:{port}] {line}");
                    log.lock().unwrap().push(line);
                }
            }
        });
        let mut broker = Broker {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            port,
            ready_file,
            ready: serde_json::Value::Null,
            log,
            _ready_dir: ready_dir,
        };
        let child = broker.child.as_mut().expect("running");
        match wait_for_ready_file(child, &broker.ready_file, START_TIMEOUT) {
            Ok(ready) => broker.ready = ready,
            Err(e) => panic!("broker on port {port} did not serve: {e}"),
        }
        broker
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The first line the broker logged that contains `needle`, waiting
    /// up to `timeout` for it (the log is read by another thread, so a line
    /// written before the ready file may still be on its way).
    pub fn log_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let started = Instant::now();
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned();
            if found.is_some() || started.elapsed() > timeout {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM)");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "broker exited with {status}");
                return;
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking Kafka client over `corelog_client`: one request at a time,
/// sent as it is (no api-versions handshake).
pub struct Client {
    conn: Connection,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let options = Options {
            client_id: "corelog-test",
            connect_timeout: IO_TIMEOUT,
            request_timeout: IO_TIMEOUT,
            api_versions_handshake: false,
        };
        let conn = Connection::connect(&format!("127.0.0.1:{port}"), &options)
            .unwrap_or_else(|e| panic!("connect to broker: {e}"));
        Client { conn }
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
}
