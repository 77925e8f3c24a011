//! Typed request decoding.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::Decodable;

use crate::api::{find_api_support, ApiSupport, SUPPORTED_APIS};
use crate::errors::ProtocolError;
use crate::header::RequestHeader;
use crate::precheck::precheck_request;

/// Generates [`Request`], [`Request::api_key`] and the decode match from the
/// api table.
macro_rules! requests {
    ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// A decoded request of one of the supported apis, one variant per
        /// entry of [`for_each_api!`](crate::for_each_api).
        ///
        /// The structs are kafka-protocol's. They hold every field of every
        /// version; fields the request's version does not carry have their
        /// schema defaults. Byte fields are slices of the frame, not copies:
        /// Produce's records (see [`crate::produce`] for the zero-copy
        /// guarantee), JoinGroup's protocol metadata and SyncGroup's member
        /// assignments.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Request {
            $(
                #[doc = concat!(stringify!($key), ".")]
                $key(kafka_protocol::messages::$request),
            )*
        }

        impl Request {
            /// The api of this request.
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(Self::$key(_) => ApiKey::$key,)*
                }
            }
        }

        /// Decodes `buf` as a request of `api_key` at `version` with
        /// kafka-protocol; `None` for an api without a [`Request`] variant.
        fn decode_body(
            api_key: ApiKey,
            version: i16,
            buf: &mut Bytes,
        ) -> Option<Result<Request, String>> {
            // Versions below kafka-protocol 0.18's go through 0.15.1.
            if let Some(decoded) = crate::legacy::decode_request(api_key, version, buf) {
                return Some(decoded);
            }
            Some(match api_key {
                $(
                    ApiKey::$key => kafka_protocol::messages::$request::decode(buf, version)
                        .map(Request::$key)
                        .map_err(|e| e.to_string()),
                )*
                _ => return None,
            })
        }
    };
}

crate::for_each_api!(requests);

/// Decodes a request body against [`SUPPORTED_APIS`].
///
/// `body` is the rest of the frame after [`crate::decode_request_header`].
/// Errors mean the connection must be closed, except for an ApiVersions
/// request with an unsupported version, for which
/// [`ProtocolError::error_response`] returns the answer Kafka gives.
pub fn decode_request(header: &RequestHeader, body: Bytes) -> Result<Request, ProtocolError> {
    decode_request_with(SUPPORTED_APIS, header, body)
}

/// Decodes a request body against `table` instead of [`SUPPORTED_APIS`]:
/// tests pass kafka-protocol's full version ranges to exercise the pre-check
/// on every version it may be asked to handle, or a narrower table to see a
/// request refused.
///
/// Entries of `table` for apis this crate has no [`Request`] variant for are
/// refused with [`ProtocolError::UnsupportedApi`].
pub fn decode_request_with(
    table: &[ApiSupport],
    header: &RequestHeader,
    body: Bytes,
) -> Result<Request, ProtocolError> {
    let api_key = header.api_key;
    let version = header.api_version;
    let correlation_id = header.correlation_id;
    let Some(support) = find_api_support(table, api_key) else {
        return Err(ProtocolError::UnsupportedApi {
            api_key,
            api_version: version,
            correlation_id,
        });
    };
    if !support.contains(version) {
        // For ApiVersions the server answers this error instead of closing;
        // see ProtocolError::error_response. Like Kafka, the body of a request
        // with an unknown version is not looked at.
        return Err(ProtocolError::UnsupportedVersion {
            api_key,
            api_version: version,
            correlation_id,
        });
    }
    let malformed = |reason: String| ProtocolError::MalformedRequest {
        api_key,
        api_version: version,
        correlation_id,
        reason,
    };

    // The structural check must pass before kafka-protocol sees the body,
    // because kafka-protocol preallocates arrays from lengths on the wire.
    precheck_request(api_key, version, &body).map_err(|reason| malformed(reason.to_owned()))?;

    // Decoding from `Bytes` makes every byte string (records included) a
    // slice of `body`, which is itself a slice of the read buffer.
    let mut buf = body;
    let request = match decode_body(api_key, version, &mut buf) {
        Some(decoded) => decoded.map_err(malformed)?,
        // The pre-check already refused every api without a walker, and every
        // api in the table has one; this keeps the match total without a
        // panic.
        None => {
            return Err(ProtocolError::UnsupportedApi {
                api_key,
                api_version: version,
                correlation_id,
            })
        }
    };

    // Bytes after the last field are ignored, as Kafka's parser does (see
    // the pre-check): librdkafka 2.x sends some after Metadata v12.
    let _ = buf;
    Ok(request)
}

/// Whether an ApiVersions request's client software name and version are
/// acceptable, as Kafka checks them from v3 on (KIP-511): each must match
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`. Kafka does not close the
/// connection for an invalid one; it answers with an ApiVersions response of
/// the request's version carrying INVALID_REQUEST.
pub fn api_versions_request_is_valid(request: &ApiVersionsRequest, version: i16) -> bool {
    version < 3
        || (is_valid_software_token(&request.client_software_name)
            && is_valid_software_token(&request.client_software_version))
}

fn is_valid_software_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn request(name: &'static str, version: &'static str) -> ApiVersionsRequest {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(name))
            .with_client_software_version(StrBytes::from_static_str(version))
    }

    #[test]
    fn client_software_validation_matches_kafka() {
        assert!(api_versions_request_is_valid(
            &request("librdkafka", "2.3.0"),
            3
        ));
        assert!(api_versions_request_is_valid(
            &request("apache-kafka-java", "3.7.0"),
            4
        ));
        assert!(api_versions_request_is_valid(&request("a", "1"), 3));
        assert!(!api_versions_request_is_valid(&request("", "1"), 3));
        assert!(!api_versions_request_is_valid(
            &request("kafka python", "2.0"),
            3
        ));
        assert!(!api_versions_request_is_valid(&request("-x", "1"), 3));
        assert!(!api_versions_request_is_valid(&request("x", "1."), 3));
        assert!(api_versions_request_is_valid(&request("", ""), 2));
    }
}
