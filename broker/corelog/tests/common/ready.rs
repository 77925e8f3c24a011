//! Starting a `corelog serve` child process and knowing when it serves:
//! the one Rust helper for it. Used by this crate's tests (through
//! `common`) and, included by path, by `bench-harness`'s tests, so it
//! needs nothing but `std` and `serde_json`. Scripts use
//! `ci/lib/broker.sh`, Python tests `tests/clients/brokerproc.py`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Waits until `child` has written `ready_file` (`corelog serve
/// --ready-file`, written once every shard serves), and returns its JSON.
/// Fails if the process exits first or `timeout` passes.
pub fn wait_for_ready_file(
    child: &mut Child,
    ready_file: &Path,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    loop {
        // The broker writes the file whole (a rename), so any content read
        // is complete.
        if let Ok(text) = std::fs::read_to_string(ready_file) {
            return serde_json::from_str(&text)
                .map_err(|e| format!("ready file {}: {e}: {text:?}", ready_file.display()));
        }
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            return Err(format!("the broker exited ({status}) before it served"));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "no ready file {} within {timeout:?}",
                ready_file.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
