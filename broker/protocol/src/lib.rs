//! Corelog's Kafka protocol codec.
//!
//! This crate turns bytes read from a client connection into typed Kafka
//! requests, and typed responses back into bytes to write. It does no I/O, has
//! no async code and knows nothing about sockets or the runtime: the server
//! layer reads into a `BytesMut`, hands it here, and writes what comes back.
//!
//! # The request path
//!
//! 1. [`FrameDecoder::decode`] splits complete frames off the read buffer,
//!    rejecting negative sizes and sizes above `request_bytes_max` (Kafka's
//!    `socket.request.max.bytes`). Such an error closes the connection.
//! 2. [`decode_request_header`] parses the request header with the header
//!    version the api key and version call for. An unknown api key is an
//!    error that still carries the correlation id.
//! 3. [`decode_request`] checks the api and version against
//!    [`SUPPORTED_APIS`], checks the body's structure, and decodes it with
//!    kafka-protocol into a [`Request`]. On error the server sends [`ProtocolError::error_response`]
//!    if there is one (only for an ApiVersions request with an unsupported
//!    version, per KIP-511) and otherwise closes the connection. For an
//!    ApiVersions request that decodes, [`api_versions_request_is_valid`]
//!    tells whether Kafka would answer it with INVALID_REQUEST.
//!
//! # The api table
//!
//! [`for_each_api!`] holds one entry per api: key, snake-case name, request
//! and response types, versions. [`SUPPORTED_APIS`], [`Request`],
//! [`Response`], their decode and encode matches and the choice of pre-check
//! walker are generated from it here; the server generates its dispatch from
//! it too. `build.rs` generates the walkers themselves from the entries'
//! request schemas in `schemas/`.
//!
//! # The response path
//!
//! [`encode_response`] writes size prefix, response header and body for any
//! [`Response`]. Fetch responses on the hot path go through
//! [`FetchResponseWriter`] instead, which returns segments for a vectored
//! write. [`api_versions_response`] builds the ApiVersions answer from the
//! support table.
//!
//! # Zero copy
//!
//! - Produce: record bytes are copied **zero** times by this crate. The frame
//!   is split off the read buffer, the body is split off the frame, and
//!   kafka-protocol decodes `records` with `Bytes::split_to`, so each
//!   partition's records are a view into the read buffer (see [`produce`] for
//!   the test that proves it).
//! - Fetch: record bytes are copied **zero** times by this crate.
//!   [`FetchResponseWriter`] references the caller's record `Bytes` in its
//!   output segments and writes only metadata into its own buffer.
//!
//! # Robustness
//!
//! No input makes this crate panic or abort. kafka-protocol preallocates
//! arrays from lengths on the wire, which lets a few hostile bytes abort the
//! process on allocation failure, so every request body is first walked by a
//! structural pre-check that bounds each array length by the bytes actually
//! present.

pub mod api;
pub mod consumer_protocol;
pub mod error_counts;
pub mod errors;
pub mod fetch_writer;
pub mod frame;
pub mod header;
pub mod legacy;
mod precheck;
pub mod produce;
pub mod request;
pub mod response;
// The integration tests' request builders (fully populated requests for
// every api and version), shared with the pre-check's unit tests; they name
// this crate `corelog_protocol`.
#[cfg(test)]
extern crate self as corelog_protocol;
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_requests;

pub use api::{find_api_support, ApiSupport, API_VERSIONS_SUPPORT, SUPPORTED_APIS};
pub use error_counts::{error_name, for_each_error_code};
pub use errors::{error_code, ProtocolError, ResponseError};
pub use fetch_writer::{
    AbortedTransaction, FetchNodeEndpoint, FetchPartitionHeader, FetchResponseFrame,
    FetchResponseWriter, FETCH_WRITER_VERSION_MAX, FETCH_WRITER_VERSION_MIN,
};
pub use frame::{FrameDecoder, REQUEST_BYTES_MAX_DEFAULT, SIZE_PREFIX_BYTES};
pub use header::{decode_request_header, RequestHeader};
pub use produce::{partition_records, PartitionRecords};
pub use request::{api_versions_request_is_valid, decode_request, decode_request_with, Request};
pub use response::{
    api_versions_response, encode_response, encode_unsupported_api_versions_response, Response,
};

/// kafka-protocol, re-exported so that the server uses the same version of
/// the message structs as this crate.
pub use kafka_protocol;

/// kafka-protocol 0.15.1, re-exported for the legacy versions' types
/// ([`legacy`]).
pub use kafka_protocol_legacy;
