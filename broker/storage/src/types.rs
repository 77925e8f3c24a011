//! Newtypes shared by the storage layer and everything above it.

use std::fmt;

/// A Kafka offset: the position of a record in its partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The offset `n` records later.
    pub fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Kafka's file name for a segment starting at `base`: the offset zero-padded to 20 digits.
pub fn segment_file_stem(base: Offset) -> String {
    format!("{:020}", base.0)
}
