//! `corelog serve --ready-file PATH`: the file appears once the broker
//! serves, says who serves where, is gone after a clean stop, and a broker
//! that cannot serve never writes it (nor leaves an old one behind).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, s, Broker};
use corelog_protocol::kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

#[test]
fn ready_file_names_the_serving_broker_and_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Broker::start_with(dir.path(), port, 2);
    let ready = &broker.ready;
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(
        ready["pid"].as_u64(),
        Some(u64::from(broker.pid())),
        "{ready}"
    );
    assert_eq!(ready["listen"].as_str(), Some(addr.as_str()), "{ready}");
    assert_eq!(ready["advertised"].as_str(), Some(addr.as_str()), "{ready}");
    assert_eq!(ready["shards"].as_u64(), Some(2), "{ready}");
    let write_bytes = corelog_server::ServerConfig::default()
        .base_log_config()
        .write_bytes_max;
    assert_eq!(
        ready["write_bytes_max"].as_u64(),
        Some(write_bytes as u64),
        "{ready}"
    );

    // It serves: ApiVersions and Metadata are answered at once.
    let mut c = broker.client();
    let versions: ApiVersionsResponse = c.request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("ready-file-test"))
            .with_client_software_version(s("1.0")),
    );
    assert_eq!(versions.error_code, 0);
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Metadata as i16));
    let md = c.metadata();
    assert_eq!(md.brokers[0].port, i32::from(port));
    drop(c);

    // A clean stop takes the file away.
    let ready_file = broker.ready_file.clone();
    assert!(ready_file.is_file());
    broker.stop();
    assert!(
        !ready_file.exists(),
        "{} left after a clean stop",
        ready_file.display()
    );
}

#[test]
fn a_broker_that_cannot_serve_writes_no_ready_file_and_removes_an_old_one() {
    let dir = tempfile::tempdir().unwrap();
    // The port is taken (without SO_REUSEPORT), so the shard cannot listen
    // and the broker exits without ever serving.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ready_file = dir.path().join("ready.json");
    std::fs::write(&ready_file, "left by an earlier run").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corelog"))
        .args(["serve", "--cores", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--ready-file")
        .arg(&ready_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn corelog serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker kept running on a port it cannot listen on");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "exit status {status}");
    assert!(
        !ready_file.exists(),
        "a broker that never served left {}",
        ready_file.display()
    );
    drop(taken);
}
