//! Request header parsing.
//!
//! The header version depends on the api key and api version (v1 for
//! non-flexible versions, v2 with tagged fields for flexible ones), so the
//! fixed part (api key, api version, correlation id) is read by hand first.
//! That also means an unknown api key still yields its correlation id, which
//! the server can log before it closes the connection.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::errors::ProtocolError;

/// Length of api key, api version and correlation id, which every request
/// header version starts with.
const HEADER_FIXED_BYTES: usize = 8;

/// A parsed request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The api the request is for.
    pub api_key: ApiKey,
    /// The version of that api the client used.
    pub api_version: i16,
    /// Echoed back in the response so the client can match it to the request.
    pub correlation_id: i32,
    /// The client id. Kafka treats a null client id like an empty one; this
    /// keeps the difference in case the server wants to log it.
    pub client_id: Option<StrBytes>,
    /// The request header version that was used to parse this header
    /// (1, or 2 for flexible api versions).
    pub header_version: i16,
    /// Tagged fields of a v2 header. No tags are defined for request headers
    /// yet, so any present are unknown ones, kept verbatim.
    pub unknown_tagged_fields: BTreeMap<i32, Bytes>,
}

/// Parses the request header at the front of `frame` (a frame as returned by
/// [`crate::FrameDecoder::decode`]) and returns it with the rest of the frame,
/// the request body, as a zero-copy slice of `frame`.
///
/// An unknown api key is an error that carries the correlation id; the
/// connection must then be closed, as Kafka does. The api version is not
/// checked here: [`crate::decode_request`] does that, because an unsupported
/// ApiVersions version needs an answer rather than an error.
pub fn decode_request_header(frame: Bytes) -> Result<(RequestHeader, Bytes), ProtocolError> {
    let Some(fixed) = frame.first_chunk::<HEADER_FIXED_BYTES>() else {
        return Err(ProtocolError::HeaderTruncated {
            len_bytes: frame.len(),
        });
    };
    let raw_api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);

    let api_key = ApiKey::try_from(raw_api_key).map_err(|()| ProtocolError::UnknownApiKey {
        api_key: raw_api_key,
        api_version,
        correlation_id,
    })?;

    let malformed = |reason: String| ProtocolError::MalformedHeader {
        api_key,
        api_version,
        correlation_id,
        reason,
    };

    // Kafka derives the header version from the api version with the same
    // thresholds for every version, known or not, so this is also right for a
    // too-new ApiVersions request (header v2 from ApiVersions v3 on).
    let header_version = api_key.request_header_version(api_version);
    // Request header v0 (no client id) only exists for ControlledShutdown v0,
    // which this broker never implements; kafka-protocol cannot decode it.
    if !(1..=2).contains(&header_version) {
        return Err(malformed(format!(
            "request header version {header_version} is not supported"
        )));
    }

    // The header decoder of kafka-protocol only reads two fixed fields, a
    // nullable string and a tagged-field list, none of which preallocates
    // from a length on the wire, so it is safe on hostile input.
    let mut rest = frame;
    let header = kafka_protocol::messages::RequestHeader::decode(&mut rest, header_version)
        .map_err(|e| malformed(e.to_string()))?;

    Ok((
        RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: header.client_id,
            header_version,
            unknown_tagged_fields: header.unknown_tagged_fields,
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_api_key_keeps_correlation_id() {
        let frame = Bytes::from_static(&[0x7f, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2a, 0, 0]);
        match decode_request_header(frame) {
            Err(ProtocolError::UnknownApiKey {
                api_key: 0x7f00,
                api_version: 1,
                correlation_id: 42,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn short_frame_is_truncated_header() {
        let frame = Bytes::from_static(&[0, 18, 0, 3, 0]);
        assert!(matches!(
            decode_request_header(frame),
            Err(ProtocolError::HeaderTruncated { len_bytes: 5 })
        ));
    }

    #[test]
    fn v1_header_with_null_client_id() {
        // Metadata v1: api key 3, version 1, correlation id 7, client id null.
        let frame = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0xaa]);
        let (header, body) = decode_request_header(frame).unwrap();
        assert_eq!(header.api_key, ApiKey::Metadata);
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.client_id, None);
        assert_eq!(header.header_version, 1);
        assert_eq!(&body[..], &[0xaa]);
    }
}
