//! The `corelog tune` command line, mounted by the broker binary as a subcommand.

use crate::apply::{self, ApplyOutcome, RevertOutcome};
use crate::io_properties::DEFAULT_FILE_NAME;
use crate::probe::{self, ProbeOptions};
use crate::settings::Context;
use crate::startup::check_report_with;
use crate::sysroot::SysRoot;
use crate::{cpulist, settings};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Output format of `--check`, `--apply` and `--revert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table followed by one section per setting.
    Text,
    /// Machine-readable JSON (embedded in the benchmark's run.json).
    Json,
}

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the action ran but some changes or measurements failed.
pub const EXIT_PARTIAL: u8 = 1;
/// Exit status: bad arguments or an unusable state file; nothing was done.
pub const EXIT_USAGE: u8 = 2;

/// Check, apply or revert host settings for the broker, or probe the data disk.
///
/// Without an action flag this runs `--check`, which only reads and works unprivileged.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Report each setting: current value, recommendation, why, and how to change and revert it.
    #[arg(long, conflicts_with_all = ["apply", "revert", "probe_disk"])]
    pub check: bool,

    /// Change what can be changed, recording previous values in the state file.
    #[arg(long, conflicts_with_all = ["revert", "probe_disk"])]
    pub apply: bool,

    /// Restore the values recorded by --apply.
    #[arg(long, conflicts_with = "probe_disk")]
    pub revert: bool,

    /// Measure the device behind DIR (O_DIRECT bandwidth, fdatasync latency) and write an
    /// io-properties file.
    #[arg(long, value_name = "DIR")]
    pub probe_disk: Option<PathBuf>,

    /// Restrict check/apply/revert to these settings (repeat or separate with commas).
    #[arg(long, value_name = "NAME", value_delimiter = ',', num_args = 1..)]
    pub only: Vec<String>,

    /// Directory under which /proc, /sys and the default state file are read and written.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// The broker's data directory (for the filesystem check).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/corelog")]
    pub data_dir: PathBuf,

    /// Where --apply records previous values and --revert reads them
    /// [default: <root>/var/lib/corelog/tune-state.toml].
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// CPUs the broker's shards run on, e.g. 0-15 (default: all online CPUs).
    #[arg(long, value_name = "LIST")]
    pub shard_cpus: Option<String>,

    /// io-properties file to write [default: <probe dir>/io-properties.toml].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Size of the probe's scratch file in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub probe_file_size_mib: u64,

    /// Duration of each probe step (one block size at one queue depth) in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub probe_step_ms: u64,

    /// Block sizes to probe in KiB [default: 4,8,16,...,1024].
    #[arg(long, value_name = "KIB", value_delimiter = ',')]
    pub probe_block_sizes_kib: Vec<u64>,

    /// Queue depths to probe [default: 1,2,4,8,16].
    #[arg(long, value_name = "N", value_delimiter = ',')]
    pub probe_queue_depths: Vec<u32>,

    /// Number of fdatasync latency samples.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub probe_fdatasync_samples: u32,
}

/// Runs `corelog tune` with output on stdout and stderr.
pub fn run(args: TuneArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = run_with_output(args, &mut stdout.lock(), &mut stderr.lock());
    ExitCode::from(code)
}

/// Runs `corelog tune`, writing to the given streams, and returns the process exit status
/// ([`EXIT_OK`], [`EXIT_PARTIAL`] or [`EXIT_USAGE`]). Tests call this directly.
pub fn run_with_output(args: TuneArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match dispatch(&args, out) {
        Ok(code) => code,
        Err((code, message)) => {
            let _ = writeln!(err, "corelog tune: {message}");
            code
        }
    }
}

type CliResult = Result<u8, (u8, String)>;

fn usage(message: impl Into<String>) -> (u8, String) {
    (EXIT_USAGE, message.into())
}

fn dispatch(args: &TuneArgs, out: &mut dyn Write) -> CliResult {
    if let Some(dir) = &args.probe_disk {
        return run_probe(args, dir, out);
    }
    let root = SysRoot::new(&args.root);
    let mut ctx = Context::new(root.clone(), &args.data_dir);
    if let Some(list) = &args.shard_cpus {
        let set = cpulist::parse(list).map_err(|e| usage(format!("--shard-cpus: {e}")))?;
        if set.is_empty() {
            return Err(usage("--shard-cpus is empty"));
        }
        ctx.shard_cpus = Some(set);
    }
    settings::select(&args.only).map_err(usage)?;
    let state_file = apply::state_path(&root, args.state_file.as_deref());

    if args.apply {
        let outcome =
            apply::apply(&ctx, &args.only, &state_file).map_err(|e| usage(e.to_string()))?;
        print_apply(args.format, &outcome, &state_file, out)?;
        return Ok(if outcome.errors.is_empty() {
            EXIT_OK
        } else {
            EXIT_PARTIAL
        });
    }
    if args.revert {
        let outcome =
            apply::revert(&root, &args.only, &state_file).map_err(|e| usage(e.to_string()))?;
        print_revert(args.format, &outcome, &state_file, out)?;
        return Ok(if outcome.errors.is_empty() {
            EXIT_OK
        } else {
            EXIT_PARTIAL
        });
    }

    // --check, explicit or by default.
    let report = check_report_with(&ctx, &args.only).map_err(usage)?;
    let text = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json(),
    };
    emit(out, &text)?;
    Ok(EXIT_OK)
}

fn emit(out: &mut dyn Write, text: &str) -> Result<(), (u8, String)> {
    writeln!(out, "{}", text.trim_end())
        .map_err(|e| (EXIT_PARTIAL, format!("cannot write output: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise: {e}\"}}"))
}

fn print_apply(
    format: Format,
    outcome: &ApplyOutcome,
    state_file: &std::path::Path,
    out: &mut dyn Write,
) -> Result<(), (u8, String)> {
    if format == Format::Json {
        return emit(out, &to_json(outcome));
    }
    let mut text = String::new();
    for c in &outcome.applied {
        text.push_str(&format!(
            "applied {}: {} {:?} -> {:?}\n",
            c.setting, c.path, c.restore_value, c.applied_value
        ));
    }
    for e in &outcome.errors {
        text.push_str(&format!("failed {e}\n"));
    }
    if !outcome.untouched.is_empty() {
        text.push_str(&format!(
            "unchanged (already fine or check-only): {}\n",
            outcome.untouched.join(", ")
        ));
    }
    if outcome.applied.is_empty() {
        text.push_str("nothing was changed\n");
    } else {
        text.push_str(&format!(
            "previous values recorded in {}; undo with `corelog tune --revert`\n",
            state_file.display()
        ));
    }
    emit(out, &text)
}

fn print_revert(
    format: Format,
    outcome: &RevertOutcome,
    state_file: &std::path::Path,
    out: &mut dyn Write,
) -> Result<(), (u8, String)> {
    if format == Format::Json {
        return emit(out, &to_json(outcome));
    }
    let mut text = String::new();
    for c in &outcome.reverted {
        text.push_str(&format!(
            "reverted {}: {} -> {:?}\n",
            c.setting, c.path, c.restore_value
        ));
    }
    for e in &outcome.errors {
        text.push_str(&format!("failed {e} (kept in {})\n", state_file.display()));
    }
    if outcome.reverted.is_empty() && outcome.errors.is_empty() {
        text.push_str(&format!("nothing to revert in {}\n", state_file.display()));
    }
    emit(out, &text)
}

fn run_probe(args: &TuneArgs, dir: &std::path::Path, out: &mut dyn Write) -> CliResult {
    let mut opts = ProbeOptions::new(dir);
    opts.file_size_bytes = args
        .probe_file_size_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| usage("--probe-file-size-mib is too large"))?;
    opts.step_duration = Duration::from_millis(args.probe_step_ms);
    if !args.probe_block_sizes_kib.is_empty() {
        opts.block_sizes_bytes = args
            .probe_block_sizes_kib
            .iter()
            .map(|k| k.saturating_mul(1024))
            .collect();
    }
    if !args.probe_queue_depths.is_empty() {
        opts.queue_depths = args.probe_queue_depths.clone();
    }
    opts.fdatasync_samples = args.probe_fdatasync_samples;
    let props = probe::probe_disk(&opts).map_err(|e| match e {
        probe::ProbeError::Options(m) => usage(m),
        other => (EXIT_PARTIAL, other.to_string()),
    })?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| dir.join(DEFAULT_FILE_NAME));
    props
        .save(&output)
        .map_err(|e| (EXIT_PARTIAL, e.to_string()))?;
    let text = match args.format {
        Format::Json => to_json(&props),
        Format::Text => format!("wrote {}\n{}", output.display(), props.summary()),
    };
    emit(out, &text)?;
    Ok(EXIT_OK)
}
