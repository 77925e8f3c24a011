//! Corelog's storage layer: the partition log.
//!
//! A partition is a directory of segments. Each segment is a `.log` file of
//! Kafka record batches (magic v2) byte for byte as producers sent them (with
//! the assigned base offset), a sparse `.index` and a `.timeindex` in Kafka's
//! layout, a `.txnindex` of aborted transactions for segments with any
//! ([`txn`]), plus one `partition.checkpoint` per partition. A compacted
//! partition (`cleanup.policy=compact`) also has a `cleaner.checkpoint`
//! and, while a cleaning pass is swapped in, `.cleaned` and `.swap` files
//! ([`clean`]).
//!
//! Layering: this crate does no networking and imports no executor. Disk I/O
//! goes through the [`io::StorageIo`] and [`io::DirectFile`] traits, which the
//! shard runtime implements on glommio (io_uring, O_DIRECT) and which
//! [`io::StdIo`] implements with blocking calls for tests and tools.
//!
//! The durability contract is documented on [`log`]; the metadata quorum's
//! own log (Raft entries, hard state, snapshot) and its contract are in
//! [`quorum_log`].

pub mod batch;
pub mod cache;
pub mod checkpoint;
pub mod clean;
pub mod codec;
pub mod config;
pub mod error;
pub mod index;
pub mod io;
mod job;
mod lanes;
pub mod legacy;
pub mod log;
pub mod producer;
pub mod quorum_log;
mod read;
pub mod records;
mod recover;
mod retention;
mod scan;
mod truncate;
pub mod txn;
pub mod types;

pub use batch::ValidBatch;
pub use cache::{BatchCache, CacheId, SharedBatchCache};
pub use clean::{CleanDone, CleanJob, CleanStats, CleanerBudget, CleanerCheckpoint, CleanerState};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use error::{Result, StorageError};
pub use job::{Job, JobDone};
pub use lanes::{BackgroundCheckpoint, BackgroundCheckpointDone, Preallocation, PreallocationDone};
pub use log::{AppendInfo, PartitionLog};
pub use producer::ProducerStateView;
pub use read::{ReadChunks, ReadPlan, TimestampPlan};
pub use records::RecordLimits;
pub use recover::RecoveryReport;
pub use txn::{AbortedTxn, MarkerKind, TxnMarker, ABORTED_TXNS_PER_READ_MAX};
pub use types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};
