//! `--probe-disk`: measure the data directory's device the way Seastar's iotune does.
//!
//! The probe writes a scratch file with O_DIRECT, then measures sequential write and read
//! bandwidth for every block size and queue depth (one thread per in-flight request, each
//! streaming through its own region of the file), and the latency of fdatasync after a small
//! direct write. From the write curve it derives the write size beyond which bandwidth stops
//! growing and the number of writes in flight needed to reach it.

use crate::io_properties::{rfc3339_utc, IoProperties, Step, FORMAT_VERSION};
use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Alignment for O_DIRECT buffers, offsets and sizes; 4 KiB satisfies every current device.
pub const ALIGN_BYTES: usize = 4096;

/// A block size reaching this fraction of peak bandwidth counts as "at peak".
const PEAK_FRACTION: f64 = 0.9;

/// Errors from the probe, each with the context of what was being done.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe options: {0}")]
    Options(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot allocate a {0}-byte aligned buffer")]
    Alloc(usize),
}

/// How to run the probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Directory on the device to measure (the broker's data directory).
    pub dir: PathBuf,
    /// Size of the scratch file; larger than the device's write cache gives truer numbers.
    pub file_size_bytes: u64,
    /// How long each (operation, block size, queue depth) step runs.
    pub step_duration: Duration,
    /// Block sizes to measure, each a multiple of 4096.
    pub block_sizes_bytes: Vec<u64>,
    /// Queue depths to measure.
    pub queue_depths: Vec<u32>,
    /// Number of fdatasync latency samples.
    pub fdatasync_samples: u32,
}

impl ProbeOptions {
    /// Defaults matching a real run: a 1 GiB file, 4 KiB..1 MiB blocks, depths 1..16, and a
    /// quarter second per step (about half a minute in total).
    pub fn new(dir: impl Into<PathBuf>) -> ProbeOptions {
        ProbeOptions {
            dir: dir.into(),
            file_size_bytes: 1 << 30,
            step_duration: Duration::from_millis(250),
            block_sizes_bytes: (12..=20).map(|s| 1u64 << s).collect(),
            queue_depths: vec![1, 2, 4, 8, 16],
            fdatasync_samples: 200,
        }
    }

    fn validate(&self) -> Result<u64, ProbeError> {
        let bad = |m: String| Err(ProbeError::Options(m));
        if self.block_sizes_bytes.is_empty() || self.queue_depths.is_empty() {
            return bad("need at least one block size and one queue depth".into());
        }
        if let Some(b) = self
            .block_sizes_bytes
            .iter()
            .find(|b| **b == 0 || **b % ALIGN_BYTES as u64 != 0 || **b > 64 << 20)
        {
            return bad(format!(
                "block size {b} must be a positive multiple of {ALIGN_BYTES} up to 64 MiB"
            ));
        }
        if let Some(q) = self.queue_depths.iter().find(|q| **q == 0 || **q > 256) {
            return bad(format!("queue depth {q} must be between 1 and 256"));
        }
        let max_block = self.block_sizes_bytes.iter().copied().max().unwrap_or(0);
        // Round the file down to whole max-size blocks so every block size tiles it.
        let size = self.file_size_bytes / max_block * max_block;
        if size == 0 {
            return bad(format!(
                "file size {} is smaller than the largest block size {max_block}",
                self.file_size_bytes
            ));
        }
        Ok(size)
    }
}

/// A heap buffer aligned for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the buffer is plain bytes owned exclusively by this value.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// Allocates `len` bytes aligned to 4096 and fills them with pseudo-random bytes, so
    /// devices that compress or deduplicate cannot shortcut the writes.
    fn new(len: usize, seed: u64) -> Result<AlignedBuf, ProbeError> {
        let layout =
            Layout::from_size_align(len.max(1), ALIGN_BYTES).map_err(|_| ProbeError::Alloc(len))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        if ptr.is_null() {
            return Err(ProbeError::Alloc(len));
        }
        let mut buf = AlignedBuf { ptr, layout };
        let mut x = seed | 1;
        for chunk in buf.as_mut_slice().chunks_mut(8) {
            // xorshift64: cheap and good enough to defeat compression.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(buf)
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees exclusive access. Bytes are written by
        // the fill loop before any read of them.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with exactly this layout in `new`.
        unsafe { alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Removes the scratch file however the probe ends.
struct ScratchFile {
    path: PathBuf,
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Read,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Read => "read",
        }
    }
}

fn io_err(what: impl Into<String>, path: &Path, source: std::io::Error) -> ProbeError {
    ProbeError::Io {
        what: what.into(),
        path: path.to_path_buf(),
        source,
    }
}

/// Runs one step: `depth` threads each stream `block` sized requests through their own region
/// of the file until the duration has passed. Returns (bytes, requests, elapsed).
fn run_step(
    file: &File,
    path: &Path,
    op: Op,
    block: u64,
    depth: u32,
    size: u64,
    duration: Duration,
) -> Result<(u64, u64, Duration), ProbeError> {
    let slots = size / block;
    let barrier = Barrier::new(depth as usize + 1);
    let mut bufs = Vec::with_capacity(depth as usize);
    for t in 0..depth {
        bufs.push(AlignedBuf::new(
            block as usize,
            0x9e37_79b9_7f4a_7c15 ^ u64::from(t),
        )?);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = bufs
            .into_iter()
            .enumerate()
            .map(|(t, mut buf)| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<(u64, u64), std::io::Error> {
                    // Spread the threads' starting points over the file so each one streams
                    // sequentially through its own region, like iotune's parallel streams.
                    let mut slot = (t as u64 * slots) / u64::from(depth);
                    let mut bytes = 0u64;
                    let mut requests = 0u64;
                    barrier.wait();
                    let deadline = Instant::now() + duration;
                    loop {
                        let offset = slot * block;
                        let n = match op {
                            Op::Write => file.write_at(buf.as_slice(), offset)?,
                            Op::Read => file.read_at(buf.as_mut_slice(), offset)?,
                        };
                        if n == 0 {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!("zero-length {} at offset {offset}", op.name()),
                            ));
                        }
                        bytes += n as u64;
                        requests += 1;
                        slot = (slot + 1) % slots;
                        if Instant::now() >= deadline {
                            return Ok((bytes, requests));
                        }
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut total = (0u64, 0u64);
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok((b, r))) => {
                    total.0 += b;
                    total.1 += r;
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(std::io::Error::other("probe thread panicked"));
                }
            }
        }
        let elapsed = start.elapsed();
        match first_err {
            Some(e) => Err(io_err(
                format!("{} {block}-byte blocks at depth {depth} on", op.name()),
                path,
                e,
            )),
            None => Ok((total.0, total.1, elapsed)),
        }
    })
}

/// Returns the value at quantile `q` (0..=1) of sorted samples.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Picks the recommended write chunk and depth from the write steps.
///
/// The chunk is the smallest block size whose best bandwidth (over depths) reaches 90% of the
/// peak; the depth is the smallest depth reaching 90% of that block size's best bandwidth.
pub fn recommend(write_steps: &[Step]) -> Option<(u64, u32)> {
    let peak = write_steps.iter().map(|s| s.bandwidth_bytes_per_s).max()?;
    let mut sizes: Vec<u64> = write_steps.iter().map(|s| s.block_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let best_at = |size: u64| {
        write_steps
            .iter()
            .filter(|s| s.block_bytes == size)
            .map(|s| s.bandwidth_bytes_per_s)
            .max()
            .unwrap_or(0)
    };
    let chunk = sizes
        .into_iter()
        .find(|&size| best_at(size) as f64 >= PEAK_FRACTION * peak as f64)?;
    let best = best_at(chunk);
    let mut at_chunk: Vec<&Step> = write_steps
        .iter()
        .filter(|s| s.block_bytes == chunk)
        .collect();
    at_chunk.sort_by_key(|s| s.queue_depth);
    let depth = at_chunk
        .iter()
        .find(|s| s.bandwidth_bytes_per_s as f64 >= PEAK_FRACTION * best as f64)
        .map(|s| s.queue_depth)?;
    Some((chunk, depth))
}

/// Runs the probe and returns the measured properties (the caller decides where to save them).
pub fn probe_disk(opts: &ProbeOptions) -> Result<IoProperties, ProbeError> {
    let size = opts.validate()?;
    let dir = std::fs::canonicalize(&opts.dir)
        .map_err(|e| io_err("cannot resolve directory", &opts.dir, e))?;
    let path = dir.join(format!(".corelog-probe-{}.tmp", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .map_err(|e| {
            let what = if e.raw_os_error() == Some(libc::EINVAL) {
                "the filesystem does not support O_DIRECT; cannot open"
            } else {
                "cannot create scratch file"
            };
            io_err(what, &path, e)
        })?;
    let _scratch = ScratchFile { path: path.clone() };

    // Fill the file first: reading never-written extents returns zeros without touching the
    // device and would overstate read bandwidth. This also warms the device up.
    let max_block = opts
        .block_sizes_bytes
        .iter()
        .copied()
        .max()
        .unwrap_or(1 << 20);
    let fill = AlignedBuf::new(max_block as usize, 0x5eed)?;
    let mut offset = 0;
    while offset < size {
        let n = file
            .write_at(fill.as_slice(), offset)
            .map_err(|e| io_err("cannot fill scratch file", &path, e))?;
        if n == 0 {
            return Err(io_err(
                "cannot fill scratch file",
                &path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "zero-length write"),
            ));
        }
        offset += n as u64;
    }
    file.sync_data()
        .map_err(|e| io_err("cannot fdatasync scratch file", &path, e))?;
    drop(fill);

    let mut steps = Vec::new();
    for op in [Op::Write, Op::Read] {
        for &block in &opts.block_sizes_bytes {
            for &depth in &opts.queue_depths {
                let (bytes, requests, elapsed) =
                    run_step(&file, &path, op, block, depth, size, opts.step_duration)?;
                if op == Op::Write {
                    // Drain the device's cache so this step's writes do not slow the next.
                    file.sync_data()
                        .map_err(|e| io_err("cannot fdatasync scratch file", &path, e))?;
                }
                let secs = elapsed.as_secs_f64().max(1e-9);
                steps.push(Step {
                    op: op.name().to_string(),
                    block_bytes: block,
                    queue_depth: depth,
                    bandwidth_bytes_per_s: (bytes as f64 / secs) as u64,
                    iops: (requests as f64 / secs) as u64,
                });
            }
        }
    }

    // fdatasync latency after a small direct write, which is what a produce with acks=all
    // costs on top of the write itself.
    let small = AlignedBuf::new(ALIGN_BYTES, 0xfd)?;
    let small_slots = (size / ALIGN_BYTES as u64).max(1);
    let mut lat_us = Vec::with_capacity(opts.fdatasync_samples as usize);
    for i in 0..u64::from(opts.fdatasync_samples.max(1)) {
        let off = (i * 7919 % small_slots) * ALIGN_BYTES as u64;
        file.write_at(small.as_slice(), off)
            .map_err(|e| io_err("cannot write before fdatasync", &path, e))?;
        let t = Instant::now();
        file.sync_data()
            .map_err(|e| io_err("cannot fdatasync scratch file", &path, e))?;
        // Round up so a measured sync is never reported as zero microseconds.
        lat_us.push((t.elapsed().as_nanos() as u64).div_ceil(1000).max(1));
    }
    lat_us.sort_unstable();

    let writes: Vec<Step> = steps.iter().filter(|s| s.op == "write").cloned().collect();
    let (chunk, depth) = recommend(&writes)
        .ok_or_else(|| ProbeError::Options("no write bandwidth was measured".to_string()))?;
    let peak = |op: &str| {
        steps
            .iter()
            .filter(|s| s.op == op)
            .map(|s| s.bandwidth_bytes_per_s)
            .max()
            .unwrap_or(0)
            .max(1)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(IoProperties {
        format_version: FORMAT_VERSION,
        path: dir.display().to_string(),
        measured_at: rfc3339_utc(now),
        write_bandwidth_bytes_per_s: peak("write"),
        read_bandwidth_bytes_per_s: peak("read"),
        fdatasync_p50_us: quantile(&lat_us, 0.5),
        fdatasync_p99_us: quantile(&lat_us, 0.99),
        write_chunk_bytes: chunk,
        write_queue_depth: depth,
        probe_file_bytes: size,
        probe_step_ms: opts.step_duration.as_millis() as u64,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(block: u64, depth: u32, bw: u64) -> Step {
        Step {
            op: "write".into(),
            block_bytes: block,
            queue_depth: depth,
            bandwidth_bytes_per_s: bw,
            iops: bw / block,
        }
    }

    #[test]
    fn recommendation_picks_knee() {
        let steps = vec![
            step(4096, 1, 100),
            step(4096, 4, 300),
            step(65536, 1, 600),
            step(65536, 4, 950),
            step(1 << 20, 1, 900),
            step(1 << 20, 4, 1000),
        ];
        assert_eq!(recommend(&steps), Some((65536, 4)));
        assert_eq!(recommend(&[]), None);
    }

    #[test]
    fn quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn options_are_validated() {
        let mut o = ProbeOptions::new("/tmp");
        o.block_sizes_bytes = vec![1000];
        assert!(o.validate().is_err());
        let mut o = ProbeOptions::new("/tmp");
        o.file_size_bytes = 4096;
        assert!(o.validate().is_err());
        let mut o = ProbeOptions::new("/tmp");
        o.queue_depths = vec![0];
        assert!(o.validate().is_err());
    }
}
