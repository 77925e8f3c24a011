//! Coverage-guided fuzzing of the request decode path, byte stream in:
//! exactly what `conn.rs` does with a connection's bytes (frames off the read
//! buffer, the header, the body against the supported table, the KIP-511
//! answer). libFuzzer's `-malloc_limit_mb` turns an allocation the frame
//! cannot justify (an array length the pre-check failed to bound) into a
//! crash, as a panic or abort is one.
#![no_main]

use bytes::BytesMut;
use corelog_protocol::{decode_request, decode_request_header, FrameDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small frame bound keeps the fuzzer's inputs and the frames it can
    // build in step; the decode path does not depend on the bound's value.
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let Ok((header, body)) = decode_request_header(frame) else {
            return;
        };
        match decode_request(&header, body) {
            Ok(request) => {
                // Use the result so the decode cannot be optimized away.
                std::hint::black_box(request.api_key());
            }
            Err(e) => {
                let _ = e.error_response();
                return;
            }
        }
    }
});
