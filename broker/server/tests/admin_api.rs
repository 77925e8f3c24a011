//! Admin APIs against an in-process broker of 2 shards (`common::TestServer`):
//! DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs, DeleteRecords and DescribeCluster, each at its
//! lowest and highest version, with the error codes Kafka answers, and a
//! follow-up Metadata request to show the broker still serves. Restarts are
//! clean stops (what SIGTERM does to the binary) and starts on the same data
//! directory.

mod common;

use bytes::BytesMut;
use common::{partition_dir_exists, s, topic, Client, TestServer};
use corelog_protocol::error_code as ec;
use corelog_protocol::kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use corelog_protocol::kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use corelog_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use corelog_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use corelog_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use corelog_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use corelog_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use corelog_protocol::kafka_protocol::messages::incremental_alter_configs_request as iac;
use corelog_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use corelog_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use corelog_protocol::kafka_protocol::messages::*;
use corelog_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use corelog_protocol::ResponseError;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("corelog-admin-")
        .tempdir()
        .expect("temp dir")
}

fn topic_id(client: &mut Client, name: &str) -> uuid::Uuid {
    client
        .metadata()
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
        .map(|t| t.topic_id)
        .expect("topic in metadata")
}

// ---------------------------------------------------------------- DeleteTopics

fn delete_by_name(client: &mut Client, version: i16, names: &[&str]) -> DeleteTopicsResponse {
    let req = if version >= 6 {
        DeleteTopicsRequest::default().with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic(n))))
                .collect(),
        )
    } else {
        DeleteTopicsRequest::default().with_topic_names(names.iter().map(|n| topic(n)).collect())
    };
    client.request(ApiKey::DeleteTopics, version, &req.with_timeout_ms(10_000))
}

#[test]
fn delete_topics_removes_metadata_and_directories() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    for (name, parts) in [("dt-a", 2), ("dt-b", 1), ("dt-c", 3), ("dt-d", 1)] {
        c.create_topic(name, parts);
    }
    assert!(partition_dir_exists(dir.path(), "dt-a", 0));
    assert!(partition_dir_exists(dir.path(), "dt-a", 1));

    // v1: by name; an unknown topic fails alone.
    let resp = delete_by_name(&mut c, 1, &["dt-a", "no-such-topic"]);
    assert_eq!(resp.responses.len(), 2);
    assert_eq!(resp.responses[0].name, Some(topic("dt-a")));
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[1].name, Some(topic("no-such-topic")));
    assert_eq!(resp.responses[1].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(!partition_dir_exists(dir.path(), "dt-a", 0));
    assert!(!partition_dir_exists(dir.path(), "dt-a", 1));
    assert_eq!(c.partition_count("dt-a"), None);

    // v5 carries error messages.
    let resp = delete_by_name(&mut c, 5, &["dt-a"]);
    assert_eq!(resp.responses[0].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(resp.responses[0].error_message.is_some());

    // v6 by id: the answer names the topic.
    let id_c = topic_id(&mut c, "dt-c");
    assert!(!id_c.is_nil());
    let unknown = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let req = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(id_c),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(unknown),
            DeleteTopicState::default()
                .with_name(Some(topic("dt-b")))
                .with_topic_id(id_c),
        ])
        .with_timeout_ms(10_000);
    let resp: DeleteTopicsResponse = c.request(ApiKey::DeleteTopics, 6, &req);
    assert_eq!(resp.responses.len(), 3);
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].name, Some(topic("dt-c")));
    assert_eq!(resp.responses[0].topic_id, id_c);
    assert_eq!(resp.responses[1].error_code, ec::UNKNOWN_TOPIC_ID);
    assert_eq!(resp.responses[1].topic_id, unknown);
    assert_eq!(resp.responses[2].error_code, ec::INVALID_REQUEST);
    for p in 0..3 {
        assert!(!partition_dir_exists(dir.path(), "dt-c", p));
    }
    // dt-b was not deleted by the invalid entry.
    assert_eq!(c.partition_count("dt-b"), Some(1));

    // v6 by name returns the id.
    let id_d = topic_id(&mut c, "dt-d");
    let resp = delete_by_name(&mut c, 6, &["dt-d", "no-such-topic"]);
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].topic_id, id_d);
    assert_eq!(resp.responses[1].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(!partition_dir_exists(dir.path(), "dt-d", 0));

    // The name can be used again, and the broker still serves.
    c.create_topic("dt-a", 1);
    assert!(partition_dir_exists(dir.path(), "dt-a", 0));
    let names: Vec<String> = c
        .metadata()
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec!["dt-a".to_string(), "dt-b".to_string()]);
    broker.stop();
}

// ----------------------------------------------------------- CreatePartitions

fn create_partitions(
    c: &mut Client,
    version: i16,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic(name))
            .with_count(count)
            .with_assignments(assignments.map(|a| {
                a.into_iter()
                    .map(|b| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(b.into_iter().map(BrokerId).collect())
                    })
                    .collect()
            }))])
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    let resp: CreatePartitionsResponse = c.request(ApiKey::CreatePartitions, version, &req);
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].name, topic(name));
    (
        resp.results[0].error_code,
        resp.results[0]
            .error_message
            .as_ref()
            .map(|m| m.to_string()),
    )
}

#[test]
fn create_partitions_adds_partitions_and_checks_requests() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("cp", 1);

    // v0: 1 -> 3.
    assert_eq!(create_partitions(&mut c, 0, "cp", 3, None, false).0, 0);
    assert_eq!(c.partition_count("cp"), Some(3));
    for p in 0..3 {
        assert!(partition_dir_exists(dir.path(), "cp", p), "cp-{p}");
    }
    // Fewer or as many: INVALID_PARTITIONS, at both ends of the range.
    for v in [0, 3] {
        let (code, msg) = create_partitions(&mut c, v, "cp", 2, None, false);
        assert_eq!(code, ec::INVALID_PARTITIONS);
        assert!(msg.is_some());
        assert_eq!(
            create_partitions(&mut c, v, "cp", 3, None, false).0,
            ec::INVALID_PARTITIONS
        );
        assert_eq!(
            create_partitions(&mut c, v, "no-such", 5, None, false).0,
            ec::UNKNOWN_TOPIC_OR_PARTITION
        );
    }
    // validate_only changes nothing.
    assert_eq!(create_partitions(&mut c, 3, "cp", 5, None, true).0, 0);
    assert_eq!(c.partition_count("cp"), Some(3));
    assert!(!partition_dir_exists(dir.path(), "cp", 3));
    // Assignments: only broker 1, one replica, one entry per new partition.
    for bad in [vec![vec![2]], vec![vec![1, 1]], vec![vec![1], vec![1]]] {
        for v in [0, 3] {
            assert_eq!(
                create_partitions(&mut c, v, "cp", 4, Some(bad.clone()), false).0,
                ec::INVALID_REPLICA_ASSIGNMENT,
                "{bad:?}"
            );
        }
    }
    assert_eq!(c.partition_count("cp"), Some(3));
    assert_eq!(
        create_partitions(&mut c, 3, "cp", 5, Some(vec![vec![1], vec![1]]), false).0,
        0
    );
    assert_eq!(c.partition_count("cp"), Some(5));
    assert!(partition_dir_exists(dir.path(), "cp", 4));

    // New partitions take writes.
    let (code, base) = produce(&mut c, "cp", 4, 3);
    assert_eq!((code, base), (0, 0));
    broker.stop();
}

// ------------------------------------------------------------ DescribeConfigs

fn create_topic_with_configs(c: &mut Client, name: &str, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(10_000);
    let resp: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

fn describe(
    c: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
    synonyms: bool,
) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(
                keys.map(|k| k.iter().map(|k| s(k)).collect()),
            )])
        .with_include_synonyms(synonyms)
        .with_include_documentation(version >= 3);
    let mut resp: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, version, &req);
    assert_eq!(resp.results.len(), 1);
    let r = resp.results.remove(0);
    assert_eq!(r.resource_type, resource_type);
    assert_eq!(r.resource_name.as_str(), name);
    r
}

fn entry<'a>(r: &'a DescribeConfigsResult, key: &str) -> &'a DescribeConfigsResourceResult {
    r.configs
        .iter()
        .find(|e| e.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"))
}

fn value(r: &DescribeConfigsResult, key: &str) -> (String, i8) {
    let e = entry(r, key);
    (
        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.config_source,
    )
}

const TOPIC_KEYS: [&str; 13] = [
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "flush.policy",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

#[test]
fn describe_configs_topics_and_broker() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    create_topic_with_configs(&mut c, "dc", &[("retention.ms", "1000")]);

    for v in [1, 4] {
        let r = describe(&mut c, v, TOPIC, "dc", None, false);
        assert_eq!(r.error_code, 0);
        let names: Vec<&str> = r.configs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, TOPIC_KEYS);
        assert_eq!(
            value(&r, "retention.ms"),
            ("1000".into(), SOURCE_TOPIC_CONFIG)
        );
        assert_eq!(
            value(&r, "segment.bytes"),
            ((1u64 << 30).to_string(), SOURCE_DEFAULT_CONFIG)
        );
        assert_eq!(value(&r, "cleanup.policy").0, "delete");
        for e in &r.configs {
            assert!(!e.read_only && !e.is_sensitive, "{:?}", e.name);
            assert!(e.synonyms.is_empty());
        }
        // Only the requested keys; unknown ones are left out.
        let r = describe(
            &mut c,
            v,
            TOPIC,
            "dc",
            Some(&["retention.ms", "no.such.key"]),
            true,
        );
        assert_eq!(r.configs.len(), 1);
        let e = entry(&r, "retention.ms");
        let syn: Vec<(String, i8)> = e
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect();
        assert_eq!(
            syn,
            vec![
                ("retention.ms".to_string(), SOURCE_TOPIC_CONFIG),
                ("log.retention.ms".to_string(), SOURCE_DEFAULT_CONFIG)
            ]
        );
        if v >= 3 {
            assert_eq!(e.config_type, 5, "LONG");
            assert!(e.documentation.is_some());
        }
        // Unknown topic: the error is that resource's.
        let r = describe(&mut c, v, TOPIC, "no-such-topic", None, false);
        assert_eq!(r.error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
        assert!(r.configs.is_empty());

        // The broker, by id or with the empty name: read-only settings.
        for name in ["1", ""] {
            let r = describe(&mut c, v, BROKER, name, None, v == 4);
            assert_eq!(r.error_code, 0);
            for key in [
                "log.retention.ms",
                "log.segment.bytes",
                "num.partitions",
                "auto.create.topics.enable",
                "message.max.bytes",
            ] {
                let e = entry(&r, key);
                assert!(e.read_only, "{key}");
                assert!(e.value.is_some(), "{key}");
            }
            assert_eq!(
                value(&r, "num.partitions"),
                ("1".into(), SOURCE_DEFAULT_CONFIG)
            );
            assert_eq!(value(&r, "auto.create.topics.enable").0, "false");
        }
        let r = describe(&mut c, v, BROKER, "1", Some(&["log.retention.ms"]), false);
        assert_eq!(r.configs.len(), 1);
        let r = describe(&mut c, v, BROKER, "7", None, false);
        assert_eq!(r.error_code, ec::INVALID_REQUEST);
    }
    // Several resources in one request, answered in order.
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s("no-such-topic"))
            .with_configuration_keys(None),
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s("dc"))
            .with_configuration_keys(None),
    ]);
    let resp: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, 2, &req);
    assert_eq!(resp.results[0].error_code, ec::UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(resp.results[1].error_code, 0);
    assert_eq!(resp.results[1].configs.len(), TOPIC_KEYS.len());
    assert_eq!(c.partition_count("dc"), Some(1));
    broker.stop();
}

// --------------------------------------------------------------- AlterConfigs

fn alter(
    c: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let req = AlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
        .with_validate_only(validate_only);
    let resp: AlterConfigsResponse = c.request(ApiKey::AlterConfigs, version, &req);
    assert_eq!(resp.responses.len(), 1);
    let r = &resp.responses[0];
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (resource_type, name)
    );
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn alter_configs_replaces_the_override_set() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    create_topic_with_configs(&mut c, "ac", &[("retention.ms", "1000")]);

    // v0: the new set replaces the old: retention.ms goes back to its default.
    assert_eq!(
        alter(&mut c, 0, TOPIC, "ac", &[("segment.ms", "60000")], false).0,
        0
    );
    let r = describe(&mut c, 1, TOPIC, "ac", None, false);
    assert_eq!(
        value(&r, "segment.ms"),
        ("60000".into(), SOURCE_TOPIC_CONFIG)
    );
    assert_eq!(value(&r, "retention.ms").1, SOURCE_DEFAULT_CONFIG);

    // v2 validate_only: accepted, nothing changes.
    assert_eq!(
        alter(&mut c, 2, TOPIC, "ac", &[("retention.ms", "5")], true).0,
        0
    );
    let r = describe(&mut c, 4, TOPIC, "ac", None, false);
    assert_eq!(value(&r, "retention.ms").1, SOURCE_DEFAULT_CONFIG);
    assert_eq!(value(&r, "segment.ms").0, "60000");

    for v in [0, 2] {
        for bad in [
            &[("retention.ms", "abc")][..],
            &[("no.such.config", "1")][..],
            &[("cleanup.policy", "shred")][..],
        ] {
            let (code, msg) = alter(&mut c, v, TOPIC, "ac", bad, false);
            assert_eq!(code, ec::INVALID_CONFIG, "{bad:?}");
            assert!(msg.is_some_and(|m| !m.is_empty()));
        }
        assert_eq!(
            alter(
                &mut c,
                v,
                TOPIC,
                "no-such-topic",
                &[("retention.ms", "1")],
                false
            )
            .0,
            ec::UNKNOWN_TOPIC_OR_PARTITION
        );
        let (code, msg) = alter(&mut c, v, BROKER, "1", &[("log.retention.ms", "1")], false);
        assert_eq!(code, ec::INVALID_REQUEST);
        assert!(msg.is_some());
    }
    // A failed request left the last good set in place.
    let r = describe(&mut c, 1, TOPIC, "ac", None, false);
    assert_eq!(
        value(&r, "segment.ms"),
        ("60000".into(), SOURCE_TOPIC_CONFIG)
    );
    assert_eq!(
        value(&r, "cleanup.policy"),
        ("delete".into(), SOURCE_DEFAULT_CONFIG)
    );

    // An empty set removes every override.
    assert_eq!(alter(&mut c, 1, TOPIC, "ac", &[], false).0, 0);
    let r = describe(&mut c, 1, TOPIC, "ac", None, false);
    assert!(r
        .configs
        .iter()
        .all(|e| e.config_source == SOURCE_DEFAULT_CONFIG));
    assert_eq!(c.partition_count("ac"), Some(1));
    broker.stop();
}

// ---------------------------------------------------- IncrementalAlterConfigs

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn incremental(
    c: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![iac::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        iac::AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            )])
        .with_validate_only(validate_only);
    let resp: IncrementalAlterConfigsResponse =
        c.request(ApiKey::IncrementalAlterConfigs, version, &req);
    assert_eq!(resp.responses.len(), 1);
    let r = &resp.responses[0];
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (resource_type, name)
    );
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn incremental_alter_configs_and_restart() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("iac", 2);

    let ops = [
        ("retention.ms", SET, Some("3600000")),
        ("max.message.bytes", SET, Some("2000")),
    ];
    assert_eq!(incremental(&mut c, 0, TOPIC, "iac", &ops, false).0, 0);
    let r = describe(&mut c, 4, TOPIC, "iac", None, false);
    assert_eq!(
        value(&r, "retention.ms"),
        ("3600000".into(), SOURCE_TOPIC_CONFIG)
    );
    assert_eq!(
        value(&r, "max.message.bytes"),
        ("2000".into(), SOURCE_TOPIC_CONFIG)
    );
    // The new max.message.bytes applies to produce at once.
    let (code, _) = produce_sized(&mut c, "iac", 0, 1, 4000);
    assert_eq!(code, ec::MESSAGE_TOO_LARGE);

    // v1: DELETE returns a key to its default; other overrides stay.
    let ops = [("max.message.bytes", DELETE, None)];
    assert_eq!(incremental(&mut c, 1, TOPIC, "iac", &ops, false).0, 0);
    let r = describe(&mut c, 1, TOPIC, "iac", None, false);
    assert_eq!(value(&r, "max.message.bytes").1, SOURCE_DEFAULT_CONFIG);
    assert_eq!(value(&r, "retention.ms").0, "3600000");
    let (code, _) = produce_sized(&mut c, "iac", 0, 1, 4000);
    assert_eq!(code, 0);

    for v in [0, 1] {
        // APPEND/SUBTRACT only on list configs; a cleanup.policy must stay a list of "delete" and "compact".
        for ops in [
            [("retention.ms", APPEND, Some("5"))],
            [("retention.bytes", SUBTRACT, Some("5"))],
            [("cleanup.policy", APPEND, Some("shred"))],
            [("cleanup.policy", SUBTRACT, Some("delete"))],
            [("retention.ms", SET, Some("soon"))],
            [("no.such.config", SET, Some("1"))],
        ] {
            let (code, msg) = incremental(&mut c, v, TOPIC, "iac", &ops, false);
            assert_eq!(code, ec::INVALID_CONFIG, "{ops:?}");
            assert!(msg.is_some());
        }
        let ops = [("cleanup.policy", APPEND, Some("delete"))];
        assert_eq!(incremental(&mut c, v, TOPIC, "iac", &ops, false).0, 0);
        let ops = [("retention.ms", SET, Some("1"))];
        assert_eq!(
            incremental(&mut c, v, TOPIC, "no-such-topic", &ops, false).0,
            ec::UNKNOWN_TOPIC_OR_PARTITION
        );
        let ops = [("log.retention.ms", SET, Some("1"))];
        assert_eq!(
            incremental(&mut c, v, BROKER, "1", &ops, false).0,
            ec::INVALID_REQUEST
        );
        let ops = [("retention.ms", 9, Some("1"))];
        assert_eq!(
            incremental(&mut c, v, TOPIC, "iac", &ops, false).0,
            ec::INVALID_REQUEST
        );
        // validate_only: accepted, not applied.
        let ops = [("segment.ms", SET, Some("1000"))];
        assert_eq!(incremental(&mut c, v, TOPIC, "iac", &ops, true).0, 0);
        let r = describe(&mut c, 1, TOPIC, "iac", Some(&["segment.ms"]), false);
        assert_eq!(value(&r, "segment.ms").1, SOURCE_DEFAULT_CONFIG);
    }
    let r = describe(&mut c, 1, TOPIC, "iac", None, false);
    assert_eq!(
        value(&r, "cleanup.policy"),
        ("delete".into(), SOURCE_TOPIC_CONFIG)
    );
    assert_eq!(
        value(&r, "retention.ms"),
        ("3600000".into(), SOURCE_TOPIC_CONFIG)
    );
    assert_eq!(c.partition_count("iac"), Some(2));
    drop(c);

    // The overrides survive a restart.
    broker.stop();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    let r = describe(&mut c, 4, TOPIC, "iac", None, true);
    assert_eq!(
        value(&r, "retention.ms"),
        ("3600000".into(), SOURCE_TOPIC_CONFIG)
    );
    assert_eq!(value(&r, "max.message.bytes").1, SOURCE_DEFAULT_CONFIG);
    assert_eq!(c.partition_count("iac"), Some(2));
    broker.stop();
}

// -------------------------------------------------------------- DeleteRecords

fn batch(records: usize, value_bytes: usize) -> bytes::Bytes {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch where offset - sequence changes;
            // this keeps one batch with base sequence -1 (no producer id).
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(vec![b'x'; value_bytes].into()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

fn produce(c: &mut Client, name: &str, partition: i32, records: usize) -> (i16, i64) {
    produce_sized(c, name, partition, records, 10)
}

/// Produce v9, acks=-1: (error code, base offset).
fn produce_sized(
    c: &mut Client,
    name: &str,
    partition: i32,
    records: usize,
    value_bytes: usize,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(records, value_bytes)))])]);
    let resp: ProduceResponse = c.request(ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// ListOffsets EARLIEST. Right after a start, a shard other than the one
/// that printed "corelog ready" may still be opening its partitions and
/// answer UNKNOWN_TOPIC_OR_PARTITION, which clients retry; so does this.
fn earliest(c: &mut Client, name: &str, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-2)])]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 6, &req);
        let p = &resp.topics[0].partitions[0];
        if p.error_code == ec::UNKNOWN_TOPIC_OR_PARTITION && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        assert_eq!(p.error_code, 0);
        return p.offset;
    }
}

fn delete_records(
    c: &mut Client,
    version: i16,
    name: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])])
        .with_timeout_ms(10_000);
    let resp: DeleteRecordsResponse = c.request(ApiKey::DeleteRecords, version, &req);
    assert_eq!(resp.topics[0].name, topic(name));
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.partition_index, partition);
    (p.error_code, p.low_watermark)
}

#[test]
fn delete_records_moves_log_start_durably() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("dr", 2);
    assert_eq!(produce(&mut c, "dr", 0, 5), (0, 0));
    assert_eq!(produce(&mut c, "dr", 0, 5), (0, 5));
    assert_eq!(produce(&mut c, "dr", 1, 4), (0, 0));

    // v0: up to offset 3.
    assert_eq!(delete_records(&mut c, 0, "dr", 0, 3), (0, 3));
    assert_eq!(earliest(&mut c, "dr", 0), 3);
    // Below the log start: nothing moves.
    assert_eq!(delete_records(&mut c, 0, "dr", 0, 1), (0, 3));
    for v in [0, 2] {
        assert_eq!(
            delete_records(&mut c, v, "dr", 0, 11),
            (ec::OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(
            delete_records(&mut c, v, "dr", 0, -7),
            (ec::OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(
            delete_records(&mut c, v, "no-such-topic", 0, 1),
            (ec::UNKNOWN_TOPIC_OR_PARTITION, -1)
        );
        assert_eq!(
            delete_records(&mut c, v, "dr", 7, 1),
            (ec::UNKNOWN_TOPIC_OR_PARTITION, -1)
        );
    }
    // v2: -1 means the high watermark.
    assert_eq!(delete_records(&mut c, 2, "dr", 0, -1), (0, 10));
    assert_eq!(earliest(&mut c, "dr", 0), 10);
    assert_eq!(delete_records(&mut c, 2, "dr", 1, 2), (0, 2));
    // Producing continues after the new log start.
    assert_eq!(produce(&mut c, "dr", 0, 1), (0, 10));
    assert_eq!(c.partition_count("dr"), Some(2));
    drop(c);

    // The log start survives a clean restart.
    broker.stop();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    assert_eq!(earliest(&mut c, "dr", 0), 10);
    assert_eq!(earliest(&mut c, "dr", 1), 2);
    broker.stop();
}

// ------------------------------------------------------------ DescribeCluster

#[test]
fn describe_cluster_and_api_versions() {
    let dir = data_dir();
    let broker = TestServer::start_in(dir.path(), 2);
    let mut c = broker.client();
    let cluster_id = c.metadata().cluster_id.expect("cluster id").to_string();

    for v in [0, 1] {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(v == 1);
        let resp: DescribeClusterResponse = c.request(ApiKey::DescribeCluster, v, &req);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.cluster_id.as_str(), cluster_id);
        assert_eq!(resp.controller_id, BrokerId(1));
        assert_eq!(resp.brokers.len(), 1);
        let b = &resp.brokers[0];
        assert_eq!(b.broker_id, BrokerId(1));
        assert_eq!(b.host.as_str(), "127.0.0.1");
        assert_eq!(b.port, broker.port() as i32);
        assert_eq!(resp.endpoint_type, 1);
        if v == 1 {
            assert!(resp.cluster_authorized_operations > 0);
        } else {
            assert_eq!(resp.cluster_authorized_operations, i32::MIN);
        }
    }
    // Controllers are not described by a broker.
    let req = DescribeClusterRequest::default().with_endpoint_type(2);
    let resp: DescribeClusterResponse = c.request(ApiKey::DescribeCluster, 1, &req);
    assert_eq!(
        resp.error_code,
        ResponseError::UnsupportedEndpointType.code()
    );

    // ApiVersions advertises the admin APIs with their ranges.
    let resp: ApiVersionsResponse = c.request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("admin-api-test"))
            .with_client_software_version(s("1")),
    );
    assert_eq!(resp.error_code, 0);
    for (key, min, max) in [
        (ApiKey::CreateTopics, 0, 7),
        (ApiKey::DeleteTopics, 0, 6),
        (ApiKey::CreatePartitions, 0, 3),
        (ApiKey::DescribeConfigs, 0, 4),
        (ApiKey::AlterConfigs, 0, 2),
        (ApiKey::IncrementalAlterConfigs, 0, 1),
        (ApiKey::DeleteRecords, 0, 2),
        (ApiKey::DescribeCluster, 0, 1),
    ] {
        let a = resp
            .api_keys
            .iter()
            .find(|a| a.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} not advertised"));
        assert_eq!((a.min_version, a.max_version), (min, max), "{key:?}");
    }
    assert!(c.metadata().topics.is_empty());
    broker.stop();
}
