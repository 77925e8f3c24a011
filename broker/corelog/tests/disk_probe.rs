//! The broker uses a disk probe of its data directory: `corelog tune
//! --probe-disk` writes io-properties.toml, and `corelog serve` sizes its
//! group-commit writes from it and says so at start-up.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn broker_sizes_group_commit_writes_from_a_disk_probe_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Command::new(env!("CARGO_BIN_EXE_corelog"))
        .args(["tune", "--probe-disk"])
        .arg(dir.path())
        .args(["--probe-file-size-mib", "8", "--probe-step-ms", "50"])
        .args([
            "--probe-block-sizes-kib",
            "16,64,256",
            "--probe-queue-depths",
            "1,2",
        ])
        .args(["--probe-fdatasync-samples", "20"])
        .output()
        .expect("run corelog tune --probe-disk");
    assert!(
        probe.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let props = corelog_tuning::IoProperties::load(dir.path().join("io-properties.toml"))
        .expect("probe output loads");
    let expected = corelog_server::config::write_bytes_from_probe(
        props.write_chunk_bytes,
        props.write_queue_depth,
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corelog"))
        .args(["serve", "--cores", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("CORELOG_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corelog serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut used = None;
    while started.elapsed() < Duration::from_secs(20) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if line.contains("using disk probe") {
            used = Some(line.clone());
        }
        if line.contains("corelog ready") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = used.expect("the broker did not say it uses the disk probe");
    assert!(line.contains(&format!("up to {expected} bytes")), "{line}");
}
