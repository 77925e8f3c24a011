//! `corelog-bench report`: renders a run, or a comparison of two runs, as a
//! markdown report with an SVG latency plot under
//! `perf-reports/<date>-<slug>/`, and regenerates `perf-reports/index.md`.
//!
//! A report directory is self-contained (it copies the run records and
//! histograms it was made from), so it stays meaningful after the run
//! directories are gone. Each one also holds `report.json`, from which the
//! index is rebuilt by scanning, which makes regeneration idempotent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::compare::{self, Comparison, RegressionRule};
use crate::error::{Error, IoContext, Result};
use crate::hist;
use crate::limits::format_limits_table;
use crate::run::{self, RunRecord, LIMITS_JSON, RUN_JSON};
use crate::svg::{self, PlotSeries};

/// Name of the markdown file in each report directory.
pub const REPORT_MD: &str = "report.md";
/// Name of the metadata file the index is built from.
pub const REPORT_JSON: &str = "report.json";
/// Name of the plot in each report directory.
pub const PLOT_SVG: &str = "latency.svg";
/// File name of the per-interval plot inside a run report directory.
const INTERVALS_SVG: &str = "intervals.svg";
/// Name of the index in the reports directory.
pub const INDEX_MD: &str = "index.md";

/// What to report on.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportSource {
    /// One run directory.
    Run(PathBuf),
    /// Run (set) `b` compared against baseline `a`.
    Comparison {
        /// Baseline run directory or directory of repeats.
        a: PathBuf,
        /// Candidate run directory or directory of repeats.
        b: PathBuf,
        /// Rule deciding the verdict.
        rule: RegressionRule,
    },
}

/// Where and under which name a report is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// The reports directory, e.g. `perf-reports`.
    pub out_dir: PathBuf,
    /// Directory-name suffix; defaults to the scenario name.
    pub slug: Option<String>,
    /// Heading; defaults to one derived from the scenario.
    pub title: Option<String>,
}

/// Metadata of one report, stored as `report.json` and listed in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMeta {
    /// Title shown in the index.
    pub title: String,
    /// `YYYY-MM-DD` (UTC) of the run reported on.
    pub date: String,
    /// "run" or "comparison".
    pub kind: String,
    /// One line of headline numbers.
    pub headline: String,
}

/// Writes a report and regenerates the index; returns the report directory.
pub fn write_report(source: &ReportSource, opts: &ReportOptions) -> Result<PathBuf> {
    let dir = match source {
        ReportSource::Run(run_dir) => write_run_report(run_dir, opts)?,
        ReportSource::Comparison { a, b, rule } => write_comparison_report(a, b, rule, opts)?,
    };
    regenerate_index(&opts.out_dir)?;
    Ok(dir)
}

fn report_dir(opts: &ReportOptions, date: &str, default_slug: &str) -> Result<PathBuf> {
    let slug = run::slugify(opts.slug.as_deref().unwrap_or(default_slug));
    let dir = opts.out_dir.join(format!("{date}-{slug}"));
    std::fs::create_dir_all(&dir).at("creating", &dir)?;
    Ok(dir)
}

fn copy_into(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst).map(|_| ()).map_err(|e| Error::Io {
        action: "copying into report",
        path: src.to_path_buf(),
        source: e,
    })
}

/// Copies run.json, limits.json and every referenced .hgrm of a run.
fn copy_run_files(run_dir: &Path, record: &RunRecord, dst: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dst).at("creating", dst)?;
    let mut copied = Vec::new();
    let mut names: Vec<&str> = vec![RUN_JSON, LIMITS_JSON];
    names.extend(
        record
            .results
            .latency
            .values()
            .map(|r| r.hgrm_file.as_str()),
    );
    for name in names {
        // Only plain file names are copied, so a hand-edited run.json
        // cannot make the report read or write outside its directories.
        if Path::new(name).file_name().and_then(|n| n.to_str()) != Some(name) {
            continue;
        }
        let src = run_dir.join(name);
        if src.is_file() {
            copy_into(&src, &dst.join(name))?;
            copied.push(name.to_string());
        }
    }
    Ok(copied)
}

/// Time series (p50, p99, max per interval) for every histogram of a run
/// that has an interval log; copies the logs into the report.
fn interval_series(
    run_dir: &Path,
    record: &RunRecord,
    dst: &Path,
    copied: &mut Vec<String>,
) -> Result<Vec<PlotSeries>> {
    let mut series = Vec::new();
    for name in record.results.latency.keys() {
        let file = format!("{name}.hlog");
        let src = run_dir.join(&file);
        if !src.is_file() {
            continue;
        }
        copy_into(&src, &dst.join(&file))?;
        copied.push(file);
        let points = hist::read_interval_log(&src)?;
        for (what, pick) in [
            (
                "p50",
                (|p: &hist::IntervalPoint| p.p50_us) as fn(&hist::IntervalPoint) -> f64,
            ),
            ("p99", |p| p.p99_us),
            ("max", |p| p.max_us),
        ] {
            series.push(PlotSeries {
                label: format!("{name} {what}"),
                points: points
                    .iter()
                    .filter(|p| p.count > 0)
                    .map(|p| (p.start_s + p.length_s, pick(p)))
                    .collect(),
            });
        }
    }
    Ok(series)
}

/// Plot series for every histogram of a run, read from its .hgrm files.
fn run_series(run_dir: &Path, record: &RunRecord, prefix: &str) -> Result<Vec<PlotSeries>> {
    let mut series = Vec::new();
    for (name, result) in &record.results.latency {
        let path = run_dir.join(&result.hgrm_file);
        if !path.is_file() {
            continue;
        }
        let parsed = hist::read_hgrm(&path)?;
        series.push(PlotSeries {
            label: format!("{prefix}{name}"),
            points: parsed.rows.iter().map(|r| (r.quantile, r.value)).collect(),
        });
    }
    Ok(series)
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), fmt_num)
}

fn run_headline(record: &RunRecord) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &record.results.throughput {
        let mut p = format!("{} msgs/s, {:.1} MiB/s", fmt_num(t.msgs_per_s), t.mib_per_s);
        if let Some(f) = t.fraction_of_limit {
            let _ = write!(p, " ({:.0}% of limit)", f * 100.0);
        }
        parts.push(p);
    }
    for (name, r) in record.results.latency.iter().take(3) {
        parts.push(format!("{name} p99 {} us", fmt_num(r.summary.p99_us)));
    }
    let errors = record.total_errors();
    if errors > 0 {
        parts.push(format!("{errors} errors"));
    }
    if parts.is_empty() {
        "no results".into()
    } else {
        parts.join("; ")
    }
}

fn machine_lines(record: &RunRecord, md: &mut String) {
    let m = &record.machine;
    let _ = writeln!(md, "- Scenario: `{}`", md_cell(&record.scenario));
    let _ = writeln!(
        md,
        "- Run started: {} UTC",
        fmt_time(record.started_at_unix_s)
    );
    let _ = writeln!(md, "- Duration: {:.1} s", record.duration_s);
    let _ = writeln!(md, "- Git: `{}`", md_cell(&record.git_sha));
    let _ = writeln!(
        md,
        "- Machine: {} CPUs ({} available), {}, {}",
        m.online_cpus,
        m.available_cpus,
        md_cell(&m.cpu_model),
        m.memory_total_bytes
            .map_or("memory unknown".into(), |b| format!(
                "{:.1} GiB RAM",
                b as f64 / (1u64 << 30) as f64
            ))
    );
    let _ = writeln!(md, "- Kernel: {}", md_cell(&m.kernel));
    if let Some(d) = &m.data_dir {
        let _ = writeln!(
            md,
            "- Data dir: `{}` ({} on {})",
            md_cell(d),
            m.data_filesystem.as_deref().unwrap_or("unknown filesystem"),
            m.data_device.as_deref().unwrap_or("unknown device")
        );
    }
}

fn fmt_time(unix_s: u64) -> String {
    let (y, mo, d, h, mi, s) = run::utc_from_unix_s(unix_s);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

fn results_sections(record: &RunRecord, md: &mut String) {
    if let Some(t) = &record.results.throughput {
        // The broker's CPU columns appear only for runs that measured it,
        // so reports of older runs read as they did.
        let cpu = record
            .results
            .broker_cpu_s
            .map(|s| (s, record.results.broker_cpu_us_per_msg));
        let _ = writeln!(md, "\n### Throughput\n");
        let _ = writeln!(
            md,
            "| msgs/s | MiB/s | limit (MiB/s) | fraction of limit | limit basis |{}",
            if cpu.is_some() {
                " broker CPU (s) | broker CPU (us/msg) |"
            } else {
                ""
            }
        );
        let _ = writeln!(
            md,
            "|---:|---:|---:|---:|---|{}",
            if cpu.is_some() { "---:|---:|" } else { "" }
        );
        let basis = serde_json::to_string(&t.basis).unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | {} | `{}` |{}",
            fmt_num(t.msgs_per_s),
            t.mib_per_s,
            fmt_opt(t.limit_bytes_per_s.map(|b| b / (1024.0 * 1024.0))),
            t.fraction_of_limit
                .map_or("-".into(), |f| format!("{:.1}%", f * 100.0)),
            md_cell(&basis),
            cpu.map_or(String::new(), |(s, us)| format!(
                " {s:.2} | {} |",
                us.map_or("-".into(), |u| format!("{u:.2}"))
            ))
        );
    }
    if !record.results.part_throughput.is_empty() {
        let _ = writeln!(md, "\n### Throughput of parts of the run\n");
        let _ = writeln!(md, "| part | msgs/s | MiB/s | messages |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for (name, t) in &record.results.part_throughput {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {} |",
                md_cell(name),
                fmt_num(t.msgs_per_s),
                t.mib_per_s,
                t.messages
            );
        }
    }
    if !record.results.notes.is_empty() {
        let _ = writeln!(md, "\n### Other measurements\n");
        let _ = writeln!(md, "| name | value |");
        let _ = writeln!(md, "|---|---|");
        for (name, v) in &record.results.notes {
            let _ = writeln!(md, "| {} | {} |", md_cell(name), md_cell(&v.to_string()));
        }
    }
    if !record.results.latency.is_empty() {
        let _ = writeln!(md, "\n### Latency (microseconds)\n");
        let _ = writeln!(
            md,
            "| histogram | count | p50 | p90 | p99 | p99.9 | p99.99 | max | fdatasync p99 | p99 / fdatasync p99 |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, r) in &record.results.latency {
            let s = &r.summary;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(name),
                s.count,
                fmt_num(s.p50_us),
                fmt_num(s.p90_us),
                fmt_num(s.p99_us),
                fmt_num(s.p999_us),
                fmt_num(s.p9999_us),
                fmt_num(s.max_us),
                fmt_opt(r.fdatasync_p99_us),
                fmt_opt(r.p99_over_fdatasync_p99)
            );
        }
    }
    if !record.results.errors.is_empty() {
        let _ = writeln!(md, "\n### Errors\n");
        let _ = writeln!(md, "| kind | count |");
        let _ = writeln!(md, "|---|---:|");
        for (kind, count) in &record.results.errors {
            let _ = writeln!(md, "| {} | {count} |", md_cell(kind));
        }
    }
}

fn limits_section(record: &RunRecord, md: &mut String) {
    if let Some(l) = &record.limits {
        let _ = writeln!(md, "\n## Machine limits (same run)\n");
        let _ = writeln!(md, "```text\n{}```", format_limits_table(l));
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).at("writing", path)
}

fn write_meta(dir: &Path, meta: &ReportMeta) -> Result<()> {
    let path = dir.join(REPORT_JSON);
    let text = serde_json::to_string_pretty(meta).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write_file(&path, &(text + "\n"))
}

fn write_run_report(run_dir: &Path, opts: &ReportOptions) -> Result<PathBuf> {
    let record = run::read_run(run_dir)?;
    let date = run::utc_date(record.started_at_unix_s);
    let dir = report_dir(opts, &date, &record.scenario)?;
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| format!("Run: {}", record.scenario));
    let mut copied = copy_run_files(run_dir, &record, &dir)?;
    let series = run_series(run_dir, &record, "")?;
    write_file(&dir.join(PLOT_SVG), &svg::percentile_plot(&title, &series))?;
    let intervals = interval_series(run_dir, &record, &dir, &mut copied)?;
    if !intervals.is_empty() {
        write_file(
            &dir.join(INTERVALS_SVG),
            &svg::time_series_plot(&format!("{title}: latency per interval"), &intervals),
        )?;
    }

    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", md_cell(&title));
    machine_lines(&record, &mut md);
    let _ = writeln!(md, "\n## Results");
    results_sections(&record, &mut md);
    let _ = writeln!(md, "\n![latency by percentile]({PLOT_SVG})");
    if !intervals.is_empty() {
        let _ = writeln!(
            md,
            "\nPer interval (from the `.hlog` interval logs): p50, p99 and max of each second.\n\n![latency per interval]({INTERVALS_SVG})"
        );
    }
    limits_section(&record, &mut md);
    let config = serde_json::to_string_pretty(&record.config).unwrap_or_default();
    let _ = writeln!(md, "\n## Configuration\n\n```json\n{config}\n```");
    let _ = writeln!(md, "\n## Files\n");
    for name in &copied {
        let _ = writeln!(md, "- [{name}]({name})");
    }
    write_file(&dir.join(REPORT_MD), &md)?;
    write_meta(
        &dir,
        &ReportMeta {
            title,
            date,
            kind: "run".into(),
            headline: run_headline(&record),
        },
    )?;
    Ok(dir)
}

fn comparison_headline(c: &Comparison) -> String {
    let mut parts = vec![if c.regressed {
        "REGRESSED".to_string()
    } else {
        "ok".to_string()
    }];
    for r in c.rows.iter().filter(|r| r.gate.is_some()) {
        if let Some(x) = r.ratio_b_over_a {
            parts.push(format!("{} B/A {x:.2}", r.metric));
        }
    }
    parts.join("; ")
}

fn write_comparison_report(
    a: &Path,
    b: &Path,
    rule: &RegressionRule,
    opts: &ReportOptions,
) -> Result<PathBuf> {
    let comparison = compare::compare_runs(a, b, rule)?;
    // Repeat sets are summarised by medians; the plot and copied files use
    // each set's first run as a representative.
    let runs_a = compare::load_runs(a)?;
    let runs_b = compare::load_runs(b)?;
    let (Some((dir_a, rec_a)), Some((dir_b, rec_b))) = (runs_a.first(), runs_b.first()) else {
        return Err(Error::Invalid(
            "comparison needs at least one run on each side".into(),
        ));
    };
    let date = run::utc_date(rec_b.started_at_unix_s);
    let dir = report_dir(opts, &date, &format!("compare-{}", rec_b.scenario))?;
    let title = opts.title.clone().unwrap_or_else(|| {
        if rec_a.scenario == rec_b.scenario {
            format!("Comparison: {}", rec_b.scenario)
        } else {
            format!("Comparison: {} vs {}", rec_a.scenario, rec_b.scenario)
        }
    });
    let copied_a = copy_run_files(dir_a, rec_a, &dir.join("a"))?;
    let copied_b = copy_run_files(dir_b, rec_b, &dir.join("b"))?;
    let mut series = run_series(dir_a, rec_a, "A ")?;
    series.extend(run_series(dir_b, rec_b, "B ")?);
    write_file(&dir.join(PLOT_SVG), &svg::percentile_plot(&title, &series))?;
    let comparison_json =
        serde_json::to_string_pretty(&comparison).map_err(|source| Error::Json {
            path: dir.join("comparison.json"),
            source,
        })?;
    write_file(&dir.join("comparison.json"), &(comparison_json + "\n"))?;

    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", md_cell(&title));
    let verdict = if comparison.regressed {
        "**REGRESSED**"
    } else {
        "**ok**"
    };
    let _ = writeln!(md, "Verdict: {verdict}\n");
    for reason in &comparison.reasons {
        let _ = writeln!(md, "- {}", md_cell(reason));
    }
    let _ = writeln!(
        md,
        "\nRule: throughput (as a fraction of the offered rate for open-loop runs, else of the same-run limit{}) may drop by at most {:.0}%; \
         p99 (divided by the same-run {}{}) may grow at most {:.2}x. Values are medians over repeats.\n",
        if rule.normalise_by_limits { "" } else { ", disabled" },
        rule.max_throughput_drop_fraction * 100.0,
        rule.latency_basis.label(),
        if rule.normalise_by_limits { "" } else { ", disabled" },
        rule.max_p99_increase_ratio
    );
    if let Some(max) = rule.max_cpu_per_msg_increase_ratio {
        let _ = writeln!(
            md,
            "The broker's CPU per message may grow at most {max:.2}x{}.\n",
            if rule.cpu_only {
                " (judged alone: the other rows only inform)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(md, "| side | runs | git | path |");
    let _ = writeln!(md, "|---|---:|---|---|");
    for (side, s) in [("A", &comparison.a), ("B", &comparison.b)] {
        let _ = writeln!(
            md,
            "| {side} | {} | `{}` | `{}` |",
            s.repeats,
            md_cell(&s.git_sha),
            md_cell(&s.path.display().to_string())
        );
    }
    let _ = writeln!(md, "\n| metric | A | B | B/A | check |");
    let _ = writeln!(md, "|---|---:|---:|---:|---|");
    for r in &comparison.rows {
        let check = r.gate.as_ref().map_or(String::new(), |g| {
            format!(
                "{} ({})",
                if g.regressed { "REGRESSED" } else { "ok" },
                g.threshold
            )
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            md_cell(&r.metric),
            fmt_opt(r.a),
            fmt_opt(r.b),
            r.ratio_b_over_a.map_or("-".into(), |x| format!("{x:.2}")),
            md_cell(&check)
        );
    }
    let _ = writeln!(md, "\n![latency by percentile]({PLOT_SVG})\n");
    for (side, rec) in [("A", rec_a), ("B", rec_b)] {
        let _ = writeln!(md, "\n## Run {side}\n");
        machine_lines(rec, &mut md);
        results_sections(rec, &mut md);
    }
    let _ = writeln!(md, "\n## Files\n\n- [comparison.json](comparison.json)");
    for (side, copied) in [("a", &copied_a), ("b", &copied_b)] {
        for name in copied {
            let _ = writeln!(md, "- [{side}/{name}]({side}/{name})");
        }
    }
    write_file(&dir.join(REPORT_MD), &md)?;
    write_meta(
        &dir,
        &ReportMeta {
            title,
            date,
            kind: "comparison".into(),
            headline: comparison_headline(&comparison),
        },
    )?;
    Ok(dir)
}

/// Rebuilds `<out_dir>/index.md` from every report directory in `out_dir`,
/// newest first. The output depends only on the directories' contents.
pub fn regenerate_index(out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).at("creating", out_dir)?;
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(out_dir).at("listing", out_dir)? {
        let entry = entry.at("listing", out_dir)?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !path.is_dir() || name.starts_with('.') {
            continue;
        }
        let meta = std::fs::read_to_string(path.join(REPORT_JSON))
            .ok()
            .and_then(|t| serde_json::from_str::<ReportMeta>(&t).ok());
        // Directories made by hand are still listed, dated by their prefix.
        let meta = meta.unwrap_or_else(|| ReportMeta {
            title: name.clone(),
            date: name
                .get(..10)
                .filter(|d| d.as_bytes().get(4) == Some(&b'-'))
                .unwrap_or("")
                .to_string(),
            kind: "other".into(),
            headline: String::new(),
        });
        let link = if path.join(REPORT_MD).is_file() {
            format!("{name}/{REPORT_MD}")
        } else {
            format!("{name}/")
        };
        entries.push((name, link, meta));
    }
    entries.sort_by(|x, y| y.0.cmp(&x.0));
    let mut md = String::from(
        "# Performance reports\n\nGenerated by `corelog-bench report`; regenerated on every report, so do not edit by hand.\n\n",
    );
    md.push_str("| Date | Report | Kind | Headline |\n|---|---|---|---|\n");
    for (_, link, meta) in &entries {
        let _ = writeln!(
            md,
            "| {} | [{}]({}) | {} | {} |",
            md_cell(&meta.date),
            md_cell(&meta.title).replace(['[', ']'], ""),
            link,
            md_cell(&meta.kind),
            md_cell(&meta.headline)
        );
    }
    // Reports written by hand (a session's measurements with their
    // reading) sit beside the generated directories as `<date>-<name>.md`;
    // they are listed too, by their first heading, so that regenerating
    // the index never drops them.
    let mut written = Vec::new();
    for entry in std::fs::read_dir(out_dir).at("listing", out_dir)? {
        let path = entry.at("listing", out_dir)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.is_file() || !name.ends_with(".md") || name == INDEX_MD || name.starts_with('.') {
            continue;
        }
        let heading = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("# ").map(|h| h.trim().to_string()))
            })
            .unwrap_or_else(|| name.to_string());
        written.push((name.to_string(), heading));
    }
    if !written.is_empty() {
        written.sort_by(|x, y| y.0.cmp(&x.0));
        md.push_str("\n## Written reports\n\n");
        for (name, heading) in written {
            let _ = writeln!(
                md,
                "- [{}]({name})",
                md_cell(&heading).replace(['[', ']'], "")
            );
        }
    }
    write_file(&out_dir.join(INDEX_MD), &md)
}

/// Command-line arguments of `corelog-bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory, or a comparison JSON file written by `compare --save`.
    pub input: PathBuf,
    /// Baseline run directory: report a comparison of INPUT against it.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Reports directory.
    #[arg(long, default_value = "perf-reports")]
    pub out: PathBuf,
    /// Report directory name suffix (default: the scenario name).
    #[arg(long)]
    pub slug: Option<String>,
    /// Report title.
    #[arg(long)]
    pub title: Option<String>,
}

/// Runs `corelog-bench report`.
pub fn run_command(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let source = if let Some(baseline) = &args.against {
        ReportSource::Comparison {
            a: baseline.clone(),
            b: args.input.clone(),
            rule: RegressionRule::default(),
        }
    } else if args.input.is_file() {
        let text = std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))?;
        let saved: Comparison = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a comparison saved by `compare --save`",
                args.input.display()
            )
        })?;
        ReportSource::Comparison {
            a: saved.a.path,
            b: saved.b.path,
            rule: saved.rule,
        }
    } else {
        ReportSource::Run(args.input.clone())
    };
    let opts = ReportOptions {
        out_dir: args.out.clone(),
        slug: args.slug.clone(),
        title: args.title.clone(),
    };
    let dir = write_report(&source, &opts).context("writing report")?;
    println!("wrote {}", dir.join(REPORT_MD).display());
    println!("updated {}", args.out.join(INDEX_MD).display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::testutil::{limits, write_run};

    #[test]
    fn run_report_shows_the_broker_cpu_when_measured() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("perf-reports");
        let measured = tmp.path().join("measured");
        crate::compare::testutil::write_run_full(
            &measured,
            100,
            200.0,
            None,
            serde_json::json!({}),
            Some(12.5),
        );
        let old = tmp.path().join("old");
        write_run(&old, 100, 200.0, None);
        let md = |run: &Path, slug: &str| {
            let opts = ReportOptions {
                out_dir: out.clone(),
                slug: Some(slug.into()),
                title: None,
            };
            let dir = write_report(&ReportSource::Run(run.to_path_buf()), &opts).expect("report");
            std::fs::read_to_string(dir.join(REPORT_MD)).expect("md")
        };
        let with = md(&measured, "with-cpu");
        assert!(with.contains("broker CPU (us/msg) |"), "{with}");
        assert!(with.contains(" | 12.50 |"), "{with}");
        let without = md(&old, "without-cpu");
        assert!(!without.contains("broker CPU"), "{without}");
    }

    #[test]
    fn run_report_writes_markdown_svg_and_copies() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let run_dir = tmp.path().join("run1");
        write_run(&run_dir, 100, 200.0, Some(limits(1000.0, 500.0)));
        let out = tmp.path().join("perf-reports");
        let opts = ReportOptions {
            out_dir: out.clone(),
            slug: Some("My Run".into()),
            title: None,
        };
        let dir = write_report(&ReportSource::Run(run_dir), &opts).expect("report");
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        assert!(name.ends_with("-my-run"), "{name}");
        for f in [
            REPORT_MD,
            PLOT_SVG,
            RUN_JSON,
            LIMITS_JSON,
            "produce.hgrm",
            REPORT_JSON,
        ] {
            assert!(dir.join(f).is_file(), "missing {f}");
        }
        let md = std::fs::read_to_string(dir.join(REPORT_MD)).expect("md");
        assert!(md.starts_with("# Run: synthetic"));
        assert!(md.contains("![latency by percentile](latency.svg)"));
        assert!(md.contains("| produce | 10000 |"));
        let svg_text = std::fs::read_to_string(dir.join(PLOT_SVG)).expect("svg");
        let doc = roxmltree::Document::parse(&svg_text).expect("SVG is XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("polyline"))
                .count(),
            1
        );

        let index = std::fs::read_to_string(out.join(INDEX_MD)).expect("index");
        assert!(index.contains(&format!("]({name}/report.md)")), "{index}");
        assert!(index.contains("200.0 MiB/s (20% of limit)"), "{index}");
        // No interval log, no interval plot.
        assert!(!dir.join(INTERVALS_SVG).exists());
        assert!(!md.contains(INTERVALS_SVG));
    }

    #[test]
    fn run_report_plots_interval_logs_over_time() {
        use std::time::{Duration, SystemTime};
        let tmp = tempfile::tempdir().expect("tempdir");
        let run_dir = tmp.path().join("run1");
        write_run(&run_dir, 100, 200.0, None);
        let base = SystemTime::now();
        let mut log =
            crate::hist::IntervalLogFile::create(&run_dir.join("produce.hlog"), base, "t")
                .expect("log");
        for i in 0..3u32 {
            let mut h = crate::hist::new_latency_histogram();
            h.saturating_record(100 * u64::from(i + 1));
            log.write_interval(
                &h,
                base + Duration::from_secs(i.into()),
                Duration::from_secs(1),
                None,
            )
            .expect("interval");
        }
        log.finish().expect("finish");
        let opts = ReportOptions {
            out_dir: tmp.path().join("perf-reports"),
            slug: None,
            title: None,
        };
        let dir = write_report(&ReportSource::Run(run_dir), &opts).expect("report");
        assert!(dir.join("produce.hlog").is_file());
        let md = std::fs::read_to_string(dir.join(REPORT_MD)).expect("md");
        assert!(
            md.contains("![latency per interval](intervals.svg)"),
            "{md}"
        );
        let svg_text = std::fs::read_to_string(dir.join(INTERVALS_SVG)).expect("svg");
        let doc = roxmltree::Document::parse(&svg_text).expect("SVG is XML");
        let lines: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        // p50, p99 and max of the one histogram, three points each.
        assert_eq!(lines.len(), 3);
        assert!(lines
            .iter()
            .all(|l| l.attribute("points").map(|p| p.split(' ').count()) == Some(3)));
    }

    #[test]
    fn written_reports_beside_the_generated_ones_stay_in_the_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("perf-reports");
        std::fs::create_dir_all(&out).expect("mkdir");
        std::fs::write(
            out.join("2026-01-02-some-change.md"),
            "# Some change: cost on the data path\n\ntext\n",
        )
        .expect("write");
        regenerate_index(&out).expect("index");
        regenerate_index(&out).expect("index again");
        let index = std::fs::read_to_string(out.join(INDEX_MD)).expect("index");
        assert!(
            index.contains("- [Some change: cost on the data path](2026-01-02-some-change.md)"),
            "{index}"
        );
        assert_eq!(
            index.matches("2026-01-02-some-change.md").count(),
            1,
            "{index}"
        );
        assert!(!index.contains("(index.md)"), "{index}");
    }

    #[test]
    fn index_regeneration_is_idempotent() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("perf-reports");
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        write_run(&a, 100, 200.0, Some(limits(1000.0, 500.0)));
        write_run(&b, 300, 100.0, Some(limits(1000.0, 500.0)));
        let opts = ReportOptions {
            out_dir: out.clone(),
            slug: None,
            title: None,
        };
        write_report(&ReportSource::Run(a.clone()), &opts).expect("report a");
        let cmp = ReportSource::Comparison {
            a,
            b,
            rule: RegressionRule::default(),
        };
        let dir = write_report(&cmp, &opts).expect("comparison");
        let first = std::fs::read_to_string(out.join(INDEX_MD)).expect("index");
        // Reporting the same things again rewrites the same directories.
        write_report(&cmp, &opts).expect("comparison again");
        regenerate_index(&out).expect("regenerate");
        let second = std::fs::read_to_string(out.join(INDEX_MD)).expect("index");
        assert_eq!(first, second);
        assert_eq!(second.matches("report.md)").count(), 2, "{second}");
        assert!(second.contains("REGRESSED"), "{second}");
        assert!(dir.join("a").join(RUN_JSON).is_file());
        assert!(dir.join("b").join("produce.hgrm").is_file());
        let md = std::fs::read_to_string(dir.join(REPORT_MD)).expect("md");
        assert!(md.contains("Verdict: **REGRESSED**"));
        let svg_text = std::fs::read_to_string(dir.join(PLOT_SVG)).expect("svg");
        let doc = roxmltree::Document::parse(&svg_text).expect("SVG is XML");
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("polyline"))
                .count(),
            2
        );
    }

    #[test]
    fn hand_made_directories_are_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("2024-01-02-notes")).expect("mkdir");
        regenerate_index(tmp.path()).expect("index");
        let index = std::fs::read_to_string(tmp.path().join(INDEX_MD)).expect("index");
        assert!(
            index.contains("| 2024-01-02 | [2024-01-02-notes](2024-01-02-notes/) |"),
            "{index}"
        );
    }
}
