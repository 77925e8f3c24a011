//! The admin HTTP listener (`admin_listen`, `--admin-listen HOST:PORT`):
//! `GET /metrics` (Prometheus text exposition, see [`crate::metrics`]),
//! `GET /health` (the process serves HTTP: 200) and `GET /ready` (200 once
//! every shard serves Kafka clients, 503 before that and while stopping),
//! for orchestrators' probes; and the web console, `/ui` and its JSON API
//! under `/api/` (see [`crate::console`]).
//!
//! It is off the data path: its own port, served by shard 0 only, one
//! request per connection (`Connection: close`), and bounded like the Kafka
//! listener is: at most [`ADMIN_CONNECTIONS_MAX`] connections at once, a
//! request head of at most [`ADMIN_REQUEST_HEAD_BYTES_MAX`], read within
//! [`ADMIN_REQUEST_TIMEOUT_MS`], with a body (the console's writes) of at
//! most [`crate::console::REQUEST_BODY_BYTES_MAX`]. Anything else is
//! answered 400, 404, 405, 411, 413 or 431 and closed; nothing a client
//! sends here can stop the broker.
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
    /// The web console: its page and JSON API, any method (the console
    /// says which it serves).
    Console,
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
    if crate::console::is_console_path(target.split('?').next().unwrap_or_default()) {
        return Route::Console;
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

/// Reads until the end of the request head; returns the head (through its
/// blank line) and whatever of the body came with it.
async fn read_head(stream: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = head.split_off(end + 4);
            return Ok((head, body));
        }
        if head.len() > ADMIN_REQUEST_HEAD_BYTES_MAX {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The value of header `name` (case-insensitive) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What the body of a request must be, from its head.
#[derive(Debug, PartialEq, Eq)]
enum BodyLength {
    Bytes(usize),
    /// Over [`crate::console::REQUEST_BODY_BYTES_MAX`]: 413, unread.
    TooLarge,
    /// A length that is not a number, or chunked encoding: 411.
    Unknown,
}

fn body_length(head: &str) -> BodyLength {
    if header(head, "transfer-encoding").is_some() {
        return BodyLength::Unknown;
    }
    match header(head, "content-length").map(str::parse::<usize>) {
        None => BodyLength::Bytes(0),
        Some(Ok(n)) if n > crate::console::REQUEST_BODY_BYTES_MAX => BodyLength::TooLarge,
        Some(Ok(n)) => BodyLength::Bytes(n),
        Some(Err(_)) => BodyLength::Unknown,
    }
}

/// An answer of the listener: status line, content type and body.
type Answer = (&'static str, &'static str, Vec<u8>);

fn text(status: &'static str, body: &str) -> Answer {
    (status, "text/plain", body.as_bytes().to_vec())
}

async fn answer(shard: &Rc<Shard>, mut stream: TcpStream) {
    let timeout = Some(Duration::from_millis(ADMIN_REQUEST_TIMEOUT_MS));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let (status, content_type, body, head_only) = match read_head(&mut stream).await {
        Err(HeadError::TooLarge) => {
            let (status, content_type, body) = text(
                "431 Request Header Fields Too Large",
                &format!("request head over {ADMIN_REQUEST_HEAD_BYTES_MAX} bytes\n"),
            );
            (status, content_type, body, false)
        }
        Err(HeadError::Gone) => return,
        Ok((head, body_start)) => {
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
                        crate::metrics::render(&samples, &process, ready).into_bytes(),
                    )
                }
                Route::Health => text("200 OK", "ok\n"),
                Route::Ready => {
                    if shard.all_shards_ready() && !shard.is_stopping() {
                        text("200 OK", "ready\n")
                    } else {
                        text("503 Service Unavailable", "not ready\n")
                    }
                }
                Route::Console => match console(shard, &mut stream, &head, body_start).await {
                    Some(answer) => answer,
                    None => return,
                },
                Route::NotFound => text(
                    "404 Not Found",
                    "not found: try /ui, /metrics, /health or /ready\n",
                ),
                Route::MethodNotAllowed => text("405 Method Not Allowed", "only GET and HEAD\n"),
                Route::BadRequest => text("400 Bad Request", "bad request\n"),
            };
            (status, content_type, body, head_only)
        }
    };
    // A HEAD answer says the length a GET's body would have, and sends none.
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        body.len(),
        crate::console::SECURITY_HEADERS,
    );
    let _ = stream.write_all(head.as_bytes()).await;
    if !head_only {
        let _ = stream.write_all(&body).await;
    }
    let _ = stream.flush().await;
    let _ = stream.close().await;
}

/// Reads a console request's body and has the console answer it; None
/// when the client went away.
async fn console(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    head: &[u8],
    mut body: Vec<u8>,
) -> Option<Answer> {
    // `route` has read the head as UTF-8 and found its request line.
    let head = std::str::from_utf8(head).ok()?;
    let mut parts = head.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let length = match body_length(head) {
        BodyLength::Bytes(n) => n,
        BodyLength::TooLarge => {
            return Some(text(
                "413 Content Too Large",
                &format!(
                    "request body over {} bytes\n",
                    crate::console::REQUEST_BODY_BYTES_MAX
                ),
            ))
        }
        BodyLength::Unknown => {
            return Some(text(
                "411 Length Required",
                "send a Content-Length, not chunks\n",
            ))
        }
    };
    if body.len() > length {
        return Some(text("400 Bad Request", "more body than Content-Length\n"));
    }
    let before = body.len();
    body.resize(length, 0);
    stream.read_exact(&mut body[before..]).await.ok()?;
    let json_body = header(head, "content-type").is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    let request = crate::console::HttpRequest {
        method,
        path,
        query,
        json_body,
        body: &body,
    };
    let answer = crate::console::answer(shard, &request).await;
    Some((answer.status, answer.content_type, answer.body))
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
        assert_eq!(route(b"GET /ui HTTP/1.1\r\n\r\n"), Route::Console);
        assert_eq!(route(b"POST /api/topics HTTP/1.1\r\n\r\n"), Route::Console);
        assert_eq!(
            route(b"DELETE /api/topic?name=x HTTP/1.1\r\n\r\n"),
            Route::Console
        );
    }

    #[test]
    fn bodies_are_bounded_by_their_length() {
        let head = "POST /api/topics HTTP/1.1\r\nHost: x\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(body_length(head), BodyLength::Bytes(12));
        assert_eq!(
            header(head, "Content-Length"),
            Some("12"),
            "header names are case-insensitive"
        );
        assert_eq!(
            body_length("GET /ui HTTP/1.1\r\n\r\n"),
            BodyLength::Bytes(0)
        );
        let over = crate::console::REQUEST_BODY_BYTES_MAX + 1;
        assert_eq!(
            body_length(&format!(
                "POST / HTTP/1.1\r\nContent-Length: {over}\r\n\r\n"
            )),
            BodyLength::TooLarge
        );
        assert_eq!(
            body_length("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            BodyLength::Unknown
        );
        assert_eq!(
            body_length("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BodyLength::Unknown
        );
    }
}
