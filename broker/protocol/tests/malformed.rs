//! Malformed input never panics or aborts: every path returns `Ok` or a typed
//! error.

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use common::{built_frame, pairs, CODEC_APIS};
use corelog_protocol::kafka_protocol::messages::ApiKey;
use corelog_protocol::{
    decode_request_header, decode_request_with, FrameDecoder, ProtocolError, RequestHeader,
    REQUEST_BYTES_MAX_DEFAULT,
};
use proptest::prelude::*;

fn header_for(api_key: ApiKey, api_version: i16) -> RequestHeader {
    RequestHeader {
        api_key,
        api_version,
        correlation_id: 9,
        client_id: None,
        header_version: api_key.request_header_version(api_version),
        unknown_tagged_fields: BTreeMap::new(),
    }
}

/// Runs a frame through the whole decode path, returning whether it decoded.
fn decode_frame(frame: Bytes) -> bool {
    match decode_request_header(frame) {
        Ok((header, body)) => decode_request_with(&CODEC_APIS, &header, body).is_ok(),
        Err(_) => false,
    }
}

/// Runs a byte stream through framing and decoding.
fn decode_stream(wire: &[u8]) {
    let decoder = FrameDecoder::new(1 << 16);
    let mut buf = BytesMut::from(wire);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        decode_frame(frame);
    }
}

/// Bodies that claim 2^31-1 (or 2^32-2) element arrays. Given to
/// kafka-protocol directly, a decoder that starts with such an array aborts
/// the process on the allocation (`Vec::with_capacity`); the pre-check must
/// refuse it first. This test surviving is the check; for the apis whose body
/// starts with an array the refusal is asserted too.
#[test]
fn huge_array_lengths_are_refused_without_allocating() {
    let bodies: [&[u8]; 4] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x00],
        &[0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff],
    ];
    for (api_key, version) in pairs(&CODEC_APIS) {
        for body in bodies {
            let result = decode_request_with(
                &CODEC_APIS,
                &header_for(api_key, version),
                Bytes::from(body),
            );
            let _ = result;
        }
    }
    let starts_with_array = [
        (ApiKey::Metadata, 0..=8, &[0x7f, 0xff, 0xff, 0xff][..]),
        (
            ApiKey::Metadata,
            9..=12,
            &[0xff, 0xff, 0xff, 0xff, 0x0f][..],
        ),
        (ApiKey::CreateTopics, 2..=4, &[0x7f, 0xff, 0xff, 0xff][..]),
        (
            ApiKey::CreateTopics,
            5..=7,
            &[0xff, 0xff, 0xff, 0xff, 0x0f][..],
        ),
        (
            ApiKey::DescribeConfigs,
            1..=3,
            &[0x7f, 0xff, 0xff, 0xff][..],
        ),
        (ApiKey::DeleteRecords, 0..=1, &[0x7f, 0xff, 0xff, 0xff][..]),
    ];
    for (api_key, versions, body) in starts_with_array {
        for version in versions {
            let result = decode_request_with(
                &CODEC_APIS,
                &header_for(api_key, version),
                Bytes::from(body),
            );
            assert!(
                matches!(result, Err(ProtocolError::MalformedRequest { .. })),
                "{api_key:?} v{version}: {result:?}"
            );
        }
    }
}

#[test]
fn negative_and_oversized_prefixes_are_rejected() {
    let decoder = FrameDecoder::default();
    for size in [-1i32, -2, i32::MIN] {
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(ProtocolError::NegativeFrameSize { .. })
        ));
    }
    for size in [REQUEST_BYTES_MAX_DEFAULT as i32 + 1, i32::MAX] {
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_streams_never_panic(wire in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_stream(&wire);
    }

    #[test]
    fn random_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_frame(Bytes::from(frame));
    }

    #[test]
    fn random_bodies_never_panic(
        pair in 0..pairs(&CODEC_APIS).len(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let (api_key, version) = pairs(&CODEC_APIS)[pair];
        let _ = decode_request_with(&CODEC_APIS, &header_for(api_key, version), Bytes::from(body));
    }

    #[test]
    fn truncated_frames_never_panic(pair in 0..pairs(&CODEC_APIS).len(), cut in any::<prop::sample::Index>()) {
        let (api_key, version) = pairs(&CODEC_APIS)[pair];
        let (_, wire) = built_frame(api_key, version, 3);
        let frame = &wire[4..];
        let cut = cut.index(frame.len());
        // A strict prefix of a valid request never decodes: the last field
        // or tagged-field count is missing.
        prop_assert!(!decode_frame(Bytes::copy_from_slice(&frame[..cut])));
        // The frame decoder waits for the rest of a truncated stream.
        let mut buf = BytesMut::from(&wire[..4 + cut]);
        prop_assert!(FrameDecoder::default().decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn corrupted_frames_never_panic(
        pair in 0..pairs(&CODEC_APIS).len(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (api_key, version) = pairs(&CODEC_APIS)[pair];
        let (_, wire) = built_frame(api_key, version, 3);
        let mut frame = wire[4..].to_vec();
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        decode_frame(Bytes::from(frame));
    }

    #[test]
    fn any_negative_size_is_rejected(size in i32::MIN..0) {
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        let rejected = matches!(
            FrameDecoder::default().decode(&mut buf),
            Err(ProtocolError::NegativeFrameSize { .. })
        );
        prop_assert!(rejected);
    }

    #[test]
    fn any_oversized_size_is_rejected(size in (REQUEST_BYTES_MAX_DEFAULT as i32 + 1)..=i32::MAX) {
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        let rejected = matches!(
            FrameDecoder::default().decode(&mut buf),
            Err(ProtocolError::FrameTooLarge { .. })
        );
        prop_assert!(rejected);
    }
}
