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

/// Settings of one partition's log. Defaults are Kafka's where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

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
        Ok(())
    }
}
