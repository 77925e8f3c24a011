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
//!
//! # Which walker runs
//!
//! The api table ([`for_each_api!`](crate::for_each_api)) decides: the
//! request of an entry `Key(name): ...` is walked by `walk::name`, so an api
//! added to the table without a walker fails to compile and the pre-check
//! cannot be skipped silently. A test walks a default request of every table
//! entry at every version kafka-protocol knows and checks that the walk ends
//! exactly at the last byte.
//!
//! # Why the walkers are written by hand
//!
//! Generating them from Kafka's JSON message schemas would be the better
//! source of truth, but the kafka-protocol 0.18 crate does not ship the
//! schemas (only the Rust it generated from them), and this build fetches
//! nothing at build time. A capacity cap in the decoder is not available
//! either: the preallocation happens inside kafka-protocol's generated
//! `decode`, which takes no limit. So each walker mirrors kafka-protocol's
//! generated decoder for its request, which is itself generated from those
//! schemas; the exact-walk test above and the hostile-input tests in
//! `tests/malformed.rs` keep the two in step.

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

/// One walker per api of the table, named by its snake-case name. Each
/// covers every version kafka-protocol 0.18 decodes, not only the versions
/// the broker advertises, so raising a maximum in the table needs no change
/// here.
mod walk {
    use super::{array_min, bytes_min, string_min, tags_min, WalkResult, Walker};

    pub(super) fn api_versions(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 3;
        if flex {
            w.string(true)?;
            w.string(true)?;
        }
        w.no_known_tags(flex)
    }

    pub(super) fn metadata(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn produce(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    /// The Fetch request, which is the only supported request with known
    /// tagged fields.
    pub(super) fn fetch(w: &mut Walker<'_>, v: i16) -> WalkResult {
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

    pub(super) fn list_offsets(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn create_topics(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn delete_topics(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn create_partitions(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn describe_configs(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn alter_configs(w: &mut Walker<'_>, v: i16) -> WalkResult {
        alter_configs_like(w, false, v >= 2)
    }

    pub(super) fn incremental_alter_configs(w: &mut Walker<'_>, v: i16) -> WalkResult {
        alter_configs_like(w, true, v >= 1)
    }

    /// AlterConfigs and IncrementalAlterConfigs, which differ only in the
    /// operation byte of each config.
    fn alter_configs_like(w: &mut Walker<'_>, incremental: bool, flex: bool) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn delete_records(w: &mut Walker<'_>, v: i16) -> WalkResult {
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
        w.no_known_tags(flex)
    }

    pub(super) fn describe_cluster(w: &mut Walker<'_>, v: i16) -> WalkResult {
        w.skip(1)?;
        if v >= 1 {
            w.skip(1)?;
        }
        if v >= 2 {
            w.skip(1)?;
        }
        w.no_known_tags(true)
    }

    pub(super) fn init_producer_id(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 2;
        w.string(flex)?;
        w.skip(4)?;
        if v >= 3 {
            w.skip(8 + 2)?;
        }
        w.no_known_tags(flex)
    }

    // The consumer-group apis, classic and KIP-848, following kafka-protocol's
    // generated decoders (which follow Kafka's JSON schemas). None of them has
    // a known tagged field in the versions kafka-protocol 0.18 decodes. Each
    // array's `element_min_bytes` is the size of its smallest possible element
    // at that version, so a claimed count is bounded as tightly as the schema
    // allows.

    pub(super) fn find_coordinator(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 3;
        if v <= 3 {
            w.string(flex)?; // key
        }
        if v >= 1 {
            w.skip(1)?; // key_type
        }
        if v >= 4 {
            // coordinator_keys
            w.array(true, string_min(true), |w| w.string(true))?;
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn join_group(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 6;
        w.string(flex)?; // group_id
        w.skip(4)?; // session_timeout_ms
        if v >= 1 {
            w.skip(4)?; // rebalance_timeout_ms
        }
        w.string(flex)?; // member_id
        if v >= 5 {
            w.string(flex)?; // group_instance_id
        }
        w.string(flex)?; // protocol_type
        let protocol_min = string_min(flex) + bytes_min(flex) + tags_min(flex);
        w.array(flex, protocol_min, |w| {
            w.string(flex)?; // name
            w.bytes(flex)?; // metadata
            w.no_known_tags(flex)
        })?;
        if v >= 8 {
            w.string(flex)?; // reason
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn sync_group(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 4;
        w.string(flex)?; // group_id
        w.skip(4)?; // generation_id
        w.string(flex)?; // member_id
        if v >= 3 {
            w.string(flex)?; // group_instance_id
        }
        if v >= 5 {
            w.string(flex)?; // protocol_type
            w.string(flex)?; // protocol_name
        }
        let assignment_min = string_min(flex) + bytes_min(flex) + tags_min(flex);
        w.array(flex, assignment_min, |w| {
            w.string(flex)?; // member_id
            w.bytes(flex)?; // assignment
            w.no_known_tags(flex)
        })?;
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn heartbeat(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 4;
        w.string(flex)?; // group_id
        w.skip(4)?; // generation_id
        w.string(flex)?; // member_id
        if v >= 3 {
            w.string(flex)?; // group_instance_id
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn leave_group(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 4;
        w.string(flex)?; // group_id
        if v <= 2 {
            w.string(flex)?; // member_id
        } else {
            let reason_min = if v >= 5 { string_min(flex) } else { 0 };
            let member_min = 2 * string_min(flex) + reason_min + tags_min(flex);
            w.array(flex, member_min, |w| {
                w.string(flex)?; // member_id
                w.string(flex)?; // group_instance_id
                if v >= 5 {
                    w.string(flex)?; // reason
                }
                w.no_known_tags(flex)
            })?;
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn offset_commit(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 8;
        w.string(flex)?; // group_id
        w.skip(4)?; // generation_id_or_member_epoch
        w.string(flex)?; // member_id
        if v >= 7 {
            w.string(flex)?; // group_instance_id
        }
        if v <= 4 {
            w.skip(8)?; // retention_time_ms
        }
        let topic_min = string_min(flex) + array_min(flex) + tags_min(flex);
        let epoch_bytes = if v >= 6 { 4 } else { 0 };
        let partition_min = 4 + 8 + epoch_bytes + string_min(flex) + tags_min(flex);
        w.array(flex, topic_min, |w| {
            w.string(flex)?; // name
            w.array(flex, partition_min, |w| {
                // partition_index, committed_offset and, from v6,
                // committed_leader_epoch.
                w.skip(4 + 8 + epoch_bytes)?;
                w.string(flex)?; // committed_metadata
                w.no_known_tags(flex)
            })?;
            w.no_known_tags(flex)
        })?;
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn offset_fetch(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 6;
        let topic_min = string_min(flex) + array_min(flex) + tags_min(flex);
        if v <= 7 {
            w.string(flex)?; // group_id
            w.array(flex, topic_min, |w| {
                w.string(flex)?; // name
                w.primitive_array(flex, 4)?; // partition_indexes
                w.no_known_tags(flex)
            })?;
        } else {
            // From v8 the request carries a compact array of groups.
            let member_min = if v >= 9 { string_min(true) + 4 } else { 0 };
            let group_min = string_min(true) + member_min + array_min(true) + tags_min(true);
            w.array(true, group_min, |w| {
                w.string(true)?; // group_id
                if v >= 9 {
                    w.string(true)?; // member_id
                    w.skip(4)?; // member_epoch
                }
                w.array(true, topic_min, |w| {
                    w.string(true)?; // name
                    w.primitive_array(true, 4)?; // partition_indexes
                    w.no_known_tags(true)
                })?;
                w.no_known_tags(true)
            })?;
        }
        if v >= 7 {
            w.skip(1)?; // require_stable
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn list_groups(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 3;
        if v >= 4 {
            // states_filter
            w.array(true, string_min(true), |w| w.string(true))?;
        }
        if v >= 5 {
            // types_filter
            w.array(true, string_min(true), |w| w.string(true))?;
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn describe_groups(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 5;
        w.array(flex, string_min(flex), |w| w.string(flex))?; // groups
        if v >= 3 {
            w.skip(1)?; // include_authorized_operations
        }
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn delete_groups(w: &mut Walker<'_>, v: i16) -> WalkResult {
        let flex = v >= 2;
        w.array(flex, string_min(flex), |w| w.string(flex))?; // groups_names
        w.no_known_tags(flex)?;
        Ok(())
    }

    pub(super) fn offset_delete(w: &mut Walker<'_>, _v: i16) -> WalkResult {
        // Version 0 only, not flexible.
        w.string(false)?; // group_id
        w.array(false, string_min(false) + array_min(false), |w| {
            w.string(false)?; // name
            w.primitive_array(false, 4) // partitions: partition_index each
        })?;
        Ok(())
    }

    pub(super) fn consumer_group_heartbeat(w: &mut Walker<'_>, v: i16) -> WalkResult {
        // Flexible in every version.
        w.string(true)?; // group_id
        w.string(true)?; // member_id
        w.skip(4)?; // member_epoch
        w.string(true)?; // instance_id
        w.string(true)?; // rack_id
        w.skip(4)?; // rebalance_timeout_ms
        w.array(true, string_min(true), |w| w.string(true))?; // subscribed_topic_names
        if v >= 1 {
            w.string(true)?; // subscribed_topic_regex
        }
        w.string(true)?; // server_assignor

        // topic_partitions: topic_id, partitions, tagged fields.
        w.array(true, 16 + array_min(true) + tags_min(true), |w| {
            w.skip(16)?;
            w.primitive_array(true, 4)?;
            w.no_known_tags(true)
        })?;
        w.no_known_tags(true)?;
        Ok(())
    }

    pub(super) fn consumer_group_describe(w: &mut Walker<'_>, _v: i16) -> WalkResult {
        // Flexible in every version.
        w.array(true, string_min(true), |w| w.string(true))?; // group_ids
        w.skip(1)?; // include_authorized_operations
        w.no_known_tags(true)?;
        Ok(())
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
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, Message};

    /// Encodes a default request of every version of `R` and checks that the
    /// walk ends exactly at the end of the body. The integration tests decode
    /// full requests, but since bytes after the last field are accepted they
    /// cannot see a walk that stops short of a trailing field; this test can.
    fn walks_default_request_exactly<R: Encodable + Message + Default>(api_key: ApiKey) {
        for version in R::VERSIONS.min..=R::VERSIONS.max {
            let mut body = BytesMut::new();
            R::default()
                .encode(&mut body, version)
                .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
            let rest = walk_request(api_key, version, &body)
                .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
            assert!(
                rest.is_empty(),
                "{api_key:?} v{version}: walk stopped {} bytes before the end",
                rest.len()
            );
            if !body.is_empty() {
                assert!(
                    walk_request(api_key, version, &body[..body.len() - 1]).is_err(),
                    "{api_key:?} v{version}: walk accepts a body missing its last byte"
                );
            }
        }
    }

    /// Every api of the table, at every version kafka-protocol knows.
    macro_rules! every_api_walks_exactly {
        ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
            #[test]
            fn every_api_walk_ends_at_the_last_field() {
                $(walks_default_request_exactly::<$request>(ApiKey::$key);)*
            }
        };
    }

    crate::for_each_api!(every_api_walks_exactly);
}
