//! Helpers shared by the storage tests: a log in a temporary directory on
//! real files, batches that carry a recognisable pattern, and an I/O wrapper
//! that injects write failures.
#![allow(dead_code)]

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use corelog_storage::batch::build::{batch, BatchSpec};
use corelog_storage::batch::{self, BatchHeader};
use corelog_storage::io::{DirectFile, StdFile, StdIo, StorageIo};
use corelog_storage::{
    BatchCache, CacheId, LogConfig, Offset, PartitionLog, RecoveryReport, SharedBatchCache,
};

pub use futures_lite::future::block_on;

pub const NOW_MS: i64 = 1_700_000_000_000;

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 10,
        preallocate_step_bytes: 64 << 10,
        checkpoint_interval_bytes: 1 << 40,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// A batch whose values are filled with `base % 251`, the offset it will get.
pub fn patterned(base: Offset, records: usize, value_bytes: usize, ts: i64) -> Bytes {
    Bytes::from(batch(&BatchSpec {
        records,
        value_bytes,
        base_timestamp_ms: ts,
        fill: (base.0 % 251) as u8,
        ..BatchSpec::default()
    }))
}

pub fn open<I: StorageIo>(
    io: I,
    dir: &Path,
    config: LogConfig,
    cache: SharedBatchCache,
) -> (PartitionLog<I>, RecoveryReport) {
    block_on(PartitionLog::open(
        io,
        dir.to_path_buf(),
        config,
        cache,
        CacheId(7),
    ))
    .expect("open")
}

pub fn open_std(dir: &Path, config: LogConfig) -> (PartitionLog<StdIo>, RecoveryReport) {
    open(StdIo, dir, config, BatchCache::shared(1 << 20))
}

/// Appends `n` patterned batches and returns their (base, next) offsets.
pub fn append_n<I: StorageIo>(
    log: &mut PartitionLog<I>,
    n: usize,
    records: usize,
    value_bytes: usize,
) -> Vec<(Offset, Offset)> {
    (0..n)
        .map(|i| {
            let base = log.next_offset();
            let info = log
                .append(patterned(base, records, value_bytes, NOW_MS + i as i64))
                .expect("append");
            assert_eq!(info.base_offset, base);
            (base, info.last_offset.plus(1))
        })
        .collect()
}

/// Reads every batch in [from, to) and checks that offsets are contiguous,
/// each batch validates and carries its own pattern. Returns the batch count.
pub fn read_and_verify<I: StorageIo>(log: &PartitionLog<I>, from: Offset, to: Offset) -> usize {
    let mut next = from;
    let mut batches = 0;
    while next < to {
        let plan = log.plan_read(next, 100_000, to).expect("plan read");
        let got = block_on(plan.execute()).expect("read");
        assert!(!got.is_empty(), "no progress reading at {next} (to {to})");
        let bytes = got.to_vec();
        let mut at = 0;
        while at < bytes.len() {
            let h = batch::validate_prefix(&bytes[at..]).expect("valid batch");
            assert!(
                h.base_offset <= next.max(from) || h.base_offset == next,
                "gap before {}",
                h.base_offset
            );
            check_pattern(&bytes[at..at + h.total_bytes], &h);
            next = h.next_offset();
            at += h.total_bytes;
            batches += 1;
        }
        assert_eq!(got.next_offset, next);
    }
    assert_eq!(next, to);
    batches
}

pub fn check_pattern(bytes: &[u8], h: &BatchHeader) {
    let fill = (h.base_offset.0 % 251) as u8;
    // The last byte before the record's (empty) header count is a value byte.
    let last_value_byte = bytes[bytes.len() - 2];
    assert_eq!(
        last_value_byte, fill,
        "batch at {} holds another batch's data",
        h.base_offset
    );
}

pub fn flush(log: &mut PartitionLog<impl StorageIo>) {
    block_on(log.flush_all(NOW_MS)).expect("flush");
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extension(dir, "log")
}

/// The files in `dir` whose extension is `ext`, sorted by name.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Wraps [`StdIo`] so that a test can make writes, syncs and preallocation
/// fail with a chosen errno, as a full or failing disk does.
#[derive(Clone, Default)]
pub struct FaultyIo {
    pub fail_with: Rc<Cell<Option<i32>>>,
}

pub struct FaultyFile {
    inner: StdFile,
    fail_with: Rc<Cell<Option<i32>>>,
}

impl FaultyFile {
    fn check(&self) -> io::Result<()> {
        match self.fail_with.get() {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl DirectFile for FaultyFile {
    type Buffer = <StdFile as DirectFile>::Buffer;
    fn alloc_buffer(&self, len: usize) -> Self::Buffer {
        self.inner.alloc_buffer(len)
    }
    async fn write_at(&self, buf: Self::Buffer, pos: u64) -> io::Result<()> {
        self.check()?;
        self.inner.write_at(buf, pos).await
    }
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.inner.read_at(pos, len).await
    }
    async fn fdatasync(&self) -> io::Result<()> {
        self.check()?;
        self.inner.fdatasync().await
    }
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.preallocate(len).await
    }
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len).await
    }
    async fn size(&self) -> io::Result<u64> {
        self.inner.size().await
    }
}

impl StorageIo for FaultyIo {
    type File = FaultyFile;
    async fn open(&self, path: &Path, create: bool) -> io::Result<FaultyFile> {
        Ok(FaultyFile {
            inner: StdIo.open(path, create).await?,
            fail_with: self.fail_with.clone(),
        })
    }
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.create_dir_all(path).await
    }
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdIo.list_dir(path).await
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_file(path).await
    }
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_dir_all(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if let Some(errno) = self.fail_with.get() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        StdIo.rename(from, to).await
    }
    async fn read_small_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        StdIo.read_small_file(path).await
    }
    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if let Some(errno) = self.fail_with.get() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        StdIo.write_file_atomic(path, data).await
    }
}
