//! The internal listener and the connections to peers (frames in
//! [`super::wire`]).
//!
//! - Inbound: a connection starts with a hello naming its sender. A voter
//!   may send raft frames (each must say it comes from that voter), forward
//!   controller requests and ask for status; an admin tool
//!   ([`wire::ADMIN_NODE`]) may only ask for status. Anything else (no
//!   hello, garbage, an unknown node, a frame over its bound, a raft frame
//!   claiming another sender) is refused: the connection is closed and the
//!   refusal logged, rate-limited, an unknown node once per node id.
//!   Nothing refused reaches the quorum.
//! - Outbound: one connection per peer, made on demand and remade after a
//!   failure (backoff up to 1 s), fed from a bounded queue of
//!   [`SEND_QUEUE_FRAMES`]; when the queue is full the host drops the frame
//!   (Raft retransmits).

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt};
use glommio::net::{TcpListener, TcpStream};

use super::wire::{self, ControlRequest, ControlResponse, Hello};
use super::Host;
use crate::log_limit::RateLimited;

/// Frames queued for one peer before new ones are dropped.
pub const SEND_QUEUE_FRAMES: usize = 1024;
/// Inbound connections served at once (peers, forwarded requests, admin
/// tools); more are closed at accept.
const INBOUND_MAX: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a frame (or the hello) may take to arrive whole, and how long
/// a connection may stay silent: peers send heartbeats every 200 ms.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forwarded request waits for its answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(7);
const BACKOFF_MAX_MS: u64 = 1000;
const LOG_INTERVAL: Duration = Duration::from_secs(10);

async fn with_timeout<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    async { Some(f.await) }
        .or(async {
            glommio::timer::sleep(d).await;
            None
        })
        .await
}

/// Why talking to a peer's internal listener failed: the connection is
/// dropped (and remade for the next frame or request).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {addr}: timed out")]
    ConnectTimedOut { addr: String },
    /// The peer closed the connection or it broke: the ordinary end of a
    /// connection, which the listener does not log as a refusal.
    #[error("read: {0}")]
    Read(std::io::Error),
    #[error("write: {0}")]
    Write(std::io::Error),
    /// No whole frame arrived in time.
    #[error("timed out")]
    TimedOut,
    /// A frame the wire format refuses.
    #[error(transparent)]
    Frame(#[from] wire::WireError),
    /// The controller answered a forwarded request with another frame.
    #[error("{addr} answered with a frame of kind {kind}")]
    UnexpectedKind { addr: String, kind: u8 },
    #[error("encoding the request: {0}")]
    Encode(serde_json::Error),
    #[error("{addr}: bad answer: {source}")]
    BadAnswer {
        addr: String,
        source: serde_json::Error,
    },
}

/// Reads one frame: `(kind, body)`, bounded by its kind.
async fn read_frame(s: &mut TcpStream, timeout: Duration) -> Result<(u8, Vec<u8>), LinkError> {
    let read = async {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.map_err(LinkError::Read)?;
        let len = wire::check_length(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))?;
        let kind = head[4];
        wire::check_kind_length(kind, len)?;
        let mut body = vec![0u8; len - 1];
        s.read_exact(&mut body).await.map_err(LinkError::Read)?;
        Ok((kind, body))
    };
    with_timeout(timeout, read)
        .await
        .unwrap_or(Err(LinkError::TimedOut))
}

async fn write(s: &mut TcpStream, bytes: &[u8]) -> Result<(), LinkError> {
    with_timeout(WRITE_TIMEOUT, s.write_all(bytes))
        .await
        .unwrap_or_else(|| Err(std::io::Error::from(std::io::ErrorKind::TimedOut)))
        .map_err(LinkError::Write)
}

async fn connect(addr: &str) -> Result<TcpStream, LinkError> {
    let s = with_timeout(CONNECT_TIMEOUT, TcpStream::connect(addr.to_string()))
        .await
        .ok_or_else(|| LinkError::ConnectTimedOut {
            addr: addr.to_string(),
        })?
        .map_err(|e| LinkError::Connect {
            addr: addr.to_string(),
            source: e.into(),
        })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Sends `request` to the internal listener at `addr` as node `me` and
/// waits for the answer (a connection per request).
pub async fn forward(
    addr: &str,
    me: i32,
    request: &ControlRequest,
) -> Result<ControlResponse, LinkError> {
    let mut s = connect(addr).await?;
    let mut out = Hello { node_id: me }.encode();
    let body = serde_json::to_vec(request).map_err(LinkError::Encode)?;
    out.extend_from_slice(&wire::frame(wire::KIND_REQUEST, &body));
    write(&mut s, &out).await?;
    let (kind, body) = read_frame(&mut s, FORWARD_TIMEOUT).await?;
    if kind != wire::KIND_RESPONSE {
        return Err(LinkError::UnexpectedKind {
            addr: addr.to_string(),
            kind,
        });
    }
    serde_json::from_slice(&body).map_err(|source| LinkError::BadAnswer {
        addr: addr.to_string(),
        source,
    })
}

/// Drains `frames` into a connection to peer `peer` at `addr`.
pub async fn peer_task(
    me: i32,
    peer: i32,
    addr: String,
    mut frames: mpsc::Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut backoff_ms = 0u64;
    let mut failed_log = RateLimited::new(LOG_INTERVAL);
    while let Some(frame) = frames.next().await {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if conn.is_none() {
            let made = async {
                let mut s = connect(&addr).await?;
                write(&mut s, &Hello { node_id: me }.encode()).await?;
                Ok::<_, LinkError>(s)
            }
            .await;
            match made {
                Ok(s) => {
                    tracing::info!(peer, addr, "connected to quorum peer");
                    conn = Some(s);
                    backoff_ms = 0;
                }
                Err(e) => {
                    if let Some(suppressed) = failed_log.due() {
                        tracing::info!(peer, error = %e, suppressed, "quorum peer unreachable");
                    }
                    // What is queued is stale by the time the peer is
                    // back: drop it (Raft retransmits).
                    while frames.try_recv().is_ok() {}
                    backoff_ms = (backoff_ms * 2).clamp(50, BACKOFF_MAX_MS);
                    glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
                    continue;
                }
            }
        }
        if let Some(s) = conn.as_mut() {
            if let Err(e) = write(s, &wire::frame(wire::KIND_RAFT, &frame)).await {
                if let Some(suppressed) = failed_log.due() {
                    tracing::info!(peer, error = %e, suppressed, "quorum peer connection lost");
                }
                conn = None;
            }
        }
    }
}

/// Logs refusals on the internal listener: rate-limited, and an unknown
/// node once per node id.
struct Refusals {
    log: RateLimited,
    unknown_nodes: HashSet<i32>,
}

/// Accepts on `cluster_listen` until the broker stops.
pub async fn listen_task(host: Rc<RefCell<Host>>, listener: TcpListener) {
    let stop = host.borrow().stop.clone();
    let refusals = Rc::new(RefCell::new(Refusals {
        log: RateLimited::new(LOG_INTERVAL),
        unknown_nodes: HashSet::new(),
    }));
    let open = Rc::new(std::cell::Cell::new(0usize));
    let mut backoff_ms = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let accepted = with_timeout(Duration::from_millis(200), listener.accept()).await;
        match accepted {
            None => continue,
            Some(Ok(stream)) => {
                backoff_ms = 0;
                if open.get() >= INBOUND_MAX {
                    refuse(
                        &refusals,
                        None,
                        "too many connections on the internal listener",
                    );
                    continue;
                }
                let _ = stream.set_nodelay(true);
                open.set(open.get() + 1);
                let (host, refusals, open) = (host.clone(), refusals.clone(), open.clone());
                glommio::spawn_local(async move {
                    serve(&host, &refusals, stream).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Some(Err(e)) => {
                backoff_ms = (backoff_ms * 2).clamp(10, BACKOFF_MAX_MS);
                refuse(&refusals, None, &format!("accept failed: {e}"));
                glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
            }
        }
    }
}

fn refuse(refusals: &Rc<RefCell<Refusals>>, peer: Option<std::net::SocketAddr>, why: &str) {
    let mut r = refusals.borrow_mut();
    if let Some(suppressed) = r.log.due() {
        tracing::warn!(peer = ?peer, suppressed, "internal listener refused a connection: {why}");
    }
}

/// Serves one inbound connection.
async fn serve(host: &Rc<RefCell<Host>>, refusals: &Rc<RefCell<Refusals>>, mut s: TcpStream) {
    let peer = s.peer_addr().ok();
    let hello = match read_frame(&mut s, HELLO_TIMEOUT).await {
        Ok((kind, body)) => Hello::decode(kind, &body).map_err(LinkError::from),
        Err(e) => Err(e),
    };
    let from = match hello {
        Ok(h) => h.node_id,
        Err(e) => return refuse(refusals, peer, &format!("bad hello: {e}")),
    };
    let admin = from == wire::ADMIN_NODE;
    if !admin && !host.borrow().is_voter(from) {
        let first = refusals.borrow_mut().unknown_nodes.insert(from);
        if first {
            tracing::warn!(peer = ?peer, node = from, "internal listener refused a connection: node {from} is not a voter (logged once per node)");
        }
        return;
    }
    loop {
        let (kind, body) = match read_frame(&mut s, READ_TIMEOUT).await {
            Ok(f) => f,
            Err(e) => {
                if !matches!(e, LinkError::Read(_)) {
                    refuse(refusals, peer, &format!("node {from}: {e}"));
                }
                return;
            }
        };
        match kind {
            wire::KIND_RAFT if !admin => {
                // The frame must come from the node the hello named; the
                // quorum checks the rest (addressee, voter, bounds).
                match corelog_quorum::codec::decode_message(&body) {
                    Ok(m) if m.from == from as u64 => host.borrow_mut().received(Bytes::from(body)),
                    Ok(m) => {
                        return refuse(
                            refusals,
                            peer,
                            &format!("node {from} sent a raft frame from node {}", m.from),
                        )
                    }
                    Err(e) => {
                        return refuse(refusals, peer, &format!("node {from}: bad raft frame: {e}"))
                    }
                }
            }
            wire::KIND_REQUEST if !admin => {
                let request: ControlRequest = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        return refuse(refusals, peer, &format!("node {from}: bad request: {e}"))
                    }
                };
                // A node forwards its own broker's requests only.
                if let Some(broker) = request.broker().filter(|&b| b != from) {
                    return refuse(
                        refusals,
                        peer,
                        &format!("node {from} sent a request for broker {broker}"),
                    );
                }
                let answer = super::local_request(host, request).await;
                let body = match serde_json::to_vec(&answer) {
                    Ok(b) => b,
                    Err(_) => return,
                };
                if write(&mut s, &wire::frame(wire::KIND_RESPONSE, &body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            wire::KIND_STATUS => {
                let status = host.borrow().status();
                let body = match serde_json::to_vec(&status) {
                    Ok(b) => b,
                    Err(_) => return,
                };
                if write(&mut s, &wire::frame(wire::KIND_STATUS_RESPONSE, &body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            other => {
                return refuse(
                    refusals,
                    peer,
                    &format!("node {from} sent a frame of kind {other} it may not send"),
                )
            }
        }
    }
}
