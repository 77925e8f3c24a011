//! Bounds on the names and ids clients send that the coordinator keeps.
//!
//! Whatever the coordinator stores comes back out in answers, some of them
//! in old, non-flexible versions whose strings carry an i16 length and so
//! hold at most 32,767 bytes (ListGroups v0-2, DescribeGroups v0-4,
//! JoinGroup v0-5, ...). A flexible request (say OffsetCommit v8) can carry
//! a far longer string, so without a bound one client could store a group
//! id that no old-version answer can encode, and every such answer would
//! fail, for every client, until the id was gone: across restarts, since
//! it is in the offsets log. The coordinator therefore refuses oversized
//! names where requests enter it (see [`refusal`]) and skips oversized
//! group ids it finds in the log on load (written by an older broker).
//!
//! Kafka itself bounds none of these on the broker; the bounds here are
//! far above anything a real client sends and far below the wire limit.

use crate::api::*;
use crate::codes;
use corelog_model::TopicPartition;

/// The longest group id accepted, in bytes of UTF-8.
///
/// Why 1024: it must stay well under the 32,767 bytes an i16-length string
/// holds, so that every version of every answer can carry it, with room
/// for the other fields beside it. 255 (the usual "name" bound) would be
/// too strict: real group ids are often built from an application, an
/// environment and a topic name, and Kafka Streams derives its group id
/// from the application id. 1024 is four times that and still 32 times
/// below the wire limit.
pub const GROUP_ID_BYTES_MAX: usize = 1024;

/// The longest `group.instance.id` (static membership) accepted, in bytes.
///
/// The Java client refuses instance ids over 249 characters, but other
/// clients do not, and Kafka's broker accepts any length; the same margin
/// as for group ids keeps every client that works with Kafka working here,
/// while an instance id still fits in DescribeGroups v4's i16-length string.
pub const GROUP_INSTANCE_ID_BYTES_MAX: usize = 1024;

/// The longest member id a client may choose itself (ConsumerGroupHeartbeat
/// v1, where the client generates its member id; Java sends a 22-character
/// UUID). Member ids the coordinator generates stay far below it (see
/// [`MEMBER_ID_CLIENT_ID_BYTES_MAX`]).
pub const MEMBER_ID_BYTES_MAX: usize = 1024;

/// The longest classic protocol type ("consumer", "connect") and protocol
/// name ("range", "cooperative-sticky") accepted in JoinGroup. The type is
/// stored and listed by ListGroups v0-2, so it needs the same bound as the
/// group id.
pub const PROTOCOL_NAME_BYTES_MAX: usize = 1024;

/// The most bytes of a client id used in a member id the coordinator
/// generates (`client_id + "-" + uuid`, Kafka's format). The client id
/// comes from the request header and may be up to 32,767 bytes, which with
/// the 37 bytes after it would not fit in an old-version answer; 255 bytes
/// keeps the id recognisable in tools while a generated member id stays
/// under 300 bytes. The member's full client id is still kept and shown as
/// its client id.
pub const MEMBER_ID_CLIENT_ID_BYTES_MAX: usize = 255;

/// `s` cut to at most `max` bytes, at a character boundary so the result
/// is still valid UTF-8.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether a group id is over [`GROUP_ID_BYTES_MAX`].
pub fn group_id_too_long(id: &str) -> bool {
    id.len() > GROUP_ID_BYTES_MAX
}

fn instance_too_long(id: &Option<String>) -> bool {
    id.as_ref()
        .is_some_and(|i| i.len() > GROUP_INSTANCE_ID_BYTES_MAX)
}

fn group_message(id: &str) -> String {
    format!(
        "group id of {} bytes is longer than {GROUP_ID_BYTES_MAX} bytes",
        id.len()
    )
}

/// What a request naming one group is answered with when a name or id in
/// it is over its bound; None when it is within every bound. Requests
/// naming several groups (DescribeGroups, DeleteGroups,
/// ConsumerGroupDescribe) are checked per group by the coordinator, so the
/// other groups named are still answered.
///
/// The codes follow Kafka's: INVALID_GROUP_ID where Kafka answers a bad
/// group id with it (every classic API and the offset APIs), and
/// INVALID_REQUEST for ConsumerGroupHeartbeat, whose malformed fields Kafka
/// answers so (`throwIfConsumerGroupHeartbeatRequestIsInvalid`). A field
/// other than the group id has no code of its own in Kafka: it gets
/// INVALID_REQUEST, a request the broker cannot accept.
pub(crate) fn refusal(request: &Request) -> Option<Response> {
    match request {
        Request::Join(r) => {
            let code = if group_id_too_long(&r.group_id) {
                codes::INVALID_GROUP_ID
            } else if instance_too_long(&r.group_instance_id)
                || r.protocol_type.len() > PROTOCOL_NAME_BYTES_MAX
                || r.protocols
                    .iter()
                    .any(|(name, _)| name.len() > PROTOCOL_NAME_BYTES_MAX)
            {
                codes::INVALID_REQUEST
            } else {
                return None;
            };
            // The member id is echoed back in the request's own version,
            // which could carry it, so it always encodes.
            Some(Response::Join(JoinResult::error(code, &r.member_id)))
        }
        Request::Sync(r) => {
            let code = group_or_instance(&r.group_id, &r.group_instance_id)?;
            Some(Response::Sync(SyncResult::error(code)))
        }
        Request::Heartbeat(r) => {
            let code = group_or_instance(&r.group_id, &r.group_instance_id)?;
            Some(Response::Heartbeat(code))
        }
        Request::Leave(r) => {
            let code = if group_id_too_long(&r.group_id) {
                codes::INVALID_GROUP_ID
            } else if r
                .members
                .iter()
                .any(|m| instance_too_long(&m.group_instance_id))
            {
                codes::INVALID_REQUEST
            } else {
                return None;
            };
            // As Kafka answers an invalid group id: the error alone, no
            // member list.
            Some(Response::Leave(LeaveResult {
                error: code,
                members: Vec::new(),
            }))
        }
        Request::OffsetCommit(r) => {
            let code = group_or_instance(&r.group_id, &r.group_instance_id)?;
            // Kafka answers a commit it refuses as a whole with the error
            // on every partition.
            Some(Response::OffsetCommit(
                r.offsets
                    .iter()
                    .map(|p| (TopicPartition::new(p.topic.clone(), p.partition), code))
                    .collect(),
            ))
        }
        Request::TxnOffsetCommit(r) => {
            let code = group_or_instance(&r.group_id, &r.group_instance_id)?;
            Some(Response::TxnOffsetCommit(
                r.offsets
                    .iter()
                    .map(|p| (TopicPartition::new(p.topic.clone(), p.partition), code))
                    .collect(),
            ))
        }
        Request::OffsetFetch(r) => {
            if !group_id_too_long(&r.group_id) {
                return None;
            }
            Some(Response::OffsetFetch(OffsetFetchResult {
                error: codes::INVALID_GROUP_ID,
                offsets: Vec::new(),
            }))
        }
        Request::OffsetDelete(r) => {
            if !group_id_too_long(&r.group_id) {
                return None;
            }
            Some(Response::OffsetDelete(OffsetDeleteResult {
                error: codes::INVALID_GROUP_ID,
                partitions: Vec::new(),
            }))
        }
        Request::ConsumerHeartbeat(r) => {
            let message = if group_id_too_long(&r.group_id) {
                group_message(&r.group_id)
            } else if r.member_id.len() > MEMBER_ID_BYTES_MAX {
                format!(
                    "member id of {} bytes is longer than {MEMBER_ID_BYTES_MAX} bytes",
                    r.member_id.len()
                )
            } else if instance_too_long(&r.group_instance_id) {
                format!("instance id is longer than {GROUP_INSTANCE_ID_BYTES_MAX} bytes")
            } else {
                return None;
            };
            Some(Response::ConsumerHeartbeat(ConsumerHeartbeatResult::error(
                codes::INVALID_REQUEST,
                message,
            )))
        }
        // No names to check (ListGroups), or checked per group.
        Request::ListGroups(_)
        | Request::DescribeGroups(_)
        | Request::DeleteGroups(_)
        | Request::ConsumerDescribe(_) => None,
    }
}

fn group_or_instance(group_id: &str, instance: &Option<String>) -> Option<i16> {
    if group_id_too_long(group_id) {
        Some(codes::INVALID_GROUP_ID)
    } else if instance_too_long(instance) {
        Some(codes::INVALID_REQUEST)
    } else {
        None
    }
}

/// DescribeGroups' answer for a group id over the bound: Kafka's answer
/// for an invalid group id (`DescribeGroupsResponse.groupError`), empty
/// state and protocol.
pub(crate) fn describe_refusal(id: &str) -> DescribedGroup {
    DescribedGroup {
        group_id: id.to_string(),
        error: codes::INVALID_GROUP_ID,
        state: String::new(),
        protocol_type: String::new(),
        protocol: String::new(),
        members: Vec::new(),
    }
}

/// ConsumerGroupDescribe's answer for a group id over the bound (Kafka
/// answers an invalid group id there with INVALID_GROUP_ID).
pub(crate) fn consumer_describe_refusal(id: &str) -> DescribedConsumerGroup {
    DescribedConsumerGroup {
        group_id: id.to_string(),
        error: codes::INVALID_GROUP_ID,
        error_message: Some(group_message(id)),
        state: String::new(),
        group_epoch: -1,
        assignment_epoch: -1,
        assignor: String::new(),
        members: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_at_char_boundary("abc", 5), "abc");
        assert_eq!(truncate_at_char_boundary("abcdef", 3), "abc");
        // "é" is two bytes: cutting in its middle keeps what precedes it.
        assert_eq!(truncate_at_char_boundary("aé", 2), "a");
        assert_eq!(truncate_at_char_boundary("aé", 3), "aé");
        assert_eq!(truncate_at_char_boundary("é", 0), "");
    }

    #[test]
    fn every_bound_fits_an_old_version_string() {
        let generated = MEMBER_ID_CLIENT_ID_BYTES_MAX + 1 + 36;
        for bound in [
            GROUP_ID_BYTES_MAX,
            GROUP_INSTANCE_ID_BYTES_MAX,
            MEMBER_ID_BYTES_MAX,
            PROTOCOL_NAME_BYTES_MAX,
            generated,
        ] {
            assert!(bound <= i16::MAX as usize / 8, "{bound}");
        }
        assert!(generated <= MEMBER_ID_BYTES_MAX);
    }
}
