//! Bounds on the names and ids clients send (issue 25): oversized group
//! ids, instance ids, client-chosen member ids and protocol names are
//! refused where requests enter the coordinator and nothing of them is
//! stored; generated member ids stay short whatever the client id; and
//! oversized group ids an older broker wrote are skipped on load and do
//! not survive the next snapshot.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use corelog_coordination::records::{
    decode_batches, encode_batches, ClassicSnapshot, GroupValue, LogRecord, OffsetValue, RecordKey,
    RecordValue,
};
use corelog_coordination::*;

/// A group id one byte over the bound.
fn too_long() -> String {
    "g".repeat(GROUP_ID_BYTES_MAX + 1)
}

/// Nothing was appended and no group exists: nothing of the request stored.
fn assert_nothing_stored(s: &mut Sim) {
    assert!(s.log.is_empty(), "records written: {:?}", s.records());
    assert!(s.list().is_empty(), "groups: {:?}", s.list());
    assert!(s.c.live_records().is_empty());
}

fn fetch(s: &mut Sim, group: &str) -> OffsetFetchResult {
    match s.call(Request::OffsetFetch(OffsetFetch {
        group_id: group.into(),
        partitions: Some(vec![TopicPartition::new("t", 0)]),
        member: None,
        require_stable: false,
    })) {
        Response::OffsetFetch(r) => r,
        other => panic!("expected a fetch reply, got {other:?}"),
    }
}

#[test]
fn a_group_id_over_the_bound_is_refused_and_nothing_is_stored() {
    let mut s = Sim::new(config());
    s.set_topics(&[("t", 2)]);
    let g = too_long();

    // Every request that names one group, in the shape a client sends it.
    let j = s.join_now(join_req(&g, ""));
    assert_eq!(j.error, codes::INVALID_GROUP_ID);
    let j = s.join_now(join_req(&g, "").require_id());
    assert_eq!(j.error, codes::INVALID_GROUP_ID);
    assert!(j.member_id.is_empty(), "no member id handed out: {j:?}");
    let x = s.sync(&g, 1, "m", &[("m", b"a")]);
    assert_eq!(s.synced(x).error, codes::INVALID_GROUP_ID);
    assert_eq!(s.heartbeat(&g, 1, "m"), codes::INVALID_GROUP_ID);
    let l = s.leave(&g, &[("m", None), ("n", Some("i"))]);
    assert_eq!(l.error, codes::INVALID_GROUP_ID);
    assert!(l.members.is_empty(), "{l:?}");
    // Simple and member commits alike, every partition refused.
    assert_eq!(
        s.commit_now(&g, -1, "", &[("t", 0, 5), ("t", 1, 6)]),
        vec![codes::INVALID_GROUP_ID; 2]
    );
    assert_eq!(
        s.commit_now(&g, 3, "m", &[("t", 0, 5)]),
        vec![codes::INVALID_GROUP_ID]
    );
    let f = fetch(&mut s, &g);
    assert_eq!(f.error, codes::INVALID_GROUP_ID);
    assert!(f.offsets.is_empty());
    match s.call(Request::OffsetDelete(OffsetDelete {
        group_id: g.clone(),
        partitions: vec![TopicPartition::new("t", 0)],
    })) {
        Response::OffsetDelete(r) => assert_eq!(r.error, codes::INVALID_GROUP_ID),
        other => panic!("expected an offset delete reply, got {other:?}"),
    }
    // KIP-848: Kafka answers a malformed heartbeat with INVALID_REQUEST.
    let h = s.consumer_heartbeat(consumer_join(&g, "", &["t"]));
    assert_eq!(h.error, codes::INVALID_REQUEST);
    assert!(
        h.error_message
            .as_deref()
            .unwrap_or("")
            .contains("group id"),
        "{h:?}"
    );
    assert_nothing_stored(&mut s);
}

#[test]
fn requests_naming_several_groups_refuse_only_the_oversized_one() {
    let mut s = Sim::new(config());
    s.set_topics(&[("t", 2)]);
    let g = too_long();
    assert_eq!(
        s.commit_now("ok", -1, "", &[("t", 0, 1)]),
        vec![codes::NONE]
    );
    let appended = s.log.len();

    match s.call(Request::DescribeGroups(vec![g.clone(), "ok".into()])) {
        Response::DescribeGroups(v) => {
            assert_eq!(v[0].group_id, g);
            assert_eq!(v[0].error, codes::INVALID_GROUP_ID);
            assert_eq!(v[0].state, "", "Kafka's answer for an invalid group id");
            assert_eq!((v[1].error, v[1].state.as_str()), (codes::NONE, "Empty"));
        }
        other => panic!("expected a describe reply, got {other:?}"),
    }
    match s.call(Request::ConsumerDescribe(vec![g.clone(), "ok".into()])) {
        Response::ConsumerDescribe(v) => {
            assert_eq!(v[0].error, codes::INVALID_GROUP_ID);
            // "ok" is a classic group: Kafka says so with GROUP_ID_NOT_FOUND.
            assert_eq!(v[1].error, codes::GROUP_ID_NOT_FOUND);
        }
        other => panic!("expected a consumer describe reply, got {other:?}"),
    }
    let id = s.send(Request::DeleteGroups(vec![g.clone(), "ok".into()]));
    s.ack_all();
    match s.take(id) {
        Some(Response::DeleteGroups(v)) => assert_eq!(
            v,
            vec![
                (g.clone(), codes::INVALID_GROUP_ID),
                ("ok".into(), codes::NONE)
            ]
        ),
        other => panic!("expected a delete reply, got {other:?}"),
    }
    // Only "ok"'s deletion was written.
    assert!(s.log[appended..]
        .iter()
        .flat_map(|a| &a.records)
        .all(|r| r.key.group() == "ok"));
    assert!(s.list().is_empty());
}

#[test]
fn a_group_id_of_exactly_the_bound_works_everywhere() {
    let mut s = Sim::new(config());
    s.set_topics(&[("t", 2)]);
    let g = "b".repeat(GROUP_ID_BYTES_MAX);

    assert_eq!(s.commit_now(&g, -1, "", &[("t", 0, 42)]), vec![codes::NONE]);
    assert_eq!(fetch(&mut s, &g).offsets[0].offset, 42);
    assert_eq!(s.list()[0].group_id, g);
    let (ids, generation) = s.stable_group(&g, 2);
    assert_eq!(s.heartbeat(&g, generation, &ids[0]), codes::NONE);
    assert_eq!(s.describe(&g).members.len(), 2);

    // A KIP-848 group at the bound, with a client-chosen member id at its
    // bound too.
    let k = "k".repeat(GROUP_ID_BYTES_MAX);
    let member = "m".repeat(MEMBER_ID_BYTES_MAX);
    let h = s.consumer_heartbeat(consumer_join(&k, &member, &["t"]));
    assert_eq!(h.error, codes::NONE, "{h:?}");
    assert_eq!(h.member_id, member);
    assert_eq!(s.consumer_describe(&k).members.len(), 1);

    // Both survive a rebuild from the log.
    let mut r = Sim::from_coordinator(
        replay(
            s.c.config().clone(),
            &s.records(),
            &topics_view(&[("t", 2)]),
            s.now,
        ),
        s.now,
    );
    let listed: Vec<String> = r.list().into_iter().map(|l| l.group_id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&g) && listed.contains(&k));
    assert_eq!(r.offsets(&g).get(&TopicPartition::new("t", 0)), Some(&42));
}

#[test]
fn an_instance_id_over_the_bound_is_refused_and_nothing_is_stored() {
    let mut s = Sim::new(config());
    s.set_topics(&[("t", 2)]);
    let long = "i".repeat(GROUP_INSTANCE_ID_BYTES_MAX + 1);

    let j = s.join_now(join_req("g", "").instance(&long));
    assert_eq!(j.error, codes::INVALID_REQUEST);
    let h = s.consumer_heartbeat(ConsumerHeartbeat {
        group_instance_id: Some(long.clone()),
        ..consumer_join("k", "", &["t"])
    });
    assert_eq!(h.error, codes::INVALID_REQUEST);
    assert_nothing_stored(&mut s);

    // Requests that only name an instance refuse it too, rather than
    // answering as if it were merely unknown.
    let x = s.sync_static("g", 1, "m", Some(&long), &[]);
    assert_eq!(s.synced(x).error, codes::INVALID_REQUEST);
    assert_eq!(
        s.heartbeat_static("g", 1, "m", Some(&long)),
        codes::INVALID_REQUEST
    );
    assert_eq!(
        s.leave("g", &[("", Some(&long))]).error,
        codes::INVALID_REQUEST
    );
    assert_nothing_stored(&mut s);

    // At the bound a static member joins and is described with it.
    let at = "i".repeat(GROUP_INSTANCE_ID_BYTES_MAX);
    let (ids, _) = s.stable_group_of("g", vec![join_req("g", "").instance(&at)]);
    let d = s.describe("g");
    assert_eq!(d.members[0].member_id, ids[0]);
    assert_eq!(d.members[0].group_instance_id.as_deref(), Some(at.as_str()));
}

#[test]
fn a_client_chosen_member_id_over_the_bound_is_refused() {
    let mut s = Sim::new(config());
    s.set_topics(&[("t", 2)]);
    let long = "m".repeat(MEMBER_ID_BYTES_MAX + 1);
    let h = s.consumer_heartbeat(consumer_join("k", &long, &["t"]));
    assert_eq!(h.error, codes::INVALID_REQUEST);
    assert!(
        h.error_message
            .as_deref()
            .unwrap_or("")
            .contains("member id"),
        "{h:?}"
    );
    assert_nothing_stored(&mut s);
}

#[test]
fn protocol_names_over_the_bound_are_refused() {
    let mut s = Sim::new(config());
    let long = "p".repeat(PROTOCOL_NAME_BYTES_MAX + 1);
    let mut j = join_req("g", "");
    j.protocol_type = long.clone();
    assert_eq!(s.join_now(j).error, codes::INVALID_REQUEST);
    let j = join_req("g", "").protocols(&[("range", Bytes::new()), (&long, Bytes::new())]);
    assert_eq!(s.join_now(j).error, codes::INVALID_REQUEST);
    assert_nothing_stored(&mut s);
}

#[test]
fn generated_member_ids_use_a_bounded_part_of_the_client_id() {
    let mut s = Sim::new(config());
    // 40,000 bytes, with a two-byte character straddling the cut.
    let mut client = "c".repeat(MEMBER_ID_CLIENT_ID_BYTES_MAX - 1);
    client.push('é');
    client.push_str(&"d".repeat(40_000 - client.len()));
    assert_eq!(client.len(), 40_000);

    let j = s.join_now(join_req("g", "").client(&client).require_id());
    assert_eq!(j.error, codes::MEMBER_ID_REQUIRED);
    let id = j.member_id;
    // The client id is cut before the character it cannot hold whole,
    // then "-" and a 36-character UUID follow.
    let prefix = &client[..MEMBER_ID_CLIENT_ID_BYTES_MAX - 1];
    assert!(id.starts_with(&format!("{prefix}-")), "{id}");
    assert_eq!(id.len(), prefix.len() + 1 + 36);
    assert!(id.len() <= MEMBER_ID_BYTES_MAX);

    // The member joins with it; its full client id is still what it shows.
    let (ids, _) = s.stable_group_of("g", vec![join_req("g", &id).client(&client)]);
    assert_eq!(ids, vec![id.clone()]);
    let d = s.describe("g");
    assert_eq!(d.members[0].member_id, id);
    assert_eq!(d.members[0].client_id, client);

    // A short client id is used whole, as Kafka does.
    let j = s.join_now(join_req("h", "").client("app-1").require_id());
    assert!(j.member_id.starts_with("app-1-"), "{}", j.member_id);
    assert_eq!(j.member_id.len(), "app-1-".len() + 36);
}

/// What an older broker, with no bound, could have written for a group:
/// its metadata and offsets.
fn old_broker_records(group: &str) -> Vec<LogRecord> {
    let mut out = vec![LogRecord {
        key: RecordKey::Group {
            group: group.into(),
        },
        value: Some(RecordValue::Group(GroupValue::Classic(ClassicSnapshot {
            protocol_type: Some("consumer".into()),
            protocol: None,
            generation: 0,
            leader: None,
            state_since_ms: 0,
            members: Vec::new(),
        }))),
    }];
    for p in 0..2 {
        out.push(LogRecord {
            key: RecordKey::Offset {
                group: group.into(),
                topic: "t".into(),
                partition: p,
            },
            value: Some(RecordValue::Offset(OffsetValue {
                offset: 100 + p as i64,
                leader_epoch: -1,
                metadata: Some(String::new()),
                commit_ms: 0,
            })),
        });
    }
    out
}

#[test]
fn oversized_group_ids_in_the_log_are_skipped_on_load() {
    // A log as an older broker left it: a normal group, and one whose id is
    // 40,000 bytes (which ListGroups v0-2 cannot encode), interleaved.
    let mut s = Sim::new(config());
    s.set_topics(&[("t", 2)]);
    assert_eq!(
        s.commit_now("ok", -1, "", &[("t", 0, 7)]),
        vec![codes::NONE]
    );
    let big = "x".repeat(40_000);
    let mut log = old_broker_records(&big);
    log.extend(s.records());
    log.extend(old_broker_records(&big));
    // Read back as the server does: through v2 batches.
    let mut loaded = Vec::new();
    for b in encode_batches(&log, 0, 512 << 10) {
        for (_, r) in decode_batches(b).unwrap() {
            loaded.push(r.unwrap());
        }
    }
    assert_eq!(loaded, log);

    let topics = topics_view(&[("t", 2)]);
    let mut r = Sim::from_coordinator(replay(config(), &loaded, &topics, 1_000), 1_000);
    let listed: Vec<String> = r.list().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["ok".to_string()]);
    assert_eq!(
        r.offsets("ok"),
        BTreeMap::from([(TopicPartition::new("t", 0), 7)])
    );
    assert!(r
        .c
        .live_records()
        .iter()
        .all(|rec| rec.key.group().len() <= GROUP_ID_BYTES_MAX));
    // Asking for it by name is refused like any oversized id.
    assert_eq!(fetch(&mut r, &big).error, codes::INVALID_GROUP_ID);
}

#[test]
fn the_snapshot_after_a_load_does_not_carry_oversized_group_ids_forward() {
    let big = "x".repeat(40_000);
    let mut log = Vec::new();
    for _ in 0..4 {
        log.extend(old_broker_records(&big));
    }
    log.extend(old_broker_records("ok"));
    let topics = topics_view(&[("t", 2)]);
    // The skipped records count as superseded log: with the usual
    // threshold at its smallest, they alone make the next write compact.
    let config = CoordinatorConfig {
        snapshot_min_bytes: 1,
        ..config()
    };
    let mut r = Sim::from_coordinator(replay(config.clone(), &log, &topics, 1_000), 1_000);
    assert_eq!(
        r.commit_now("ok", -1, "", &[("t", 1, 9)]),
        vec![codes::NONE]
    );
    let snapshot = r
        .log
        .iter()
        .rfind(|a| a.compacts)
        .expect("the write after the load compacts");
    assert!(snapshot.records.iter().all(|rec| rec.key.group() == "ok"));
    // What the compacted log holds rebuilds the same state, with no
    // warning-worthy records left in it.
    let kept = since_last_snapshot(&r.log);
    assert!(kept.iter().all(|rec| rec.key.group() == "ok"));
    let mut again = Sim::from_coordinator(replay(config, &kept, &topics, r.now), r.now);
    assert_eq!(live_state(&again.c), live_state(&r.c));
    assert_eq!(
        again.offsets("ok"),
        BTreeMap::from([
            (TopicPartition::new("t", 0), 100),
            (TopicPartition::new("t", 1), 9)
        ])
    );
}
