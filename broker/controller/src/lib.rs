//! Corelog's cluster controller: the metadata records, the metadata image
//! they build, and the controller that turns requests into records.
//!
//! Everything here is a sans-io state machine, like `corelog-coordination`.
//! The host runs it beside the quorum driver (`corelog-quorum`) on the
//! controller shard and carries values between them: the controller's
//! [`Output::Propose`] becomes a quorum proposal; the quorum's committed
//! entries come back as [`Input::Committed`], its snapshots as
//! [`Input::RestoreSnapshot`], its leadership as [`Input::Leadership`].
//!
//! # Contract
//!
//! - **The image is a function of the committed log.** Every node applies
//!   every committed entry, in index order, to its [`MetadataImage`];
//!   [`MetadataImage::apply`] reads nothing else, so two nodes that applied
//!   the same prefix hold equal images. A snapshot is the image encoded at
//!   its applied index ([`MetadataImage::encode_snapshot`]).
//! - **Only the leader answers.** A follower answers every request with
//!   NOT_CONTROLLER. The leader validates a request against its image with
//!   Kafka's rules and error codes, proposes the records, and replies only
//!   once the entry is committed and applied here; if leadership is lost
//!   first, it replies NOT_CONTROLLER (the entry may still commit: the
//!   client retries and, for a topic, gets TOPIC_ALREADY_EXISTS).
//! - **Apply re-checks what must hold** whatever the leader validated: a
//!   topic name or id is never taken twice, a producer-id block applies
//!   only if it starts at the next free id (so blocks never overlap, even
//!   when a deposed leader's proposal commits late), a fence or unfence
//!   applies only at the broker's current epoch. A refused batch changes
//!   nothing on any node.
//! - **Brokers and fencing.** A broker's epoch is the log index of its
//!   registration; it starts fenced, and its first heartbeat at that epoch
//!   unfences it. The leader fences a broker whose heartbeats stop for
//!   `session_timeout_ms`; a heartbeat or producer-id request with an older
//!   epoch gets STALE_BROKER_EPOCH. Fencing moves the leadership of each
//!   partition the broker led to the next unfenced in-sync replica (or to
//!   none), bumping the leader and partition epochs; unfencing gives
//!   leaderless partitions their leader back.
//! - **Placement** ([`MetadataImage::place`]) spreads leaders and replicas
//!   over the unfenced brokers by count, rack-aware for followers; a
//!   replication factor above the live broker count is
//!   INVALID_REPLICATION_FACTOR.
//! - Record and snapshot bytes are decoded with bounds and never panic; an
//!   entry that does not decode is skipped alike on every node and reported
//!   ([`Output::Corrupt`]).
//!
//! Architecture invariant: nothing in this crate touches glommio, the
//! storage layer, the network, a clock or the quorum crate.

mod codec;
pub mod codes;
mod controller;
pub mod image;
pub mod records;

pub use codec::DecodeError;
pub use codes::ApiError;
pub use controller::{
    validate_topic_name, CommittedEntry, Controller, ControllerConfig, Election, ElectionResult,
    Input, IsrChange, Output, PartitionState, ReplyId, Request, Response, OFFSETS_TOPIC,
    TOPIC_CONFIGS,
};
pub use image::{
    Applied, BrokerInfo, MetadataImage, PartitionInfo, ProducerIdBlock, TopicInfo, NO_LEADER,
};
pub use records::{decode_batch, encode_batch, Endpoint, PartitionRecord, Record, RecordBatch};
