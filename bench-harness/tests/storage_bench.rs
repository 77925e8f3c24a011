//! Runs `corelog-bench storage` end to end, briefly, on a scratch directory:
//! the log through the shard runtime, with device windows between its parts.

use std::process::Command;

use corelog_bench::limits::Limits;
use corelog_bench::run::RunRecord;

#[test]
fn storage_case_records_its_device_windows_peak_rss_and_executor_cpu() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir");
    let out = dir.path().join("runs");
    let output = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .arg("storage")
        .arg("--dir")
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(&out)
        .args([
            "--quick",
            "--duration-s",
            "0.6",
            "--batch-bytes",
            "16384",
            "--writers",
            "2",
            "--log-state",
            "fresh",
            "--device-windows",
            "3",
            "--device-window-ms",
            "100",
        ])
        .output()
        .expect("run corelog-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("executor CPU ").count(), 2, "{stdout}");
    let mut runs: Vec<_> = std::fs::read_dir(&out)
        .expect("runs")
        .map(|e| e.expect("entry").path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in runs {
        let record: RunRecord =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap())
                .expect("run.json");
        let latency = &record.results.latency["append_durable"];
        assert!(latency.summary.count > 0, "{run:?}");
        let t = record.results.throughput.as_ref().expect("throughput");
        assert!(t.mib_per_s > 0.0 && t.fraction_of_limit.is_some(), "{t:?}");
        assert!(record.results.notes["peak_rss_bytes"].as_u64().unwrap() > 0);
        // The executor thread's CPU: some per MiB appended, and at most
        // the whole of one core over the parts' wall time.
        let notes = &record.results.notes;
        let per_mib = notes["executor_cpu_us_per_mib"]
            .as_f64()
            .expect("cpu per MiB");
        let fraction = notes["executor_cpu_fraction"]
            .as_f64()
            .expect("cpu fraction");
        assert!(per_mib > 0.0 && per_mib.is_finite(), "{per_mib}");
        assert!(fraction > 0.0 && fraction <= 1.01, "{fraction}");
        let limits: Limits =
            serde_json::from_str(&std::fs::read_to_string(run.join("limits.json")).unwrap())
                .expect("limits.json");
        // A fresh log is also compared with the device writing into new
        // space, measured in the same windows.
        assert_eq!(limits.remeasured.len(), 2, "{:?}", limits.remeasured);
        assert!(
            limits.remeasured[0].contains("in 3 windows")
                && limits.remeasured[1].starts_with("growing-file write bandwidth"),
            "{:?}",
            limits.remeasured
        );
        let growing = limits
            .write_bandwidth_bytes_per_s(
                latency.fdatasync_block_bytes,
                corelog_bench::limits::WriteMode::Growing,
            )
            .expect("growing bandwidth at the block");
        let recorded = record.results.notes["fraction_of_growing_file_bandwidth"]
            .as_f64()
            .expect("new-space fraction");
        let expected = t.bytes as f64 / t.duration_s / growing;
        assert!(
            (recorded - expected).abs() <= 1e-6 * expected,
            "{recorded} vs {expected}"
        );
        // The ratio printed and recorded is against the windows' figure.
        let block = latency.fdatasync_block_bytes;
        let windows_p99 = limits.fdatasync_p99_us(block).expect("fdatasync at block");
        let ratio = latency.p99_over_fdatasync_p99.expect("ratio");
        assert!(
            (ratio - latency.summary.p99_us / windows_p99).abs() < 1e-9,
            "{ratio} vs {} / {windows_p99}",
            latency.summary.p99_us
        );
    }
    // Nothing but the run records is left in the data directory.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
