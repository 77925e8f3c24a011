//! What the group and the transaction coordinators share on a shard: the
//! table they are kept in ([`table`], below the shard) and opening the
//! partition of an internal log one of them coordinates
//! ([`open_internal_log`]).

use std::path::PathBuf;

use corelog_coordination::codes;
use corelog_storage::{CacheId, LogConfig};

use crate::metadata::partition_dir;
use crate::partition::Partition;
use crate::shard::Shard;

pub mod table;

/// Opens partition `index` of the internal topic `topic` (the offsets log,
/// the transaction state log) from this shard's data directory, creating
/// it if absent, and logs what recovery found. `what` names the log in the
/// messages ("offsets partition"). Returns the log and its directory, or
/// COORDINATOR_NOT_AVAILABLE (after logging why) when it cannot be opened.
pub async fn open_internal_log(
    shard: &Shard,
    topic: &str,
    index: u32,
    log_config: LogConfig,
    what: &str,
) -> Result<(Partition, PathBuf), i16> {
    let dir = partition_dir(&shard.config().data_dir, topic, index as i32);
    let cache_id = CacheId(shard.next_cache_id());
    let (log, report) = Partition::open(dir.clone(), log_config, shard.cache().clone(), cache_id)
        .await
        .map_err(|e| {
            tracing::error!(dir = %dir.display(), error = %e, "cannot open {what}");
            codes::COORDINATOR_NOT_AVAILABLE
        })?;
    if report.scanned_bytes > 0 || report.torn_tail_position_bytes.is_some() {
        tracing::info!(dir = %dir.display(), ?report, "{what} recovered");
    }
    Ok((log, dir))
}
