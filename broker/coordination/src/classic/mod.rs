//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! as Kafka's group coordinator runs it (states Empty, PreparingRebalance,
//! CompletingRebalance, Stable; Dead is a group no longer in the map).
//!
//! The broker never interprets the protocol's bytes (subscriptions and
//! assignments), except to answer OffsetDelete for consumer groups, where
//! Kafka checks which topics the members subscribe to.

mod group;
mod transitions;

pub(crate) use group::ClassicGroup;
