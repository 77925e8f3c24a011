//! Request framing: splitting a connection's read buffer into request frames.
//!
//! Every Kafka request is a 4-byte big-endian size followed by that many bytes.
//! [`FrameDecoder`] reads the size, checks it against `request_bytes_max`, and
//! once the whole frame is in the buffer hands it out as a [`Bytes`] that
//! shares the read buffer's allocation: no request byte is copied here.

use bytes::{Buf, Bytes, BytesMut};

use crate::errors::ProtocolError;

/// Length of the size prefix in front of every request and response.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;

/// Splits complete request frames off the front of a read buffer.
///
/// The decoder itself holds no partial state: everything it needs is in the
/// buffer, so the server may call [`FrameDecoder::decode`] after every read,
/// however few bytes arrived (fewer than the 4 size bytes included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// The largest frame accepted, size prefix excluded. A larger declared size
    /// is an error that closes the connection, as in Kafka, so that a client
    /// cannot make the broker buffer an unbounded amount of memory.
    request_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(REQUEST_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder that accepts frames of at most `request_bytes_max` bytes
    /// (Kafka's `socket.request.max.bytes`, size prefix excluded).
    pub const fn new(request_bytes_max: usize) -> Self {
        Self { request_bytes_max }
    }

    /// The bound this decoder enforces.
    pub const fn request_bytes_max(&self) -> usize {
        self.request_bytes_max
    }

    /// Takes the next complete frame off the front of `buf`.
    ///
    /// Returns `Ok(Some(frame))` with the frame *without* its size prefix,
    /// `Ok(None)` when `buf` does not yet hold a complete frame (it is left
    /// untouched then), and an error when the size prefix is negative or larger
    /// than `request_bytes_max`, after which the connection must be closed.
    ///
    /// The frame is split off `buf` with `BytesMut::split_to`, so it points into
    /// the same allocation as the read buffer; parsing it later slices it
    /// further without copying.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtocolError> {
        let Some(size_bytes) = self.peek_size(buf)? else {
            return Ok(None);
        };
        let frame_end = SIZE_PREFIX_BYTES + size_bytes;
        if buf.len() < frame_end {
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_BYTES);
        Ok(Some(buf.split_to(size_bytes).freeze()))
    }

    /// How many more bytes must arrive before [`FrameDecoder::decode`] can
    /// return the next frame; zero when it can return one now.
    ///
    /// With fewer than 4 bytes buffered this is the number of size bytes still
    /// missing, since the frame length is not known yet. The server can use it
    /// to size its next read; it should not reserve the whole frame up front
    /// from this, because the declared size is chosen by the client.
    pub fn bytes_needed(&self, buf: &[u8]) -> Result<usize, ProtocolError> {
        match self.peek_size(buf)? {
            None => Ok(SIZE_PREFIX_BYTES - buf.len()),
            Some(size_bytes) => Ok((SIZE_PREFIX_BYTES + size_bytes).saturating_sub(buf.len())),
        }
    }

    /// The size the frame at the front of `buf` declares (size prefix
    /// excluded), checked as [`FrameDecoder::decode`] checks it, or `None`
    /// when fewer than 4 bytes are buffered. The server takes the frame's
    /// share of its memory budget from this before it reads the body.
    pub fn frame_bytes(&self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        self.peek_size(buf)
    }

    /// Reads and checks the size prefix, or `None` when fewer than 4 bytes
    /// are buffered.
    fn peek_size(&self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let size = i32::from_be_bytes(*prefix);
        // Kafka rejects negative sizes and sizes above the bound, and accepts a
        // size equal to the bound (NetworkReceive.readFrom).
        let size_bytes = usize::try_from(size)
            .map_err(|_| ProtocolError::NegativeFrameSize { size_bytes: size })?;
        if size_bytes > self.request_bytes_max {
            return Err(ProtocolError::FrameTooLarge {
                size_bytes,
                request_bytes_max: self.request_bytes_max,
            });
        }
        Ok(Some(size_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn partial_prefix_waits() {
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 2);
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), 2);
    }

    #[test]
    fn partial_body_waits_then_yields_zero_copy() {
        let decoder = FrameDecoder::default();
        let wire = framed(b"hello world");
        let mut buf = BytesMut::from(&wire[..7]);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), wire.len() - 7);
        buf.extend_from_slice(&wire[7..]);
        let body_ptr = buf[SIZE_PREFIX_BYTES..].as_ptr();
        let frame = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], b"hello world");
        assert_eq!(
            frame.as_ptr(),
            body_ptr,
            "the frame must share the read buffer"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_in_one_buffer() {
        let decoder = FrameDecoder::default();
        let mut wire = framed(b"a");
        wire.extend(framed(b""));
        wire.extend(framed(b"bc"));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], b"a");
        assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], b"");
        assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], b"bc");
        assert!(decoder.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn negative_size_is_rejected() {
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(ProtocolError::NegativeFrameSize { size_bytes: -1 })
        ));
    }

    #[test]
    fn bound_is_inclusive() {
        let decoder = FrameDecoder::new(3);
        let mut buf = BytesMut::from(&framed(b"abc")[..]);
        assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], b"abc");
        let mut buf = BytesMut::from(&framed(b"abcd")[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge {
                size_bytes: 4,
                request_bytes_max: 3
            })
        ));
    }

    #[test]
    fn oversized_prefix_is_rejected_before_the_body_arrives() {
        let decoder = FrameDecoder::default();
        let size = (REQUEST_BYTES_MAX_DEFAULT + 1) as i32;
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        assert!(decoder.bytes_needed(&buf).is_err());
    }
}
