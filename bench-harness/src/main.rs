//! `corelog-bench`: thin command-line dispatch; each subcommand's arguments
//! and logic live in its own library module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use corelog_bench::{compare, limits, loadgen, record_check, report, sink, storage, storage_open};

#[derive(Debug, Parser)]
#[command(name = "corelog-bench", version, about = "Corelog benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the machine's disk, fdatasync and loopback TCP limits.
    Limits(limits::LimitsArgs),
    /// Compare two runs (or sets of repeats); exits 1 when B regressed.
    Compare(compare::CompareArgs),
    /// Render a run or a comparison as a markdown report with a latency plot.
    Report(report::ReportArgs),
    /// Append throughput and latency of one partition log (storage layer).
    Storage(storage::StorageArgs),
    /// Time to open a partition as its log grows (clean shutdown and crash).
    StorageOpen(storage_open::StorageOpenArgs),
    /// Kafka load generator: run a scenario against a broker (and peers).
    Run(loadgen::RunArgs),
    /// A Kafka endpoint that acknowledges and discards: the generator's ceiling.
    Sink(sink::SinkArgs),
    /// CPU cost of the broker's check of a produced batch, per codec.
    RecordCheck(record_check::RecordCheckArgs),
}

fn main() -> ExitCode {
    // The storage benchmarks run the log in this process: its warnings and
    // errors (a failed write, say) must reach the person running them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORELOG_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Limits(args) => limits::run_command(args),
        Command::Compare(args) => compare::run_command(args),
        Command::Report(args) => report::run_command(args),
        Command::Storage(args) => storage::run_command(args),
        Command::StorageOpen(args) => storage_open::run_command(args),
        Command::Run(args) => loadgen::run_command(args),
        Command::Sink(args) => sink::run_command(args),
        Command::RecordCheck(args) => record_check::run_command(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 2 keeps "the tool failed" distinct from compare's 1, "regressed".
            ExitCode::from(2)
        }
    }
}
