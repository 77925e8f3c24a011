//! Fully populated requests built from Kafka's request schemas
//! (`broker/protocol/schemas/`), for apis without a hand-written builder.
//!
//! A new api in the table then needs no builder here: [`populated_body`]
//! reads the api's schema, writes a request body in which every field of the
//! version is present and not its default (every array has one element,
//! every nullable field is set, every known tagged field is sent, plus one
//! unknown tag in flexible versions), and [`populated_request`] decodes it
//! with the crate's own decoder (pre-check included). The hand-written
//! builders stay where a request needs meaningful values (record batches,
//! group protocols, legacy versions); the schema-driven one only has to be
//! valid to the codec, which is what the round-trip, pre-check and fuzz tests
//! need.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use corelog_protocol::kafka_protocol::messages::ApiKey;
use corelog_protocol::{decode_request_with, ApiSupport, Request, RequestHeader};
use serde_json::Value;

/// The tag of the unknown tagged field added to every flexible struct, so
/// that such fields are seen to pass the pre-check and survive decoding.
const UNKNOWN_TAG: u32 = 99;

/// Request versions one above a vendored schema whose body is the previous
/// version's: build.rs's `REQUEST_UNCHANGED_IN`, each checked by a test in
/// `src/precheck.rs`. The body is written at the previous version.
const REQUEST_UNCHANGED_IN: &[(ApiKey, i16)] = &[(ApiKey::DescribeGroups, 6)];

/// The request schemas in `broker/protocol/schemas/`, by api key.
fn schemas() -> &'static HashMap<i16, Value> {
    static SCHEMAS: OnceLock<HashMap<i16, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut out = HashMap::new();
        for entry in std::fs::read_dir(&dir).expect("schemas directory") {
            let path = entry.expect("schemas entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("schema file");
            // Kafka's schemas carry `//` comment lines, which JSON does not
            // allow; build.rs drops them the same way.
            let json: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .map(|line| format!("{line}\n"))
                .collect();
            let schema: Value =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let key = schema["apiKey"].as_i64().expect("apiKey") as i16;
            out.insert(key, schema);
        }
        out
    })
}

/// An inclusive version range; `None` is Kafka's "none".
fn parse_versions(text: &str) -> Option<(i16, i16)> {
    let text = text.trim();
    if text == "none" {
        None
    } else if let Some(lo) = text.strip_suffix('+') {
        Some((lo.parse().expect("version"), i16::MAX))
    } else if let Some((lo, hi)) = text.split_once('-') {
        Some((lo.parse().expect("version"), hi.parse().expect("version")))
    } else {
        let v = text.parse().expect("version");
        Some((v, v))
    }
}

fn within(range: Option<(i16, i16)>, v: i16) -> bool {
    range.is_some_and(|(lo, hi)| lo <= v && v <= hi)
}

fn put_uvarint(buf: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        buf.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

/// Writes requests of one schema at one version.
struct Writer<'a> {
    version: i16,
    flex: bool,
    common: BTreeMap<&'a str, &'a Value>,
    /// A counter that makes every value differ from its neighbours.
    next: u8,
}

impl<'a> Writer<'a> {
    fn value(&mut self) -> u8 {
        self.next = self.next.wrapping_add(1).max(1);
        self.next
    }

    fn length(&self, buf: &mut BytesMut, n: usize, wide: bool) {
        if self.flex {
            put_uvarint(buf, n as u32 + 1);
        } else if wide {
            buf.put_i32(n as i32);
        } else {
            buf.put_i16(n as i16);
        }
    }

    fn struct_fields(&self, field: &'a Value, ty: &str) -> &'a Value {
        match field.get("fields") {
            Some(fields) => fields,
            None => self
                .common
                .get(ty)
                .copied()
                .unwrap_or_else(|| panic!("unknown type `{ty}`")),
        }
    }

    /// Writes the fields of a struct present at the version: the inline
    /// ones in order, then (in flexible versions) the tagged-field section.
    fn write_struct(&mut self, buf: &mut BytesMut, fields: &'a Value) {
        let mut tagged = Vec::new();
        for field in fields.as_array().expect("fields") {
            let versions = parse_versions(field["versions"].as_str().expect("versions"));
            let tag_versions = field
                .get("taggedVersions")
                .and_then(Value::as_str)
                .and_then(parse_versions);
            if !within(versions, self.version) {
                continue;
            }
            if self.flex && within(tag_versions, self.version) {
                tagged.push(field);
            } else {
                self.write_field(buf, field);
            }
        }
        if !self.flex {
            return;
        }
        put_uvarint(buf, tagged.len() as u32 + 1);
        tagged.sort_by_key(|f| f["tag"].as_u64().expect("tag"));
        for field in tagged {
            let mut value = BytesMut::new();
            self.write_field(&mut value, field);
            put_uvarint(buf, field["tag"].as_u64().expect("tag") as u32);
            put_uvarint(buf, value.len() as u32);
            buf.extend_from_slice(&value);
        }
        put_uvarint(buf, UNKNOWN_TAG);
        put_uvarint(buf, 3);
        buf.extend_from_slice(b"tag");
    }

    fn write_field(&mut self, buf: &mut BytesMut, field: &'a Value) {
        let ty = field["type"].as_str().expect("type");
        if let Some(element) = ty.strip_prefix("[]") {
            self.length(buf, 1, true);
            self.write_value(buf, field, element);
        } else {
            if !is_primitive(ty) && field.get("nullableVersions").is_some() {
                // A nullable struct: the marker 1 says it is present.
                buf.put_i8(1);
            }
            self.write_value(buf, field, ty);
        }
    }

    fn write_value(&mut self, buf: &mut BytesMut, field: &'a Value, ty: &str) {
        match ty {
            "bool" => buf.put_u8(1),
            "int8" => {
                let n = self.value();
                buf.put_i8(n as i8 & 0x7f)
            }
            "int16" => {
                let n = self.value();
                buf.put_i16(i16::from(n))
            }
            "uint16" => {
                let n = self.value();
                buf.put_u16(u16::from(n))
            }
            "int32" => {
                let n = self.value();
                buf.put_i32(i32::from(n))
            }
            "uint32" => {
                let n = self.value();
                buf.put_u32(u32::from(n))
            }
            "int64" => {
                let n = self.value();
                buf.put_i64(i64::from(n))
            }
            "float64" => {
                let n = self.value();
                buf.put_f64(f64::from(n) + 0.5)
            }
            "uuid" => {
                let n = self.value();
                buf.put_slice(&[n; 16])
            }
            "string" => {
                let n = self.value();
                let text = format!("{}-{n}", field["name"].as_str().expect("name"));
                self.length(buf, text.len(), false);
                buf.put_slice(text.as_bytes());
            }
            "bytes" | "records" => {
                let n = self.value();
                self.length(buf, 3, true);
                buf.put_slice(&[n; 3]);
            }
            _ => {
                let fields = self.struct_fields(field, ty);
                self.write_struct(buf, fields);
            }
        }
    }
}

fn is_primitive(ty: &str) -> bool {
    matches!(
        ty,
        "bool"
            | "int8"
            | "int16"
            | "uint16"
            | "int32"
            | "uint32"
            | "int64"
            | "float64"
            | "uuid"
            | "string"
            | "bytes"
            | "records"
    )
}

/// The body of a fully populated request for `api_key` at `version`, from
/// its schema; `None` when `broker/protocol/schemas/` has no schema for the
/// api or the schema does not have the version.
pub fn populated_body(api_key: ApiKey, version: i16) -> Option<Bytes> {
    let schema = schemas().get(&(api_key as i16))?;
    let valid = parse_versions(schema["validVersions"].as_str()?);
    let version = if REQUEST_UNCHANGED_IN.contains(&(api_key, version)) {
        version - 1
    } else {
        version
    };
    if !within(valid, version) {
        return None;
    }
    let flexible = parse_versions(schema["flexibleVersions"].as_str().unwrap_or("none"));
    let common = schema
        .get("commonStructs")
        .and_then(Value::as_array)
        .map(|structs| {
            structs
                .iter()
                .map(|s| (s["name"].as_str().expect("name"), &s["fields"]))
                .collect()
        })
        .unwrap_or_default();
    let mut writer = Writer {
        version,
        flex: within(flexible, version),
        common,
        next: 0,
    };
    let mut buf = BytesMut::new();
    writer.write_struct(&mut buf, &schema["fields"]);
    Some(buf.freeze())
}

/// A fully populated request for `api_key` at `version`, built from its
/// schema and decoded by the crate's decoder; `None` as for
/// [`populated_body`]. Panics when the crate refuses the body, which would
/// mean the decoder and the schema disagree.
pub fn populated_request(api_key: ApiKey, version: i16) -> Option<Request> {
    let body = populated_body(api_key, version)?;
    let table = [ApiSupport {
        api_key,
        min_version: version,
        max_version: version,
    }];
    let header = RequestHeader {
        api_key,
        api_version: version,
        correlation_id: 1,
        client_id: None,
        header_version: api_key.request_header_version(version),
        unknown_tagged_fields: BTreeMap::new(),
    };
    Some(
        decode_request_with(&table, &header, body)
            .unwrap_or_else(|e| panic!("schema-built {api_key:?} v{version} does not decode: {e}")),
    )
}
