//! `--probe-disk` for real on a small file, with short steps.

use clap::Parser;
use corelog_tuning::{probe_disk, run_with_output, IoProperties, ProbeOptions, TuneArgs};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: TuneArgs,
}

/// A scratch directory next to the build output rather than in /tmp, which is more likely to
/// be a real disk filesystem that supports O_DIRECT.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn assert_plausible(p: &IoProperties) {
    assert!(p.write_bandwidth_bytes_per_s > 0);
    assert!(p.read_bandwidth_bytes_per_s > 0);
    assert!(p.fdatasync_p50_us > 0);
    assert!(p.fdatasync_p99_us >= p.fdatasync_p50_us);
    assert!(p.write_chunk_bytes >= 4096 && p.write_chunk_bytes.is_multiple_of(4096));
    assert!(p.write_queue_depth >= 1);
    p.validate().expect("valid");
}

#[test]
fn probe_cli_writes_a_loadable_file() {
    let dir = scratch();
    let output = dir.path().join("io-properties.toml");
    let d = dir.path().to_str().expect("utf8");
    let o = output.to_str().expect("utf8");
    let cli = Cli::try_parse_from([
        "corelog-tune",
        "--probe-disk",
        d,
        "--output",
        o,
        "--probe-file-size-mib",
        "8",
        "--probe-step-ms",
        "20",
        "--probe-block-sizes-kib",
        "4,64,1024",
        "--probe-queue-depths",
        "1,4",
        "--probe-fdatasync-samples",
        "20",
    ])
    .expect("parse");
    let started = Instant::now();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run_with_output(cli.args, &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert!(started.elapsed() < Duration::from_secs(10));

    let props = IoProperties::load(&output).expect("load io-properties");
    assert_plausible(&props);
    assert!([4096, 65536, 1 << 20].contains(&props.write_chunk_bytes));
    assert!([1, 4].contains(&props.write_queue_depth));
    assert_eq!(props.steps.len(), 3 * 2 * 2);
    assert_eq!(props.probe_file_bytes, 8 << 20);
    assert!(String::from_utf8_lossy(&out).contains("write chunk"));
    // Only the output remains: the scratch file is removed.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("io-properties.toml")]);
}

#[test]
fn probe_library_covers_4k_to_1m() {
    let dir = scratch();
    let mut opts = ProbeOptions::new(dir.path());
    opts.file_size_bytes = 4 << 20;
    opts.step_duration = Duration::from_millis(10);
    opts.queue_depths = vec![1, 2];
    opts.fdatasync_samples = 10;
    let props = probe_disk(&opts).expect("probe");
    assert_plausible(&props);
    let sizes: Vec<u64> = props
        .steps
        .iter()
        .filter(|s| s.op == "write" && s.queue_depth == 1)
        .map(|s| s.block_bytes)
        .collect();
    assert_eq!(sizes, (12..=20).map(|s| 1u64 << s).collect::<Vec<_>>());
}

#[test]
fn probe_of_missing_directory_fails_cleanly() {
    let dir = scratch();
    let opts = ProbeOptions::new(dir.path().join("does-not-exist"));
    let err = probe_disk(&opts).expect_err("missing dir");
    assert!(err.to_string().contains("does-not-exist"), "{err}");
}
