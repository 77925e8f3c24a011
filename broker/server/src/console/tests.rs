use super::*;

#[test]
fn base64_follows_rfc_4648() {
    // RFC 4648, section 10.
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
    assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
}

#[test]
fn query_parameters_are_percent_decoded() {
    let q = "topic=a%2Fb&partition=3&name=x+y&empty=&flag";
    assert_eq!(query_param(q, "topic").unwrap().as_deref(), Some("a/b"));
    assert_eq!(query_param(q, "partition").unwrap().as_deref(), Some("3"));
    assert_eq!(query_param(q, "name").unwrap().as_deref(), Some("x y"));
    assert_eq!(query_param(q, "empty").unwrap().as_deref(), Some(""));
    assert_eq!(query_param(q, "flag").unwrap().as_deref(), Some(""));
    assert_eq!(query_param(q, "missing").unwrap(), None);
    // A group id with markup and UTF-8 comes back exactly.
    assert_eq!(
        query_param("id=%3Cscript%3E%C3%A9", "id")
            .unwrap()
            .as_deref(),
        Some("<script>é")
    );
    // Broken escapes and bytes that are not UTF-8 are errors.
    assert!(query_param("id=%zz", "id").is_err());
    assert!(query_param("id=%4", "id").is_err());
    assert!(query_param("id=%ff", "id").is_err());
}

#[test]
fn a_browse_query_is_checked_and_bounded() {
    let q = BrowseQuery::parse("topic=t&partition=2&offset=10&limit=5").unwrap();
    assert_eq!(
        q,
        BrowseQuery {
            topic: "t".into(),
            partition: 2,
            start: BrowseStart::Offset(10),
            limit: 5
        }
    );
    let q = BrowseQuery::parse("topic=t").unwrap();
    assert_eq!(q.partition, 0);
    assert_eq!(q.start, BrowseStart::Earliest);
    assert_eq!(q.limit, BROWSE_RECORDS_DEFAULT);
    assert_eq!(
        BrowseQuery::parse("topic=t&timestamp=1700000000000")
            .unwrap()
            .start,
        BrowseStart::Timestamp(1_700_000_000_000)
    );
    assert_eq!(
        BrowseQuery::parse("topic=t&from=latest").unwrap().start,
        BrowseStart::Latest
    );
    for bad in [
        "",
        "partition=0",
        "topic=t&partition=-1",
        "topic=t&partition=x",
        "topic=t&partition=99999999999",
        "topic=t&offset=-5",
        "topic=t&offset=1&timestamp=2",
        "topic=t&limit=0",
        &format!("topic=t&limit={}", BROWSE_RECORDS_MAX + 1),
        "topic=t&from=middle",
        "topic=%zz",
    ] {
        let e = BrowseQuery::parse(bad).unwrap_err();
        assert_eq!(e.status, "400 Bad Request", "{bad:?}: {e:?}");
    }
}

#[test]
fn a_new_topic_is_checked() {
    let t = NewTopic::parse(br#"{"name":"t","partitions":3,"configs":{"retention.ms":"1000"}}"#)
        .unwrap();
    assert_eq!(t.partitions, 3);
    assert_eq!(t.replication_factor, -1);
    assert_eq!(t.configs["retention.ms"], "1000");
    assert_eq!(NewTopic::parse(br#"{"name":"t"}"#).unwrap().partitions, 1);
    for bad in [
        &b"not json"[..],
        br#"{"name":""}"#,
        br#"{"name":"t","partitions":0}"#,
        br#"{"name":"t","partitions":1000000}"#,
        br#"{"name":"t","replication_factor":0}"#,
        br#"{"name":"t","partitions":"3"}"#,
        br#"{"name":"t","surprise":1}"#,
    ] {
        assert_eq!(
            NewTopic::parse(bad).unwrap_err().status,
            "400 Bad Request",
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_new_record_is_checked() {
    let r = NewRecord::parse(
        br#"{"topic":"t","key":"k","value":"<script>x</script>","headers":[["h","v"],["h","w"]]}"#,
    )
    .unwrap();
    assert_eq!(r.partition, None);
    assert_eq!(r.value.as_deref(), Some("<script>x</script>"));
    assert_eq!(r.headers.len(), 2);
    for bad in [
        &br#"{"value":"v"}"#[..],
        br#"{"topic":"","value":"v"}"#,
        br#"{"topic":"t","partition":-1}"#,
        br#"{"topic":"t","headers":{"h":"v"}}"#,
        b"\xff",
    ] {
        assert_eq!(NewRecord::parse(bad).unwrap_err().status, "400 Bad Request");
    }
}

#[test]
fn console_paths_are_told_apart() {
    assert!(is_console_path("/ui"));
    assert!(is_console_path("/ui/app.js"));
    assert!(is_console_path("/api/topics"));
    assert!(!is_console_path("/metrics"));
    assert!(!is_console_path("/uix"));
    assert!(!is_console_path("/apis"));
}

#[test]
fn the_page_loads_no_inline_script_and_nothing_remote() {
    // The policy forbids inline scripts; the page must not need one, and
    // must load nothing from another origin (no network at run time).
    assert!(!INDEX_HTML.contains("<script>"));
    assert!(INDEX_HTML.contains(r#"<script src="/ui/app.js""#));
    for asset in [INDEX_HTML, APP_JS, APP_CSS, FAVICON_SVG] {
        // The SVG namespace is a name, not an address that is fetched.
        let asset = asset.replace("http://www.w3.org/2000/svg", "");
        assert!(!asset.contains("http://") && !asset.contains("https://"));
    }
    // User data reaches the DOM as text only.
    assert!(!APP_JS.contains("innerHTML"));
    assert!(!APP_JS.contains("insertAdjacentHTML"));
    assert!(!APP_JS.contains("document.write"));
    assert!(SECURITY_HEADERS.contains("script-src 'self'"));
    assert!(!SECURITY_HEADERS.contains("unsafe-inline"));
}

#[test]
fn record_batches_decode_with_the_brokers_codecs() {
    // A gzip batch as a client writes it, decoded through the storage
    // codec, then an uncompressed one, then a batch cut short.
    let record = |offset: i64, value: &str| Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut wire = BytesMut::new();
    let gzip = |buf: &mut BytesMut, out: &mut BytesMut, c: WireCompression| -> anyhow::Result<()> {
        assert_eq!(c, WireCompression::Gzip);
        let z = corelog_storage::codec::compress(corelog_storage::codec::Compression::Gzip, buf)?;
        out.extend_from_slice(&z);
        Ok(())
    };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut wire,
        [&record(0, "a"), &record(1, "b")],
        &RecordEncodeOptions {
            version: 2,
            compression: WireCompression::Gzip,
        },
        Some(gzip),
    )
    .unwrap();
    RecordBatchEncoder::encode(
        &mut wire,
        [&record(2, "c")],
        &RecordEncodeOptions {
            version: 2,
            compression: WireCompression::None,
        },
    )
    .unwrap();
    let whole = wire.len();
    RecordBatchEncoder::encode(
        &mut wire,
        [&record(3, "d")],
        &RecordEncodeOptions {
            version: 2,
            compression: WireCompression::None,
        },
    )
    .unwrap();
    wire.truncate(whole + 20);
    let records = decode_batches(&mut wire.freeze()).unwrap();
    let values: Vec<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, ["a", "b", "c"]);
    assert_eq!(records[2].offset, 2);
    let json = record_json(&records[0]);
    assert_eq!(json["value"], "YQ==");
    assert_eq!(json["key"], Value::Null);
}
