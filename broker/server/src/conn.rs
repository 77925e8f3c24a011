//! One client connection: read frames, answer each request in order.
//!
//! Lives on: the shard that accepted the connection; it never migrates.
//! Requests on one connection are handled one at a time, as Kafka does
//! (a connection's next request is read only after the previous response
//! is written): that is the bound on in-flight requests per connection, and
//! it makes reading stop, which is backpressure, when the broker is busy.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use corelog_protocol::{decode_request_header, decode_request_with, FrameDecoder, ProtocolError};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::handlers::{self, Reply};
use crate::shard::Shard;

/// The most bytes read from the socket at a time.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// The least: what an idle connection holds while it waits for a request.
pub const READ_CHUNK_MIN_BYTES: usize = 4 << 10;

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
    // Kafka shows a group member's host as Java prints an InetAddress.
    let client_host = peer_addr
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let decoder = FrameDecoder::new(shard.config.request_bytes_max);
    let mut buf = BytesMut::new();
    loop {
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection: bad frame");
                    return;
                }
            };
            match handle_frame(&shard, &client_host, frame).await {
                Ok(Reply::None) => {}
                Ok(Reply::Bytes(b)) => {
                    if stream.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Ok(Reply::Segments(segments)) => {
                    // Record chunks are written straight from the cache or read
                    // buffers they live in: no user-space copy.
                    for s in segments {
                        if stream.write_all(&s).await.is_err() {
                            return;
                        }
                    }
                }
                Err(close) => {
                    tracing::info!(%peer, reason = %close, "closing connection");
                    if let Some(bytes) = close.final_bytes {
                        let _ = stream.write_all(&bytes).await;
                    }
                    return;
                }
            }
        }
        if shard.stopping.get() {
            return;
        }
        let len = buf.len();
        if len == 0 && buf.capacity() > READ_CHUNK_MIN_BYTES {
            // Between requests a connection keeps only a small buffer, so
            // thousands of idle connections cost little memory.
            buf = BytesMut::new();
        }
        // Read what the frame being assembled still needs, within bounds:
        // small while waiting for the next request, larger for a big one.
        let want = decoder
            .bytes_needed(&buf)
            .unwrap_or(READ_CHUNK_MIN_BYTES)
            .clamp(READ_CHUNK_MIN_BYTES, READ_CHUNK_BYTES);
        buf.reserve(want);
        // Read into spare capacity without unsafe: extend with zeros, read,
        // then cut back to what arrived.
        buf.resize(len + want, 0);
        let read = stream.read(&mut buf[len..]).await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.truncate(len + n),
        }
    }
}

/// Why a connection is closed, with bytes to send before closing if any.
#[derive(Debug)]
pub struct Close {
    pub reason: String,
    pub final_bytes: Option<Bytes>,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

async fn handle_frame(shard: &Rc<Shard>, client_host: &str, frame: Bytes) -> Result<Reply, Close> {
    let raw = frame.clone();
    let (header, body) =
        decode_request_header(frame).map_err(|e| with_frame(protocol_close(e), &raw))?;
    let request = match decode_request_with(handlers::SERVER_APIS, &header, body) {
        Ok(r) => r,
        Err(e) => {
            // KIP-511: an ApiVersions request of an unknown version gets an
            // answer; every other undecodable request closes the connection.
            if let Some(resp) = e.error_response() {
                return Ok(Reply::Bytes(resp.freeze()));
            }
            return Err(with_frame(protocol_close(e), &raw));
        }
    };
    tracing::debug!(api = ?header.api_key, version = header.api_version, correlation_id = header.correlation_id, "request");
    handlers::dispatch(shard, &header, client_host, request).await
}

/// Adds the start of the offending frame to the log line, in hex, so that a
/// client's bad request can be diagnosed from the broker's log alone.
fn with_frame(mut close: Close, frame: &[u8]) -> Close {
    const SHOWN_BYTES: usize = 64;
    let hex: String = frame
        .iter()
        .take(SHOWN_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect();
    close.reason = format!(
        "{} (frame of {} bytes starts {hex})",
        close.reason,
        frame.len()
    );
    close
}

fn protocol_close(e: ProtocolError) -> Close {
    Close {
        reason: e.to_string(),
        final_bytes: None,
    }
}
