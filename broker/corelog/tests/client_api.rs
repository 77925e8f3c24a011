//! `corelog_client`'s typed calls against the real broker binary: version
//! negotiation, topics, configs, produce and fetch, offsets, and a group
//! member's life (join, commit, leave), as the CLI uses them.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::Broker;
use corelog_client::api::{versions, OffsetToCommit, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use corelog_client::member::GroupMember;
use corelog_client::{ClientError, Connection, Options};
use corelog_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use corelog_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use corelog_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use corelog_protocol::kafka_protocol::messages::{ApiKey, TopicName};
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const OPTIONS: Options = Options {
    client_id: "corelog-client-test",
    connect_timeout: Duration::from_secs(5),
    request_timeout: Duration::from_secs(30),
    api_versions_handshake: true,
};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch where offset minus
            // sequence changes, and a Produce takes one batch per partition.
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
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
    .expect("encode a batch");
    buf.freeze()
}

#[test]
fn typed_calls_negotiate_versions_and_do_what_the_cli_needs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let addr = format!("127.0.0.1:{}", broker.port);
    let mut c = Connection::connect(&addr, &OPTIONS).expect("connect");

    // The broker serves every version these calls build, so each goes at
    // the newest of them; without the handshake a connection sends the
    // newest it handles.
    assert_eq!(
        c.negotiate(ApiKey::Fetch, versions::FETCH).unwrap(),
        *versions::FETCH.end()
    );
    assert!(matches!(
        c.negotiate(ApiKey::Fetch, 100..=101),
        Err(ClientError::Unsupported { .. })
    ));

    // Topics.
    let created = c
        .create_topics(
            vec![CreatableTopic::default()
                .with_name(TopicName(s("client-api")))
                .with_num_partitions(2)
                .with_replication_factor(-1)],
            30_000,
            false,
        )
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let md = c.metadata(Some(&["client-api"])).unwrap();
    assert_eq!(md.topics[0].partitions.len(), 2);
    let missing = c.metadata(Some(&["no-such-topic"])).unwrap();
    let e = c
        .check("topic", missing.topics[0].error_code, None)
        .unwrap_err();
    assert!(
        e.to_string().contains("UNKNOWN_TOPIC_OR_PARTITION (3)"),
        "{e}"
    );

    // Configs.
    let altered = c
        .incremental_alter_configs(
            vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("client-api"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("3600000")))])],
            false,
        )
        .unwrap();
    assert_eq!(altered.responses[0].error_code, 0, "{altered:?}");
    let described = c
        .describe_configs(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("client-api"))
            .with_configuration_keys(Some(vec![s("retention.ms")]))])
        .unwrap();
    let cfg = &described.results[0].configs[0];
    assert_eq!(cfg.value.as_deref(), Some("3600000"));

    // Produce a batch, list offsets, fetch it back.
    let produced = c
        .produce("client-api", 1, batch(&["a", "b", "c"]), -1, 30_000)
        .unwrap();
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{produced:?}");
    assert_eq!(c.offset_for("client-api", 1, LATEST_TIMESTAMP).unwrap(), 3);
    assert_eq!(
        c.offset_for("client-api", 1, EARLIEST_TIMESTAMP).unwrap(),
        0
    );
    let fetched = c
        .fetch("client-api", &[(1, 1)], 0, 1 << 20, 1 << 20, 1)
        .unwrap();
    let pd = &fetched.responses[0].partitions[0];
    assert_eq!((pd.error_code, pd.high_watermark), (0, 3));
    let mut records = pd.records.clone().unwrap();
    let values: Vec<Bytes> = RecordBatchDecoder::decode(&mut records)
        .unwrap()
        .records
        .into_iter()
        .filter(|r| r.offset >= 1)
        .filter_map(|r| r.value)
        .collect();
    assert_eq!(values, vec![Bytes::from("b"), Bytes::from("c")]);

    // A group: a member joins and gets every partition, commits, leaves;
    // an admin commit outside a generation moves the offsets of the
    // empty group, which can then be deleted.
    let mut member =
        GroupMember::join(&mut c, &OPTIONS, "client-api-group", "client-api").expect("join");
    assert_eq!(member.assignment(), &[0, 1]);
    assert!(member.generation_id() >= 1);
    member.commit(&[(1, 2)]).unwrap();
    member.heartbeat_if_due().unwrap();
    let committed = member.committed().unwrap();
    assert!(
        committed
            .iter()
            .any(|o| o.partition == 1 && o.offset == 2 && o.error_code == 0),
        "{committed:?}"
    );
    member.leave().unwrap();
    let coordinator = c.find_coordinator("client-api-group").unwrap();
    let mut g = Connection::connect(&coordinator.addr, &OPTIONS).unwrap();
    let described = g.describe_groups(&["client-api-group"]).unwrap();
    assert!(described.groups[0].members.is_empty(), "{described:?}");
    let resp = g
        .offset_commit(
            "client-api-group",
            -1,
            "",
            &[OffsetToCommit {
                topic: "client-api".into(),
                partition: 0,
                offset: 0,
            }],
        )
        .unwrap();
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let committed = g.offset_fetch("client-api-group", None).unwrap();
    assert_eq!(committed.len(), 2, "{committed:?}");
    let listed = g.list_groups().unwrap();
    assert!(listed
        .groups
        .iter()
        .any(|l| l.group_id.as_str() == "client-api-group"));
    let deleted = g.delete_groups(&["client-api-group"]).unwrap();
    assert_eq!(deleted.results[0].error_code, 0);
    let deleted = g.delete_groups(&["client-api-group"]).unwrap();
    let e = g
        .check("delete", deleted.results[0].error_code, None)
        .unwrap_err();
    assert!(e.to_string().contains("GROUP_ID_NOT_FOUND (69)"), "{e}");

    let deleted = c.delete_topics(&["client-api"], 30_000).unwrap();
    assert_eq!(deleted.responses[0].error_code, 0);
}

#[test]
fn an_unreachable_broker_is_an_error_not_a_hang() {
    let port = common::free_port();
    let options = Options {
        connect_timeout: Duration::from_millis(500),
        ..OPTIONS
    };
    match Connection::connect(&format!("127.0.0.1:{port}"), &options) {
        Err(ClientError::Unreachable { addr, .. }) => assert_eq!(addr, format!("127.0.0.1:{port}")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[test]
fn a_second_member_makes_the_first_rejoin_and_the_leader_splits_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let addr = format!("127.0.0.1:{}", broker.port);
    let mut c = Connection::connect(&addr, &OPTIONS).expect("connect");
    let created = c
        .create_topics(
            vec![CreatableTopic::default()
                .with_name(TopicName(s("two-members")))
                .with_num_partitions(4)
                .with_replication_factor(-1)],
            30_000,
            false,
        )
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    let mut first = GroupMember::join(&mut c, &OPTIONS, "two-members-group", "two-members")
        .expect("first join");
    assert_eq!(first.assignment(), &[0, 1, 2, 3]);
    // The second join completes only once the first member has rejoined:
    // it waits in its own thread.
    let second = std::thread::spawn(move || {
        let mut c = Connection::connect(&addr, &OPTIONS).expect("connect");
        GroupMember::join(&mut c, &OPTIONS, "two-members-group", "two-members")
    });
    // The first member learns of the rebalance from its next heartbeat.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match first.heartbeat_if_due() {
            Ok(()) => {}
            Err(e) if corelog_client::member::needs_rejoin(&e) => break,
            Err(e) => panic!("heartbeat: {e}"),
        }
        assert!(std::time::Instant::now() < deadline, "no rebalance seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.rejoin().expect("rejoin");
    let second = second.join().unwrap().expect("second join");
    let mut all: Vec<i32> = first
        .assignment()
        .iter()
        .chain(second.assignment())
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3]);
    assert_eq!(first.assignment().len(), 2, "{:?}", first.assignment());
    assert_eq!(first.generation_id(), second.generation_id());
    second.leave().unwrap();
    first.leave().unwrap();
}
