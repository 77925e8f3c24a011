//! Conversions shared by the group handlers (one file per API beside it).

use corelog_protocol::kafka_protocol::messages::{GroupId, TopicName};
use corelog_protocol::kafka_protocol::protocol::StrBytes;

pub fn s(x: &StrBytes) -> String {
    x.to_string()
}

pub fn sb(x: impl Into<String>) -> StrBytes {
    StrBytes::from_string(x.into())
}

pub fn gid(x: impl Into<String>) -> GroupId {
    GroupId(sb(x))
}

pub fn tname(x: impl Into<String>) -> TopicName {
    TopicName(sb(x))
}

/// Kafka's AclOperation bits a group allows: READ (3), DELETE (6) and
/// DESCRIBE (8). With no authorizer every operation is allowed.
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Sent when a client did not ask for authorized operations.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Whether `x` can be encoded as a string of a response version: a
/// flexible version's compact string has a varint length, an older one's
/// an i16 length, so at most 32,767 bytes. Names are bounded on the way in
/// (`corelog_coordination::bounds`), far below that; this guards answers
/// against what an older broker may have stored, since one string that
/// does not encode fails the whole response and closes the connection.
pub fn encodes_in(x: &str, flexible: bool) -> bool {
    flexible || x.len() <= i16::MAX as usize
}
