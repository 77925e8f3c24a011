//! `corelog-bench run`: the Kafka load generator.
//!
//! Producers are threads, one connection each, each with its own
//! [`LatencyRecorder`]. Every record value starts with its send time
//! (microseconds since the Unix epoch), so an optional tail consumer can
//! measure end-to-end latency.
//!
//! - Closed loop (`rate_msgs_per_s = 0`): each producer keeps
//!   `max_in_flight` requests in flight; publish latency runs from the
//!   request's send to its acknowledgement.
//! - Open loop: each producer sends on a fixed schedule and latency runs from
//!   the *intended* send time, so a stall that delays later sends shows up in
//!   their latency instead of being hidden (coordinated omission). The
//!   embedded send timestamp is the intended time too.
//!
//! Requests whose intended send time falls in the warmup are not recorded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::hist::{merge_histograms, LatencyRecorder};
use crate::kafka_client::{decode_produce_response, walk_batches, KafkaClient};
use crate::limits::LimitsOptions;
use crate::run::{RunRecord, RunWriter, ThroughputBasis};

/// The broker's largest disk write (its group-commit size), which bounds
/// a produce workload's disk throughput.
pub const BROKER_WRITE_BYTES: u64 = 1 << 20;

/// How long after the end an open-loop producer still sends what was due
/// before the end; what is still unsent then is `open_loop_behind_schedule`.
const SCHEDULE_GRACE: Duration = Duration::from_secs(1);

/// A scenario file (`bench-harness/scenarios/*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub topic: String,
    #[serde(default = "one")]
    pub partitions: u32,
    pub record_bytes: usize,
    #[serde(default = "one")]
    pub records_per_batch: u32,
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
    /// 0 or 1 tail consumers.
    #[serde(default)]
    pub consumers: u32,
    /// Requests each producer keeps in flight.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: u32,
}

fn one() -> u32 {
    1
}
fn default_warmup() -> f64 {
    2.0
}
fn default_in_flight() -> u32 {
    5
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
        if self.consumers > 1 {
            bail!("consumers must be 0 or 1");
        }
        if self.record_bytes < 8 {
            bail!("record_bytes must be at least 8 (the send timestamp)");
        }
        if self.partitions == 0 || self.producers == 0 || self.records_per_batch == 0 {
            bail!("partitions, producers and records_per_batch must be positive");
        }
        if self.max_in_flight == 0 {
            bail!("max_in_flight must be positive");
        }
        if !(self.duration_s > 0.0 && self.warmup_s >= 0.0) {
            bail!("duration_s must be positive and warmup_s not negative");
        }
        Ok(())
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
    /// Directory whose filesystem the quick limits are measured on (ideally
    /// the broker's data dir's filesystem); default the system temp dir.
    #[arg(long)]
    pub limits_dir: Option<PathBuf>,
    /// Skip the limits measurement.
    #[arg(long)]
    pub no_limits: bool,
}

/// How to obtain machine limits for a run.
#[derive(Debug, Clone)]
pub enum LimitsChoice {
    None,
    Measure(PathBuf, LimitsOptions),
}

pub fn run_command(args: &RunArgs) -> Result<std::process::ExitCode> {
    let mut scenario = Scenario::from_file(&args.scenario)?;
    if let Some(d) = args.duration_s {
        scenario.duration_s = d;
    }
    if let Some(w) = args.warmup_s {
        scenario.warmup_s = w;
    }
    scenario.validate()?;
    let limits = if args.no_limits {
        LimitsChoice::None
    } else {
        LimitsChoice::Measure(
            args.limits_dir.clone().unwrap_or_else(std::env::temp_dir),
            LimitsOptions::quick(),
        )
    };
    let record = run_scenario(&scenario, &args.bootstrap, &args.out, &limits)?;
    println!("{}", summary_line(&record));
    if let Some(problem) = measured_nothing(&record) {
        // Not a result to compare: the broker or the generator is broken.
        bail!("the run measured nothing: {problem}");
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
    s += &format!("; errors {}", record.total_errors());
    s
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Maps `Instant`s to wall-clock microseconds with one shared reference, so
/// producer and consumer timestamps agree.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    unix_us: u64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            instant: Instant::now(),
            unix_us: unix_us(SystemTime::now()),
        }
    }
    fn us(&self, t: Instant) -> u64 {
        self.unix_us + t.saturating_duration_since(self.instant).as_micros() as u64
    }
    fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }
}

#[derive(Default)]
struct ProducerResult {
    latency: Option<LatencyRecorder>,
    messages: u64,
    bytes: u64,
    errors: Vec<(String, u64)>,
}

struct ConsumerResult {
    latency: LatencyRecorder,
    messages: u64,
    errors: Vec<(String, u64)>,
}

/// Runs `scenario` against `bootstrap` and writes a run directory under
/// `out`; returns the finished record.
pub fn run_scenario(
    scenario: &Scenario,
    bootstrap: &str,
    out: &Path,
    limits: &LimitsChoice,
) -> Result<RunRecord> {
    scenario.validate()?;
    let config = serde_json::to_value(scenario)?;
    let mut run = RunWriter::create_timestamped(out, &scenario.name, config)?;
    if let LimitsChoice::Measure(dir, opts) = limits {
        eprintln!("measuring machine limits on {} ...", dir.display());
        run.measure_limits(dir, opts).context("measuring limits")?;
    }

    // Topic setup.
    let mut admin = KafkaClient::connect(bootstrap, Duration::from_secs(10))?;
    admin.api_versions()?;
    admin.create_topic(&scenario.topic, scenario.partitions as i32)?;
    let partitions = wait_for_partitions(&mut admin, &scenario.topic)?;
    if partitions.len() < scenario.partitions as usize {
        bail!(
            "topic {} has {} partitions, the scenario asks for {}",
            scenario.topic,
            partitions.len(),
            scenario.partitions
        );
    }
    let partitions: Vec<i32> = partitions[..scenario.partitions as usize].to_vec();
    drop(admin);

    let clock = Clock::new();
    let start = Instant::now() + Duration::from_millis(200);
    let warmup_end = start + Duration::from_secs_f64(scenario.warmup_s);
    let end = warmup_end + Duration::from_secs_f64(scenario.duration_s);
    let acked_msgs = Arc::new(AtomicU64::new(0));
    let producers_done = Arc::new(AtomicBool::new(false));

    let consumer = if scenario.consumers == 1 {
        // Find where the log ends now, so old data is skipped.
        let mut c = KafkaClient::connect(bootstrap, Duration::from_secs(10))?;
        let start_offsets = log_end_offsets(&mut c, &scenario.topic, &partitions)?;
        let (topic, done) = (scenario.topic.clone(), producers_done.clone());
        let (acked, warm_us) = (acked_msgs.clone(), clock.us(warmup_end));
        Some(
            std::thread::Builder::new()
                .name("consumer".into())
                .spawn(move || consume(c, &topic, start_offsets, clock, warm_us, done, acked))?,
        )
    } else {
        None
    };

    let mut handles = Vec::new();
    for i in 0..scenario.producers {
        let s = scenario.clone();
        let bootstrap = bootstrap.to_string();
        let acked = acked_msgs.clone();
        // Producer i starts at partition i and goes round robin.
        let mine: Vec<i32> = (0..partitions.len())
            .map(|k| partitions[(k + i as usize) % partitions.len()])
            .collect();
        handles.push(
            std::thread::Builder::new()
                .name(format!("producer-{i}"))
                .spawn(move || {
                    produce(&s, &bootstrap, &mine, clock, start, warmup_end, end, acked)
                })?,
        );
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.join().unwrap_or_else(|_| ProducerResult {
            errors: vec![("producer_panic".into(), 1)],
            ..Default::default()
        }));
    }
    producers_done.store(true, Ordering::Release);
    let consumed = consumer.map(|h| {
        h.join().unwrap_or_else(|_| ConsumerResult {
            latency: LatencyRecorder::new(),
            messages: 0,
            errors: vec![("consumer_panic".into(), 1)],
        })
    });

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
        run.add_latency("publish", &publish, BROKER_WRITE_BYTES)?;
    }
    if let Some(c) = &consumed {
        run.add_latency("end_to_end", c.latency.total(), BROKER_WRITE_BYTES)?;
        for (k, n) in &c.errors {
            run.add_errors(k, *n);
        }
        if c.messages < messages {
            run.add_errors("not_consumed", messages - c.messages);
        }
    }
    let basis = if scenario.acks == 0 {
        ThroughputBasis::LoopbackTcp
    } else {
        ThroughputBasis::DiskAndLoopbackTcp {
            block_bytes: BROKER_WRITE_BYTES,
        }
    };
    run.set_throughput(
        messages,
        bytes,
        Duration::from_secs_f64(scenario.duration_s),
        basis,
    );
    Ok(run.finish()?)
}

fn wait_for_partitions(c: &mut KafkaClient, topic: &str) -> Result<Vec<i32>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(p) = c.topic_partitions(topic)? {
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

/// The high watermark of each partition, from one Fetch at offset 0.
fn log_end_offsets(
    c: &mut KafkaClient,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>> {
    let req: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, 0)).collect();
    let resp = c.fetch(topic, &req, 0, 0, 1)?;
    let mut out = Vec::new();
    for &p in partitions {
        let hw = resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|d| d.partition_index == p)
            .map_or(0, |d| d.high_watermark.max(0));
        out.push((p, hw));
    }
    Ok(out)
}

struct Pending {
    intended: Instant,
    messages: u64,
    bytes: u64,
}

#[allow(clippy::too_many_arguments)]
fn produce(
    s: &Scenario,
    bootstrap: &str,
    partitions: &[i32],
    clock: Clock,
    start: Instant,
    warmup_end: Instant,
    end: Instant,
    acked: Arc<AtomicU64>,
) -> ProducerResult {
    let mut result = ProducerResult::default();
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    let mut client = match KafkaClient::connect(bootstrap, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(_) => {
            result.errors.push(("produce_connect".into(), 1));
            return result;
        }
    };
    let mut rec = LatencyRecorder::new();
    let per_batch = u64::from(s.records_per_batch);
    // Open loop: one batch every `interval` per producer.
    let interval = (s.rate_msgs_per_s > 0).then(|| {
        let per_producer = s.rate_msgs_per_s as f64 / f64::from(s.producers);
        Duration::from_secs_f64(per_batch as f64 / per_producer)
    });
    let max_in_flight = s.max_in_flight as usize;
    let mut pending = std::collections::VecDeque::<Pending>::new();
    let mut next_send = start;
    let mut sent: u64 = 0;
    let mut part_idx = 0usize;
    let drain_deadline = end + SCHEDULE_GRACE + Duration::from_secs(10);
    let payload_bytes = (s.record_bytes as u64) * per_batch;

    let on_response = |body: Bytes,
                       version: i16,
                       p: Pending,
                       rec: &mut LatencyRecorder,
                       errors: &mut std::collections::BTreeMap<String, u64>,
                       result: &mut ProducerResult| {
        let ok = match decode_produce_response(body, version) {
            Ok(r) => {
                let codes: Vec<i16> = r
                    .responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
                    .collect();
                match codes.iter().find(|&&c| c != 0) {
                    Some(c) => {
                        *errors.entry(format!("produce_error_{c}")).or_default() += 1;
                        false
                    }
                    None if codes.is_empty() => {
                        *errors.entry("produce_empty_response".into()).or_default() += 1;
                        false
                    }
                    None => true,
                }
            }
            Err(_) => {
                *errors.entry("produce_decode".into()).or_default() += 1;
                false
            }
        };
        if ok && p.intended >= warmup_end && p.intended < end {
            rec.record_since(p.intended);
            result.messages += p.messages;
            result.bytes += p.bytes;
            acked.fetch_add(p.messages, Ordering::Relaxed);
        }
    };

    // Wait for the common start.
    let now = Instant::now();
    if start > now {
        std::thread::sleep(start - now);
    }
    loop {
        let now = Instant::now();
        // Open loop: sends due before `end` still go out late (their latency
        // counts from the schedule), for at most `SCHEDULE_GRACE`.
        let sending_done = match interval {
            Some(_) => next_send >= end || now >= end + SCHEDULE_GRACE,
            None => now >= end,
        };
        if sending_done && pending.is_empty() {
            break;
        }
        if now >= drain_deadline {
            *errors.entry("produce_timeout".into()).or_default() += pending.len() as u64;
            break;
        }
        let can_send = !sending_done && pending.len() < max_in_flight && now >= next_send;
        if can_send {
            // Closed loop: the intended time is now; open loop: the schedule.
            let intended = if interval.is_some() { next_send } else { now };
            let batch = Bytes::from(crate::kafka_client::encode_batch(
                s.records_per_batch as usize,
                s.record_bytes,
                clock.us(intended),
            ));
            let p = partitions[part_idx % partitions.len()];
            part_idx += 1;
            if let Err(_e) = client.send_produce(&s.topic, s.acks, 30_000, &[(p, batch)]) {
                *errors.entry("produce_io".into()).or_default() += 1;
                break;
            }
            sent += 1;
            next_send = match interval {
                Some(iv) => start + iv.mul_f64(sent as f64),
                None => now,
            };
            let entry = Pending {
                intended,
                messages: per_batch,
                bytes: payload_bytes,
            };
            if s.acks == 0 {
                // Nothing comes back: count it as sent, no latency.
                if intended >= warmup_end && intended < end {
                    result.messages += entry.messages;
                    result.bytes += entry.bytes;
                    acked.fetch_add(entry.messages, Ordering::Relaxed);
                }
            } else {
                pending.push_back(entry);
            }
            continue;
        }
        // Wait for a response, but not past the next scheduled send.
        let wait = if sending_done || pending.len() >= max_in_flight {
            drain_deadline.saturating_duration_since(now)
        } else {
            next_send.saturating_duration_since(now)
        };
        if pending.is_empty() {
            std::thread::sleep(wait.min(Duration::from_millis(100)));
            continue;
        }
        match client.poll_response(wait.min(Duration::from_millis(100))) {
            Ok(Some((_, _, version, body))) => {
                let p = pending.pop_front().expect("pending matches in flight");
                on_response(body, version, p, &mut rec, &mut errors, &mut result);
            }
            Ok(None) => {}
            Err(_) => {
                *errors.entry("produce_io".into()).or_default() += pending.len() as u64;
                break;
            }
        }
    }
    // Open loop: a producer that fell behind its schedule stops at the end
    // time with sends still due. Those that were due inside the measured
    // window are reported, so a missed rate cannot pass as a clean run.
    if let Some(iv) = interval {
        let first_due = next_send.max(warmup_end);
        if first_due < end {
            let missed = ((end - first_due).as_secs_f64() / iv.as_secs_f64()).ceil() as u64;
            *errors
                .entry("open_loop_behind_schedule".into())
                .or_default() += missed * per_batch;
        }
    }
    if s.acks != 0 {
        result.latency = Some(rec);
    }
    result.errors.extend(errors);
    result
}

fn consume(
    mut client: KafkaClient,
    topic: &str,
    mut offsets: Vec<(i32, i64)>,
    clock: Clock,
    warmup_end_us: u64,
    producers_done: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> ConsumerResult {
    let mut rec = LatencyRecorder::new();
    let mut messages = 0u64;
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    let mut done_at: Option<Instant> = None;
    loop {
        if producers_done.load(Ordering::Acquire) {
            let t = *done_at.get_or_insert_with(Instant::now);
            // Stop when everything acknowledged was seen, or 5 s after the
            // producers finished.
            if messages >= acked.load(Ordering::Relaxed) || t.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let resp = match client.fetch(topic, &offsets, 100, 1, 8 << 20) {
            Ok(r) => r,
            Err(_) => {
                *errors.entry("fetch_io".into()).or_default() += 1;
                break;
            }
        };
        let now_us = clock.now_us();
        for pd in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
            if pd.error_code != 0 {
                *errors
                    .entry(format!("fetch_error_{}", pd.error_code))
                    .or_default() += 1;
                continue;
            }
            let Some(slot) = offsets.iter_mut().find(|(p, _)| *p == pd.partition_index) else {
                continue;
            };
            let Some(data) = &pd.records else { continue };
            for b in walk_batches(data) {
                if b.last_offset < slot.1 {
                    continue;
                }
                slot.1 = b.last_offset + 1;
                match b.send_us {
                    Some(send) if send >= warmup_end_us => {
                        let lat = now_us.saturating_sub(send);
                        for _ in 0..b.records {
                            rec.record_us(lat);
                        }
                        messages += u64::from(b.records);
                    }
                    Some(_) => {}
                    None => *errors.entry("fetch_no_timestamp".into()).or_default() += 1,
                }
            }
        }
    }
    ConsumerResult {
        latency: rec,
        messages,
        errors: errors.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            consumers: 2,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(Scenario {
            record_bytes: 7,
            ..s.clone()
        }
        .validate()
        .is_err());
        assert!(toml::from_str::<Scenario>("name = \"t\"\nbogus = 1").is_err());
    }

    fn record_with(messages: u64, latency_counts: &[(&str, u64)]) -> RunRecord {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RunWriter::create(dir.path(), "t", serde_json::json!({})).expect("create");
        for (name, n) in latency_counts {
            let mut h = crate::hist::new_latency_histogram();
            for _ in 0..*n {
                h.saturating_record(100);
            }
            w.add_latency(name, &h, BROKER_WRITE_BYTES)
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
