//! One client connection: read frames, answer each request in order.
//!
//! Lives on: the shard that accepted the connection; it never migrates.
//!
//! Pipelining: Produce and Fetch requests on one connection are handled
//! concurrently, up to `requests_in_flight_per_connection_max`, and answered
//! in the order they arrived. Every other request runs alone: it waits for
//! the requests before it and holds back those after it, so admin and group
//! requests keep Kafka's one-at-a-time order. A request's frame bytes count
//! against the shard's `request_bytes_in_flight_per_shard_max` from the
//! moment its size prefix is read, before its body is, until its response
//! is written; when either bound is reached the connection stops reading
//! its socket, which is the backpressure. Fetch responses also hold
//! their share of the connection's `fetch_response_bytes_per_connection_max`
//! until written, so a client that does not read its answers holds a
//! bounded amount of memory: at most `requests_in_flight_per_connection_max`
//! answers, of which the Fetch answers within that bound; every other
//! answer is one request's, and admin and group requests run one at a
//! time. How long it holds them is bounded too: a response write that makes
//! no progress for `response_write_timeout_ms` closes the connection.
//!
//! Slow input: a frame is handed out only when its last byte is in, however
//! few bytes each read brings, and a connection waiting for bytes holds up
//! nothing but itself. A watchdog task per connection closes it when a
//! frame stays incomplete for `request_partial_frame_timeout_ms` while the
//! connection reads it (the loop itself closes it when that passes while
//! the frame waits for budget), or when it sits idle (nothing in flight, nothing
//! buffered) for `connections_max_idle_ms`. The loop only publishes what
//! it waits for, in a `Cell`, when it is about to wait on its socket; the
//! watchdog sleeps until the earliest deadline that state allows, so a busy
//! connection arms no timer per request.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corelog_protocol::kafka_protocol::messages::ApiKey;
use corelog_protocol::{
    api_versions_request_is_valid, decode_request, decode_request_header, FrameDecoder,
    ProtocolError, Request, SIZE_PREFIX_BYTES,
};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::net::TcpStream;
use glommio::sync::StaticPermit;

use crate::handlers::{self, Reply};
use crate::shard::Shard;

/// The most bytes read from the socket at a time.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
// The shard's batch cache copies batches smaller than a read out of the
// buffers they were read into, so that a small batch does not keep a whole
// read buffer alive (see `corelog_storage::cache`). Reads may not outgrow
// that threshold.
const _: () = assert!(READ_CHUNK_BYTES <= corelog_storage::cache::BATCH_COPY_BELOW_BYTES_DEFAULT);
/// The least: what an idle connection holds while it waits for a request.
pub const READ_CHUNK_MIN_BYTES: usize = 4 << 10;
/// The most buffers one `sendmsg` hands the kernel (Linux's IOV_MAX).
const IOVECS_PER_SEND_MAX: usize = 1024;

/// A request being handled; its frame's bytes stay counted until its
/// response is written.
struct InFlight {
    task: glommio::Task<Result<Reply, Close>>,
    pipelined: bool,
    _budget: StaticPermit,
}

/// Whether a request may overlap others on its connection.
fn pipelined(frame: &[u8]) -> bool {
    let Some(key) = frame.first_chunk::<2>() else {
        return false;
    };
    let key = i16::from_be_bytes(*key);
    key == ApiKey::Produce as i16 || key == ApiKey::Fetch as i16
}

/// What a connection's loop waits for, published for its watchdog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// Handling requests, writing answers, or not reading (its bounds are
    /// reached): no deadline of the client's applies.
    Busy,
    /// Reading, with nothing buffered and nothing in flight, since then.
    Idle(Instant),
    /// Reading the rest of a frame that has been incomplete since then.
    Partial(Instant),
}

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    PartialFrame,
    Idle,
}

/// State shared by a connection's loop and its watchdog (same task queue,
/// same thread: plain cells).
struct Watch {
    waiting: Cell<Waiting>,
    expired: Cell<Option<Expired>>,
}

/// Closes the connection when the state its loop published has lasted past
/// its deadline: it shuts the socket down, which ends the loop's pending
/// read, and leaves the reason for the loop to log. It wakes at the
/// earliest deadline the state allows (while busy, the shorter timeout from
/// now, since no deadline can start earlier), so a connection costs one
/// timer at a time, not one per request.
///
/// The task is cancelled when the connection's loop returns, before the
/// stream is dropped, so `fd` is still the connection's socket whenever
/// this runs.
async fn watchdog(watch: Rc<Watch>, fd: RawFd, partial_timeout: Duration, idle_timeout: Duration) {
    loop {
        let now = Instant::now();
        let (due, reason) = match watch.waiting.get() {
            Waiting::Busy => (now + partial_timeout.min(idle_timeout), None),
            Waiting::Idle(since) => (since + idle_timeout, Some(Expired::Idle)),
            Waiting::Partial(since) => (since + partial_timeout, Some(Expired::PartialFrame)),
        };
        if let (true, Some(reason)) = (due <= now, reason) {
            watch.expired.set(Some(reason));
            // SAFETY: plain system call on the connection's own socket
            // (see above); shutdown does not close the descriptor, so
            // nothing can reuse it.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            return;
        }
        glommio::timer::sleep(due.saturating_duration_since(now)).await;
    }
}

/// How a connection's wait for its partial frame's budget ended.
enum Muted {
    Admitted(glommio::Result<StaticPermit, ()>),
    /// `request_partial_frame_timeout_ms` passed since the frame's first
    /// byte.
    Expired,
    /// The shard is shutting down.
    Stopped,
}

enum Event {
    Answered(Result<Reply, Close>),
    Read(std::io::Result<usize>),
    /// The shard is shutting down.
    Stopped,
}

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
    // Kafka shows a group member's host as Java prints an InetAddress.
    let client_host: Rc<str> = peer_addr
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default()
        .into();
    let _ = stream.set_nodelay(true);
    // glommio fails a write that has waited this long for the socket to
    // take a byte; any byte taken starts the wait again, so a slow reader
    // is served and only one that stopped reading is closed.
    let _ = stream.set_write_timeout(Some(Duration::from_millis(
        shard.config().response_write_timeout_ms,
    )));
    let decoder = FrameDecoder::new(shard.config().request_bytes_max);
    let in_flight_max = shard.config().requests_in_flight_per_connection_max;
    let budget_max = shard.config().request_bytes_in_flight_per_shard_max;
    let fetch_budget = Rc::new(glommio::sync::Semaphore::new(
        shard.config().fetch_response_bytes_per_connection_max as u64,
    ));
    // The client software name and version from ApiVersions v3+ on this
    // connection (KIP-511), for the log line of an unsupported version.
    let client_software: Rc<RefCell<Option<Rc<str>>>> = Rc::default();
    let mut buf = BytesMut::new();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // A frame that must run alone, waiting for those before it.
    let mut waiting: Option<Bytes> = None;
    // The budget already taken for the next frame to start: the one in
    // `waiting`, else the one at the front of `buf`. Taken as soon as a
    // frame's size prefix is in and before its body is read, as Kafka's
    // memory pool does, so the bytes of frames still arriving count
    // against `request_bytes_in_flight_per_shard_max`. Without this, many
    // connections each announcing a `request_bytes_max` frame and
    // trickling its body made a shard hold connections times
    // `request_bytes_max` for up to `request_partial_frame_timeout_ms`.
    let mut frame_budget: Option<StaticPermit> = None;
    let watch = Rc::new(Watch {
        waiting: Cell::new(Waiting::Busy),
        expired: Cell::new(None),
    });
    let partial_timeout = Duration::from_millis(shard.config().request_partial_frame_timeout_ms);
    // Declared after `stream`, so dropped (cancelled) before it.
    let _watchdog = glommio::spawn_local(watchdog(
        watch.clone(),
        stream.as_raw_fd(),
        partial_timeout,
        Duration::from_millis(shard.config().connections_max_idle_ms),
    ));
    // Since when the frame at the front of `buf` has been incomplete while
    // this connection reads: None while no partial frame is being read. Set
    // once per frame that spans reads, so a frame that arrives whole costs
    // no clock read.
    let mut partial_since: Option<Instant> = None;
    loop {
        // Fairness between the shard's connections: a connection whose
        // socket always has requests ready and whose answers complete at
        // once (cached Fetches) would otherwise run this loop without ever
        // giving the executor back. Yield when this task queue's time slice
        // is used up, so every connection gets a turn.
        glommio::yield_if_needed().await;
        // Start every request that may start now.
        loop {
            if in_flight.len() >= in_flight_max || in_flight.back().is_some_and(|f| !f.pipelined) {
                break;
            }
            let frame = match waiting.take() {
                Some(f) => f,
                None => match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        partial_since = None;
                        frame
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if let Some(suppressed) = shard.bad_input_log_due() {
                            tracing::info!(%peer, error = %e, suppressed, "closing connection: bad frame");
                        }
                        return;
                    }
                },
            };
            let alone = !pipelined(&frame);
            if alone && !in_flight.is_empty() {
                waiting = Some(frame);
                break;
            }
            let units = frame.len().clamp(1, budget_max) as u64;
            // Wait for budget only while holding none: a connection that
            // waited with answered requests still unwritten could keep the
            // budget it waits for.
            let budget = if let Some(b) = frame_budget.take() {
                b
            } else if in_flight.is_empty() {
                match shard
                    .request_bytes_budget()
                    .acquire_static_permit(units)
                    .await
                {
                    Ok(b) => b,
                    Err(_) => return,
                }
            } else {
                match shard
                    .request_bytes_budget()
                    .try_acquire_static_permit(units)
                {
                    Ok(b) => b,
                    Err(_) => {
                        waiting = Some(frame);
                        break;
                    }
                }
            };
            let task = {
                let shard = shard.clone();
                let client_host = client_host.clone();
                let fetch_budget = fetch_budget.clone();
                let client_software = client_software.clone();
                glommio::spawn_local(async move {
                    handle_frame(&shard, &client_host, &fetch_budget, &client_software, frame).await
                })
            };
            in_flight.push_back(InFlight {
                task,
                pipelined: !alone,
                _budget: budget,
            });
        }
        if in_flight.is_empty() && shard.is_stopping() {
            return;
        }
        let len = buf.len();
        if len == 0 && buf.capacity() > READ_CHUNK_MIN_BYTES {
            // Between requests a connection keeps only a small buffer, so
            // thousands of idle connections cost little memory.
            buf = BytesMut::new();
        }
        // Reading more helps only if another request could start.
        let mut may_read = waiting.is_none()
            && in_flight.len() < in_flight_max
            && in_flight.back().is_none_or(|f| f.pipelined);
        // A frame whose size is known but whose body is still to come gets
        // its share of the shard's budget before any of its body is read;
        // while the budget cannot give it, the connection is muted (does
        // not read), so the client's bytes wait in the kernel's socket
        // buffers, not in ours. What a connection then holds outside the
        // budget is at most one read chunk beyond its counted frames.
        //
        // Deadlock: frames still arriving may hold the whole budget, and
        // then complete requests on other connections wait too (the budget
        // is first come, first served). What bounds that wait is
        // `request_partial_frame_timeout_ms`, which here also runs while
        // a partial frame waits for budget: every frame ahead of a waiting
        // request, holding budget or queued for it, either arrives whole
        // within that timeout of its first byte (its request is then
        // handled and answered like any other) or its connection is closed
        // and its budget returns. So a request waits at most about that
        // timeout, however many connections trickle. Counting the muted
        // time against the frame is fair to real clients: their own
        // `request.timeout.ms` runs from the send, whatever the broker
        // does. The other choice, a share of the budget kept for complete
        // frames, would let small requests through meanwhile but leaves a
        // share that a patient attacker fills just the same; Kafka too
        // mutes every channel while its pool is empty. As for complete
        // frames, a connection waits only while it holds no budget, and
        // one with requests in flight stops reading instead (then the
        // frame's time is not counted: that wait is the client's own
        // pipelining), so no connection waits for budget it holds itself.
        if may_read && frame_budget.is_none() {
            if let Ok(Some(size)) = decoder.frame_bytes(&buf) {
                let units = size.clamp(1, budget_max) as u64;
                let budget = shard.request_bytes_budget();
                match budget.try_acquire_static_permit(units) {
                    Ok(b) => frame_budget = Some(b),
                    Err(_) if in_flight.is_empty() => {
                        let since = *partial_since.get_or_insert_with(Instant::now);
                        let due = since + partial_timeout;
                        let acquire =
                            async { Muted::Admitted(budget.acquire_static_permit(units).await) };
                        let expired = async {
                            glommio::timer::sleep(due.saturating_duration_since(Instant::now()))
                                .await;
                            Muted::Expired
                        };
                        let stopped = async {
                            shard.stop_notified().await;
                            Muted::Stopped
                        };
                        match acquire.or(expired).or(stopped).await {
                            Muted::Admitted(Ok(b)) => frame_budget = Some(b),
                            Muted::Expired => {
                                log_expired(&shard, &peer, Some(Expired::PartialFrame), buf.len());
                                return;
                            }
                            Muted::Admitted(Err(_)) | Muted::Stopped => return,
                        }
                    }
                    Err(_) => may_read = false,
                }
                if frame_budget.is_some() {
                    // The frame's memory is counted now, so take it at
                    // once rather than growing the buffer read by read
                    // (each growth a copy, and up to twice the frame).
                    buf.reserve((SIZE_PREFIX_BYTES + size).saturating_sub(buf.len()));
                }
            }
        }
        if !may_read {
            // The time the connection does not read is not the client's.
            partial_since = None;
        }
        let event = if may_read {
            // Tell the watchdog what this read waits for. With bytes
            // buffered and no frame taken from them, a frame is incomplete.
            let state = if !buf.is_empty() {
                Waiting::Partial(*partial_since.get_or_insert_with(Instant::now))
            } else if in_flight.is_empty() {
                Waiting::Idle(Instant::now())
            } else {
                Waiting::Busy
            };
            watch.waiting.set(state);
            // Read what the frame being assembled still needs, within
            // bounds: small while waiting for the next request, larger for
            // a big one.
            let want = decoder
                .bytes_needed(&buf)
                .unwrap_or(READ_CHUNK_MIN_BYTES)
                .clamp(READ_CHUNK_MIN_BYTES, READ_CHUNK_BYTES);
            buf.reserve(want);
            // Read into spare capacity without unsafe: extend with zeros,
            // read, then cut back to what arrived.
            buf.resize(len + want, 0);
            let event = {
                let read = async { Event::Read(stream.read(&mut buf[len..]).await) };
                match in_flight.front_mut() {
                    // glommio reads wait for readiness and take bytes only
                    // when they complete, so a read that loses this race
                    // loses no data.
                    Some(f) => {
                        let answered = async { Event::Answered((&mut f.task).await) };
                        answered.or(read).await
                    }
                    // Nothing in flight: a shutdown closes the connection
                    // instead of waiting for a request that may never
                    // come (idle clients held every stop for its whole
                    // grace period).
                    None => {
                        let stopped = async {
                            shard.stop_notified().await;
                            Event::Stopped
                        };
                        read.or(stopped).await
                    }
                }
            };
            watch.waiting.set(Waiting::Busy);
            let got = match &event {
                Event::Read(Ok(n)) => *n,
                _ => 0,
            };
            buf.truncate(len + got);
            event
        } else {
            let f = in_flight.front_mut().expect("a request is in flight");
            Event::Answered((&mut f.task).await)
        };
        match event {
            Event::Read(Ok(0)) | Event::Read(Err(_)) => {
                log_expired(&shard, &peer, watch.expired.get(), buf.len());
                return;
            }
            Event::Stopped => return,
            Event::Read(Ok(_)) => {}
            Event::Answered(result) => {
                let done = in_flight.pop_front();
                let written = write_reply(&shard, &mut stream, &peer, result).await;
                drop(done);
                match written {
                    Ok(true) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        log_stalled_write(&shard, &peer);
                        return;
                    }
                    Ok(false) | Err(_) => {
                        // The watchdog may have shut the socket while an
                        // answer was being written.
                        log_expired(&shard, &peer, watch.expired.get(), buf.len());
                        return;
                    }
                }
            }
        }
    }
}

/// Logs why the watchdog closed a connection, if it did. A stalled partial
/// frame is worth a line (rate-limited per shard: a slow-input attack
/// closes many at once); an idle close is routine, as in Kafka.
fn log_expired(shard: &Shard, peer: &str, expired: Option<Expired>, bytes_held: usize) {
    match expired {
        Some(Expired::PartialFrame) => {
            let due = shard.stalled_frame_log_due();
            if let Some(suppressed) = due {
                tracing::info!(
                    %peer,
                    bytes_held,
                    timeout_ms = shard.config().request_partial_frame_timeout_ms,
                    suppressed,
                    "closing connection: request frame incomplete past request_partial_frame_timeout_ms"
                );
            }
        }
        Some(Expired::Idle) => tracing::debug!(
            %peer,
            timeout_ms = shard.config().connections_max_idle_ms,
            "closing connection: idle past connections_max_idle_ms"
        ),
        None => {}
    }
}

/// Logs a connection closed because a response write made no progress for
/// `response_write_timeout_ms`. Rate-limited per shard: a client that
/// opens many connections and reads none would otherwise write a line per
/// connection.
fn log_stalled_write(shard: &Shard, peer: &str) {
    if let Some(suppressed) = shard.stalled_write_log_due() {
        tracing::info!(
            %peer,
            timeout_ms = shard.config().response_write_timeout_ms,
            suppressed,
            "closing connection: response write made no progress past response_write_timeout_ms (the client does not read)"
        );
    }
}

/// Writes one response. `Ok(false)` when the handler asked to close the
/// connection, an error when the write failed (`TimedOut` after
/// `response_write_timeout_ms` without progress); either way the
/// connection closes.
async fn write_reply(
    shard: &Shard,
    stream: &mut TcpStream,
    peer: &str,
    result: Result<Reply, Close>,
) -> std::io::Result<bool> {
    match result {
        Ok(Reply::None) => Ok(true),
        Ok(Reply::Bytes(b)) => stream.write_all(&b).await.map(|()| true),
        // Record chunks are written straight from the cache or read buffers
        // they live in: no user-space copy.
        Ok(Reply::Segments(segments, _budget)) => {
            write_vectored_all(stream, &segments).await.map(|()| true)
        }
        Err(close) => {
            // An unsupported version was logged on its own limiter, with
            // the client software.
            if !close.logged {
                // Rate-limited per shard: see CLOSED_FOR_BAD_INPUT_LOG_INTERVAL.
                if let Some(suppressed) = shard.bad_input_log_due() {
                    tracing::info!(%peer, reason = %close, suppressed, "closing connection");
                }
            }
            if let Some(bytes) = close.final_bytes {
                let _ = stream.write_all(&bytes).await;
            }
            Ok(false)
        }
    }
}

/// Writes every segment, as few system calls as the socket buffer allows:
/// a non-blocking `sendmsg` of many buffers at once, and, when the socket
/// is full, glommio's write of the next piece, which waits for room.
async fn write_vectored_all(stream: &mut TcpStream, segments: &[Bytes]) -> std::io::Result<()> {
    let mut index = 0usize;
    let mut offset = 0usize;
    while index < segments.len() {
        let fd = stream.as_raw_fd();
        match send_vectored(fd, &segments[index..], offset) {
            Ok(0) => {
                // Nothing taken: let glommio wait for room.
                stream.write_all(&segments[index][offset..]).await?;
                index += 1;
                offset = 0;
            }
            Ok(mut sent) => {
                // Advance past what the kernel took.
                while index < segments.len() {
                    let left = segments[index].len() - offset;
                    if sent < left {
                        offset += sent;
                        break;
                    }
                    sent -= left;
                    index += 1;
                    offset = 0;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stream.write_all(&segments[index][offset..]).await?;
                index += 1;
                offset = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One non-blocking `sendmsg` of `segments` (the first from `offset`).
fn send_vectored(fd: i32, segments: &[Bytes], offset: usize) -> std::io::Result<usize> {
    let iov: Vec<libc::iovec> = segments
        .iter()
        .take(IOVECS_PER_SEND_MAX)
        .enumerate()
        .map(|(i, s)| {
            let s = if i == 0 { &s[offset..] } else { &s[..] };
            libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            }
        })
        .collect();
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at `iov`, whose buffers are borrowed from
    // `segments` and outlive the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

pub use crate::handlers::Close;

async fn handle_frame(
    shard: &Rc<Shard>,
    client_host: &str,
    fetch_budget: &Rc<glommio::sync::Semaphore>,
    client_software: &RefCell<Option<Rc<str>>>,
    frame: Bytes,
) -> Result<Reply, Close> {
    // The request's duration runs from here: its frame is complete and
    // holds its share of the request budget.
    let started = Instant::now();
    let raw = frame.clone();
    let (header, body) =
        decode_request_header(frame).map_err(|e| with_frame(protocol_close(e), &raw))?;
    let request = match decode_request(&header, body) {
        Ok(r) => r,
        Err(e) => {
            // KIP-511: an ApiVersions request of an unknown version gets an
            // answer; every other undecodable request closes the connection.
            if let Some(resp) = e.error_response() {
                return Ok(Reply::Bytes(resp.freeze()));
            }
            if matches!(
                e,
                ProtocolError::UnsupportedVersion { .. } | ProtocolError::UnsupportedApi { .. }
            ) {
                // As Kafka does, close the connection; say which
                // application is too old or too new, at most once per
                // interval per shard.
                if let Some(suppressed) = shard.unsupported_request_log_due() {
                    let software = client_software.borrow().clone();
                    tracing::warn!(
                        peer = %client_host,
                        api = ?header.api_key,
                        version = header.api_version,
                        client_id = header.client_id.as_deref().unwrap_or(""),
                        client_software = software
                            .as_deref()
                            .unwrap_or("unknown (no ApiVersions v3+ on this connection)"),
                        suppressed,
                        "closing connection: unsupported api version (the ApiVersions answer lists what this broker serves)"
                    );
                }
                let mut close = protocol_close(e);
                close.logged = true;
                return Err(close);
            }
            return Err(with_frame(protocol_close(e), &raw));
        }
    };
    if let Request::ApiVersions(r) = &request {
        if header.api_version >= 3 && api_versions_request_is_valid(r, header.api_version) {
            *client_software.borrow_mut() = Some(
                format!(
                    "{}/{}",
                    r.client_software_name.as_str(),
                    r.client_software_version.as_str()
                )
                .into(),
            );
        }
    }
    tracing::debug!(api = ?header.api_key, version = header.api_version, correlation_id = header.correlation_id, "request");
    inject_panic_for_tests(&header);
    let cx = handlers::RequestContext {
        shard,
        header: &header,
        client_host,
        fetch_budget,
    };
    let answer = handlers::dispatch(&cx, request).await;
    crate::request_metrics::record(header.api_key as i16, started.elapsed(), answer.is_err());
    answer
}

/// The client id that makes a debug build panic in its request's handler
/// when `CORELOG_TEST_FAULTS` is set: how the panic-policy test brings a
/// shard down. Release builds have no such path.
pub const TEST_PANIC_CLIENT_ID: &str = "corelog-test-panic";

#[cfg(debug_assertions)]
fn inject_panic_for_tests(header: &corelog_protocol::RequestHeader) {
    if header.client_id.as_deref() == Some(TEST_PANIC_CLIENT_ID)
        && std::env::var_os("CORELOG_TEST_FAULTS").is_some()
    {
        panic!("injected panic: client id {TEST_PANIC_CLIENT_ID} with CORELOG_TEST_FAULTS set");
    }
}

#[cfg(not(debug_assertions))]
fn inject_panic_for_tests(_: &corelog_protocol::RequestHeader) {}

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
        logged: false,
    }
}
