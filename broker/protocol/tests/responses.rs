//! Response encoding, ApiVersions and the KIP-511 answer to an unsupported
//! ApiVersions version.

mod common;

use bytes::{Buf, Bytes};
use common::{client_header, decode_legacy_response, frame_request};
use corelog_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataResponse, ProduceResponse,
};
use corelog_protocol::kafka_protocol::protocol::Decodable;
use corelog_protocol::{
    api_versions_response, decode_request, decode_request_header, encode_response, error_code,
    FrameDecoder, ProtocolError, Response, SUPPORTED_APIS,
};

/// Decodes an ApiVersions request frame the way the server will, and returns
/// the error.
fn api_versions_error(version: i16, body: &[u8], correlation_id: i32) -> ProtocolError {
    let wire = frame_request(
        &client_header(ApiKey::ApiVersions, version, correlation_id),
        body,
    );
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let frame = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
    let (header, body) = decode_request_header(frame).unwrap();
    decode_request(&header, body).unwrap_err()
}

#[test]
fn unsupported_api_versions_version_gets_kip_511_answer() {
    // Version 5 is above the supported maximum. It uses header v2 (flexible),
    // and its body, which Kafka does not parse, is deliberately garbage.
    for (version, body) in [
        (5i16, &b"\x01\x02garbage"[..]),
        (i16::MAX, &b""[..]),
        (-1, &b""[..]),
    ] {
        let err = api_versions_error(version, body, 0x0102_0304);
        assert!(matches!(
            err,
            ProtocolError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id: 0x0102_0304,
                ..
            }
        ));
        let answer = err.error_response().expect("ApiVersions gets an answer");
        let expected: &[u8] = &[
            0, 0, 0, 16, // size
            1, 2, 3, 4, // correlation id; response header v0, no tagged fields
            0, 35, // error_code UNSUPPORTED_VERSION
            0, 0, 0, 1, // api_keys: one entry (v0: non-compact array)
            0, 18, // api_key ApiVersions
            0, 0, // min_version
            0, 4, // max_version
        ];
        assert_eq!(&answer[..], expected, "version {version}");

        // kafka-protocol reads it as the v0 response the client expects.
        let mut body = Bytes::copy_from_slice(&answer[8..]);
        let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(decoded.error_code, error_code::UNSUPPORTED_VERSION);
        assert_eq!(decoded.api_keys.len(), 1);
        assert_eq!(decoded.api_keys[0].api_key, ApiKey::ApiVersions as i16);
        assert_eq!(decoded.api_keys[0].max_version, 4);
        assert!(body.is_empty());
    }
}

#[test]
fn other_unsupported_versions_close_the_connection() {
    let wire = frame_request(&client_header(ApiKey::Fetch, 17, 1), &[]);
    let (header, body) = decode_request_header(Bytes::from(wire).slice(4..)).unwrap();
    let err = decode_request(&header, body).unwrap_err();
    assert!(matches!(err, ProtocolError::UnsupportedVersion { .. }));
    assert!(err.error_response().is_none());
}

#[test]
fn api_versions_response_advertises_the_table_with_header_v0() {
    let response = api_versions_response(SUPPORTED_APIS);
    for version in 0..=4 {
        let frame = encode_response(
            ApiKey::ApiVersions,
            version,
            77,
            &Response::ApiVersions(response.clone()),
        )
        .unwrap();
        let mut buf = frame.freeze();
        assert_eq!(buf.get_i32() as usize, buf.len());
        assert_eq!(buf.get_i32(), 77);
        // Header v0 even for the flexible versions 3 and 4: the body starts
        // right after the correlation id.
        let decoded = ApiVersionsResponse::decode(&mut buf, version).unwrap();
        assert!(buf.is_empty());
        assert_eq!(decoded.error_code, 0);
        assert_eq!(decoded.api_keys.len(), SUPPORTED_APIS.len());
        for (entry, support) in decoded.api_keys.iter().zip(SUPPORTED_APIS) {
            assert_eq!(entry.api_key, support.api_key as i16);
            assert_eq!(entry.min_version, support.min_version);
            assert_eq!(entry.max_version, support.max_version);
        }
    }
}

/// Encodes a default response of every supported api and version and checks
/// size prefix, header and body with kafka-protocol's decoders.
#[test]
fn every_supported_response_encodes_with_the_right_header() {
    macro_rules! check {
        ($key:ident, $ty:ty, $version:expr) => {{
            let response = <$ty>::default();
            let frame = encode_response(
                ApiKey::$key,
                $version,
                -5,
                &Response::$key(response.clone()),
            )
            .unwrap_or_else(|e| panic!("{:?} v{}: {e}", ApiKey::$key, $version));
            let mut buf = frame.freeze();
            assert_eq!(buf.get_i32() as usize, buf.len());
            assert_eq!(buf.get_i32(), -5);
            if ApiKey::$key.response_header_version($version) >= 1 {
                assert_eq!(buf.get_u8(), 0, "empty header tagged fields");
            }
            // Versions below kafka-protocol 0.18's as an old client reads them.
            if let Some(decoded) = decode_legacy_response(ApiKey::$key, $version, &mut buf) {
                assert!(buf.is_empty());
                assert_eq!(decoded, Response::$key(response));
            } else {
                let decoded = <$ty>::decode(&mut buf, $version).unwrap();
                assert!(buf.is_empty());
                assert_eq!(decoded, response);
            }
        }};
    }
    // One arm per entry of the api table, so a new entry needs none here.
    macro_rules! check_all {
        ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
            for support in SUPPORTED_APIS {
                for v in support.min_version..=support.max_version {
                    match support.api_key {
                        $(ApiKey::$key => check!(
                            $key,
                            corelog_protocol::kafka_protocol::messages::$response,
                            v
                        ),)*
                        other => panic!("no check for {other:?}"),
                    }
                }
            }
        };
    }
    corelog_protocol::for_each_api!(check_all);
}

#[test]
fn mismatched_response_is_an_error() {
    let err = encode_response(
        ApiKey::Metadata,
        1,
        0,
        &Response::Produce(ProduceResponse::default()),
    )
    .unwrap_err();
    assert!(matches!(err, ProtocolError::ResponseMismatch { .. }));
}

#[test]
fn field_the_version_cannot_carry_is_an_encode_error() {
    // Metadata v7 has no cluster authorized operations field (v8 to v10 do),
    // and kafka-protocol refuses to drop a non-default value silently.
    let response = MetadataResponse::default().with_cluster_authorized_operations(5);
    let err = encode_response(ApiKey::Metadata, 7, 0, &Response::Metadata(response)).unwrap_err();
    assert!(matches!(err, ProtocolError::Encode { .. }), "{err}");
}
