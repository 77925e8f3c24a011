//! `corelog-bench compare A B`: compares two runs (or two sets of repeat
//! runs, by their medians) and decides whether B regressed against A.
//!
//! The default rule is built for shared, noisy machines: results are judged
//! as fractions of the limits measured in the same run, so a slower disk or a
//! busy neighbour during run B moves both the result and its yardstick.
//!
//! Which yardstick judges a row:
//!
//! - throughput: an open-loop run (its config has `rate_msgs_per_s > 0`)
//!   cannot exceed the rate it was asked to send, so it is judged as a
//!   fraction of that offered rate; a closed-loop run as a fraction of the
//!   same-run machine limit (`fraction_of_limit`); runs without either by
//!   raw msgs/s;
//! - p99: divided by the same-run fdatasync p99 (default) or p50
//!   ([`LatencyBasis`]), else raw;
//! - the broker's CPU per message (runs given `--broker-pid`): shown
//!   always, judged only when the rule sets `max_cpu_per_msg_increase_ratio`
//!   (`--max-cpu-ratio`). CPU per message does not depend on the disk's
//!   speed, so it is compared raw. `--cpu-only` judges it alone, for runs
//!   kept for their CPU cost only (CI's 2-shard case).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::hist::{self, HistogramSummary};
use crate::run::{self, RunRecord, RUN_JSON};

/// Which same-run device latency divides a p99 before runs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LatencyBasis {
    /// fdatasync p99 at the histogram's block size: the device's own tail.
    #[default]
    FdatasyncP99,
    /// fdatasync p50 at the histogram's block size: the device's typical
    /// durable write. Use it when limits are measured briefly: a quick
    /// measurement's p99 is a handful of samples and moved 6x between
    /// back-to-back runs on the project's machine, while its p50 moved 1.3x.
    FdatasyncP50,
}

impl LatencyBasis {
    /// Short label used in table rows, e.g. "fdatasync p99".
    pub fn label(self) -> &'static str {
        match self {
            LatencyBasis::FdatasyncP99 => "fdatasync p99",
            LatencyBasis::FdatasyncP50 => "fdatasync p50",
        }
    }
}

/// When a comparison counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionRule {
    /// B regressed when its throughput is below `(1 - this) x` A's.
    pub max_throughput_drop_fraction: f64,
    /// B regressed when its p99 is above `this x` A's.
    pub max_p99_increase_ratio: f64,
    /// Judge throughput as a fraction of the same-run limit and p99 divided
    /// by the same-run fdatasync latency, where both runs have limits.
    pub normalise_by_limits: bool,
    /// Which fdatasync percentile divides p99.
    #[serde(default)]
    pub latency_basis: LatencyBasis,
    /// B regressed when the broker's CPU per message is above `this x`
    /// A's; `None` shows the row without judging it.
    #[serde(default)]
    pub max_cpu_per_msg_increase_ratio: Option<f64>,
    /// Judge the broker's CPU per message only; throughput and latency
    /// rows are shown but not judged.
    #[serde(default)]
    pub cpu_only: bool,
}

impl Default for RegressionRule {
    fn default() -> Self {
        RegressionRule {
            max_throughput_drop_fraction: 1.0 / 3.0,
            max_p99_increase_ratio: 2.0,
            normalise_by_limits: true,
            latency_basis: LatencyBasis::FdatasyncP99,
            max_cpu_per_msg_increase_ratio: None,
            cpu_only: false,
        }
    }
}

/// Whether and how a row is gated by the rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Human-readable threshold, e.g. "<= 2.00".
    pub threshold: String,
    /// Whether this row crossed it.
    pub regressed: bool,
}

/// One line of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// What is compared, e.g. "produce p99 (us)".
    pub metric: String,
    /// Value in A (median over repeats).
    pub a: Option<f64>,
    /// Value in B (median over repeats).
    pub b: Option<f64>,
    /// `b / a` when both exist and `a` is non-zero.
    pub ratio_b_over_a: Option<f64>,
    /// Present when the regression rule judges this row.
    pub gate: Option<Gate>,
}

/// Medians of one set of repeat runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunSetSummary {
    /// The run directory or the directory of repeats.
    pub path: PathBuf,
    /// Number of runs the medians are over.
    pub repeats: usize,
    /// Scenario name of the first run.
    pub scenario: String,
    /// Git sha of the first run.
    pub git_sha: String,
    /// Median latency summaries by histogram name.
    pub latency: BTreeMap<String, HistogramSummary>,
    /// Median of per-run `p99 / fdatasync p99`, by histogram name.
    pub p99_over_fdatasync_p99: BTreeMap<String, f64>,
    /// Median of per-run `p99 / fdatasync p50`, by histogram name.
    #[serde(default)]
    pub p99_over_fdatasync_p50: BTreeMap<String, f64>,
    /// Median messages/s.
    pub msgs_per_s: Option<f64>,
    /// Median MiB/s.
    pub mib_per_s: Option<f64>,
    /// Median throughput as a fraction of the same-run limit.
    pub throughput_fraction_of_limit: Option<f64>,
    /// Median offered rate (msgs/s) of open-loop runs; `None` unless every
    /// run is open loop.
    #[serde(default)]
    pub offered_msgs_per_s: Option<f64>,
    /// Median of per-run msgs/s divided by the offered rate.
    #[serde(default)]
    pub throughput_fraction_of_offered: Option<f64>,
    /// Median total error count.
    pub errors: Option<f64>,
    /// Median of the broker's CPU microseconds per message; `None` unless
    /// every run measured it.
    #[serde(default)]
    pub broker_cpu_us_per_msg: Option<f64>,
}

/// The outcome of [`compare_runs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Baseline.
    pub a: RunSetSummary,
    /// Candidate.
    pub b: RunSetSummary,
    /// Rule applied.
    pub rule: RegressionRule,
    /// Table rows in display order.
    pub rows: Vec<ComparisonRow>,
    /// Whether any gated row regressed.
    pub regressed: bool,
    /// One sentence per regressed row.
    pub reasons: Vec<String>,
}

/// Loads the runs under `path`: `path` itself when it holds `run.json`,
/// else every immediate subdirectory that does (repeats), sorted by name.
pub fn load_runs(path: &Path) -> Result<Vec<(PathBuf, RunRecord)>> {
    if path.join(RUN_JSON).is_file() {
        return Ok(vec![(path.to_path_buf(), run::read_run(path)?)]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path).at("listing", path)? {
        let entry = entry.at("listing", path)?;
        let p = entry.path();
        if p.join(RUN_JSON).is_file() {
            dirs.push(p);
        }
    }
    if dirs.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no {RUN_JSON} and no subdirectories with one",
            path.display()
        )));
    }
    dirs.sort();
    dirs.into_iter()
        .map(|d| run::read_run(&d).map(|r| (d, r)))
        .collect()
}

/// Median of the present values (mean of the middle two for even counts).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The latency summary of one histogram of one run, read from its `.hgrm`
/// file when present (the authoritative record), else from `run.json`.
fn latency_summary(dir: &Path, name: &str, record: &RunRecord) -> Result<Option<HistogramSummary>> {
    let Some(result) = record.results.latency.get(name) else {
        return Ok(None);
    };
    let hgrm_path = dir.join(&result.hgrm_file);
    if hgrm_path.is_file() {
        Ok(Some(HistogramSummary::from_hgrm(&hist::read_hgrm(
            &hgrm_path,
        )?)))
    } else {
        Ok(Some(result.summary))
    }
}

/// Summarises a run directory or a directory of repeats.
pub fn summarise_run_set(path: &Path) -> Result<RunSetSummary> {
    let runs = load_runs(path)?;
    let names: BTreeSet<String> = runs
        .iter()
        .flat_map(|(_, r)| r.results.latency.keys().cloned())
        .collect();
    let mut latency = BTreeMap::new();
    let mut normalised = BTreeMap::new();
    let mut normalised_p50 = BTreeMap::new();
    for name in &names {
        let mut per_run = Vec::new();
        let mut ratios = Vec::new();
        let mut ratios_p50 = Vec::new();
        for (dir, record) in &runs {
            if let Some(s) = latency_summary(dir, name, record)? {
                let result = record.results.latency.get(name);
                let sync_p99_us = result.and_then(|r| r.fdatasync_p99_us);
                if let Some(sync) = sync_p99_us.filter(|v| *v > 0.0) {
                    ratios.push(s.p99_us / sync);
                }
                let sync_p50_us = result.and_then(|r| {
                    record
                        .limits
                        .as_ref()
                        .and_then(|l| l.fdatasync_p50_us(r.fdatasync_block_bytes))
                });
                if let Some(sync) = sync_p50_us.filter(|v| *v > 0.0) {
                    ratios_p50.push(s.p99_us / sync);
                }
                per_run.push(s);
            }
        }
        let m = |f: fn(&HistogramSummary) -> f64| median(per_run.iter().map(f)).unwrap_or(0.0);
        latency.insert(
            name.clone(),
            HistogramSummary {
                count: m(|s| s.count as f64) as u64,
                p50_us: m(|s| s.p50_us),
                p90_us: m(|s| s.p90_us),
                p99_us: m(|s| s.p99_us),
                p999_us: m(|s| s.p999_us),
                p9999_us: m(|s| s.p9999_us),
                max_us: m(|s| s.max_us),
                mean_us: m(|s| s.mean_us),
            },
        );
        // Normalisation is only meaningful when every repeat has limits.
        if ratios.len() == per_run.len() {
            if let Some(r) = median(ratios) {
                normalised.insert(name.clone(), r);
            }
        }
        if ratios_p50.len() == per_run.len() {
            if let Some(r) = median(ratios_p50) {
                normalised_p50.insert(name.clone(), r);
            }
        }
    }
    let throughputs: Vec<_> = runs
        .iter()
        .filter_map(|(_, r)| r.results.throughput.as_ref())
        .collect();
    let fractions: Vec<f64> = throughputs
        .iter()
        .filter_map(|t| t.fraction_of_limit)
        .collect();
    // Open loop: (offered rate, achieved msgs/s) of every run that has both.
    let offered: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|(_, r)| {
            let rate = offered_rate_msgs_per_s(&r.config)?;
            Some((rate, r.results.throughput.as_ref()?.msgs_per_s))
        })
        .collect();
    let all_open_loop = !offered.is_empty() && offered.len() == runs.len();
    let (_, first) = runs
        .first()
        .ok_or_else(|| Error::Invalid(format!("{} holds no runs", path.display())))?;
    // An absolute path keeps a saved comparison usable from another directory.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(RunSetSummary {
        path,
        repeats: runs.len(),
        scenario: first.scenario.clone(),
        git_sha: first.git_sha.clone(),
        latency,
        p99_over_fdatasync_p99: normalised,
        p99_over_fdatasync_p50: normalised_p50,
        msgs_per_s: median(throughputs.iter().map(|t| t.msgs_per_s)),
        mib_per_s: median(throughputs.iter().map(|t| t.mib_per_s)),
        throughput_fraction_of_limit: if fractions.len() == throughputs.len() {
            median(fractions)
        } else {
            None
        },
        offered_msgs_per_s: if all_open_loop {
            median(offered.iter().map(|(rate, _)| *rate))
        } else {
            None
        },
        throughput_fraction_of_offered: if all_open_loop {
            median(offered.iter().map(|(rate, achieved)| achieved / rate))
        } else {
            None
        },
        errors: median(runs.iter().map(|(_, r)| r.total_errors() as f64)),
        broker_cpu_us_per_msg: if runs
            .iter()
            .all(|(_, r)| r.results.broker_cpu_us_per_msg.is_some())
        {
            median(
                runs.iter()
                    .filter_map(|(_, r)| r.results.broker_cpu_us_per_msg),
            )
        } else {
            None
        },
    })
}

/// The offered rate of an open-loop load-generator run: its config's
/// `rate_msgs_per_s` when positive (0 means closed loop).
pub fn offered_rate_msgs_per_s(config: &serde_json::Value) -> Option<f64> {
    config
        .get("rate_msgs_per_s")
        .and_then(serde_json::Value::as_f64)
        .filter(|r| r.is_finite() && *r > 0.0)
}

/// Accessor for one percentile of a summary.
type SummaryField = fn(&HistogramSummary) -> f64;

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => Some(b / a),
        _ => None,
    }
}

fn row(metric: String, a: Option<f64>, b: Option<f64>) -> ComparisonRow {
    ComparisonRow {
        ratio_b_over_a: ratio(a, b),
        metric,
        a,
        b,
        gate: None,
    }
}

/// Compares run (set) `b` against baseline `a` under `rule`.
pub fn compare_runs(a: &Path, b: &Path, rule: &RegressionRule) -> Result<Comparison> {
    let sa = summarise_run_set(a)?;
    let sb = summarise_run_set(b)?;
    Ok(compare_summaries(sa, sb, rule))
}

/// Compares two already summarised run sets.
pub fn compare_summaries(a: RunSetSummary, b: RunSetSummary, rule: &RegressionRule) -> Comparison {
    let mut rows = Vec::new();
    let mut reasons = Vec::new();
    let names: BTreeSet<&String> = a.latency.keys().chain(b.latency.keys()).collect();
    for name in names {
        let la = a.latency.get(name);
        let lb = b.latency.get(name);
        let fields: [(&str, SummaryField); 6] = [
            ("p50", |s| s.p50_us),
            ("p90", |s| s.p90_us),
            ("p99", |s| s.p99_us),
            ("p99.9", |s| s.p999_us),
            ("p99.99", |s| s.p9999_us),
            ("max", |s| s.max_us),
        ];
        let per_basis = |basis: LatencyBasis| {
            let map = |s: &RunSetSummary| match basis {
                LatencyBasis::FdatasyncP99 => s.p99_over_fdatasync_p99.get(name).copied(),
                LatencyBasis::FdatasyncP50 => s.p99_over_fdatasync_p50.get(name).copied(),
            };
            (basis, map(&a), map(&b))
        };
        let bases = [
            per_basis(LatencyBasis::FdatasyncP99),
            per_basis(LatencyBasis::FdatasyncP50),
        ];
        let normalised = rule.normalise_by_limits
            && bases.iter().any(|(basis, na, nb)| {
                *basis == rule.latency_basis && na.is_some() && nb.is_some()
            });
        for (label, f) in fields {
            let mut r = row(format!("{name} {label} (us)"), la.map(f), lb.map(f));
            if label == "p99" && !normalised {
                gate_p99(&mut r, rule, &mut reasons);
            }
            rows.push(r);
        }
        for (basis, na, nb) in bases {
            if na.is_some() || nb.is_some() {
                let mut r = row(format!("{name} p99 / {}", basis.label()), na, nb);
                if normalised && basis == rule.latency_basis {
                    gate_p99(&mut r, rule, &mut reasons);
                }
                rows.push(r);
            }
        }
        rows.push(row(
            format!("{name} count"),
            la.map(|s| s.count as f64),
            lb.map(|s| s.count as f64),
        ));
    }

    // An open-loop run's throughput is bounded by its offered rate, not by
    // the machine: judged against the machine, a faster disk in run B would
    // read as a throughput drop. So open-loop pairs are judged by the
    // fraction of the offered rate they delivered.
    let offered_usable =
        a.throughput_fraction_of_offered.is_some() && b.throughput_fraction_of_offered.is_some();
    let fractions_usable = !offered_usable
        && rule.normalise_by_limits
        && a.throughput_fraction_of_limit.is_some()
        && b.throughput_fraction_of_limit.is_some();
    let raw_gate_metric = if a.msgs_per_s.is_some() && b.msgs_per_s.is_some() {
        "msgs/s"
    } else {
        "MiB/s"
    };
    let mut msgs = row("throughput (msgs/s)".into(), a.msgs_per_s, b.msgs_per_s);
    let mut mib = row("throughput (MiB/s)".into(), a.mib_per_s, b.mib_per_s);
    if !fractions_usable && !offered_usable {
        let r = if raw_gate_metric == "msgs/s" {
            &mut msgs
        } else {
            &mut mib
        };
        gate_throughput(r, rule, &mut reasons);
    }
    rows.push(msgs);
    rows.push(mib);
    if a.throughput_fraction_of_limit.is_some() || b.throughput_fraction_of_limit.is_some() {
        let mut r = row(
            "throughput / same-run limit".into(),
            a.throughput_fraction_of_limit,
            b.throughput_fraction_of_limit,
        );
        if fractions_usable {
            gate_throughput(&mut r, rule, &mut reasons);
        }
        rows.push(r);
    }
    if a.offered_msgs_per_s.is_some() || b.offered_msgs_per_s.is_some() {
        rows.push(row(
            "offered rate (msgs/s)".into(),
            a.offered_msgs_per_s,
            b.offered_msgs_per_s,
        ));
        let mut r = row(
            "throughput / offered rate".into(),
            a.throughput_fraction_of_offered,
            b.throughput_fraction_of_offered,
        );
        if offered_usable {
            gate_throughput(&mut r, rule, &mut reasons);
        }
        rows.push(r);
    }
    if a.broker_cpu_us_per_msg.is_some() || b.broker_cpu_us_per_msg.is_some() {
        let mut r = row(
            "broker CPU (us/msg)".into(),
            a.broker_cpu_us_per_msg,
            b.broker_cpu_us_per_msg,
        );
        if let Some(max) = rule.max_cpu_per_msg_increase_ratio {
            gate_cpu(&mut r, max, &mut reasons);
        }
        rows.push(r);
    }
    rows.push(row("errors".into(), a.errors, b.errors));
    if rule.cpu_only {
        // The other rows were judged above (their gates decide what is
        // shown beside them); with cpu_only they only inform.
        reasons.retain(|reason| reason.starts_with("broker CPU"));
        for r in rows
            .iter_mut()
            .filter(|r| r.metric != "broker CPU (us/msg)")
        {
            r.gate = None;
        }
    }

    Comparison {
        regressed: !reasons.is_empty(),
        a,
        b,
        rule: *rule,
        rows,
        reasons,
    }
}

fn gate_p99(r: &mut ComparisonRow, rule: &RegressionRule, reasons: &mut Vec<String>) {
    let regressed = r
        .ratio_b_over_a
        .is_some_and(|x| x > rule.max_p99_increase_ratio);
    if regressed {
        reasons.push(format!(
            "{}: B/A = {:.2} exceeds {:.2}",
            r.metric,
            r.ratio_b_over_a.unwrap_or(f64::NAN),
            rule.max_p99_increase_ratio
        ));
    }
    r.gate = Some(Gate {
        threshold: format!("<= {:.2}", rule.max_p99_increase_ratio),
        regressed,
    });
}

fn gate_cpu(r: &mut ComparisonRow, max_ratio: f64, reasons: &mut Vec<String>) {
    // A baseline without the measurement cannot judge: the row only informs.
    let regressed = r.ratio_b_over_a.is_some_and(|x| x > max_ratio);
    if regressed {
        reasons.push(format!(
            "{}: B/A = {:.2} exceeds {max_ratio:.2}",
            r.metric,
            r.ratio_b_over_a.unwrap_or(f64::NAN),
        ));
    }
    r.gate = r.ratio_b_over_a.map(|_| Gate {
        threshold: format!("<= {max_ratio:.2}"),
        regressed,
    });
}

fn gate_throughput(r: &mut ComparisonRow, rule: &RegressionRule, reasons: &mut Vec<String>) {
    let floor = 1.0 - rule.max_throughput_drop_fraction;
    let regressed = r.ratio_b_over_a.is_some_and(|x| x < floor);
    if regressed {
        reasons.push(format!(
            "{}: B/A = {:.2} is below {:.2}",
            r.metric,
            r.ratio_b_over_a.unwrap_or(f64::NAN),
            floor
        ));
    }
    r.gate = Some(Gate {
        threshold: format!(">= {floor:.2}"),
        regressed,
    });
}

fn fmt_opt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 1000.0 || x == 0.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.4}"),
    }
}

/// Renders a comparison as a plain-text table with a verdict line.
pub fn format_comparison_table(c: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "A: {} ({} run(s), {})",
        c.a.path.display(),
        c.a.repeats,
        c.a.git_sha
    );
    let _ = writeln!(
        s,
        "B: {} ({} run(s), {})\n",
        c.b.path.display(),
        c.b.repeats,
        c.b.git_sha
    );
    let _ = writeln!(
        s,
        "rule: regressed when throughput B/A < {:.2} (open loop: / offered rate; \
         else / same-run limit{}) or p99 B/A > {:.2} (p99 / same-run {}{})\n",
        1.0 - c.rule.max_throughput_drop_fraction,
        if c.rule.normalise_by_limits {
            ""
        } else {
            ": off, raw"
        },
        c.rule.max_p99_increase_ratio,
        c.rule.latency_basis.label(),
        if c.rule.normalise_by_limits {
            ""
        } else {
            ": off, raw"
        },
    );
    if let Some(max) = c.rule.max_cpu_per_msg_increase_ratio {
        let _ = writeln!(
            s,
            "rule: regressed when broker CPU per message B/A > {max:.2}{}\n",
            if c.rule.cpu_only {
                " (judged alone: the rows above it only inform)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        s,
        "{:<34} {:>12} {:>12} {:>8}  check",
        "metric", "A", "B", "B/A"
    );
    for r in &c.rows {
        let check = match &r.gate {
            None => String::new(),
            Some(g) => format!(
                "{} ({})",
                if g.regressed { "REGRESSED" } else { "ok" },
                g.threshold
            ),
        };
        let _ = writeln!(
            s,
            "{:<34} {:>12} {:>12} {:>8}  {}",
            r.metric,
            fmt_opt(r.a),
            fmt_opt(r.b),
            r.ratio_b_over_a.map_or("-".into(), |x| format!("{x:.2}")),
            check
        );
    }
    if c.regressed {
        let _ = writeln!(s, "\nREGRESSED:");
        for reason in &c.reasons {
            let _ = writeln!(s, "  {reason}");
        }
    } else {
        let _ = writeln!(s, "\nok: no regression under the rule");
    }
    s
}

/// Command-line arguments of `corelog-bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Baseline run directory (or directory of repeat runs).
    pub a: PathBuf,
    /// Candidate run directory (or directory of repeat runs).
    pub b: PathBuf,
    /// Largest tolerated drop in throughput, as a fraction of A's.
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub max_throughput_drop: f64,
    /// Largest tolerated p99 ratio B/A.
    #[arg(long, default_value_t = 2.0)]
    pub max_p99_ratio: f64,
    /// Judge raw numbers, ignoring the same-run limits.
    #[arg(long)]
    pub raw: bool,
    /// Which same-run fdatasync percentile divides p99 (`fdatasync-p50` is
    /// the steadier one for quick limits).
    #[arg(long, value_enum, default_value_t = LatencyBasis::FdatasyncP99)]
    pub latency_basis: LatencyBasis,
    /// Largest tolerated ratio B/A of the broker's CPU per message (runs
    /// given `--broker-pid`); without it the row is shown, not judged.
    #[arg(long)]
    pub max_cpu_ratio: Option<f64>,
    /// Judge only the broker's CPU per message (needs `--max-cpu-ratio`);
    /// the other rows are shown, not judged.
    #[arg(long, requires = "max_cpu_ratio")]
    pub cpu_only: bool,
    /// Also write the comparison as JSON to this file (usable by `report`).
    #[arg(long)]
    pub save: Option<PathBuf>,
}

/// Runs `corelog-bench compare`; exit code 1 means regressed.
pub fn run_command(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    anyhow::ensure!(
        (0.0..1.0).contains(&args.max_throughput_drop),
        "--max-throughput-drop must be in [0, 1)"
    );
    anyhow::ensure!(args.max_p99_ratio > 0.0, "--max-p99-ratio must be positive");
    anyhow::ensure!(
        args.max_cpu_ratio.is_none_or(|r| r > 0.0),
        "--max-cpu-ratio must be positive"
    );
    let rule = RegressionRule {
        max_throughput_drop_fraction: args.max_throughput_drop,
        max_p99_increase_ratio: args.max_p99_ratio,
        normalise_by_limits: !args.raw,
        latency_basis: args.latency_basis,
        max_cpu_per_msg_increase_ratio: args.max_cpu_ratio,
        cpu_only: args.cpu_only,
    };
    let c = compare_runs(&args.a, &args.b, &rule).context("comparing runs")?;
    print!("{}", format_comparison_table(&c));
    if let Some(path) = &args.save {
        let json = serde_json::to_string_pretty(&c).context("serialising comparison")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if c.regressed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Synthetic run directories for tests of this and other modules.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::Path;
    use std::time::Duration;

    use crate::hist::new_latency_histogram;
    use crate::limits::{
        FdatasyncLatency, Limits, LimitsOptions, TcpBandwidth, WriteBandwidth, WriteMode,
    };
    use crate::run::{RunWriter, ThroughputBasis};

    /// Limits with one 16 KiB disk bandwidth and fdatasync p99.
    pub fn limits(disk_mib_per_s: f64, sync_p99_us: f64) -> Limits {
        Limits {
            dir: "/data".into(),
            measured_at_unix_s: 1_700_000_000,
            total_duration_s: 1.0,
            options: LimitsOptions::quick(),
            write_bandwidth: vec![WriteBandwidth {
                block_bytes: 16384,
                mode: WriteMode::Preallocated,
                bytes_written: 1,
                duration_s: 1.0,
                write_bandwidth_bytes_per_s: disk_mib_per_s * 1024.0 * 1024.0,
            }],
            fdatasync_latency: vec![FdatasyncLatency {
                block_bytes: 16384,
                samples: 100,
                fdatasync_p50_us: sync_p99_us / 2.0,
                fdatasync_p99_us: sync_p99_us,
                fdatasync_p999_us: sync_p99_us * 1.5,
                fdatasync_max_us: sync_p99_us * 2.0,
                write_fdatasync_p50_us: sync_p99_us / 2.0,
                write_fdatasync_p99_us: sync_p99_us,
            }],
            loopback_tcp: TcpBandwidth {
                write_bytes: 1 << 20,
                bytes_received: 1,
                duration_s: 1.0,
                bandwidth_bytes_per_s: 4e9,
            },
            remeasured: Vec::new(),
        }
    }

    /// Writes a run whose latencies are uniform in `[base_us, 2 * base_us]`
    /// (so p99 is about `1.98 * base_us`) and whose throughput is `mib_per_s`.
    pub fn write_run(dir: &Path, base_us: u64, mib_per_s: f64, limits: Option<Limits>) {
        write_run_with_config(
            dir,
            base_us,
            mib_per_s,
            limits,
            serde_json::json!({"base_us": base_us}),
        );
    }

    /// [`write_run`] with a given config (e.g. an open-loop `rate_msgs_per_s`).
    /// Messages are 1 KiB, so msgs/s is `mib_per_s * 1024`.
    pub fn write_run_with_config(
        dir: &Path,
        base_us: u64,
        mib_per_s: f64,
        limits: Option<Limits>,
        config: serde_json::Value,
    ) {
        write_run_full(dir, base_us, mib_per_s, limits, config, None);
    }

    /// [`write_run_with_config`] whose broker used `cpu_us_per_msg`
    /// microseconds of CPU per message, when given.
    pub fn write_run_full(
        dir: &Path,
        base_us: u64,
        mib_per_s: f64,
        limits: Option<Limits>,
        config: serde_json::Value,
        cpu_us_per_msg: Option<f64>,
    ) {
        let mut w = RunWriter::create(dir, "synthetic", config).expect("create run");
        let mut h = new_latency_histogram();
        for i in 0..10_000 {
            h.saturating_record(base_us + base_us * i / 10_000);
        }
        w.add_latency("produce", &h, 16384).expect("latency");
        let bytes = (mib_per_s * 1024.0 * 1024.0) as u64;
        w.set_throughput(
            bytes / 1024,
            bytes,
            Duration::from_secs(1),
            ThroughputBasis::DiskWrite { block_bytes: 16384 },
        );
        if let Some(us) = cpu_us_per_msg {
            let messages = bytes / 1024;
            w.set_broker_cpu(
                Duration::from_secs_f64(us * messages as f64 / 1e6),
                messages,
            );
        }
        if let Some(l) = limits {
            w.set_limits(l).expect("limits");
        }
        w.finish().expect("finish");
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{limits, write_run};
    use super::*;

    fn compare_pair(
        a: (u64, f64, Option<crate::limits::Limits>),
        b: (u64, f64, Option<crate::limits::Limits>),
    ) -> Comparison {
        let dir = tempfile::tempdir().expect("tempdir");
        write_run(&dir.path().join("a"), a.0, a.1, a.2);
        write_run(&dir.path().join("b"), b.0, b.1, b.2);
        compare_runs(
            &dir.path().join("a"),
            &dir.path().join("b"),
            &RegressionRule::default(),
        )
        .expect("compare")
    }

    #[test]
    fn identical_runs_do_not_regress() {
        let c = compare_pair(
            (100, 200.0, Some(limits(1000.0, 500.0))),
            (100, 200.0, Some(limits(1000.0, 500.0))),
        );
        assert!(!c.regressed, "{}", format_comparison_table(&c));
        let p99 = c
            .rows
            .iter()
            .find(|r| r.metric == "produce p99 (us)")
            .expect("row");
        assert_eq!(p99.ratio_b_over_a, Some(1.0));
    }

    #[test]
    fn tripled_p99_and_halved_throughput_regress() {
        let c = compare_pair(
            (100, 200.0, Some(limits(1000.0, 500.0))),
            (300, 100.0, Some(limits(1000.0, 500.0))),
        );
        assert!(c.regressed);
        assert_eq!(c.reasons.len(), 2, "{:?}", c.reasons);
        let text = format_comparison_table(&c);
        assert!(text.contains("REGRESSED"), "{text}");
    }

    #[test]
    fn noisy_machine_is_judged_against_its_own_limits() {
        // Run B happened on a busier machine: raw throughput is 40% lower and
        // raw p99 2.4x higher, but the same-run disk bandwidth and fdatasync
        // p99 moved almost as much, so the system itself did not regress.
        let c = compare_pair(
            (100, 200.0, Some(limits(1000.0, 500.0))),
            (240, 120.0, Some(limits(620.0, 1000.0))),
        );
        assert!(!c.regressed, "{}", format_comparison_table(&c));
        let raw = c
            .rows
            .iter()
            .find(|r| r.metric == "throughput (msgs/s)")
            .expect("row");
        assert!(raw.ratio_b_over_a.is_some_and(|x| x < 0.67));
        assert!(raw.gate.is_none());

        // The same pair judged on raw numbers does regress.
        let raw_rule = RegressionRule {
            normalise_by_limits: false,
            ..RegressionRule::default()
        };
        let c = compare_summaries(c.a, c.b, &raw_rule);
        assert!(c.regressed);
    }

    #[test]
    fn runs_without_limits_fall_back_to_raw_numbers() {
        let c = compare_pair((100, 200.0, None), (110, 190.0, None));
        assert!(!c.regressed);
        assert!(c
            .rows
            .iter()
            .any(|r| r.metric == "produce p99 (us)" && r.gate.is_some()));
    }

    #[test]
    fn repeats_are_compared_by_median() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        for (i, base) in [100, 100, 900].iter().enumerate() {
            write_run(
                &a.join(format!("r{i}")),
                *base,
                200.0,
                Some(limits(1000.0, 500.0)),
            );
        }
        for (i, base) in [105, 400, 98].iter().enumerate() {
            write_run(
                &b.join(format!("r{i}")),
                *base,
                200.0,
                Some(limits(1000.0, 500.0)),
            );
        }
        let c = compare_runs(&a, &b, &RegressionRule::default()).expect("compare");
        assert_eq!(c.a.repeats, 3);
        assert!(!c.regressed, "{}", format_comparison_table(&c));
        let p99 = c
            .rows
            .iter()
            .find(|r| r.metric == "produce p99 (us)")
            .expect("row");
        assert!(p99.ratio_b_over_a.is_some_and(|x| (x - 1.05).abs() < 0.02));
    }

    #[test]
    fn missing_runs_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(compare_runs(dir.path(), dir.path(), &RegressionRule::default()).is_err());
        assert!(compare_runs(
            &dir.path().join("nope"),
            dir.path(),
            &RegressionRule::default()
        )
        .is_err());
    }

    /// A pair of open-loop runs offered `rate` msgs/s each, at 1 KiB per message.
    fn compare_open_loop(
        rate: f64,
        a: (u64, f64, crate::limits::Limits),
        b: (u64, f64, crate::limits::Limits),
        rule: &RegressionRule,
    ) -> Comparison {
        use super::testutil::write_run_with_config;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = serde_json::json!({"rate_msgs_per_s": rate});
        write_run_with_config(&dir.path().join("a"), a.0, a.1, Some(a.2), config.clone());
        write_run_with_config(&dir.path().join("b"), b.0, b.1, Some(b.2), config);
        compare_runs(&dir.path().join("a"), &dir.path().join("b"), rule).expect("compare")
    }

    fn gated(c: &Comparison) -> Vec<&str> {
        c.rows
            .iter()
            .filter(|r| r.gate.is_some())
            .map(|r| r.metric.as_str())
            .collect()
    }

    #[test]
    fn open_loop_throughput_is_judged_against_the_offered_rate() {
        // 20 MiB/s of 1 KiB messages is 20,480 msgs/s: both runs delivered
        // the whole offered rate. B's disk measured twice as fast, which
        // halves its fraction of the machine limit; that is no regression.
        let rule = RegressionRule::default();
        let c = compare_open_loop(
            20_480.0,
            (100, 20.0, limits(1000.0, 500.0)),
            (100, 20.0, limits(2000.0, 500.0)),
            &rule,
        );
        assert!(!c.regressed, "{}", format_comparison_table(&c));
        assert_eq!(c.b.throughput_fraction_of_offered, Some(1.0));
        assert_eq!(c.b.offered_msgs_per_s, Some(20_480.0));
        assert!(gated(&c).contains(&"throughput / offered rate"));
        assert!(!gated(&c).contains(&"throughput / same-run limit"));
        let machine = c
            .rows
            .iter()
            .find(|r| r.metric == "throughput / same-run limit")
            .expect("row");
        assert!(machine
            .ratio_b_over_a
            .is_some_and(|x| (x - 0.5).abs() < 1e-9));

        // B delivered only 60% of the offered rate (it fell behind its
        // schedule): a gross regression whatever the machine did.
        let c = compare_open_loop(
            20_480.0,
            (100, 20.0, limits(1000.0, 500.0)),
            (100, 12.0, limits(1000.0, 500.0)),
            &rule,
        );
        assert!(c.regressed);
        assert_eq!(c.reasons.len(), 1, "{:?}", c.reasons);
        assert!(
            c.reasons[0].starts_with("throughput / offered rate"),
            "{:?}",
            c.reasons
        );

        // 70% of A's fraction is inside the one-third allowance.
        let c = compare_open_loop(
            20_480.0,
            (100, 20.0, limits(1000.0, 500.0)),
            (100, 14.0, limits(1000.0, 500.0)),
            &rule,
        );
        assert!(!c.regressed, "{}", format_comparison_table(&c));
    }

    #[test]
    fn closed_loop_runs_are_not_judged_by_an_offered_rate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let closed = serde_json::json!({"rate_msgs_per_s": 0});
        super::testutil::write_run_with_config(
            &dir.path().join("a"),
            100,
            200.0,
            Some(limits(1000.0, 500.0)),
            closed.clone(),
        );
        super::testutil::write_run_with_config(
            &dir.path().join("b"),
            100,
            120.0,
            Some(limits(1000.0, 500.0)),
            closed,
        );
        let c = compare_runs(
            &dir.path().join("a"),
            &dir.path().join("b"),
            &RegressionRule::default(),
        )
        .expect("compare");
        assert_eq!(c.b.offered_msgs_per_s, None);
        assert!(c.regressed, "{}", format_comparison_table(&c));
        assert_eq!(
            gated(&c),
            ["produce p99 / fdatasync p99", "throughput / same-run limit"]
        );
        assert_eq!(
            offered_rate_msgs_per_s(&serde_json::json!({"rate_msgs_per_s": 0})),
            None
        );
        assert_eq!(offered_rate_msgs_per_s(&serde_json::json!({})), None);
        assert_eq!(
            offered_rate_msgs_per_s(&serde_json::json!({"rate_msgs_per_s": 5})),
            Some(5.0)
        );
    }

    /// Limits whose fdatasync p50 and p99 are set independently.
    fn limits_p50_p99(p50_us: f64, p99_us: f64) -> crate::limits::Limits {
        let mut l = limits(1000.0, p99_us);
        l.fdatasync_latency[0].fdatasync_p50_us = p50_us;
        l
    }

    #[test]
    fn p99_can_be_judged_against_the_fdatasync_p50() {
        // Same broker p99 in both runs; the quick limits of run A caught a
        // few slow syncs (p99 5x B's) while the typical sync is unchanged.
        let (a, b) = (limits_p50_p99(60.0, 600.0), limits_p50_p99(60.0, 120.0));
        let p50_rule = RegressionRule {
            latency_basis: LatencyBasis::FdatasyncP50,
            ..RegressionRule::default()
        };
        let c = compare_open_loop(
            20_480.0,
            (1000, 20.0, a.clone()),
            (1000, 20.0, b.clone()),
            &p50_rule,
        );
        assert!(!c.regressed, "{}", format_comparison_table(&c));
        assert!(gated(&c).contains(&"produce p99 / fdatasync p50"));
        assert!(!gated(&c).contains(&"produce p99 / fdatasync p99"));
        let row = c
            .rows
            .iter()
            .find(|r| r.metric == "produce p99 / fdatasync p50")
            .expect("row");
        assert!(
            row.a.is_some_and(|x| (x - 1980.0 / 60.0).abs() < 1.0),
            "{row:?}"
        );

        // The default basis reads the noisy normaliser as a 5x regression.
        let c = compare_open_loop(
            20_480.0,
            (1000, 20.0, a.clone()),
            (1000, 20.0, b.clone()),
            &RegressionRule::default(),
        );
        assert!(c.regressed);

        // A real 3x p99 regression is caught on the p50 basis.
        let c = compare_open_loop(20_480.0, (1000, 20.0, a), (3000, 20.0, b), &p50_rule);
        assert!(c.regressed);
        assert!(
            c.reasons[0].starts_with("produce p99 / fdatasync p50"),
            "{:?}",
            c.reasons
        );
    }

    #[test]
    fn rules_and_summaries_saved_before_the_new_fields_still_load() {
        let rule: RegressionRule = serde_json::from_str(
            r#"{"max_throughput_drop_fraction":0.25,"max_p99_increase_ratio":3.0,"normalise_by_limits":true}"#,
        )
        .expect("old rule");
        assert_eq!(rule.latency_basis, LatencyBasis::FdatasyncP99);
        let mut old = serde_json::to_value(RunSetSummary::default()).expect("to json");
        let obj = old.as_object_mut().expect("object");
        for k in [
            "p99_over_fdatasync_p50",
            "offered_msgs_per_s",
            "throughput_fraction_of_offered",
            "broker_cpu_us_per_msg",
        ] {
            obj.remove(k);
        }
        let back: RunSetSummary = serde_json::from_value(old).expect("old summary");
        assert!(back.p99_over_fdatasync_p50.is_empty());
        assert_eq!(back.broker_cpu_us_per_msg, None);
        assert_eq!(rule.max_cpu_per_msg_increase_ratio, None);
        assert!(!rule.cpu_only);
    }

    #[test]
    fn broker_cpu_per_message_is_shown_and_judged_when_asked() {
        use super::testutil::write_run_full;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = || serde_json::json!({});
        // A: 10 us/msg over three repeats (median 10); B: 16 us/msg with
        // half the throughput; C: no CPU measured (an old record).
        for (i, us) in [9.0, 10.0, 30.0].into_iter().enumerate() {
            let d = dir.path().join("a").join(format!("{i}"));
            write_run_full(&d, 100, 200.0, None, cfg(), Some(us));
        }
        write_run_full(&dir.path().join("b"), 100, 100.0, None, cfg(), Some(16.0));
        write_run_full(&dir.path().join("c"), 100, 200.0, None, cfg(), None);
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        let cpu_row = |c: &Comparison| {
            c.rows
                .iter()
                .find(|r| r.metric == "broker CPU (us/msg)")
                .cloned()
        };

        // Default rule: the row informs; the halved throughput regresses.
        let plain = compare_runs(&a, &b, &RegressionRule::default()).expect("compare");
        let row = cpu_row(&plain).expect("cpu row");
        assert!(row.a.is_some_and(|x| (x - 10.0).abs() < 1e-6), "{row:?}");
        assert!(row.ratio_b_over_a.is_some_and(|x| (x - 1.6).abs() < 1e-6));
        assert!(row.gate.is_none());
        assert!(plain.regressed);

        // CPU only at 1.5x: 1.6x regresses, and only for the CPU.
        let cpu_rule = RegressionRule {
            max_cpu_per_msg_increase_ratio: Some(1.5),
            cpu_only: true,
            ..RegressionRule::default()
        };
        let judged = compare_runs(&a, &b, &cpu_rule).expect("compare");
        assert!(judged.regressed);
        assert_eq!(judged.reasons.len(), 1, "{:?}", judged.reasons);
        assert!(judged.reasons[0].starts_with("broker CPU"));
        assert_eq!(gated(&judged), vec!["broker CPU (us/msg)"]);
        let table = format_comparison_table(&judged);
        assert!(table.contains("broker CPU (us/msg)"), "{table}");
        // At 2x it passes.
        let lenient = RegressionRule {
            max_cpu_per_msg_increase_ratio: Some(2.0),
            ..cpu_rule
        };
        assert!(!compare_runs(&a, &b, &lenient).expect("compare").regressed);

        // A baseline without the measurement: shown, not judged.
        let old = compare_runs(&c, &b, &cpu_rule).expect("compare");
        let row = cpu_row(&old).expect("cpu row");
        assert_eq!((row.a, row.gate.clone()), (None, None), "{row:?}");
        assert!(!old.regressed);
        // Neither side measured: no row at all.
        let none = compare_runs(&c, &c, &RegressionRule::default()).expect("compare");
        assert!(cpu_row(&none).is_none());
    }

    #[test]
    fn median_handles_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0]), Some(2.5));
        assert_eq!(median(std::iter::empty()), None);
    }
}
