//! Shared test helpers: fully populated requests for every api and version,
//! and request framing.

#![allow(dead_code)]

pub mod groups;
pub mod populated;
pub mod txns;

use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use corelog_protocol::kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, create_topics_request,
    delete_records_request, delete_topics_request, describe_configs_request,
    describe_log_dirs_request, fetch_request, incremental_alter_configs_request,
    list_offsets_request, metadata_request, offset_for_leader_epoch_request, produce_request,
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeLogDirsRequest, ElectLeadersRequest, FetchRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, ProducerId, RequestHeader, TopicName,
    TransactionalId,
};
use corelog_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use corelog_protocol::{ApiSupport, Request, Response, SUPPORTED_APIS};
use uuid::Uuid;

/// The versions the codec tests cover: the api table ([`SUPPORTED_APIS`]),
/// widened where kafka-protocol 0.18 and the vendored schema
/// (`broker/protocol/schemas/`) go further than the broker advertises
/// ([`CODEC_WIDER`]), so the pre-check is exercised on every version it may
/// be asked to handle. Below kafka-protocol 0.18's lowest version the table
/// already reaches the versions served through kafka-protocol 0.15.1
/// (`corelog_protocol::legacy::LEGACY_APIS`). Derived from the table, so a
/// new api is covered without an entry here.
pub static CODEC_APIS: LazyLock<Vec<ApiSupport>> = LazyLock::new(|| {
    SUPPORTED_APIS
        .iter()
        .map(|entry| {
            CODEC_WIDER
                .iter()
                .find(|wider| wider.api_key == entry.api_key)
                .copied()
                .unwrap_or(*entry)
        })
        .collect()
});

/// Entries of [`CODEC_APIS`] wider than the api table. The generated
/// pre-check covers the versions of the vendored schemas, which stop short of
/// kafka-protocol for Metadata (13), Produce (12, 13), Fetch (18) and
/// DescribeCluster (2); those versions are left out.
const CODEC_WIDER: &[ApiSupport] = &[
    support(ApiKey::Fetch, 0, 17),
    support(ApiKey::ListOffsets, 0, 10),
];

const fn support(api_key: ApiKey, min_version: i16, max_version: i16) -> ApiSupport {
    ApiSupport {
        api_key,
        min_version,
        max_version,
    }
}

/// Every (api, version) pair of a table.
pub fn pairs(table: &[ApiSupport]) -> Vec<(ApiKey, i16)> {
    table
        .iter()
        .flat_map(|s| (s.min_version..=s.max_version).map(move |v| (s.api_key, v)))
        .collect()
}

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

fn topic(value: &'static str) -> TopicName {
    TopicName(s(value))
}

fn id(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

/// An unknown tagged field, attached in flexible versions to check that such
/// fields pass the pre-check and survive decoding.
fn extra_tag() -> (i32, Bytes) {
    (99, Bytes::from_static(b"tag"))
}

/// Record bytes for partition `n`; their content does not matter to the codec.
pub fn records(n: u8) -> Bytes {
    Bytes::from(vec![n; 61 + usize::from(n)])
}

/// A request for `api_key` at `version` with every field that version carries
/// set to a non-default value, so that a decode that drops or misreads a field
/// shows up as a difference.
pub fn build_request(api_key: ApiKey, v: i16) -> Request {
    match api_key {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            if v >= 3 {
                r = r
                    .with_client_software_name(s("corelog-test"))
                    .with_client_software_version(s("1.0.0"))
                    .with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            Request::ApiVersions(r)
        }
        ApiKey::Metadata => {
            let flex = v >= 9;
            let mut t =
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic("orders")));
            if v >= 10 {
                t = t.with_topic_id(id(7));
            }
            if flex {
                t = t.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            let t2 = metadata_request::MetadataRequestTopic::default().with_name(Some(topic("b")));
            let mut r = MetadataRequest::default().with_topics(Some(vec![t, t2]));
            if v >= 4 {
                r = r.with_allow_auto_topic_creation(false);
            }
            if (8..=10).contains(&v) {
                r = r.with_include_cluster_authorized_operations(true);
            }
            if v >= 8 {
                r = r.with_include_topic_authorized_operations(true);
            }
            if flex {
                r = r.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            Request::Metadata(r)
        }
        ApiKey::Produce => Request::Produce(build_produce(v)),
        ApiKey::Fetch => Request::Fetch(build_fetch(v)),
        ApiKey::ListOffsets => {
            let flex = v >= 6;
            let mut p = list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(3)
                .with_timestamp(-2);
            if v >= 4 {
                p = p.with_current_leader_epoch(9);
            }
            if flex {
                p = p.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            let t = list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![p.clone(), p.with_partition_index(4)]);
            let mut r = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![t]);
            if v >= 2 {
                r = r.with_isolation_level(1);
            }
            if v >= 10 {
                r = r.with_timeout_ms(1234);
            }
            Request::ListOffsets(r)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                .with_partition(2)
                .with_current_leader_epoch(7)
                .with_leader_epoch(5);
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![p.clone(), p.with_partition(3)]);
            if v >= 4 {
                t = t.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            let mut r = OffsetForLeaderEpochRequest::default().with_topics(vec![t]);
            if v >= 3 {
                r = r.with_replica_id(BrokerId(-1));
            }
            Request::OffsetForLeaderEpoch(r)
        }
        ApiKey::CreateTopics => {
            let a = create_topics_request::CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2)]);
            let c = create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")));
            let c2 = create_topics_request::CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(None);
            let t = create_topics_request::CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![a])
                .with_configs(vec![c, c2]);
            // v0 has no validate_only.
            Request::CreateTopics(
                CreateTopicsRequest::default()
                    .with_topics(vec![t])
                    .with_timeout_ms(30_000)
                    .with_validate_only(v >= 1),
            )
        }
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default().with_timeout_ms(5000);
            if v >= 6 {
                r = r.with_topics(vec![
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(topic("orders")))
                        .with_topic_id(id(1)),
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(None)
                        .with_topic_id(id(2)),
                ]);
            } else {
                r = r.with_topic_names(vec![topic("orders"), topic("payments")]);
            }
            Request::DeleteTopics(r)
        }
        ApiKey::CreatePartitions => {
            let a = create_partitions_request::CreatePartitionsAssignment::default()
                .with_broker_ids(vec![BrokerId(1)]);
            let t = create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic("orders"))
                .with_count(6)
                .with_assignments(Some(vec![a.clone(), a]));
            let t2 = create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic("b"))
                .with_count(2)
                .with_assignments(None);
            Request::CreatePartitions(
                CreatePartitionsRequest::default()
                    .with_topics(vec![t, t2])
                    .with_timeout_ms(100)
                    .with_validate_only(true),
            )
        }
        ApiKey::DescribeConfigs => {
            let res = describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configuration_keys(Some(vec![s("retention.ms")]));
            let res2 = describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("1"))
                .with_configuration_keys(None);
            let mut r = DescribeConfigsRequest::default().with_resources(vec![res, res2]);
            if v >= 1 {
                r = r.with_include_synonyms(true);
            }
            if v >= 3 {
                r = r.with_include_documentation(true);
            }
            Request::DescribeConfigs(r)
        }
        ApiKey::AlterConfigs => {
            let c = alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("5")));
            let res = alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![c]);
            Request::AlterConfigs(
                AlterConfigsRequest::default()
                    .with_resources(vec![res])
                    .with_validate_only(true),
            )
        }
        ApiKey::IncrementalAlterConfigs => {
            let c = incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(1)
                .with_value(None);
            let res = incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![c]);
            Request::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default()
                    .with_resources(vec![res])
                    .with_validate_only(true),
            )
        }
        ApiKey::DeleteRecords => {
            let p = delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(1)
                .with_offset(42);
            let t = delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![p]);
            Request::DeleteRecords(
                DeleteRecordsRequest::default()
                    .with_topics(vec![t])
                    .with_timeout_ms(77),
            )
        }
        ApiKey::DescribeCluster => {
            let mut r = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(true)
                .with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            if v >= 1 {
                r = r.with_endpoint_type(2);
            }
            if v >= 2 {
                r = r.with_include_fenced_brokers(true);
            }
            Request::DescribeCluster(r)
        }
        ApiKey::DescribeLogDirs => {
            let t = |name, partitions: Vec<i32>| {
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic(name))
                    .with_partitions(partitions)
            };
            let mut r = DescribeLogDirsRequest::default().with_topics(Some(vec![
                t("orders", vec![0, 1, 2]),
                t("payments", vec![]),
                t("audit", vec![7]),
            ]));
            if v >= 2 {
                r = r.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            Request::DescribeLogDirs(r)
        }
        ApiKey::ElectLeaders => {
            let t = |name, partitions: Vec<i32>| {
                corelog_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic(name))
                    .with_partitions(partitions)
            };
            let mut r = ElectLeadersRequest::default()
                .with_topic_partitions(Some(vec![t("orders", vec![0, 1, 2]), t("audit", vec![])]))
                .with_timeout_ms(30_000);
            if v >= 1 {
                r = r.with_election_type(1);
            }
            if v >= 2 {
                r = r.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
            }
            Request::ElectLeaders(r)
        }
        ApiKey::AlterPartitionReassignments => {
            use corelog_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
                ReassignablePartition, ReassignableTopic,
            };
            let p = |i, replicas: Option<Vec<i32>>| {
                ReassignablePartition::default()
                    .with_partition_index(i)
                    .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
            };
            Request::AlterPartitionReassignments(
                corelog_protocol::kafka_protocol::messages::AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![
                        ReassignableTopic::default()
                            .with_name(topic("orders"))
                            .with_partitions(vec![p(0, Some(vec![1, 2, 3])), p(1, None)]),
                        ReassignableTopic::default().with_name(topic("audit")),
                    ])
                    .with_unknown_tagged_field(extra_tag().0, extra_tag().1),
            )
        }
        ApiKey::ListPartitionReassignments => {
            use corelog_protocol::kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
            Request::ListPartitionReassignments(
                corelog_protocol::kafka_protocol::messages::ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(Some(vec![
                        ListPartitionReassignmentsTopics::default()
                            .with_name(topic("orders"))
                            .with_partition_indexes(vec![0, 1, 2]),
                    ]))
                    .with_unknown_tagged_field(extra_tag().0, extra_tag().1),
            )
        }
        ApiKey::DescribeTopicPartitions => {
            use corelog_protocol::kafka_protocol::messages::describe_topic_partitions_request::{
                Cursor, TopicRequest,
            };
            Request::DescribeTopicPartitions(
                corelog_protocol::kafka_protocol::messages::DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![
                        TopicRequest::default().with_name(topic("orders")),
                        TopicRequest::default().with_name(topic("audit")),
                    ])
                    .with_response_partition_limit(100)
                    .with_cursor(Some(
                        Cursor::default()
                            .with_topic_name(topic("orders"))
                            .with_partition_index(3)
                            .with_unknown_tagged_field(extra_tag().0, extra_tag().1),
                    ))
                    .with_unknown_tagged_field(extra_tag().0, extra_tag().1),
            )
        }
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("txn-1"))))
                .with_transaction_timeout_ms(60_000);
            if v >= 3 {
                r = r.with_producer_id(ProducerId(1234)).with_producer_epoch(5);
            }
            Request::InitProducerId(r)
        }
        other if groups::is_group_api(other) => groups::build_group_request(other, v, false),
        other if txns::is_txn_api(other) => txns::build_txn_request(other, v),
        // Any other api (a new table entry needs no builder here): every
        // field of the version populated from the api's request schema.
        other => populated::populated_request(other, v).unwrap_or_else(|| {
            panic!("{other:?} v{v} has no builder and no schema in broker/protocol/schemas/")
        }),
    }
}

/// A produce request with two topics, the first with two partitions.
pub fn build_produce(v: i16) -> ProduceRequest {
    let flex = v >= 9;
    let partition = |n: u8| {
        let mut p = produce_request::PartitionProduceData::default()
            .with_index(i32::from(n))
            .with_records(Some(records(n)));
        if flex {
            p = p.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
        }
        p
    };
    let named = |name: &'static str, parts: Vec<produce_request::PartitionProduceData>| {
        let mut t = produce_request::TopicProduceData::default().with_partition_data(parts);
        if v <= 12 {
            t = t.with_name(topic(name));
        } else {
            t = t.with_topic_id(id(name.len() as u8));
        }
        t
    };
    let mut r = ProduceRequest::default()
        .with_transactional_id((v >= 3).then(|| TransactionalId(s("txn"))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            named("orders", vec![partition(0), partition(1)]),
            named("payments", vec![partition(2)]),
        ]);
    if flex {
        r = r.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
    }
    r
}

fn build_fetch(v: i16) -> FetchRequest {
    let flex = v >= 12;
    let mut p = fetch_request::FetchPartition::default()
        .with_partition(2)
        .with_fetch_offset(100)
        .with_partition_max_bytes(1 << 20);
    if v >= 9 {
        p = p.with_current_leader_epoch(4);
    }
    if v >= 12 {
        p = p.with_last_fetched_epoch(3);
    }
    if v >= 5 {
        p = p.with_log_start_offset(5);
    }
    if v >= 17 {
        p = p.with_replica_directory_id(id(9));
    }
    if v >= 18 {
        p = p.with_high_watermark(99);
    }
    if flex {
        p = p.with_unknown_tagged_field(extra_tag().0, extra_tag().1);
    }
    let mut t =
        fetch_request::FetchTopic::default().with_partitions(vec![p.clone(), p.with_partition(3)]);
    if v <= 12 {
        t = t.with_topic(topic("orders"));
    } else {
        t = t.with_topic_id(id(3));
    }
    let mut r = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_topics(vec![t]);
    if v >= 3 {
        r = r.with_max_bytes(50 << 20);
    }
    if v >= 4 {
        r = r.with_isolation_level(1);
    }
    if v <= 14 {
        r = r.with_replica_id(BrokerId(-1));
    }
    if v >= 15 {
        r = r.with_replica_state(
            fetch_request::ReplicaState::default()
                .with_replica_id(BrokerId(3))
                .with_replica_epoch(7),
        );
    }
    if v >= 7 {
        let mut f = fetch_request::ForgottenTopic::default().with_partitions(vec![1, 2]);
        if v <= 12 {
            f = f.with_topic(topic("old"));
        } else {
            f = f.with_topic_id(id(4));
        }
        r = r
            .with_session_id(11)
            .with_session_epoch(2)
            .with_forgotten_topics_data(vec![f]);
    }
    if v >= 11 {
        r = r.with_rack_id(s("rack-a"));
    }
    if flex {
        r = r
            .with_cluster_id(Some(s("cluster")))
            .with_unknown_tagged_field(extra_tag().0, extra_tag().1);
    }
    r
}

/// Generates [`encode_request`] from the api table, so a new entry needs no
/// arm here.
macro_rules! request_encoders {
    ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// Encodes `request` at `version` into `buf` with kafka-protocol
        /// (0.15.1 for the versions of `LEGACY_APIS`).
        fn encode_request(
            request: &Request,
            buf: &mut BytesMut,
            version: i16,
        ) -> Result<(), String> {
            if let Some(encoded) = encode_legacy_request(request, buf, version) {
                return encoded;
            }
            match request {
                $(Request::$key(r) => r.encode(buf, version).map_err(|e| e.to_string()),)*
                // `Request` is non-exhaustive outside the crate; the
                // pre-check's unit tests include this file inside it, where
                // the arm is unreachable.
                #[allow(unreachable_patterns)]
                other => panic!("no encoder for {other:?}"),
            }
        }
    };
}

corelog_protocol::for_each_api!(request_encoders);

/// Encodes a request of a version in `LEGACY_APIS` with kafka-protocol
/// 0.15.1, as an old client would; `None` for other versions.
fn encode_legacy_request(
    request: &Request,
    buf: &mut BytesMut,
    version: i16,
) -> Option<Result<(), String>> {
    use corelog_protocol::kafka_protocol_legacy::protocol::Encodable as _;
    use corelog_protocol::legacy::{LegacyForm as _, LEGACY_APIS};
    let legacy = LEGACY_APIS
        .iter()
        .any(|e| e.api_key == request.api_key() && e.contains(version));
    if !legacy {
        return None;
    }
    Some(
        match request {
            Request::OffsetCommit(r) => r.to_legacy().encode(buf, version),
            Request::OffsetFetch(r) => r.to_legacy().encode(buf, version),
            Request::DescribeConfigs(r) => r.to_legacy().encode(buf, version),
            Request::CreateTopics(r) => r.to_legacy().encode(buf, version),
            Request::DeleteTopics(r) => r.to_legacy().encode(buf, version),
            Request::ListOffsets(r) => r.to_legacy().encode(buf, version),
            Request::DescribeLogDirs(r) => r.to_legacy().encode(buf, version),
            Request::Produce(r) => r.to_legacy().encode(buf, version),
            Request::Fetch(r) => r.to_legacy().encode(buf, version),
            other => panic!("no legacy encoder for {other:?}"),
        }
        .map_err(|e| e.to_string()),
    )
}

/// Encodes the body of `request` at `version` with kafka-protocol.
pub fn encode_body(request: &Request, version: i16) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_request(request, &mut buf, version)
        .unwrap_or_else(|e| panic!("encoding {:?} v{version}: {e}", request.api_key()));
    buf
}

/// Decodes a response body of a version in `LEGACY_APIS` with
/// kafka-protocol 0.15.1, as an old client would, and converts it to the
/// current types; `None` for other versions.
pub fn decode_legacy_response(api_key: ApiKey, version: i16, buf: &mut Bytes) -> Option<Response> {
    use corelog_protocol::kafka_protocol::messages as current;
    use corelog_protocol::kafka_protocol_legacy::messages as old;
    use corelog_protocol::kafka_protocol_legacy::protocol::Decodable as _;
    use corelog_protocol::legacy::{LegacyForm, LEGACY_APIS};
    let legacy = LEGACY_APIS
        .iter()
        .any(|e| e.api_key == api_key && e.contains(version));
    if !legacy {
        return None;
    }
    macro_rules! decode {
        ($ty:ident) => {
            current::$ty::from_legacy(
                old::$ty::decode(buf, version)
                    .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}")),
            )
        };
    }
    Some(match api_key {
        ApiKey::OffsetCommit => Response::OffsetCommit(decode!(OffsetCommitResponse)),
        ApiKey::OffsetFetch => Response::OffsetFetch(decode!(OffsetFetchResponse)),
        ApiKey::DescribeConfigs => Response::DescribeConfigs(decode!(DescribeConfigsResponse)),
        ApiKey::CreateTopics => Response::CreateTopics(decode!(CreateTopicsResponse)),
        ApiKey::DeleteTopics => Response::DeleteTopics(decode!(DeleteTopicsResponse)),
        ApiKey::ListOffsets => Response::ListOffsets(decode!(ListOffsetsResponse)),
        ApiKey::DescribeLogDirs => Response::DescribeLogDirs(decode!(DescribeLogDirsResponse)),
        ApiKey::Produce => Response::Produce(decode!(ProduceResponse)),
        ApiKey::Fetch => Response::Fetch(decode!(FetchResponse)),
        other => panic!("no legacy decoder for {other:?}"),
    })
}

/// The request header a client would send.
pub fn client_header(api_key: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("test-client")))
}

/// A complete request frame: size prefix, header (in the header version the
/// api and version call for) and body.
pub fn frame_request(header: &RequestHeader, body: &[u8]) -> Vec<u8> {
    let api_key = ApiKey::try_from(header.request_api_key).expect("known api key");
    let header_version = api_key.request_header_version(header.request_api_version);
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, header_version)
        .expect("header encodes");
    payload.extend_from_slice(body);
    let mut out = BytesMut::new();
    out.put_i32(payload.len() as i32);
    out.extend_from_slice(&payload);
    out.to_vec()
}

/// A complete frame for the request built by `build_request`.
pub fn built_frame(api_key: ApiKey, version: i16, correlation_id: i32) -> (Request, Vec<u8>) {
    let request = build_request(api_key, version);
    let body = encode_body(&request, version);
    let frame = frame_request(&client_header(api_key, version, correlation_id), &body);
    (request, frame)
}
