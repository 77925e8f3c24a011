//! Counts of message-format conversions (issue 21): Produce v0-2 message
//! sets converted to record batches ("up") and Fetch v0-3 answers
//! converted to message sets ("down"). Only old clients cause them, and
//! each costs a decode and an encode of every record, so an operator
//! should see how many there are: each shard logs its counts at info on
//! its first conversion and then every [`CONVERSIONS_LOGGED_EVERY`], and
//! the metrics show them (`corelog_message_format_conversions_total` and
//! `corelog_message_format_conversion_bytes_total`, per shard and
//! direction; `crate::metrics`).

use std::cell::Cell;

/// A shard logs its counts once per this many conversions (both
/// directions together).
pub const CONVERSIONS_LOGGED_EVERY: u64 = 1000;

/// A direction of conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A Produce v0-2 message set to a record batch.
    Up,
    /// Records to a message set for a Fetch v0-3.
    Down,
}

/// One shard's counts: conversions and input bytes, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub up: u64,
    pub up_bytes: u64,
    pub down: u64,
    pub down_bytes: u64,
}

thread_local! {
    /// Each shard is one thread, so these are the shard's counts.
    static COUNTS: Cell<Counts> = const { Cell::new(Counts { up: 0, up_bytes: 0, down: 0, down_bytes: 0 }) };
}

/// Counts one conversion of `bytes` input bytes, and logs the shard's
/// counts when a line is due.
pub fn count(direction: Direction, bytes: usize) {
    let bytes = bytes as u64;
    let c = COUNTS.with(|cell| {
        let mut c = cell.get();
        match direction {
            Direction::Up => {
                c.up += 1;
                c.up_bytes += bytes;
            }
            Direction::Down => {
                c.down += 1;
                c.down_bytes += bytes;
            }
        }
        cell.set(c);
        c
    });
    let total = c.up + c.down;
    if total == 1 || total.is_multiple_of(CONVERSIONS_LOGGED_EVERY) {
        tracing::info!(
            up = c.up,
            up_bytes = c.up_bytes,
            down = c.down,
            down_bytes = c.down_bytes,
            "message-format conversions on this shard so far (Produce v0-2 up to record batches, Fetch v0-3 down to message sets)"
        );
    }
}

/// This shard's counts so far.
pub fn counts() -> Counts {
    COUNTS.with(Cell::get)
}
