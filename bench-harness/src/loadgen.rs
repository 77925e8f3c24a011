//! `corelog-bench run`: the Kafka load generator.
//!
//! Producers are state machines on a few worker threads
//! ([`crate::producer`]); consumers are threads of their own, one
//! connection each:
//! - tail consumers start at the log end and measure end-to-end latency per
//!   record (fetch arrival minus the send time in the record's value);
//! - catch-up consumers start at the log start and read as fast as they can
//!   beside them, from disk once the broker's batch cache no longer holds
//!   the old data (`preload_mib` writes that data before the run).
//!
//! Records whose intended send time falls in the warmup are not measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::compression::Codec;
use crate::hist::{merge_histograms, IntervalCollector, LatencyRecorder};
use crate::kafka_client::{decode_produce_response, KafkaClient, Leaders};
use crate::limits::LimitsOptions;
use crate::producer::{self, Clock, ProducerSpec, Window, WorkerResult};
use crate::records::{self, walk_batches, KeyMode};
use crate::run::{RunRecord, RunWriter, ThroughputBasis};

/// The broker's largest disk write (its group-commit size, storage's
/// `write_bytes_max`) when nothing sets it: the default of the broker's own
/// storage settings. It picks the disk limits a run is measured against
/// (bandwidth and fdatasync at that block size, or the largest measured
/// below it). A broker run with another size (a config file's
/// `write_bytes_max`, a disk probe) says so in its `--ready-file`, and the
/// run takes it with `--broker-write-bytes`.
pub fn default_broker_write_bytes() -> u64 {
    corelog_storage::LogConfig::default().write_bytes_max as u64
}

/// Most consumers of either kind a scenario may ask for (each is a thread
/// with its own connection).
pub const CONSUMERS_MAX: u32 = 64;
/// Most producers a scenario may ask for (each is a connection).
pub const PRODUCERS_MAX: u32 = 10_000;
/// Length of one interval in the `.hlog` interval logs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A scenario file (`bench-harness/scenarios/*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// The topic, or with `topics > 1` the prefix of `<topic>-0`, `<topic>-1`, ...
    pub topic: String,
    /// Topics written, each with `partitions` partitions.
    #[serde(default = "one")]
    pub topics: u32,
    /// Partitions of each topic.
    #[serde(default = "one")]
    pub partitions: u32,
    /// Replicas of each partition (a cluster with `replication_preview`);
    /// 1 by default.
    #[serde(default = "one_replica")]
    pub replication_factor: i16,
    pub record_bytes: usize,
    /// Records per request (open loop without linger, closed loop), or the
    /// most records in one request (open loop with linger).
    #[serde(default = "one")]
    pub records_per_batch: u32,
    /// Connections producing; they share `rate_msgs_per_s`.
    #[serde(default = "one")]
    pub producers: u32,
    /// 0, 1 or -1 ("all").
    pub acks: i16,
    /// Total over all producers; 0 = closed loop at maximum speed.
    #[serde(default)]
    pub rate_msgs_per_s: u64,
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Tail consumers, each reading every partition from the log end.
    #[serde(default)]
    pub consumers: u32,
    /// Catch-up consumers, each reading every partition from the log start.
    #[serde(default)]
    pub catchup_consumers: u32,
    /// MiB written (closed loop, acks=1) before the run starts, so that
    /// catch-up consumers have old data to read.
    #[serde(default)]
    pub preload_mib: u64,
    /// Requests each producer keeps in flight.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: u32,
    /// Record keys: "none", "uniform" or "skewed" (Zipf). Keyed records go
    /// to partitions by Kafka's default partitioner (murmur2).
    #[serde(default)]
    pub keys: KeyMode,
    /// Distinct keys for keyed records.
    #[serde(default = "default_key_space")]
    pub key_space: u64,
    /// Batch compression: "none", "gzip", "snappy", "lz4" or "zstd".
    #[serde(default)]
    pub compression: Codec,
    /// Open loop: 0 hands `records_per_batch` records over at once on the
    /// schedule; above 0 records arrive one by one and a request leaves when
    /// `records_per_batch` are waiting or the oldest waited this long.
    #[serde(default)]
    pub linger_ms: f64,
    /// Topic configs sent with CreateTopics (e.g. "retention.bytes"); a
    /// topic that already exists keeps its own.
    #[serde(default)]
    pub topic_configs: BTreeMap<String, String>,
    /// Producer worker threads; 0 = one per available CPU, at most one per
    /// producer.
    #[serde(default)]
    pub threads: u32,
    /// Pin producer worker thread i to the i-th CPU this process may use
    /// (thread-per-core, as the broker's shards are).
    #[serde(default)]
    pub pin_threads: bool,
    /// Idempotent producers: a producer id from InitProducerId, and each
    /// batch stamped with it and a per-partition sequence (Kafka's
    /// `enable.idempotence`). Needs acks=all and at most 5 requests in
    /// flight, as Kafka's producer does.
    #[serde(default)]
    pub idempotent: bool,
    /// Transactional producers (idempotent too), each with its own
    /// transactional id, committing every this many records; 0 = none.
    #[serde(default)]
    pub transaction_records: u64,
    /// Milliseconds a transactional producer waits before it sends
    /// AddPartitionsToTxn again after CONCURRENT_TRANSACTIONS: 20, Kafka's
    /// producer's, unless set (a shorter wait shows when the coordinator
    /// actually finished the previous transaction).
    #[serde(default = "default_add_partitions_backoff_ms")]
    pub add_partitions_backoff_ms: f64,
}

/// Most requests in flight per connection of an idempotent producer, as
/// Kafka's producer allows (`max.in.flight.requests.per.connection`).
pub const IDEMPOTENT_IN_FLIGHT_MAX: u32 = 5;
/// The transaction timeout transactional producers ask for: Kafka's
/// `transaction.timeout.ms` default.
pub const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

fn one() -> u32 {
    1
}
fn one_replica() -> i16 {
    1
}
fn default_warmup() -> f64 {
    2.0
}
fn default_in_flight() -> u32 {
    5
}
fn default_key_space() -> u64 {
    10_000
}
fn default_add_partitions_backoff_ms() -> f64 {
    producer::ADD_PARTITIONS_RETRY_BACKOFF.as_secs_f64() * 1000.0
}

impl Scenario {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.acks, -1..=1) {
            bail!("acks must be 0, 1 or -1, not {}", self.acks);
        }
        if self.consumers > CONSUMERS_MAX || self.catchup_consumers > CONSUMERS_MAX {
            bail!("consumers and catchup_consumers must be at most {CONSUMERS_MAX}");
        }
        if self.record_bytes < 8 {
            bail!("record_bytes must be at least 8 (the send timestamp)");
        }
        if self.topics == 0
            || self.partitions == 0
            || self.producers == 0
            || self.records_per_batch == 0
        {
            bail!("topics, partitions, producers and records_per_batch must be positive");
        }
        if u64::from(self.topics) * u64::from(self.partitions) > 100_000 {
            bail!("topics x partitions must be at most 100,000");
        }
        if self.producers > PRODUCERS_MAX {
            bail!("producers must be at most {PRODUCERS_MAX}");
        }
        if self.max_in_flight == 0 {
            bail!("max_in_flight must be positive");
        }
        if !(self.duration_s > 0.0 && self.warmup_s >= 0.0) {
            bail!("duration_s must be positive and warmup_s not negative");
        }
        if !(self.linger_ms >= 0.0 && self.linger_ms.is_finite()) {
            bail!("linger_ms must not be negative");
        }
        if self.linger_ms > 0.0 && self.rate_msgs_per_s == 0 {
            bail!("linger_ms applies to the open loop (rate_msgs_per_s > 0) only");
        }
        if self.key_space == 0 {
            bail!("key_space must be positive");
        }
        if self.preload_mib > 1 << 20 {
            bail!("preload_mib is unreasonably large");
        }
        if !(self.add_partitions_backoff_ms >= 0.0 && self.add_partitions_backoff_ms <= 10_000.0) {
            bail!("add_partitions_backoff_ms must be between 0 and 10,000");
        }
        if self.idempotence() {
            if self.acks != -1 {
                bail!("idempotent and transactional producers need acks = -1 (all)");
            }
            if self.max_in_flight > IDEMPOTENT_IN_FLIGHT_MAX {
                bail!(
                    "idempotent and transactional producers keep at most \
                     {IDEMPOTENT_IN_FLIGHT_MAX} requests in flight"
                );
            }
        }
        Ok(())
    }

    /// Whether the producers are idempotent (transactional ones are).
    pub fn idempotence(&self) -> bool {
        self.idempotent || self.transaction_records > 0
    }

    /// The names of the topics the scenario writes.
    pub fn topic_names(&self) -> Vec<String> {
        if self.topics <= 1 {
            vec![self.topic.clone()]
        } else {
            (0..self.topics)
                .map(|i| format!("{}-{i}", self.topic))
                .collect()
        }
    }

    /// Worker threads for the producers.
    pub fn worker_threads(&self) -> u32 {
        let auto = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let t = if self.threads == 0 {
            auto
        } else {
            self.threads
        };
        t.clamp(1, self.producers)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenario TOML file.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Broker address (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Override the scenario's measured duration.
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Override the scenario's warmup.
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Override the scenario's producer worker threads (0 = one per CPU).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Override the scenario's tail consumers (0 against a sink, which
    /// returns no records).
    #[arg(long)]
    pub consumers: Option<u32>,
    /// Override the scenario's catch-up consumers.
    #[arg(long)]
    pub catchup_consumers: Option<u32>,
    /// Pin each producer worker thread to its own CPU (of those allowed).
    #[arg(long)]
    pub pin: bool,
    /// Override the scenario's topic (e.g. to run it again on a fresh topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Directory whose filesystem the quick limits are measured on (ideally
    /// the broker's data dir's filesystem); default the system temp dir.
    #[arg(long)]
    pub limits_dir: Option<PathBuf>,
    /// Skip the limits measurement.
    #[arg(long)]
    pub no_limits: bool,
    /// Label of the `--bootstrap` target when peers are measured beside it.
    #[arg(long, default_value = "corelog")]
    pub label: String,
    /// Another Kafka-compatible broker to run the same scenario against, as
    /// LABEL=HOST:PORT (repeatable). Runs alternate between the targets,
    /// land in `<out>/<label>/`, and each peer is compared with the
    /// `--bootstrap` target (B/A, medians over `--repeats`).
    #[arg(long = "peer", value_name = "LABEL=HOST:PORT")]
    pub peers: Vec<String>,
    /// Runs per target (alternating between targets, so that a noisy
    /// machine's drift hits all of them alike).
    #[arg(long, default_value_t = 1)]
    pub repeats: u32,
    /// The broker's largest disk write in bytes (its `write_bytes_max`, as
    /// its `--ready-file` reports it), which picks the disk limits the run
    /// is measured against; recorded in run.json's config
    /// [default: the broker's default, storage's `write_bytes_max`].
    #[arg(long)]
    pub broker_write_bytes: Option<u64>,
    /// The process id of the `--bootstrap` broker, on this machine: the run
    /// reads its CPU time (/proc/PID/stat) at the start and end of the
    /// measured window and records `broker_cpu_s` and
    /// `broker_cpu_us_per_msg` in run.json. Given more than once (every
    /// broker of a cluster on this machine), their CPU times are summed:
    /// what the cluster spent per message. Peers are not measured.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Vec<u32>,
}

/// A `--peer LABEL=HOST:PORT` argument.
fn parse_peer(arg: &str) -> Result<(String, String)> {
    let Some((label, addr)) = arg.split_once('=') else {
        bail!("--peer {arg:?}: expected LABEL=HOST:PORT");
    };
    let label_ok = !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !label_ok || addr.is_empty() {
        bail!("--peer {arg:?}: the label must be [A-Za-z0-9_-]+ and the address not empty");
    }
    Ok((label.to_string(), addr.to_string()))
}

/// How to obtain machine limits for a run.
#[derive(Debug, Clone)]
pub enum LimitsChoice {
    None,
    Measure(PathBuf, LimitsOptions),
}

pub fn run_command(args: &RunArgs) -> Result<std::process::ExitCode> {
    let mut scenario = Scenario::from_file(&args.scenario)?;
    let write_bytes = args
        .broker_write_bytes
        .unwrap_or_else(default_broker_write_bytes);
    if write_bytes == 0 {
        bail!("--broker-write-bytes must be positive");
    }
    if let Some(d) = args.duration_s {
        scenario.duration_s = d;
    }
    if let Some(w) = args.warmup_s {
        scenario.warmup_s = w;
    }
    if let Some(t) = args.threads {
        scenario.threads = t;
    }
    if let Some(t) = &args.topic {
        scenario.topic = t.clone();
    }
    if args.pin {
        scenario.pin_threads = true;
    }
    if let Some(n) = args.consumers {
        scenario.consumers = n;
    }
    if let Some(n) = args.catchup_consumers {
        scenario.catchup_consumers = n;
    }
    scenario.validate()?;
    for &pid in &args.broker_pid {
        // A wrong pid fails here, before minutes of running, not after.
        crate::proc_cpu::process_cpu(pid).context("--broker-pid")?;
    }
    let limits = if args.no_limits {
        LimitsChoice::None
    } else {
        LimitsChoice::Measure(
            args.limits_dir.clone().unwrap_or_else(std::env::temp_dir),
            LimitsOptions::quick(),
        )
    };
    if args.peers.is_empty() && args.repeats <= 1 {
        let record = run_scenario(
            &scenario,
            &args.bootstrap,
            &args.out,
            &limits,
            write_bytes,
            &args.broker_pid,
        )?;
        println!("{}", summary_line(&record));
        if let Some(problem) = measured_nothing(&record) {
            // Not a result to compare: the broker or the generator is broken.
            bail!("the run measured nothing: {problem}");
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut targets = vec![(args.label.clone(), args.bootstrap.clone())];
    for p in &args.peers {
        let peer = parse_peer(p)?;
        if targets.iter().any(|(l, _)| *l == peer.0) {
            bail!("target label {} is used twice", peer.0);
        }
        targets.push(peer);
    }
    for round in 0..args.repeats.max(1) {
        for (i, (label, addr)) in targets.iter().enumerate() {
            // The pid is the `--bootstrap` broker's, the first target.
            let pids: &[u32] = if i == 0 { &args.broker_pid } else { &[] };
            eprintln!(
                "run {} of {} against {label} ({addr})",
                round + 1,
                args.repeats.max(1)
            );
            let record = run_scenario(
                &scenario,
                addr,
                &args.out.join(label),
                &limits,
                write_bytes,
                pids,
            )?;
            println!("{label}: {}", summary_line(&record));
            if let Some(problem) = measured_nothing(&record) {
                bail!("the run against {label} measured nothing: {problem}");
            }
        }
    }
    let rule = crate::compare::RegressionRule::default();
    let base = args.out.join(&targets[0].0);
    for (label, _) in &targets[1..] {
        let c = crate::compare::compare_runs(&base, &args.out.join(label), &rule)?;
        println!("\n{} (A) vs {label} (B):", targets[0].0);
        print!("{}", crate::compare::format_comparison_table(&c));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Why a finished run holds no measurement, if it holds none: no message
/// acknowledged in the measured window, or an empty latency histogram (a
/// consumer that saw nothing).
pub fn measured_nothing(record: &RunRecord) -> Option<String> {
    let errors = || {
        if record.results.errors.is_empty() {
            "no errors recorded".to_string()
        } else {
            format!("errors {:?}", record.results.errors)
        }
    };
    let messages = record.results.throughput.as_ref().map_or(0, |t| t.messages);
    if messages == 0 {
        return Some(format!(
            "no message was acknowledged in the measured window ({})",
            errors()
        ));
    }
    for (name, l) in &record.results.latency {
        if l.summary.count == 0 {
            return Some(format!(
                "the {name} latency histogram is empty ({})",
                errors()
            ));
        }
    }
    None
}

/// One line: throughput and the latency percentiles.
pub fn summary_line(record: &RunRecord) -> String {
    let mut s = format!("{}:", record.scenario);
    if let Some(t) = &record.results.throughput {
        s += &format!(" {:.0} msgs/s, {:.1} MiB/s", t.msgs_per_s, t.mib_per_s);
        if let Some(f) = t.fraction_of_limit {
            s += &format!(" ({:.0}% of limit)", f * 100.0);
        }
    }
    for (name, l) in &record.results.latency {
        s += &format!(
            "; {name}: n {}, p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us",
            l.summary.count,
            l.summary.p50_us,
            l.summary.p99_us,
            l.summary.p999_us,
            l.summary.max_us
        );
    }
    for (name, t) in &record.results.part_throughput {
        s += &format!(
            "; {name}: {:.0} msgs/s, {:.1} MiB/s",
            t.msgs_per_s, t.mib_per_s
        );
    }
    if let Some(n) = record.results.notes.get("transactions_committed") {
        s += &format!("; {n} transactions committed");
    }
    if let Some(us) = record.results.broker_cpu_us_per_msg {
        s += &format!("; broker CPU {us:.2} us/msg");
    }
    s += &format!("; errors {}", record.total_errors());
    s
}

/// What one consumer measured.
#[derive(Debug, Default)]
struct ConsumerResult {
    /// End-to-end latency (tail consumers): one recorder per connection.
    latency: Vec<LatencyRecorder>,
    /// Records seen whose send time is in the measured window (tail).
    messages: u64,
    /// Records and stored bytes a catch-up consumer fetched in the measured
    /// window (it starts at its end).
    window_messages: u64,
    window_bytes: u64,
    /// How long its first pass over the backlog took; `None` when it never
    /// reached the log end.
    caught_up_after: Option<Duration>,
    /// Passes over the whole log (each restarts at the log start).
    passes: u64,
    errors: BTreeMap<String, u64>,
}

/// Runs `scenario` against `bootstrap` and writes a run directory under
/// `out`; returns the finished record. `broker_write_bytes` is the broker's
/// largest disk write ([`default_broker_write_bytes`] unless the broker
/// says otherwise): the block size whose disk limits the run is measured
/// against, recorded in the config as `broker_write_bytes`. With
/// `broker_pids` (the broker's process on this machine, or every broker of
/// a cluster on it) the record also holds their CPU over the measured
/// window, summed.
pub fn run_scenario(
    scenario: &Scenario,
    bootstrap: &str,
    out: &Path,
    limits: &LimitsChoice,
    broker_write_bytes: u64,
    broker_pids: &[u32],
) -> Result<RunRecord> {
    scenario.validate()?;
    let mut config = serde_json::to_value(scenario)?;
    let threads = scenario.worker_threads();
    config["worker_threads"] = serde_json::json!(threads);
    config["broker_write_bytes"] = serde_json::json!(broker_write_bytes);
    let mut run = RunWriter::create_timestamped(out, &scenario.name, config)?;
    if let LimitsChoice::Measure(dir, opts) = limits {
        eprintln!("measuring machine limits on {} ...", dir.display());
        run.measure_limits(dir, opts).context("measuring limits")?;
    }

    // Topic setup goes through the project's one admin client
    // (corelog_client, versions negotiated with the broker). The
    // preload, the producer ids and the producers' own connections stay on
    // `KafkaClient`: its pipelined sends and time-bounded polls are what
    // the producers' send schedule needs, and the benchmark's numbers must
    // not move with a change of client.
    let topics = scenario.topic_names();
    let mut setup = corelog_client::Connection::connect(bootstrap, &SETUP_CONNECTION)
        .map_err(|e| anyhow!("{e}"))?;
    for topic in &topics {
        create_topic(&mut setup, topic, scenario)?;
    }
    let mut partitions = Vec::new();
    for topic in &topics {
        let found = wait_for_partitions(&mut setup, topic)?;
        if found.len() < scenario.partitions as usize {
            bail!(
                "topic {topic} has {} partitions, the scenario asks for {}",
                found.len(),
                scenario.partitions
            );
        }
        partitions = found[..scenario.partitions as usize].to_vec();
    }
    // The producers send each partition to its leader, as Metadata names it.
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let leaders = Leaders::from_metadata(
        &setup
            .metadata(Some(&names))
            .map_err(|e| anyhow!("reading Metadata: {e}"))?,
    );
    drop(setup);
    let mut admin = KafkaClient::connect(bootstrap, Duration::from_secs(10))?;
    admin.api_versions()?;
    if scenario.preload_mib > 0 {
        eprintln!("preloading {} MiB ...", scenario.preload_mib);
        preload(&mut admin, scenario, &topics, &partitions).context("preloading")?;
    }
    let identities = producer_identities(&mut admin, scenario, bootstrap)
        .context("InitProducerId for the producers")?;
    drop(admin);

    let clock = Clock::new();
    let start = Instant::now() + Duration::from_millis(200);
    let warmup_end = start + Duration::from_secs_f64(scenario.warmup_s);
    let end = warmup_end + Duration::from_secs_f64(scenario.duration_s);
    let window = Window {
        clock,
        start,
        warmup_end,
        end,
    };
    let acked_msgs = Arc::new(AtomicU64::new(0));
    let producers_done = Arc::new(AtomicBool::new(false));
    let wall = clock.wall(warmup_end);
    let publish_intervals = Arc::new(IntervalCollector::new(warmup_end, wall, INTERVAL));
    let commit_intervals = Arc::new(IntervalCollector::new(warmup_end, wall, INTERVAL));
    let e2e_intervals = Arc::new(IntervalCollector::new(warmup_end, wall, INTERVAL));

    let mut consumers = Vec::new();
    for (kind, count) in [
        (ConsumerKind::Tail, scenario.consumers),
        (ConsumerKind::CatchUp, scenario.catchup_consumers),
    ] {
        for i in 0..count {
            let mut c = KafkaClient::connect(bootstrap, Duration::from_secs(10))?;
            let offsets: Positions = match kind {
                // From where the log ends now, so old data is skipped.
                ConsumerKind::Tail => log_end_offsets(&mut c, &topics, &partitions)?,
                // From the log start (offset 0 is moved up to it).
                ConsumerKind::CatchUp => topics
                    .iter()
                    .map(|t| (t.clone(), partitions.iter().map(|&p| (p, 0)).collect()))
                    .collect(),
            };
            drop(c);
            let ctx = ConsumerCtx {
                kind,
                window,
                producers_done: producers_done.clone(),
                acked: acked_msgs.clone(),
                seen: Arc::new(AtomicU64::new(0)),
                intervals: e2e_intervals.clone(),
            };
            // Like a Kafka client, the consumer fetches each partition from
            // its leader: one connection per leader, each on its own thread.
            let mut parts = Vec::new();
            for (endpoint, positions) in split_by_leader(offsets, &leaders, bootstrap) {
                let c = KafkaClient::connect(&endpoint, Duration::from_secs(10))?;
                parts.push((c, positions));
            }
            let name = format!("{}-{i}", kind.name());
            consumers.push((
                kind,
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || consume_parts(parts, ctx))?,
            ));
        }
    }

    let spec = ProducerSpec {
        topics: topics.clone(),
        partitions: partitions.clone(),
        acks: scenario.acks,
        records_per_batch: scenario.records_per_batch,
        record_bytes: scenario.record_bytes,
        codec: scenario.compression,
        keys: scenario.keys,
        key_space: scenario.key_space,
        linger: Duration::from_secs_f64(scenario.linger_ms / 1000.0),
        max_in_flight: scenario.max_in_flight as usize,
        rate_per_producer: (scenario.rate_msgs_per_s > 0)
            .then(|| scenario.rate_msgs_per_s as f64 / f64::from(scenario.producers)),
        identities,
        transaction_records: scenario.transaction_records,
        add_partitions_backoff: Duration::from_secs_f64(
            scenario.add_partitions_backoff_ms / 1000.0,
        ),
    };
    let cpus = if scenario.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut workers = Vec::new();
    for t in 0..threads {
        let cpu = cpus.get(t as usize).copied();
        // Producer ids are dealt round robin to the workers.
        let ids: Vec<u32> = (0..scenario.producers)
            .filter(|id| id % threads == t)
            .collect();
        let (spec, bootstrap, leaders) = (spec.clone(), bootstrap.to_string(), leaders.clone());
        let (acked, intervals) = (acked_msgs.clone(), publish_intervals.clone());
        let commits = commit_intervals.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("producers-{t}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        // Best effort: an unpinned worker still measures.
                        core_affinity::set_for_current(cpu);
                    }
                    let intervals = producer::Intervals {
                        publish: &intervals,
                        commit: &commits,
                    };
                    producer::run_worker(
                        &ids, &spec, window, &bootstrap, &leaders, &acked, intervals,
                    )
                })?,
        );
    }
    // The broker's CPU is read at the end of the warmup and at the end of
    // the window, the span whose acknowledged messages are counted. In
    // flight at either edge are requests of about equal cost (sent just
    // before, answered just after), so the two edges' errors cancel.
    let broker_cpu = (!broker_pids.is_empty()).then(|| window_cpu(broker_pids, &window));
    let mut results = Vec::new();
    for h in workers {
        results.push(h.join().unwrap_or_else(|_| {
            let mut r = WorkerResult::default();
            r.errors.insert("producer_panic".into(), 1);
            r
        }));
    }
    producers_done.store(true, Ordering::Release);
    let mut consumed = Vec::new();
    for (kind, h) in consumers {
        let r = h.join().unwrap_or_else(|_| {
            let mut r = ConsumerResult::default();
            r.errors.insert("consumer_panic".into(), 1);
            r
        });
        consumed.push((kind, r));
    }

    let (mut messages, mut bytes) = (0u64, 0u64);
    for r in &results {
        messages += r.messages;
        bytes += r.bytes;
        for (k, n) in &r.errors {
            run.add_errors(k, *n);
        }
    }
    let recorders: Vec<_> = results.iter().filter_map(|r| r.latency.as_ref()).collect();
    if !recorders.is_empty() {
        let publish = merge_histograms(recorders.iter().map(|r| r.total()))?;
        run.add_latency("publish", &publish, broker_write_bytes)?;
        let mut log = run.interval_log("publish", wall)?;
        publish_intervals.write(&mut log, Some("publish"))?;
        log.finish()?;
    }
    if scenario.transaction_records > 0 {
        // Commit latency: EndTxn request to response, per transaction.
        let commit = merge_histograms(
            results
                .iter()
                .filter_map(|r| r.commit.as_ref())
                .map(|r| r.total()),
        )?;
        run.add_latency("commit", &commit, broker_write_bytes)?;
        let mut log = run.interval_log("commit", wall)?;
        commit_intervals.write(&mut log, Some("commit"))?;
        log.finish()?;
        // Opening a transaction: its first AddPartitionsToTxn to the answer
        // that opened it, the waits for the previous one's markers included.
        let add = merge_histograms(
            results
                .iter()
                .filter_map(|r| r.add_partitions.as_ref())
                .map(|r| r.total()),
        )?;
        run.add_latency("add_partitions", &add, broker_write_bytes)?;
        let commits: u64 = results.iter().map(|r| r.commits).sum();
        let retries: u64 = results.iter().map(|r| r.add_partitions_retries).sum();
        run.set_note("transactions_committed", serde_json::json!(commits));
        run.set_note(
            "transactions_per_s",
            serde_json::json!(commits as f64 / scenario.duration_s.max(1e-9)),
        );
        run.set_note("add_partitions_retries", serde_json::json!(retries));
    }
    let tails: Vec<&ConsumerResult> = consumed
        .iter()
        .filter(|(k, _)| *k == ConsumerKind::Tail)
        .map(|(_, r)| r)
        .collect();
    if !tails.is_empty() {
        let e2e = merge_histograms(
            tails
                .iter()
                .flat_map(|r| r.latency.iter())
                .map(|l| l.total()),
        )?;
        run.add_latency("end_to_end", &e2e, broker_write_bytes)?;
        let mut log = run.interval_log("end_to_end", wall)?;
        e2e_intervals.write(&mut log, Some("end_to_end"))?;
        log.finish()?;
        for r in &tails {
            if r.messages < messages {
                run.add_errors("not_consumed", messages - r.messages);
            }
        }
    }
    let measured = Duration::from_secs_f64(scenario.duration_s);
    // Catch-up consumers: what they read over the measured window, and how
    // long the first pass over the backlog took (the slowest one's).
    let (mut cu_msgs, mut cu_bytes, mut catchups) = (0u64, 0u64, 0u32);
    let mut first_pass = Duration::ZERO;
    for (kind, r) in &consumed {
        for (k, n) in &r.errors {
            run.add_errors(k, *n);
        }
        if *kind == ConsumerKind::CatchUp {
            cu_msgs += r.window_messages;
            cu_bytes += r.window_bytes;
            catchups += 1;
            match r.caught_up_after {
                Some(d) => first_pass = first_pass.max(d),
                None => run.add_errors("catchup_never_reached_the_log_end", 1),
            }
        }
    }
    if catchups > 0 {
        run.add_part_throughput("catchup_consumers", cu_msgs, cu_bytes, measured);
        run.set_note(
            "catchup_first_pass_s",
            serde_json::json!(first_pass.as_secs_f64()),
        );
    }
    let basis = if scenario.acks == 0 {
        ThroughputBasis::LoopbackTcp
    } else {
        ThroughputBasis::DiskAndLoopbackTcp {
            block_bytes: broker_write_bytes,
        }
    };
    run.set_throughput(messages, bytes, measured, basis);
    match broker_cpu {
        Some(Ok(cpu)) => run.set_broker_cpu(cpu, messages),
        // A broker that exited mid-run fails the run elsewhere; here its
        // CPU is just not recorded.
        Some(Err(_)) => run.add_errors("broker_cpu_unreadable", 1),
        None => {}
    }
    Ok(run.finish()?)
}

/// Each producer's identity, by producer id: none for plain producers; a
/// producer id and epoch from InitProducerId for idempotent ones; for
/// transactional ones also a transactional id of its own (unique to the
/// run, so no earlier run's transaction is in the way) and its
/// coordinator's endpoint (FindCoordinator), whose InitProducerId it is.
fn producer_identities(
    admin: &mut KafkaClient,
    s: &Scenario,
    bootstrap: &str,
) -> Result<Vec<producer::ProducerIdentity>> {
    let patience = Duration::from_secs(30);
    if !s.idempotence() {
        return Ok(Vec::new());
    }
    let run_tag = format!(
        "{}-{}",
        std::process::id(),
        crate::run::unix_now_s() * 1000 + u64::from(clock_ms_part())
    );
    let mut out = Vec::with_capacity(s.producers as usize);
    for i in 0..s.producers {
        if s.transaction_records == 0 {
            let (producer_id, epoch) =
                admin.init_producer_id(None, TRANSACTION_TIMEOUT_MS, patience)?;
            out.push(producer::ProducerIdentity {
                producer_id,
                epoch,
                transactional: None,
            });
            continue;
        }
        let tid = format!("corelog-bench-{}-{run_tag}-{i}", s.topic);
        let coordinator = admin.find_transaction_coordinator(&tid, patience)?;
        let mut c = if coordinator == bootstrap {
            None
        } else {
            Some(KafkaClient::connect(&coordinator, Duration::from_secs(10))?)
        };
        let client = c.as_mut().unwrap_or(admin);
        let (producer_id, epoch) =
            client.init_producer_id(Some(&tid), TRANSACTION_TIMEOUT_MS, patience)?;
        out.push(producer::ProducerIdentity {
            producer_id,
            epoch,
            transactional: Some((tid, coordinator)),
        });
    }
    Ok(out)
}

/// The milliseconds within the current second, to tell runs apart.
fn clock_ms_part() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis())
}

/// The CPU time process `pid` uses between `window.warmup_end` and
/// `window.end`, sleeping until each.
fn window_cpu(pids: &[u32], window: &Window) -> Result<Duration> {
    let sleep_until = |t: Instant| {
        let now = Instant::now();
        if t > now {
            std::thread::sleep(t - now);
        }
    };
    let total = || -> Result<Duration> {
        pids.iter()
            .map(|&pid| crate::proc_cpu::process_cpu(pid))
            .sum::<Result<Duration>>()
    };
    sleep_until(window.warmup_end);
    let start = total()?;
    sleep_until(window.end);
    let end = total()?;
    Ok(end.saturating_sub(start))
}

/// The load generator's setup connection: named in broker logs, and
/// patient enough for a broker creating many partitions.
const SETUP_CONNECTION: corelog_client::Options = corelog_client::Options {
    client_id: "corelog-loadgen",
    connect_timeout: Duration::from_secs(10),
    request_timeout: Duration::from_secs(30),
    api_versions_handshake: true,
};
/// How long the broker may take to create a topic (CreateTopics timeout).
const CREATE_TOPIC_TIMEOUT_MS: i32 = 30_000;
/// Kafka error code TOPIC_ALREADY_EXISTS: a topic kept from an earlier run
/// keeps its own settings.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Creates the scenario's topic `topic`; one that exists is not an error.
fn create_topic(
    c: &mut corelog_client::Connection,
    topic: &str,
    scenario: &Scenario,
) -> Result<()> {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    let resp = c
        .create_topics(
            vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(scenario.partitions as i32)
                .with_replication_factor(scenario.replication_factor)
                .with_configs(
                    scenario
                        .topic_configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                )],
            CREATE_TOPIC_TIMEOUT_MS,
            false,
        )
        .map_err(|e| anyhow!("CreateTopics {topic}: {e}"))?;
    let t = resp
        .topics
        .first()
        .ok_or_else(|| anyhow!("CreateTopics {topic}: the broker answered nothing"))?;
    if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
        c.check(
            &format!("create topic {topic}"),
            t.error_code,
            t.error_message.as_ref(),
        )
        .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

fn wait_for_partitions(c: &mut corelog_client::Connection, topic: &str) -> Result<Vec<i32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let md = c
            .metadata(Some(&[topic]))
            .map_err(|e| anyhow!("Metadata {topic}: {e}"))?;
        if let Some(t) = md.topics.first() {
            // UNKNOWN_TOPIC_OR_PARTITION: not created yet; wait for it.
            if t.error_code != 0 && t.error_code != 3 {
                c.check(&format!("topic {topic}"), t.error_code, None)
                    .map_err(|e| anyhow!("{e}"))?;
            }
            let mut p: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            p.sort_unstable();
            if !p.is_empty() {
                return Ok(p);
            }
        }
        if Instant::now() >= deadline {
            bail!("topic {topic} did not appear in metadata within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetch positions: each topic with its `(partition, offset)` pairs.
type Positions = Vec<(String, Vec<(i32, i64)>)>;

/// The high watermark of each partition, from one Fetch at offset 0.
fn log_end_offsets(
    c: &mut KafkaClient,
    topics: &[String],
    partitions: &[i32],
) -> Result<Positions> {
    let req: Positions = topics
        .iter()
        .map(|t| (t.clone(), partitions.iter().map(|&p| (p, 0)).collect()))
        .collect();
    let resp = c.fetch_topics(&req, 0, 0, 1)?;
    let mut out = Vec::new();
    for topic in topics {
        let mut offsets = Vec::new();
        for &p in partitions {
            let hw = resp
                .responses
                .iter()
                .filter(|t| t.topic.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|d| d.partition_index == p)
                .map_or(0, |d| d.high_watermark.max(0));
            offsets.push((p, hw));
        }
        out.push((topic.clone(), offsets));
    }
    Ok(out)
}

/// Writes `preload_mib` MiB round robin over the topics' partitions with
/// acks=1, eight requests of about 256 KiB in flight. The records' send
/// times are before the run, so tail consumers never count them.
fn preload(c: &mut KafkaClient, s: &Scenario, topics: &[String], partitions: &[i32]) -> Result<()> {
    let target = s.preload_mib << 20;
    let per_batch = ((256usize << 10) / s.record_bytes).max(1);
    let batch_bytes = (per_batch * s.record_bytes) as u64;
    let clock = Clock::new();
    let (mut sent, mut acked, mut i) = (0u64, 0u64, 0usize);
    while acked < target {
        while sent < target && c.in_flight() < 8 {
            let specs = vec![
                records::RecordSpec {
                    send_us: clock.now_us(),
                    key: None,
                };
                per_batch
            ];
            let batch = records::encode_batch_with(&specs, s.record_bytes, s.compression, i)?;
            let target_idx = i % (topics.len() * partitions.len());
            let topic = &topics[target_idx / partitions.len()];
            let p = partitions[target_idx % partitions.len()];
            i += 1;
            c.send_produce(topic, 1, 30_000, &[(p, Bytes::from(batch))])?;
            sent += batch_bytes;
        }
        match c.poll_response(Duration::from_secs(30))? {
            Some((_, _, version, body)) => {
                let r = decode_produce_response(body, version)?;
                for part in r
                    .responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter())
                {
                    if part.error_code != 0 {
                        bail!("preload produce error {}", part.error_code);
                    }
                }
                acked += batch_bytes;
            }
            None => bail!("preload produce timed out"),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsumerKind {
    Tail,
    CatchUp,
}

impl ConsumerKind {
    fn name(self) -> &'static str {
        match self {
            ConsumerKind::Tail => "tail",
            ConsumerKind::CatchUp => "catchup",
        }
    }
}

#[derive(Clone)]
struct ConsumerCtx {
    kind: ConsumerKind,
    window: Window,
    producers_done: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    /// Measured records this consumer has seen over all its connections: a
    /// tail consumer stops once it saw every acknowledged one.
    seen: Arc<AtomicU64>,
    intervals: Arc<IntervalCollector>,
}

/// Kafka error code OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Splits a consumer's positions by the endpoint of each partition's leader
/// (`bootstrap` where Metadata named none), in a stable order.
fn split_by_leader(
    offsets: Positions,
    leaders: &Leaders,
    bootstrap: &str,
) -> Vec<(String, Positions)> {
    let mut by_endpoint: BTreeMap<String, Positions> = BTreeMap::new();
    for (topic, ps) in offsets {
        for (p, o) in ps {
            let endpoint = leaders.endpoint(&topic, p).unwrap_or(bootstrap).to_string();
            let topics = by_endpoint.entry(endpoint).or_default();
            match topics.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, v)) => v.push((p, o)),
                None => topics.push((topic.clone(), vec![(p, o)])),
            }
        }
    }
    by_endpoint.into_iter().collect()
}

/// Runs one consumer over its connections (one per leader) and merges what
/// they saw into one result.
fn consume_parts(parts: Vec<(KafkaClient, Positions)>, ctx: ConsumerCtx) -> ConsumerResult {
    let results: Vec<ConsumerResult> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|(c, positions)| {
                let ctx = ctx.clone();
                s.spawn(move || consume(c, positions, ctx))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    let mut r = ConsumerResult::default();
                    r.errors.insert("consumer_panic".into(), 1);
                    r
                })
            })
            .collect()
    });
    merge_consumer_results(results)
}

/// One consumer's result from those of its connections: counts add up, the
/// first pass over the backlog took as long as the slowest connection's (and
/// never ended if one never reached the log end).
fn merge_consumer_results(results: Vec<ConsumerResult>) -> ConsumerResult {
    let mut merged = ConsumerResult::default();
    let mut caught_up = Some(Duration::ZERO);
    let mut passes: Option<u64> = None;
    for r in results {
        merged.latency.extend(r.latency);
        merged.messages += r.messages;
        merged.window_messages += r.window_messages;
        merged.window_bytes += r.window_bytes;
        caught_up = caught_up.zip(r.caught_up_after).map(|(a, b)| a.max(b));
        passes = Some(passes.map_or(r.passes, |p| p.min(r.passes)));
        for (k, n) in r.errors {
            *merged.errors.entry(k).or_default() += n;
        }
    }
    merged.caught_up_after = caught_up;
    merged.passes = passes.unwrap_or(0);
    merged
}

fn consume(mut client: KafkaClient, mut offsets: Positions, ctx: ConsumerCtx) -> ConsumerResult {
    let tail = ctx.kind == ConsumerKind::Tail;
    let mut rec = LatencyRecorder::new();
    let mut slot = 0u64;
    let mut r = ConsumerResult::default();
    let warmup_end_us = ctx.window.clock.us(ctx.window.warmup_end);
    let mut done_at: Option<Instant> = None;
    if !tail {
        // The catch-up is measured from the end of the warmup, so it starts
        // there with the whole backlog in front of it.
        let now = Instant::now();
        if ctx.window.warmup_end > now {
            std::thread::sleep(ctx.window.warmup_end - now);
        }
    }
    loop {
        if ctx.producers_done.load(Ordering::Acquire) {
            let t = *done_at.get_or_insert_with(Instant::now);
            // A tail consumer stops when it saw everything acknowledged, or
            // 5 s after the producers finished; a catch-up consumer at once.
            if !tail
                || ctx.seen.load(Ordering::Relaxed) >= ctx.acked.load(Ordering::Relaxed)
                || t.elapsed() > Duration::from_secs(5)
            {
                break;
            }
        }
        let (wait_ms, partition_max) = if tail { (100, 8 << 20) } else { (100, 1 << 20) };
        let resp = match client.fetch_topics(&offsets, wait_ms, 1, partition_max) {
            Ok(resp) => resp,
            Err(_) => {
                *r.errors.entry("fetch_io".into()).or_default() += 1;
                break;
            }
        };
        let now = Instant::now();
        let now_us = ctx.window.clock.us(now);
        let catching_up = now < ctx.window.end;
        let mut behind = false;
        for (topic, pd) in resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |pd| (t.topic.as_str(), pd)))
        {
            let Some(slot_offset) = offsets
                .iter_mut()
                .filter(|(t, _)| t == topic)
                .flat_map(|(_, ps)| ps.iter_mut())
                .find(|(p, _)| *p == pd.partition_index)
            else {
                continue;
            };
            if pd.error_code == OFFSET_OUT_OF_RANGE && pd.log_start_offset > slot_offset.1 {
                // Retention moved the log start past us: skip ahead.
                slot_offset.1 = pd.log_start_offset;
                behind = true;
                continue;
            }
            if pd.error_code != 0 {
                *r.errors
                    .entry(format!("fetch_error_{}", pd.error_code))
                    .or_default() += 1;
                behind = true;
                continue;
            }
            let hw = pd.high_watermark;
            let Some(data) = &pd.records else {
                behind |= slot_offset.1 < hw;
                continue;
            };
            for b in walk_batches(data, tail) {
                if b.last_offset < slot_offset.1 {
                    continue;
                }
                slot_offset.1 = b.last_offset + 1;
                if b.control {
                    // A transaction marker: no records of the producers'.
                    continue;
                }
                if !tail {
                    if catching_up {
                        r.window_messages += u64::from(b.records);
                        r.window_bytes += b.stored_bytes as u64;
                    }
                    continue;
                }
                if b.undecodable {
                    *r.errors
                        .entry("fetch_undecodable_batch".into())
                        .or_default() += 1;
                    continue;
                }
                if b.send_us.is_empty() {
                    *r.errors.entry("fetch_no_timestamp".into()).or_default() += 1;
                }
                for &send in b.send_us.iter().filter(|&&s| s >= warmup_end_us) {
                    rec.record_us(now_us.saturating_sub(send));
                    r.messages += 1;
                    ctx.seen.fetch_add(1, Ordering::Relaxed);
                }
            }
            behind |= slot_offset.1 < hw;
        }
        if !tail && !behind {
            // Every partition read up to the high watermark of this
            // response: one pass over the backlog is done. Start over from
            // the log start, so old data is read from disk all through the
            // measured window, beside the tail consumers.
            r.caught_up_after
                .get_or_insert(now.saturating_duration_since(ctx.window.warmup_end));
            r.passes += 1;
            for (_, ps) in offsets.iter_mut() {
                for (_, o) in ps.iter_mut() {
                    *o = 0;
                }
            }
            if now >= ctx.window.end {
                break;
            }
        }
        if tail {
            ctx.intervals.drain(&mut rec, &mut slot, now, false);
        }
    }
    if tail {
        ctx.intervals
            .drain(&mut rec, &mut slot, Instant::now(), true);
        r.latency = vec![rec];
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_fetches_each_partition_from_its_leader() {
        // Shard-direct: partitions 0 and 2 on one shard's port, 1 on the
        // other's; partition 3 has no leader and goes to the bootstrap.
        let resp = crate::kafka_client::testutil::metadata(
            &[(1, "127.0.0.1", 9093), (2, "127.0.0.1", 9094)],
            "t",
            &[(0, 1), (1, 2), (2, 1), (3, -1)],
        );
        let leaders = Leaders::from_metadata(&resp);
        let offsets: Positions = vec![("t".into(), vec![(0, 5), (1, 6), (2, 7), (3, 8)])];
        let split = split_by_leader(offsets, &leaders, "127.0.0.1:9092");
        assert_eq!(
            split,
            vec![
                (
                    "127.0.0.1:9092".to_string(),
                    vec![("t".to_string(), vec![(3, 8)])]
                ),
                (
                    "127.0.0.1:9093".to_string(),
                    vec![("t".to_string(), vec![(0, 5), (2, 7)])]
                ),
                (
                    "127.0.0.1:9094".to_string(),
                    vec![("t".to_string(), vec![(1, 6)])]
                ),
            ]
        );
    }

    #[test]
    fn a_consumers_connections_merge_into_one_result() {
        let part = |messages, caught_up_after, passes| ConsumerResult {
            messages,
            window_messages: messages,
            window_bytes: messages * 10,
            caught_up_after,
            passes,
            ..ConsumerResult::default()
        };
        let merged = merge_consumer_results(vec![
            part(3, Some(Duration::from_secs(2)), 4),
            part(5, Some(Duration::from_secs(3)), 2),
        ]);
        assert_eq!(
            (merged.messages, merged.window_bytes, merged.passes),
            (8, 80, 2)
        );
        assert_eq!(merged.caught_up_after, Some(Duration::from_secs(3)));
        // One connection that never reached the log end: neither did the
        // consumer.
        let merged = merge_consumer_results(vec![
            part(3, Some(Duration::from_secs(2)), 1),
            part(5, None, 0),
        ]);
        assert_eq!(merged.caught_up_after, None);
    }

    #[test]
    fn scenario_defaults_and_validation() {
        let s: Scenario = toml::from_str(
            r#"
            name = "t"
            topic = "t"
            record_bytes = 100
            acks = -1
            duration_s = 1
            "#,
        )
        .unwrap();
        assert_eq!(
            (
                s.partitions,
                s.producers,
                s.records_per_batch,
                s.max_in_flight
            ),
            (1, 1, 1, 5)
        );
        assert_eq!((s.rate_msgs_per_s, s.consumers, s.warmup_s), (0, 0, 2.0));
        s.validate().unwrap();
        assert!(Scenario {
            acks: 2,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(Scenario {
            consumers: CONSUMERS_MAX + 1,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(
            Scenario {
                linger_ms: 5.0,
                ..s.clone()
            }
            .validate()
            .is_err(),
            "linger in the closed loop"
        );
        assert_eq!(s.keys, KeyMode::None);
        assert_eq!(s.compression, Codec::None);
        let keyed: Scenario = toml::from_str(
            "name = \"t\"\ntopic = \"t\"\nrecord_bytes = 100\nacks = 1\nduration_s = 1\n\
             keys = \"skewed\"\ncompression = \"zstd\"\n\
             topic_configs = { \"retention.bytes\" = \"1048576\" }\n",
        )
        .unwrap();
        assert_eq!(keyed.keys, KeyMode::Skewed);
        assert_eq!(keyed.compression, Codec::Zstd);
        assert_eq!(keyed.topic_configs["retention.bytes"], "1048576");
        assert!(Scenario {
            record_bytes: 7,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(toml::from_str::<Scenario>("name = \"t\"\nbogus = 1").is_err());
        assert!(!s.idempotence());
    }

    #[test]
    fn idempotent_and_transactional_producers_need_acks_all_and_five_in_flight() {
        let s: Scenario = toml::from_str(
            "name = \"t\"\ntopic = \"t\"\nrecord_bytes = 100\nacks = -1\nduration_s = 1\n\
             transaction_records = 100\n",
        )
        .unwrap();
        assert!(s.idempotence(), "transactional producers are idempotent");
        s.validate().unwrap();
        assert!(Scenario {
            acks: 1,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(Scenario {
            max_in_flight: 6,
            ..s.clone()
        }
        .validate()
        .is_err());
        let idem = Scenario {
            transaction_records: 0,
            idempotent: true,
            ..s.clone()
        };
        assert!(idem.idempotence());
        idem.validate().unwrap();
        assert!(Scenario { acks: 0, ..idem }.validate().is_err());
    }

    fn record_with(messages: u64, latency_counts: &[(&str, u64)]) -> RunRecord {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RunWriter::create(dir.path(), "t", serde_json::json!({})).expect("create");
        for (name, n) in latency_counts {
            let mut h = crate::hist::new_latency_histogram();
            for _ in 0..*n {
                h.saturating_record(100);
            }
            w.add_latency(name, &h, default_broker_write_bytes())
                .expect("latency");
        }
        w.set_throughput(
            messages,
            messages * 1024,
            Duration::from_secs(1),
            ThroughputBasis::LoopbackTcp,
        );
        if messages == 0 {
            w.add_errors("produce_error_3", 7);
        }
        w.finish().expect("finish")
    }

    #[test]
    fn runs_that_measured_nothing_are_errors() {
        assert_eq!(
            measured_nothing(&record_with(10, &[("publish", 10), ("end_to_end", 10)])),
            None
        );
        let none = measured_nothing(&record_with(0, &[("publish", 0)])).expect("zero throughput");
        assert!(
            none.contains("no message") && none.contains("produce_error_3"),
            "{none}"
        );
        let empty = measured_nothing(&record_with(10, &[("publish", 10), ("end_to_end", 0)]))
            .expect("empty histogram");
        assert!(empty.contains("end_to_end"), "{empty}");
    }
}
