//! Hostile counts in admin requests (issue 24): partition counts, topics
//! and configs per request, replica assignments, repeated Metadata topics.
//! Each bound is tested one step past it: the refusal carries the Kafka
//! error code and a message naming the setting, nothing is created, and
//! the broker still answers afterwards. The counts of 2^31-1 and 10^8 run
//! against the default bounds: before the bounds they grew the broker past
//! 6 GiB or stalled it for more than 20 s, so a test that passes quickly
//! shows that nothing proportional to the count was built.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{s, topic, Client, TestServer};
use corelog_protocol::error_code as ec;
use corelog_protocol::kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use corelog_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use corelog_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use corelog_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use corelog_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use corelog_protocol::kafka_protocol::messages::incremental_alter_configs_request as iac;
use corelog_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use corelog_protocol::kafka_protocol::messages::*;
use corelog_server::ServerConfig;

const TOPIC_RESOURCE: i8 = 2;

/// The broker still serves: ApiVersions and Metadata are answered.
fn assert_healthy(c: &mut Client) {
    let resp: ApiVersionsResponse = c.request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("admin-bounds-test"))
            .with_client_software_version(s("1")),
    );
    assert_eq!(resp.error_code, 0);
    c.metadata();
}

fn creatable(name: &str, partitions: i32) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

/// CreateTopics v7 of `topics`; the answers as (name, code, message).
fn create_topics(
    c: &mut Client,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Vec<(String, i16, String)> {
    let req = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    let resp: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &req);
    resp.topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.error_code,
                t.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// CreatePartitions v3 of (topic, new count); the answers as (code, message).
fn create_partitions(
    c: &mut Client,
    growths: &[(&str, i32)],
    validate_only: bool,
) -> Vec<(i16, String)> {
    let req = CreatePartitionsRequest::default()
        .with_topics(
            growths
                .iter()
                .map(|(name, count)| {
                    CreatePartitionsTopic::default()
                        .with_name(topic(name))
                        .with_count(*count)
                        .with_assignments(None)
                })
                .collect(),
        )
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    let resp: CreatePartitionsResponse = c.request(ApiKey::CreatePartitions, 3, &req);
    assert_eq!(resp.results.len(), growths.len());
    resp.results
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn assert_refused(answer: &(i16, String), code: i16, setting: &str) {
    assert_eq!(answer.0, code, "{answer:?}");
    assert!(
        answer.1.contains(setting),
        "the message names {setting}: {answer:?}"
    );
}

#[test]
fn create_topics_with_2_pow_31_minus_1_partitions_is_refused_without_allocating() {
    let broker = TestServer::start(1);
    let mut c = broker.client();
    for validate_only in [true, false] {
        let started = Instant::now();
        let answers = create_topics(&mut c, vec![creatable("huge", i32::MAX)], validate_only);
        assert_eq!(answers.len(), 1);
        let (_, code, msg) = &answers[0];
        assert_refused(
            &(*code, msg.clone()),
            ec::INVALID_PARTITIONS,
            "partitions_per_topic_max is 10000",
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered at once"
        );
    }
    assert_eq!(c.partition_count("huge"), None);
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn create_partitions_with_a_count_of_2_pow_31_minus_1_or_10_pow_8_is_refused_without_allocating() {
    let broker = TestServer::start(1);
    let mut c = broker.client();
    c.create_topic("grow", 1);
    for count in [i32::MAX, 100_000_000] {
        for validate_only in [true, false] {
            let started = Instant::now();
            let answers = create_partitions(&mut c, &[("grow", count)], validate_only);
            assert_refused(
                &answers[0],
                ec::INVALID_PARTITIONS,
                "partitions_per_topic_max is 10000",
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "answered at once"
            );
        }
    }
    assert_eq!(c.partition_count("grow"), Some(1));
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn a_topic_one_partition_over_partitions_per_topic_max_is_refused() {
    let broker = TestServer::start_with(1, None, |c| c.partitions_per_topic_max = 8);
    let mut c = broker.client();
    let answers = create_topics(&mut c, vec![creatable("t9", 9)], false);
    assert_refused(
        &(answers[0].1, answers[0].2.clone()),
        ec::INVALID_PARTITIONS,
        "partitions_per_topic_max is 8",
    );
    assert_eq!(c.partition_count("t9"), None);
    // At the bound: created; one more by CreatePartitions: refused.
    c.create_topic("t8", 8);
    assert_refused(
        &create_partitions(&mut c, &[("t8", 9)], false)[0],
        ec::INVALID_PARTITIONS,
        "partitions_per_topic_max is 8",
    );
    assert_eq!(c.partition_count("t8"), Some(8));
    // A manual assignment counts like a number.
    let assignments = (0..9)
        .map(|i| {
            CreatableReplicaAssignment::default()
                .with_partition_index(i)
                .with_broker_ids(vec![BrokerId(1)])
        })
        .collect();
    let answers = create_topics(
        &mut c,
        vec![CreatableTopic::default()
            .with_name(topic("t9-assigned"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(assignments)],
        false,
    );
    assert_refused(
        &(answers[0].1, answers[0].2.clone()),
        ec::INVALID_PARTITIONS,
        "partitions_per_topic_max is 8",
    );
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn a_request_adding_more_than_partitions_per_request_max_is_refused_past_the_bound() {
    let broker = TestServer::start_with(1, None, |c| c.partitions_per_request_max = 10);
    let mut c = broker.client();
    // The sum counts, validate-only included: 6 fit, 6 + 5 do not.
    for validate_only in [true, false] {
        let answers = create_topics(
            &mut c,
            vec![creatable("r6", 6), creatable("r5", 5)],
            validate_only,
        );
        assert_eq!(answers[0].1, 0, "{answers:?}");
        assert_refused(
            &(answers[1].1, answers[1].2.clone()),
            ec::INVALID_PARTITIONS,
            "partitions_per_request_max is 10",
        );
    }
    assert_eq!(c.partition_count("r6"), Some(6));
    assert_eq!(c.partition_count("r5"), None);
    c.create_topic("r1", 1);
    let answers = create_partitions(&mut c, &[("r6", 12), ("r1", 6)], false);
    assert_eq!(answers[0].0, 0, "{answers:?}");
    assert_refused(
        &answers[1],
        ec::INVALID_PARTITIONS,
        "partitions_per_request_max is 10",
    );
    assert_eq!(c.partition_count("r6"), Some(12));
    assert_eq!(c.partition_count("r1"), Some(1));
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn partitions_past_partitions_per_broker_max_are_refused() {
    // The offsets and transaction state logs' 2 partitions each count
    // too: 2 + 2 + 10 fill the broker.
    let broker = TestServer::start_with(1, None, |c| {
        c.groups.offsets_topic_partitions = 2;
        c.transactions.state_log_partitions = 2;
        c.partitions_per_broker_max = 14;
    });
    let mut c = broker.client();
    c.create_topic("b10", 10);
    let answers = create_topics(&mut c, vec![creatable("b1", 1)], false);
    assert_refused(
        &(answers[0].1, answers[0].2.clone()),
        ec::INVALID_PARTITIONS,
        "partitions_per_broker_max is 14",
    );
    assert_refused(
        &create_partitions(&mut c, &[("b10", 11)], false)[0],
        ec::INVALID_PARTITIONS,
        "partitions_per_broker_max is 14",
    );
    assert_eq!(c.partition_count("b1"), None);
    assert_eq!(c.partition_count("b10"), Some(10));
    // Room comes back when a topic goes.
    let req = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic("b10")])
        .with_timeout_ms(10_000);
    let resp: DeleteTopicsResponse = c.request(ApiKey::DeleteTopics, 4, &req);
    assert_eq!(resp.responses[0].error_code, 0);
    c.create_topic("b1", 1);
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn partitions_past_partitions_per_shard_max_are_refused() {
    // Two shards of at most 5, each holding one offsets partition and one
    // transaction state partition: room for 6 more.
    let broker = TestServer::start_with(2, None, |c| {
        c.groups.offsets_topic_partitions = 2;
        c.transactions.state_log_partitions = 2;
        c.partitions_per_shard_max = 5;
    });
    let mut c = broker.client();
    let answers = create_topics(&mut c, vec![creatable("s7", 7)], false);
    assert_refused(
        &(answers[0].1, answers[0].2.clone()),
        ec::INVALID_PARTITIONS,
        "partitions_per_shard_max is 5",
    );
    c.create_topic("s6", 6);
    assert_refused(
        &create_partitions(&mut c, &[("s6", 7)], false)[0],
        ec::INVALID_PARTITIONS,
        "partitions_per_shard_max is 5",
    );
    assert_eq!(c.partition_count("s6"), Some(6));
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn requests_naming_more_than_topics_per_request_max_topics_are_refused_whole() {
    let broker = TestServer::start_with(1, None, |c| c.topics_per_request_max = 3);
    let mut c = broker.client();
    let names = ["n0", "n1", "n2", "n3"];
    let setting = "topics_per_request_max is 3";

    // CreateTopics: every entry refused, none created; three are fine.
    let answers = create_topics(
        &mut c,
        names.iter().map(|n| creatable(n, 1)).collect(),
        false,
    );
    assert_eq!(answers.len(), 4);
    for (_, code, msg) in &answers {
        assert_refused(&(*code, msg.clone()), ec::INVALID_REQUEST, setting);
    }
    assert!(c.metadata().topics.is_empty());
    let answers = create_topics(
        &mut c,
        names[..3].iter().map(|n| creatable(n, 1)).collect(),
        false,
    );
    assert!(answers.iter().all(|a| a.1 == 0), "{answers:?}");

    // CreatePartitions.
    let growths: Vec<(&str, i32)> = names.iter().map(|n| (*n, 2)).collect();
    for answer in create_partitions(&mut c, &growths, false) {
        assert_refused(&answer, ec::INVALID_REQUEST, setting);
    }
    assert_eq!(c.partition_count("n0"), Some(1));

    // DeleteTopics, v1 (no messages) and v6.
    let req = DeleteTopicsRequest::default()
        .with_topic_names(names.iter().map(|n| topic(n)).collect())
        .with_timeout_ms(10_000);
    let resp: DeleteTopicsResponse = c.request(ApiKey::DeleteTopics, 1, &req);
    assert_eq!(resp.responses.len(), 4);
    assert!(resp
        .responses
        .iter()
        .all(|r| r.error_code == ec::INVALID_REQUEST));
    let req = DeleteTopicsRequest::default()
        .with_topics(
            names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(topic(n))))
                .collect(),
        )
        .with_timeout_ms(10_000);
    let resp: DeleteTopicsResponse = c.request(ApiKey::DeleteTopics, 6, &req);
    for r in &resp.responses {
        let msg = r.error_message.as_ref().map(|m| m.to_string());
        assert_refused(
            &(r.error_code, msg.unwrap_or_default()),
            ec::INVALID_REQUEST,
            setting,
        );
    }
    assert_eq!(c.partition_count("n0"), Some(1));

    // DescribeConfigs.
    let req = DescribeConfigsRequest::default().with_resources(
        names
            .iter()
            .map(|n| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(n))
            })
            .collect(),
    );
    let resp: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, 4, &req);
    assert_eq!(resp.results.len(), 4);
    for r in &resp.results {
        let msg = r.error_message.as_ref().map(|m| m.to_string());
        assert_refused(
            &(r.error_code, msg.unwrap_or_default()),
            ec::INVALID_REQUEST,
            setting,
        );
        assert!(r.configs.is_empty());
    }

    // AlterConfigs and IncrementalAlterConfigs.
    for answer in alter_configs(&mut c, &names, &[("retention.ms", "1000")]) {
        assert_refused(&answer, ec::INVALID_REQUEST, setting);
    }
    for answer in incremental_alter_configs(&mut c, &names, &[("retention.ms", "1000")]) {
        assert_refused(&answer, ec::INVALID_REQUEST, setting);
    }
    assert_healthy(&mut c);
    broker.stop();
}

fn alter_configs(c: &mut Client, names: &[&str], configs: &[(&str, &str)]) -> Vec<(i16, String)> {
    let req = AlterConfigsRequest::default().with_resources(
        names
            .iter()
            .map(|n| {
                AlterConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(n))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                AlterableConfig::default()
                                    .with_name(s(k))
                                    .with_value(Some(s(v)))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let resp: AlterConfigsResponse = c.request(ApiKey::AlterConfigs, 2, &req);
    assert_eq!(resp.responses.len(), names.len());
    resp.responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn incremental_alter_configs(
    c: &mut Client,
    names: &[&str],
    configs: &[(&str, &str)],
) -> Vec<(i16, String)> {
    let req = IncrementalAlterConfigsRequest::default().with_resources(
        names
            .iter()
            .map(|n| {
                iac::AlterConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(n))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                iac::AlterableConfig::default()
                                    .with_name(s(k))
                                    .with_config_operation(0)
                                    .with_value(Some(s(v)))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let resp: IncrementalAlterConfigsResponse = c.request(ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(resp.responses.len(), names.len());
    resp.responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn requests_carrying_more_than_configs_per_request_max_configs_are_refused_whole() {
    let broker = TestServer::start_with(1, None, |c| c.configs_per_request_max = 2);
    let mut c = broker.client();
    let setting = "configs_per_request_max is 2";
    let three = [
        ("retention.ms", "1000"),
        ("segment.ms", "60000"),
        ("retention.bytes", "1048576"),
    ];
    let with_configs = |name: &str, configs: &[(&str, &str)]| {
        creatable(name, 1).with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
    };
    // Two topics of two configs each: four in the request.
    let answers = create_topics(
        &mut c,
        vec![
            with_configs("c0", &three[..2]),
            with_configs("c1", &three[1..]),
        ],
        false,
    );
    for (_, code, msg) in &answers {
        assert_refused(&(*code, msg.clone()), ec::INVALID_REQUEST, setting);
    }
    assert!(c.metadata().topics.is_empty());
    let answers = create_topics(&mut c, vec![with_configs("c0", &three[..2])], false);
    assert_eq!(answers[0].1, 0, "{answers:?}");
    for answer in alter_configs(&mut c, &["c0"], &three) {
        assert_refused(&answer, ec::INVALID_REQUEST, setting);
    }
    for answer in incremental_alter_configs(&mut c, &["c0"], &three) {
        assert_refused(&answer, ec::INVALID_REQUEST, setting);
    }
    // Nothing was applied: the two configs of the creation stand.
    assert_eq!(alter_configs(&mut c, &["c0"], &three[..2])[0].0, 0);
    assert_healthy(&mut c);
    broker.stop();
}

#[test]
fn create_topics_with_a_replica_assignment_naming_other_brokers_or_gaps_is_refused() {
    let broker = TestServer::start(1);
    let mut c = broker.client();
    let assigned = |name: &str, assignments: &[(i32, &[i32])]| {
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                assignments
                    .iter()
                    .map(|(i, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(*i)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
    };
    let bad: [&[(i32, &[i32])]; 4] = [
        &[(0, &[2])],
        &[(0, &[1, 1])],
        &[(0, &[1]), (2, &[1])],
        &[(0, &[1]), (0, &[1])],
    ];
    for (i, assignments) in bad.iter().enumerate() {
        let name = format!("bad{i}");
        let answers = create_topics(&mut c, vec![assigned(&name, assignments)], false);
        assert_eq!(
            answers[0].1,
            ec::INVALID_REPLICA_ASSIGNMENT,
            "{assignments:?}: {answers:?}"
        );
        assert_eq!(c.partition_count(&name), None);
    }
    let answers = create_topics(
        &mut c,
        vec![assigned("good", &[(1, &[1]), (0, &[1])])],
        false,
    );
    assert_eq!(answers[0].1, 0, "{answers:?}");
    assert_eq!(c.partition_count("good"), Some(2));
    broker.stop();
}

#[test]
fn metadata_naming_a_topic_many_times_answers_it_once() {
    let broker = TestServer::start(1);
    let mut c = broker.client();
    c.create_topic("wide", 100);
    let id = c
        .metadata()
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("wide"))
        .map(|t| t.topic_id)
        .expect("wide in metadata");
    // 20,000 mentions of a 100-partition topic would be two million
    // partition entries if each were answered.
    let mut topics: Vec<MetadataRequestTopic> = (0..10_000)
        .map(|_| MetadataRequestTopic::default().with_name(Some(topic("wide"))))
        .collect();
    topics.extend((0..10_000).map(|_| {
        MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(id)
    }));
    let resp: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(topics)),
    );
    assert_eq!(resp.topics.len(), 2, "once by name, once by id");
    assert!(resp.topics.iter().all(|t| t.partitions.len() == 100));
    assert_healthy(&mut c);
    broker.stop();
}

/// Creating thousands of partitions must not stop the shard from serving
/// its other connections: opening them yields to the executor. One shard,
/// so the creating connection, the controller and the watching connection
/// share it. A liveness check, not a timing one: every ApiVersions round
/// trip is answered within 10 s while the creation runs.
#[test]
fn creating_2000_partitions_leaves_other_connections_answered() {
    let broker = TestServer::start(1);
    let mut watcher = broker.client();
    assert_healthy(&mut watcher);
    let port = broker.port();
    let creating = Arc::new(AtomicBool::new(true));
    let creator = std::thread::spawn({
        let creating = creating.clone();
        move || {
            let mut c = Client::connect(port);
            let answers = create_topics(&mut c, vec![creatable("wide", 2_000)], false);
            creating.store(false, Ordering::SeqCst);
            answers
        }
    });
    let mut slowest = Duration::ZERO;
    let mut during = 0;
    while creating.load(Ordering::SeqCst) {
        let started = Instant::now();
        let resp: ApiVersionsResponse = watcher.request(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(s("admin-bounds-watcher"))
                .with_client_software_version(s("1")),
        );
        assert_eq!(resp.error_code, 0);
        slowest = slowest.max(started.elapsed());
        assert!(
            slowest < Duration::from_secs(10),
            "an ApiVersions round trip took {slowest:?} while partitions were created"
        );
        if creating.load(Ordering::SeqCst) {
            during += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let answers = creator.join().expect("creator thread");
    assert_eq!(answers[0].1, 0, "{answers:?}");
    assert_eq!(watcher.partition_count("wide"), Some(2_000));
    eprintln!("{during} ApiVersions answered during the creation, slowest {slowest:?}");
    assert!(
        during > 0,
        "the creation ran while the watcher was answered"
    );
    broker.stop();
}

#[test]
fn bound_settings_are_validated_naming_the_setting() {
    let bad = |configure: &dyn Fn(&mut ServerConfig), setting: &str| {
        let mut c = ServerConfig::default();
        configure(&mut c);
        let e = c.validate().unwrap_err();
        assert!(e.starts_with(setting), "{e}");
    };
    bad(
        &|c| c.partitions_per_topic_max = 0,
        "partitions_per_topic_max",
    );
    bad(
        &|c| c.partitions_per_request_max = u32::MAX,
        "partitions_per_request_max",
    );
    bad(
        &|c| c.partitions_per_shard_max = 0,
        "partitions_per_shard_max",
    );
    bad(
        &|c| c.partitions_per_broker_max = 50,
        "partitions_per_broker_max",
    );
    bad(&|c| c.topics_per_request_max = 0, "topics_per_request_max");
    bad(
        &|c| c.configs_per_request_max = 0,
        "configs_per_request_max",
    );
    bad(
        &|c| {
            c.partitions_per_topic_max = 4;
            c.default_partitions = 5;
        },
        "default_partitions",
    );
    ServerConfig::default().validate().unwrap();
}
