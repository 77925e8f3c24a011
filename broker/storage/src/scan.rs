//! Walking the batches of a segment file in order, reading it in large
//! aligned chunks. Recovery, reads from disk and timestamp lookups all use it.

use std::ops::ControlFlow;

use bytes::Bytes;

use crate::batch::{self, BatchError, BatchHeader, BATCH_HEADER_BYTES};
use crate::io::{align_down, align_up, DirectFile};
use crate::types::Offset;

/// How a scan ended.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// Every batch up to `end` was visited.
    Complete,
    /// The visitor stopped at the batch starting at `position`.
    Stopped { position: u64 },
    /// The bytes at `position` are not a valid batch (or not the expected
    /// offset). `zeroed` is true when they are zero padding, the normal end
    /// of the data in a preallocated file, rather than damage. `older` is
    /// true when they are a whole, valid batch with offsets below the
    /// expected one: what follows the data in a recycled segment file.
    Invalid {
        position: u64,
        reason: String,
        zeroed: bool,
        older: bool,
    },
}

/// What a scan checks of each batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanCheck {
    /// Verify the CRC and record count of every batch.
    pub validate: bool,
    /// Require each batch to start at the offset where the previous one ended.
    pub expect_offset: Option<Offset>,
    /// With `expect_offset`, accept a batch that starts past the expected
    /// offset (never before it): a sealed segment the cleaner rewrote has
    /// gaps where whole batches were dropped.
    pub gaps_allowed: bool,
}

/// Visits the batches in `[from, end)` of `file`. The visitor gets each
/// batch's position, header and bytes (a zero-copy slice of the read buffer).
pub(crate) async fn scan<F: DirectFile>(
    file: &F,
    from: u64,
    end: u64,
    chunk_bytes: usize,
    check: ScanCheck,
    mut visit: impl FnMut(u64, &BatchHeader, Bytes) -> ControlFlow<()>,
) -> std::io::Result<ScanEnd> {
    let mut pos = from;
    // O_DIRECT needs every read length aligned, whatever the caller asked for.
    let chunk_bytes = align_up(chunk_bytes as u64) as usize;
    let mut expect = check.expect_offset;
    // The buffer covers file bytes [buf_start, buf_start + buf.len()).
    let mut buf = Bytes::new();
    let mut buf_start = 0u64;
    while pos < end {
        let remaining = end - pos;
        let mut needed = (BATCH_HEADER_BYTES as u64).min(remaining);
        // Each round either finds a whole header and batch in the buffer, or
        // learns a strictly larger `needed`, so the loop ends.
        let (header, at) = loop {
            let have = (buf_start + buf.len() as u64).saturating_sub(pos);
            if pos < buf_start || have < needed {
                let read_from = align_down(pos);
                let want = align_up(pos - read_from + needed).max(chunk_bytes as u64);
                let want = want.min(align_up(end) - read_from);
                buf = file.read_at(read_from, want as usize).await?;
                buf_start = read_from;
                if buf_start + (buf.len() as u64) < pos + needed {
                    // The file ends early: what remains cannot be a whole batch.
                    return Ok(ScanEnd::Invalid {
                        position: pos,
                        reason: "file ends inside a batch".into(),
                        zeroed: false,
                        older: false,
                    });
                }
            }
            let at = (pos - buf_start) as usize;
            let avail = &buf[at..buf.len().min(at + remaining as usize)];
            match BatchHeader::parse(avail) {
                Ok(h) => break (h, at),
                Err(BatchError::Truncated { needed_bytes, .. })
                    if (needed_bytes as u64) <= remaining && (needed_bytes as u64) > needed =>
                {
                    needed = needed_bytes as u64;
                }
                Err(e) => {
                    let zeroed = avail.iter().take(BATCH_HEADER_BYTES).all(|&b| b == 0);
                    return Ok(ScanEnd::Invalid {
                        position: pos,
                        reason: e.to_string(),
                        zeroed,
                        older: false,
                    });
                }
            }
        };
        let bytes = buf.slice(at..at + header.total_bytes);
        if check.validate {
            if let Err(e) = batch::validate(&bytes) {
                return Ok(ScanEnd::Invalid {
                    position: pos,
                    reason: e.to_string(),
                    zeroed: false,
                    older: false,
                });
            }
        }
        if let Some(want) = expect {
            let fits =
                header.base_offset == want || (check.gaps_allowed && header.base_offset > want);
            if !fits {
                return Ok(ScanEnd::Invalid {
                    position: pos,
                    reason: format!(
                        "batch offset {} where {} was expected",
                        header.base_offset, want
                    ),
                    zeroed: false,
                    older: check.validate && header.base_offset < want,
                });
            }
            expect = Some(header.next_offset());
        }
        if visit(pos, &header, bytes).is_break() {
            return Ok(ScanEnd::Stopped { position: pos });
        }
        pos += header.total_bytes as u64;
    }
    Ok(ScanEnd::Complete)
}
