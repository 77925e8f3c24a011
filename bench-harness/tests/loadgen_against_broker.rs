//! Starts a real `corelog` broker on a free port and runs a tiny load
//! generator scenario against it in-process.
//!
//! The broker binary is `$CORELOG_BIN`, or `<workspace>/target/debug/corelog`.
//! When it does not exist the test is skipped with a message, unless `CI` is
//! set, where it fails.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use corelog_bench::loadgen::{run_scenario, LimitsChoice, Scenario};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker_bin() -> Option<PathBuf> {
    let path = match std::env::var_os("CORELOG_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/corelog"),
    };
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "broker binary {} not found (build it with `cargo build -p corelog` or set CORELOG_BIN)",
        path.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn start_broker(bin: &PathBuf, data_dir: &std::path::Path) -> (KillOnDrop, String) {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &addr, "--cores", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting broker");
    let stderr = child.stderr.take().unwrap();
    let guard = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining stderr so the broker never blocks on it.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("corelog ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("broker did not print `corelog ready` within 30 s");
    (guard, addr)
}

#[test]
fn tiny_scenario_against_real_broker() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let (_broker, addr) = start_broker(&bin, &data_dir);

    let scenario = Scenario {
        name: "test-tiny".into(),
        topic: "loadgen-test".into(),
        partitions: 2,
        record_bytes: 200,
        records_per_batch: 4,
        producers: 2,
        acks: -1,
        rate_msgs_per_s: 2_000,
        warmup_s: 0.5,
        duration_s: 2.5,
        consumers: 1,
        max_in_flight: 4,
    };
    let out = scratch.path().join("runs");
    let record = run_scenario(&scenario, &addr, &out, &LimitsChoice::None).expect("run");
    eprintln!("{}", corelog_bench::loadgen::summary_line(&record));

    let t = record.results.throughput.as_ref().expect("throughput");
    assert!(t.messages > 0, "no messages acknowledged");
    let publish = &record.results.latency["publish"];
    assert!(publish.summary.count > 0, "publish histogram is empty");
    let e2e = &record.results.latency["end_to_end"];
    assert!(e2e.summary.count > 0, "end-to-end histogram is empty");
    assert_eq!(
        record.total_errors(),
        0,
        "errors: {:?}",
        record.results.errors
    );

    let run_dirs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(run_dirs.len(), 1);
    assert!(run_dirs[0].join("run.json").exists());
    assert!(run_dirs[0].join("publish.hgrm").exists());
    assert!(run_dirs[0].join("end_to_end.hgrm").exists());
}

#[test]
fn shipped_scenarios_parse() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = Vec::new();
    let mut topics = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let s = Scenario::from_file(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            // Run directories and reports are named after the scenario, so
            // the name is the file's; each scenario has its own topic.
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                s.name,
                stem,
                "{}: name differs from the file name",
                p.display()
            );
            assert!(
                topics.insert(s.topic.clone()),
                "{}: topic {} is shared",
                p.display(),
                s.topic
            );
            names.push(s.name);
        }
    }
    names.sort();
    for expected in [
        "latency-1kib-acks-all",
        "max-1kib",
        "small-100b",
        "producers-50",
        "partitions-1000",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
