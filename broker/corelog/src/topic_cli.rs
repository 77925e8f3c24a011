//! `corelog topic list|describe|create|delete|alter-config|add-partitions`:
//! topic administration over the public Kafka protocol, like Kafka's
//! `kafka-topics.sh` and `kafka-configs.sh` or `rpk topic`, against any
//! Kafka-compatible broker.
//!
//! Each command is one or two requests (Metadata, CreateTopics,
//! DeleteTopics, CreatePartitions, DescribeConfigs, IncrementalAlterConfigs,
//! ListOffsets) sent to the bootstrap broker, except that `describe` asks
//! each partition's leader for its offsets. Output is a table for people,
//! or JSON (`--format json`) for scripts; an error names Kafka's error code
//! and the broker's message, on stderr, with exit code 1.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{BrokerId, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use corelog_client::api::READ_UNCOMMITTED;
use corelog_client::{ClientError, Connection, Options};

use crate::group_cli::DEFAULT_BOOTSTRAP;

/// The connections of the topic, produce and consume commands: named as
/// the CLI in broker logs, and with room for a broker that takes its time
/// to create or delete many partitions.
pub const CONNECTION: Options = Options {
    client_id: "corelog-cli",
    connect_timeout: Duration::from_millis(5_000),
    request_timeout: Duration::from_millis(30_000),
    api_versions_handshake: true,
};

/// Kafka's `ConfigResource.Type` of a topic.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// Kafka's `ConfigSource` of a topic's own override.
const SOURCE_TOPIC_CONFIG: i8 = 1;
/// IncrementalAlterConfigs operations.
pub(crate) const OP_SET: i8 = 0;
pub(crate) const OP_DELETE: i8 = 1;
/// How long the broker may take to create or delete topics before it
/// answers (the request's timeout_ms).
const ADMIN_TIMEOUT_MS: i32 = 30_000;
/// ListOffsets timestamps: the earliest and the latest offset.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Text,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Args)]
pub struct TopicArgs {
    /// A broker to bootstrap from, host:port.
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// List topics: NAME, PARTITIONS, REPLICAS (internal topics with --internal).
    List {
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions (leader, replicas, ISR, low and high
    /// watermarks) and the configs set on it.
    Describe { topic: String },
    /// Create a topic.
    Create {
        topic: String,
        /// Partitions [default: the broker's default].
        #[arg(short = 'p', long)]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's default].
        #[arg(short = 'r', long)]
        replicas: Option<i16>,
        /// A topic config, key=value; repeat for more.
        #[arg(short = 'c', long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set or remove topic configs.
    AlterConfig {
        topic: String,
        /// A config to set, key=value; repeat for more.
        #[arg(long = "set", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// A config to remove (back to the broker default); repeat for more.
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Raise a topic's partition count.
    AddPartitions {
        topic: String,
        /// The new total number of partitions.
        #[arg(long)]
        count: i32,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    if k.is_empty() {
        return Err(format!("empty key in {s:?}"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// What went wrong, said once on stderr.
type CliResult<T> = Result<T, String>;

/// Kafka's name of an error code (`TOPIC_ALREADY_EXISTS`), with the code.
pub fn code_name(code: i16) -> String {
    format!("{} ({code})", corelog_client::errors::error_name(code))
}

/// `what: NAME (code): message; advice`, or Ok for code 0.
pub fn check(what: &str, code: i16, message: Option<&StrBytes>) -> CliResult<()> {
    if code == 0 {
        return Ok(());
    }
    Err(format!(
        "{what}: {}",
        corelog_client::errors::describe_error(code, message.map(|m| m.as_str()))
    ))
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn connect(bootstrap: &str) -> CliResult<Connection> {
    Connection::connect(bootstrap, &CONNECTION).map_err(|e| format!("{bootstrap}: {e}"))
}

/// A client error as the CLI says it: which call failed, and why.
fn failed(call: &str) -> impl Fn(ClientError) -> String + '_ {
    move |e| format!("{call}: {e}")
}

/// Runs one `corelog topic` subcommand.
pub fn run(args: TopicArgs) -> ExitCode {
    let bootstrap = args.bootstrap_server.as_str();
    let result = match args.command {
        TopicCommand::List { internal } => list(bootstrap, internal, args.format),
        TopicCommand::Describe { topic } => describe(bootstrap, &topic, args.format),
        TopicCommand::Create {
            topic,
            partitions,
            replicas,
            configs,
        } => create(bootstrap, &topic, partitions, replicas, &configs)
            .map(|()| done(args.format, "created", &topic)),
        TopicCommand::Delete { topics } => delete(bootstrap, &topics).map(|()| {
            topics
                .iter()
                .map(|t| done(args.format, "deleted", t))
                .collect()
        }),
        TopicCommand::AlterConfig { topic, set, delete } => {
            alter_config(bootstrap, &topic, &set, &delete)
                .map(|()| done(args.format, "altered", &topic))
        }
        TopicCommand::AddPartitions { topic, count } => add_partitions(bootstrap, &topic, count)
            .map(|()| done(args.format, "partitions added", &topic)),
    };
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

fn done(format: Format, what: &str, topic: &str) -> String {
    match format {
        Format::Text => format!("{what}: {topic}\n"),
        Format::Json => format!("{}\n", json!({ "topic": topic, "result": what })),
    }
}

/// Aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn metadata(c: &mut Connection, topics: Option<&[&str]>) -> CliResult<MetadataResponse> {
    c.metadata(topics).map_err(failed("Metadata"))
}

fn list(bootstrap: &str, internal: bool, format: Format) -> CliResult<String> {
    let mut c = connect(bootstrap)?;
    let md = metadata(&mut c, None)?;
    let mut rows: Vec<(String, usize, usize, bool)> = md
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.partitions.len(),
                t.partitions.first().map_or(0, |p| p.replica_nodes.len()),
                t.is_internal,
            )
        })
        .collect();
    rows.sort();
    Ok(match format {
        Format::Text => table(
            &["NAME", "PARTITIONS", "REPLICAS"],
            &rows
                .iter()
                .map(|(n, p, r, _)| vec![n.clone(), p.to_string(), r.to_string()])
                .collect::<Vec<_>>(),
        ),
        Format::Json => format!(
            "{}\n",
            json!(rows
                .iter()
                .map(
                    |(n, p, r, i)| json!({"name": n, "partitions": p, "replicas": r, "internal": i})
                )
                .collect::<Vec<_>>())
        ),
    })
}

/// One partition as `describe` shows it.
struct PartitionRow {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    low: Option<i64>,
    high: Option<i64>,
}

fn describe(bootstrap: &str, topic: &str, format: Format) -> CliResult<String> {
    let mut c = connect(bootstrap)?;
    let md = metadata(&mut c, Some(&[topic]))?;
    let t = md
        .topics
        .first()
        .ok_or_else(|| format!("topic {topic}: the broker answered nothing"))?;
    check(&format!("topic {topic}"), t.error_code, None)?;
    let mut partitions: Vec<PartitionRow> = t
        .partitions
        .iter()
        .map(|p| PartitionRow {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            low: None,
            high: None,
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    // Offsets come from each partition's leader.
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &partitions {
        by_leader.entry(p.leader).or_default().push(p.partition);
    }
    for (leader, indexes) in by_leader {
        let Some(broker) = md.brokers.iter().find(|b| b.node_id == BrokerId(leader)) else {
            continue;
        };
        let addr = format!("{}:{}", broker.host, broker.port);
        let Ok(mut lc) = Connection::connect(&addr, &CONNECTION) else {
            continue;
        };
        for (timestamp, low) in [(EARLIEST, true), (LATEST, false)] {
            let pairs: Vec<(i32, i64)> = indexes.iter().map(|&i| (i, timestamp)).collect();
            let Ok(resp) = lc.list_offsets(topic, &pairs, READ_UNCOMMITTED) else {
                continue;
            };
            for answer in resp.topics.iter().flat_map(|t| &t.partitions) {
                if answer.error_code != 0 {
                    continue;
                }
                if let Some(row) = partitions
                    .iter_mut()
                    .find(|r| r.partition == answer.partition_index)
                {
                    if low {
                        row.low = Some(answer.offset);
                    } else {
                        row.high = Some(answer.offset);
                    }
                }
            }
        }
    }
    let configs = topic_overrides(&mut c, topic)?;
    let offset = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
    let nodes = |n: &[i32]| n.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    Ok(match format {
        Format::Text => {
            let mut out = format!("topic {topic}: {} partition(s)\n", partitions.len());
            if !configs.is_empty() {
                out.push_str("configs:");
                for (k, v) in &configs {
                    out.push_str(&format!(" {k}={v}"));
                }
                out.push('\n');
            }
            out.push('\n');
            out.push_str(&table(
                &["PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH"],
                &partitions
                    .iter()
                    .map(|p| {
                        vec![
                            p.partition.to_string(),
                            p.leader.to_string(),
                            nodes(&p.replicas),
                            nodes(&p.isr),
                            offset(p.low),
                            offset(p.high),
                        ]
                    })
                    .collect::<Vec<_>>(),
            ));
            out
        }
        Format::Json => format!(
            "{}\n",
            json!({
                "name": topic,
                "configs": configs,
                "partitions": partitions.iter().map(|p| json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "low_watermark": p.low,
                    "high_watermark": p.high,
                })).collect::<Vec<_>>(),
            })
        ),
    })
}

/// The configs set on the topic itself (not the broker's defaults).
fn topic_overrides(c: &mut Connection, topic: &str) -> CliResult<BTreeMap<String, String>> {
    let resp = c
        .describe_configs(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)])
        .map_err(failed("DescribeConfigs"))?;
    let mut out = BTreeMap::new();
    for r in &resp.results {
        check(
            &format!("configs of {topic}"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
        for cfg in r
            .configs
            .iter()
            .filter(|c| c.config_source == SOURCE_TOPIC_CONFIG)
        {
            out.insert(
                cfg.name.to_string(),
                cfg.value
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

fn create(
    bootstrap: &str,
    topic: &str,
    partitions: Option<i32>,
    replicas: Option<i16>,
    configs: &[(String, String)],
) -> CliResult<()> {
    let mut c = connect(bootstrap)?;
    let topics = vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions.unwrap_or(-1))
        .with_replication_factor(replicas.unwrap_or(-1))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect(),
        )];
    let resp = c
        .create_topics(topics, ADMIN_TIMEOUT_MS, false)
        .map_err(failed("CreateTopics"))?;
    for t in &resp.topics {
        check(
            &format!("create {topic}"),
            t.error_code,
            t.error_message.as_ref(),
        )?;
    }
    Ok(())
}

fn delete(bootstrap: &str, topics: &[String]) -> CliResult<()> {
    let mut c = connect(bootstrap)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let resp = c
        .delete_topics(&names, ADMIN_TIMEOUT_MS)
        .map_err(failed("DeleteTopics"))?;
    for r in &resp.responses {
        let t = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        check(
            &format!("delete {t}"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

fn alter_config(
    bootstrap: &str,
    topic: &str,
    set: &[(String, String)],
    delete: &[String],
) -> CliResult<()> {
    if set.is_empty() && delete.is_empty() {
        return Err("alter-config: nothing to do (give --set key=value or --delete key)".into());
    }
    let mut c = connect(bootstrap)?;
    let configs = set
        .iter()
        .map(|(k, v)| (k, Some(v), OP_SET))
        .chain(delete.iter().map(|k| (k, None, OP_DELETE)))
        .map(|(k, v, op)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(op)
                .with_value(v.map(|v| StrBytes::from_string(v.clone())))
        })
        .collect();
    let resp = c
        .incremental_alter_configs(
            vec![AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(configs)],
            false,
        )
        .map_err(failed("IncrementalAlterConfigs"))?;
    for r in &resp.responses {
        check(
            &format!("alter configs of {topic}"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

fn add_partitions(bootstrap: &str, topic: &str, count: i32) -> CliResult<()> {
    let mut c = connect(bootstrap)?;
    let resp = c
        .create_partitions(topic, count, ADMIN_TIMEOUT_MS)
        .map_err(failed("CreatePartitions"))?;
    for r in &resp.results {
        check(
            &format!("add partitions to {topic}"),
            r.error_code,
            r.error_message.as_ref(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_named_as_kafka_names_them() {
        assert_eq!(code_name(36), "TOPIC_ALREADY_EXISTS (36)");
        assert_eq!(code_name(3), "UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert_eq!(code_name(-12345), "ERROR_CODE_-12345 (-12345)");
    }

    #[test]
    fn key_values_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_key_value("retention.ms=1000"),
            Ok(("retention.ms".into(), "1000".into()))
        );
        assert_eq!(
            parse_key_value("cleanup.policy=compact,delete"),
            Ok(("cleanup.policy".into(), "compact,delete".into()))
        );
        assert!(parse_key_value("retention.ms").is_err());
        assert!(parse_key_value("=1").is_err());
    }

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["NAME", "N"],
            &[
                vec!["a".into(), "1".into()],
                vec!["long-name".into(), "22".into()],
            ],
        );
        assert_eq!(t, "NAME       N\na          1\nlong-name  22\n");
    }
}
