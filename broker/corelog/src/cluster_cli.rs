//! `corelog cluster status`: the metadata quorum and the brokers of a
//! cluster, asked of the nodes' internal listeners (`cluster_listen`).
//!
//! The bootstrap node names the voters; each voter is asked for its own
//! view (role, term, the leader it knows, commit and applied index), so
//! the report shows every voter's progress as far as it can be reached.
//! The brokers are the leader's image (the bootstrap node's when there is
//! no leader). With no reachable leader the report says so, and that
//! metadata writes cannot make progress.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use corelog_server::cluster::wire::{fetch_status, NodeStatus};

const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Show the cluster as any Kafka client sees it (cluster id,
    /// controller, brokers, topic and partition counts); with --bootstrap,
    /// a Corelog cluster's quorum instead (leader, term, each voter's
    /// commit and applied index) and its brokers (id, endpoints, epoch,
    /// fenced).
    Status(StatusArgs),
}

#[derive(Args)]
struct StatusArgs {
    /// A Corelog cluster node's internal listener (its cluster_listen),
    /// host:port: show the metadata quorum.
    #[arg(long)]
    bootstrap: Option<String>,
    /// With --bootstrap: print JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    kafka: crate::admin_cli::InfoArgs,
}

pub fn run(args: ClusterArgs) -> ExitCode {
    match args.command {
        ClusterCommand::Status(a) if a.bootstrap.is_none() => crate::admin_cli::run_info(&a.kafka),
        ClusterCommand::Status(a) => match status(a.bootstrap.as_deref().unwrap_or_default()) {
            Ok(report) => {
                if a.json || a.kafka.format == crate::topic_cli::Format::Json {
                    println!("{}", report.to_json());
                } else {
                    print!("{}", report.render());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("corelog: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

struct Report {
    /// Each voter: its id, address, and its status or why it is unknown.
    voters: Vec<(i32, String, Result<NodeStatus, String>)>,
    leader: Option<(i32, u64)>,
}

fn status(bootstrap: &str) -> Result<Report, String> {
    let first = fetch_status(bootstrap, TIMEOUT)?;
    let mut voters = Vec::new();
    for (id, addr) in first.voters.clone() {
        let st = if id == first.node_id {
            Ok(first.clone())
        } else {
            fetch_status(&addr, TIMEOUT)
        };
        voters.push((id, addr, st));
    }
    let leader = voters
        .iter()
        .filter_map(|(_, _, s)| s.as_ref().ok())
        .filter(|s| s.role == "leader")
        .max_by_key(|s| s.term)
        .map(|s| (s.node_id, s.term));
    if voters.iter().all(|(id, _, _)| *id != first.node_id) {
        voters.push((first.node_id, bootstrap.to_string(), Ok(first)));
    }
    Ok(Report { voters, leader })
}

impl Report {
    /// The status whose brokers are shown: the leader's, else the first
    /// reachable voter's.
    fn source(&self) -> Option<&NodeStatus> {
        let reachable = || self.voters.iter().filter_map(|(_, _, s)| s.as_ref().ok());
        match self.leader {
            Some((l, _)) => reachable().find(|s| s.node_id == l),
            None => reachable().next(),
        }
    }

    fn reachable(&self) -> usize {
        self.voters.iter().filter(|(_, _, s)| s.is_ok()).count()
    }

    fn to_json(&self) -> String {
        let voters: Vec<_> = self
            .voters
            .iter()
            .map(|(id, addr, s)| match s {
                Ok(s) => serde_json::json!({
                    "id": id, "address": addr, "reachable": true, "role": s.role,
                    "term": s.term, "leader": s.leader, "commit_index": s.commit_index,
                    "applied_index": s.applied_index,
                }),
                Err(e) => serde_json::json!({
                    "id": id, "address": addr, "reachable": false, "error": e,
                }),
            })
            .collect();
        let source = self.source();
        serde_json::json!({
            "leader": self.leader.map(|l| l.0),
            "term": self.leader.map(|l| l.1),
            "voters": voters,
            "brokers_from": source.map(|s| s.node_id),
            "brokers": source.map(|s| s.brokers.clone()).unwrap_or_default(),
        })
        .to_string()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        let n = self.voters.len();
        match self.leader {
            Some((l, term)) => {
                let _ = writeln!(out, "quorum: leader {l}, term {term}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "quorum: NO LEADER: no reachable voter leads the metadata quorum ({} of {n} voters reachable, a majority is {}); metadata writes cannot make progress",
                    self.reachable(),
                    n / 2 + 1
                );
            }
        }
        let _ = writeln!(out, "voters:");
        let _ = writeln!(
            out,
            "  {:<4} {:<22} {:<10} {:>6} {:>7} {:>8} {:>8}",
            "ID", "ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED"
        );
        for (id, addr, s) in &self.voters {
            match s {
                Ok(s) => {
                    let _ = writeln!(
                        out,
                        "  {:<4} {:<22} {:<10} {:>6} {:>7} {:>8} {:>8}",
                        id,
                        addr,
                        s.role,
                        s.term,
                        s.leader.map_or("-".to_string(), |l| l.to_string()),
                        s.commit_index,
                        s.applied_index
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "  {id:<4} {addr:<22} unreachable ({e})");
                }
            }
        }
        match self.source() {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "brokers (node {}'s image at index {}):",
                    s.node_id, s.applied_index
                );
                let _ = writeln!(out, "  {:<4} {:>8} {:<9} ENDPOINTS", "ID", "EPOCH", "STATE");
                for b in &s.brokers {
                    let _ = writeln!(
                        out,
                        "  {:<4} {:>8} {:<9} {}",
                        b.id,
                        b.epoch,
                        if b.fenced { "fenced" } else { "unfenced" },
                        b.endpoints.join(",")
                    );
                }
            }
            None => {
                let _ = writeln!(out, "brokers: unknown (no voter reachable)");
            }
        }
        out
    }
}
