//! Corelog's server layer: shards, connections and one handler per Kafka
//! API, on top of the protocol codec, the storage layer and the shard runtime.
//!
//! Architecture invariant: nothing here prints with `println!` or
//! `eprintln!`. They panic when the stream cannot be written (a full log
//! disk), and a panic aborts the broker; lines go through `tracing`, whose
//! writer drops what it cannot write (`LossyStderr` in the binary).
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod admin_http;
pub mod cleaner;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod console;
pub mod controller;
pub mod coordinators;
pub mod endpoints;
pub mod error;
pub mod groups;
pub mod handlers;
pub mod log_limit;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod replica;
pub mod request_metrics;
pub mod server;
pub mod shard;
pub mod traffic;
pub mod txn;

pub use corelog_model::{
    LeaderEpoch, NodeId, ProducerEpoch, ProducerId, ShardId, TopicId, TopicPartition,
};

/// This broker's node id. A single node is node 1.
pub const NODE_ID: NodeId = NodeId(1);

/// Every partition's leader epoch: a single node never changes leaders.
pub const LEADER_EPOCH: LeaderEpoch = LeaderEpoch(0);

pub use config::ServerConfig;
pub use server::{run, run_until};
