//! `corelog config get|set`, `corelog cluster info` and `corelog group
//! reset-offsets|delete`: admin verbs over the public Kafka protocol,
//! through `corelog_client`'s typed calls, so they work against any
//! Kafka-compatible broker. Tables for people by default, `--format json`
//! for scripts; errors carry Kafka's error name and what to do.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use corelog_client::api::{OffsetToCommit, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use corelog_client::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use corelog_client::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use corelog_client::kafka_protocol::protocol::StrBytes;
use corelog_client::{ClientError, Connection};
use serde_json::json;

use crate::group_cli::DEFAULT_BOOTSTRAP;
use crate::topic_cli::{table, Format, CONNECTION, OP_DELETE, OP_SET, RESOURCE_TOPIC};

/// Kafka's `ConfigResource.Type` of a broker.
const RESOURCE_BROKER: i8 = 4;

type CliResult<T> = Result<T, String>;

fn connect(addr: &str) -> CliResult<Connection> {
    Connection::connect(addr, &CONNECTION).map_err(|e| e.to_string())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn print_result(result: CliResult<String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corelog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(e: ClientError) -> String {
    e.to_string()
}

// ---------------------------------------------------------------- config

#[derive(Args)]
pub struct ConfigArgs {
    /// A broker to bootstrap from, host:port.
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Args)]
struct ResourceArgs {
    /// A topic's configs.
    #[arg(long, conflicts_with = "broker")]
    topic: Option<String>,
    /// A broker's configs, by node id [default: the bootstrap broker's].
    #[arg(long)]
    broker: Option<i32>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Show configs: NAME, VALUE, SOURCE (all, or the names given).
    Get {
        #[command(flatten)]
        resource: ResourceArgs,
        /// Only these configs.
        names: Vec<String>,
    },
    /// Set configs (key=value) or remove them (--delete key), back to the
    /// broker's default.
    Set {
        #[command(flatten)]
        resource: ResourceArgs,
        /// Configs to set, key=value.
        #[arg(value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// A config to remove; repeat for more.
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// Longest config value a table shows whole; longer ones are cut (the
/// JSON output has them whole), so one long list keeps the table readable.
const TABLE_VALUE_CHARS_MAX: usize = 60;

fn shorten(v: &str) -> String {
    if v.chars().count() <= TABLE_VALUE_CHARS_MAX {
        return v.to_string();
    }
    let mut out: String = v.chars().take(TABLE_VALUE_CHARS_MAX - 3).collect();
    out.push_str("...");
    out
}

/// Kafka's `ConfigSource` names.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

/// The resource a config command is about: its type, name and how the
/// messages name it.
fn resource(c: &mut Connection, args: &ResourceArgs) -> CliResult<(i8, String, String)> {
    if let Some(t) = &args.topic {
        return Ok((RESOURCE_TOPIC, t.clone(), format!("topic {t}")));
    }
    let id = match args.broker {
        Some(id) => id,
        // The bootstrap broker: the one whose address was given, else the
        // first the metadata names (a cluster may advertise other names).
        None => {
            let md = c.metadata(Some(&[])).map_err(err)?;
            let addr = c.addr().to_string();
            md.brokers
                .iter()
                .find(|b| format!("{}:{}", b.host, b.port) == addr)
                .or_else(|| md.brokers.first())
                .map(|b| b.node_id.0)
                .ok_or("the broker's metadata names no broker")?
        }
    };
    Ok((RESOURCE_BROKER, id.to_string(), format!("broker {id}")))
}

pub fn run_config(args: ConfigArgs) -> ExitCode {
    print_result(config(&args))
}

fn config(args: &ConfigArgs) -> CliResult<String> {
    let mut c = connect(&args.bootstrap_server)?;
    match &args.command {
        ConfigCommand::Get { resource: r, names } => {
            let (kind, name, what) = resource(&mut c, r)?;
            let resp = c
                .describe_configs(vec![DescribeConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(s(&name))
                    .with_configuration_keys(
                        (!names.is_empty()).then(|| names.iter().map(|n| s(n)).collect()),
                    )])
                .map_err(err)?;
            let mut rows = Vec::new();
            for result in &resp.results {
                c.check(
                    &format!("configs of {what}"),
                    result.error_code,
                    result.error_message.as_ref(),
                )
                .map_err(err)?;
                for cfg in &result.configs {
                    let value = if cfg.is_sensitive {
                        None
                    } else {
                        cfg.value.as_ref().map(|v| v.to_string())
                    };
                    rows.push((
                        cfg.name.to_string(),
                        value,
                        source_name(cfg.config_source),
                        cfg.read_only,
                        cfg.is_sensitive,
                    ));
                }
            }
            // A broker leaves out names it does not know; say so instead
            // of printing an empty table.
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| !rows.iter().any(|r| &r.0 == *n))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "{what} has no config named {}; `corelog config get` without names lists them",
                    missing
                        .iter()
                        .map(|n| format!("'{n}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(match args.format {
                Format::Json => {
                    let configs: Vec<_> = rows
                        .iter()
                        .map(|(n, v, src, ro, sens)| {
                            json!({"name": n, "value": v, "source": src, "read_only": ro, "sensitive": sens})
                        })
                        .collect();
                    format!("{}\n", json!({"resource": what, "configs": configs}))
                }
                Format::Text => table(
                    &["NAME", "VALUE", "SOURCE"],
                    &rows
                        .iter()
                        .map(|(n, v, src, _, sens)| {
                            let v = match (v, sens) {
                                (_, true) => "(sensitive)".to_string(),
                                (Some(v), _) => shorten(v),
                                (None, _) => "-".to_string(),
                            };
                            vec![n.clone(), v, src.to_string()]
                        })
                        .collect::<Vec<_>>(),
                ),
            })
        }
        ConfigCommand::Set {
            resource: r,
            set,
            delete,
        } => {
            if set.is_empty() && delete.is_empty() {
                return Err("config set: nothing to do (give key=value or --delete key)".into());
            }
            let (kind, name, what) = resource(&mut c, r)?;
            let configs = set
                .iter()
                .map(|(k, v)| (k, Some(v), OP_SET))
                .chain(delete.iter().map(|k| (k, None, OP_DELETE)))
                .map(|(k, v, op)| {
                    AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(op)
                        .with_value(v.map(|v| s(v)))
                })
                .collect();
            let resp = c
                .incremental_alter_configs(
                    vec![AlterConfigsResource::default()
                        .with_resource_type(kind)
                        .with_resource_name(s(&name))
                        .with_configs(configs)],
                    false,
                )
                .map_err(err)?;
            for r in &resp.responses {
                c.check(
                    &format!("set configs of {what}"),
                    r.error_code,
                    r.error_message.as_ref(),
                )
                .map_err(err)?;
            }
            Ok(match args.format {
                Format::Json => format!(
                    "{}\n",
                    json!({
                        "resource": what,
                        "set": set.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>(),
                        "deleted": delete,
                    })
                ),
                Format::Text => format!("{what}: {} set, {} removed\n", set.len(), delete.len()),
            })
        }
    }
}

// ---------------------------------------------------------------- cluster

/// `corelog cluster info`: what any Kafka client sees of a cluster.
#[derive(Args)]
pub struct InfoArgs {
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run_info(args: &InfoArgs) -> ExitCode {
    print_result(info(args))
}

fn info(args: &InfoArgs) -> CliResult<String> {
    let mut c = connect(&args.bootstrap_server)?;
    let md = c.metadata(None).map_err(err)?;
    let controller = md.controller_id.0;
    let cluster_id = md.cluster_id.as_ref().map(|s| s.to_string());
    let topics = md.topics.iter().filter(|t| !t.is_internal).count();
    let partitions: usize = md
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .map(|t| t.partitions.len())
        .sum();
    let offline: usize = md
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.leader_id.0 < 0)
        .count();
    let mut brokers: Vec<(i32, String, Option<String>)> = md
        .brokers
        .iter()
        .map(|b| {
            (
                b.node_id.0,
                format!("{}:{}", b.host, b.port),
                b.rack.as_ref().map(|r| r.to_string()),
            )
        })
        .collect();
    brokers.sort();
    Ok(match args.format {
        Format::Json => format!(
            "{}\n",
            json!({
                "cluster_id": cluster_id,
                "controller_id": (controller >= 0).then_some(controller),
                "brokers": brokers.iter().map(|(id, addr, rack)| json!({"node_id": id, "address": addr, "rack": rack})).collect::<Vec<_>>(),
                "topics": topics,
                "partitions": partitions,
                "offline_partitions": offline,
            })
        ),
        Format::Text => {
            let mut out = format!(
                "CLUSTER {}\nCONTROLLER {}\nTOPICS {topics}  PARTITIONS {partitions}  OFFLINE {offline}\n\n",
                cluster_id.as_deref().unwrap_or("-"),
                if controller >= 0 { controller.to_string() } else { "none".to_string() },
            );
            out.push_str(&table(
                &["ID", "ADDRESS", "RACK", "CONTROLLER"],
                &brokers
                    .iter()
                    .map(|(id, addr, rack)| {
                        vec![
                            id.to_string(),
                            addr.clone(),
                            rack.clone().unwrap_or_else(|| "-".into()),
                            if *id == controller { "yes" } else { "" }.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ));
            out
        }
    })
}

// ---------------------------------------------------------------- groups

/// Where `group reset-offsets` moves a group's offsets.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResetTo {
    Earliest,
    Latest,
}

#[derive(Args)]
pub struct ResetArgs {
    /// The group id.
    pub group: String,
    /// The topic whose offsets to reset.
    #[arg(long)]
    pub topic: String,
    /// Only these partitions; repeat for more [default: all].
    #[arg(short = 'p', long = "partition")]
    pub partitions: Vec<i32>,
    /// Move to the log start or the log end.
    #[arg(long, value_enum, group = "target")]
    pub to: Option<ResetTo>,
    /// Move to this offset (clamped to the log's range, as Kafka does).
    #[arg(long, group = "target")]
    pub to_offset: Option<i64>,
    /// Move to the first record at or after this time (ms since the
    /// epoch); the log end where no record is that recent.
    #[arg(long, group = "target")]
    pub to_timestamp: Option<i64>,
    /// Move by this many offsets from the committed one (negative: back),
    /// clamped to the log's range.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Show the new offsets without committing them.
    #[arg(long)]
    pub dry_run: bool,
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// The group ids.
    #[arg(required = true)]
    pub groups: Vec<String>,
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run_reset(args: &ResetArgs) -> ExitCode {
    print_result(reset(args))
}

pub fn run_delete(args: &DeleteArgs) -> ExitCode {
    print_result(delete_groups(args))
}

/// A connection to `group`'s coordinator.
fn coordinator(bootstrap: &str, group: &str) -> CliResult<Connection> {
    let mut c = connect(bootstrap)?;
    let coord = c.find_coordinator(group).map_err(err)?;
    if coord.addr == c.addr() {
        return Ok(c);
    }
    connect(&coord.addr)
}

/// Partition -> leader address of `topic`, checking it exists.
pub fn leaders(c: &mut Connection, topic: &str) -> CliResult<BTreeMap<i32, String>> {
    let md = c.metadata(Some(&[topic])).map_err(err)?;
    let t = md
        .topics
        .first()
        .ok_or_else(|| format!("topic {topic}: the broker answered nothing"))?;
    c.check(&format!("topic {topic}"), t.error_code, None)
        .map_err(err)?;
    let mut out = BTreeMap::new();
    for p in &t.partitions {
        let b = md
            .brokers
            .iter()
            .find(|b| b.node_id == p.leader_id)
            .ok_or_else(|| {
                format!(
                    "topic {topic} partition {} has no leader; retry when it has one",
                    p.partition_index
                )
            })?;
        out.insert(p.partition_index, format!("{}:{}", b.host, b.port));
    }
    Ok(out)
}

fn reset(args: &ResetArgs) -> CliResult<String> {
    let mut boot = connect(&args.bootstrap_server)?;
    let leaders = leaders(&mut boot, &args.topic)?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        leaders.keys().copied().collect()
    } else {
        for p in &args.partitions {
            if !leaders.contains_key(p) {
                return Err(format!("topic {} has no partition {p}", args.topic));
            }
        }
        args.partitions.clone()
    };
    if args.to.is_none()
        && args.to_offset.is_none()
        && args.to_timestamp.is_none()
        && args.shift_by.is_none()
    {
        return Err(
            "reset-offsets: say where to: --to earliest|latest, --to-offset, --to-timestamp or --shift-by"
                .into(),
        );
    }
    let mut coord = coordinator(&args.bootstrap_server, &args.group)?;
    // Kafka refuses to reset a group with members, whose consumers would
    // overwrite the new offsets with their own commits.
    let described = coord.describe_groups(&[&args.group]).map_err(err)?;
    if let Some(g) = described.groups.first() {
        coord
            .check(&format!("group {}", args.group), g.error_code, None)
            .map_err(err)?;
        if !g.members.is_empty() {
            return Err(format!(
                "group {} has {} active member(s) (state {}); stop its consumers first, then retry",
                args.group,
                g.members.len(),
                g.group_state
            ));
        }
    }
    let committed = coord
        .offset_fetch(
            &args.group,
            Some(&[(args.topic.clone(), partitions.clone())]),
        )
        .map_err(err)?;
    let mut conns: BTreeMap<String, Connection> = BTreeMap::new();
    let mut plan: Vec<(i32, Option<i64>, i64)> = Vec::new();
    for &p in &partitions {
        let addr = &leaders[&p];
        if !conns.contains_key(addr) {
            conns.insert(addr.clone(), connect(addr)?);
        }
        let c = conns.get_mut(addr).expect("connected above");
        let start = c
            .offset_for(&args.topic, p, EARLIEST_TIMESTAMP)
            .map_err(err)?;
        let end = c
            .offset_for(&args.topic, p, LATEST_TIMESTAMP)
            .map_err(err)?;
        let current = committed
            .iter()
            .find(|o| o.topic == args.topic && o.partition == p && o.offset >= 0)
            .map(|o| o.offset);
        let target = if let Some(to) = args.to {
            match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
            }
        } else if let Some(o) = args.to_offset {
            o.clamp(start, end)
        } else if let Some(ts) = args.to_timestamp {
            Some(c.offset_for(&args.topic, p, ts).map_err(err)?)
                .filter(|&o| o >= 0)
                .unwrap_or(end)
        } else {
            let by = args.shift_by.unwrap_or(0);
            // Without a committed offset there is nothing to shift from;
            // Kafka's tool shifts from the log end then too.
            current.unwrap_or(end).saturating_add(by).clamp(start, end)
        };
        plan.push((p, current, target));
    }
    if !args.dry_run {
        let offsets: Vec<OffsetToCommit> = plan
            .iter()
            .map(|&(p, _, target)| OffsetToCommit {
                topic: args.topic.clone(),
                partition: p,
                offset: target,
            })
            .collect();
        let resp = coord
            .offset_commit(&args.group, -1, "", &offsets)
            .map_err(err)?;
        for t in &resp.topics {
            for p in &t.partitions {
                coord
                    .check(
                        &format!("commit {}/{}", t.name.as_str(), p.partition_index),
                        p.error_code,
                        None,
                    )
                    .map_err(err)?;
            }
        }
    }
    let verb = if args.dry_run { "would reset" } else { "reset" };
    Ok(match args.format {
        Format::Json => format!(
            "{}\n",
            json!({
                "group": args.group,
                "topic": args.topic,
                "dry_run": args.dry_run,
                "partitions": plan.iter().map(|(p, cur, new)| json!({"partition": p, "previous": cur, "new": new})).collect::<Vec<_>>(),
            })
        ),
        Format::Text => {
            let mut out = table(
                &["TOPIC", "PARTITION", "PREVIOUS", "NEW"],
                &plan
                    .iter()
                    .map(|(p, cur, new)| {
                        vec![
                            args.topic.clone(),
                            p.to_string(),
                            cur.map_or("-".to_string(), |o| o.to_string()),
                            new.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            out.push_str(&format!(
                "{verb} {} partition(s) of group {}{}\n",
                plan.len(),
                args.group,
                if args.dry_run {
                    " (dry run: nothing committed)"
                } else {
                    ""
                }
            ));
            out
        }
    })
}

fn delete_groups(args: &DeleteArgs) -> CliResult<String> {
    let mut out = String::new();
    for group in &args.groups {
        let mut coord = coordinator(&args.bootstrap_server, group)?;
        let resp = coord.delete_groups(&[group]).map_err(err)?;
        for r in &resp.results {
            coord
                .check(
                    &format!("delete group {}", r.group_id.as_str()),
                    r.error_code,
                    None,
                )
                .map_err(err)?;
        }
        out.push_str(&match args.format {
            Format::Json => format!("{}\n", json!({"group": group, "result": "deleted"})),
            Format::Text => format!("deleted: {group}\n"),
        });
    }
    Ok(out)
}
