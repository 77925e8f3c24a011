//! The broker uses a disk probe of its data directory: `corelog tune
//! --probe-disk` writes io-properties.toml, and `corelog serve` sizes its
//! group-commit writes from it and says so at start-up.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, Broker};

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

    let broker = Broker::start_with(dir.path(), free_port(), 1);
    // The broker says which write size it took before it serves.
    let used = broker.log_line("using disk probe", Duration::from_secs(10));
    assert_eq!(
        broker.ready["write_bytes_max"].as_u64(),
        Some(expected as u64),
        "the ready file's write size"
    );
    drop(broker);
    let line = used.expect("the broker did not say it uses the disk probe");
    assert!(line.contains(&format!("up to {expected} bytes")), "{line}");
}
