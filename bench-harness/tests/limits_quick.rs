//! Runs the real `limits` measurement with tiny sizes on a scratch directory
//! and through the binary, checking that every number comes out positive.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use corelog_bench::limits::{measure_limits, Limits, LimitsOptions};

/// A scratch directory on the target directory's filesystem, which supports
/// O_DIRECT even where /tmp is a tmpfs that may not.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir")
}

fn tiny() -> LimitsOptions {
    LimitsOptions {
        bandwidth_file_bytes: 2 << 20,
        bandwidth_time_per_case: Duration::from_millis(100),
        bandwidth_max_bytes_per_case: 8 << 20,
        fdatasync_file_bytes: 2 << 20,
        fdatasync_max_iterations: 50,
        fdatasync_time_per_case: Duration::from_millis(200),
        tcp_duration: Duration::from_millis(200),
        ..LimitsOptions::quick()
    }
}

fn assert_no_scratch_left(dir: &std::path::Path) {
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(
        leftovers.is_empty(),
        "scratch files left behind: {leftovers:?}"
    );
}

fn assert_positive(l: &Limits) {
    assert_eq!(l.write_bandwidth.len(), 7);
    for w in &l.write_bandwidth {
        assert!(w.bytes_written >= w.block_bytes, "{w:?}");
        assert!(w.write_bandwidth_bytes_per_s > 0.0, "{w:?}");
    }
    assert_eq!(l.fdatasync_latency.len(), 5);
    for f in &l.fdatasync_latency {
        assert!(f.samples > 0, "{f:?}");
        assert!(
            f.fdatasync_p50_us > 0.0 && f.fdatasync_p99_us >= f.fdatasync_p50_us,
            "{f:?}"
        );
        assert!(f.fdatasync_max_us >= f.fdatasync_p999_us, "{f:?}");
    }
    assert!(l.loopback_tcp.bandwidth_bytes_per_s > 0.0);
}

#[test]
fn tiny_limits_measure_positive_numbers_and_clean_up() {
    let dir = scratch();
    let started = Instant::now();
    let limits = measure_limits(dir.path(), &tiny()).expect("measure limits");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_positive(&limits);
    assert_no_scratch_left(dir.path());
}

#[test]
fn limits_quick_subcommand_writes_limits_json() {
    let dir = scratch();
    let out = dir.path().join("run");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .arg("limits")
        .arg("--dir")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .args(["--quick", "--file-mib", "2"])
        .output()
        .expect("run corelog-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stdout.contains("O_DIRECT sequential write bandwidth"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(out.join("limits.json")).expect("limits.json");
    let limits: Limits = serde_json::from_str(&text).expect("parse limits.json");
    assert!(limits.options.quick);
    assert_positive(&limits);
}

#[test]
fn limits_on_missing_dir_fails_cleanly() {
    let dir = scratch();
    let output = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .args(["limits", "--quick", "--dir"])
        .arg(dir.path().join("does-not-exist"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run corelog-bench");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("error:"));
}

/// A storage run compares with device windows measured between its parts:
/// the limits it records carry the windows' figures at the run's block
/// size, say so in `remeasured` (with the single pass's figures), leave the
/// other entries alone, and the scratch files go with the windows.
#[test]
fn device_windows_replace_one_block_size_and_say_so() {
    use corelog_bench::limits::{DeviceWindows, WriteMode};
    let dir = scratch();
    let base = measure_limits(dir.path(), &tiny()).expect("measure limits");
    let block = 64 << 10;
    let mut windows =
        DeviceWindows::new(dir.path(), block, &tiny(), false).expect("device windows");
    for _ in 0..3 {
        windows.window(Duration::from_millis(60)).expect("window");
    }
    let sync = windows.fdatasync_latency();
    assert!(sync.samples >= 3, "{sync:?}");
    assert!(
        sync.write_fdatasync_p99_us >= sync.fdatasync_p99_us,
        "{sync:?}"
    );
    assert!(windows.bandwidth_bytes_per_s() > 0.0);
    let limits = windows.limits(&base);
    drop(windows);

    assert_eq!(limits.write_bandwidth.len(), base.write_bandwidth.len());
    assert_eq!(limits.fdatasync_latency.len(), base.fdatasync_latency.len());
    assert_eq!(
        limits.write_bandwidth_bytes_per_s(block, WriteMode::Preallocated),
        Some(windows_bandwidth(&limits, block))
    );
    assert_eq!(limits.fdatasync_p99_us(block), Some(sync.fdatasync_p99_us));
    // Other block sizes keep the single pass's figures.
    assert_eq!(limits.fdatasync_p99_us(4096), base.fdatasync_p99_us(4096));
    assert_eq!(
        limits.write_bandwidth_bytes_per_s(1 << 20, WriteMode::Preallocated),
        base.write_bandwidth_bytes_per_s(1 << 20, WriteMode::Preallocated)
    );
    assert_eq!(limits.remeasured.len(), 1, "{:?}", limits.remeasured);
    assert!(
        limits.remeasured[0].contains("64 KiB") && limits.remeasured[0].contains("3 windows"),
        "{:?}",
        limits.remeasured
    );
    // The line is kept in limits.json.
    let back: Limits = serde_json::from_str(&serde_json::to_string(&limits).unwrap()).unwrap();
    assert_eq!(back.remeasured, limits.remeasured);

    assert_no_scratch_left(dir.path());
}

/// Growing windows (for a workload that writes into new space) measure
/// appending writes too, and replace the growing-file figure at the
/// window's block size, saying so in a line of its own.
#[test]
fn growing_device_windows_replace_the_new_space_figure_and_say_so() {
    use corelog_bench::limits::{DeviceWindows, WriteMode};
    let dir = scratch();
    let base = measure_limits(dir.path(), &tiny()).expect("measure limits");
    let block = 16 << 10;
    let mut windows = DeviceWindows::new(dir.path(), block, &tiny(), true).expect("windows");
    for _ in 0..3 {
        windows.window(Duration::from_millis(60)).expect("window");
    }
    let growing = windows
        .growing_bandwidth_bytes_per_s()
        .expect("growing windows measure new space");
    assert!(growing > 0.0);
    let limits = windows.limits(&base);
    drop(windows);

    assert_eq!(limits.write_bandwidth.len(), base.write_bandwidth.len());
    assert_eq!(
        limits.write_bandwidth_bytes_per_s(block, WriteMode::Growing),
        Some(growing)
    );
    assert_eq!(
        limits.write_bandwidth_bytes_per_s(1 << 20, WriteMode::Growing),
        base.write_bandwidth_bytes_per_s(1 << 20, WriteMode::Growing)
    );
    assert_eq!(limits.remeasured.len(), 2, "{:?}", limits.remeasured);
    assert!(
        limits.remeasured[1].contains("growing-file write bandwidth at 16 KiB")
            && limits.remeasured[1].contains("same 3 windows"),
        "{:?}",
        limits.remeasured
    );
    assert_no_scratch_left(dir.path());

    // Plain windows measure no new space.
    let plain = DeviceWindows::new(dir.path(), block, &tiny(), false).expect("windows");
    assert_eq!(plain.growing_bandwidth_bytes_per_s(), None);
}

fn windows_bandwidth(limits: &Limits, block: u64) -> f64 {
    limits
        .write_bandwidth
        .iter()
        .find(|w| {
            w.block_bytes == block && w.mode == corelog_bench::limits::WriteMode::Preallocated
        })
        .expect("entry at the block size")
        .write_bandwidth_bytes_per_s
}
