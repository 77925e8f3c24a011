//! Run records: `run.json` plus the histogram files of one benchmark run.
//!
//! A run directory looks like this:
//!
//! ```text
//! <run dir>/
//!   run.json         RunRecord: git sha, machine, config, limits, results
//!   limits.json      Limits, when measured in this run
//!   <name>.hgrm      percentile distribution of latency histogram <name>
//!   <name>.hlog      interval log of <name>, when the load generator wrote one
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::hist::{self, HistogramSummary, IntervalLogFile};
use crate::limits::{self, Limits, LimitsOptions, WriteMode};

/// File name of the run record inside a run directory.
pub const RUN_JSON: &str = "run.json";
/// File name of the limits inside a run directory.
pub const LIMITS_JSON: &str = "limits.json";
/// Version of the `run.json` layout; bump on incompatible changes.
pub const RUN_SCHEMA_VERSION: u32 = 1;

const MIB: f64 = 1024.0 * 1024.0;

/// Everything recorded about one benchmark run (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Layout version of this record.
    pub schema_version: u32,
    /// Short scenario name, e.g. "produce-1kib-acks-all".
    pub scenario: String,
    /// When the run started (Unix seconds, UTC).
    pub started_at_unix_s: u64,
    /// Wall time of the measured part of the run.
    pub duration_s: f64,
    /// `git rev-parse HEAD` of the harness source, or "unknown".
    pub git_sha: String,
    /// The machine the run happened on.
    pub machine: MachineInfo,
    /// Scenario configuration, free-form.
    pub config: serde_json::Value,
    /// Machine ceilings measured in the same run, when measured.
    pub limits: Option<Limits>,
    /// How the host was tuned: `corelog tune --check` as JSON, taken when
    /// the run started (and again when the data directory is set).
    #[serde(default)]
    pub host_tuning: Option<serde_json::Value>,
    /// Measured results.
    pub results: RunResults,
}

/// Facts about the machine that explain differences between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MachineInfo {
    /// CPUs the kernel has online.
    pub online_cpus: usize,
    /// CPUs this process may run on (affinity and cgroup quota applied).
    pub available_cpus: usize,
    /// `uname` sysname, release, version and machine.
    pub kernel: String,
    /// CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal from /proc/meminfo.
    pub memory_total_bytes: Option<u64>,
    /// The broker's data directory, when the run has one.
    pub data_dir: Option<String>,
    /// Filesystem type of the data directory (e.g. "ext4").
    pub data_filesystem: Option<String>,
    /// Mount source of the data directory (e.g. "/dev/nvme0n1p2").
    pub data_device: Option<String>,
}

/// Measured results of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunResults {
    /// Overall throughput, when the scenario moves messages.
    pub throughput: Option<Throughput>,
    /// Latency histograms by name (e.g. "produce", "end_to_end").
    pub latency: BTreeMap<String, LatencyResult>,
    /// Error counts by kind (e.g. "timeout", "not_leader").
    pub errors: BTreeMap<String, u64>,
    /// Throughput of individual parts of the run by name (e.g. a catch-up
    /// consumer's read rate), beside the overall `throughput`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub part_throughput: BTreeMap<String, Throughput>,
    /// Other measured facts by name (e.g. how long a catch-up took).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, serde_json::Value>,
    /// CPU seconds (user + system, all threads) the broker used in the
    /// measured window, when the run was given the broker's pid; absent
    /// otherwise, and in records from before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_s: Option<f64>,
    /// `broker_cpu_s` per message acknowledged in the measured window, in
    /// microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_us_per_msg: Option<f64>,
}

/// Which machine limit bounds a throughput result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThroughputBasis {
    /// No limit applies (e.g. an in-memory scenario).
    None,
    /// Preallocated O_DIRECT write bandwidth at the workload's block size.
    DiskWrite {
        /// Size of the workload's writes.
        block_bytes: u64,
    },
    /// Single-stream loopback TCP bandwidth.
    LoopbackTcp,
    /// The lower of disk write bandwidth and loopback TCP bandwidth, for a
    /// broker that receives over the network and writes to disk.
    DiskAndLoopbackTcp {
        /// Size of the broker's disk writes.
        block_bytes: u64,
    },
}

impl ThroughputBasis {
    /// The limit in bytes/s this basis selects from `limits`.
    pub fn limit_bytes_per_s(&self, limits: &Limits) -> Option<f64> {
        match *self {
            ThroughputBasis::None => None,
            ThroughputBasis::DiskWrite { block_bytes } => {
                limits.write_bandwidth_bytes_per_s(block_bytes, WriteMode::Preallocated)
            }
            ThroughputBasis::LoopbackTcp => Some(limits.loopback_tcp.bandwidth_bytes_per_s),
            ThroughputBasis::DiskAndLoopbackTcp { block_bytes } => limits
                .write_bandwidth_bytes_per_s(block_bytes, WriteMode::Preallocated)
                .map(|disk| disk.min(limits.loopback_tcp.bandwidth_bytes_per_s)),
        }
    }
}

/// Throughput of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages completed in the measured window.
    pub messages: u64,
    /// Payload bytes completed in the measured window.
    pub bytes: u64,
    /// Length of the measured window.
    pub duration_s: f64,
    /// `messages / duration_s`.
    pub msgs_per_s: f64,
    /// `bytes / duration_s / 2^20`.
    pub mib_per_s: f64,
    /// Which limit applies.
    pub basis: ThroughputBasis,
    /// The applicable limit from the same run's `Limits`.
    pub limit_bytes_per_s: Option<f64>,
    /// Bytes/s divided by `limit_bytes_per_s`.
    pub fraction_of_limit: Option<f64>,
}

/// One latency histogram's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyResult {
    /// Headline percentiles in microseconds.
    pub summary: HistogramSummary,
    /// The `.hgrm` file in the run directory.
    pub hgrm_file: String,
    /// Block size whose fdatasync latency normalises this histogram: the
    /// size of the durable write behind each measured operation.
    pub fdatasync_block_bytes: u64,
    /// fdatasync p99 for that block size from the same run's `Limits`.
    pub fdatasync_p99_us: Option<f64>,
    /// `summary.p99_us / fdatasync_p99_us`: how many device syncs' worth of
    /// tail latency the system adds, which is stable across noisy machines.
    pub p99_over_fdatasync_p99: Option<f64>,
}

impl RunRecord {
    /// Recomputes every limit-derived field from `self.limits`.
    pub fn apply_limits(&mut self) {
        let limits = self.limits.as_ref();
        if let Some(t) = self.results.throughput.as_mut() {
            t.limit_bytes_per_s = limits.and_then(|l| t.basis.limit_bytes_per_s(l));
            t.fraction_of_limit = t
                .limit_bytes_per_s
                .filter(|l| *l > 0.0)
                .map(|l| t.mib_per_s * MIB / l);
        }
        for r in self.results.latency.values_mut() {
            r.fdatasync_p99_us = limits.and_then(|l| l.fdatasync_p99_us(r.fdatasync_block_bytes));
            r.p99_over_fdatasync_p99 = r
                .fdatasync_p99_us
                .filter(|s| *s > 0.0)
                .map(|s| r.summary.p99_us / s);
        }
    }

    /// Total error count over all kinds.
    pub fn total_errors(&self) -> u64 {
        self.results.errors.values().sum()
    }
}

/// The host audit (`corelog tune --check`, read-only) as JSON.
fn host_tuning_report(data_dir: Option<&Path>) -> Option<serde_json::Value> {
    let data_dir = data_dir.unwrap_or(Path::new("/"));
    serde_json::to_value(corelog_tuning::check_report(Path::new("/"), data_dir)).ok()
}

/// Builds a run directory: create it, add results, then [`RunWriter::finish`].
///
/// ```no_run
/// # fn main() -> corelog_bench::Result<()> {
/// use corelog_bench::hist::LatencyRecorder;
/// use corelog_bench::run::{RunWriter, ThroughputBasis};
/// let mut run = RunWriter::create_timestamped("runs".as_ref(), "produce-1kib", serde_json::json!({"acks": "all"}))?;
/// let mut worker = LatencyRecorder::new();
/// worker.record_us(250);
/// run.add_latency("produce", worker.total(), 16 * 1024)?;
/// run.set_throughput(1, 1024, std::time::Duration::from_secs(1), ThroughputBasis::DiskWrite { block_bytes: 16 * 1024 });
/// let record = run.finish()?;
/// # let _ = record; Ok(()) }
/// ```
#[derive(Debug)]
pub struct RunWriter {
    dir: PathBuf,
    record: RunRecord,
    started: Instant,
}

impl RunWriter {
    /// Creates (or reuses) `dir` as the run directory.
    pub fn create(dir: &Path, scenario: &str, config: serde_json::Value) -> Result<Self> {
        std::fs::create_dir_all(dir).at("creating", dir)?;
        let started_at_unix_s = unix_now_s();
        Ok(RunWriter {
            dir: dir.to_path_buf(),
            record: RunRecord {
                schema_version: RUN_SCHEMA_VERSION,
                scenario: scenario.to_string(),
                started_at_unix_s,
                duration_s: 0.0,
                git_sha: git_sha(),
                machine: detect_machine(None),
                config,
                limits: None,
                host_tuning: host_tuning_report(None),
                results: RunResults::default(),
            },
            started: Instant::now(),
        })
    }

    /// Creates `<parent>/<UTC timestamp>-<scenario slug>` as the run directory.
    pub fn create_timestamped(
        parent: &Path,
        scenario: &str,
        config: serde_json::Value,
    ) -> Result<Self> {
        let name = format!("{}-{}", compact_timestamp(unix_now_s()), slugify(scenario));
        // Two runs started within one second (repeats of a short run) get
        // their own directories.
        let mut dir = parent.join(&name);
        let mut n = 2;
        while dir.exists() {
            dir = parent.join(format!("{name}-{n}"));
            n += 1;
        }
        Self::create(&dir, scenario, config)
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record as built so far (limit-derived fields are filled in by `finish`).
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Records the broker's data directory and its filesystem and device.
    pub fn set_data_dir(&mut self, data_dir: &Path) {
        self.record.machine = detect_machine(Some(data_dir));
        self.record.host_tuning = host_tuning_report(Some(data_dir));
    }

    /// Attaches limits measured elsewhere and writes them as `limits.json`.
    pub fn set_limits(&mut self, limits: Limits) -> Result<()> {
        write_json(&self.dir.join(LIMITS_JSON), &limits)?;
        self.record.limits = Some(limits);
        Ok(())
    }

    /// Measures limits on `data_dir` now and attaches them, so the run's
    /// results can be stated as fractions of the same-run ceilings.
    pub fn measure_limits(&mut self, data_dir: &Path, opts: &LimitsOptions) -> Result<&Limits> {
        let measured =
            limits::measure_limits(data_dir, opts).at("measuring limits on", data_dir)?;
        self.set_data_dir(data_dir);
        self.set_limits(measured)?;
        self.record
            .limits
            .as_ref()
            .ok_or_else(|| Error::Invalid("limits vanished".into()))
    }

    /// Opens `<name>.hlog` in the run directory for per-interval histograms.
    /// Interval timestamps in it count from `base_time` (e.g. the end of
    /// the warmup), which must not be after the first interval.
    pub fn interval_log(&self, name: &str, base_time: SystemTime) -> Result<IntervalLogFile> {
        check_name(name)?;
        let comment = format!("corelog-bench {} {}", self.record.scenario, name);
        IntervalLogFile::create(&self.dir.join(format!("{name}.hlog")), base_time, &comment)
    }

    /// Writes `<name>.hgrm` and records the histogram's summary.
    /// `fdatasync_block_bytes` picks the fdatasync limit that normalises it.
    pub fn add_latency(
        &mut self,
        name: &str,
        histogram: &Histogram<u64>,
        fdatasync_block_bytes: u64,
    ) -> Result<()> {
        check_name(name)?;
        let file = format!("{name}.hgrm");
        hist::write_hgrm(histogram, &self.dir.join(&file))?;
        self.record.results.latency.insert(
            name.to_string(),
            LatencyResult {
                summary: HistogramSummary::from_histogram(histogram),
                hgrm_file: file,
                fdatasync_block_bytes,
                fdatasync_p99_us: None,
                p99_over_fdatasync_p99: None,
            },
        );
        Ok(())
    }

    /// Records throughput over a measured window of length `elapsed`.
    pub fn set_throughput(
        &mut self,
        messages: u64,
        bytes: u64,
        elapsed: Duration,
        basis: ThroughputBasis,
    ) {
        let duration_s = elapsed.as_secs_f64().max(1e-9);
        self.record.duration_s = duration_s;
        self.record.results.throughput = Some(Throughput {
            messages,
            bytes,
            duration_s,
            msgs_per_s: messages as f64 / duration_s,
            mib_per_s: bytes as f64 / duration_s / MIB,
            basis,
            limit_bytes_per_s: None,
            fraction_of_limit: None,
        });
    }

    /// Records the throughput of one part of the run (no limit applies).
    pub fn add_part_throughput(
        &mut self,
        name: &str,
        messages: u64,
        bytes: u64,
        elapsed: Duration,
    ) {
        let duration_s = elapsed.as_secs_f64().max(1e-9);
        self.record.results.part_throughput.insert(
            name.to_string(),
            Throughput {
                messages,
                bytes,
                duration_s,
                msgs_per_s: messages as f64 / duration_s,
                mib_per_s: bytes as f64 / duration_s / MIB,
                basis: ThroughputBasis::None,
                limit_bytes_per_s: None,
                fraction_of_limit: None,
            },
        );
    }

    /// Records another measured fact under `name`.
    pub fn set_note(&mut self, name: &str, value: serde_json::Value) {
        self.record.results.notes.insert(name.to_string(), value);
    }

    /// Records the broker's CPU time over the measured window and, from
    /// `messages` acknowledged in that window, its CPU per message.
    pub fn set_broker_cpu(&mut self, cpu: Duration, messages: u64) {
        let (cpu_s, per_msg_us) = crate::proc_cpu::cpu_per_message(cpu, messages);
        self.record.results.broker_cpu_s = Some(cpu_s);
        self.record.results.broker_cpu_us_per_msg = per_msg_us;
    }

    /// Adds `count` errors of `kind`.
    pub fn add_errors(&mut self, kind: &str, count: u64) {
        *self
            .record
            .results
            .errors
            .entry(kind.to_string())
            .or_insert(0) += count;
    }

    /// Fills in limit-derived fields, writes `run.json` and returns the record.
    pub fn finish(mut self) -> Result<RunRecord> {
        if self.record.duration_s == 0.0 {
            self.record.duration_s = self.started.elapsed().as_secs_f64();
        }
        self.record.apply_limits();
        write_run(&self.dir, &self.record)?;
        Ok(self.record)
    }
}

/// Histogram names become file names, so only a safe alphabet is allowed.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "histogram name {name:?} must be 1-64 characters of [A-Za-z0-9_-]"
        )))
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").at("writing", path)
}

/// Writes `record` as `<dir>/run.json`.
pub fn write_run(dir: &Path, record: &RunRecord) -> Result<()> {
    write_json(&dir.join(RUN_JSON), record)
}

/// Attaches `limits` to the run in `dir`, measured after the run itself
/// (so measuring them cannot disturb it): writes `limits.json`, recomputes
/// the limit-derived fields and rewrites `run.json`. The limits' directory
/// becomes the run's data directory when the run recorded none.
pub fn attach_limits(dir: &Path, limits: &Limits) -> Result<RunRecord> {
    let mut record = read_run(dir)?;
    if record.machine.data_dir.is_none() {
        record.machine = detect_machine(Some(Path::new(&limits.dir)));
    }
    record.limits = Some(limits.clone());
    record.apply_limits();
    write_json(&dir.join(LIMITS_JSON), limits)?;
    write_run(dir, &record)?;
    Ok(record)
}

/// Reads `<dir>/run.json`.
pub fn read_run(dir: &Path) -> Result<RunRecord> {
    let path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&path).at("reading", &path)?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
}

/// `git rev-parse HEAD` for the harness source tree, falling back to the
/// current directory's repository, then "unknown".
pub fn git_sha() -> String {
    let from = |dir: &Path| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()?;
        let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !sha.is_empty()).then_some(sha)
    };
    from(Path::new(env!("CARGO_MANIFEST_DIR")))
        .or_else(|| from(Path::new(".")))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Collects machine facts; `data_dir` adds its filesystem and device.
pub fn detect_machine(data_dir: Option<&Path>) -> MachineInfo {
    // SAFETY: sysconf has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let available_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mount = data_dir.and_then(|d| {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let canonical = std::fs::canonicalize(d).ok()?;
        mount_for(&mountinfo, &canonical)
    });
    MachineInfo {
        online_cpus: usize::try_from(online).unwrap_or(available_cpus),
        available_cpus,
        kernel: kernel_string(),
        cpu_model: cpu_model(&cpuinfo),
        memory_total_bytes: memory_total_bytes(&meminfo),
        data_dir: data_dir.map(|d| d.display().to_string()),
        data_filesystem: mount.as_ref().map(|m| m.0.clone()),
        data_device: mount.map(|m| m.1),
    }
}

fn kernel_string() -> String {
    // SAFETY: uname fills the zeroed struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.version),
        field(&u.machine)
    )
}

fn cpu_model(cpuinfo: &str) -> String {
    // x86 names the model in "model name"; arm64 kernels omit it, so fall
    // back to the fields they do provide.
    for key in ["model name", "Model", "Hardware", "CPU part"] {
        let found = cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        });
        if let Some(v) = found.filter(|v| !v.is_empty()) {
            return v;
        }
    }
    "unknown".into()
}

fn memory_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Finds (fstype, source) of the mount containing `path` in mountinfo text.
fn mount_for(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount_point), Some(fstype), Some(source)) =
            (fields.get(4), fields.get(sep + 1), fields.get(sep + 2))
        else {
            continue;
        };
        let mount_point = unescape_mountinfo(mount_point);
        if path.starts_with(&mount_point) {
            let depth = Path::new(&mount_point).components().count();
            // Later lines shadow earlier mounts at the same point, hence >=.
            if best.as_ref().is_none_or(|(d, _, _)| depth >= *d) {
                best = Some((depth, fstype.to_string(), source.to_string()));
            }
        }
    }
    best.map(|(_, fstype, source)| (fstype, source))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds since the Unix epoch, 0 if the clock is before 1970.
pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Converts Unix seconds to a UTC (year, month, day, hour, minute, second).
pub fn utc_from_unix_s(unix_s: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's days-to-civil algorithm, valid for all dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

/// `YYYY-MM-DD` (UTC) for Unix seconds.
pub fn utc_date(unix_s: u64) -> String {
    let (y, m, d, ..) = utc_from_unix_s(unix_s);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for Unix seconds; sorts chronologically.
pub fn compact_timestamp(unix_s: u64) -> String {
    let (y, mo, d, h, mi, s) = utc_from_unix_s(unix_s);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Lower-case `[a-z0-9-]` slug of `s`, never empty.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out
        .trim_end_matches('-')
        .chars()
        .take(60)
        .collect::<String>();
    if out.is_empty() {
        "run".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(compact_timestamp(1_700_000_000), "20231114T221320Z");
    }

    #[test]
    fn slugs_are_safe() {
        assert_eq!(slugify("Produce 1KiB / acks=all"), "produce-1kib-acks-all");
        assert_eq!(slugify("///"), "run");
    }

    #[test]
    fn mountinfo_picks_deepest_mount() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    30 22 0:5 / /mnt/my\\040data rw - xfs /dev/nvme0n1 rw\n";
        assert_eq!(
            mount_for(info, Path::new("/mnt/my data/x")),
            Some(("xfs".into(), "/dev/nvme0n1".into()))
        );
        assert_eq!(
            mount_for(info, Path::new("/tmp")),
            Some(("ext4".into(), "/dev/sda1".into()))
        );
    }

    #[test]
    fn run_writer_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w =
            RunWriter::create(dir.path(), "unit", serde_json::json!({"k": 1})).expect("create");
        let mut h = hist::new_latency_histogram();
        h.saturating_record(100);
        w.add_latency("produce", &h, 4096).expect("latency");
        assert!(w.add_latency("../evil", &h, 4096).is_err());
        w.set_throughput(
            10,
            10 * 1024 * 1024,
            Duration::from_secs(1),
            ThroughputBasis::LoopbackTcp,
        );
        w.add_errors("timeout", 2);
        w.set_data_dir(dir.path());
        let rec = w.finish().expect("finish");
        let back = read_run(dir.path()).expect("read");
        assert_eq!(rec, back);
        assert!(dir.path().join("produce.hgrm").exists());
        assert_eq!(back.total_errors(), 2);
        assert!(back.machine.available_cpus > 0);
        assert!(back
            .results
            .throughput
            .as_ref()
            .is_some_and(|t| (t.mib_per_s - 10.0).abs() < 1e-9));
    }

    #[test]
    fn attached_limits_fill_in_fractions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RunWriter::create(dir.path(), "unit", serde_json::json!({})).expect("create");
        let mut h = hist::new_latency_histogram();
        h.saturating_record(1000);
        w.add_latency("publish", &h, 16384).expect("latency");
        w.set_throughput(
            100,
            50 * 1024 * 1024,
            Duration::from_secs(1),
            ThroughputBasis::DiskWrite { block_bytes: 16384 },
        );
        let before = w.finish().expect("finish");
        assert!(before.limits.is_none());
        assert!(before
            .results
            .throughput
            .as_ref()
            .unwrap()
            .fraction_of_limit
            .is_none());

        let limits = crate::compare::testutil::limits(500.0, 250.0);
        let after = attach_limits(dir.path(), &limits).expect("attach");
        assert_eq!(after, read_run(dir.path()).expect("read"));
        assert!(dir.path().join(LIMITS_JSON).is_file());
        let t = after.results.throughput.as_ref().unwrap();
        assert!(t.fraction_of_limit.is_some_and(|f| (f - 0.1).abs() < 1e-9));
        let p = &after.results.latency["publish"];
        assert_eq!(p.fdatasync_p99_us, Some(250.0));
        assert!(p
            .p99_over_fdatasync_p99
            .is_some_and(|r| (r - 1000.0 / 250.0).abs() < 0.05));
        assert_eq!(after.machine.data_dir.as_deref(), Some("/data"));
    }

    #[test]
    fn broker_cpu_round_trips_and_is_optional() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RunWriter::create(dir.path(), "unit", serde_json::json!({})).expect("create");
        w.set_throughput(
            200_000,
            200_000 * 1024,
            Duration::from_secs(2),
            ThroughputBasis::LoopbackTcp,
        );
        w.set_broker_cpu(Duration::from_millis(1500), 200_000);
        let rec = w.finish().expect("finish");
        assert_eq!(rec.results.broker_cpu_s, Some(1.5));
        assert!(rec
            .results
            .broker_cpu_us_per_msg
            .is_some_and(|u| (u - 7.5).abs() < 1e-9));
        assert_eq!(read_run(dir.path()).expect("read"), rec);

        // Without a pid the fields are absent from run.json, not zero.
        let other = tempfile::tempdir().expect("tempdir");
        let rec = RunWriter::create(other.path(), "unit", serde_json::json!({}))
            .expect("create")
            .finish()
            .expect("finish");
        assert_eq!(rec.results.broker_cpu_s, None);
        let text = std::fs::read_to_string(other.path().join(RUN_JSON)).expect("read");
        assert!(!text.contains("broker_cpu"), "{text}");

        // A record written before the fields existed still loads.
        let mut old: serde_json::Value = serde_json::from_str(&text).expect("json");
        let results = old["results"].as_object_mut().expect("results");
        results.remove("part_throughput");
        results.remove("notes");
        std::fs::write(other.path().join(RUN_JSON), old.to_string()).expect("write");
        let back = read_run(other.path()).expect("old record loads");
        assert_eq!(back.results.broker_cpu_us_per_msg, None);
    }

    #[test]
    fn malformed_run_json_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(RUN_JSON), "{not json").expect("write");
        assert!(matches!(read_run(dir.path()), Err(Error::Json { .. })));
        assert!(matches!(
            read_run(&dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }
}
