//! A structural pre-check of request bodies, run before kafka-protocol decodes
//! them.
//!
//! kafka-protocol 0.18 decodes an array by reading its length from the wire and
//! calling `Vec::with_capacity(length)` before it reads any element. A length
//! of 2^31 in a four-byte body therefore asks the allocator for tens of
//! gigabytes, and when that fails the process aborts: a single hostile request
//! would take the whole broker down (a test in `tests/malformed.rs` covers the
//! case).
//!
//! The walkers below follow each request schema the way kafka-protocol's
//! generated decoders do, field by field and version by version, without
//! building anything. They check every array length against the bytes that
//! are left and then walk every element, so once a walker accepts a body
//! every length kafka-protocol will preallocate for is backed by elements
//! that are really there. Memory used by the decode then grows with the frame
//! size, which `request_bytes_max` bounds.
//!
//! The walkers are deliberately lenient where leniency cannot cause an
//! allocation: they accept null for every string, bytes and array field and
//! do not check UTF-8, because kafka-protocol rejects those cases itself.
//! Where they must agree with kafka-protocol byte for byte (varints, known
//! tagged fields) they mirror kafka-protocol's behaviour exactly.
//!
//! # Where the walkers come from
//!
//! `build.rs` generates them from Kafka's JSON request schemas, vendored
//! unmodified in `broker/protocol/schemas/` (apache/kafka `1eb7644349c`, and
//! a newer commit for the files its README lists), into `$OUT_DIR/precheck_walkers.rs`, which `walk` includes.
//! kafka-protocol's decoders are generated from the same schemas. The
//! generator follows `validVersions` (other versions are refused),
//! `flexibleVersions` (compact lengths, a tagged-field section after every
//! struct), each field's `versions` and `taggedVersions`/`tag` (a known
//! tagged field is walked inside its declared size and must fill it; unknown
//! tags are skipped by size), and the types `bool`, `int8`, `int16`,
//! `uint16`, `int32`, `uint32`, `int64`, `float64`, `uuid`, `string`,
//! `bytes`, `records`, structs (inline `fields` or `commonStructs`) and arrays
//! of any of them. An array's count is bounded by the smallest size its
//! element can have at the version. The build fails, naming the entry, when
//! an entry of the api table has no schema, when its version range is not
//! inside the schema's `validVersions`, or when a schema uses a construct the
//! generator does not know.
//!
//! Every walker is generated. DescribeGroups' vendored schema stops at v5
//! while the table serves v6, whose request is v5's (KIP-1043 changed only
//! the response); `REQUEST_UNCHANGED_IN` in `build.rs` extends the schema by
//! that version, and `unchanged_request_versions_encode_as_the_previous_one`
//! checks the claim against kafka-protocol's encoder.
//!
//! The walkers cover the schema's versions, not every version kafka-protocol
//! decodes: kafka-protocol 0.18 goes further for Metadata (13), Produce (12,
//! 13), Fetch (18) and DescribeCluster (2). Raising a table maximum past the
//! schema fails the build until a newer schema is vendored.
//!
//! A capacity cap in the decoder is not an alternative: the preallocation
//! happens inside kafka-protocol's generated `decode`, which takes no limit.
//!
//! # Which walker runs
//!
//! The api table ([`for_each_api!`](crate::for_each_api)) decides: the
//! request of an entry `Key(name): ...` is walked by `walk::name`, so an api
//! added to the table without a walker fails to compile (and, without a
//! schema, fails the build) and the pre-check cannot be skipped silently.
//! Unit tests walk, for every table entry at every version of its range, a
//! default request and a fully populated one (the integration tests'
//! `build_request`: several array elements, strings, unknown tagged fields),
//! both encoded by kafka-protocol, and check that the walk ends exactly at
//! the last byte; Produce, Fetch, Metadata, CreateTopics, OffsetCommit and
//! JoinGroup also at every version past the table's range that both
//! kafka-protocol and the schema know. `tests/malformed.rs` feeds hostile
//! lengths and random bytes.

use kafka_protocol::messages::ApiKey;

/// Why a body was rejected.
pub(crate) type WalkError = &'static str;

type WalkResult = Result<(), WalkError>;

/// A cursor over a request body.
struct Walker<'a> {
    buf: &'a [u8],
}

impl<'a> Walker<'a> {
    fn skip(&mut self, len_bytes: usize) -> WalkResult {
        match self.buf.get(len_bytes..) {
            Some(rest) => {
                self.buf = rest;
                Ok(())
            }
            None => Err("field runs past the end of the request"),
        }
    }

    fn take(&mut self, len_bytes: usize) -> Result<&'a [u8], WalkError> {
        if self.buf.len() < len_bytes {
            return Err("field runs past the end of the request");
        }
        let (head, rest) = self.buf.split_at(len_bytes);
        self.buf = rest;
        Ok(head)
    }

    fn i8(&mut self) -> Result<i8, WalkError> {
        let bytes = self.take(1)?;
        Ok(bytes[0] as i8)
    }

    fn i16(&mut self) -> Result<i16, WalkError> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, WalkError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// An unsigned varint, decoded exactly like kafka-protocol's
    /// `UnsignedVarInt`: at most five bytes, and bits beyond 32 dropped. The
    /// two must agree, or the walker and the decoder would disagree about
    /// where the next field starts.
    fn uvarint(&mut self) -> Result<u32, WalkError> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = u32::from(self.take(1)?[0]);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A string (or nullable string): i16 length, or compact uvarint length+1.
    fn string(&mut self, flexible: bool) -> WalkResult {
        if flexible {
            let len_plus_one = self.uvarint()?;
            match len_plus_one.checked_sub(1) {
                None => Ok(()),
                Some(len) => self.skip(len as usize),
            }
        } else {
            match self.i16()? {
                -1 => Ok(()),
                len if len >= 0 => self.skip(len as usize),
                _ => Err("negative string length"),
            }
        }
    }

    /// A bytes (or records) field: i32 length, or compact uvarint length+1.
    fn bytes(&mut self, flexible: bool) -> WalkResult {
        if flexible {
            let len_plus_one = self.uvarint()?;
            match len_plus_one.checked_sub(1) {
                None => Ok(()),
                Some(len) => self.skip(len as usize),
            }
        } else {
            match self.i32()? {
                -1 => Ok(()),
                len if len >= 0 => self.skip(len as usize),
                _ => Err("negative bytes length"),
            }
        }
    }

    /// An array whose elements take at least `element_min_bytes` each.
    fn array(
        &mut self,
        flexible: bool,
        element_min_bytes: usize,
        mut element: impl FnMut(&mut Self) -> WalkResult,
    ) -> WalkResult {
        let count = if flexible {
            match self.uvarint()?.checked_sub(1) {
                None => return Ok(()),
                Some(count) => count as usize,
            }
        } else {
            match self.i32()? {
                -1 => return Ok(()),
                count if count >= 0 => count as usize,
                _ => return Err("negative array length"),
            }
        };
        // Rejecting here is what stops the huge preallocation; walking the
        // elements below then proves the count is real.
        if count.saturating_mul(element_min_bytes.max(1)) > self.buf.len() {
            return Err("array length exceeds the remaining request bytes");
        }
        for _ in 0..count {
            element(self)?;
        }
        Ok(())
    }

    /// An array of `width`-byte primitives.
    fn primitive_array(&mut self, flexible: bool, width_bytes: usize) -> WalkResult {
        self.array(flexible, width_bytes, |w| w.skip(width_bytes))
    }

    /// The tagged-field section of a flexible struct. `known` is called with
    /// each tag and a walker over exactly that field's bytes; it returns
    /// `Ok(true)` when it walked a known tag, which must then use up all of
    /// the field's bytes, because kafka-protocol decodes known tags from the
    /// main buffer without looking at the declared size.
    fn tagged_fields(
        &mut self,
        flexible: bool,
        mut known: impl FnMut(u32, &mut Walker<'a>) -> Result<bool, WalkError>,
    ) -> WalkResult {
        if !flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            // kafka-protocol keeps unknown tags as i32 and writes back only
            // the non-negative ones, so a tag of 2^31 or more would decode
            // into a request that does not encode to what it says. No Kafka
            // schema has such a tag (they are small numbers), and refusing
            // it keeps every request the broker accepts one it can write.
            if tag > i32::MAX as u32 {
                return Err("tagged field number out of range");
            }
            let size = self.uvarint()? as usize;
            let mut field = Walker {
                buf: self.take(size)?,
            };
            if known(tag, &mut field)? && !field.buf.is_empty() {
                return Err("known tagged field is longer than its value");
            }
        }
        Ok(())
    }

    /// A tagged-field section with no known tags.
    fn no_known_tags(&mut self, flexible: bool) -> WalkResult {
        self.tagged_fields(flexible, |_, _| Ok(false))
    }
}

/// Checks that `body` is a structurally sound request for `api_key` at
/// `version`. Apis without a schema here are refused, so nothing reaches
/// kafka-protocol unchecked.
pub(crate) fn precheck_request(api_key: ApiKey, version: i16, body: &[u8]) -> WalkResult {
    // Bytes after the last field are ignored, as Kafka's parser does:
    // librdkafka 2.x sends three such bytes after a Metadata v12 body, and
    // real brokers answer it.
    walk_request(api_key, version, body).map(|_after_last_field| ())
}

/// Checks a consumer-protocol subscription body (after its i16 version),
/// versions 0-3: topics, user data, owned partitions (v1+), generation
/// (v2+), rack (v3+). Not flexible.
pub(crate) fn precheck_consumer_subscription(version: i16, body: &[u8]) -> WalkResult {
    let mut w = Walker { buf: body };
    w.array(false, 2, |w| w.string(false))?;
    w.bytes(false)?;
    if version >= 1 {
        w.array(false, 6, |w| {
            w.string(false)?;
            w.primitive_array(false, 4)
        })?;
    }
    if version >= 2 {
        w.skip(4)?;
    }
    if version >= 3 {
        w.string(false)?;
    }
    Ok(())
}

/// Checks a consumer-protocol assignment body (after its i16 version),
/// versions 0-3: assigned partitions by topic, then user data.
pub(crate) fn precheck_consumer_assignment(body: &[u8]) -> WalkResult {
    let mut w = Walker { buf: body };
    w.array(false, 6, |w| {
        w.string(false)?;
        w.primitive_array(false, 4)
    })?;
    w.bytes(false)
}

/// Generates [`walk_request`] from the api table: each api's body is walked
/// by `walk::<snake_name>`, so an api added to the table without a walker
/// fails to compile, and no api in the table reaches kafka-protocol
/// unchecked.
macro_rules! walk_requests {
    ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// Walks `body` as a request for `api_key` at `version` and returns
        /// the bytes after its last field. Apis outside the table are
        /// refused.
        fn walk_request(api_key: ApiKey, version: i16, body: &[u8]) -> Result<&[u8], WalkError> {
            let mut w = Walker { buf: body };
            match api_key {
                $(ApiKey::$key => walk::$name(&mut w, version)?,)*
                _ => return Err("no structural check exists for this api"),
            }
            Ok(w.buf)
        }
    };
}

crate::for_each_api!(walk_requests);

/// One walker per api of the table, named by its snake-case name.
///
/// The walkers are generated by `build.rs` from the request schemas in
/// `broker/protocol/schemas/`; each covers the versions of its schema's
/// `validVersions` (extended by `REQUEST_UNCHANGED_IN` where a newer version
/// left the request as it was) and refuses others; the build checks that the
/// table's range lies inside them.
mod walk {
    use super::{array_min, bytes_min, string_min, tags_min, when, WalkResult, Walker};

    include!(concat!(env!("OUT_DIR"), "/precheck_walkers.rs"));
}

/// `bytes` when `condition` holds, else 0: a field's share of the smallest
/// size of a struct in the versions that have the field.
const fn when(condition: bool, bytes: usize) -> usize {
    if condition {
        bytes
    } else {
        0
    }
}

/// The fewest bytes a string (or nullable string) takes: an i16 length, or a
/// one-byte compact length.
const fn string_min(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        2
    }
}

/// The fewest bytes a bytes field takes: an i32 length, or a one-byte compact
/// length.
const fn bytes_min(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        4
    }
}

/// The fewest bytes an array takes: an i32 count, or a one-byte compact
/// count.
const fn array_min(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        4
    }
}

/// The fewest bytes a tagged-field section takes: none in a non-flexible
/// version, a one-byte count in a flexible one.
const fn tags_min(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_requests::{build_request, encode_body};
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, Message};

    /// Checks that the walk of `body` ends exactly at its last byte, and that
    /// the body without its last byte is refused.
    fn walks_exactly(api_key: ApiKey, version: i16, body: &[u8], what: &str) {
        let rest = walk_request(api_key, version, body)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version} ({what}): {e}"));
        assert!(
            rest.is_empty(),
            "{api_key:?} v{version} ({what}): walk stopped {} bytes before the end",
            rest.len()
        );
        if !body.is_empty() {
            assert!(
                walk_request(api_key, version, &body[..body.len() - 1]).is_err(),
                "{api_key:?} v{version} ({what}): walk accepts a body missing its last byte"
            );
        }
    }

    /// Encodes a default request of `R` at every version of the table entry
    /// and checks that the walk ends exactly at the end of the body. The
    /// integration tests decode full requests, but since bytes after the last
    /// field are accepted they cannot see a walk that stops short of a
    /// trailing field; this test can.
    /// The request is encoded as a client would (kafka-protocol 0.15.1 for
    /// the versions of `LEGACY_APIS`).
    fn walks_default_request_exactly(
        api_key: ApiKey,
        versions: std::ops::RangeInclusive<i16>,
        default: crate::Request,
    ) {
        for version in versions {
            let body = encode_body(&default, version);
            walks_exactly(api_key, version, &body, "default request");
        }
    }

    /// Every api of the table, at every version of its entry: a default
    /// request, and a request with every field of the version set, arrays of
    /// several elements and unknown tagged fields (the integration tests'
    /// `build_request`), both encoded by kafka-protocol.
    macro_rules! every_api_walks_exactly {
        ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
            #[test]
            fn every_api_walk_ends_at_the_last_field() {
                $(walks_default_request_exactly(
                    ApiKey::$key,
                    $min..=$max,
                    crate::Request::$key(kafka_protocol::messages::$request::default()),
                );)*
            }

            #[test]
            fn every_populated_request_walk_ends_at_the_last_field() {
                $(for version in $min..=$max {
                    let body = encode_body(&build_request(ApiKey::$key, version), version);
                    walks_exactly(ApiKey::$key, version, &body, "populated request");
                })*
            }
        };
    }

    crate::for_each_api!(every_api_walks_exactly);

    /// `REQUEST_UNCHANGED_IN` in `build.rs`: DescribeGroups v6's request
    /// is v5's, byte for byte, so the walker generated from the v0-5 schema
    /// may walk it.
    #[test]
    fn unchanged_request_versions_encode_as_the_previous_one() {
        // One case per entry of REQUEST_UNCHANGED_IN, kept in step by hand.
        let cases: &[(ApiKey, i16)] = &[(ApiKey::DescribeGroups, 6)];
        for &(api_key, version) in cases {
            let request = build_request(api_key, version);
            assert_eq!(
                encode_body(&request, version),
                encode_body(&request, version - 1),
                "{api_key:?} v{version}"
            );
        }
    }

    /// A tag of 2^31 or more decodes in kafka-protocol as a negative key it
    /// never writes back (found by the decoder property test); the walk
    /// refuses it, and accepts the largest tag that round-trips.
    #[test]
    fn tagged_field_numbers_past_i32_max_are_refused() {
        let mut body = BytesMut::new();
        ApiVersionsRequest::default().encode(&mut body, 3).unwrap();
        // The default body ends with an empty tagged-field section.
        assert_eq!(body.last(), Some(&0));
        let with_tag = |tag_varint: &[u8]| {
            let mut b = body[..body.len() - 1].to_vec();
            b.push(1);
            b.extend_from_slice(tag_varint);
            b.push(0);
            b
        };
        let past_max = with_tag(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            walk_request(ApiKey::ApiVersions, 3, &past_max),
            Err("tagged field number out of range")
        );
        let at_max = with_tag(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        assert_eq!(walk_request(ApiKey::ApiVersions, 3, &at_max), Ok(&[][..]));
    }

    /// The big apis at every version both kafka-protocol and the vendored
    /// schema know, beyond the table's range: Produce, Fetch, Metadata,
    /// CreateTopics, OffsetCommit and JoinGroup, populated.
    #[test]
    fn big_apis_walk_exactly_at_every_schema_version() {
        let apis = [
            (ApiKey::Produce, ProduceRequest::VERSIONS),
            (ApiKey::Fetch, FetchRequest::VERSIONS),
            (ApiKey::Metadata, MetadataRequest::VERSIONS),
            (ApiKey::CreateTopics, CreateTopicsRequest::VERSIONS),
            (ApiKey::OffsetCommit, OffsetCommitRequest::VERSIONS),
            (ApiKey::JoinGroup, JoinGroupRequest::VERSIONS),
        ];
        for (api_key, versions) in apis {
            let mut walked = 0;
            for version in versions.min..=versions.max {
                let body = encode_body(&build_request(api_key, version), version);
                if walk_request(api_key, version, &body)
                    == Err("version outside the request schema")
                {
                    // A version newer than the vendored schema: the table
                    // cannot reach it (build.rs refuses such a range).
                    let support = crate::find_api_support(crate::SUPPORTED_APIS, api_key);
                    assert!(support.is_some_and(|s| s.max_version < version));
                    continue;
                }
                walks_exactly(api_key, version, &body, "populated request");
                walked += 1;
            }
            assert!(walked > 0, "{api_key:?}");
        }
    }
}
