//! Starts a real `corelog` broker on a free port and runs a tiny load
//! generator scenario against it in-process.
//!
//! The broker binary is `$CORELOG_BIN`, or `<workspace>/target/debug/corelog`.
//! When it does not exist the test is skipped with a message, unless `CI` is
//! set, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corelog_bench::kafka_client::{KafkaClient, Leaders};
use corelog_bench::loadgen::{run_scenario, LimitsChoice, Scenario};

// The broker's own test helper for starting it (waiting for its ready
// file), shared rather than copied.
#[path = "../../broker/corelog/tests/common/ready.rs"]
mod ready;

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

/// A broker that serves: started by [`start_broker`].
struct Started {
    _child: KillOnDrop,
    /// "127.0.0.1:PORT"
    addr: String,
    /// The broker's largest disk write, from its ready file.
    write_bytes: u64,
}

/// Starts `corelog serve --cores 1` (plus `extra` arguments) on a free port
/// and waits until it serves: until it writes its `--ready-file` (the
/// broker crate's test helper, shared with its tests). Its log goes to
/// `<data_dir>.log`.
fn start_broker(bin: &Path, data_dir: &Path, extra: &[&str]) -> Started {
    let addr = format!("127.0.0.1:{}", ready::free_port());
    let ready_file = data_dir.with_extension("ready.json");
    let log_path = data_dir.with_extension("log");
    // An old file would say that this broker serves.
    let _ = std::fs::remove_file(&ready_file);
    let log = std::fs::File::create(&log_path).expect("broker log");
    let child = Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &addr, "--cores", "1", "--ready-file"])
        .arg(&ready_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting broker");
    let mut guard = KillOnDrop(child);
    let ready = ready::wait_for_ready_file(&mut guard.0, &ready_file, Duration::from_secs(30))
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("{e}; its log:\n{log}")
        });
    assert_eq!(ready["listen"].as_str(), Some(addr.as_str()), "{ready}");
    Started {
        _child: guard,
        addr,
        write_bytes: ready["write_bytes_max"]
            .as_u64()
            .expect("write_bytes_max in the ready file"),
    }
}

fn scenario(toml_text: &str) -> Scenario {
    let s: Scenario = toml::from_str(toml_text).expect("scenario parses");
    s.validate().expect("scenario is valid");
    s
}

fn run_dirs(out: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn tiny_scenario_against_real_broker() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let broker = start_broker(&bin, &data_dir, &[]);
    let addr = broker.addr.clone();

    // Two producers on two worker threads into one topic, then on one
    // worker into two topics, with a tail consumer.
    for (i, threads, topics) in [(0, 2, 1), (1, 1, 2)] {
        let s = scenario(&format!(
            r#"
            name = "test-tiny"
            topic = "loadgen-test-{i}"
            topics = {topics}
            partitions = 2
            record_bytes = 200
            records_per_batch = 4
            producers = 2
            threads = {threads}
            acks = -1
            rate_msgs_per_s = 2000
            warmup_s = 0.5
            duration_s = 2.5
            consumers = 1
            max_in_flight = 4
            "#
        ));
        let out = scratch.path().join(format!("runs-{i}"));
        // The first run measures the broker's CPU, the second does not.
        let pids: Vec<u32> = (i == 0).then(|| broker._child.0.id()).into_iter().collect();
        let record = run_scenario(
            &s,
            &addr,
            &out,
            &LimitsChoice::None,
            broker.write_bytes,
            &pids,
        )
        .expect("run");
        eprintln!("{}", corelog_bench::loadgen::summary_line(&record));
        let cpu = (
            record.results.broker_cpu_s,
            record.results.broker_cpu_us_per_msg,
        );
        if !pids.is_empty() {
            // 5,000 messages in 2.5 s cost the broker some CPU: more than
            // nothing, and less than a whole second per message.
            assert!(cpu.0.is_some_and(|s| s >= 0.0), "{cpu:?}");
            assert!(cpu.1.is_some_and(|us| (0.0..1e6).contains(&us)), "{cpu:?}");
        } else {
            assert_eq!(cpu, (None, None));
        }

        // A fresh broker writes at its storage default, and the run says so.
        assert_eq!(
            broker.write_bytes,
            corelog_bench::loadgen::default_broker_write_bytes()
        );
        assert_eq!(
            record.config["broker_write_bytes"].as_u64(),
            Some(broker.write_bytes)
        );
        assert_eq!(
            record.results.latency["publish"].fdatasync_block_bytes,
            broker.write_bytes
        );
        let t = record.results.throughput.as_ref().expect("throughput");
        // The open loop offers 2,000 msgs/s for 2.5 s: all of it is acknowledged.
        assert_eq!(t.messages, 5000, "acknowledged messages");
        let publish = &record.results.latency["publish"];
        assert_eq!(publish.summary.count, 5000, "one publish sample per record");
        let e2e = &record.results.latency["end_to_end"];
        assert_eq!(e2e.summary.count, 5000, "one end-to-end sample per record");
        assert_eq!(
            record.total_errors(),
            0,
            "errors: {:?}",
            record.results.errors
        );
        for t in s.topic_names() {
            for p in 0..2 {
                let dir = data_dir.join(format!("{t}-{p}"));
                assert!(dir.is_dir(), "{} missing", dir.display());
            }
        }
        // The single-node broker leads every partition at the address the
        // run was given: the producers' routing keeps one connection each.
        let mut c = KafkaClient::connect(&addr, Duration::from_secs(5)).expect("connect");
        let leaders = Leaders::from_metadata(&c.metadata(&s.topic_names()).expect("metadata"));
        for t in s.topic_names() {
            for p in 0..2 {
                assert_eq!(leaders.endpoint(&t, p), Some(addr.as_str()), "{t}-{p}");
            }
        }
        let dirs = run_dirs(&out);
        assert_eq!(dirs.len(), 1);
        for f in [
            "run.json",
            "publish.hgrm",
            "end_to_end.hgrm",
            "publish.hlog",
            "end_to_end.hlog",
        ] {
            assert!(dirs[0].join(f).exists(), "{f} missing");
        }
        let hlog = std::fs::read_to_string(dirs[0].join("publish.hlog")).unwrap();
        let intervals = hlog
            .lines()
            .filter(|l| l.starts_with("Tag=publish,"))
            .count();
        assert!(
            (2..=4).contains(&intervals),
            "expected about 3 one-second intervals, got {intervals}:\n{hlog}"
        );
    }
}

#[test]
fn keyed_compressed_records_reach_the_consumer_with_every_codec() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let broker = start_broker(&bin, &data_dir, &[]);
    let addr = broker.addr.clone();

    for (codec, keys, linger) in [
        ("gzip", "uniform", 0.0),
        ("snappy", "skewed", 2.0),
        ("lz4", "uniform", 2.0),
        ("zstd", "skewed", 0.0),
    ] {
        let s = scenario(&format!(
            r#"
            name = "test-{codec}"
            topic = "loadgen-{codec}"
            partitions = 4
            record_bytes = 300
            records_per_batch = 20
            acks = 1
            rate_msgs_per_s = 4000
            linger_ms = {linger}
            keys = "{keys}"
            key_space = 100
            compression = "{codec}"
            warmup_s = 0.2
            duration_s = 1.0
            consumers = 1
            "#
        ));
        let out = scratch.path().join(format!("runs-{codec}"));
        let record = run_scenario(
            &s,
            &addr,
            &out,
            &LimitsChoice::None,
            broker.write_bytes,
            &[],
        )
        .expect("run");
        eprintln!("{}", corelog_bench::loadgen::summary_line(&record));
        let t = record.results.throughput.as_ref().expect("throughput");
        assert_eq!(t.messages, 4000, "{codec}: acknowledged messages");
        // Every record came back through the broker and was decompressed
        // by the consumer with its own send time.
        assert_eq!(
            record.results.latency["end_to_end"].summary.count, 4000,
            "{codec}: consumed records"
        );
        assert_eq!(
            record.total_errors(),
            0,
            "{codec} errors: {:?}",
            record.results.errors
        );
    }
}

#[test]
fn catch_up_consumer_reads_while_retention_deletes_segments() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let broker = start_broker(&bin, &data_dir, &[]);
    let addr = broker.addr.clone();

    // 1 MiB segments and at most 4 MiB kept: the 8 MiB preload and the run
    // roll and delete segments while both consumers read.
    let s = scenario(
        r#"
        name = "test-retention"
        topic = "loadgen-retention"
        partitions = 1
        record_bytes = 1024
        records_per_batch = 16
        acks = -1
        rate_msgs_per_s = 4000
        warmup_s = 0.3
        duration_s = 2.0
        consumers = 1
        catchup_consumers = 1
        preload_mib = 8
        topic_configs = { "segment.bytes" = "1048576", "retention.bytes" = "4194304" }
        "#,
    );
    let out = scratch.path().join("runs");
    let record = run_scenario(
        &s,
        &addr,
        &out,
        &LimitsChoice::None,
        broker.write_bytes,
        &[],
    )
    .expect("run");
    eprintln!("{}", corelog_bench::loadgen::summary_line(&record));
    assert_eq!(
        record.total_errors(),
        0,
        "errors: {:?}",
        record.results.errors
    );
    let catchup = &record.results.part_throughput["catchup_consumers"];
    assert!(catchup.messages > 0, "the catch-up consumer read nothing");
    let segments = std::fs::read_dir(data_dir.join("loadgen-retention-0"))
        .expect("partition dir")
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    // 8 MiB + 8 MiB written into 1 MiB segments, at most ~4 MiB kept.
    assert!(
        segments <= 6,
        "retention should have deleted segments, {segments} remain"
    );
}

/// Reads `topic`'s partitions 0..partitions from offset 0 to the high
/// watermark at read_committed; returns per partition the high watermark,
/// the last stable offset, the data records and the control batches
/// (markers) seen, and the aborted transactions reported.
fn read_committed(addr: &str, topic: &str, partitions: i32) -> Vec<(i64, i64, u64, u64, usize)> {
    let mut c = KafkaClient::connect(addr, Duration::from_secs(5)).expect("connect");
    let mut out = Vec::new();
    for p in 0..partitions {
        let (mut offset, mut records, mut markers, mut aborted) = (0i64, 0u64, 0u64, 0usize);
        let (hw, lso) = loop {
            let topics = [(topic.to_string(), vec![(p, offset)])];
            let f = c
                .fetch_isolated(&topics, 0, 1, 1 << 20, 1)
                .expect("read_committed fetch");
            let d = &f.responses[0].partitions[0];
            assert_eq!(d.error_code, 0, "fetch {topic}-{p} at {offset}");
            aborted += d.aborted_transactions.as_ref().map_or(0, Vec::len);
            for b in corelog_bench::records::walk_batches(
                d.records.as_deref().unwrap_or_default(),
                false,
            ) {
                if b.last_offset < offset {
                    continue;
                }
                if b.control {
                    markers += 1;
                } else {
                    records += u64::from(b.records);
                }
                offset = b.last_offset + 1;
            }
            if offset >= d.last_stable_offset {
                break (d.high_watermark, d.last_stable_offset);
            }
        };
        out.push((hw, lso, records, markers, aborted));
    }
    out
}

#[test]
fn transactional_producers_commit_every_transaction() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let broker = start_broker(&bin, &data_dir, &[]);
    let addr = broker.addr.clone();

    // Two transactional producers at 500 records/s each for 2.5 s: 1,250
    // records each, in 25 transactions of 50 records (five batches of 10,
    // round robin over both partitions), with a tail consumer.
    let s = scenario(
        r#"
        name = "test-txn"
        topic = "loadgen-txn"
        partitions = 2
        record_bytes = 200
        records_per_batch = 10
        producers = 2
        acks = -1
        rate_msgs_per_s = 1000
        warmup_s = 0.5
        duration_s = 2.0
        consumers = 1
        max_in_flight = 5
        transaction_records = 50
        "#,
    );
    let out = scratch.path().join("runs");
    let pids = [broker._child.0.id()];
    let record = run_scenario(
        &s,
        &addr,
        &out,
        &LimitsChoice::None,
        broker.write_bytes,
        &pids,
    )
    .expect("run");
    eprintln!("{}", corelog_bench::loadgen::summary_line(&record));
    assert_eq!(
        record.total_errors(),
        0,
        "errors: {:?}",
        record.results.errors
    );
    let t = record.results.throughput.as_ref().expect("throughput");
    assert_eq!(t.messages, 2000, "acknowledged in the measured window");
    assert_eq!(record.results.latency["end_to_end"].summary.count, 2000);
    // 2 x 20 transactions sent their EndTxn in the 2 s measured, each
    // with its commit latency.
    let commit = &record.results.latency["commit"].summary;
    let committed = record.results.notes["transactions_committed"]
        .as_u64()
        .expect("transactions_committed");
    assert!((38..=42).contains(&committed), "{committed} transactions");
    assert_eq!(commit.count, committed);
    assert!(commit.p50_us > 0.0);
    // Each was opened by AddPartitionsToTxn (after the previous one's
    // markers, retried on CONCURRENT_TRANSACTIONS).
    let add = record.results.latency["add_partitions"].summary.count;
    assert!((38..=42).contains(&add), "{add} transactions opened");
    let dir = &run_dirs(&out)[0];
    for f in ["commit.hgrm", "commit.hlog"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }

    // Everything committed: at read_committed every record is there, the
    // last stable offset is the high watermark, nothing was aborted, and
    // each partition holds one marker per transaction (each of the 50
    // transactions wrote both partitions).
    let parts = read_committed(&addr, "loadgen-txn", 2);
    let records: u64 = parts.iter().map(|p| p.2).sum();
    assert_eq!(records, 2500, "{parts:?}");
    for &(hw, lso, records, markers, aborted) in &parts {
        assert_eq!(lso, hw, "open transaction left: {parts:?}");
        assert_eq!(markers, 50, "{parts:?}");
        assert_eq!(hw, records as i64 + 50, "{parts:?}");
        assert_eq!(aborted, 0, "{parts:?}");
    }
}

#[test]
fn idempotent_producers_stamp_sequences_the_broker_accepts() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let broker = start_broker(&bin, &data_dir, &[]);
    // Closed loop, five requests in flight each: a sequence out of order
    // or a duplicate would be refused (and stop the producer).
    let s = scenario(
        r#"
        name = "test-idempotent"
        topic = "loadgen-idempotent"
        partitions = 2
        record_bytes = 200
        records_per_batch = 10
        producers = 2
        acks = -1
        warmup_s = 0.2
        duration_s = 1.0
        max_in_flight = 5
        idempotent = true
        "#,
    );
    let out = scratch.path().join("runs");
    let record = run_scenario(
        &s,
        &broker.addr,
        &out,
        &LimitsChoice::None,
        broker.write_bytes,
        &[],
    )
    .expect("run");
    eprintln!("{}", corelog_bench::loadgen::summary_line(&record));
    assert_eq!(
        record.total_errors(),
        0,
        "errors: {:?}",
        record.results.errors
    );
    assert!(record.results.throughput.as_ref().unwrap().messages > 0);
    assert!(!record.results.latency.contains_key("commit"));
    // No transactions: nothing for read_committed to hold back, and no
    // markers.
    for (hw, lso, records, markers, _) in read_committed(&broker.addr, "loadgen-idempotent", 2) {
        assert_eq!((lso, markers), (hw, 0));
        assert_eq!(records as i64, hw);
    }
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
        "latency-1kib-half-max",
        "max-1kib",
        "small-100b",
        "producers-50",
        "partitions-1000",
        "keyed-1kib",
        "retention-1kib",
        "catchup-1kib",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn peers_run_side_by_side_and_are_compared() {
    let Some(bin) = broker_bin() else { return };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch");
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    // A broker with a group-commit size of its own: the run takes it from
    // the broker's ready file and records it.
    let config = scratch.path().join("corelog.toml");
    std::fs::write(&config, "write_bytes_max = 1048576\n").unwrap();
    let broker = start_broker(&bin, &data_dir, &["--config", config.to_str().unwrap()]);
    assert_eq!(broker.write_bytes, 1 << 20);
    let addr = broker.addr.clone();
    // The discarding sink stands in for a second broker.
    let sink = corelog_bench::sink::spawn("127.0.0.1:0", 1).expect("sink");

    let scenario_file = scratch.path().join("peer.toml");
    std::fs::write(
        &scenario_file,
        r#"
        name = "test-peers"
        topic = "loadgen-peers"
        partitions = 2
        record_bytes = 512
        records_per_batch = 8
        producers = 3
        acks = 1
        rate_msgs_per_s = 3000
        warmup_s = 0.2
        duration_s = 1.0
        "#,
    )
    .unwrap();
    let out = scratch.path().join("runs");
    let output = Command::new(env!("CARGO_BIN_EXE_corelog-bench"))
        .arg("run")
        .arg("--scenario")
        .arg(&scenario_file)
        .args([
            "--bootstrap",
            &addr,
            "--no-limits",
            "--repeats",
            "2",
            "--pin",
            "--broker-write-bytes",
            &broker.write_bytes.to_string(),
        ])
        .arg("--peer")
        .arg(format!("sink={sink}"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("running corelog-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "corelog-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("corelog (A) vs sink (B)"), "{stdout}");
    for label in ["corelog", "sink"] {
        let runs = run_dirs(&out.join(label));
        assert_eq!(runs.len(), 2, "{label}: one directory per repeat");
        for r in runs {
            let rec = corelog_bench::run::read_run(&r).expect("run.json");
            assert_eq!(
                rec.results.throughput.as_ref().unwrap().messages,
                3000,
                "{label}"
            );
            assert_eq!(rec.total_errors(), 0, "{label}: {:?}", rec.results.errors);
            assert_eq!(
                rec.config["broker_write_bytes"].as_u64(),
                Some(1 << 20),
                "{label}"
            );
        }
    }
}
