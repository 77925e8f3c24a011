//! [`DeviceWindows`]: the device measured between the parts of a workload,
//! with the same helpers (and the same scratch-file layout) as
//! [`measure_limits`](super::measure_limits).

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    check_free_space, fdatasync, fdatasync_latency, format_block, invalid, new_ns_histogram,
    open_direct, preallocate_and_fill, write_and_sync, write_sequential, AlignedBuf,
    FdatasyncLatency, Limits, LimitsOptions, ScratchDir, WriteBandwidth, WriteMode,
    DIRECT_IO_ALIGN_BYTES, MIB,
};

/// The device measured in short windows between a workload's own windows,
/// for one block size: O_DIRECT write bandwidth and write+fdatasync latency.
///
/// Why: a virtual disk's speed can swing by 2x within a minute (seen on the
/// project's machine: the 1 MiB bandwidth of one `measure_limits` pass was
/// followed, a minute later, by a log running at 43% of it, and by 96% in
/// the next run). A workload compared with the device in the same minutes,
/// window by window, measures the workload, not the disk's mood. The
/// windows write to scratch files of their own, preallocated and filled
/// once (the same layout as [`measure_limits`](super::measure_limits)), so
/// each is a pure overwrite.
pub struct DeviceWindows {
    block_bytes: u64,
    buf: AlignedBuf,
    bandwidth_file: File,
    bandwidth_wrap_bytes: u64,
    bandwidth_offset: u64,
    bandwidth_bytes: u64,
    bandwidth_s: f64,
    sync_file: File,
    sync_wrap_bytes: u64,
    sync_offset: u64,
    sync_ns: Histogram<u64>,
    total_ns: Histogram<u64>,
    /// Appending writes into new space, for a workload that writes there
    /// (a fresh log): None when not asked for.
    growing: Option<GrowingWindows>,
    windows: u32,
    window_s: f64,
    // Last, so the files close before their directory is removed.
    _scratch: ScratchDir,
}

/// The new-space part of [`DeviceWindows`]: O_DIRECT writes appended to a
/// file, so that each allocates blocks and moves the file's end, as a log's
/// writes do before retention hands it old files to write over.
struct GrowingWindows {
    file: File,
    /// The file's end: where the next window's writes start.
    end_bytes: u64,
    bytes: u64,
    s: f64,
}

/// The most a growing window file holds before the next window starts it
/// again from empty (outside the timed part), to bound disk use.
const GROWING_WINDOW_FILE_BYTES_MAX: u64 = 1 << 30;

/// A growing window starts from empty when less than this is left below
/// [`GROWING_WINDOW_FILE_BYTES_MAX`], so that it is not cut short by it.
const GROWING_WINDOW_ROOM_BYTES_MIN: u64 = 256 * MIB;

impl DeviceWindows {
    /// Creates and fills the scratch files in `dir` (sizes from `opts`).
    /// With `growing`, each window also measures the bandwidth of writes
    /// into new space (see [`DeviceWindows::window`]).
    pub fn new(
        dir: &Path,
        block_bytes: u64,
        opts: &LimitsOptions,
        growing: bool,
    ) -> io::Result<Self> {
        if block_bytes == 0 || !block_bytes.is_multiple_of(DIRECT_IO_ALIGN_BYTES as u64) {
            return Err(invalid(format!(
                "device window block size {block_bytes} is not a positive multiple of {DIRECT_IO_ALIGN_BYTES}"
            )));
        }
        let bandwidth_file_bytes = opts.bandwidth_file_bytes.max(block_bytes);
        let sync_file_bytes = opts.fdatasync_file_bytes.max(block_bytes);
        let growing_file_bytes = if growing {
            GROWING_WINDOW_FILE_BYTES_MAX
        } else {
            0
        };
        check_free_space(
            dir,
            bandwidth_file_bytes + sync_file_bytes + growing_file_bytes,
        )?;
        let scratch = ScratchDir::create(dir, "device-windows")?;
        let growing = if growing {
            Some(GrowingWindows {
                file: open_direct(&scratch.path.join("growing.dat"), true)?,
                end_bytes: 0,
                bytes: 0,
                s: 0.0,
            })
        } else {
            None
        };
        let bandwidth_file = open_direct(&scratch.path.join("bandwidth.dat"), true)?;
        preallocate_and_fill(&bandwidth_file, bandwidth_file_bytes)?;
        let sync_file = open_direct(&scratch.path.join("fdatasync.dat"), true)?;
        preallocate_and_fill(&sync_file, sync_file_bytes)?;
        Ok(DeviceWindows {
            block_bytes,
            buf: AlignedBuf::new(block_bytes as usize)?,
            bandwidth_file,
            bandwidth_wrap_bytes: bandwidth_file_bytes - bandwidth_file_bytes % block_bytes,
            bandwidth_offset: 0,
            bandwidth_bytes: 0,
            bandwidth_s: 0.0,
            sync_file,
            sync_wrap_bytes: sync_file_bytes - sync_file_bytes % block_bytes,
            sync_offset: 0,
            sync_ns: new_ns_histogram()?,
            total_ns: new_ns_histogram()?,
            growing,
            windows: 0,
            window_s: 0.0,
            _scratch: scratch,
        })
    }

    /// One window of `time`: half of it sequential writes (then one
    /// fdatasync), half of it write+fdatasync pairs. With growing windows,
    /// the sequential half is split: overwrites of written blocks, then
    /// writes appended to a growing file (then one fdatasync, which also
    /// commits the new blocks and the file size).
    pub fn window(&mut self, time: Duration) -> io::Result<()> {
        let half = time / 2;
        let sequential = if self.growing.is_some() {
            half / 2
        } else {
            half
        };
        let started = Instant::now();
        self.bandwidth_bytes += write_sequential(
            &self.bandwidth_file,
            &self.buf,
            &mut self.bandwidth_offset,
            self.bandwidth_wrap_bytes,
            u64::MAX,
            sequential,
        )?;
        self.bandwidth_s += started.elapsed().as_secs_f64();
        if let Some(g) = self.growing.as_mut() {
            if g.end_bytes + GROWING_WINDOW_ROOM_BYTES_MIN > GROWING_WINDOW_FILE_BYTES_MAX {
                // Start from empty, untimed, and make the freed space
                // durable before the timed writes.
                g.file.set_len(0)?;
                fdatasync(&g.file)?;
                g.end_bytes = 0;
            }
            let room_bytes = GROWING_WINDOW_FILE_BYTES_MAX.saturating_sub(g.end_bytes);
            let growing_started = Instant::now();
            // Never wraps: every write lands past the file's end.
            let written = write_sequential(
                &g.file,
                &self.buf,
                &mut g.end_bytes,
                u64::MAX,
                room_bytes,
                sequential,
            )?;
            g.bytes += written;
            g.s += growing_started.elapsed().as_secs_f64();
        }
        write_and_sync(
            &self.sync_file,
            &self.buf,
            &mut self.sync_offset,
            self.sync_wrap_bytes,
            u64::MAX,
            half,
            &mut self.sync_ns,
            &mut self.total_ns,
        )?;
        self.windows += 1;
        self.window_s += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// The bandwidth over all windows so far.
    pub fn bandwidth_bytes_per_s(&self) -> f64 {
        self.bandwidth_bytes as f64 / self.bandwidth_s.max(1e-9)
    }

    /// The bandwidth of writes into new space over all windows so far, if
    /// the windows measure it.
    pub fn growing_bandwidth_bytes_per_s(&self) -> Option<f64> {
        self.growing
            .as_ref()
            .map(|g| g.bytes as f64 / g.s.max(1e-9))
    }

    /// The fdatasync latency over all windows so far.
    pub fn fdatasync_latency(&self) -> FdatasyncLatency {
        fdatasync_latency(self.block_bytes, &self.sync_ns, &self.total_ns)
    }

    /// `base` with its preallocated bandwidth and its fdatasync latency at
    /// this block size replaced by (or, if absent, extended with) the
    /// windows' figures, and a line in [`Limits::remeasured`] that says so
    /// and keeps the replaced values.
    pub fn limits(&self, base: &Limits) -> Limits {
        let mut limits = base.clone();
        let block = self.block_bytes;
        let bandwidth = WriteBandwidth {
            block_bytes: block,
            mode: WriteMode::Preallocated,
            bytes_written: self.bandwidth_bytes,
            duration_s: self.bandwidth_s,
            write_bandwidth_bytes_per_s: self.bandwidth_bytes_per_s(),
        };
        let sync = self.fdatasync_latency();
        let before = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.0}"));
        let old_bandwidth = limits
            .write_bandwidth
            .iter()
            .position(|w| w.block_bytes == block && w.mode == WriteMode::Preallocated);
        let old_sync = limits
            .fdatasync_latency
            .iter()
            .position(|f| f.block_bytes == block);
        limits.remeasured.push(format!(
            "preallocated write bandwidth and fdatasync latency at {}: measured in {} windows \
             ({:.1} s in all) interleaved with the workload's own; the single pass before it had \
             {} MB/s, fdatasync p99 {} us, write+fdatasync p99 {} us; the windows had {:.0} MB/s, \
             {:.0} us, {:.0} us",
            format_block(block),
            self.windows,
            self.window_s,
            before(
                old_bandwidth.map(|i| limits.write_bandwidth[i].write_bandwidth_bytes_per_s / 1e6)
            ),
            before(old_sync.map(|i| limits.fdatasync_latency[i].fdatasync_p99_us)),
            before(old_sync.map(|i| limits.fdatasync_latency[i].write_fdatasync_p99_us)),
            bandwidth.write_bandwidth_bytes_per_s / 1e6,
            sync.fdatasync_p99_us,
            sync.write_fdatasync_p99_us,
        ));
        match old_bandwidth {
            Some(i) => limits.write_bandwidth[i] = bandwidth,
            None => limits.write_bandwidth.push(bandwidth),
        }
        if let Some(g) = &self.growing {
            let growing = WriteBandwidth {
                block_bytes: block,
                mode: WriteMode::Growing,
                bytes_written: g.bytes,
                duration_s: g.s,
                write_bandwidth_bytes_per_s: g.bytes as f64 / g.s.max(1e-9),
            };
            let old = limits
                .write_bandwidth
                .iter()
                .position(|w| w.block_bytes == block && w.mode == WriteMode::Growing);
            limits.remeasured.push(format!(
                "growing-file write bandwidth at {}: measured in the same {} windows; the single \
                 pass before it had {} MB/s; the windows had {:.0} MB/s",
                format_block(block),
                self.windows,
                before(old.map(|i| limits.write_bandwidth[i].write_bandwidth_bytes_per_s / 1e6)),
                growing.write_bandwidth_bytes_per_s / 1e6,
            ));
            match old {
                Some(i) => limits.write_bandwidth[i] = growing,
                None => limits.write_bandwidth.push(growing),
            }
        }
        match old_sync {
            Some(i) => limits.fdatasync_latency[i] = sync,
            None => limits.fdatasync_latency.push(sync),
        }
        limits
    }
}
