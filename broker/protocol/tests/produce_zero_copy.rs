//! Proof that produce records are never copied on the way from the read
//! buffer to the decoded request.

mod common;

use bytes::BytesMut;
use common::{build_produce, client_header, encode_body, frame_request, records};
use corelog_protocol::kafka_protocol::messages::ApiKey;
use corelog_protocol::{
    decode_request_header, decode_request_with, partition_records, FrameDecoder, Request,
};

/// Sends a produce request of every version the pre-check covers (3 to 11:
/// kafka-protocol goes to 13, the vendored ProduceRequest schema to 11) through
/// framing, header parsing and decoding, and checks that every partition's
/// records are the expected bytes *at an address inside the read buffer's
/// allocation*. A copy would live in another allocation, so this shows that
/// kafka-protocol's decode from `Bytes` slices the input (`Bytes::split_to`)
/// and that no step of this crate copies.
#[test]
fn records_are_slices_of_the_read_buffer() {
    for version in 3..=11 {
        let request = Request::Produce(build_produce(version));
        let body = encode_body(&request, version);
        let wire = frame_request(&client_header(ApiKey::Produce, version, 1), &body);

        // A read buffer holding some bytes of an earlier frame first, as a
        // connection buffer would, then the produce frame.
        let mut read_buffer = BytesMut::with_capacity(wire.len() + 16);
        read_buffer.extend_from_slice(&[0, 0, 0, 0]); // an empty earlier frame
        read_buffer.extend_from_slice(&wire);
        let start = read_buffer.as_ptr() as usize;
        let end = start + read_buffer.len();

        let decoder = FrameDecoder::default();
        let earlier = decoder.decode(&mut read_buffer).unwrap().unwrap();
        assert!(earlier.is_empty());
        let frame = decoder.decode(&mut read_buffer).unwrap().unwrap();
        let (header, body) = decode_request_header(frame).unwrap();
        let table = [corelog_protocol::ApiSupport {
            api_key: ApiKey::Produce,
            min_version: 3,
            max_version: 11,
        }];
        let Request::Produce(decoded) = decode_request_with(&table, &header, body).unwrap() else {
            panic!("not a produce request");
        };

        let partitions: Vec<_> = partition_records(&decoded).collect();
        assert_eq!(partitions.len(), 3);
        for (n, partition) in partitions.iter().enumerate() {
            assert_eq!(partition.partition_index, n as i32);
            let got = partition.records.expect("records present");
            assert_eq!(got, &records(n as u8), "v{version} partition {n}");
            let at = got.as_ptr() as usize;
            assert!(
                start <= at && at + got.len() <= end,
                "v{version} partition {n}: records were copied out of the read buffer"
            );
        }
        assert_eq!(partitions[0].topic_name, "orders");
        assert_eq!(partitions[2].topic_name, "payments");
    }
}

/// From v13 topics are named by id; `partition_records` reports it.
#[test]
fn partition_records_report_topic_ids() {
    let request = build_produce(13);
    let partitions: Vec<_> = partition_records(&request).collect();
    assert_eq!(partitions.len(), 3);
    assert_eq!(partitions[0].topic_id, [6; 16]);
}
