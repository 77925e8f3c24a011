//! A tiny blocking Kafka client for the admin subcommands (`corelog group`).
//!
//! One [`Connection`] is one `std::net::TcpStream` with one request in flight
//! at a time. Every connect, write and read is bounded by a deadline, so a
//! broker that stops answering turns into an error instead of a hang. This
//! module speaks only the public Kafka protocol (through the `kafka-protocol`
//! crate); it must not depend on the broker's own crates, so the CLI behaves
//! like any other Kafka client.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Client id sent in every request header, so broker logs can tell the CLI
/// apart from applications.
const CLIENT_ID: &str = "corelog-cli";

/// ApiVersions version used for the handshake on every new connection.
/// Version 3 is the first flexible one and what current clients send.
const API_VERSIONS_VERSION: i16 = 3;

/// Largest response accepted. The size prefix comes from the network, so
/// a corrupt or hostile one must not make the CLI allocate gigabytes.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The address did not resolve or the TCP connection was refused or
    /// timed out: nothing answered.
    Unreachable { addr: String, reason: String },
    /// The connection broke, or a response did not come in time.
    Io { addr: String, reason: String },
    /// The broker does not advertise the API version this client needs.
    Unsupported {
        addr: String,
        api_key: ApiKey,
        version: i16,
    },
    /// The broker answered with something this client cannot use.
    Protocol { addr: String, reason: String },
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
        }
    }
}

impl std::error::Error for ClientError {}

pub type ClientResult<T> = Result<T, ClientError>;

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
    next_correlation_id: i32,
    /// Bound on each request/response exchange.
    request_timeout: Duration,
    /// What the broker said it supports, indexed by api key.
    supported: Vec<Option<VersionRange>>,
}

impl Connection {
    /// Connects to `addr` ("host:port") within `connect_timeout`, then asks
    /// the broker which API versions it supports.
    pub fn connect(
        addr: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> ClientResult<Connection> {
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
        // Try every resolved address in turn, as other Kafka clients do, and
        // report the last failure when none accepts.
        let mut last_error = String::new();
        let mut stream = None;
        for sock in &candidates {
            match TcpStream::connect_timeout(sock, connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last_error))?;
        let io = |e: std::io::Error| ClientError::Io {
            addr: addr.to_string(),
            reason: e.to_string(),
        };
        stream.set_nodelay(true).map_err(io)?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            next_correlation_id: 1,
            request_timeout,
            supported: Vec::new(),
        };
        conn.handshake()?;
        Ok(conn)
    }

    fn handshake(&mut self) -> ClientResult<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse =
            self.exchange(ApiKey::ApiVersions, API_VERSIONS_VERSION, &req)?;
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

    /// Whether the broker advertised `version` of `api_key`.
    pub fn supports(&self, api_key: ApiKey, version: i16) -> bool {
        usize::try_from(api_key as i16)
            .ok()
            .and_then(|i| self.supported.get(i).copied().flatten())
            .is_some_and(|r| r.min_version <= version && version <= r.max_version)
    }

    /// Sends one request and decodes its response, after checking that the
    /// broker supports that version (a broker closes the connection on a
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
        self.exchange(api_key, version, request)
    }

    fn exchange<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> ClientResult<Resp> {
        let deadline = Instant::now() + self.request_timeout;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(api_key, version, correlation_id, request)
            .map_err(|e| self.protocol_error(format!("encoding {api_key:?}: {e}")))?;
        self.write_all(&frame, deadline)?;

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
        Resp::decode(&mut body, version)
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

/// Size prefix, request header and body of one request. The protocol
/// crate reports encoding errors as `anyhow::Error`; only their text is
/// kept, which spares the binary a dependency on `anyhow`.
fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Result<BytesMut, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
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
