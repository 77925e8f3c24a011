//! `corelog`: the broker binary.
//!
//! `corelog serve` with no arguments runs a single-node broker on port 9092
//! with its data in `./data`. Flags override a TOML config file, which
//! overrides the built-in defaults (see `corelog_server::ServerConfig`).
//! `corelog topic|group|config|produce|consume|cluster status` administer
//! and use any Kafka-compatible broker over the Kafka protocol, through
//! `corelog_client`; `corelog cluster status --bootstrap` asks a Corelog
//! cluster node's internal listener for the metadata quorum and brokers.

mod admin_cli;
mod cluster_cli;
mod group_cli;
mod records_cli;
mod topic_cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Parser, Subcommand};
use corelog_server::ServerConfig;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "corelog",
    version,
    about = "A Kafka-compatible, thread-per-core streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Audit, apply or revert host settings, or probe the data disk.
    Tune(corelog_tuning::TuneArgs),
    /// List, describe, reset the offsets of, or delete consumer groups.
    Group(group_cli::GroupArgs),
    /// Show a cluster's id, controller, brokers and topic counts (any
    /// Kafka-compatible broker), or a Corelog cluster's metadata quorum.
    Cluster(cluster_cli::ClusterArgs),
    /// Produce records read from stdin, one per line.
    Produce(records_cli::ProduceArgs),
    /// Print a topic's records.
    Consume(records_cli::ConsumeArgs),
    /// List, describe, create and delete topics, change their configs and
    /// partition counts (any Kafka-compatible broker).
    Topic(topic_cli::TopicArgs),
    /// Show or change broker and topic configs (any Kafka-compatible
    /// broker).
    Config(admin_cli::ConfigArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file with any of the settings below (and topic_defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory [default: data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address [default: 0.0.0.0:9092].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// host:port advertised to clients [default: the listen address].
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Shards (pinned cores); 0 = all cores [default: 0].
    #[arg(long)]
    cores: Option<usize>,
    /// How clients reach a partition's shard: "single-port" (one port,
    /// requests forwarded between shards) or "shard-direct" (each shard
    /// also listens on listen port + 1 + its index and is described as a
    /// broker of its own, so clients reach the owning shard directly)
    /// [default: single-port].
    #[arg(long)]
    listener_mode: Option<corelog_server::config::ListenerMode>,
    /// Create unknown topics on produce and metadata requests [default: false].
    #[arg(long)]
    auto_create_topics: Option<bool>,
    /// Write this file (JSON: pid, listen, advertised, shards,
    /// write_bytes_max) once every shard serves, as the "corelog ready" line
    /// is logged; removed on a clean stop [default: none].
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Serve Prometheus metrics (/metrics) and health probes (/health,
    /// /ready) over HTTP on this host:port [default: none].
    #[arg(long)]
    admin_listen: Option<std::net::SocketAddr>,
    /// The web console on the admin listener (/ui) only reads: creating and
    /// deleting topics and producing are refused (403). Given alone it
    /// means true [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    admin_read_only: Option<bool>,
    /// This node's id in a cluster (Kafka's node.id); with
    /// --cluster-listen and --controller-quorum-voters [default: none, a
    /// single-node broker].
    #[arg(long)]
    node_id: Option<i32>,
    /// The internal listener other cluster nodes reach this one on,
    /// host:port (this node's address in --controller-quorum-voters).
    #[arg(long)]
    cluster_listen: Option<std::net::SocketAddr>,
    /// The metadata quorum's voters, id@host:port,... (Kafka's
    /// controller.quorum.voters).
    #[arg(long)]
    controller_quorum_voters: Option<String>,
}

fn load_config(args: &ServeArgs) -> Result<ServerConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config {}: {e}", path.display()))?;
            toml::from_str::<ServerConfig>(&text)
                .map_err(|e| format!("config {}: {e}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = &args.advertised_listener {
        config.advertised_listener = Some(v.clone());
    }
    if let Some(v) = args.cores {
        config.cores = v;
    }
    if let Some(v) = args.listener_mode {
        config.listener_mode = v;
    }
    if let Some(v) = args.auto_create_topics {
        config.auto_create_topics = v;
    }
    if let Some(v) = &args.ready_file {
        config.ready_file = Some(v.clone());
    }
    if let Some(v) = args.admin_listen {
        config.admin_listen = Some(v);
    }
    if let Some(v) = args.admin_read_only {
        config.admin_read_only = v;
    }
    if let Some(v) = args.node_id {
        config.node_id = Some(v);
    }
    if let Some(v) = args.cluster_listen {
        config.cluster_listen = Some(v);
    }
    if let Some(v) = &args.controller_quorum_voters {
        config.controller_quorum_voters = Some(v.clone());
    }
    config.validate()?;
    Ok(config)
}

/// File `corelog tune --probe-disk <data dir>` writes.
const IO_PROPERTIES_FILE: &str = "io-properties.toml";

/// Uses a disk probe of the data directory, when there is one, to size the
/// group-commit writes, unless the config sets `write_bytes_max` itself.
fn apply_disk_probe(mut config: ServerConfig) -> ServerConfig {
    let path = config.data_dir.join(IO_PROPERTIES_FILE);
    if !path.exists() {
        tracing::info!(
            "no disk probe at {}; group-commit writes up to the default size",
            path.display()
        );
        return config;
    }
    match corelog_tuning::IoProperties::load(&path) {
        Ok(p) if config.write_bytes_max.is_none() => {
            let bytes = corelog_server::config::write_bytes_from_probe(
                p.write_chunk_bytes,
                p.write_queue_depth,
            );
            config.write_bytes_max = Some(bytes);
            tracing::info!(
                "using disk probe {} ({}): group-commit writes up to {bytes} bytes (write_chunk_bytes x write_queue_depth)",
                path.display(),
                p.summary()
            );
        }
        Ok(_) => tracing::info!(
            "disk probe {} present; write_bytes_max is set in the config",
            path.display()
        ),
        Err(e) => tracing::warn!("ignoring {}: {e}", path.display()),
    }
    config
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corelog: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = corelog_tuning::io_uring_available() {
        eprintln!(
            "corelog: io_uring is unavailable, and the broker's disk and network I/O need it: {e}"
        );
        return ExitCode::FAILURE;
    }
    for finding in corelog_tuning::startup_findings(Path::new("/"), &config.data_dir) {
        tracing::warn!(setting = %finding.setting, "{}", finding.message);
    }
    let config = apply_disk_probe(config);
    abort_on_panic();
    match corelog_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelog: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The broker's panic policy: a panic anywhere ends the whole process at
/// once (SIGABRT), after the panic message and backtrace are printed.
///
/// A shard is one thread that owns its partitions, connections and group
/// coordinators. Unwinding would end that thread and leave the others
/// running: a half-alive broker that accepts connections on the remaining
/// shards but cannot reach the dead shard's partitions, and that no
/// supervisor restarts. Aborting hands recovery to the supervisor (systemd's
/// `Restart=`, Kubernetes), and the next start recovers every partition
/// from disk, where acknowledged (`acks=all`) data already is.
fn abort_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        // Not `eprintln!`: it panics when stderr cannot be written (a full
        // log disk), and a panic inside the panic hook aborts before this
        // line could say why.
        let _ = writeln!(
            std::io::stderr(),
            "corelog: aborting after a panic, so that a supervisor restarts the broker"
        );
        std::process::abort();
    }));
}

/// Log lines dropped because stderr could not take them, since the last
/// line that could be written said so.
static LOG_LINES_LOST: AtomicU64 = AtomicU64::new(0);

/// The log's writer: stderr, where a failed write loses the line instead of
/// failing.
///
/// Why: the log usually goes to a file, often on the data disk. When that
/// disk fills, a write to stderr fails with ENOSPC; tracing-subscriber then
/// reports the failure with `eprintln!`, which panics on the same full
/// disk, and the panic aborts the broker (found by the network fuzzer's
/// long run: a full disk killed a broker that was serving). A broker on a
/// full disk must keep serving what it can (reads, and refusing writes with
/// a Kafka error), so a log line is worth less than the process: it is
/// dropped and counted, and the next line that can be written says how many
/// were lost.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut err = std::io::stderr().lock();
        let lost = LOG_LINES_LOST.swap(0, Ordering::Relaxed);
        if lost > 0
            && writeln!(
                err,
                "corelog: {lost} log line(s) lost: stderr could not be written"
            )
            .is_err()
        {
            LOG_LINES_LOST.fetch_add(lost, Ordering::Relaxed);
        }
        if err.write_all(buf).is_err() {
            LOG_LINES_LOST.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORELOG_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(|| LossyStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Tune(args) => corelog_tuning::run(args),
        Command::Group(args) => group_cli::run(args),
        Command::Cluster(args) => cluster_cli::run(args),
        Command::Topic(args) => topic_cli::run(args),
        Command::Config(args) => admin_cli::run_config(args),
        Command::Produce(args) => records_cli::produce(args),
        Command::Consume(args) => records_cli::consume(args),
    }
}
