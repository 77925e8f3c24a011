//! Typed response encoding, and the ApiVersions responses built from the
//! support table.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::Encodable;

use crate::api::{ApiSupport, API_VERSIONS_SUPPORT};
use crate::errors::{error_code, ProtocolError};
use crate::frame::SIZE_PREFIX_BYTES;

/// Generates [`Response`], [`Response::api_key`] and the encode match from
/// the api table.
macro_rules! responses {
    ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// A response of one of the supported apis, one variant per entry of
        /// [`for_each_api!`](crate::for_each_api).
        ///
        /// `Response::Fetch` copies the record bytes into the response
        /// buffer; the fetch path should use [`crate::FetchResponseWriter`],
        /// which does not.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Response {
            $(
                #[doc = concat!(stringify!($key), ".")]
                $key(kafka_protocol::messages::$response),
            )*
        }

        impl Response {
            /// The api of this response.
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(Self::$key(_) => ApiKey::$key,)*
                }
            }

            /// Encodes the body. kafka-protocol reports failures as
            /// `anyhow::Error`; only their text is kept, so this crate does
            /// not depend on anyhow.
            fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), String> {
                // Versions below kafka-protocol 0.18's go through 0.15.1.
                if let Some(encoded) = crate::legacy::encode_response(self, version, buf) {
                    return encoded;
                }
                match self {
                    $(Self::$key(r) => r.encode(buf, version),)*
                }
                .map_err(|e| e.to_string())
            }
        }
    };
}

crate::for_each_api!(responses);

/// Encodes a complete response frame: the 4-byte size prefix, the response
/// header and the body, ready to be written to the socket.
///
/// The header is v0 (correlation id only) or, for flexible versions, v1 (with
/// an empty tagged-field section), as kafka-protocol's
/// `ApiKey::response_header_version` says. ApiVersions responses always use
/// header v0, so that a client can read the answer whatever version it asked
/// for.
///
/// `api_key` must be the api of `response`; it is passed separately so that
/// the server states which request it is answering, and a mix-up is an error
/// rather than a wrong frame on the wire.
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    response: &Response,
) -> Result<BytesMut, ProtocolError> {
    let response_api_key = response.api_key();
    if response_api_key != api_key {
        return Err(ProtocolError::ResponseMismatch {
            api_key,
            response_api_key,
        });
    }
    let encode_error = |reason: String| ProtocolError::Encode {
        api_key,
        api_version,
        reason,
    };
    let header_version = api_key.response_header_version(api_version);

    let mut buf = BytesMut::with_capacity(64);
    // The size is not known until the body is written; reserve its place.
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        // An empty tagged-field section: no response header tags are defined.
        buf.put_u8(0);
    }
    response
        .encode_body(&mut buf, api_version)
        .map_err(encode_error)?;

    let size = i32::try_from(buf.len() - SIZE_PREFIX_BYTES)
        .map_err(|_| encode_error("response exceeds i32::MAX bytes".to_owned()))?;
    buf[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Builds the ApiVersions response body that advertises `table`, which the
/// server passes as [`crate::SUPPORTED_APIS`]: every api in it has a handler.
/// Throttle time and feature fields are left at their defaults for the server
/// to fill in.
pub fn api_versions_response(table: &[ApiSupport]) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code::NONE)
        .with_api_keys(table.iter().map(api_version_entry).collect())
}

fn api_version_entry(support: &ApiSupport) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(support.api_key as i16)
        .with_min_version(support.min_version)
        .with_max_version(support.max_version)
}

/// Length of the KIP-511 answer: size prefix, correlation id, error code,
/// array length and one (api key, min, max) entry.
const UNSUPPORTED_API_VERSIONS_FRAME_BYTES: usize = 4 + 4 + 2 + 4 + 6;

/// The complete frame Kafka sends for an ApiVersions request whose version it
/// does not support (KIP-511).
///
/// Kafka parses such a request as ApiVersions v0 and answers with a v0
/// response (header v0): error code UNSUPPORTED_VERSION and an api_keys array
/// holding only the ApiVersions entry with the broker's range, so that the
/// client can retry with the highest version both sides know. Written by hand
/// because it cannot fail and is sent on the error path.
pub fn encode_unsupported_api_versions_response(correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::with_capacity(UNSUPPORTED_API_VERSIONS_FRAME_BYTES);
    buf.put_i32((UNSUPPORTED_API_VERSIONS_FRAME_BYTES - SIZE_PREFIX_BYTES) as i32);
    buf.put_i32(correlation_id);
    buf.put_i16(error_code::UNSUPPORTED_VERSION);
    buf.put_i32(1);
    buf.put_i16(ApiKey::ApiVersions as i16);
    buf.put_i16(API_VERSIONS_SUPPORT.min_version);
    buf.put_i16(API_VERSIONS_SUPPORT.max_version);
    buf
}
