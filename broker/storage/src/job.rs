//! The disk work of a partition log, handed out by
//! [`crate::PartitionLog::next_job`] and run without borrowing the log.
//!
//! A job owns everything it touches (file handles as `Rc`, buffers, encoded
//! index and checkpoint bytes), so the shard can keep appending to and
//! reading from the log while a job's I/O is in flight.

use std::path::PathBuf;
use std::rc::Rc;

use crate::error::StorageError;
use crate::io::{DirectFile, StorageIo};

pub(crate) enum Work<F: DirectFile> {
    /// One group-commit write, optionally preceded by preallocation (small
    /// writes; large ones go straight into new space) and followed by
    /// fdatasync.
    Write {
        file: Rc<F>,
        path: PathBuf,
        buf: F::Buffer,
        pos: u64,
        preallocate_to: Option<u64>,
        sync: bool,
    },
    Sync {
        file: Rc<F>,
        path: PathBuf,
    },
    /// Seal the active segment (indexes written, file trimmed to its data and
    /// synced), create the next one, and checkpoint the new layout.
    Roll {
        old_file: Rc<F>,
        old_path: PathBuf,
        old_len_bytes: u64,
        index_files: Vec<(PathBuf, Vec<u8>)>,
        new_path: PathBuf,
        /// A recycled segment file to rename to `new_path` instead of
        /// creating it, and the written bytes to keep of it (its size, down
        /// to a whole block, so that later fills and writes stay aligned).
        reuse: Option<(PathBuf, u64)>,
        preallocate_to: u64,
        checkpoint: (PathBuf, Vec<u8>),
    },
    Checkpoint {
        index_files: Vec<(PathBuf, Vec<u8>)>,
        checkpoint: (PathBuf, Vec<u8>),
    },
    /// Checkpoint the new log start first, then delete the files: a crash in
    /// between leaves files that recovery deletes, never a checkpoint that
    /// points at missing data.
    Retention {
        checkpoint: (PathBuf, Vec<u8>),
        remove: Vec<PathBuf>,
        /// A deleted segment's file to keep for reuse: (from, to).
        recycle: Option<(PathBuf, PathBuf)>,
    },
    /// Swap a finished cleaning pass in (see [`crate::clean`]'s durability
    /// contract for the order of the steps).
    CleanSwap {
        dir: PathBuf,
        swaps: Vec<CleanSwap>,
        /// `.cleaned` files of segments the log no longer holds.
        stale: Vec<PathBuf>,
        checkpoint: (PathBuf, Vec<u8>),
        cleaner_checkpoint: (PathBuf, Vec<u8>),
        /// Files of the segments the pass left with no batch, which the
        /// checkpoint no longer lists: deleted last.
        removed: Vec<PathBuf>,
    },
    Repair {
        file: Rc<F>,
        path: PathBuf,
        tail_block: Option<(F::Buffer, u64)>,
        truncate_to: u64,
        preallocate_to: u64,
    },
}

/// One rewritten segment to swap in.
pub(crate) struct CleanSwap {
    pub cleaned: PathBuf,
    pub swap: PathBuf,
    pub log: PathBuf,
    /// The new `.index` and `.timeindex`.
    pub index_files: Vec<(PathBuf, Vec<u8>)>,
}

/// A unit of disk work for one partition log.
pub struct Job<I: StorageIo> {
    pub(crate) io: I,
    pub(crate) work: Work<I::File>,
}

/// The outcome of a job, to be handed to [`crate::PartitionLog::finish_job`].
pub struct JobDone<I: StorageIo> {
    pub(crate) result: Result<Option<Rc<I::File>>, StorageError>,
    pub(crate) now_ms: i64,
}

impl<I: StorageIo> JobDone<I> {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

impl<I: StorageIo> Job<I> {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self.work {
            Work::Write { .. } => "write",
            Work::Sync { .. } => "sync",
            Work::Roll { .. } => "roll",
            Work::Checkpoint { .. } => "checkpoint",
            Work::Retention { .. } => "retention",
            Work::CleanSwap { .. } => "clean swap",
            Work::Repair { .. } => "repair",
        }
    }

    /// Performs the job's I/O. `now_ms` is the time the caller will consider
    /// the job finished at (used for the interval flush policy).
    pub async fn run(self, now_ms: i64) -> JobDone<I> {
        let result = run_work(&self.io, self.work).await;
        JobDone { result, now_ms }
    }
}

async fn write_index_files<I: StorageIo>(
    io: &I,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<(), StorageError> {
    for (path, bytes) in files {
        io.write_file_atomic(path, bytes)
            .await
            .map_err(|e| StorageError::io("write index", path, e))?;
    }
    Ok(())
}

/// A checkpoint's files: the active segment's indexes, then the checkpoint.
pub(crate) async fn write_checkpoint_files<I: StorageIo>(
    io: &I,
    index_files: &[(PathBuf, Vec<u8>)],
    checkpoint: &(PathBuf, Vec<u8>),
) -> Result<(), StorageError> {
    write_index_files(io, index_files).await?;
    io.write_file_atomic(&checkpoint.0, &checkpoint.1)
        .await
        .map_err(|e| StorageError::io("write checkpoint", &checkpoint.0, e))
}

async fn run_work<I: StorageIo>(
    io: &I,
    work: Work<I::File>,
) -> Result<Option<Rc<I::File>>, StorageError> {
    match work {
        Work::Write {
            file,
            path,
            buf,
            pos,
            preallocate_to,
            sync,
        } => {
            if let Some(len) = preallocate_to {
                file.preallocate(len)
                    .await
                    .map_err(|e| StorageError::io("preallocate", &path, e))?;
            }
            file.write_and_sync(buf, pos, sync).await.map_err(|e| {
                StorageError::io(if sync { "write+fdatasync" } else { "write" }, &path, e)
            })?;
            Ok(None)
        }
        Work::Sync { file, path } => {
            file.fdatasync()
                .await
                .map_err(|e| StorageError::io("fdatasync", &path, e))?;
            Ok(None)
        }
        Work::Roll {
            old_file,
            old_path,
            old_len_bytes,
            index_files,
            new_path,
            reuse,
            preallocate_to,
            checkpoint,
        } => {
            write_index_files(io, &index_files).await?;
            // Trim the preallocated space, so a sealed segment's file size is
            // its data size, then make both data and size durable.
            old_file
                .truncate(old_len_bytes)
                .await
                .map_err(|e| StorageError::io("truncate", &old_path, e))?;
            old_file
                .fdatasync()
                .await
                .map_err(|e| StorageError::io("fdatasync", &old_path, e))?;
            if let Some((from, _)) = &reuse {
                // Until the checkpoint below lands, recovery sees the renamed
                // file after the old active segment and finds its older
                // batches where the new segment's first offset should be: it
                // cuts it to nothing, as it would an empty new segment.
                io.rename(from, &new_path)
                    .await
                    .map_err(|e| StorageError::io("reuse segment file", from, e))?;
            }
            let new_file = io
                .open(&new_path, true)
                .await
                .map_err(|e| StorageError::io("create segment", &new_path, e))?;
            if let Some((_, keep_bytes)) = reuse {
                let size = new_file
                    .size()
                    .await
                    .map_err(|e| StorageError::io("stat segment", &new_path, e))?;
                if size != keep_bytes {
                    // A sealed segment is trimmed to its data, which seldom
                    // ends on a block boundary; the partial block goes.
                    new_file
                        .truncate(keep_bytes.min(size))
                        .await
                        .map_err(|e| StorageError::io("truncate", &new_path, e))?;
                }
            }
            if preallocate_to > 0 {
                new_file
                    .preallocate(preallocate_to)
                    .await
                    .map_err(|e| StorageError::io("preallocate", &new_path, e))?;
            }
            // The checkpoint's atomic write syncs the directory, which makes
            // the new segment's directory entry durable too.
            io.write_file_atomic(&checkpoint.0, &checkpoint.1)
                .await
                .map_err(|e| StorageError::io("write checkpoint", &checkpoint.0, e))?;
            Ok(Some(Rc::new(new_file)))
        }
        Work::Checkpoint {
            index_files,
            checkpoint,
        } => {
            write_checkpoint_files(io, &index_files, &checkpoint).await?;
            Ok(None)
        }
        Work::Retention {
            checkpoint,
            remove,
            recycle,
        } => {
            io.write_file_atomic(&checkpoint.0, &checkpoint.1)
                .await
                .map_err(|e| StorageError::io("write checkpoint", &checkpoint.0, e))?;
            if let Some((from, to)) = recycle {
                io.rename(&from, &to)
                    .await
                    .map_err(|e| StorageError::io("recycle segment file", &from, e))?;
            }
            for path in remove {
                io.remove_file(&path)
                    .await
                    .map_err(|e| StorageError::io("delete segment", &path, e))?;
            }
            Ok(None)
        }
        Work::CleanSwap {
            dir,
            swaps,
            stale,
            checkpoint,
            cleaner_checkpoint,
            removed,
        } => {
            run_clean_swap(io, &dir, &swaps, &stale, &checkpoint, &cleaner_checkpoint).await?;
            // (7) The emptied segments' files go. The checkpoint of (3) no
            // longer lists them, so a crash before or during this leaves
            // files that recovery deletes as unlisted.
            for path in &removed {
                io.remove_file(path)
                    .await
                    .map_err(|e| StorageError::io("remove emptied segment", path, e))?;
            }
            Ok(None)
        }
        Work::Repair {
            file,
            path,
            tail_block,
            truncate_to,
            preallocate_to,
        } => {
            if let Some((buf, pos)) = tail_block {
                file.write_at(buf, pos)
                    .await
                    .map_err(|e| StorageError::io("rewrite tail", &path, e))?;
            }
            file.truncate(truncate_to)
                .await
                .map_err(|e| StorageError::io("truncate", &path, e))?;
            file.preallocate(preallocate_to)
                .await
                .map_err(|e| StorageError::io("preallocate", &path, e))?;
            file.fdatasync()
                .await
                .map_err(|e| StorageError::io("fdatasync", &path, e))?;
            Ok(None)
        }
    }
}

/// The steps of a swap, each safe to repeat: a retry after a failure finds
/// some renames done and skips them (it lists the directory first).
async fn run_clean_swap<I: StorageIo>(
    io: &I,
    dir: &std::path::Path,
    swaps: &[CleanSwap],
    stale: &[PathBuf],
    checkpoint: &(PathBuf, Vec<u8>),
    cleaner_checkpoint: &(PathBuf, Vec<u8>),
) -> Result<(), StorageError> {
    let names = io
        .list_dir(dir)
        .await
        .map_err(|e| StorageError::io("list dir", dir, e))?;
    let present = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| names.iter().any(|m| m == n))
    };
    // (1) The commit mark of each segment: its cleaned file becomes a swap file.
    let mut swapping = Vec::new();
    for s in swaps {
        if present(&s.cleaned) {
            io.rename(&s.cleaned, &s.swap)
                .await
                .map_err(|e| StorageError::io("rename cleaned segment", &s.cleaned, e))?;
            swapping.push(s);
        } else if present(&s.swap) {
            swapping.push(s);
        }
    }
    // (2) The old indexes go: no index of an old file may sit beside a new one.
    for s in &swapping {
        for (path, _) in &s.index_files {
            io.remove_file(path)
                .await
                .map_err(|e| StorageError::io("remove old index", path, e))?;
        }
    }
    for path in stale {
        io.remove_file(path)
            .await
            .map_err(|e| StorageError::io("remove stale cleaned segment", path, e))?;
    }
    // (3) The checkpoint with the new sizes; its write syncs the directory.
    io.write_file_atomic(&checkpoint.0, &checkpoint.1)
        .await
        .map_err(|e| StorageError::io("write checkpoint", &checkpoint.0, e))?;
    // (4) The new segments take their names.
    for s in &swapping {
        io.rename(&s.swap, &s.log)
            .await
            .map_err(|e| StorageError::io("swap cleaned segment", &s.swap, e))?;
    }
    // (5) The cleaner checkpoint; its write syncs the renames above.
    io.write_file_atomic(&cleaner_checkpoint.0, &cleaner_checkpoint.1)
        .await
        .map_err(|e| StorageError::io("write cleaner checkpoint", &cleaner_checkpoint.0, e))?;
    // (6) The new indexes (a missing one is rebuilt from the log).
    for s in &swapping {
        write_index_files(io, &s.index_files).await?;
    }
    Ok(())
}
