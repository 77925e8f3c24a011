//! The admin HTTP listener (`admin_listen`, `--admin-listen HOST:PORT`):
//! `GET /metrics` (Prometheus text exposition, see [`crate::metrics`]),
//! `GET /health` (the process serves HTTP: 200) and `GET /ready` (200 once
//! every shard serves Kafka clients, 503 before that and while stopping),
//! for orchestrators' probes.
//!
//! It is off the data path: its own port, served by shard 0 only, one
//! request per connection (`Connection: close`), and bounded like the Kafka
//! listener is: at most [`ADMIN_CONNECTIONS_MAX`] connections at once, a
//! request head of at most [`ADMIN_REQUEST_HEAD_BYTES_MAX`], read within
//! [`ADMIN_REQUEST_TIMEOUT_MS`]. Anything else is answered 400, 404, 405 or
//! 431 and closed; nothing a client sends here can stop the broker.
//!
//! Lives on: shard 0.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::net::{TcpListener, TcpStream};

use crate::shard::Shard;

/// Admin connections served at once; more are closed at once. Scrapers
/// and probes open a handful.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// The longest request line and headers accepted; browsers and Prometheus
/// send well under 1 KiB.
pub const ADMIN_REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
/// How long a client has to send its request head, and to read the answer.
pub const ADMIN_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Binds the admin listener. Called on shard 0 before the broker says it
/// is ready, so that a port in use stops the start with a clear error.
///
/// Bound without SO_REUSEPORT (glommio's `TcpListener::bind` sets it, for
/// the Kafka port that every shard shares): a second broker configured
/// with the same admin port must fail to start, not split the scrapes.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that nothing
    // else owns once `into_raw_fd` gave it up.
    Ok(unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

/// Serves admin connections until the shard stops.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stop = shard.stop_notified();
        if shard.is_stopping() {
            return;
        }
        let accepted = async { Some(listener.accept().await) };
        let stopped = async {
            stop.await;
            None
        };
        match accepted.or(stopped).await {
            None => return,
            Some(Ok(stream)) => {
                if open.get() >= ADMIN_CONNECTIONS_MAX {
                    drop(stream);
                    continue;
                }
                open.set(open.get() + 1);
                let (shard, open) = (shard.clone(), open.clone());
                glommio::spawn_local(async move {
                    let timeout = Duration::from_millis(ADMIN_REQUEST_TIMEOUT_MS);
                    let served = async {
                        answer(&shard, stream).await;
                    };
                    let timed_out = async {
                        glommio::timer::sleep(timeout * 2).await;
                    };
                    served.or(timed_out).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    Ready,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Reads the request line of a complete head ("GET /path HTTP/1.1").
fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = text.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    // The query string (Prometheus sends none; a browser may) is ignored.
    match target.split('?').next().unwrap_or_default() {
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        "/ready" => Route::Ready,
        _ => Route::NotFound,
    }
}

/// Why no request head was read.
enum HeadError {
    /// Longer than [`ADMIN_REQUEST_HEAD_BYTES_MAX`]: answered 431.
    TooLarge,
    /// The client closed, failed or was too slow: closed without answer.
    Gone,
}

/// Reads until the end of the request head.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > ADMIN_REQUEST_HEAD_BYTES_MAX {
            return Err(HeadError::TooLarge);
        }
    }
}

async fn answer(shard: &Rc<Shard>, mut stream: TcpStream) {
    let timeout = Some(Duration::from_millis(ADMIN_REQUEST_TIMEOUT_MS));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let (status, content_type, body) = match read_head(&mut stream).await {
        Err(HeadError::TooLarge) => (
            "431 Request Header Fields Too Large",
            "text/plain",
            format!("request head over {ADMIN_REQUEST_HEAD_BYTES_MAX} bytes\n"),
        ),
        Err(HeadError::Gone) => return,
        Ok(head) => {
            let head_only = head.starts_with(b"HEAD ");
            let (status, content_type, body) = match route(&head) {
                Route::Metrics => {
                    let samples = crate::metrics::gather(shard).await;
                    let process =
                        corelog_runtime::run_blocking(crate::metrics::process_sample).await;
                    let ready = shard.all_shards_ready() && !shard.is_stopping();
                    (
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        crate::metrics::render(&samples, &process, ready),
                    )
                }
                Route::Health => ("200 OK", "text/plain", "ok\n".to_string()),
                Route::Ready => {
                    if shard.all_shards_ready() && !shard.is_stopping() {
                        ("200 OK", "text/plain", "ready\n".to_string())
                    } else {
                        (
                            "503 Service Unavailable",
                            "text/plain",
                            "not ready\n".to_string(),
                        )
                    }
                }
                Route::NotFound => (
                    "404 Not Found",
                    "text/plain",
                    "not found: try /metrics, /health or /ready\n".to_string(),
                ),
                Route::MethodNotAllowed => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "only GET and HEAD\n".to_string(),
                ),
                Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
            };
            let body = if head_only { String::new() } else { body };
            (status, content_type, body)
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_request_line() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /ready?x=1 HTTP/1.0\r\n\r\n"), Route::Ready);
        assert_eq!(route(b"HEAD /health HTTP/1.1\r\n\r\n"), Route::Health);
        assert_eq!(route(b"GET /nope HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
    }
}
