//! DescribeConfigs: a topic's configs (its overrides and the broker
//! defaults for the rest), and the broker's own settings, read-only.

use corelog_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use corelog_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

use super::Close;
use super::{Handled, RequestContext};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::metadata::{describe_value, validate_topic_name, TopicMeta, TOPIC_CONFIG_KEYS};
use crate::NODE_ID;

/// Kafka's `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes.
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// Kafka's `ConfigType` codes (DescribeConfigs v3+).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// A topic config's type, the broker setting that supplies its default
/// (Kafka's synonym) and its documentation.
fn topic_key_info(key: &str) -> (i8, Option<&'static str>, &'static str) {
    match key {
        "cleanup.policy" => (
            TYPE_LIST,
            Some("log.cleanup.policy"),
            "What removes old data: \"delete\" (retention by time and size), \"compact\" (the log cleaner keeps the latest record of each key), or both.",
        ),
        "delete.retention.ms" => (
            TYPE_LONG,
            Some("log.cleaner.delete.retention.ms"),
            "How long a tombstone stays in a compacted log after the cleaner first passed it.",
        ),
        "max.compaction.lag.ms" => (
            TYPE_LONG,
            Some("log.cleaner.max.compaction.lag.ms"),
            "The longest a record may stay uncompacted, whatever the dirty ratio.",
        ),
        "min.cleanable.dirty.ratio" => (
            TYPE_DOUBLE,
            Some("log.cleaner.min.cleanable.ratio"),
            "The share of a compacted log not yet cleaned at which the cleaner cleans it.",
        ),
        "min.compaction.lag.ms" => (
            TYPE_LONG,
            Some("log.cleaner.min.compaction.lag.ms"),
            "The shortest time a record stays uncompacted after it was written.",
        ),
        "compression.type" => (
            TYPE_STRING,
            Some("compression.type"),
            "Batches are stored as the producer sent them; only \"producer\" is supported.",
        ),
        "flush.policy" => (
            TYPE_STRING,
            None,
            "Corelog: \"always\" to fdatasync every write before acknowledging it, or a number of milliseconds between fdatasyncs.",
        ),
        "max.message.bytes" => (
            TYPE_INT,
            Some("message.max.bytes"),
            "The largest record batch size allowed.",
        ),
        "min.insync.replicas" => (
            TYPE_INT,
            Some("min.insync.replicas"),
            "The minimum number of in-sync replicas for acks=all.",
        ),
        "retention.bytes" => (
            TYPE_LONG,
            Some("log.retention.bytes"),
            "The size a partition may grow to before old segments are deleted; -1 for no limit.",
        ),
        "retention.ms" => (
            TYPE_LONG,
            Some("log.retention.ms"),
            "How long a segment is kept before it is deleted; -1 for no time limit.",
        ),
        "segment.bytes" => (TYPE_INT, Some("log.segment.bytes"), "The segment file size."),
        "segment.ms" => (
            TYPE_LONG,
            Some("log.roll.ms"),
            "The time after which a segment is rolled even if it is not full.",
        ),
        _ => (0, None, ""),
    }
}

/// One broker-level setting: name, value, type, whether it has the built-in
/// default value, documentation.
struct BrokerEntry {
    name: &'static str,
    value: String,
    config_type: i8,
    is_default: bool,
    doc: &'static str,
}

/// The broker settings this broker reports, with Kafka's names.
fn broker_entries(c: &ServerConfig) -> Vec<BrokerEntry> {
    let d = ServerConfig::default();
    let (t, dt) = (&c.topic_defaults, &d.topic_defaults);
    let (host, port) = c.advertised();
    let e = |name, value: String, default: String, config_type, doc| BrokerEntry {
        name,
        is_default: value == default,
        value,
        config_type,
        doc,
    };
    vec![
        e(
            "advertised.listeners",
            format!("PLAINTEXT://{host}:{port}"),
            String::new(),
            TYPE_STRING,
            "The listener clients are told to connect to.",
        ),
        e(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            d.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
            "Whether producing to or asking metadata for an unknown topic creates it.",
        ),
        e(
            "broker.id",
            NODE_ID.to_string(),
            NODE_ID.to_string(),
            TYPE_INT,
            "The id of this broker.",
        ),
        e(
            "compression.type",
            "producer".into(),
            "producer".into(),
            TYPE_STRING,
            "Batches are stored as the producer sent them.",
        ),
        e(
            "default.replication.factor",
            "1".into(),
            "1".into(),
            TYPE_INT,
            "The replication factor of topics created without one.",
        ),
        e(
            "listeners",
            format!("PLAINTEXT://{}", c.listen),
            format!("PLAINTEXT://{}", d.listen),
            TYPE_STRING,
            "The address the broker listens on.",
        ),
        e(
            "log.cleaner.backoff.ms",
            c.log_cleaner.backoff_ms.to_string(),
            d.log_cleaner.backoff_ms.to_string(),
            TYPE_LONG,
            "How long a shard's cleaner sleeps when no compacted partition needed a pass.",
        ),
        e(
            "log.cleaner.dedupe.buffer.size",
            c.log_cleaner.offset_map_bytes_per_shard.to_string(),
            d.log_cleaner.offset_map_bytes_per_shard.to_string(),
            TYPE_LONG,
            "Corelog: per shard. The memory of a cleaning pass's key map.",
        ),
        e(
            "log.cleaner.delete.retention.ms",
            t.delete_retention_ms.to_string(),
            dt.delete_retention_ms.to_string(),
            TYPE_LONG,
            "The default delete.retention.ms of topics.",
        ),
        e(
            "log.cleaner.enable",
            c.log_cleaner.enable.to_string(),
            d.log_cleaner.enable.to_string(),
            TYPE_BOOLEAN,
            "Whether compacted topics are cleaned.",
        ),
        e(
            "log.cleaner.io.max.bytes.per.second",
            c.log_cleaner
                .io_max_bytes_per_second
                .map_or(f64::MAX.to_string(), |b| b.to_string()),
            f64::MAX.to_string(),
            TYPE_DOUBLE,
            "Corelog: per shard. The bytes a cleaner reads and writes per second at most.",
        ),
        e(
            "log.cleaner.max.compaction.lag.ms",
            t.max_compaction_lag_ms.to_string(),
            dt.max_compaction_lag_ms.to_string(),
            TYPE_LONG,
            "The default max.compaction.lag.ms of topics.",
        ),
        e(
            "log.cleaner.min.cleanable.ratio",
            t.min_cleanable_dirty_ratio.to_string(),
            dt.min_cleanable_dirty_ratio.to_string(),
            TYPE_DOUBLE,
            "The default min.cleanable.dirty.ratio of topics.",
        ),
        e(
            "log.cleaner.min.compaction.lag.ms",
            t.min_compaction_lag_ms.to_string(),
            dt.min_compaction_lag_ms.to_string(),
            TYPE_LONG,
            "The default min.compaction.lag.ms of topics.",
        ),
        e(
            "log.cleanup.policy",
            t.cleanup_policy.clone(),
            dt.cleanup_policy.clone(),
            TYPE_LIST,
            "The default cleanup policy of topics.",
        ),
        e(
            "log.dirs",
            c.data_dir.display().to_string(),
            d.data_dir.display().to_string(),
            TYPE_STRING,
            "The directory holding the partitions and the cluster metadata.",
        ),
        e(
            "log.retention.bytes",
            t.retention_bytes.to_string(),
            dt.retention_bytes.to_string(),
            TYPE_LONG,
            "The default retention.bytes of topics.",
        ),
        e(
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            d.log_retention_check_interval_ms.to_string(),
            TYPE_LONG,
            "How often each shard lets its partitions delete segments that retention made deletable.",
        ),
        e(
            "log.retention.ms",
            t.retention_ms.to_string(),
            dt.retention_ms.to_string(),
            TYPE_LONG,
            "The default retention.ms of topics.",
        ),
        e(
            "log.roll.ms",
            t.segment_ms.to_string(),
            dt.segment_ms.to_string(),
            TYPE_LONG,
            "The default segment.ms of topics.",
        ),
        e(
            "log.segment.bytes",
            t.segment_bytes.to_string(),
            dt.segment_bytes.to_string(),
            TYPE_INT,
            "The default segment.bytes of topics.",
        ),
        e(
            "message.max.bytes",
            t.max_message_bytes.to_string(),
            dt.max_message_bytes.to_string(),
            TYPE_INT,
            "The default max.message.bytes of topics.",
        ),
        e(
            "min.insync.replicas",
            "1".into(),
            "1".into(),
            TYPE_INT,
            "The default min.insync.replicas of topics.",
        ),
        e(
            "node.id",
            NODE_ID.to_string(),
            NODE_ID.to_string(),
            TYPE_INT,
            "The id of this node.",
        ),
        e(
            "num.partitions",
            c.default_partitions.to_string(),
            d.default_partitions.to_string(),
            TYPE_INT,
            "The partition count of topics created without one.",
        ),
        e(
            "socket.request.max.bytes",
            c.request_bytes_max.to_string(),
            d.request_bytes_max.to_string(),
            TYPE_INT,
            "The largest request accepted.",
        ),
    ]
}

/// The value of a broker setting, by Kafka name, and whether it is the
/// built-in default.
fn broker_value(c: &ServerConfig, name: &str) -> Option<(String, bool)> {
    broker_entries(c)
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| (e.value, e.is_default))
}

pub async fn handle(
    cx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> Result<Handled<DescribeConfigsResponse>, Close> {
    let RequestContext { shard, header, .. } = *cx;
    let md = shard.metadata();
    let config = &shard.config();
    let v3 = header.api_version >= 3;
    let synonyms = request.include_synonyms;
    let docs = v3 && request.include_documentation;
    // A resource is a few bytes on the wire and its answer up to nine
    // configs with their documentation: refused whole past the bound.
    let refused = config.refuse_topics(request.resources.len());
    let results = request
        .resources
        .iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |key: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let name = r.resource_name.as_str();
            let fail = |e: &ServerError| {
                result
                    .clone()
                    .with_error_code(e.code())
                    .with_error_message(e.message_field())
            };
            if let Some(e) = &refused {
                return fail(e);
            }
            match r.resource_type {
                RESOURCE_TOPIC => {
                    if let Err(e) = validate_topic_name(name) {
                        return fail(&e);
                    }
                    let Some(topic) = md.topics.get(name) else {
                        return fail(&ServerError::UnknownTopicOrPartition(format!(
                            "Topic '{name}' does not exist."
                        )));
                    };
                    let configs = TOPIC_CONFIG_KEYS
                        .iter()
                        .filter(|k| wanted(k))
                        .filter_map(|k| topic_entry(config, topic, k, v3, synonyms, docs))
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    if !crate::endpoints::names_own_broker(config, shard.shard_count(), name) {
                        return fail(&ServerError::InvalidRequest(format!(
                            "Unexpected broker id, expected {NODE_ID} or empty string, but received {name}"
                        )));
                    }
                    let configs = broker_entries(config)
                        .into_iter()
                        .filter(|e| wanted(e.name))
                        .map(|e| {
                            let source = if e.is_default {
                                SOURCE_DEFAULT_CONFIG
                            } else {
                                SOURCE_STATIC_BROKER_CONFIG
                            };
                            let value = StrBytes::from_string(e.value);
                            let mut entry = DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(e.name))
                                .with_value(Some(value.clone()))
                                .with_read_only(true)
                                .with_config_source(source)
                                .with_is_sensitive(false);
                            if synonyms {
                                entry = entry.with_synonyms(vec![DescribeConfigsSynonym::default()
                                    .with_name(StrBytes::from_static_str(e.name))
                                    .with_value(Some(value))
                                    .with_source(source)]);
                            }
                            if v3 {
                                entry = entry.with_config_type(e.config_type);
                                if docs {
                                    entry = entry
                                        .with_documentation(Some(StrBytes::from_static_str(e.doc)));
                                }
                            }
                            entry
                        })
                        .collect();
                    result.with_configs(configs)
                }
                other => fail(&ServerError::InvalidRequest(format!(
                    "Unsupported resource type {other}; this broker describes topics (2) and brokers (4)."
                ))),
            }
        })
        .collect();
    Ok(DescribeConfigsResponse::default()
        .with_results(results)
        .into())
}

/// One topic config entry: its value, where it comes from and, if asked,
/// its synonyms (the override, then the broker default) and documentation.
fn topic_entry(
    config: &ServerConfig,
    topic: &TopicMeta,
    key: &'static str,
    v3: bool,
    synonyms: bool,
    docs: bool,
) -> Option<DescribeConfigsResourceResult> {
    let (value, is_default) = describe_value(config, topic, key)?;
    let (config_type, broker_key, doc) = topic_key_info(key);
    // The default comes from a broker setting (Kafka's synonym), which the
    // config file may have set.
    let empty = TopicMeta {
        id: String::new(),
        partitions: Vec::new(),
        configs: Default::default(),
    };
    let (default_name, default_value, default_source) =
        match broker_key.and_then(|b| Some((b, broker_value(config, b)?))) {
            Some((b, (v, true))) => (b, v, SOURCE_DEFAULT_CONFIG),
            Some((b, (v, false))) => (b, v, SOURCE_STATIC_BROKER_CONFIG),
            None => (
                key,
                describe_value(config, &empty, key).map_or_else(String::new, |(v, _)| v),
                SOURCE_DEFAULT_CONFIG,
            ),
        };
    let source = if is_default {
        default_source
    } else {
        SOURCE_TOPIC_CONFIG
    };
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(key))
        .with_value(Some(StrBytes::from_string(value.clone())))
        .with_read_only(false)
        .with_config_source(source)
        .with_is_sensitive(false);
    if synonyms {
        let mut list = Vec::new();
        if !is_default {
            list.push(
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(SOURCE_TOPIC_CONFIG),
            );
        }
        list.push(
            DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_static_str(default_name))
                .with_value(Some(StrBytes::from_string(default_value)))
                .with_source(default_source),
        );
        entry = entry.with_synonyms(list);
    }
    if v3 {
        entry = entry.with_config_type(config_type);
        if docs {
            entry = entry.with_documentation(Some(StrBytes::from_static_str(doc)));
        }
    }
    Some(entry)
}
