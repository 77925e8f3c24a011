//! Corelog's benchmark harness: the measurement backbone shared by every
//! `corelog-bench` subcommand.
//!
//! - [`limits`]: the machine's ceilings (O_DIRECT bandwidth, fdatasync
//!   latency, loopback TCP), measured in the same run as the benchmark.
//! - [`hist`]: per-worker latency histograms, merging, `.hgrm` files and
//!   interval logs.
//! - [`run`]: `run.json` and the run directory ([`run::RunWriter`]).
//! - [`compare`]: regression checks between runs or sets of repeats.
//! - [`report`] and [`svg`]: markdown reports with latency plots.
//!
//! Each subcommand lives in its own module with a `clap::Args` struct and a
//! `run_command` function; `main.rs` only dispatches, so new subcommands
//! (a storage append benchmark, the Kafka load generator) are new modules.

pub mod compare;
pub mod compression;
pub mod error;
pub mod hist;
pub mod kafka_client;
pub mod limits;
pub mod loadgen;
pub mod proc_cpu;
pub mod producer;
pub mod record_check;
pub mod records;
pub mod report;
pub mod run;
pub mod sink;
pub mod storage;
pub mod storage_open;
pub mod svg;

pub use compare::{compare_runs, Comparison, ComparisonRow, RegressionRule};
pub use error::{Error, Result};
pub use hist::{merge_histograms, new_latency_histogram, HistogramSummary, LatencyRecorder};
pub use limits::{measure_limits, Limits, LimitsOptions};
pub use run::{RunRecord, RunWriter, ThroughputBasis};
