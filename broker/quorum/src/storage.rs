//! The driver's in-memory view of the Raft log, which raft-rs reads through
//! its `Storage` trait.
//!
//! It holds every entry raft-rs has handed out for persistence, whether or
//! not the host has reported it durable yet (raft-rs tracks that itself, see
//! `RawNode::on_persist_ready`), plus the latest snapshot with its data. It
//! is rebuilt on restart from what the host recovered ([`crate::Durable`]),
//! so nothing here outlives a crash that the host's disk did not keep.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

pub(crate) struct LogStore {
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    /// The snapshot everything before `first_index()` is folded into.
    pub(crate) snapshot: Snapshot,
    /// Entries from `snapshot index + 1` on, contiguous.
    pub(crate) entries: Vec<Entry>,
}

impl LogStore {
    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    pub(crate) fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub(crate) fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Appends entries raft-rs handed out, replacing any conflicting suffix.
    pub(crate) fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        // raft-rs never hands out entries at or below the snapshot, nor with
        // a gap; clamp defensively rather than panic.
        let start = first.index.max(self.first());
        let keep = start.saturating_sub(self.first()) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
        for e in ents.iter().filter(|e| e.index >= start) {
            if e.index == self.last() + 1 {
                self.entries.push(e.clone());
            }
        }
    }

    /// Replaces the log with a snapshot received from the leader.
    pub(crate) fn apply_snapshot(&mut self, snap: Snapshot) {
        let md = snap.get_metadata();
        self.hard_state.term = self.hard_state.term.max(md.term);
        self.hard_state.commit = self.hard_state.commit.max(md.index);
        self.conf_state = md.get_conf_state().clone();
        self.entries.clear();
        self.snapshot = snap;
    }

    /// Folds every entry up to `index` into a snapshot with `data`.
    pub(crate) fn compact(&mut self, index: u64, data: bytes::Bytes) -> bool {
        if index <= self.snapshot_index() || index > self.last() {
            return false;
        }
        let term = self.entries[(index - self.first()) as usize].term;
        self.entries.drain(..(index + 1 - self.first()) as usize);
        let mut snap = Snapshot {
            data,
            ..Default::default()
        };
        let md = snap.mut_metadata();
        md.index = index;
        md.term = term;
        md.set_conf_state(self.conf_state.clone());
        self.snapshot = snap;
        true
    }
}

impl Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
