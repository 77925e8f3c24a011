//! The consumer-group apis: every request version decodes with its content,
//! inflated array lengths and truncated bodies are refused, every response
//! version encodes and reads back with kafka-protocol's client-side decoders,
//! and the byte fields of JoinGroup and SyncGroup stay slices of the frame.

mod common;

use std::collections::BTreeSet;

use bytes::{Buf, Bytes, BytesMut};
use common::groups::{build_group_request, build_group_response, payload, GROUP_APIS};
use common::{client_header, encode_body, frame_request, pairs};
use corelog_protocol::kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DeleteGroupsResponse,
    DescribeGroupsResponse, FindCoordinatorResponse, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, SyncGroupResponse,
};
use corelog_protocol::kafka_protocol::protocol::{Decodable, Message};
use corelog_protocol::{
    decode_request, decode_request_header, decode_request_with, encode_response, find_api_support,
    FrameDecoder, ProtocolError, Request, RequestHeader, Response, SUPPORTED_APIS,
};

/// Frames `request` at `version` and parses the header back, as the server
/// does before it decodes the body.
fn header_and_body(request: &Request, version: i16) -> (RequestHeader, Bytes) {
    let body = encode_body(request, version);
    let wire = frame_request(&client_header(request.api_key(), version, 42), &body);
    decode_request_header(Bytes::from(wire).slice(4..)).expect("header decodes")
}

fn is_flexible(api_key: ApiKey, version: i16) -> bool {
    api_key.request_header_version(version) >= 2
}

#[test]
fn supported_group_versions_are_kafka_protocols_request_ranges() {
    for entry in GROUP_APIS {
        let supported = find_api_support(SUPPORTED_APIS, entry.api_key).unwrap();
        assert_eq!(supported, entry, "{:?}", entry.api_key);
    }
}

#[test]
fn every_group_request_version_decodes_with_equal_content() {
    for (api_key, version) in pairs(GROUP_APIS) {
        for alt in [false, true] {
            let sent = build_group_request(api_key, version, alt);
            assert_eq!(sent.api_key(), api_key);
            let (header, body) = header_and_body(&sent, version);
            let decoded = decode_request(&header, body.clone())
                .unwrap_or_else(|e| panic!("{api_key:?} v{version} alt={alt}: {e}"));
            assert_eq!(decoded.api_key(), api_key);
            assert_eq!(decoded, sent, "{api_key:?} v{version} alt={alt}");
            // The table the server passes works the same way.
            let decoded = decode_request_with(SUPPORTED_APIS, &header, body).unwrap();
            assert_eq!(decoded, sent);
        }
    }
}

#[test]
fn group_versions_outside_the_range_are_unsupported() {
    for entry in GROUP_APIS {
        for version in [entry.min_version - 1, entry.max_version + 1] {
            let wire = frame_request(&client_header(entry.api_key, version, 8), &[]);
            let frame = Bytes::from(wire).slice(4..);
            let Ok((header, body)) = decode_request_header(frame) else {
                continue;
            };
            let err = decode_request(&header, body).unwrap_err();
            assert!(
                matches!(err, ProtocolError::UnsupportedVersion { .. }),
                "{:?} v{version}: {err}",
                entry.api_key
            );
        }
    }
}

/// How many smallest elements the arrays of [`smallest_elements`] hold:
/// more than the bytes that can follow any of them, so that overestimating
/// the smallest element by one byte asks for more bytes than the body has.
const SMALLEST_COUNT: usize = 8;

/// For each array that `api_key` carries at `v`, a request in which only that
/// array holds elements: [`SMALLEST_COUNT`] of them, each of the smallest
/// possible encoding (all fields at their defaults, so strings and bytes
/// empty, nullable fields null and inner arrays empty). Every other field is
/// at its default too, and an enclosing array holds one such element. The
/// body is then only just long enough for the array's count, which shows that
/// the pre-check's `element_min_bytes` for that array does not overestimate
/// the smallest element.
fn smallest_elements(api_key: ApiKey, v: i16) -> Vec<(&'static str, Request)> {
    use corelog_protocol::kafka_protocol::messages::*;
    fn many<T: Default + Clone>() -> Vec<T> {
        vec![T::default(); SMALLEST_COUNT]
    }
    let mut out = Vec::new();
    match api_key {
        ApiKey::FindCoordinator => {
            if v >= 4 {
                let r = FindCoordinatorRequest::default().with_coordinator_keys(many());
                out.push(("coordinator_keys", Request::FindCoordinator(r)));
            }
        }
        ApiKey::JoinGroup => {
            let r = JoinGroupRequest::default().with_protocols(many());
            out.push(("protocols", Request::JoinGroup(r)));
        }
        ApiKey::SyncGroup => {
            let r = SyncGroupRequest::default().with_assignments(many());
            out.push(("assignments", Request::SyncGroup(r)));
        }
        ApiKey::Heartbeat => {}
        ApiKey::LeaveGroup => {
            if v >= 3 {
                let r = LeaveGroupRequest::default().with_members(many());
                out.push(("members", Request::LeaveGroup(r)));
            }
        }
        ApiKey::OffsetCommit => {
            use offset_commit_request::OffsetCommitRequestTopic as Topic;
            let r = OffsetCommitRequest::default().with_topics(many());
            out.push(("topics", Request::OffsetCommit(r)));
            let t = Topic::default().with_partitions(many());
            let r = OffsetCommitRequest::default().with_topics(vec![t]);
            out.push(("topics[0].partitions", Request::OffsetCommit(r)));
        }
        ApiKey::OffsetFetch => {
            if v <= 7 {
                use offset_fetch_request::OffsetFetchRequestTopic as Topic;
                let r = OffsetFetchRequest::default().with_topics(Some(many()));
                out.push(("topics", Request::OffsetFetch(r)));
                let t = Topic::default().with_partition_indexes(many());
                let r = OffsetFetchRequest::default().with_topics(Some(vec![t]));
                out.push(("topics[0].partition_indexes", Request::OffsetFetch(r)));
            } else {
                use offset_fetch_request::OffsetFetchRequestGroup as Group;
                use offset_fetch_request::OffsetFetchRequestTopics as Topic;
                let r = OffsetFetchRequest::default().with_groups(many());
                out.push(("groups", Request::OffsetFetch(r)));
                let g = Group::default().with_topics(Some(many()));
                let r = OffsetFetchRequest::default().with_groups(vec![g]);
                out.push(("groups[0].topics", Request::OffsetFetch(r)));
                let t = Topic::default().with_partition_indexes(many());
                let g = Group::default().with_topics(Some(vec![t]));
                let r = OffsetFetchRequest::default().with_groups(vec![g]);
                out.push((
                    "groups[0].topics[0].partition_indexes",
                    Request::OffsetFetch(r),
                ));
            }
        }
        ApiKey::ListGroups => {
            if v >= 4 {
                let r = ListGroupsRequest::default().with_states_filter(many());
                out.push(("states_filter", Request::ListGroups(r)));
            }
            if v >= 5 {
                let r = ListGroupsRequest::default().with_types_filter(many());
                out.push(("types_filter", Request::ListGroups(r)));
            }
        }
        ApiKey::DescribeGroups => {
            let r = DescribeGroupsRequest::default().with_groups(many());
            out.push(("groups", Request::DescribeGroups(r)));
        }
        ApiKey::DeleteGroups => {
            let r = DeleteGroupsRequest::default().with_groups_names(many());
            out.push(("groups_names", Request::DeleteGroups(r)));
        }
        ApiKey::OffsetDelete => {
            use offset_delete_request::OffsetDeleteRequestTopic as Topic;
            let r = OffsetDeleteRequest::default().with_topics(many());
            out.push(("topics", Request::OffsetDelete(r)));
            let t = Topic::default().with_partitions(many());
            let r = OffsetDeleteRequest::default().with_topics(vec![t]);
            out.push(("topics[0].partitions", Request::OffsetDelete(r)));
        }
        ApiKey::ConsumerGroupHeartbeat => {
            use consumer_group_heartbeat_request::TopicPartitions;
            let r =
                ConsumerGroupHeartbeatRequest::default().with_subscribed_topic_names(Some(many()));
            out.push(("subscribed_topic_names", Request::ConsumerGroupHeartbeat(r)));
            let r = ConsumerGroupHeartbeatRequest::default().with_topic_partitions(Some(many()));
            out.push(("topic_partitions", Request::ConsumerGroupHeartbeat(r)));
            let t = TopicPartitions::default().with_partitions(many());
            let r = ConsumerGroupHeartbeatRequest::default().with_topic_partitions(Some(vec![t]));
            out.push((
                "topic_partitions[0].partitions",
                Request::ConsumerGroupHeartbeat(r),
            ));
        }
        ApiKey::ConsumerGroupDescribe => {
            let r = ConsumerGroupDescribeRequest::default().with_group_ids(many());
            out.push(("group_ids", Request::ConsumerGroupDescribe(r)));
        }
        other => panic!("not a group api: {other:?}"),
    }
    out
}

#[test]
fn arrays_of_smallest_elements_are_accepted() {
    let mut covered = BTreeSet::new();
    for (api_key, version) in pairs(GROUP_APIS) {
        for (array, sent) in smallest_elements(api_key, version) {
            let (header, body) = header_and_body(&sent, version);
            let decoded = decode_request(&header, body)
                .unwrap_or_else(|e| panic!("{api_key:?} v{version} {array}: {e}"));
            assert_eq!(decoded, sent, "{api_key:?} v{version} {array}");
            covered.insert((api_key as i16, array));
        }
    }
    // The same arrays as the inflation test.
    let all: BTreeSet<_> = shrinkers()
        .into_iter()
        .map(|(api_key, array, _)| (api_key as i16, array))
        .collect();
    assert_eq!(covered, all);
}

/// Takes one element off one array of a request; false when the request does
/// not hold that array (not in this version, or null).
type Shrink = fn(&mut Request) -> bool;

fn shrinkers() -> Vec<(ApiKey, &'static str, Shrink)> {
    vec![
        (ApiKey::FindCoordinator, "coordinator_keys", |r| match r {
            Request::FindCoordinator(r) => r.coordinator_keys.pop().is_some(),
            _ => false,
        }),
        (ApiKey::JoinGroup, "protocols", |r| match r {
            Request::JoinGroup(r) => r.protocols.pop().is_some(),
            _ => false,
        }),
        (ApiKey::SyncGroup, "assignments", |r| match r {
            Request::SyncGroup(r) => r.assignments.pop().is_some(),
            _ => false,
        }),
        (ApiKey::LeaveGroup, "members", |r| match r {
            Request::LeaveGroup(r) => r.members.pop().is_some(),
            _ => false,
        }),
        (ApiKey::OffsetCommit, "topics", |r| match r {
            Request::OffsetCommit(r) => r.topics.pop().is_some(),
            _ => false,
        }),
        (ApiKey::OffsetCommit, "topics[0].partitions", |r| match r {
            Request::OffsetCommit(r) => r.topics[0].partitions.pop().is_some(),
            _ => false,
        }),
        (ApiKey::OffsetFetch, "topics", |r| match r {
            Request::OffsetFetch(r) => r.topics.as_mut().and_then(Vec::pop).is_some(),
            _ => false,
        }),
        (
            ApiKey::OffsetFetch,
            "topics[0].partition_indexes",
            |r| match r {
                Request::OffsetFetch(r) => r
                    .topics
                    .as_mut()
                    .and_then(|t| t.first_mut())
                    .and_then(|t| t.partition_indexes.pop())
                    .is_some(),
                _ => false,
            },
        ),
        (ApiKey::OffsetFetch, "groups", |r| match r {
            Request::OffsetFetch(r) => r.groups.pop().is_some(),
            _ => false,
        }),
        (ApiKey::OffsetFetch, "groups[0].topics", |r| match r {
            Request::OffsetFetch(r) => r
                .groups
                .first_mut()
                .and_then(|g| g.topics.as_mut())
                .and_then(Vec::pop)
                .is_some(),
            _ => false,
        }),
        (
            ApiKey::OffsetFetch,
            "groups[0].topics[0].partition_indexes",
            |r| match r {
                Request::OffsetFetch(r) => r
                    .groups
                    .first_mut()
                    .and_then(|g| g.topics.as_mut())
                    .and_then(|t| t.first_mut())
                    .and_then(|t| t.partition_indexes.pop())
                    .is_some(),
                _ => false,
            },
        ),
        (ApiKey::ListGroups, "states_filter", |r| match r {
            Request::ListGroups(r) => r.states_filter.pop().is_some(),
            _ => false,
        }),
        (ApiKey::ListGroups, "types_filter", |r| match r {
            Request::ListGroups(r) => r.types_filter.pop().is_some(),
            _ => false,
        }),
        (ApiKey::DescribeGroups, "groups", |r| match r {
            Request::DescribeGroups(r) => r.groups.pop().is_some(),
            _ => false,
        }),
        (ApiKey::DeleteGroups, "groups_names", |r| match r {
            Request::DeleteGroups(r) => r.groups_names.pop().is_some(),
            _ => false,
        }),
        (ApiKey::OffsetDelete, "topics", |r| match r {
            Request::OffsetDelete(r) => r.topics.pop().is_some(),
            _ => false,
        }),
        (ApiKey::OffsetDelete, "topics[0].partitions", |r| match r {
            Request::OffsetDelete(r) => r.topics[0].partitions.pop().is_some(),
            _ => false,
        }),
        (
            ApiKey::ConsumerGroupHeartbeat,
            "subscribed_topic_names",
            |r| match r {
                Request::ConsumerGroupHeartbeat(r) => r
                    .subscribed_topic_names
                    .as_mut()
                    .and_then(Vec::pop)
                    .is_some(),
                _ => false,
            },
        ),
        (
            ApiKey::ConsumerGroupHeartbeat,
            "topic_partitions",
            |r| match r {
                Request::ConsumerGroupHeartbeat(r) => {
                    r.topic_partitions.as_mut().and_then(Vec::pop).is_some()
                }
                _ => false,
            },
        ),
        (
            ApiKey::ConsumerGroupHeartbeat,
            "topic_partitions[0].partitions",
            |r| match r {
                Request::ConsumerGroupHeartbeat(r) => r
                    .topic_partitions
                    .as_mut()
                    .and_then(|t| t.first_mut())
                    .and_then(|t| t.partitions.pop())
                    .is_some(),
                _ => false,
            },
        ),
        (ApiKey::ConsumerGroupDescribe, "group_ids", |r| match r {
            Request::ConsumerGroupDescribe(r) => r.group_ids.pop().is_some(),
            _ => false,
        }),
    ]
}

fn uvarint(mut value: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// For every array of every group request version, replaces the array's
/// length on the wire with a huge count and leaves the rest of the (otherwise
/// valid) body as it is. The pre-check must refuse it before kafka-protocol
/// preallocates a `Vec` of that length, which would abort the process.
///
/// The length's position is found by encoding the request once more with
/// one element fewer in that array: the first byte that differs is the last
/// byte of a non-flexible i32 count, or the single byte of a compact count.
#[test]
fn inflated_array_lengths_are_refused_before_allocating() {
    let mut covered = BTreeSet::new();
    for (api_key, version) in pairs(GROUP_APIS) {
        let flex = is_flexible(api_key, version);
        for alt in [false, true] {
            let request = build_group_request(api_key, version, alt);
            let body = encode_body(&request, version);
            for (shrink_key, array, shrink) in shrinkers() {
                if shrink_key != api_key {
                    continue;
                }
                let mut shorter = request.clone();
                if !shrink(&mut shorter) {
                    continue;
                }
                let shorter_body = encode_body(&shorter, version);
                let at = body
                    .iter()
                    .zip(shorter_body.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| panic!("{api_key:?} v{version} {array}: no difference"));
                let (count_start, count_len) = if flex { (at, 1) } else { (at - 3, 4) };
                if flex {
                    assert!(body[at] < 0x80, "{api_key:?} v{version} {array}");
                } else {
                    assert_eq!(&body[count_start..at], &[0, 0, 0]);
                }
                let huge_counts: Vec<Vec<u8>> = if flex {
                    vec![
                        uvarint(u32::MAX),
                        uvarint(1 << 24),
                        uvarint(i32::MAX as u32),
                    ]
                } else {
                    vec![
                        i32::MAX.to_be_bytes().to_vec(),
                        (1i32 << 24).to_be_bytes().to_vec(),
                    ]
                };
                for count in huge_counts {
                    let mut inflated = body[..count_start].to_vec();
                    inflated.extend_from_slice(&count);
                    inflated.extend_from_slice(&body[count_start + count_len..]);
                    let (header, _) = header_and_body(&request, version);
                    let result = decode_request(&header, Bytes::from(inflated));
                    match result {
                        Err(ProtocolError::MalformedRequest {
                            api_key: k,
                            api_version,
                            correlation_id: 42,
                            reason,
                        }) => {
                            assert_eq!((k, api_version), (api_key, version));
                            assert!(
                                reason.contains("array length exceeds"),
                                "{api_key:?} v{version} {array}: refused late: {reason}"
                            );
                        }
                        other => panic!("{api_key:?} v{version} {array}: {other:?}"),
                    }
                }
                covered.insert((api_key as i16, array));
            }
        }
    }
    // Every array of every api was inflated in at least one version.
    assert_eq!(covered.len(), shrinkers().len(), "{covered:?}");
}

#[test]
fn truncated_group_requests_are_refused() {
    for (api_key, version) in pairs(GROUP_APIS) {
        for alt in [false, true] {
            let request = build_group_request(api_key, version, alt);
            let (header, body) = header_and_body(&request, version);
            for cut in 0..body.len() {
                let result = decode_request(&header, body.slice(..cut));
                assert!(
                    matches!(result, Err(ProtocolError::MalformedRequest { .. })),
                    "{api_key:?} v{version} alt={alt} cut at {cut} of {}: {result:?}",
                    body.len()
                );
            }
        }
    }
}

/// Encodes a content-rich response of every group api at every version
/// kafka-protocol encodes and reads it back with kafka-protocol's
/// client-side decoder.
#[test]
fn every_group_response_version_encodes_and_reads_back() {
    macro_rules! check {
        ($key:ident, $ty:ty) => {{
            let versions = <$ty as Message>::VERSIONS;
            for v in versions.min..=versions.max {
                for alt in [false, true] {
                    let response = build_group_response(ApiKey::$key, v, alt);
                    let Response::$key(sent) = &response else {
                        panic!("built the wrong response for {:?}", ApiKey::$key);
                    };
                    let frame = encode_response(ApiKey::$key, v, 1234, &response)
                        .unwrap_or_else(|e| panic!("{:?} v{v}: {e}", ApiKey::$key));
                    let mut buf = frame.freeze();
                    assert_eq!(buf.get_i32() as usize, buf.len());
                    assert_eq!(buf.get_i32(), 1234);
                    if ApiKey::$key.response_header_version(v) >= 1 {
                        assert_eq!(buf.get_u8(), 0, "empty header tagged fields");
                    }
                    let decoded = <$ty>::decode(&mut buf, v)
                        .unwrap_or_else(|e| panic!("{:?} v{v}: {e}", ApiKey::$key));
                    assert!(buf.is_empty(), "{:?} v{v}: bytes left", ApiKey::$key);
                    assert_eq!(&decoded, sent, "{:?} v{v} alt={alt}", ApiKey::$key);
                }
            }
        }};
    }
    check!(FindCoordinator, FindCoordinatorResponse);
    check!(JoinGroup, JoinGroupResponse);
    check!(SyncGroup, SyncGroupResponse);
    check!(Heartbeat, HeartbeatResponse);
    check!(LeaveGroup, LeaveGroupResponse);
    check!(OffsetCommit, OffsetCommitResponse);
    check!(OffsetFetch, OffsetFetchResponse);
    check!(ListGroups, ListGroupsResponse);
    check!(DescribeGroups, DescribeGroupsResponse);
    check!(DeleteGroups, DeleteGroupsResponse);
    check!(OffsetDelete, OffsetDeleteResponse);
    check!(ConsumerGroupHeartbeat, ConsumerGroupHeartbeatResponse);
    check!(ConsumerGroupDescribe, ConsumerGroupDescribeResponse);
}

/// The versions below kafka-protocol 0.18's (OffsetCommit v0-1, OffsetFetch
/// v0): a content-rich response encodes through kafka-protocol 0.15.1 and
/// an old client's decoder reads back the same content.
#[test]
fn legacy_group_response_versions_encode_and_read_back() {
    for (api_key, v) in [
        (ApiKey::OffsetCommit, 0),
        (ApiKey::OffsetCommit, 1),
        (ApiKey::OffsetFetch, 0),
    ] {
        for alt in [false, true] {
            let response = build_group_response(api_key, v, alt);
            let frame = encode_response(api_key, v, 77, &response)
                .unwrap_or_else(|e| panic!("{api_key:?} v{v}: {e}"));
            let mut buf = frame.freeze();
            assert_eq!(buf.get_i32() as usize, buf.len());
            assert_eq!(buf.get_i32(), 77);
            let decoded = common::decode_legacy_response(api_key, v, &mut buf).unwrap();
            assert!(buf.is_empty(), "{api_key:?} v{v}: bytes left");
            assert_eq!(decoded, response, "{api_key:?} v{v} alt={alt}");
        }
    }
}

#[test]
fn group_response_for_another_api_is_a_mismatch() {
    let response = build_group_response(ApiKey::Heartbeat, 4, false);
    let err = encode_response(ApiKey::JoinGroup, 4, 0, &response).unwrap_err();
    assert!(matches!(err, ProtocolError::ResponseMismatch { .. }));
}

/// JoinGroup protocol metadata and SyncGroup assignments go through framing,
/// header parsing and decoding without a copy: each is the expected bytes at
/// an address inside the read buffer's allocation.
#[test]
fn join_metadata_and_sync_assignments_are_slices_of_the_read_buffer() {
    for (api_key, version) in pairs(GROUP_APIS) {
        if !matches!(api_key, ApiKey::JoinGroup | ApiKey::SyncGroup) {
            continue;
        }
        let request = build_group_request(api_key, version, false);
        let body = encode_body(&request, version);
        let wire = frame_request(&client_header(api_key, version, 1), &body);
        let mut read_buffer = BytesMut::with_capacity(wire.len() + 4);
        read_buffer.extend_from_slice(&wire);
        let start = read_buffer.as_ptr() as usize;
        let end = start + read_buffer.len();
        let inside = |b: &Bytes| {
            let at = b.as_ptr() as usize;
            start <= at && at + b.len() <= end
        };

        let frame = FrameDecoder::default()
            .decode(&mut read_buffer)
            .unwrap()
            .unwrap();
        let (header, body) = decode_request_header(frame).unwrap();
        match decode_request(&header, body).unwrap() {
            Request::JoinGroup(r) => {
                assert_eq!(r.protocols.len(), 2);
                for (protocol, n) in r.protocols.iter().zip([1, 2]) {
                    assert_eq!(protocol.metadata, payload(n));
                    assert!(inside(&protocol.metadata), "v{version}: metadata copied");
                }
            }
            Request::SyncGroup(r) => {
                assert_eq!(r.assignments.len(), 3);
                for (assignment, n) in r.assignments.iter().zip([3, 4, 0]) {
                    assert_eq!(assignment.assignment, payload(n));
                    assert!(
                        inside(&assignment.assignment),
                        "v{version}: assignment copied"
                    );
                }
            }
            other => panic!("decoded as {:?}", other.api_key()),
        }
    }
}
