//! Corelog's coordination layer: the consumer-group coordinator and the
//! transaction coordinator ([`txn`]).
//!
//! Everything here is a sans-io state machine. [`GroupCoordinator`] owns the
//! groups of one partition of the internal offsets log; it takes requests,
//! the current time and write completions, and returns replies and records
//! to append (see [`Output`]). It never reads a clock, a socket or a file, so
//! its tests drive it with plain values and a simulated clock.
//!
//! Architecture invariant: nothing in this crate touches glommio, the
//! storage layer or the network. The server layer runs the machine on the
//! shard that owns its offsets partition and performs the I/O it asks for.

pub mod api;
pub mod assignor;
pub mod bounds;
mod classic;
pub mod codes;
mod consumer;
mod coordinator;
mod group_txn;
pub mod records;
mod rng;
pub mod txn;

pub use api::*;
pub use bounds::{
    GROUP_ID_BYTES_MAX, GROUP_INSTANCE_ID_BYTES_MAX, MEMBER_ID_BYTES_MAX,
    MEMBER_ID_CLIENT_ID_BYTES_MAX, PROTOCOL_NAME_BYTES_MAX,
};
pub use coordinator::{
    CoordinatorConfig, GroupCoordinator, Input, Output, ReplyId, WriteId, GROUPS_FULL,
    GROUPS_FULL_MESSAGE, OFFSETS_PER_GROUP_MAX, RETENTION_CHECK_INTERVAL_MS,
};
/// The API names partitions with the model crate's type.
pub use corelog_model::TopicPartition;
pub use txn::{
    txn_partition_for, MarkerWriteId, TransactionCoordinator, TxnConfig, TxnDescription, TxnInput,
    TxnListing, TxnLogRecord, TxnOutput, TxnRequest, TxnResponse, TxnState,
};

/// The offsets-log partition a group's coordinator lives on: Kafka's rule
/// (`abs(groupId.hashCode) % partitions`, with Java's `String.hashCode`), so
/// a group maps to the same partition number as it would in Kafka.
pub fn offsets_partition_for(group_id: &str, partitions: u32) -> u32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    (abs as u32) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_java_string_hash_code() {
        // "group".hashCode() == 98629247 in Java; 98629247 % 50 == 47.
        assert_eq!(offsets_partition_for("group", 50), 47);
        assert_eq!(offsets_partition_for("", 50), 0);
        // A hash of i32::MIN must not panic ("polygenelubricants" hashes to it).
        assert_eq!(offsets_partition_for("polygenelubricants", 50), 0);
    }
}
