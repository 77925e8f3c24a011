//! `corelog-bench limits`: measures the machine's ceilings (O_DIRECT write
//! bandwidth, fdatasync latency, loopback TCP bandwidth) so that every run can
//! state its results as fractions of what the hardware did in the same run.
//!
//! Only std and libc are used (the write buffers are the storage layer's
//! `AlignedBuf`, itself std and libc, so that the device is measured from
//! the same kind of memory the log writes from): the point is to measure the
//! kernel and device, not an I/O runtime, so the numbers stay comparable as
//! the broker changes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

mod device_windows;

pub use device_windows::DeviceWindows;

/// Alignment required for O_DIRECT buffers, offsets and lengths on every
/// common Linux block device (logical block size is at most 4 KiB).
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Block sizes measured by default.
pub const DEFAULT_BLOCK_SIZES_BYTES: [u64; 5] = [4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB];

/// How a write-bandwidth case lays out its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Overwriting an fallocated file whose blocks were written once before
    /// measuring, the steady state of a broker that recycles segments.
    Preallocated,
    /// Appending to a fresh file, so every write also allocates blocks and
    /// extends the file size (what a broker pays without preallocation).
    Growing,
}

/// Tuning knobs for [`measure_limits`]. Use [`LimitsOptions::full`] or
/// [`LimitsOptions::quick`] and adjust fields as needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsOptions {
    /// Whether these are the reduced CI settings (recorded in the output).
    pub quick: bool,
    /// Block sizes for the preallocated bandwidth and fdatasync cases.
    pub block_sizes_bytes: Vec<u64>,
    /// Block sizes for the growing-file bandwidth cases.
    pub growing_block_sizes_bytes: Vec<u64>,
    /// Size of the preallocated bandwidth file; writes wrap around in it.
    pub bandwidth_file_bytes: u64,
    /// Time limit for each bandwidth case.
    pub bandwidth_time_per_case: Duration,
    /// Byte limit for each bandwidth case (whichever limit comes first ends it).
    pub bandwidth_max_bytes_per_case: u64,
    /// Size of the preallocated fdatasync file; writes wrap around in it.
    pub fdatasync_file_bytes: u64,
    /// Iteration limit for each fdatasync case.
    pub fdatasync_max_iterations: u64,
    /// Time limit for each fdatasync case.
    pub fdatasync_time_per_case: Duration,
    /// How long the loopback TCP sender sends.
    pub tcp_duration: Duration,
    /// Size of each loopback TCP write.
    pub tcp_write_bytes: usize,
}

impl Default for LimitsOptions {
    fn default() -> Self {
        Self::full()
    }
}

impl LimitsOptions {
    /// The default run: about 30-40 s on a typical SSD.
    pub fn full() -> Self {
        LimitsOptions {
            quick: false,
            block_sizes_bytes: DEFAULT_BLOCK_SIZES_BYTES.to_vec(),
            growing_block_sizes_bytes: vec![16 * KIB, MIB],
            bandwidth_file_bytes: 256 * MIB,
            bandwidth_time_per_case: Duration::from_secs(2),
            bandwidth_max_bytes_per_case: 4096 * MIB,
            fdatasync_file_bytes: 16 * MIB,
            fdatasync_max_iterations: 20_000,
            fdatasync_time_per_case: Duration::from_millis(2500),
            tcp_duration: Duration::from_secs(2),
            tcp_write_bytes: MIB as usize,
        }
    }

    /// The CI run: the same cases with short time limits, under ~10 s.
    pub fn quick() -> Self {
        LimitsOptions {
            quick: true,
            bandwidth_file_bytes: 32 * MIB,
            bandwidth_time_per_case: Duration::from_millis(300),
            bandwidth_max_bytes_per_case: 512 * MIB,
            fdatasync_file_bytes: 4 * MIB,
            fdatasync_max_iterations: 2_000,
            fdatasync_time_per_case: Duration::from_millis(400),
            tcp_duration: Duration::from_millis(500),
            ..Self::full()
        }
    }

    /// Bytes of scratch space the run needs at most.
    fn scratch_bytes(&self) -> u64 {
        let growing = self
            .bandwidth_max_bytes_per_case
            .min(self.bandwidth_file_bytes);
        self.bandwidth_file_bytes + self.fdatasync_file_bytes + growing
    }
}

/// Sequential O_DIRECT write bandwidth for one block size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteBandwidth {
    /// Size of each `pwrite`.
    pub block_bytes: u64,
    /// File layout during the measurement.
    pub mode: WriteMode,
    /// Bytes written in the measured window.
    pub bytes_written: u64,
    /// Measured window, including one closing fdatasync.
    pub duration_s: f64,
    /// `bytes_written / duration_s`.
    pub write_bandwidth_bytes_per_s: f64,
}

/// fdatasync latency after an O_DIRECT write of one block size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdatasyncLatency {
    /// Size of the write preceding each fdatasync.
    pub block_bytes: u64,
    /// Number of write+fdatasync iterations.
    pub samples: u64,
    /// fdatasync alone.
    pub fdatasync_p50_us: f64,
    /// fdatasync alone.
    pub fdatasync_p99_us: f64,
    /// fdatasync alone.
    pub fdatasync_p999_us: f64,
    /// fdatasync alone.
    pub fdatasync_max_us: f64,
    /// The whole durable append (pwrite then fdatasync).
    pub write_fdatasync_p50_us: f64,
    /// The whole durable append (pwrite then fdatasync).
    pub write_fdatasync_p99_us: f64,
}

/// Single-stream loopback TCP bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpBandwidth {
    /// Size of each `write` by the sender.
    pub write_bytes: u64,
    /// Bytes the receiver read.
    pub bytes_received: u64,
    /// From the receiver's accept to end of stream.
    pub duration_s: f64,
    /// `bytes_received / duration_s`.
    pub bandwidth_bytes_per_s: f64,
}

/// The machine's ceilings, as written to `limits.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Directory whose filesystem was measured.
    pub dir: String,
    /// When the measurement started (Unix seconds).
    pub measured_at_unix_s: u64,
    /// Wall time of the whole measurement.
    pub total_duration_s: f64,
    /// Options used.
    pub options: LimitsOptions,
    /// One entry per (block size, mode).
    pub write_bandwidth: Vec<WriteBandwidth>,
    /// One entry per block size.
    pub fdatasync_latency: Vec<FdatasyncLatency>,
    /// Loopback TCP in one stream.
    pub loopback_tcp: TcpBandwidth,
    /// Entries that were not measured in the one pass above, and how they
    /// were measured instead (see [`DeviceWindows`]). Empty for a plain
    /// `measure_limits`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remeasured: Vec<String>,
}

impl Limits {
    /// Write bandwidth for `block_bytes` in `mode`, using the closest measured
    /// block size that is not larger (or the smallest one if all are larger),
    /// since smaller blocks bound what a workload using that size can reach.
    pub fn write_bandwidth_bytes_per_s(&self, block_bytes: u64, mode: WriteMode) -> Option<f64> {
        let cases: Vec<(u64, f64)> = self
            .write_bandwidth
            .iter()
            .filter(|w| w.mode == mode)
            .map(|w| (w.block_bytes, w.write_bandwidth_bytes_per_s))
            .collect();
        pick_for_block(&cases, block_bytes)
    }

    /// fdatasync p99 for `block_bytes`, chosen like
    /// [`Limits::write_bandwidth_bytes_per_s`].
    pub fn fdatasync_p99_us(&self, block_bytes: u64) -> Option<f64> {
        let cases: Vec<(u64, f64)> = self
            .fdatasync_latency
            .iter()
            .map(|f| (f.block_bytes, f.fdatasync_p99_us))
            .collect();
        pick_for_block(&cases, block_bytes)
    }

    /// fdatasync p50 for `block_bytes`, chosen like
    /// [`Limits::write_bandwidth_bytes_per_s`]. Far steadier than the p99 in
    /// a quick measurement on a shared machine (a few hundred samples at
    /// 1 MiB, whose p99 is a handful of stalls).
    pub fn fdatasync_p50_us(&self, block_bytes: u64) -> Option<f64> {
        let cases: Vec<(u64, f64)> = self
            .fdatasync_latency
            .iter()
            .map(|f| (f.block_bytes, f.fdatasync_p50_us))
            .collect();
        pick_for_block(&cases, block_bytes)
    }
}

fn pick_for_block(cases: &[(u64, f64)], block_bytes: u64) -> Option<f64> {
    cases
        .iter()
        .filter(|(b, _)| *b <= block_bytes)
        .max_by_key(|(b, _)| *b)
        .or_else(|| cases.iter().min_by_key(|(b, _)| *b))
        .map(|(_, v)| *v)
}

/// Measures the machine's limits, using scratch files in `dir` that are
/// removed afterwards (also on error).
pub fn measure_limits(dir: &Path, opts: &LimitsOptions) -> io::Result<Limits> {
    validate(opts)?;
    let started = Instant::now();
    let measured_at_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    check_free_space(dir, opts.scratch_bytes())?;
    let scratch = ScratchDir::create(dir, "limits")?;

    let mut write_bandwidth = Vec::new();
    let prealloc_path = scratch.path.join("bandwidth.dat");
    {
        let file = open_direct(&prealloc_path, true)?;
        preallocate_and_fill(&file, opts.bandwidth_file_bytes)?;
        for &block_bytes in &opts.block_sizes_bytes {
            write_bandwidth.push(measure_bandwidth(
                &file,
                block_bytes,
                opts,
                WriteMode::Preallocated,
            )?);
        }
    }
    remove_file_quietly(&prealloc_path);

    for &block_bytes in &opts.growing_block_sizes_bytes {
        let path = scratch.path.join(format!("growing-{block_bytes}.dat"));
        let result = open_direct(&path, true)
            .and_then(|file| measure_bandwidth(&file, block_bytes, opts, WriteMode::Growing));
        remove_file_quietly(&path);
        write_bandwidth.push(result?);
    }

    let mut fdatasync_latency = Vec::new();
    let sync_path = scratch.path.join("fdatasync.dat");
    {
        let file = open_direct(&sync_path, true)?;
        preallocate_and_fill(&file, opts.fdatasync_file_bytes)?;
        for &block_bytes in &opts.block_sizes_bytes {
            fdatasync_latency.push(measure_fdatasync(&file, block_bytes, opts)?);
        }
    }
    remove_file_quietly(&sync_path);
    drop(scratch);

    let loopback_tcp = measure_loopback_tcp(opts.tcp_duration, opts.tcp_write_bytes)?;

    Ok(Limits {
        dir: dir.display().to_string(),
        measured_at_unix_s,
        total_duration_s: started.elapsed().as_secs_f64(),
        options: opts.clone(),
        write_bandwidth,
        fdatasync_latency,
        loopback_tcp,
        remeasured: Vec::new(),
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn validate(opts: &LimitsOptions) -> io::Result<()> {
    let align = DIRECT_IO_ALIGN_BYTES as u64;
    for &b in opts
        .block_sizes_bytes
        .iter()
        .chain(&opts.growing_block_sizes_bytes)
    {
        if b == 0 || b % align != 0 {
            return Err(invalid(format!(
                "block size {b} is not a positive multiple of {align} bytes, which O_DIRECT requires"
            )));
        }
        if b > opts.bandwidth_file_bytes || b > opts.fdatasync_file_bytes {
            return Err(invalid(format!(
                "block size {b} is larger than the scratch files ({} and {} bytes)",
                opts.bandwidth_file_bytes, opts.fdatasync_file_bytes
            )));
        }
    }
    if !opts.bandwidth_file_bytes.is_multiple_of(align)
        || !opts.fdatasync_file_bytes.is_multiple_of(align)
    {
        return Err(invalid(format!(
            "scratch file sizes must be multiples of {align} bytes"
        )));
    }
    if opts.tcp_write_bytes == 0 {
        return Err(invalid("tcp_write_bytes must be positive".into()));
    }
    Ok(())
}

/// Refuses to start when the scratch files would not fit with a margin, so a
/// benchmark never fills a shared disk.
fn check_free_space(dir: &Path, needed_bytes: u64) -> io::Result<()> {
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| invalid(format!("{} contains a NUL byte", dir.display())))?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("statvfs {}: {e}", dir.display()),
        ));
    }
    let free_bytes = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    let wanted_bytes = needed_bytes.saturating_mul(2).saturating_add(256 * MIB);
    if free_bytes < wanted_bytes {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "{} has {} MiB free; limits needs {} MiB of scratch space plus margin",
                dir.display(),
                free_bytes / MIB,
                wanted_bytes / MIB
            ),
        ));
    }
    Ok(())
}

/// A per-process scratch directory that is removed when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create(parent: &Path, purpose: &str) -> io::Result<Self> {
        let path = parent.join(format!(".corelog-bench-{purpose}-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        Ok(ScratchDir { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Cleanup failures must not mask the measurement's own result.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn remove_file_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn open_direct(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(create)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                " (the filesystem probably does not support O_DIRECT; point --dir at a disk-backed filesystem)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("opening {} with O_DIRECT: {e}{hint}", path.display()))
        })
}

/// A buffer aligned for O_DIRECT, filled with non-repeating bytes. It is
/// the storage layer's buffer, so the device is measured with the same
/// memory (huge pages at 1 MiB and up) the log writes from.
struct AlignedBuf(corelog_storage::io::AlignedBuf);

impl AlignedBuf {
    fn new(len: usize) -> io::Result<Self> {
        let mut buf = AlignedBuf(corelog_storage::io::AlignedBuf::zeroed(len));
        // Non-repeating content keeps compressing or deduplicating storage
        // layers (common under VMs) from reporting inflated bandwidth.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for chunk in buf.as_mut_slice().chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(buf)
    }

    fn as_slice(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.0.as_mut()
    }
}

fn fdatasync(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the lifetime of `file`.
    if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reserves `len` bytes with fallocate and then writes them once.
///
/// fallocate alone leaves "unwritten" extents on ext4 and XFS, and the first
/// write into such an extent converts it with a journalled metadata update;
/// writing the file once first makes the measured passes pure overwrites.
fn preallocate_and_fill(file: &File, len: u64) -> io::Result<()> {
    let len_off =
        libc::off_t::try_from(len).map_err(|_| invalid(format!("file size {len} too large")))?;
    // SAFETY: plain syscall on a valid descriptor.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // Filesystems without fallocate still get a fully written file below.
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(io::Error::new(
                e.kind(),
                format!("fallocate {len} bytes: {e}"),
            ));
        }
    }
    let chunk = MIB.min(len) as usize;
    let buf = AlignedBuf::new(chunk)?;
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(chunk as u64) as usize;
        file.write_all_at(&buf.as_slice()[..n], offset)?;
        offset += n as u64;
    }
    fdatasync(file)
}

fn measure_bandwidth(
    file: &File,
    block_bytes: u64,
    opts: &LimitsOptions,
    mode: WriteMode,
) -> io::Result<WriteBandwidth> {
    let buf = AlignedBuf::new(block_bytes as usize)?;
    // Growing files stop at the preallocated file's size to bound disk use.
    let wrap_bytes = opts.bandwidth_file_bytes - opts.bandwidth_file_bytes % block_bytes;
    let max_bytes = match mode {
        WriteMode::Preallocated => opts.bandwidth_max_bytes_per_case,
        WriteMode::Growing => opts.bandwidth_max_bytes_per_case.min(wrap_bytes),
    };
    let started = Instant::now();
    let mut offset = 0;
    let written = write_sequential(
        file,
        &buf,
        &mut offset,
        wrap_bytes,
        max_bytes,
        opts.bandwidth_time_per_case,
    )?;
    let duration_s = started.elapsed().as_secs_f64();
    Ok(WriteBandwidth {
        block_bytes,
        mode,
        bytes_written: written,
        duration_s,
        write_bandwidth_bytes_per_s: written as f64 / duration_s.max(1e-9),
    })
}

/// Writes `buf` again and again from `*offset` (wrapping at `wrap_bytes`)
/// until `max_bytes` are written or `time` has passed, then fdatasyncs once.
/// Returns the bytes written; `*offset` is where the next write would go.
fn write_sequential(
    file: &File,
    buf: &AlignedBuf,
    offset: &mut u64,
    wrap_bytes: u64,
    max_bytes: u64,
    time: Duration,
) -> io::Result<u64> {
    let block_bytes = buf.as_slice().len() as u64;
    let started = Instant::now();
    let mut written: u64 = 0;
    while written < max_bytes.max(block_bytes) {
        file.write_all_at(buf.as_slice(), *offset).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("pwrite {block_bytes} bytes at {offset}: {e}"),
            )
        })?;
        written += block_bytes;
        *offset += block_bytes;
        if *offset >= wrap_bytes {
            *offset = 0;
        }
        if started.elapsed() >= time {
            break;
        }
    }
    // The closing fdatasync makes a growing file's metadata durable, which is
    // part of the cost of appending; for overwrites it is nearly free.
    fdatasync(file)?;
    Ok(written)
}

fn new_ns_histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(format!("creating histogram: {e:?}")))
}

fn measure_fdatasync(
    file: &File,
    block_bytes: u64,
    opts: &LimitsOptions,
) -> io::Result<FdatasyncLatency> {
    let buf = AlignedBuf::new(block_bytes as usize)?;
    let wrap_bytes = opts.fdatasync_file_bytes - opts.fdatasync_file_bytes % block_bytes;
    let mut sync_ns = new_ns_histogram()?;
    let mut total_ns = new_ns_histogram()?;
    let mut offset = 0;
    write_and_sync(
        file,
        &buf,
        &mut offset,
        wrap_bytes,
        opts.fdatasync_max_iterations,
        opts.fdatasync_time_per_case,
        &mut sync_ns,
        &mut total_ns,
    )?;
    Ok(fdatasync_latency(block_bytes, &sync_ns, &total_ns))
}

/// Writes `buf` and fdatasyncs, again and again from `*offset` (wrapping at
/// `wrap_bytes`), for at most `max_iterations` or `time`, recording the
/// fdatasync alone in `sync_ns` and write plus fdatasync in `total_ns`.
#[allow(clippy::too_many_arguments)]
fn write_and_sync(
    file: &File,
    buf: &AlignedBuf,
    offset: &mut u64,
    wrap_bytes: u64,
    max_iterations: u64,
    time: Duration,
    sync_ns: &mut Histogram<u64>,
    total_ns: &mut Histogram<u64>,
) -> io::Result<()> {
    let block_bytes = buf.as_slice().len() as u64;
    let started = Instant::now();
    let mut samples = 0;
    while samples < max_iterations.max(1) {
        let t0 = Instant::now();
        file.write_all_at(buf.as_slice(), *offset)?;
        let t1 = Instant::now();
        fdatasync(file)?;
        let t2 = Instant::now();
        sync_ns.saturating_record(duration_ns(t2 - t1));
        total_ns.saturating_record(duration_ns(t2 - t0));
        samples += 1;
        *offset += block_bytes;
        if *offset >= wrap_bytes {
            *offset = 0;
        }
        if started.elapsed() >= time {
            break;
        }
    }
    Ok(())
}

fn fdatasync_latency(
    block_bytes: u64,
    sync_ns: &Histogram<u64>,
    total_ns: &Histogram<u64>,
) -> FdatasyncLatency {
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    FdatasyncLatency {
        block_bytes,
        samples: sync_ns.len(),
        fdatasync_p50_us: us(sync_ns, 0.5),
        fdatasync_p99_us: us(sync_ns, 0.99),
        fdatasync_p999_us: us(sync_ns, 0.999),
        fdatasync_max_us: sync_ns.max() as f64 / 1000.0,
        write_fdatasync_p50_us: us(total_ns, 0.5),
        write_fdatasync_p99_us: us(total_ns, 0.99),
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Upper bound on any single blocking socket call, so a stuck peer cannot
/// hang the measurement.
const TCP_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends for `duration` over one 127.0.0.1 connection between two threads.
pub fn measure_loopback_tcp(duration: Duration, write_bytes: usize) -> io::Result<TcpBandwidth> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;

    let receiver = thread::spawn(move || -> io::Result<(u64, Duration)> {
        let deadline = Instant::now() + TCP_IO_TIMEOUT;
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "loopback accept timed out",
                        ));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        };
        let started = Instant::now();
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(TCP_IO_TIMEOUT))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut received = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((received, started.elapsed()))
    });

    let sender = thread::spawn(move || -> io::Result<()> {
        let mut stream = TcpStream::connect_timeout(&addr, TCP_IO_TIMEOUT)?;
        stream.set_write_timeout(Some(TCP_IO_TIMEOUT))?;
        let buf = vec![0xA5u8; write_bytes];
        let started = Instant::now();
        while started.elapsed() < duration {
            stream.write_all(&buf)?;
        }
        stream.shutdown(Shutdown::Write)
    });

    let sent = sender
        .join()
        .map_err(|_| io::Error::other("loopback sender thread panicked"))?;
    let received = receiver
        .join()
        .map_err(|_| io::Error::other("loopback receiver thread panicked"))?;
    sent.map_err(|e| io::Error::new(e.kind(), format!("loopback sender: {e}")))?;
    let (bytes_received, elapsed) =
        received.map_err(|e| io::Error::new(e.kind(), format!("loopback receiver: {e}")))?;
    let duration_s = elapsed.as_secs_f64();
    Ok(TcpBandwidth {
        write_bytes: write_bytes as u64,
        bytes_received,
        duration_s,
        bandwidth_bytes_per_s: bytes_received as f64 / duration_s.max(1e-9),
    })
}

/// Formats a byte count as KiB or MiB for tables.
pub fn format_block(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// Renders limits as a human-readable table.
pub fn format_limits_table(limits: &Limits) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mib = |b: f64| b / MIB as f64;
    let _ = writeln!(
        s,
        "Machine limits for {} ({}, {:.1} s)\n",
        limits.dir,
        if limits.options.quick {
            "quick"
        } else {
            "full"
        },
        limits.total_duration_s
    );
    let _ = writeln!(s, "O_DIRECT sequential write bandwidth");
    let _ = writeln!(
        s,
        "  {:>8}  {:<12}  {:>10}  {:>10}",
        "block", "mode", "MiB/s", "MiB total"
    );
    for w in &limits.write_bandwidth {
        let mode = match w.mode {
            WriteMode::Preallocated => "preallocated",
            WriteMode::Growing => "growing",
        };
        let _ = writeln!(
            s,
            "  {:>8}  {:<12}  {:>10.1}  {:>10.1}",
            format_block(w.block_bytes),
            mode,
            mib(w.write_bandwidth_bytes_per_s),
            mib(w.bytes_written as f64)
        );
    }
    let _ = writeln!(
        s,
        "\nfdatasync after an O_DIRECT write (preallocated file), microseconds"
    );
    let _ = writeln!(
        s,
        "  {:>8}  {:>8}  {:>9}  {:>9}  {:>9}  {:>9}  {:>12}",
        "block", "samples", "p50", "p99", "p99.9", "max", "write+sync p99"
    );
    for f in &limits.fdatasync_latency {
        let _ = writeln!(
            s,
            "  {:>8}  {:>8}  {:>9.1}  {:>9.1}  {:>9.1}  {:>9.1}  {:>12.1}",
            format_block(f.block_bytes),
            f.samples,
            f.fdatasync_p50_us,
            f.fdatasync_p99_us,
            f.fdatasync_p999_us,
            f.fdatasync_max_us,
            f.write_fdatasync_p99_us
        );
    }
    let t = &limits.loopback_tcp;
    let _ = writeln!(
        s,
        "\nLoopback TCP, one stream, {} writes: {:.1} MiB/s ({:.1} MiB in {:.2} s)",
        format_block(t.write_bytes),
        mib(t.bandwidth_bytes_per_s),
        mib(t.bytes_received as f64),
        t.duration_s
    );
    s
}

/// Command-line arguments of `corelog-bench limits`.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    /// Directory on the filesystem to measure (scratch files are removed afterwards).
    #[arg(long)]
    pub dir: PathBuf,
    /// Run directory to write limits.json into (created if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Short measurement for CI (under ~10 s).
    #[arg(long)]
    pub quick: bool,
    /// Override the size of each scratch file in MiB (bounds disk use; at
    /// least the largest block size, 1 MiB).
    #[arg(long)]
    pub file_mib: Option<u64>,
    /// Also attach the limits to this run directory, or to every run in a
    /// directory of repeat runs: its `run.json` gets the limits and the
    /// fractions derived from them (for limits measured after the runs, so
    /// that measuring cannot disturb them). Repeatable.
    #[arg(long)]
    pub attach: Vec<PathBuf>,
}

/// Runs `corelog-bench limits`.
pub fn run_command(args: &LimitsArgs) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    let opts = if args.quick {
        LimitsOptions::quick()
    } else {
        LimitsOptions::full()
    };
    let opts = match args.file_mib {
        Some(mib) => LimitsOptions {
            bandwidth_file_bytes: mib.saturating_mul(MIB),
            fdatasync_file_bytes: mib.saturating_mul(MIB),
            ..opts
        },
        None => opts,
    };
    let limits = measure_limits(&args.dir, &opts)
        .with_context(|| format!("measuring limits on {}", args.dir.display()))?;
    print!("{}", format_limits_table(&limits));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join("limits.json");
    let json = serde_json::to_string_pretty(&limits).context("serialising limits")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    println!("\nwrote {}", path.display());
    for target in &args.attach {
        let runs = crate::compare::load_runs(target)
            .with_context(|| format!("finding runs to attach limits to in {}", target.display()))?;
        for (dir, _) in runs {
            crate::run::attach_limits(&dir, &limits)
                .with_context(|| format!("attaching limits to {}", dir.display()))?;
            println!("attached limits to {}", dir.display());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits_with(bw: &[(u64, f64)], sync: &[(u64, f64)]) -> Limits {
        Limits {
            dir: "/x".into(),
            measured_at_unix_s: 0,
            total_duration_s: 0.0,
            options: LimitsOptions::quick(),
            write_bandwidth: bw
                .iter()
                .map(|&(b, v)| WriteBandwidth {
                    block_bytes: b,
                    mode: WriteMode::Preallocated,
                    bytes_written: 0,
                    duration_s: 1.0,
                    write_bandwidth_bytes_per_s: v,
                })
                .collect(),
            fdatasync_latency: sync
                .iter()
                .map(|&(b, v)| FdatasyncLatency {
                    block_bytes: b,
                    samples: 1,
                    fdatasync_p50_us: v,
                    fdatasync_p99_us: v,
                    fdatasync_p999_us: v,
                    fdatasync_max_us: v,
                    write_fdatasync_p50_us: v,
                    write_fdatasync_p99_us: v,
                })
                .collect(),
            loopback_tcp: TcpBandwidth {
                write_bytes: 1,
                bytes_received: 1,
                duration_s: 1.0,
                bandwidth_bytes_per_s: 1.0,
            },
            remeasured: Vec::new(),
        }
    }

    #[test]
    fn lookup_picks_largest_block_not_above_request() {
        let l = limits_with(&[(4096, 1.0), (65536, 2.0)], &[(4096, 10.0), (65536, 20.0)]);
        assert_eq!(
            l.write_bandwidth_bytes_per_s(4096, WriteMode::Preallocated),
            Some(1.0)
        );
        assert_eq!(
            l.write_bandwidth_bytes_per_s(100_000, WriteMode::Preallocated),
            Some(2.0)
        );
        assert_eq!(
            l.write_bandwidth_bytes_per_s(512, WriteMode::Preallocated),
            Some(1.0)
        );
        assert_eq!(
            l.write_bandwidth_bytes_per_s(4096, WriteMode::Growing),
            None
        );
        assert_eq!(l.fdatasync_p99_us(65536), Some(20.0));
    }

    #[test]
    fn unaligned_block_sizes_are_rejected() {
        let mut opts = LimitsOptions::quick();
        opts.block_sizes_bytes = vec![1000];
        let dir = tempfile::tempdir().expect("tempdir");
        let err = measure_limits(dir.path(), &opts).expect_err("must reject");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn loopback_tcp_measures_something() {
        let t = measure_loopback_tcp(Duration::from_millis(50), 64 * 1024).expect("tcp");
        assert!(t.bytes_received > 0);
        assert!(t.bandwidth_bytes_per_s > 0.0);
    }
}
