//! A small blocking Kafka client, for Corelog's admin subcommands (`corelog
//! group`) and for the tests that drive a broker over the wire (the
//! server's in-process harness, the binary's tests).
//!
//! One [`Connection`] is one `std::net::TcpStream`. [`Connection::request`]
//! sends one request and reads its answer; [`Connection::send`] and
//! [`Connection::receive`] split the two, so several requests can be in
//! flight (Kafka answers them in order on one connection). Every connect,
//! write and read is bounded by a deadline, so a broker that stops
//! answering turns into an error instead of a hang.
//!
//! The client speaks only the public Kafka protocol, through the
//! `kafka-protocol` crate; it must not depend on the broker's own crates,
//! so what uses it behaves like any other Kafka client.

pub mod api;
pub mod errors;
pub mod member;
pub mod partitioner;

pub use kafka_protocol;

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// ApiVersions version used for the handshake on a new connection.
/// Version 3 is the first flexible one and what current clients send.
const API_VERSIONS_VERSION: i16 = 3;

/// Largest response accepted. The size prefix comes from the network, so
/// a corrupt or hostile one must not make the client allocate gigabytes.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The address did not resolve or the TCP connection was refused or
    /// timed out: nothing answered.
    Unreachable { addr: String, reason: String },
    /// The connection broke, or a response did not come in time.
    Io { addr: String, reason: String },
    /// The broker does not advertise the API version the caller needs.
    Unsupported {
        addr: String,
        api_key: ApiKey,
        version: i16,
    },
    /// The broker answered with something this client cannot use, or a
    /// request could not be encoded.
    Protocol { addr: String, reason: String },
    /// The broker answered with a Kafka error code (see
    /// [`errors::describe_error`]); `what` names what was asked.
    Kafka {
        what: String,
        code: i16,
        message: Option<String>,
    },
}

impl ClientError {
    /// The Kafka error code, for a [`ClientError::Kafka`].
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { addr, reason } => {
                write!(f, "cannot reach the broker at {addr}: {reason}")
            }
            ClientError::Io { addr, reason } => write!(f, "broker {addr}: {reason}"),
            ClientError::Unsupported {
                addr,
                api_key,
                version,
            } => write!(
                f,
                "the broker at {addr} does not support {api_key:?} version {version}"
            ),
            ClientError::Protocol { addr, reason } => {
                write!(f, "broker {addr}: unexpected response: {reason}")
            }
            ClientError::Kafka {
                what,
                code,
                message,
            } => write!(
                f,
                "{what}: {}",
                errors::describe_error(*code, message.as_deref())
            ),
        }
    }
}

impl std::error::Error for ClientError {}

pub type ClientResult<T> = Result<T, ClientError>;

/// How a [`Connection`] connects and identifies itself.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sent in every request header, so broker logs can tell callers apart.
    pub client_id: &'static str,
    /// Bound on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Bound on each request/response exchange, and on each
    /// [`Connection::send`] and [`Connection::receive`] alone.
    pub request_timeout: Duration,
    /// Whether to ask the broker for its api versions first, as Kafka
    /// clients do; [`Connection::call`] then refuses versions the broker
    /// did not advertise. Without it the connection sends exactly what its
    /// caller sends, which tests of the broker's own handling need.
    pub api_versions_handshake: bool,
}

/// Versions of one API the broker accepts, from its ApiVersions answer.
#[derive(Clone, Copy, Debug)]
struct VersionRange {
    min_version: i16,
    max_version: i16,
}

/// One blocking connection to one broker.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    client_id: &'static str,
    next_correlation_id: i32,
    request_timeout: Duration,
    /// What the broker said it supports, indexed by api key; empty without
    /// the handshake.
    supported: Vec<Option<VersionRange>>,
}

impl Connection {
    /// Connects to `addr` ("host:port") as [`Options`] say: every resolved
    /// address in turn, as other Kafka clients do, reporting the last
    /// failure when none accepts.
    pub fn connect(addr: &str, options: &Options) -> ClientResult<Connection> {
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let candidates: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve: {e}")))?
            .collect();
        if candidates.is_empty() {
            return Err(unreachable("resolves to no address".to_string()));
        }
        let mut last_error = String::new();
        let mut stream = None;
        for sock in &candidates {
            match TcpStream::connect_timeout(sock, options.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last_error))?;
        stream.set_nodelay(true).map_err(|e| ClientError::Io {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            client_id: options.client_id,
            next_correlation_id: 1,
            request_timeout: options.request_timeout,
            supported: Vec::new(),
        };
        if options.api_versions_handshake {
            conn.handshake()?;
        }
        Ok(conn)
    }

    fn handshake(&mut self) -> ClientResult<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(self.client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse =
            self.request(ApiKey::ApiVersions, API_VERSIONS_VERSION, &req)?;
        if resp.error_code != 0 {
            return Err(self.protocol_error(format!("ApiVersions error code {}", resp.error_code)));
        }
        for api in &resp.api_keys {
            let Ok(index) = usize::try_from(api.api_key) else {
                continue;
            };
            // Api keys are small numbers (under 100 today); anything larger
            // is not something this client will ask for.
            if index >= 1024 {
                continue;
            }
            if self.supported.len() <= index {
                self.supported.resize(index + 1, None);
            }
            self.supported[index] = Some(VersionRange {
                min_version: api.min_version,
                max_version: api.max_version,
            });
        }
        Ok(())
    }

    /// The underlying socket (tests look at its state, e.g. whether the
    /// broker closed it).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether the broker advertised `version` of `api_key` in the
    /// handshake (false for every api without one).
    pub fn supports(&self, api_key: ApiKey, version: i16) -> bool {
        usize::try_from(api_key as i16)
            .ok()
            .and_then(|i| self.supported.get(i).copied().flatten())
            .is_some_and(|r| r.min_version <= version && version <= r.max_version)
    }

    /// Sends one request and decodes its response, after checking that the
    /// broker advertised that version (a broker closes the connection on a
    /// request it does not know, which would read as a vague I/O error).
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> ClientResult<Resp> {
        if !self.supports(api_key, version) {
            return Err(ClientError::Unsupported {
                addr: self.addr.clone(),
                api_key,
                version,
            });
        }
        self.request(api_key, version, request)
    }

    /// Sends one request as it is and decodes its response.
    pub fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> ClientResult<Resp> {
        let correlation_id = self.send(api_key, version, request)?;
        self.receive(api_key, version, correlation_id)
    }

    /// Writes one request without reading its answer; returns its
    /// correlation id.
    pub fn send<Req: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> ClientResult<i32> {
        let deadline = Instant::now() + self.request_timeout;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(api_key, version, correlation_id, self.client_id, request)
            .map_err(|e| self.protocol_error(format!("encoding {api_key:?}: {e}")))?;
        self.write_all(&frame, deadline)?;
        Ok(correlation_id)
    }

    /// Reads the next answer, which must be the one to `correlation_id`, a
    /// request for `api_key` at `version`, and decodes it; bytes left after
    /// the response are an error (the client misread it).
    pub fn receive<Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> ClientResult<Resp> {
        let deadline = Instant::now() + self.request_timeout;
        let mut size_prefix = [0u8; 4];
        self.read_exact(&mut size_prefix, deadline)?;
        let size = i32::from_be_bytes(size_prefix);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| self.protocol_error(format!("response size {size}")))?;
        let mut body = vec![0u8; size];
        self.read_exact(&mut body, deadline)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))
            .map_err(|e| self.protocol_error(format!("{api_key:?} response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(self.protocol_error(format!(
                "correlation id {} where {correlation_id} was expected",
                header.correlation_id
            )));
        }
        decode_response(&mut body, version)
            .map_err(|e| self.protocol_error(format!("{api_key:?} v{version} response: {e}")))
    }

    fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> ClientResult<()> {
        while !data.is_empty() {
            let left = self.time_left(deadline)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| self.io_error(e.to_string()))?;
            match self.stream.write(data) {
                Ok(0) => return Err(self.io_error("connection closed".to_string())),
                Ok(n) => data = &data[n..],
                Err(e) if is_retryable(&e) => {}
                Err(e) => return Err(self.io_error(format!("writing request: {e}"))),
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, mut buf: &mut [u8], deadline: Instant) -> ClientResult<()> {
        while !buf.is_empty() {
            let left = self.time_left(deadline)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_error(e.to_string()))?;
            match self.stream.read(buf) {
                Ok(0) => return Err(self.io_error("the broker closed the connection".to_string())),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if is_retryable(&e) => {}
                Err(e) => return Err(self.io_error(format!("reading response: {e}"))),
            }
        }
        Ok(())
    }

    /// Time left before `deadline`, or a timeout error once it has passed.
    fn time_left(&self, deadline: Instant) -> ClientResult<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.io_error(format!(
                "no response within {} ms",
                self.request_timeout.as_millis()
            )));
        }
        Ok(left)
    }

    fn io_error(&self, reason: String) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn protocol_error(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// A socket timeout shows up as WouldBlock or TimedOut depending on the
/// platform; both (and EINTR) mean "try again until the deadline".
fn is_retryable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Size prefix, request header and body of one request. kafka-protocol
/// reports encoding errors as `anyhow::Error`; only their text is kept,
/// which spares users a dependency on `anyhow`.
pub fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    request: &Req,
) -> Result<BytesMut, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let header_version = api_key.request_header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + request.compute_size(version)?))
        .map_err(|e| e.to_string())?;
    let size_prefix = i32::try_from(size).map_err(|_| format!("request of {size} bytes"))?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.extend_from_slice(&size_prefix.to_be_bytes());
    header
        .encode(&mut buf, header_version)
        .and_then(|()| request.encode(&mut buf, version))
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Reads one response frame from `stream` (within the stream's own
/// timeouts) and returns its correlation id and the body after the header.
/// For callers that write frames themselves, e.g. many at once.
pub fn read_response(
    stream: &mut impl Read,
    api_key: ApiKey,
    version: i16,
) -> Result<(i32, Bytes), String> {
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("reading response size (connection closed?): {e}"))?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= RESPONSE_BYTES_MAX)
        .ok_or_else(|| format!("response size {size}"))?;
    let mut body = vec![0u8; size];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("reading response body: {e}"))?;
    let mut buf = Bytes::from(body);
    let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| format!("decoding response header: {e}"))?;
    Ok((header.correlation_id, buf))
}

/// Decodes a response body at `version`; bytes left after it are an error.
pub fn decode_response<Resp: Decodable>(body: &mut Bytes, version: i16) -> Result<Resp, String> {
    let response = Resp::decode(body, version).map_err(|e| e.to_string())?;
    if body.has_remaining() {
        return Err(format!(
            "{} bytes left after the response",
            body.remaining()
        ));
    }
    Ok(response)
}
