//! The storage layer's I/O traits on glommio: DMA files (O_DIRECT) driven by
//! the shard's io_uring.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use corelog_storage::io::{AlignedBuf, DirectFile, StorageIo, WriteBuffer};
use corelog_storage::log::DIRECT_WRITE_MIN_BYTES;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

/// [`StorageIo`] for code running on a glommio executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioIo;

/// A glommio DMA file.
pub struct GlommioFile {
    file: DmaFile,
    path: PathBuf,
    /// A second descriptor of the same file, opened with O_DSYNC on the
    /// first small synced write and closed when the file is truncated (a
    /// segment is sealed so): see [`GlommioFile::dsync_file`].
    dsync: RefCell<Option<Rc<DmaFile>>>,
}

/// A write buffer. Small writes use glommio's DMA buffers and go through
/// io_uring. Large ones (at least [`DIRECT_WRITE_MIN_BYTES`], the group
/// commits that the log writes straight into new space) use a plain aligned
/// buffer, which can travel to the blocking pool: there, a write that makes
/// the filesystem allocate blocks blocks that thread, not the shard.
pub enum GlommioBuffer {
    Dma(DmaBuffer),
    Heap(AlignedBuf),
}

impl AsRef<[u8]> for GlommioBuffer {
    fn as_ref(&self) -> &[u8] {
        match self {
            GlommioBuffer::Dma(b) => b.as_bytes(),
            GlommioBuffer::Heap(b) => b.as_ref(),
        }
    }
}

impl AsMut<[u8]> for GlommioBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            GlommioBuffer::Dma(b) => b.as_bytes_mut(),
            GlommioBuffer::Heap(b) => b.as_mut(),
        }
    }
}

impl WriteBuffer for GlommioBuffer {
    fn shrink_to(&mut self, len: usize) {
        match self {
            GlommioBuffer::Dma(b) => b.trim_to_size(len.min(b.len())),
            GlommioBuffer::Heap(b) => b.shrink_to(len),
        }
    }
}

impl GlommioFile {
    fn fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    /// The file opened with O_DSYNC, for small writes that must be durable
    /// when they complete.
    ///
    /// Why: a small durable write used to be an io_uring write, then a hop
    /// to the blocking pool for fdatasync (which io_uring would run on an
    /// io-wq worker pinned to the shard's core: see `fdatasync`), then a hop
    /// back: two wakeups across cores, about 80 us of a 220 us durable
    /// 16 KiB append at p50 on the project's machine. An O_DSYNC write is
    /// one io_uring operation: the kernel issues the device flush itself
    /// when the data write completes (or writes with FUA where the device
    /// has it), with no thread of ours in between. Measured: p50 145-150 us
    /// against 217-249 us. It has the guarantee of write plus fdatasync:
    /// the data and the metadata needed to read it back are durable when
    /// the write completes.
    ///
    /// A descriptor of its own, not O_DSYNC on the file's: unsynced writes
    /// (`flush.policy` by interval) and the preallocation lane's zero-fill
    /// on the main descriptor must not each wait for a flush.
    async fn dsync_file(&self) -> io::Result<Rc<DmaFile>> {
        if let Some(f) = self.dsync.borrow().as_ref() {
            return Ok(f.clone());
        }
        let file = Rc::new(
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DSYNC)
                .dma_open(&self.path)
                .await?,
        );
        // Opened by name: make sure the name still means this file (a
        // segment's file is renamed only once sealed, but a write must never
        // land in another file if that ever changes).
        if file_identity(std::os::fd::AsRawFd::as_raw_fd(&*file))? != file_identity(self.fd())? {
            return Err(io::Error::other(format!(
                "{} now names another file",
                self.path.display()
            )));
        }
        // A concurrent first use may have opened one too; either serves.
        Ok(self.dsync.borrow_mut().get_or_insert(file).clone())
    }

    /// [`DirectFile::write_and_sync`] without counting it in the sync
    /// metrics.
    async fn write_and_sync_unmeasured(
        &self,
        buf: GlommioBuffer,
        pos: u64,
        sync: bool,
    ) -> io::Result<()> {
        match buf {
            GlommioBuffer::Heap(b) => self.write_blocking(b, pos, sync).await,
            GlommioBuffer::Dma(buf) if sync => match self.dsync_file().await {
                Ok(dsync) => write_all_dma(&dsync, buf, pos).await,
                // Out of descriptors, say (each active segment needs a
                // second one): the write still succeeds, the slower way.
                Err(e) => {
                    warn_no_dsync_descriptor(&self.path, &e);
                    self.write_at(GlommioBuffer::Dma(buf), pos).await?;
                    self.fdatasync_unmeasured().await
                }
            },
            dma => self.write_at(dma, pos).await,
        }
    }

    /// [`DirectFile::fdatasync`] without counting it in the sync metrics.
    async fn fdatasync_unmeasured(&self) -> io::Result<()> {
        // fdatasync cannot complete without blocking, so io_uring hands it to
        // an io-wq worker; measured here, the shard's executor then spins
        // until the worker, pinned to the same core, gets a scheduler tick
        // (3.8 ms per durable append, against 0.35 ms). It runs on glommio's
        // blocking pool instead, on a thread allowed on every core, and the
        // executor parks until it is done.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        glommio::executor()
            .spawn_blocking(move || {
                unpin_current_thread();
                // SAFETY: the descriptor stays open: `self` outlives this await.
                if unsafe { libc::fdatasync(fd) } == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            })
            .await
    }

    /// A large write (and its fdatasync) on the blocking pool, in one hop.
    async fn write_blocking(&self, buf: AlignedBuf, pos: u64, sync: bool) -> io::Result<()> {
        // An O_DIRECT write into new space needs block allocation or extent
        // conversion; io_uring would hand it to an io-wq worker pinned to
        // the shard's core, which stalls the shard (see `fdatasync`).
        let fd = self.fd();
        let (buf, result) = glommio::executor()
            .spawn_blocking(move || {
                unpin_current_thread();
                let result = pwrite_all(fd, buf.as_ref(), pos).and_then(|()| {
                    // SAFETY: the descriptor stays open: `self` outlives this await.
                    if sync && unsafe { libc::fdatasync(fd) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
                (buf, result)
            })
            .await;
        keep_write_buffer(buf);
        result
    }
}

/// A shard's durable writes and syncs: how long each took and the bytes
/// the writes carried (a group commit's size is their mean).
#[derive(Debug, Clone, Default)]
pub struct SyncStats {
    pub latency: crate::latency::LatencyHistogram,
    pub bytes: u64,
}

thread_local! {
    /// Each shard is one thread (the blocking pool's threads do the work
    /// but the executor records it), so these are the shard's.
    static SYNC_STATS: std::cell::RefCell<SyncStats> = std::cell::RefCell::new(SyncStats::default());
}

fn count_sync(elapsed: std::time::Duration, bytes: usize) {
    SYNC_STATS.with(|s| {
        let mut s = s.borrow_mut();
        s.latency.record(elapsed);
        s.bytes += bytes as u64;
    });
}

/// This shard's durable writes (data written with O_DSYNC, or written then
/// fdatasynced, in one call) and bare fdatasyncs so far: their durations
/// and the bytes of the writes.
pub fn sync_stats() -> (crate::latency::LatencySnapshot, u64) {
    SYNC_STATS.with(|s| {
        let s = s.borrow();
        (s.latency.snapshot(), s.bytes)
    })
}

/// One DMA write of the whole buffer; a short write is an error (O_DIRECT
/// writes of aligned blocks are whole unless the device fails).
async fn write_all_dma(file: &DmaFile, buf: DmaBuffer, pos: u64) -> io::Result<()> {
    let len = buf.len();
    let written = file.write_at(buf, pos).await?;
    if written != len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {written} of {len} bytes"),
        ));
    }
    Ok(())
}

/// The device and inode number of an open file.
fn file_identity(fd: i32) -> io::Result<(u64, u64)> {
    // SAFETY: fstat fills the zeroed struct; the descriptor is open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((st.st_dev, st.st_ino))
    }
}

/// Logs, once per shard thread, that a segment's O_DSYNC descriptor could
/// not be opened and small durable writes fall back to write + fdatasync.
fn warn_no_dsync_descriptor(path: &Path, error: &io::Error) {
    thread_local! {
        static WARNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !WARNED.with(|w| w.replace(true)) {
        tracing::warn!(
            path = %path.display(),
            %error,
            "cannot open an O_DSYNC descriptor of a segment file; small durable writes fall back to write + fdatasync (raise the open-files limit?)"
        );
    }
}

/// Large write buffers kept per shard for reuse: one being filled while
/// another is written is the most a shard's partitions need at once, when
/// one is busy; more partitions with large writes allocate beyond it.
const WRITE_BUFFERS_KEPT: usize = 2;

thread_local! {
    static WRITE_BUFFERS: std::cell::RefCell<Vec<AlignedBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A large write buffer of `len` bytes: a kept one if one is big enough
/// (see [`AlignedBuf::reuse`]), else a new one with room to grow to the
/// next MiB.
fn large_write_buffer(len: usize) -> AlignedBuf {
    let kept = WRITE_BUFFERS.with(|kept| {
        let mut kept = kept.borrow_mut();
        let i = kept.iter().position(|b| b.capacity() >= len)?;
        kept.swap_remove(i).reuse(len)
    });
    kept.unwrap_or_else(|| AlignedBuf::zeroed_with_capacity(len, len.next_multiple_of(1 << 20)))
}

fn keep_write_buffer(buf: AlignedBuf) {
    WRITE_BUFFERS.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() < WRITE_BUFFERS_KEPT {
            kept.push(buf);
        } else if let Some(smallest) = kept.iter_mut().min_by_key(|b| b.capacity()) {
            if smallest.capacity() < buf.capacity() {
                *smallest = buf;
            }
        }
    });
}

/// pwrite of the whole buffer, continuing after short writes and EINTR.
fn pwrite_all(fd: i32, buf: &[u8], pos: u64) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        // SAFETY: the slice is valid for its length; the descriptor is open.
        let n = unsafe {
            libc::pwrite(
                fd,
                buf[done..].as_ptr().cast(),
                buf.len() - done,
                (pos + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {done} of {} bytes", buf.len()),
            ));
        }
        done += n as usize;
    }
    Ok(())
}

impl DirectFile for GlommioFile {
    type Buffer = GlommioBuffer;

    fn alloc_buffer(&self, len: usize) -> GlommioBuffer {
        if len as u64 >= DIRECT_WRITE_MIN_BYTES {
            GlommioBuffer::Heap(large_write_buffer(len))
        } else {
            GlommioBuffer::Dma(self.file.alloc_dma_buffer(len))
        }
    }

    async fn write_at(&self, buf: GlommioBuffer, pos: u64) -> io::Result<()> {
        let buf = match buf {
            GlommioBuffer::Dma(b) => b,
            GlommioBuffer::Heap(b) => return self.write_blocking(b, pos, false).await,
        };
        write_all_dma(&self.file, buf, pos).await
    }

    async fn write_and_sync(&self, buf: GlommioBuffer, pos: u64, sync: bool) -> io::Result<()> {
        if !sync {
            return self.write_and_sync_unmeasured(buf, pos, false).await;
        }
        let bytes = buf.as_ref().len();
        let started = std::time::Instant::now();
        let result = self.write_and_sync_unmeasured(buf, pos, true).await;
        if result.is_ok() {
            count_sync(started.elapsed(), bytes);
        }
        result
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let read = self.file.read_at_aligned(pos, len).await?;
        // glommio's read buffers belong to the executor that made them and are
        // not Send, while fetch responses may travel to another shard. This
        // is the one copy on the cold read path.
        Ok(Bytes::copy_from_slice(&read))
    }

    async fn fdatasync(&self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let result = self.fdatasync_unmeasured().await;
        if result.is_ok() {
            count_sync(started.elapsed(), 0);
        }
        result
    }

    async fn preallocate(&self, len_bytes: u64) -> io::Result<()> {
        // Reserve the space and write zeros over it, so that data writes
        // overwrite written blocks. A write into fallocated (unwritten)
        // extents needs an extent conversion, which io_uring also hands to a
        // worker (the stall above, at p99: 4.5 ms against 0.36 ms at 16 KiB).
        // This costs a second write of each segment's bytes, done ahead of
        // the data by the partition's preallocation lane on the blocking pool.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        let from = self.file.file_size().await?;
        if from >= len_bytes {
            return Ok(());
        }
        glommio::executor()
            .spawn_blocking(move || {
                unpin_current_thread();
                zero_fill(fd, from, len_bytes)
            })
            .await
    }

    async fn truncate(&self, len_bytes: u64) -> io::Result<()> {
        // A truncated file is a sealed segment (or a repaired tail, which
        // reopens it on its next synced write): one descriptor per sealed
        // segment, not two.
        self.dsync.borrow_mut().take();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        glommio::executor()
            .spawn_blocking(move || {
                unpin_current_thread();
                // SAFETY: the descriptor stays open: `self` outlives this await.
                if unsafe { libc::ftruncate(fd, len_bytes as libc::off_t) } == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            })
            .await
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.file.file_size().await?)
    }
}

/// The size of each zero-fill write.
const ZERO_FILL_STEP_BYTES: usize = 1 << 20;

/// Reserves [from, to) of `fd` with fallocate (so ENOSPC shows before any
/// write), then writes zeros over it in 1 MiB O_DIRECT writes.
fn zero_fill(fd: i32, from: u64, to: u64) -> io::Result<()> {
    // SAFETY: plain syscalls on a descriptor that stays open for the call.
    unsafe {
        if libc::fallocate(fd, 0, from as libc::off_t, (to - from) as libc::off_t) != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
    }
    // One buffer of zeros per blocking thread, made once: never written to,
    // so it stays zero. (A 1 MiB buffer is a huge-page mapping of its own;
    // mapping, faulting and unmapping one per preallocation step would put
    // that cost, and any compaction the kernel does for the huge page, on
    // the thread that also runs the fdatasyncs.)
    thread_local! {
        static ZEROS: corelog_storage::io::AlignedBuf =
            corelog_storage::io::AlignedBuf::zeroed(ZERO_FILL_STEP_BYTES);
    }
    ZEROS.with(|buf| write_zeros(fd, buf.as_ref(), from, to))?;
    // Commit the extent conversions now, in one journal commit, rather than
    // leaving them for the next data fdatasync to pay for.
    // SAFETY: plain syscall on an open descriptor.
    if unsafe { libc::fdatasync(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `zeros` (at most its length per write) over [from, to), from the
/// first block boundary at or after `from`.
fn write_zeros(fd: i32, zeros: &[u8], from: u64, to: u64) -> io::Result<()> {
    debug_assert!(zeros.len() >= ZERO_FILL_STEP_BYTES);
    // Never below `from`: the block holding it may hold data (a segment cut
    // at an unaligned size), and writes may be rewriting it concurrently.
    // The bytes between `from` and the next block read as zeros already.
    let mut pos = from.div_ceil(4096) * 4096;
    while pos < to {
        let len = (ZERO_FILL_STEP_BYTES as u64).min(to - pos).div_ceil(4096) * 4096;
        // SAFETY: zeros is valid for len bytes (len <= ZERO_FILL_STEP_BYTES).
        let n =
            unsafe { libc::pwrite(fd, zeros.as_ptr().cast(), len as usize, pos as libc::off_t) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        pos += n as u64;
    }
    Ok(())
}

/// Makes glommio learn whether the device under `path` supports polled
/// I/O from a file that has data.
///
/// glommio probes a device the first time a DMA file on it is opened, by
/// reading that file's first block, and caches the answer per device (per
/// thread). If that file is empty (a new segment), the read ends at EOF
/// before reaching the device, the probe wrongly says "pollable", and every
/// later read on the device fails with EOPNOTSUPP (seen on virtio disks).
/// So, once per device and thread, a scratch file with one block of data is
/// opened first.
async fn probe_device_once(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    thread_local! {
        static PROBED: std::cell::RefCell<std::collections::HashSet<u64>> = Default::default();
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let dev = std::fs::metadata(dir)?.dev();
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let probe = dir.join(format!(".corelog-iopoll-probe-{}.tmp", std::process::id()));
    std::fs::write(&probe, vec![0u8; 4096])?;
    let opened = OpenOptions::new().read(true).dma_open(&probe).await;
    let _ = std::fs::remove_file(&probe);
    if let Ok(f) = opened {
        let _ = f.close().await;
    }
    PROBED.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}

/// Lets the calling blocking-pool thread run on any core (once per thread):
/// it inherits the shard's pinning, and pinned it would wait for the very
/// core whose executor is waiting for it.
fn unpin_current_thread() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if DONE.with(|d| d.replace(true)) {
        return;
    }
    // SAFETY: sched_setaffinity on the calling thread with a full mask.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl StorageIo for GlommioIo {
    type File = GlommioFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<GlommioFile> {
        probe_device_once(path).await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await?;
        Ok(GlommioFile {
            file,
            path: path.to_path_buf(),
            dsync: RefCell::new(None),
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        // Directory creation happens when a partition is created, not on the
        // data path; the blocking calls are brief.
        std::fs::create_dir_all(path)?;
        if let Some(parent) = path.parent() {
            glommio::io::Directory::open(parent).await?.sync().await?;
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        match glommio::io::remove(path).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e: io::Error = e.into();
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        glommio::io::rename(from, to).await.map_err(Into::into)
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn read_small_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let file = match OpenOptions::new().read(true).buffered_open(path).await {
            Ok(f) => f,
            Err(e) => {
                let e: io::Error = e.into();
                if e.kind() == io::ErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        let size = file.file_size().await? as usize;
        let data = file.read_at(0, size).await?;
        let out = data.to_vec();
        file.close().await?;
        Ok(Some(out))
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // Checkpoints and index files are written at every roll and every
        // checkpoint interval. Their fsyncs run on the blocking pool for the
        // same reason as fdatasync above; through io_uring each would stall
        // the shard for a scheduler tick.
        let (path, data) = (path.to_path_buf(), data.to_vec());
        glommio::executor()
            .spawn_blocking(move || {
                unpin_current_thread();
                corelog_storage::io::write_file_atomic_blocking(&path, &data)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_writes_past_the_end_of_file_and_small_overwrites_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let large = DIRECT_WRITE_MIN_BYTES as usize + 8192;
        let got = crate::run_on_core(Some(0), || async move {
            let f = GlommioIo.open(&path, true).await.unwrap();
            // Large: a heap buffer, written (and synced) on the blocking
            // pool, into space the file does not have yet.
            let mut buf = f.alloc_buffer(large);
            assert!(matches!(buf, GlommioBuffer::Heap(_)));
            buf.as_mut().fill(0x11);
            f.write_and_sync(buf, 4096, true).await.unwrap();
            assert_eq!(f.size().await.unwrap(), 4096 + large as u64);
            // Small: a DMA buffer through io_uring, over written blocks.
            let mut buf = f.alloc_buffer(4096);
            assert!(matches!(buf, GlommioBuffer::Dma(_)));
            buf.as_mut().fill(0x22);
            f.write_and_sync(buf, 8192, true).await.unwrap();
            // Large again: the kept buffer is reused, and fully rewritten.
            let at = 4096 + large as u64;
            let mut buf = f.alloc_buffer(large - 4096);
            buf.as_mut().fill(0x33);
            f.write_and_sync(buf, at, true).await.unwrap();
            f.read_at(0, 2 * large).await.unwrap()
        })
        .unwrap();
        assert!(got[..4096].iter().all(|&b| b == 0));
        assert!(got[4096..8192].iter().all(|&b| b == 0x11));
        assert!(got[8192..12288].iter().all(|&b| b == 0x22));
        assert!(got[12288..4096 + large].iter().all(|&b| b == 0x11));
        assert!(got[4096 + large..].iter().all(|&b| b == 0x33));
        assert_eq!(got.len(), 2 * large);
    }

    /// The open flags of `fd` in this process, from /proc (octal there).
    fn open_flags(fd: i32) -> i32 {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .unwrap()
            .trim();
        i32::from_str_radix(flags, 8).unwrap()
    }

    #[test]
    fn small_synced_writes_go_through_an_o_dsync_descriptor_that_sealing_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let got = crate::run_on_core(Some(0), || async move {
            let f = GlommioIo.open(&path, true).await.unwrap();
            f.preallocate(64 << 10).await.unwrap();
            assert_eq!(open_flags(f.fd()) & libc::O_DSYNC, 0);
            // An unsynced small write does not open it.
            let mut buf = f.alloc_buffer(4096);
            buf.as_mut().fill(0x44);
            f.write_and_sync(buf, 0, false).await.unwrap();
            assert!(f.dsync.borrow().is_none());
            // A synced one does, and uses it: O_DSYNC and O_DIRECT.
            let mut buf = f.alloc_buffer(8192);
            buf.as_mut().fill(0x55);
            f.write_and_sync(buf, 4096, true).await.unwrap();
            let dsync_fd = std::os::fd::AsRawFd::as_raw_fd(&**f.dsync.borrow().as_ref().unwrap());
            let flags = open_flags(dsync_fd);
            assert_eq!(flags & libc::O_DSYNC, libc::O_DSYNC, "flags {flags:o}");
            assert_eq!(flags & libc::O_DIRECT, libc::O_DIRECT, "flags {flags:o}");
            // The main descriptor stays as it was.
            assert_eq!(open_flags(f.fd()) & libc::O_DSYNC, 0);
            // Sealing truncates the file, which closes the second descriptor.
            f.truncate(12288).await.unwrap();
            assert!(f.dsync.borrow().is_none());
            f.read_at(0, 16384).await.unwrap()
        })
        .unwrap();
        assert_eq!(got.len(), 12288);
        assert!(got[..4096].iter().all(|&b| b == 0x44));
        assert!(got[4096..].iter().all(|&b| b == 0x55));
    }

    #[test]
    fn a_small_synced_write_falls_back_to_fdatasync_when_no_dsync_descriptor_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let got = crate::run_on_core(Some(0), || async move {
            let f = GlommioIo.open(&path, true).await.unwrap();
            f.preallocate(16 << 10).await.unwrap();
            // The name is gone, so the second descriptor cannot be opened
            // (as when the process is out of descriptors).
            std::fs::remove_file(&path).unwrap();
            let mut buf = f.alloc_buffer(4096);
            buf.as_mut().fill(0x66);
            f.write_and_sync(buf, 4096, true).await.unwrap();
            assert!(f.dsync.borrow().is_none());
            f.read_at(0, 8192).await.unwrap()
        })
        .unwrap();
        assert!(got[..4096].iter().all(|&b| b == 0));
        assert!(got[4096..].iter().all(|&b| b == 0x66));
    }

    #[test]
    fn a_small_synced_write_never_lands_in_another_file_at_the_segments_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let moved = dir.path().join("moved.log");
        let (ours, other) = crate::run_on_core(Some(0), || async move {
            let f = GlommioIo.open(&path, true).await.unwrap();
            f.preallocate(16 << 10).await.unwrap();
            // The name now means a different file of the same size.
            std::fs::rename(&path, &moved).unwrap();
            std::fs::write(&path, vec![0u8; 16 << 10]).unwrap();
            let mut buf = f.alloc_buffer(4096);
            buf.as_mut().fill(0x77);
            f.write_and_sync(buf, 4096, true).await.unwrap();
            assert!(f.dsync.borrow().is_none());
            (
                f.read_at(0, 8192).await.unwrap(),
                std::fs::read(&path).unwrap(),
            )
        })
        .unwrap();
        assert!(ours[4096..8192].iter().all(|&b| b == 0x77));
        assert!(
            other.iter().all(|&b| b == 0),
            "the write went to the other file"
        );
    }
}
