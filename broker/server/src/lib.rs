//! Corelog's server layer: shards, connections and one handler per Kafka
//! API, on top of the protocol codec, the storage layer and the shard runtime.

pub mod config;
pub mod conn;
pub mod controller;
pub mod groups;
pub mod handlers;
pub mod metadata;
pub mod partition;
pub mod server;
pub mod shard;

use serde::{Deserialize, Serialize};

/// Index of a shard (one pinned executor per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

/// This broker's node id. A single node is node 1.
pub const NODE_ID: i32 = 1;

pub use config::ServerConfig;
pub use server::{run, run_until};
