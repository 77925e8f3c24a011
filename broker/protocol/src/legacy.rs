//! Versions older than the codec: requests and responses of versions
//! kafka-protocol 0.18 no longer has (Kafka 4.0 removed them, KIP-896), which
//! older clients still send (issue 21).
//!
//! They are decoded and encoded with kafka-protocol 0.15.1, the newest
//! release that still has them (the dependency `kafka-protocol-legacy`), and
//! converted here, in one place, to the current types and back, so that the
//! rest of the broker, the handlers included, sees only kafka-protocol 0.18's
//! structs. [`LEGACY_APIS`] lists the versions served this way; for each api
//! they end just below the lowest version kafka-protocol 0.18 has, which a
//! compile-time check holds, as it holds that kafka-protocol 0.15.1 has them.
//!
//! Requests go through the same structural pre-check as every other version
//! (the vendored schemas cover them) before 0.15.1 decodes them, because it
//! preallocates arrays from lengths on the wire just as 0.18 does.
//!
//! A conversion keeps the fields the legacy version carries and nothing
//! else; fields of newer versions keep their defaults. Strings are copied
//! (group ids, topic names, metadata: these requests carry no records).
//! One field has no place in the current types and is dropped: OffsetCommit
//! v1's per-partition `commit_timestamp`. Kafka 2.1 and later (KIP-211)
//! expire a group's offsets by the time the group became empty, not by the
//! commit time, and so does Corelog's coordinator, so the field has no
//! effect; Kafka used it only as the commit time of an offset committed
//! while no group was ever empty.
//!
//! Semantics of the old versions, as the handlers serve them:
//! - OffsetCommit v0 carries no generation or member id: the request converts
//!   to generation -1 and member "", Kafka's "simple" commit (accepted for a
//!   group without members, refused for an active one), the same as v2+ with
//!   those values. Kafka up to 3.x stored v0 commits in ZooKeeper, apart from
//!   the offsets v1+ store in Kafka; Corelog has one store.
//! - OffsetCommit v1 adds generation and member id (checked as in v2+) and
//!   the commit timestamp (above). Its response is v2's.
//! - OffsetFetch v0 is v1 on the wire; Kafka read v0 from ZooKeeper, Corelog
//!   from its one store.
//! - DescribeConfigs v0 has `is_default` where v1 has `config_source`: true
//!   when the source is DEFAULT_CONFIG, as Kafka 2.x wrote it; synonyms and
//!   documentation do not exist in v0 (the request converts with
//!   `include_synonyms` and `include_documentation` false).
//! - CreateTopics v0 is v2 without `validate_only` (false) and without
//!   per-topic error messages in the answer; v1 adds both. Neither has the
//!   throttle time. Like v2 and v3, they carry a partition count and a
//!   replication factor or explicit assignments (the -1 defaults of v4,
//!   KIP-464, are handled as for every version).
//! - DeleteTopics v0 is v1 without the throttle time in the answer.
//! - ListOffsets v0 asks for up to `max_num_offsets` offsets "before" a
//!   time and answers a list (`old_style_offsets`). Corelog answers it with
//!   v1's lookup and at most one offset: -1 (latest) gives the high
//!   watermark, -2 (earliest) the log start offset, a time the first offset
//!   whose timestamp is at or after it; no offset found gives an empty
//!   list. Kafka 2.x answered -1 and -2 the same way for the count of 1
//!   that clients send, but a time with the base offsets of the segments
//!   last modified before it, a per-segment granularity that v1 replaced
//!   (KIP-79). `max_num_offsets` is not kept: a count of 0 still gets the
//!   one offset.
//! - DescribeLogDirs v0 is v1 on the wire (v1 changed only when the
//!   throttle applies).
//! - Produce v0-2 carry message sets of format v0 or v1 (magic 0 or 1),
//!   not record batches; the records move over as they are (a slice of
//!   the frame, not a copy) and the handler converts them
//!   (`corelog_storage::legacy`). v1 adds the throttle time to the answer,
//!   v2 the log append time. There is no transactional id before v3.
//! - Fetch v0-3 are answered with message sets (magic 0 for v0-1, magic 1
//!   for v2-3), which the handler converts the records to; the response
//!   carries only partition index, error code, high watermark and records
//!   (v1 adds the throttle time). Only v3 has a response `max_bytes`; the
//!   request converts with `isolation_level` 0 (read_uncommitted, what
//!   these versions read) and no leader epochs.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{self as current, ApiKey};
use kafka_protocol::protocol::{Message, StrBytes};
use kafka_protocol_legacy::messages as old;
use kafka_protocol_legacy::protocol::{Decodable as _, Encodable as _, Message as OldMessage};

use crate::api::ApiSupport;
use crate::request::Request;
use crate::response::Response;

/// Kafka's ConfigSource id DEFAULT_CONFIG (DescribeConfigs v1+).
const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// A kafka-protocol 0.18 type that has a kafka-protocol 0.15.1 counterpart
/// for the versions in [`LEGACY_APIS`].
pub trait LegacyForm: Sized {
    /// The kafka-protocol 0.15.1 type.
    type Legacy;
    /// The current form of a legacy value (its legacy versions' fields).
    fn from_legacy(legacy: Self::Legacy) -> Self;
    /// The legacy form of `self`, keeping the fields the legacy versions
    /// carry.
    fn to_legacy(&self) -> Self::Legacy;
}

/// Generates [`LEGACY_APIS`], its compile-time checks and the decode and
/// encode dispatch from one list.
macro_rules! legacy_apis {
    ($($key:ident: $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// The api versions served through kafka-protocol 0.15.1: below the
        /// lowest version kafka-protocol 0.18 has, down to the lowest the
        /// broker serves. The api table's ranges reach down into these.
        pub const LEGACY_APIS: &[ApiSupport] = &[$(
            {
                const ENTRY: ApiSupport = ApiSupport {
                    api_key: ApiKey::$key,
                    min_version: $min,
                    max_version: $max,
                };
                const _: () = {
                    // 0.15.1 has the versions, both ways.
                    assert!(<old::$request as OldMessage>::VERSIONS.min <= ENTRY.min_version);
                    assert!(ENTRY.max_version <= <old::$request as OldMessage>::VERSIONS.max);
                    assert!(<old::$response as OldMessage>::VERSIONS.min <= ENTRY.min_version);
                    assert!(ENTRY.max_version <= <old::$response as OldMessage>::VERSIONS.max);
                    // They end just below 0.18's, with no gap and no overlap.
                    assert!(ENTRY.max_version + 1 == <current::$request as Message>::VERSIONS.min);
                    assert!(ENTRY.max_version + 1 == <current::$response as Message>::VERSIONS.min);
                };
                ENTRY
            },
        )*];

        /// Decodes a request of a legacy version; `None` when `(api_key,
        /// version)` is not in [`LEGACY_APIS`].
        pub(crate) fn decode_request(
            api_key: ApiKey,
            version: i16,
            buf: &mut Bytes,
        ) -> Option<Result<Request, String>> {
            match api_key {
                $(
                    ApiKey::$key if ($min..=$max).contains(&version) => Some(
                        old::$request::decode(buf, version)
                            .map(|r| Request::$key(current::$request::from_legacy(r)))
                            .map_err(|e| e.to_string()),
                    ),
                )*
                _ => None,
            }
        }

        /// Encodes a response body at a legacy version; `None` when the
        /// response's api and `version` are not in [`LEGACY_APIS`].
        pub(crate) fn encode_response(
            response: &Response,
            version: i16,
            buf: &mut BytesMut,
        ) -> Option<Result<(), String>> {
            match response {
                $(
                    Response::$key(r) if ($min..=$max).contains(&version) => Some(
                        r.to_legacy().encode(buf, version).map_err(|e| e.to_string()),
                    ),
                )*
                _ => None,
            }
        }
    };
}

legacy_apis! {
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse, 0..=1;
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse, 0..=0;
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse, 0..=0;
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse, 0..=1;
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse, 0..=0;
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse, 0..=0;
    DescribeLogDirs: DescribeLogDirsRequest => DescribeLogDirsResponse, 0..=0;
    Produce: ProduceRequest => ProduceResponse, 0..=2;
    Fetch: FetchRequest => FetchResponse, 0..=3;
}

/// The lowest version the broker can decode and encode for `api_key`:
/// `codec_min` (kafka-protocol 0.18's) or, for an api in [`LEGACY_APIS`],
/// its legacy minimum. Used by the api table's compile-time checks.
pub const fn lowest_version(api_key: ApiKey, codec_min: i16) -> i16 {
    let mut i = 0;
    while i < LEGACY_APIS.len() {
        if LEGACY_APIS[i].api_key as i16 == api_key as i16 {
            return LEGACY_APIS[i].min_version;
        }
        i += 1;
    }
    codec_min
}

// ------------------------------------------------------------ conversions --

fn s(value: &old_protocol::StrBytes) -> StrBytes {
    StrBytes::from_string(value.as_str().to_owned())
}

fn s_old(value: &StrBytes) -> old_protocol::StrBytes {
    old_protocol::StrBytes::from_string(value.as_str().to_owned())
}

use kafka_protocol_legacy::protocol as old_protocol;

fn topic(name: &old::TopicName) -> current::TopicName {
    current::TopicName(s(&name.0))
}

fn topic_old(name: &current::TopicName) -> old::TopicName {
    old::TopicName(s_old(&name.0))
}

fn group(id: &old::GroupId) -> current::GroupId {
    current::GroupId(s(&id.0))
}

fn group_old(id: &current::GroupId) -> old::GroupId {
    old::GroupId(s_old(&id.0))
}

impl LegacyForm for current::OffsetCommitRequest {
    type Legacy = old::OffsetCommitRequest;

    fn from_legacy(r: old::OffsetCommitRequest) -> Self {
        use current::offset_commit_request::{
            OffsetCommitRequestPartition as P, OffsetCommitRequestTopic as T,
        };
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_metadata(p.committed_metadata.as_ref().map(s))
                        })
                        .collect(),
                )
            })
            .collect();
        current::OffsetCommitRequest::default()
            .with_group_id(group(&r.group_id))
            .with_generation_id_or_member_epoch(r.generation_id_or_member_epoch)
            .with_member_id(s(&r.member_id))
            .with_topics(topics)
    }

    fn to_legacy(&self) -> old::OffsetCommitRequest {
        use old::offset_commit_request::{
            OffsetCommitRequestPartition as P, OffsetCommitRequestTopic as T,
        };
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic_old(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_metadata(p.committed_metadata.as_ref().map(s_old))
                        })
                        .collect(),
                )
            })
            .collect();
        old::OffsetCommitRequest::default()
            .with_group_id(group_old(&self.group_id))
            .with_generation_id_or_member_epoch(self.generation_id_or_member_epoch)
            .with_member_id(s_old(&self.member_id))
            .with_topics(topics)
    }
}

impl LegacyForm for current::OffsetCommitResponse {
    type Legacy = old::OffsetCommitResponse;

    fn from_legacy(r: old::OffsetCommitResponse) -> Self {
        use current::offset_commit_response::{
            OffsetCommitResponsePartition as P, OffsetCommitResponseTopic as T,
        };
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
            })
            .collect();
        current::OffsetCommitResponse::default().with_topics(topics)
    }

    fn to_legacy(&self) -> old::OffsetCommitResponse {
        use old::offset_commit_response::{
            OffsetCommitResponsePartition as P, OffsetCommitResponseTopic as T,
        };
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic_old(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
            })
            .collect();
        old::OffsetCommitResponse::default().with_topics(topics)
    }
}

impl LegacyForm for current::OffsetFetchRequest {
    type Legacy = old::OffsetFetchRequest;

    fn from_legacy(r: old::OffsetFetchRequest) -> Self {
        use current::offset_fetch_request::OffsetFetchRequestTopic as T;
        let topics = r.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| {
                    T::default()
                        .with_name(topic(&t.name))
                        .with_partition_indexes(t.partition_indexes.clone())
                })
                .collect()
        });
        current::OffsetFetchRequest::default()
            .with_group_id(group(&r.group_id))
            .with_topics(topics)
    }

    fn to_legacy(&self) -> old::OffsetFetchRequest {
        use old::offset_fetch_request::OffsetFetchRequestTopic as T;
        let topics = self.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| {
                    T::default()
                        .with_name(topic_old(&t.name))
                        .with_partition_indexes(t.partition_indexes.clone())
                })
                .collect()
        });
        old::OffsetFetchRequest::default()
            .with_group_id(group_old(&self.group_id))
            .with_topics(topics)
    }
}

impl LegacyForm for current::OffsetFetchResponse {
    type Legacy = old::OffsetFetchResponse;

    fn from_legacy(r: old::OffsetFetchResponse) -> Self {
        use current::offset_fetch_response::{
            OffsetFetchResponsePartition as P, OffsetFetchResponseTopic as T,
        };
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_metadata(p.metadata.as_ref().map(s))
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
            })
            .collect();
        current::OffsetFetchResponse::default().with_topics(topics)
    }

    fn to_legacy(&self) -> old::OffsetFetchResponse {
        use old::offset_fetch_response::{
            OffsetFetchResponsePartition as P, OffsetFetchResponseTopic as T,
        };
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic_old(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_metadata(p.metadata.as_ref().map(s_old))
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
            })
            .collect();
        old::OffsetFetchResponse::default().with_topics(topics)
    }
}

impl LegacyForm for current::DescribeConfigsRequest {
    type Legacy = old::DescribeConfigsRequest;

    fn from_legacy(r: old::DescribeConfigsRequest) -> Self {
        use current::describe_configs_request::DescribeConfigsResource as R;
        let resources = r
            .resources
            .iter()
            .map(|res| {
                R::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(s(&res.resource_name))
                    .with_configuration_keys(
                        res.configuration_keys
                            .as_ref()
                            .map(|keys| keys.iter().map(s).collect()),
                    )
            })
            .collect();
        current::DescribeConfigsRequest::default().with_resources(resources)
    }

    fn to_legacy(&self) -> old::DescribeConfigsRequest {
        use old::describe_configs_request::DescribeConfigsResource as R;
        let resources = self
            .resources
            .iter()
            .map(|res| {
                R::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(s_old(&res.resource_name))
                    .with_configuration_keys(
                        res.configuration_keys
                            .as_ref()
                            .map(|keys| keys.iter().map(s_old).collect()),
                    )
            })
            .collect();
        old::DescribeConfigsRequest::default().with_resources(resources)
    }
}

impl LegacyForm for current::DescribeConfigsResponse {
    type Legacy = old::DescribeConfigsResponse;

    fn from_legacy(r: old::DescribeConfigsResponse) -> Self {
        use current::describe_configs_response::{
            DescribeConfigsResourceResult as C, DescribeConfigsResult as R,
        };
        let results = r
            .results
            .iter()
            .map(|res| {
                R::default()
                    .with_error_code(res.error_code)
                    .with_error_message(res.error_message.as_ref().map(s))
                    .with_resource_type(res.resource_type)
                    .with_resource_name(s(&res.resource_name))
                    .with_configs(
                        res.configs
                            .iter()
                            .map(|c| {
                                let mut config = C::default()
                                    .with_name(s(&c.name))
                                    .with_value(c.value.as_ref().map(s))
                                    .with_read_only(c.read_only)
                                    .with_is_sensitive(c.is_sensitive);
                                if c.is_default {
                                    config = config.with_config_source(CONFIG_SOURCE_DEFAULT);
                                }
                                config
                            })
                            .collect(),
                    )
            })
            .collect();
        current::DescribeConfigsResponse::default()
            .with_throttle_time_ms(r.throttle_time_ms)
            .with_results(results)
    }

    fn to_legacy(&self) -> old::DescribeConfigsResponse {
        use old::describe_configs_response::{
            DescribeConfigsResourceResult as C, DescribeConfigsResult as R,
        };
        let results = self
            .results
            .iter()
            .map(|res| {
                R::default()
                    .with_error_code(res.error_code)
                    .with_error_message(res.error_message.as_ref().map(s_old))
                    .with_resource_type(res.resource_type)
                    .with_resource_name(s_old(&res.resource_name))
                    .with_configs(
                        res.configs
                            .iter()
                            .map(|c| {
                                C::default()
                                    .with_name(s_old(&c.name))
                                    .with_value(c.value.as_ref().map(s_old))
                                    .with_read_only(c.read_only)
                                    .with_is_default(c.config_source == CONFIG_SOURCE_DEFAULT)
                                    .with_is_sensitive(c.is_sensitive)
                            })
                            .collect(),
                    )
            })
            .collect();
        old::DescribeConfigsResponse::default()
            .with_throttle_time_ms(self.throttle_time_ms)
            .with_results(results)
    }
}

fn broker_ids(ids: &[old::BrokerId]) -> Vec<current::BrokerId> {
    ids.iter().map(|id| current::BrokerId(id.0)).collect()
}

fn broker_ids_old(ids: &[current::BrokerId]) -> Vec<old::BrokerId> {
    ids.iter().map(|id| old::BrokerId(id.0)).collect()
}

impl LegacyForm for current::CreateTopicsRequest {
    type Legacy = old::CreateTopicsRequest;

    fn from_legacy(r: old::CreateTopicsRequest) -> Self {
        use current::create_topics_request::{
            CreatableReplicaAssignment as A, CreatableTopic as T, CreatableTopicConfig as C,
        };
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic(&t.name))
                    .with_num_partitions(t.num_partitions)
                    .with_replication_factor(t.replication_factor)
                    .with_assignments(
                        t.assignments
                            .iter()
                            .map(|a| {
                                A::default()
                                    .with_partition_index(a.partition_index)
                                    .with_broker_ids(broker_ids(&a.broker_ids))
                            })
                            .collect(),
                    )
                    .with_configs(
                        t.configs
                            .iter()
                            .map(|c| {
                                C::default()
                                    .with_name(s(&c.name))
                                    .with_value(c.value.as_ref().map(s))
                            })
                            .collect(),
                    )
            })
            .collect();
        current::CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(r.timeout_ms)
            .with_validate_only(r.validate_only)
    }

    fn to_legacy(&self) -> old::CreateTopicsRequest {
        use old::create_topics_request::{
            CreatableReplicaAssignment as A, CreatableTopic as T, CreatableTopicConfig as C,
        };
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic_old(&t.name))
                    .with_num_partitions(t.num_partitions)
                    .with_replication_factor(t.replication_factor)
                    .with_assignments(
                        t.assignments
                            .iter()
                            .map(|a| {
                                A::default()
                                    .with_partition_index(a.partition_index)
                                    .with_broker_ids(broker_ids_old(&a.broker_ids))
                            })
                            .collect(),
                    )
                    .with_configs(
                        t.configs
                            .iter()
                            .map(|c| {
                                C::default()
                                    .with_name(s_old(&c.name))
                                    .with_value(c.value.as_ref().map(s_old))
                            })
                            .collect(),
                    )
            })
            .collect();
        old::CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(self.timeout_ms)
            .with_validate_only(self.validate_only)
    }
}

impl LegacyForm for current::CreateTopicsResponse {
    type Legacy = old::CreateTopicsResponse;

    fn from_legacy(r: old::CreateTopicsResponse) -> Self {
        use current::create_topics_response::CreatableTopicResult as T;
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic(&t.name))
                    .with_error_code(t.error_code)
                    .with_error_message(t.error_message.as_ref().map(s))
            })
            .collect();
        current::CreateTopicsResponse::default().with_topics(topics)
    }

    fn to_legacy(&self) -> old::CreateTopicsResponse {
        use old::create_topics_response::CreatableTopicResult as T;
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic_old(&t.name))
                    .with_error_code(t.error_code)
                    .with_error_message(t.error_message.as_ref().map(s_old))
            })
            .collect();
        old::CreateTopicsResponse::default().with_topics(topics)
    }
}

impl LegacyForm for current::DeleteTopicsRequest {
    type Legacy = old::DeleteTopicsRequest;

    fn from_legacy(r: old::DeleteTopicsRequest) -> Self {
        current::DeleteTopicsRequest::default()
            .with_topic_names(r.topic_names.iter().map(topic).collect())
            .with_timeout_ms(r.timeout_ms)
    }

    fn to_legacy(&self) -> old::DeleteTopicsRequest {
        old::DeleteTopicsRequest::default()
            .with_topic_names(self.topic_names.iter().map(topic_old).collect())
            .with_timeout_ms(self.timeout_ms)
    }
}

impl LegacyForm for current::DeleteTopicsResponse {
    type Legacy = old::DeleteTopicsResponse;

    fn from_legacy(r: old::DeleteTopicsResponse) -> Self {
        use current::delete_topics_response::DeletableTopicResult as T;
        let responses = r
            .responses
            .iter()
            .map(|t| {
                T::default()
                    .with_name(t.name.as_ref().map(topic))
                    .with_error_code(t.error_code)
            })
            .collect();
        current::DeleteTopicsResponse::default().with_responses(responses)
    }

    fn to_legacy(&self) -> old::DeleteTopicsResponse {
        use old::delete_topics_response::DeletableTopicResult as T;
        let responses = self
            .responses
            .iter()
            .map(|t| {
                T::default()
                    .with_name(t.name.as_ref().map(topic_old))
                    .with_error_code(t.error_code)
            })
            .collect();
        old::DeleteTopicsResponse::default().with_responses(responses)
    }
}

impl LegacyForm for current::ListOffsetsRequest {
    type Legacy = old::ListOffsetsRequest;

    fn from_legacy(r: old::ListOffsetsRequest) -> Self {
        use current::list_offsets_request::{ListOffsetsPartition as P, ListOffsetsTopic as T};
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_timestamp(p.timestamp)
                        })
                        .collect(),
                )
            })
            .collect();
        current::ListOffsetsRequest::default()
            .with_replica_id(current::BrokerId(r.replica_id.0))
            .with_topics(topics)
    }

    fn to_legacy(&self) -> old::ListOffsetsRequest {
        use old::list_offsets_request::{ListOffsetsPartition as P, ListOffsetsTopic as T};
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic_old(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_timestamp(p.timestamp)
                                .with_max_num_offsets(1)
                        })
                        .collect(),
                )
            })
            .collect();
        old::ListOffsetsRequest::default()
            .with_replica_id(old::BrokerId(self.replica_id.0))
            .with_topics(topics)
    }
}

impl LegacyForm for current::ListOffsetsResponse {
    type Legacy = old::ListOffsetsResponse;

    /// The first of `old_style_offsets` (the newest), or -1 for none.
    fn from_legacy(r: old::ListOffsetsResponse) -> Self {
        use current::list_offsets_response::{
            ListOffsetsPartitionResponse as P, ListOffsetsTopicResponse as T,
        };
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(p.error_code)
                                .with_offset(p.old_style_offsets.first().copied().unwrap_or(-1))
                        })
                        .collect(),
                )
            })
            .collect();
        current::ListOffsetsResponse::default().with_topics(topics)
    }

    fn to_legacy(&self) -> old::ListOffsetsResponse {
        use old::list_offsets_response::{
            ListOffsetsPartitionResponse as P, ListOffsetsTopicResponse as T,
        };
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default().with_name(topic_old(&t.name)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let offsets = if p.error_code == 0 && p.offset >= 0 {
                                vec![p.offset]
                            } else {
                                Vec::new()
                            };
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(p.error_code)
                                .with_old_style_offsets(offsets)
                        })
                        .collect(),
                )
            })
            .collect();
        old::ListOffsetsResponse::default().with_topics(topics)
    }
}

impl LegacyForm for current::DescribeLogDirsRequest {
    type Legacy = old::DescribeLogDirsRequest;

    fn from_legacy(r: old::DescribeLogDirsRequest) -> Self {
        use current::describe_log_dirs_request::DescribableLogDirTopic as T;
        let topics = r.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| {
                    T::default()
                        .with_topic(topic(&t.topic))
                        .with_partitions(t.partitions.clone())
                })
                .collect()
        });
        current::DescribeLogDirsRequest::default().with_topics(topics)
    }

    fn to_legacy(&self) -> old::DescribeLogDirsRequest {
        use old::describe_log_dirs_request::DescribableLogDirTopic as T;
        let topics = self.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| {
                    T::default()
                        .with_topic(topic_old(&t.topic))
                        .with_partitions(t.partitions.clone())
                })
                .collect()
        });
        old::DescribeLogDirsRequest::default().with_topics(topics)
    }
}

impl LegacyForm for current::DescribeLogDirsResponse {
    type Legacy = old::DescribeLogDirsResponse;

    fn from_legacy(r: old::DescribeLogDirsResponse) -> Self {
        use current::describe_log_dirs_response::{
            DescribeLogDirsPartition as P, DescribeLogDirsResult as R, DescribeLogDirsTopic as T,
        };
        let results = r
            .results
            .iter()
            .map(|res| {
                R::default()
                    .with_error_code(res.error_code)
                    .with_log_dir(s(&res.log_dir))
                    .with_topics(
                        res.topics
                            .iter()
                            .map(|t| {
                                T::default().with_name(topic(&t.name)).with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            P::default()
                                                .with_partition_index(p.partition_index)
                                                .with_partition_size(p.partition_size)
                                                .with_offset_lag(p.offset_lag)
                                                .with_is_future_key(p.is_future_key)
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    )
            })
            .collect();
        current::DescribeLogDirsResponse::default()
            .with_throttle_time_ms(r.throttle_time_ms)
            .with_results(results)
    }

    fn to_legacy(&self) -> old::DescribeLogDirsResponse {
        use old::describe_log_dirs_response::{
            DescribeLogDirsPartition as P, DescribeLogDirsResult as R, DescribeLogDirsTopic as T,
        };
        let results = self
            .results
            .iter()
            .map(|res| {
                R::default()
                    .with_error_code(res.error_code)
                    .with_log_dir(s_old(&res.log_dir))
                    .with_topics(
                        res.topics
                            .iter()
                            .map(|t| {
                                T::default().with_name(topic_old(&t.name)).with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            P::default()
                                                .with_partition_index(p.partition_index)
                                                .with_partition_size(p.partition_size)
                                                .with_offset_lag(p.offset_lag)
                                                .with_is_future_key(p.is_future_key)
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    )
            })
            .collect();
        old::DescribeLogDirsResponse::default()
            .with_throttle_time_ms(self.throttle_time_ms)
            .with_results(results)
    }
}

impl LegacyForm for current::ProduceRequest {
    type Legacy = old::ProduceRequest;

    fn from_legacy(r: old::ProduceRequest) -> Self {
        use current::produce_request::{PartitionProduceData as P, TopicProduceData as T};
        let topic_data = r
            .topic_data
            .into_iter()
            .map(|t| {
                T::default().with_name(topic(&t.name)).with_partition_data(
                    t.partition_data
                        .into_iter()
                        .map(|p| P::default().with_index(p.index).with_records(p.records))
                        .collect(),
                )
            })
            .collect();
        current::ProduceRequest::default()
            .with_acks(r.acks)
            .with_timeout_ms(r.timeout_ms)
            .with_topic_data(topic_data)
    }

    fn to_legacy(&self) -> old::ProduceRequest {
        use old::produce_request::{PartitionProduceData as P, TopicProduceData as T};
        let topic_data = self
            .topic_data
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic_old(&t.name))
                    .with_partition_data(
                        t.partition_data
                            .iter()
                            .map(|p| {
                                P::default()
                                    .with_index(p.index)
                                    .with_records(p.records.clone())
                            })
                            .collect(),
                    )
            })
            .collect();
        old::ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(self.timeout_ms)
            .with_topic_data(topic_data)
    }
}

impl LegacyForm for current::ProduceResponse {
    type Legacy = old::ProduceResponse;

    fn from_legacy(r: old::ProduceResponse) -> Self {
        use current::produce_response::{PartitionProduceResponse as P, TopicProduceResponse as T};
        let responses = r
            .responses
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic(&t.name))
                    .with_partition_responses(
                        t.partition_responses
                            .iter()
                            .map(|p| {
                                P::default()
                                    .with_index(p.index)
                                    .with_error_code(p.error_code)
                                    .with_base_offset(p.base_offset)
                                    .with_log_append_time_ms(p.log_append_time_ms)
                            })
                            .collect(),
                    )
            })
            .collect();
        current::ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(r.throttle_time_ms)
    }

    fn to_legacy(&self) -> old::ProduceResponse {
        use old::produce_response::{PartitionProduceResponse as P, TopicProduceResponse as T};
        let responses = self
            .responses
            .iter()
            .map(|t| {
                T::default()
                    .with_name(topic_old(&t.name))
                    .with_partition_responses(
                        t.partition_responses
                            .iter()
                            .map(|p| {
                                P::default()
                                    .with_index(p.index)
                                    .with_error_code(p.error_code)
                                    .with_base_offset(p.base_offset)
                                    .with_log_append_time_ms(p.log_append_time_ms)
                            })
                            .collect(),
                    )
            })
            .collect();
        old::ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(self.throttle_time_ms)
    }
}

impl LegacyForm for current::FetchRequest {
    type Legacy = old::FetchRequest;

    fn from_legacy(r: old::FetchRequest) -> Self {
        use current::fetch_request::{FetchPartition as P, FetchTopic as T};
        let topics = r
            .topics
            .iter()
            .map(|t| {
                T::default().with_topic(topic(&t.topic)).with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            P::default()
                                .with_partition(p.partition)
                                .with_fetch_offset(p.fetch_offset)
                                .with_partition_max_bytes(p.partition_max_bytes)
                                .with_current_leader_epoch(-1)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
            })
            .collect();
        current::FetchRequest::default()
            .with_replica_id(current::BrokerId(r.replica_id.0))
            .with_max_wait_ms(r.max_wait_ms)
            .with_min_bytes(r.min_bytes)
            .with_max_bytes(r.max_bytes)
            .with_isolation_level(0)
            .with_topics(topics)
    }

    fn to_legacy(&self) -> old::FetchRequest {
        use old::fetch_request::{FetchPartition as P, FetchTopic as T};
        let topics = self
            .topics
            .iter()
            .map(|t| {
                T::default()
                    .with_topic(topic_old(&t.topic))
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                P::default()
                                    .with_partition(p.partition)
                                    .with_fetch_offset(p.fetch_offset)
                                    .with_partition_max_bytes(p.partition_max_bytes)
                            })
                            .collect(),
                    )
            })
            .collect();
        old::FetchRequest::default()
            .with_replica_id(old::BrokerId(self.replica_id.0))
            .with_max_wait_ms(self.max_wait_ms)
            .with_min_bytes(self.min_bytes)
            .with_max_bytes(self.max_bytes)
            .with_topics(topics)
    }
}

impl LegacyForm for current::FetchResponse {
    type Legacy = old::FetchResponse;

    fn from_legacy(r: old::FetchResponse) -> Self {
        use current::fetch_response::{FetchableTopicResponse as T, PartitionData as P};
        let responses = r
            .responses
            .into_iter()
            .map(|t| {
                T::default().with_topic(topic(&t.topic)).with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            P::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(p.error_code)
                                .with_high_watermark(p.high_watermark)
                                .with_records(p.records)
                        })
                        .collect(),
                )
            })
            .collect();
        current::FetchResponse::default()
            .with_throttle_time_ms(r.throttle_time_ms)
            .with_responses(responses)
    }

    fn to_legacy(&self) -> old::FetchResponse {
        use old::fetch_response::{FetchableTopicResponse as T, PartitionData as P};
        let responses = self
            .responses
            .iter()
            .map(|t| {
                T::default()
                    .with_topic(topic_old(&t.topic))
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                P::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(p.error_code)
                                    .with_high_watermark(p.high_watermark)
                                    .with_records(p.records.clone())
                            })
                            .collect(),
                    )
            })
            .collect();
        old::FetchResponse::default()
            .with_throttle_time_ms(self.throttle_time_ms)
            .with_responses(responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_ranges_end_below_the_codec() {
        for entry in LEGACY_APIS {
            let table = crate::find_api_support(crate::SUPPORTED_APIS, entry.api_key).unwrap();
            assert!(table.min_version <= entry.min_version);
            assert!(entry.max_version < table.max_version);
        }
    }

    #[test]
    fn describe_configs_v0_says_is_default_for_the_default_source() {
        use current::describe_configs_response::{
            DescribeConfigsResourceResult as C, DescribeConfigsResult as R,
        };
        let response = current::DescribeConfigsResponse::default().with_results(vec![R::default()
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(vec![
                C::default()
                    .with_name(StrBytes::from_static_str("a"))
                    .with_config_source(CONFIG_SOURCE_DEFAULT),
                C::default()
                    .with_name(StrBytes::from_static_str("b"))
                    .with_config_source(1),
            ])]);
        let legacy = response.to_legacy();
        let configs = &legacy.results[0].configs;
        assert!(configs[0].is_default);
        assert!(!configs[1].is_default);
        let mut buf = BytesMut::new();
        assert!(
            encode_response(&Response::DescribeConfigs(response), 0, &mut buf)
                .unwrap()
                .is_ok()
        );
    }
}
