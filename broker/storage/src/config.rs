//! Per-partition log settings, named after the Kafka topic configs they implement.

use crate::records::RecordLimits;

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fdatasync after every group-commit write (the default): `flushed_offset`
    /// follows the log end within one write.
    Always,
    /// Write at once, fdatasync at most every this many milliseconds.
    IntervalMs(u64),
}

/// `cleanup.policy`: what removes old data from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// `delete` (the default): retention by time and size deletes whole
    /// old segments.
    #[default]
    Delete,
    /// `compact`: only the cleaner shrinks the log, keeping the latest
    /// record of every key; retention by time and size does not apply.
    Compact,
    /// `compact,delete` (or `delete,compact`): both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Parses Kafka's `cleanup.policy` value: a comma-separated list of
    /// `delete` and `compact` (spaces around items allowed, order free).
    pub fn parse(value: &str) -> Result<CleanupPolicy, String> {
        let (mut delete, mut compact) = (false, false);
        for item in value.split(',').map(str::trim) {
            match item {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return Err(format!("cleanup.policy: unknown value {item:?}")),
            }
        }
        match (delete, compact) {
            (true, false) => Ok(CleanupPolicy::Delete),
            (false, true) => Ok(CleanupPolicy::Compact),
            (true, true) => Ok(CleanupPolicy::CompactDelete),
            (false, false) => Err("cleanup.policy may not be empty".into()),
        }
    }

    /// Kafka's spelling of the policy.
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Whether retention by time and size deletes old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the cleaner compacts the log (and keyless records are refused).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// Settings of one partition's log. Defaults are Kafka's where Kafka has one.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before one grows past this.
    pub segment_bytes_max: u64,
    /// `segment.ms`: roll a segment this long after its first write.
    pub segment_ms: i64,
    /// `retention.ms`: delete whole segments whose newest record is older. None keeps forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest segments while the log is larger. None: no limit.
    pub retention_bytes: Option<u64>,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `flush.policy`: see [`FlushPolicy`].
    pub flush_policy: FlushPolicy,
    /// The largest step in which segment files grow, reserved ahead of the
    /// data so that data writes do not change file metadata. The step grows
    /// with the segment from 1 MiB, so idle partitions reserve little.
    pub preallocate_step_bytes: u64,
    /// The most bytes one group-commit write carries; a larger backlog takes
    /// several writes.
    pub write_bytes_max: usize,
    /// Write a checkpoint (recovery point) after this many flushed bytes.
    /// Bounds how much of the log a restart re-validates, whatever the log size.
    ///
    /// The default, 512 MiB, is half a default segment: Kafka re-validates
    /// the whole active segment after an unclean shutdown. Measured here, a
    /// crash with 500 MiB after the checkpoint made the open take 655 ms
    /// (`corelog-bench storage-open --crash-tail-mib 500`), so a crash costs
    /// a busy partition up to about two thirds of a second of open time;
    /// with 16 MiB it was 21 ms. Each checkpoint costs a few fsyncs
    /// on the thread that also runs the large writes and fdatasyncs: at
    /// 64 MiB a partition taking 1.5 GiB/s checkpointed 23 times a second,
    /// and its 1 MiB append p99 was about a fifth higher than with
    /// checkpoints only at rolls (perf-reports/2026-12-03-storage-checkpoint-interval.md).
    pub checkpoint_interval_bytes: u64,
    /// How many segment files that retention (or a moved log start) deleted
    /// the partition keeps, renamed, for its next segments to be written
    /// over. Overwriting blocks that were written once is about twice as
    /// fast on SSDs as writing new space, and it needs no zero fill (see
    /// `ARCHITECTURE.md`). The price is disk space: up to this many old
    /// segment files beyond what retention keeps. 0 deletes them outright.
    pub segment_files_recycled_max: usize,
    /// What checking a batch's records before it is appended may cost (see
    /// [`crate::records`]).
    pub record_limits: RecordLimits,
    /// `cleanup.policy`: see [`CleanupPolicy`]. Retention by time and
    /// size (`retention.ms`, `retention.bytes`) applies only when the
    /// policy includes delete; a moved log start applies always.
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: a compacted log is cleaned once the
    /// bytes not yet cleaned are at least this share of the cleanable
    /// bytes. Between 0 and 1.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this
    /// long after its timestamp (a segment is cleanable once its newest
    /// record is this old).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest uncleaned record is
    /// older than this is cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone (and a transaction
    /// marker) stays in a compacted log after the cleaner first passed it,
    /// so that a consumer reading from the start sees it.
    pub delete_retention_ms: i64,
}

// `min_cleanable_dirty_ratio` is an f64, compared exactly: settings are equal
// when they were set to the same value, which is all `Eq` is used for.
impl Eq for LogConfig {}

/// The largest segment a 32-bit index position can address.
pub const SEGMENT_BYTES_LIMIT: u64 = i32::MAX as u64;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            index_interval_bytes: 4096,
            flush_policy: FlushPolicy::Always,
            preallocate_step_bytes: 32 << 20,
            write_bytes_max: 4 << 20,
            checkpoint_interval_bytes: 512 << 20,
            segment_files_recycled_max: 1,
            record_limits: RecordLimits::default(),
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}

impl LogConfig {
    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes_max < 14 || self.segment_bytes_max > SEGMENT_BYTES_LIMIT {
            return Err(format!(
                "segment.bytes must be between 14 and {SEGMENT_BYTES_LIMIT}, got {}",
                self.segment_bytes_max
            ));
        }
        if self.segment_ms <= 0 {
            return Err(format!(
                "segment.ms must be positive, got {}",
                self.segment_ms
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index.interval.bytes must be positive".into());
        }
        if self.preallocate_step_bytes == 0 || !self.preallocate_step_bytes.is_multiple_of(4096) {
            return Err("preallocate step must be a positive multiple of 4096".into());
        }
        if self.write_bytes_max < 4096 {
            return Err("write_bytes_max must be at least 4096".into());
        }
        if self.record_limits.decompressed_bytes_max < 1024 {
            return Err("batch_decompressed_bytes_max must be at least 1024".into());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(format!(
                "min.cleanable.dirty.ratio must be between 0 and 1, got {}",
                self.min_cleanable_dirty_ratio
            ));
        }
        if self.min_compaction_lag_ms < 0 {
            return Err("min.compaction.lag.ms may not be negative".into());
        }
        if self.max_compaction_lag_ms < 1 {
            return Err("max.compaction.lag.ms must be positive".into());
        }
        if self.max_compaction_lag_ms < self.min_compaction_lag_ms {
            return Err("max.compaction.lag.ms may not be below min.compaction.lag.ms".into());
        }
        if self.delete_retention_ms < 0 {
            return Err("delete.retention.ms may not be negative".into());
        }
        Ok(())
    }
}
