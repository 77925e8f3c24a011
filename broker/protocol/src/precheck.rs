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
//! The walker below follows each request schema the way kafka-protocol's
//! generated decoders do, field by field and version by version, without
//! building anything. It checks every array length against the bytes that are
//! left and then walks every element, so once it accepts a body every length
//! kafka-protocol will preallocate for is backed by elements that are really
//! there. Memory used by the decode then grows with the frame size, which
//! `request_bytes_max` bounds.
//!
//! The walker is deliberately lenient where leniency cannot cause an
//! allocation: it accepts null for every string, bytes and array field and does
//! not check UTF-8, because kafka-protocol rejects those cases itself. Where
//! it must agree with kafka-protocol byte for byte (varints, known tagged
//! fields) it mirrors kafka-protocol's behaviour exactly.

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
/// `version` and that nothing follows it. Apis without a schema here are
/// refused, so nothing reaches kafka-protocol unchecked.
pub(crate) fn precheck_request(api_key: ApiKey, version: i16, body: &[u8]) -> WalkResult {
    let mut w = Walker { buf: body };
    let v = version;
    match api_key {
        ApiKey::ApiVersions => {
            let flex = v >= 3;
            if flex {
                w.string(true)?;
                w.string(true)?;
            }
            w.no_known_tags(flex)?;
        }
        ApiKey::Metadata => {
            let flex = v >= 9;
            w.array(flex, 1, |w| {
                if v >= 10 {
                    w.skip(16)?;
                }
                w.string(flex)?;
                w.no_known_tags(flex)
            })?;
            if v >= 4 {
                w.skip(1)?;
            }
            if (8..=10).contains(&v) {
                w.skip(1)?;
            }
            if v >= 8 {
                w.skip(1)?;
            }
            w.no_known_tags(flex)?;
        }
        ApiKey::Produce => {
            let flex = v >= 9;
            w.string(flex)?;
            w.skip(2 + 4)?;
            w.array(flex, 1, |w| {
                if v <= 12 {
                    w.string(flex)?;
                }
                if v >= 13 {
                    w.skip(16)?;
                }
                w.array(flex, 1, |w| {
                    w.skip(4)?;
                    w.bytes(flex)?;
                    w.no_known_tags(flex)
                })?;
                w.no_known_tags(flex)
            })?;
            w.no_known_tags(flex)?;
        }
        ApiKey::Fetch => precheck_fetch(&mut w, v)?,
        ApiKey::ListOffsets => {
            let flex = v >= 6;
            w.skip(4)?;
            if v >= 2 {
                w.skip(1)?;
            }
            w.array(flex, 1, |w| {
                w.string(flex)?;
                w.array(flex, 1, |w| {
                    w.skip(4)?;
                    if v >= 4 {
                        w.skip(4)?;
                    }
                    w.skip(8)?;
                    w.no_known_tags(flex)
                })?;
                w.no_known_tags(flex)
            })?;
            if v >= 10 {
                w.skip(4)?;
            }
            w.no_known_tags(flex)?;
        }
        ApiKey::CreateTopics => {
            let flex = v >= 5;
            w.array(flex, 1, |w| {
                w.string(flex)?;
                w.skip(4 + 2)?;
                w.array(flex, 1, |w| {
                    w.skip(4)?;
                    w.primitive_array(flex, 4)?;
                    w.no_known_tags(flex)
                })?;
                w.array(flex, 1, |w| {
                    w.string(flex)?;
                    w.string(flex)?;
                    w.no_known_tags(flex)
                })?;
                w.no_known_tags(flex)
            })?;
            w.skip(4 + 1)?;
            w.no_known_tags(flex)?;
        }
        ApiKey::DeleteTopics => {
            let flex = v >= 4;
            if v >= 6 {
                w.array(flex, 1, |w| {
                    w.string(flex)?;
                    w.skip(16)?;
                    w.no_known_tags(flex)
                })?;
            } else {
                w.array(flex, 1, |w| w.string(flex))?;
            }
            w.skip(4)?;
            w.no_known_tags(flex)?;
        }
        ApiKey::CreatePartitions => {
            let flex = v >= 2;
            w.array(flex, 1, |w| {
                w.string(flex)?;
                w.skip(4)?;
                w.array(flex, 1, |w| {
                    w.primitive_array(flex, 4)?;
                    w.no_known_tags(flex)
                })?;
                w.no_known_tags(flex)
            })?;
            w.skip(4 + 1)?;
            w.no_known_tags(flex)?;
        }
        ApiKey::DescribeConfigs => {
            let flex = v >= 4;
            w.array(flex, 1, |w| {
                w.skip(1)?;
                w.string(flex)?;
                w.array(flex, 1, |w| w.string(flex))?;
                w.no_known_tags(flex)
            })?;
            w.skip(1)?;
            if v >= 3 {
                w.skip(1)?;
            }
            w.no_known_tags(flex)?;
        }
        ApiKey::AlterConfigs | ApiKey::IncrementalAlterConfigs => {
            let incremental = api_key == ApiKey::IncrementalAlterConfigs;
            let flex = if incremental { v >= 1 } else { v >= 2 };
            w.array(flex, 1, |w| {
                w.skip(1)?;
                w.string(flex)?;
                w.array(flex, 1, |w| {
                    w.string(flex)?;
                    if incremental {
                        w.skip(1)?;
                    }
                    w.string(flex)?;
                    w.no_known_tags(flex)
                })?;
                w.no_known_tags(flex)
            })?;
            w.skip(1)?;
            w.no_known_tags(flex)?;
        }
        ApiKey::DeleteRecords => {
            let flex = v >= 2;
            w.array(flex, 1, |w| {
                w.string(flex)?;
                w.array(flex, 1, |w| {
                    w.skip(4 + 8)?;
                    w.no_known_tags(flex)
                })?;
                w.no_known_tags(flex)
            })?;
            w.skip(4)?;
            w.no_known_tags(flex)?;
        }
        ApiKey::DescribeCluster => {
            w.skip(1)?;
            if v >= 1 {
                w.skip(1)?;
            }
            if v >= 2 {
                w.skip(1)?;
            }
            w.no_known_tags(true)?;
        }
        ApiKey::InitProducerId => {
            let flex = v >= 2;
            w.string(flex)?;
            w.skip(4)?;
            if v >= 3 {
                w.skip(8 + 2)?;
            }
            w.no_known_tags(flex)?;
        }
        _ => return Err("no structural check exists for this api"),
    }
    // Bytes after the last field are ignored, as Kafka's parser does:
    // librdkafka 2.x sends three such bytes after a Metadata v12 body, and
    // real brokers answer it.
    Ok(())
}

/// The Fetch request, which is the only supported request with known tagged
/// fields.
fn precheck_fetch(w: &mut Walker<'_>, v: i16) -> WalkResult {
    let flex = v >= 12;
    if v <= 14 {
        w.skip(4)?; // replica_id
    }
    w.skip(4 + 4 + 4 + 1)?; // max_wait_ms, min_bytes, max_bytes, isolation_level
    if v >= 7 {
        w.skip(4 + 4)?; // session_id, session_epoch
    }
    w.array(flex, 1, |w| {
        if v <= 12 {
            w.string(flex)?;
        }
        if v >= 13 {
            w.skip(16)?;
        }
        w.array(flex, 1, |w| {
            w.skip(4)?; // partition
            if v >= 9 {
                w.skip(4)?; // current_leader_epoch
            }
            w.skip(8)?; // fetch_offset
            if v >= 12 {
                w.skip(4)?; // last_fetched_epoch
            }
            if v >= 5 {
                w.skip(8)?; // log_start_offset
            }
            w.skip(4)?; // partition_max_bytes
            w.tagged_fields(flex, |tag, field| match tag {
                0 if v >= 17 => field.skip(16).map(|()| true), // replica_directory_id
                1 if v >= 18 => field.skip(8).map(|()| true),  // high_watermark
                _ => Ok(false),
            })
        })?;
        w.no_known_tags(flex)
    })?;
    if v >= 7 {
        w.array(flex, 1, |w| {
            if v <= 12 {
                w.string(flex)?;
            }
            if v >= 13 {
                w.skip(16)?;
            }
            w.primitive_array(flex, 4)?;
            w.no_known_tags(flex)
        })?;
    }
    if v >= 11 {
        w.string(flex)?; // rack_id
    }
    w.tagged_fields(flex, |tag, field| match tag {
        0 => field.string(true).map(|()| true), // cluster_id
        1 if v >= 15 => {
            // replica_state: replica_id, replica_epoch, tagged fields.
            field.skip(4 + 8)?;
            field.no_known_tags(true)?;
            Ok(true)
        }
        _ => Ok(false),
    })
}
