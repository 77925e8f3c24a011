//! The metadata quorum's durable log: Raft entries, hard state and the
//! latest snapshot of one node, in a directory of its own.
//!
//! Generic on purpose: it knows nothing of `corelog-quorum` (storage never
//! imports an upper layer); the server converts between the driver's
//! `Output::Persist` / `Durable` and the types here. I/O is blocking
//! `std::fs`: the caller runs it on a blocking pool, never on a shard.
//!
//! # Files
//!
//! - `snapshot`: the latest snapshot, replaced atomically (write
//!   `snapshot.tmp`, fdatasync, rename, fsync the directory). Magic `CLQS`,
//!   format version (u32), the *generation* of the log file it goes with
//!   (u64), index, term (u64), voter count (u32) and voters (u64 each), data
//!   length (u64) and data, then the CRC32C of everything before it (u32).
//!   All integers little endian. No file: no snapshot, generation 0.
//! - `log-<generation:020>`: the log, append only. A sequence of frames,
//!   each `length: u32, crc32c(payload): u32, payload`, the payload's first
//!   byte its kind: a header (`CLQL`, version, generation; always the first
//!   frame), an entry (index, term, kind byte, data, context), a hard state
//!   (term, vote, commit), a begin marker (the batch's length in bytes) and
//!   a commit marker (the number of frames between the markers). One
//!   [`QuorumLog::persist`] appends one *batch*: a begin marker, its
//!   entries, its hard state, then a commit marker. Recovery applies whole
//!   batches only, in file order, with the durability contract's rule (an
//!   entry replaces the entry at its index and every entry after it), so an
//!   overwritten suffix needs no truncation on disk: the later batch
//!   overrides it, and the next compaction drops the dead frames.
//!
//! There is no hard-state file of its own: the hard state is a record of
//! the batch it came with, so the one fdatasync of a persist covers entries
//! and hard state together, and neither is ever durable without the other
//! (a vote never outlives the entries it was given with, nor the reverse).
//!
//! Only the log file named by the snapshot's generation is live. Replacing
//! the whole log (a snapshot from the leader) and compaction both write a
//! *new* log file, generation + 1, holding the hard state and the entries
//! to keep, make it and its directory entry durable, and only then rename
//! the new snapshot, which names it, into place. The rename is the one
//! atomic switch: before it the old snapshot and old log are live, after it
//! the new pair; a new snapshot can never be read with an old log. Other
//! `log-*` files and `*.tmp` files are leftovers and are deleted on open.
//!
//! # Durability contract
//!
//! - When [`QuorumLog::persist`] returns `Ok`, everything it was given is
//!   durable (fdatasync of the log file; for a snapshot also the snapshot
//!   file and the directory), in the contract's order: the snapshot
//!   replaced the whole log, then each entry replaced the entry at its index
//!   and every entry after it, then the hard state was set. The host may
//!   then report the persist done.
//! - A persist is atomic across a crash: after a crash (kill -9 or power
//!   loss) at any point, [`QuorumLog::open`] recovers exactly the state after
//!   some prefix of the persists and compactions made, which includes every
//!   one that returned `Ok`. A persist that had not returned is either
//!   wholly there or wholly absent, never a part of it: its entries without
//!   its hard state, or a suffix removed without the entries replacing it.
//! - [`QuorumLog::compact`] writes the snapshot it is given and drops the
//!   entries at or below its index, atomically: a crash leaves the old
//!   snapshot with the old log, or the new snapshot with the retained tail.
//! - Recovery cuts a torn or CRC-failing tail and any batch without its
//!   commit marker (a persist that never returned), and reports the bytes
//!   cut. Entries at or below the snapshot are dropped. A gap in the entries
//!   after the snapshot, a damaged snapshot file, a log file the snapshot
//!   names that is missing or lacks the batch written with it, or a damaged
//!   header of a log that holds more than its header is corruption: `open`
//!   fails with [`QuorumLogError::Corrupt`] and accepts nothing silently.
//! - Only the last persist can be torn (each is synced before the next is
//!   written). A damaged frame inside a batch whose begin marker says it
//!   ends before the file does is damage to synced data: corruption, not a
//!   torn tail. Limit: damage to a begin marker itself is read like a torn
//!   tail and the log is cut there; the cut is logged with its position
//!   and size.
//! - After an error from `persist` or `compact` the store refuses every
//!   further write ([`QuorumLogError::Failed`]): what reached the disk is
//!   unknown until [`QuorumLog::open`] recovers it. After a failed
//!   fdatasync, reopen from a new process: Linux may have dropped the
//!   unsynced pages while its cache still shows them to this one.
//!
//! Decoding is bounded: a frame over [`MAX_FRAME_BYTES`], a snapshot over
//! [`MAX_SNAPSHOT_BYTES`] or with more than [`MAX_VOTERS`] voters is refused
//! (a torn tail in the log, corruption in the snapshot), never allocated.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::io::sync_dir;

/// The largest frame a log holds (an entry's index, term, data and context).
pub const MAX_FRAME_BYTES: u32 = 16 << 20;
/// The largest snapshot file.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// The most voters a snapshot names.
pub const MAX_VOTERS: u32 = 4096;

const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";
const LOG_PREFIX: &str = "log-";
const SNAPSHOT_MAGIC: &[u8; 4] = b"CLQS";
const LOG_MAGIC: &[u8; 4] = b"CLQL";
const FORMAT_VERSION: u32 = 1;

const FRAME_HEADER_BYTES: usize = 8;
const KIND_HEADER: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_HARD_STATE: u8 = 3;
const KIND_COMMIT: u8 = 4;
const KIND_BEGIN: u8 = 5;
const BEGIN_FRAME_BYTES: u64 = (FRAME_HEADER_BYTES + 9) as u64;
const COMMIT_FRAME_BYTES: u64 = (FRAME_HEADER_BYTES + 5) as u64;

/// Raft's hard state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: u64,
    /// The node voted for in `term`; 0 when none.
    pub vote: u64,
    pub commit: u64,
}

/// One log entry. `kind` is the host's own byte (normal, configuration
/// change, ...), stored as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub kind: u8,
    pub data: Bytes,
    pub context: Bytes,
}

/// A snapshot: the state at `index` (whose entry had `term`) and the voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub data: Bytes,
}

/// What [`QuorumLog::open`] found on disk: all the host may build its
/// restart state from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// Bytes cut from the log's tail: a torn or unfinished persist.
    pub truncated_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumLogError {
    #[error("{op} failed on {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// What the disk holds breaks the format or the log's rules.
    #[error("corrupt quorum log {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// A write that breaks the log's rules (a gap, a frame too large, a
    /// snapshot that does not match the log); nothing was written.
    #[error("quorum log write refused: {0}")]
    Refused(String),
    /// An earlier write failed; reopen the log to recover.
    #[error("quorum log failed earlier; reopen it")]
    Failed,
}

pub type Result<T, E = QuorumLogError> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QuorumLogError + 'a {
    move |source| QuorumLogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One node's durable quorum log. Single-threaded: one writer at a time.
#[derive(Debug)]
pub struct QuorumLog {
    dir: PathBuf,
    generation: u64,
    file: File,
    /// Bytes of the live log file (every one synced once a call returns).
    len: u64,
    snapshot_index: u64,
    last_index: u64,
    hard_state: HardState,
    failed: bool,
}

/// Where a test stops [`QuorumLog::compact`], as a crash there would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The new log file is durable; no snapshot was written.
    AfterNewLog,
    /// `snapshot.tmp` is durable too, not renamed.
    AfterSnapshotTemp,
    /// The new snapshot is renamed into place; the old log is still there.
    AfterRename,
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{generation:020}"))
}

impl QuorumLog {
    /// Opens (creating if needed) the log in `dir` and recovers its state.
    pub fn open(dir: &Path) -> Result<(QuorumLog, Recovered)> {
        std::fs::create_dir_all(dir).map_err(io_err("create_dir_all", dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).map_err(io_err("sync_dir", parent))?;
        }
        let snap_path = dir.join(SNAPSHOT_FILE);
        let snapshot = match std::fs::metadata(&snap_path) {
            Ok(_) => Some(read_snapshot(&snap_path)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("stat", &snap_path)(e)),
        };
        let generation = snapshot.as_ref().map_or(0, |(g, _)| *g);
        let snapshot = snapshot.map(|(_, s)| s);
        let snapshot_index = snapshot.as_ref().map_or(0, |s| s.index);

        // Leftovers of a crashed compaction or snapshot install.
        let live = log_path(dir, generation);
        let mut removed = false;
        for name in std::fs::read_dir(dir).map_err(io_err("read_dir", dir))? {
            let name = name.map_err(io_err("read_dir", dir))?.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = dir.join(name);
            if (name.starts_with(LOG_PREFIX) && path != live) || name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io_err("remove_file", &path))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(dir).map_err(io_err("sync_dir", dir))?;
        }

        let exists = live.exists();
        if !exists && generation != 0 {
            return Err(QuorumLogError::Corrupt {
                path: live,
                position: 0,
                reason: "the log file the snapshot names is missing".into(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&live)
            .map_err(io_err("open", &live))?;
        let scan = scan_log(&file, &live, generation, snapshot_index)?;
        let mut truncated_bytes = scan.file_len - scan.valid_end;
        let mut len = scan.valid_end;
        if !scan.has_header {
            // A new log, or one whose creation was cut short before any
            // persist could follow it: write its header.
            let header = header_frame(generation);
            file.set_len(0).map_err(io_err("ftruncate", &live))?;
            file.write_all_at(&header, 0)
                .map_err(io_err("write", &live))?;
            file.sync_data().map_err(io_err("fdatasync", &live))?;
            truncated_bytes = scan.file_len;
            len = header.len() as u64;
            if !exists {
                sync_dir(dir).map_err(io_err("sync_dir", dir))?;
            }
        } else if truncated_bytes > 0 {
            tracing::warn!(
                path = %live.display(),
                position = scan.valid_end,
                bytes = truncated_bytes,
                "quorum log: cutting a torn or unfinished tail"
            );
            file.set_len(len).map_err(io_err("ftruncate", &live))?;
            file.sync_data().map_err(io_err("fdatasync", &live))?;
        }
        let hard_state = scan.hard_state.unwrap_or_default();
        let last_index = snapshot_index + scan.entries.len() as u64;
        let log = QuorumLog {
            dir: dir.to_path_buf(),
            generation,
            file,
            len,
            snapshot_index,
            last_index,
            hard_state,
            failed: false,
        };
        Ok((
            log,
            Recovered {
                hard_state,
                snapshot,
                entries: scan.entries,
                truncated_bytes,
            },
        ))
    }

    /// The index of the snapshot everything before the log is folded into.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// The index of the last entry (the snapshot's when the log is empty).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Makes one persist durable, in the contract's order: `snapshot`
    /// replaces the whole log, then each entry replaces the entry at its
    /// index and every entry after it, then `hard_state` is set. Entries at
    /// or below the snapshot index are skipped; entries must be contiguous
    /// and start at most one past the last index. Returns once all of it is
    /// synced. See the module doc for what a crash leaves.
    pub fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<()> {
        if self.failed {
            return Err(QuorumLogError::Failed);
        }
        let (base, last) = match snapshot {
            Some(s) => (s.index, s.index),
            None => (self.snapshot_index, self.last_index),
        };
        let entries = check_entries(entries, base, last)?;
        if let Some(s) = snapshot {
            check_snapshot(s)?;
            let hs = hard_state.unwrap_or(self.hard_state);
            return self.switch(s, hs, entries, None);
        }
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        let batch = encode_batch(entries, hard_state);
        let path = log_path(&self.dir, self.generation);
        let res = self
            .file
            .write_all_at(&batch, self.len)
            .and_then(|()| self.file.sync_data())
            .map_err(io_err("write and fdatasync", &path));
        if res.is_err() {
            self.failed = true;
            return res;
        }
        self.len += batch.len() as u64;
        if let Some(e) = entries.last() {
            self.last_index = e.index;
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Writes `snapshot`, which the host made from its state at
    /// `snapshot.index`, and drops every entry at or below that index,
    /// atomically. Returns `false` (and writes nothing) if the log's
    /// snapshot is already at or past it. The entry at `snapshot.index` must
    /// be in the log with `snapshot.term`.
    pub fn compact(&mut self, snapshot: &Snapshot) -> Result<bool> {
        self.compact_until(snapshot, None)
    }

    #[doc(hidden)]
    pub fn compact_until(
        &mut self,
        snapshot: &Snapshot,
        crash: Option<CrashPoint>,
    ) -> Result<bool> {
        if self.failed {
            return Err(QuorumLogError::Failed);
        }
        if snapshot.index <= self.snapshot_index {
            return Ok(false);
        }
        if snapshot.index > self.last_index {
            return Err(QuorumLogError::Refused(format!(
                "snapshot at {} past the last entry {}",
                snapshot.index, self.last_index
            )));
        }
        check_snapshot(snapshot)?;
        let path = log_path(&self.dir, self.generation);
        let scan = scan_log(&self.file, &path, self.generation, self.snapshot_index)?;
        let at = (snapshot.index - self.snapshot_index - 1) as usize;
        let Some(entry) = scan.entries.get(at) else {
            return Err(QuorumLogError::Refused("entry missing from the log".into()));
        };
        if entry.term != snapshot.term {
            return Err(QuorumLogError::Refused(format!(
                "snapshot term {} but the entry at {} has term {}",
                snapshot.term, snapshot.index, entry.term
            )));
        }
        let hs = self.hard_state;
        self.switch(snapshot, hs, &scan.entries[at + 1..], crash)?;
        Ok(true)
    }

    /// Replaces the live snapshot and log with `snapshot` and a new log file
    /// holding `hs` and `entries` (contiguous after the snapshot).
    fn switch(
        &mut self,
        snapshot: &Snapshot,
        hs: HardState,
        entries: &[Entry],
        crash: Option<CrashPoint>,
    ) -> Result<()> {
        self.failed = true;
        let generation = self.generation + 1;
        let path = log_path(&self.dir, generation);
        let mut bytes = header_frame(generation);
        bytes.extend_from_slice(&encode_batch(entries, Some(hs)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.sync_data())
            .map_err(io_err("write and fdatasync", &path))?;
        // The new log's directory entry is durable before the snapshot that
        // names it can be.
        sync_dir(&self.dir).map_err(io_err("sync_dir", &self.dir))?;
        if crash == Some(CrashPoint::AfterNewLog) {
            return Ok(());
        }
        let tmp = self.dir.join(SNAPSHOT_TMP);
        {
            let f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all_at(&encode_snapshot(generation, snapshot), 0)
                .and_then(|()| f.sync_data())
                .map_err(io_err("write and fdatasync", &tmp))?;
        }
        if crash == Some(CrashPoint::AfterSnapshotTemp) {
            return Ok(());
        }
        let snap_path = self.dir.join(SNAPSHOT_FILE);
        std::fs::rename(&tmp, &snap_path).map_err(io_err("rename", &snap_path))?;
        sync_dir(&self.dir).map_err(io_err("sync_dir", &self.dir))?;
        if crash == Some(CrashPoint::AfterRename) {
            return Ok(());
        }
        let old = log_path(&self.dir, self.generation);
        // A leftover is deleted on the next open; no sync needed.
        std::fs::remove_file(&old).map_err(io_err("remove_file", &old))?;
        self.generation = generation;
        self.file = file;
        self.len = bytes.len() as u64;
        self.snapshot_index = snapshot.index;
        self.last_index = snapshot.index + entries.len() as u64;
        self.hard_state = hs;
        self.failed = false;
        Ok(())
    }
}

fn check_snapshot(s: &Snapshot) -> Result<()> {
    if s.voters.len() > MAX_VOTERS as usize {
        return Err(QuorumLogError::Refused(format!(
            "{} voters, at most {MAX_VOTERS}",
            s.voters.len()
        )));
    }
    if snapshot_bytes(s) > MAX_SNAPSHOT_BYTES {
        return Err(QuorumLogError::Refused("snapshot too large".into()));
    }
    Ok(())
}

/// The entries to write: those after `base`, which must follow on from
/// `last` without a gap and be contiguous.
fn check_entries(entries: &[Entry], base: u64, last: u64) -> Result<&[Entry]> {
    let skip = entries.iter().take_while(|e| e.index <= base).count();
    let entries = &entries[skip..];
    if let Some(first) = entries.first() {
        if first.index > last + 1 {
            return Err(QuorumLogError::Refused(format!(
                "entry {} leaves a gap after {last}",
                first.index
            )));
        }
    }
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index + 1 {
            return Err(QuorumLogError::Refused(format!(
                "entry {} follows entry {}",
                pair[1].index, pair[0].index
            )));
        }
    }
    for e in entries {
        if entry_payload_bytes(e) > MAX_FRAME_BYTES as u64 {
            return Err(QuorumLogError::Refused(format!(
                "entry {} is larger than {MAX_FRAME_BYTES} bytes",
                e.index
            )));
        }
    }
    Ok(entries)
}

// ---- frames ----

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc_fast::crc32_iscsi(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn header_frame(generation: u64) -> Vec<u8> {
    let mut p = vec![KIND_HEADER];
    p.extend_from_slice(LOG_MAGIC);
    p.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    p.extend_from_slice(&generation.to_le_bytes());
    frame(&p)
}

fn entry_payload_bytes(e: &Entry) -> u64 {
    1 + 8 + 8 + 1 + 4 + e.data.len() as u64 + 4 + e.context.len() as u64
}

fn entry_frame(e: &Entry) -> Vec<u8> {
    let mut p = Vec::with_capacity(entry_payload_bytes(e) as usize);
    p.push(KIND_ENTRY);
    p.extend_from_slice(&e.index.to_le_bytes());
    p.extend_from_slice(&e.term.to_le_bytes());
    p.push(e.kind);
    p.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
    p.extend_from_slice(&e.data);
    p.extend_from_slice(&(e.context.len() as u32).to_le_bytes());
    p.extend_from_slice(&e.context);
    frame(&p)
}

fn hard_state_frame(hs: HardState) -> Vec<u8> {
    let mut p = vec![KIND_HARD_STATE];
    p.extend_from_slice(&hs.term.to_le_bytes());
    p.extend_from_slice(&hs.vote.to_le_bytes());
    p.extend_from_slice(&hs.commit.to_le_bytes());
    frame(&p)
}

/// One persist: a begin marker with the batch's length in bytes, the
/// entries, the hard state, a commit marker with the number of frames
/// between the two markers.
fn encode_batch(entries: &[Entry], hard_state: Option<HardState>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut frames = 0u32;
    for e in entries {
        body.extend_from_slice(&entry_frame(e));
        frames += 1;
    }
    if let Some(hs) = hard_state {
        body.extend_from_slice(&hard_state_frame(hs));
        frames += 1;
    }
    let total = BEGIN_FRAME_BYTES + body.len() as u64 + COMMIT_FRAME_BYTES;
    let mut p = vec![KIND_BEGIN];
    p.extend_from_slice(&total.to_le_bytes());
    let mut out = frame(&p);
    out.extend_from_slice(&body);
    out.extend_from_slice(&commit_frame(frames));
    out
}

fn commit_frame(frames: u32) -> Vec<u8> {
    let mut p = vec![KIND_COMMIT];
    p.extend_from_slice(&frames.to_le_bytes());
    frame(&p)
}

/// A bounds-checked reader of a payload.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn bytes32(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        self.take(n).map(Bytes::copy_from_slice)
    }
}

enum Frame {
    Header { generation: u64 },
    Entry(Entry),
    HardState(HardState),
    Commit { frames: u32 },
    Begin { bytes: u64 },
}

fn decode_payload(p: &[u8]) -> Option<Frame> {
    let mut c = Cursor { buf: p };
    let frame = match c.u8()? {
        KIND_HEADER => {
            if c.take(4)? != LOG_MAGIC || c.u32()? != FORMAT_VERSION {
                return None;
            }
            Frame::Header {
                generation: c.u64()?,
            }
        }
        KIND_ENTRY => Frame::Entry(Entry {
            index: c.u64()?,
            term: c.u64()?,
            kind: c.u8()?,
            data: c.bytes32()?,
            context: c.bytes32()?,
        }),
        KIND_HARD_STATE => Frame::HardState(HardState {
            term: c.u64()?,
            vote: c.u64()?,
            commit: c.u64()?,
        }),
        KIND_COMMIT => Frame::Commit { frames: c.u32()? },
        KIND_BEGIN => Frame::Begin { bytes: c.u64()? },
        _ => return None,
    };
    c.buf.is_empty().then_some(frame)
}

/// Reads up to `buf.len()` bytes; fewer only at the end of the file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Scan {
    has_header: bool,
    /// Complete batches read.
    batches: u64,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    /// The end of the last complete batch.
    valid_end: u64,
    file_len: u64,
}

/// Reads a log file: its header, then whole batches, applying each
/// batch's entries and hard state. Stops at the first frame that is torn,
/// fails its CRC or does not decode, and at a batch without its commit.
fn scan_log(file: &File, path: &Path, generation: u64, snapshot_index: u64) -> Result<Scan> {
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = io::BufReader::with_capacity(1 << 16, ReadAt { file, pos: 0 });
    let mut scan = Scan {
        has_header: false,
        batches: 0,
        hard_state: None,
        entries: Vec::new(),
        valid_end: 0,
        file_len,
    };
    let corrupt = |position: u64, reason: String| QuorumLogError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    };
    let mut pos = 0u64;
    let mut pending: Vec<Frame> = Vec::new();
    // The open batch: where it starts and the length its begin marker says.
    let mut batch: Option<(u64, u64)> = None;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; FRAME_HEADER_BYTES];
        let n = read_full(&mut reader, &mut head).map_err(io_err("read", path))?;
        if n < FRAME_HEADER_BYTES {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_FRAME_BYTES || u64::from(len) > file_len - pos {
            break;
        }
        payload.resize(len as usize, 0);
        let n = read_full(&mut reader, &mut payload).map_err(io_err("read", path))?;
        if n < len as usize || crc_fast::crc32_iscsi(&payload) != crc {
            break;
        }
        let Some(frame) = decode_payload(&payload) else {
            break;
        };
        let frame_start = pos;
        pos += (FRAME_HEADER_BYTES + len as usize) as u64;
        if !scan.has_header {
            match frame {
                Frame::Header { generation: g } if g == generation => {
                    scan.has_header = true;
                    scan.valid_end = pos;
                    continue;
                }
                Frame::Header { generation: g } => {
                    return Err(corrupt(
                        0,
                        format!("log header names generation {g}, expected {generation}"),
                    ))
                }
                _ => break,
            }
        }
        match frame {
            Frame::Header { .. } => break,
            Frame::Begin { bytes } => {
                if batch.is_some() {
                    break;
                }
                batch = Some((frame_start, bytes));
            }
            _ if batch.is_none() => break,
            Frame::Commit { frames } => {
                let Some((start, bytes)) = batch.take() else {
                    break;
                };
                if frames as usize != pending.len() || start.checked_add(bytes) != Some(pos) {
                    batch = Some((start, bytes));
                    break;
                }
                for f in pending.drain(..) {
                    match f {
                        Frame::Entry(e) => {
                            if e.index <= snapshot_index {
                                continue;
                            }
                            let next = snapshot_index + scan.entries.len() as u64 + 1;
                            if e.index > next {
                                return Err(corrupt(
                                    frame_start,
                                    format!("entry {} after entry {}: a gap", e.index, next - 1),
                                ));
                            }
                            scan.entries
                                .truncate((e.index - snapshot_index - 1) as usize);
                            scan.entries.push(e);
                        }
                        Frame::HardState(hs) => scan.hard_state = Some(hs),
                        Frame::Header { .. } | Frame::Commit { .. } | Frame::Begin { .. } => {}
                    }
                }
                scan.valid_end = pos;
                scan.batches += 1;
            }
            other => pending.push(other),
        }
    }
    // A persist is written at the end of the file and synced before the
    // next one starts, so only the last can be torn: if bytes follow the
    // end its begin marker announced, later persists were written after it
    // was synced, and the damage is to synced data.
    if let Some((start, bytes)) = batch {
        if start.saturating_add(bytes) < file_len {
            return Err(corrupt(
                pos,
                format!(
                    "a damaged frame inside a persist of {bytes} bytes at {start}, \
                     with {} more bytes after it: not a torn tail",
                    file_len - start.saturating_add(bytes)
                ),
            ));
        }
    }
    if !scan.has_header && (generation > 0 || file_len > header_frame(generation).len() as u64) {
        return Err(corrupt(0, "the log header is damaged".into()));
    }
    if generation > 0 && scan.batches == 0 {
        // Written and synced whole before the snapshot naming it was.
        return Err(corrupt(
            scan.valid_end,
            "the log the snapshot names lost its first batch".into(),
        ));
    }
    Ok(scan)
}

/// Sequential reads through `read_at`, so that scanning leaves the file's
/// own position alone.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

// ---- snapshot file ----

fn snapshot_bytes(s: &Snapshot) -> u64 {
    4 + 4 + 8 + 8 + 8 + 4 + 8 * s.voters.len() as u64 + 8 + s.data.len() as u64 + 4
}

fn encode_snapshot(generation: u64, s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(snapshot_bytes(s) as usize);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&s.index.to_le_bytes());
    out.extend_from_slice(&s.term.to_le_bytes());
    out.extend_from_slice(&(s.voters.len() as u32).to_le_bytes());
    for v in &s.voters {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
    out.extend_from_slice(&s.data);
    let crc = crc_fast::crc32_iscsi(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_snapshot(bytes: &[u8]) -> Result<(u64, Snapshot), String> {
    let Some(body_len) = bytes.len().checked_sub(4) else {
        return Err("shorter than its checksum".into());
    };
    let (body, crc) = bytes.split_at(body_len);
    if crc_fast::crc32_iscsi(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let mut c = Cursor { buf: body };
    let short = || "truncated".to_string();
    if c.take(4).ok_or_else(short)? != SNAPSHOT_MAGIC {
        return Err("wrong magic".into());
    }
    let version = c.u32().ok_or_else(short)?;
    if version != FORMAT_VERSION {
        return Err(format!("format version {version} is not supported"));
    }
    let generation = c.u64().ok_or_else(short)?;
    let index = c.u64().ok_or_else(short)?;
    let term = c.u64().ok_or_else(short)?;
    let count = c.u32().ok_or_else(short)?;
    if count > MAX_VOTERS {
        return Err(format!("{count} voters, at most {MAX_VOTERS}"));
    }
    let voters = (0..count)
        .map(|_| c.u64().ok_or_else(short))
        .collect::<Result<Vec<_>, _>>()?;
    let len = c.u64().ok_or_else(short)?;
    let data = usize::try_from(len)
        .ok()
        .and_then(|n| c.take(n))
        .ok_or_else(short)?;
    if !c.buf.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok((
        generation,
        Snapshot {
            index,
            term,
            voters,
            data: Bytes::copy_from_slice(data),
        },
    ))
}

fn read_snapshot(path: &Path) -> Result<(u64, Snapshot)> {
    let corrupt = |reason: String| QuorumLogError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason,
    };
    let len = std::fs::metadata(path).map_err(io_err("stat", path))?.len();
    if len > MAX_SNAPSHOT_BYTES {
        return Err(corrupt(format!(
            "snapshot file of {len} bytes, at most {MAX_SNAPSHOT_BYTES}"
        )));
    }
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    decode_snapshot(&bytes).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_damaged_byte_of_a_snapshot_is_detected() {
        let s = Snapshot {
            index: 7,
            term: 2,
            voters: vec![1, 2, 3],
            data: Bytes::from_static(b"image"),
        };
        let good = encode_snapshot(4, &s);
        assert_eq!(decode_snapshot(&good).unwrap(), (4, s));
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(decode_snapshot(&bad).is_err(), "flip at {i} accepted");
        }
        for cut in 0..good.len() {
            assert!(decode_snapshot(&good[..cut]).is_err());
        }
    }

    #[test]
    fn garbage_payloads_never_decode_into_a_wrong_length() {
        let e = Entry {
            index: 1,
            term: 1,
            kind: 0,
            data: Bytes::from_static(b"abc"),
            context: Bytes::new(),
        };
        let f = entry_frame(&e);
        let payload = &f[FRAME_HEADER_BYTES..];
        for cut in 0..payload.len() {
            assert!(decode_payload(&payload[..cut]).is_none());
        }
        let mut long = payload.to_vec();
        long.push(0);
        assert!(decode_payload(&long).is_none());
    }

    #[test]
    fn entries_at_or_below_the_snapshot_are_dropped_on_load() {
        // A snapshot that names a log still holding the entries it folds
        // (a layout no write makes, but one recovery must read right).
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = QuorumLog::open(dir.path()).unwrap();
        let ents: Vec<Entry> = (1..=5)
            .map(|index| Entry {
                index,
                term: 1,
                kind: 0,
                data: Bytes::from(vec![index as u8; 3]),
                context: Bytes::new(),
            })
            .collect();
        log.persist(None, &ents, None).unwrap();
        drop(log);
        let snap = Snapshot {
            index: 3,
            term: 1,
            voters: vec![1],
            data: Bytes::from_static(b"s"),
        };
        std::fs::write(dir.path().join(SNAPSHOT_FILE), encode_snapshot(0, &snap)).unwrap();
        let (log, r) = QuorumLog::open(dir.path()).unwrap();
        assert_eq!(r.snapshot, Some(snap));
        assert_eq!(r.entries, ents[3..].to_vec());
        assert_eq!((log.snapshot_index(), log.last_index()), (3, 5));
    }
}
