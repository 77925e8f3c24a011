//! A broker whose log cannot be written keeps serving.
//!
//! The log usually goes to a file on the data disk. When that disk filled,
//! a write to stderr failed with ENOSPC, tracing-subscriber reported it with
//! `eprintln!`, which panicked on the same full disk, and the broker aborted
//! (found by the network fuzzer's long run). Here stdout and stderr are
//! `/dev/full`, where every write fails with ENOSPC: every log line the
//! broker writes fails, and it must go on answering.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_for_ready_file, Client};

#[test]
fn a_broker_whose_log_writes_fail_keeps_serving() {
    let full = || {
        OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full")
    };
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("ready.json");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corelog"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--cores")
        .arg("2")
        .arg("--ready-file")
        .arg(&ready_file)
        .env("CORELOG_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(full()))
        .stderr(Stdio::from(full()))
        .spawn()
        .expect("spawn corelog");
    // Start-up logs several lines and the "corelog ready" line: all fail.
    let ready = wait_for_ready_file(&mut child, &ready_file, Duration::from_secs(60));
    assert!(ready.is_ok(), "{ready:?}");

    // Each malformed frame closes its connection with a log line, which
    // fails too.
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // Size 8, then an api key that does not exist.
        s.write_all(&[0, 0, 0, 8, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1])
            .expect("write");
    }
    std::thread::sleep(Duration::from_millis(300));

    // The broker is alive and answers.
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the broker exited when its log could not be written"
    );
    Client::connect(port).metadata();
    assert!(child.try_wait().expect("wait").is_none());

    let _ = child.kill();
    let _ = child.wait();
}
