//! The controller's requests, validations and error codes, with the quorum
//! replaced by "every proposal commits at the next index".

use corelog_controller::codes;
use corelog_controller::*;
use corelog_model::{LeaderEpoch, NodeId, TopicId, TopicPartition};

/// An AlterPartitions of one change, for the tests of one partition.
struct AlterPartition {
    broker: NodeId,
    broker_epoch: i64,
    topic_id: TopicId,
    partition: i32,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    isr: Vec<NodeId>,
}

struct Harness {
    ctrl: Controller,
    now: u64,
    index: u64,
    next_reply: u64,
}

impl Harness {
    fn leader() -> Harness {
        let mut ctrl = Controller::new(ControllerConfig::new(NodeId(1), 7));
        assert!(ctrl
            .step(
                0,
                Input::Leadership {
                    is_leader: true,
                    term: 1
                }
            )
            .is_empty());
        Harness {
            ctrl,
            now: 0,
            index: 0,
            next_reply: 1,
        }
    }

    /// One partition's ISR change, alone in its AlterPartitions: the
    /// request's error or the change's own.
    fn alter_partition(&mut self, a: AlterPartition) -> Result<Response, ApiError> {
        let answer = self.ask(Request::AlterPartitions {
            broker: a.broker,
            broker_epoch: a.broker_epoch,
            changes: vec![IsrChange {
                topic_id: a.topic_id,
                partition: a.partition,
                leader_epoch: a.leader_epoch,
                partition_epoch: a.partition_epoch,
                isr: a.isr,
            }],
        });
        match answer {
            Ok(Response::PartitionsAltered(mut results)) if results.len() == 1 => results
                .pop()
                .expect("one")
                .map(|s| Response::PartitionsAltered(vec![Ok(s)])),
            other => other,
        }
    }

    /// Runs a request; every proposal commits at once. Returns the reply.
    fn ask(&mut self, request: Request) -> Result<Response, ApiError> {
        let reply = self.next_reply;
        self.next_reply += 1;
        let mut outs = self.ctrl.step(self.now, Input::Request { reply, request });
        let mut answer = None;
        while let Some(o) = outs.pop() {
            match o {
                Output::Propose { id, data } => {
                    self.index += 1;
                    outs.extend(self.ctrl.step(
                        self.now,
                        Input::Committed(vec![CommittedEntry {
                            index: self.index,
                            data,
                            proposal: Some(id),
                        }]),
                    ));
                }
                Output::Reply { reply: r, result } if r == reply => answer = Some(result),
                Output::Reply { .. } => {}
                Output::Corrupt { reason, .. } => panic!("corrupt: {reason}"),
            }
        }
        answer.expect("a reply")
    }

    fn tick(&mut self, ms: u64) {
        self.now += ms;
        let mut outs = self.ctrl.step(self.now, Input::Tick);
        while let Some(o) = outs.pop() {
            if let Output::Propose { id, data } = o {
                self.index += 1;
                outs.extend(self.ctrl.step(
                    self.now,
                    Input::Committed(vec![CommittedEntry {
                        index: self.index,
                        data,
                        proposal: Some(id),
                    }]),
                ));
            }
        }
    }

    /// Registers and unfences broker `b` in rack `rack`; returns its epoch.
    fn broker(&mut self, b: i32, rack: Option<&str>) -> i64 {
        let Ok(Response::Registered { epoch }) = self.ask(Request::RegisterBroker {
            broker: NodeId(b),
            incarnation: [b as u8; 16],
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            rack: rack.map(String::from),
        }) else {
            panic!("registration failed")
        };
        assert_eq!(
            self.ask(Request::Heartbeat {
                broker: NodeId(b),
                epoch
            }),
            Ok(Response::Heartbeat { fenced: true })
        );
        assert!(!self.ctrl.image().broker(NodeId(b)).unwrap().fenced);
        epoch
    }

    /// Creates a one-partition topic on `replicas` (the first leads) with
    /// `configs`; panics if refused.
    fn create_on(&mut self, name: &str, replicas: &[i32], configs: &[(&str, &str)]) {
        self.ask(Request::CreateTopic {
            name: name.into(),
            partitions: -1,
            replication_factor: -1,
            assignment: Some(vec![replicas.iter().copied().map(NodeId).collect()]),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            validate_only: false,
        })
        .unwrap();
    }

    fn create(&mut self, name: &str, partitions: i32, rf: i16) -> Result<Response, ApiError> {
        self.ask(Request::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            assignment: None,
            configs: vec![],
            validate_only: false,
        })
    }
}

fn code(r: Result<Response, ApiError>) -> i16 {
    match r {
        Ok(_) => codes::NONE,
        Err(e) => e.code,
    }
}

#[test]
fn a_follower_answers_not_controller() {
    let mut ctrl = Controller::new(ControllerConfig::new(NodeId(2), 1));
    let out = ctrl.step(
        0,
        Input::Request {
            reply: 9,
            request: Request::DeleteTopic { name: "t".into() },
        },
    );
    assert!(
        matches!(&out[..], [Output::Reply { reply: 9, result: Err(e) }] if e.code == codes::NOT_CONTROLLER)
    );
}

#[test]
fn create_topics_validates_like_kafka() {
    let mut h = Harness::leader();
    assert_eq!(code(h.create("t", 1, 1)), codes::INVALID_REPLICATION_FACTOR);
    h.broker(1, None);
    h.broker(2, None);
    assert_eq!(code(h.create("t", 3, 3)), codes::INVALID_REPLICATION_FACTOR);
    assert_eq!(code(h.create("t", 0, 1)), codes::INVALID_PARTITIONS);
    assert_eq!(code(h.create("t", 1, 0)), codes::INVALID_REPLICATION_FACTOR);
    assert_eq!(
        code(h.create("bad name", 1, 1)),
        codes::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        code(h.create("__consumer_offsets", 1, 1)),
        codes::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(code(h.create("t", 3, 2)), codes::NONE);
    assert_eq!(code(h.create("t", 3, 2)), codes::TOPIC_ALREADY_EXISTS);
    let unknown_config = h.ask(Request::CreateTopic {
        name: "u".into(),
        partitions: 1,
        replication_factor: 1,
        assignment: None,
        configs: vec![("no.such.config".into(), "1".into())],
        validate_only: false,
    });
    assert_eq!(code(unknown_config), codes::INVALID_CONFIG);
    let both = h.ask(Request::CreateTopic {
        name: "u".into(),
        partitions: 1,
        replication_factor: -1,
        assignment: Some(vec![vec![NodeId(1)]]),
        configs: vec![],
        validate_only: false,
    });
    assert_eq!(code(both), codes::INVALID_REQUEST);
    let bad_assignment = h.ask(Request::CreateTopic {
        name: "u".into(),
        partitions: -1,
        replication_factor: -1,
        assignment: Some(vec![vec![NodeId(1), NodeId(1)]]),
        configs: vec![],
        validate_only: false,
    });
    assert_eq!(code(bad_assignment), codes::INVALID_REPLICA_ASSIGNMENT);
    let unknown_broker = h.ask(Request::CreateTopic {
        name: "u".into(),
        partitions: -1,
        replication_factor: -1,
        assignment: Some(vec![vec![NodeId(9)]]),
        configs: vec![],
        validate_only: false,
    });
    assert_eq!(code(unknown_broker), codes::INVALID_REPLICA_ASSIGNMENT);
    let given = h.ask(Request::CreateTopic {
        name: "u".into(),
        partitions: -1,
        replication_factor: -1,
        assignment: Some(vec![vec![NodeId(2)], vec![NodeId(1)]]),
        configs: vec![("retention.ms".into(), "1000".into())],
        validate_only: false,
    });
    assert_eq!(code(given), codes::NONE);
    let u = h.ctrl.image().topic("u").unwrap();
    assert_eq!(u.partitions[0].replicas, vec![NodeId(2)]);
    assert_eq!(u.partitions[0].leader, NodeId(2));
    assert_eq!(
        u.configs.get("retention.ms").map(String::as_str),
        Some("1000")
    );
}

#[test]
fn validate_only_proposes_nothing() {
    let mut h = Harness::leader();
    h.broker(1, None);
    let r = h.ask(Request::CreateTopic {
        name: "v".into(),
        partitions: 2,
        replication_factor: 1,
        assignment: None,
        configs: vec![],
        validate_only: true,
    });
    assert!(matches!(r, Ok(Response::TopicCreated { .. })));
    assert!(h.ctrl.image().topic("v").is_none());
}

#[test]
fn placement_balances_leaders_and_spreads_racks() {
    let mut h = Harness::leader();
    h.broker(1, Some("a"));
    h.broker(2, Some("a"));
    h.broker(3, Some("b"));
    h.create("t", 6, 2).unwrap();
    let t = h.ctrl.image().topic("t").unwrap();
    let mut leaders = [0; 4];
    for p in &t.partitions {
        leaders[p.leader.0 as usize] += 1;
        assert_eq!(p.replicas[0], p.leader);
        let racks: Vec<_> = p
            .replicas
            .iter()
            .map(|r| h.ctrl.image().broker(*r).unwrap().rack.clone())
            .collect();
        assert_ne!(
            racks[0], racks[1],
            "both replicas in one rack: {:?}",
            p.replicas
        );
    }
    assert_eq!(&leaders[1..], &[2, 2, 2]);
    // A later topic keeps the totals even.
    h.create("u", 3, 1).unwrap();
    let mut total = [0; 4];
    for t in h.ctrl.image().topics().values() {
        for p in &t.partitions {
            total[p.leader.0 as usize] += 1;
        }
    }
    assert_eq!(&total[1..], &[3, 3, 3]);
}

#[test]
fn create_partitions_delete_and_configs() {
    let mut h = Harness::leader();
    h.broker(1, None);
    h.create("t", 1, 1).unwrap();
    let grow = |h: &mut Harness, count| {
        h.ask(Request::CreatePartitions {
            name: "t".into(),
            count,
            assignment: None,
        })
    };
    assert_eq!(code(grow(&mut h, 1)), codes::INVALID_PARTITIONS);
    assert_eq!(code(grow(&mut h, 3)), codes::NONE);
    assert_eq!(h.ctrl.image().topic("t").unwrap().partitions.len(), 3);
    let alter = h.ask(Request::AlterConfigs {
        topic: "t".into(),
        changes: vec![("segment.ms".into(), Some("5".into()))],
    });
    assert_eq!(code(alter), codes::NONE);
    assert_eq!(
        h.ctrl
            .image()
            .topic("t")
            .unwrap()
            .configs
            .get("segment.ms")
            .map(String::as_str),
        Some("5")
    );
    let remove = h.ask(Request::AlterConfigs {
        topic: "t".into(),
        changes: vec![("segment.ms".into(), None)],
    });
    assert_eq!(code(remove), codes::NONE);
    assert!(h.ctrl.image().topic("t").unwrap().configs.is_empty());
    assert_eq!(
        code(h.ask(Request::DeleteTopic { name: "t".into() })),
        codes::NONE
    );
    assert!(h.ctrl.image().topic("t").is_none());
    assert_eq!(
        code(h.ask(Request::DeleteTopic { name: "t".into() })),
        codes::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(code(h.create("t", 1, 1)), codes::NONE);
}

#[test]
fn fencing_by_session_timeout_moves_leadership() {
    let mut h = Harness::leader();
    let e1 = h.broker(1, None);
    let e2 = h.broker(2, None);
    h.create("t", 2, 2).unwrap();
    let led_by_1 = |h: &Harness| {
        h.ctrl
            .image()
            .topic("t")
            .unwrap()
            .partitions
            .iter()
            .filter(|p| p.leader == NodeId(1))
            .count()
    };
    assert_eq!(led_by_1(&h), 1);
    // Broker 2 heartbeats; broker 1 goes quiet past the session timeout.
    for _ in 0..10 {
        h.tick(1_000);
        h.ask(Request::Heartbeat {
            broker: NodeId(2),
            epoch: e2,
        })
        .unwrap();
    }
    let b1 = h.ctrl.image().broker(NodeId(1)).unwrap();
    assert!(b1.fenced);
    assert_eq!(led_by_1(&h), 0);
    let moved = h
        .ctrl
        .image()
        .topic("t")
        .unwrap()
        .partitions
        .iter()
        .find(|p| p.replicas[0] == NodeId(1))
        .unwrap()
        .clone();
    assert_eq!(moved.leader, NodeId(2));
    assert_eq!(moved.leader_epoch, LeaderEpoch(1));
    assert_eq!(moved.partition_epoch, 1);
    // A stale epoch is refused; the current one unfences.
    assert_eq!(
        code(h.ask(Request::Heartbeat {
            broker: NodeId(1),
            epoch: e1 - 1
        })),
        codes::STALE_BROKER_EPOCH
    );
    assert_eq!(
        code(h.ask(Request::Heartbeat {
            broker: NodeId(9),
            epoch: 1
        })),
        codes::BROKER_ID_NOT_REGISTERED
    );
    h.ask(Request::Heartbeat {
        broker: NodeId(1),
        epoch: e1,
    })
    .unwrap();
    assert!(!h.ctrl.image().broker(NodeId(1)).unwrap().fenced);
}

#[test]
fn a_live_broker_id_cannot_be_taken_by_another_incarnation() {
    let mut h = Harness::leader();
    h.broker(1, None);
    let other = h.ask(Request::RegisterBroker {
        broker: NodeId(1),
        incarnation: [42; 16],
        endpoints: vec![],
        rack: None,
    });
    assert_eq!(code(other), codes::DUPLICATE_BROKER_REGISTRATION);
    // The same incarnation re-registers and gets a new, higher epoch.
    let before = h.ctrl.image().broker(NodeId(1)).unwrap().epoch;
    let again = h.ask(Request::RegisterBroker {
        broker: NodeId(1),
        incarnation: [1; 16],
        endpoints: vec![],
        rack: None,
    });
    assert!(matches!(again, Ok(Response::Registered { epoch }) if epoch > before));
}

#[test]
fn producer_id_blocks_are_consecutive_and_fenced_by_epoch() {
    let mut h = Harness::leader();
    let e1 = h.broker(1, None);
    let e2 = h.broker(2, None);
    let a = h
        .ask(Request::AllocateProducerIds {
            broker: NodeId(1),
            epoch: e1,
        })
        .unwrap();
    let b = h
        .ask(Request::AllocateProducerIds {
            broker: NodeId(2),
            epoch: e2,
        })
        .unwrap();
    let (Response::ProducerIds(a), Response::ProducerIds(b)) = (a, b) else {
        panic!()
    };
    assert_eq!((a.start, a.len), (0, 1000));
    assert_eq!((b.start, b.len), (1000, 1000));
    assert_eq!(
        code(h.ask(Request::AllocateProducerIds {
            broker: NodeId(1),
            epoch: e1 + 100
        })),
        codes::STALE_BROKER_EPOCH
    );
}

#[test]
fn a_block_that_does_not_start_at_the_next_id_is_refused_on_apply() {
    let mut image = MetadataImage::default();
    let reg = Record::RegisterBroker {
        broker: NodeId(1),
        incarnation: [0; 16],
        endpoints: vec![],
        rack: None,
    };
    image.apply(1, &[reg]).unwrap();
    let block = |start| Record::ProducerIds {
        broker: NodeId(1),
        epoch: 1,
        start,
        len: 10,
    };
    assert!(image.apply(2, &[block(0)]).is_ok());
    // A deposed leader's late proposal for the same range changes nothing.
    assert!(image.apply(3, &[block(0)]).is_err());
    assert_eq!(image.next_producer_id(), 10);
    assert_eq!(image.applied_index(), 3);
}

#[test]
fn losing_leadership_answers_what_is_pending() {
    let mut ctrl = Controller::new(ControllerConfig::new(NodeId(1), 3));
    ctrl.step(
        0,
        Input::Leadership {
            is_leader: true,
            term: 2,
        },
    );
    let out = ctrl.step(
        0,
        Input::Request {
            reply: 5,
            request: Request::RegisterBroker {
                broker: NodeId(1),
                incarnation: [1; 16],
                endpoints: vec![],
                rack: None,
            },
        },
    );
    assert!(matches!(&out[..], [Output::Propose { .. }]));
    let out = ctrl.step(
        0,
        Input::Leadership {
            is_leader: false,
            term: 3,
        },
    );
    assert!(
        matches!(&out[..], [Output::Reply { reply: 5, result: Err(e) }] if e.code == codes::NOT_CONTROLLER)
    );
}

#[test]
fn an_undecodable_entry_is_skipped_and_reported() {
    let mut ctrl = Controller::new(ControllerConfig::new(NodeId(1), 3));
    let out = ctrl.step(
        0,
        Input::Committed(vec![CommittedEntry {
            index: 1,
            data: vec![9, 9],
            proposal: None,
        }]),
    );
    assert!(matches!(&out[..], [Output::Corrupt { index: 1, .. }]));
    assert_eq!(ctrl.image().applied_index(), 1);
}

#[test]
fn the_offsets_topic_is_created_once_for_brokers_and_never_by_users() {
    let mut h = Harness::leader();
    for b in 1..=3 {
        h.broker(b, None);
    }
    // Users can neither create nor delete it.
    assert_eq!(
        code(h.create(OFFSETS_TOPIC, 3, 1)),
        codes::INVALID_TOPIC_EXCEPTION
    );
    let Ok(Response::TopicCreated { id, assignment }) = h.ask(Request::EnsureOffsetsTopic {
        partitions: 6,
        replication_factor: 1,
    }) else {
        panic!("not created")
    };
    // Placed like any topic: one replica each, spread over the brokers.
    assert_eq!(assignment.len(), 6);
    let mut leaders: Vec<i32> = assignment.iter().map(|r| r[0].0).collect();
    leaders.sort();
    assert_eq!(leaders, [1, 1, 2, 2, 3, 3]);
    // Asked again (another broker, a restart): the same topic, nothing new.
    let before = h.index;
    assert_eq!(
        h.ask(Request::EnsureOffsetsTopic {
            partitions: 6,
            replication_factor: 1,
        }),
        Ok(Response::TopicCreated { id, assignment })
    );
    assert_eq!(h.index, before, "nothing proposed");
    assert_eq!(
        code(h.ask(Request::DeleteTopic {
            name: OFFSETS_TOPIC.into()
        })),
        codes::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        code(h.ask(Request::EnsureOffsetsTopic {
            partitions: 0,
            replication_factor: 1,
        })),
        codes::NONE,
        "it exists: the count asked no longer matters"
    );
}

#[test]
fn the_offsets_topic_waits_for_enough_brokers_for_its_replication_factor() {
    let mut h = Harness::leader();
    for b in 1..=2 {
        h.broker(b, None);
    }
    let ensure = Request::EnsureOffsetsTopic {
        partitions: 6,
        replication_factor: 3,
    };
    assert_eq!(
        code(h.ask(ensure.clone())),
        codes::INVALID_REPLICATION_FACTOR,
        "two live brokers cannot hold three replicas"
    );
    h.broker(3, None);
    let Ok(Response::TopicCreated { assignment, .. }) = h.ask(ensure) else {
        panic!("not created with three brokers")
    };
    // Every partition on all three brokers, leaders spread.
    assert!(assignment.iter().all(|r| {
        let mut r: Vec<i32> = r.iter().map(|n| n.0).collect();
        r.sort();
        r == [1, 2, 3]
    }));
    let mut leaders: Vec<i32> = assignment.iter().map(|r| r[0].0).collect();
    leaders.sort();
    assert_eq!(leaders, [1, 1, 2, 2, 3, 3]);
}

fn partition_of(h: &Harness, topic: &str) -> (TopicId, PartitionInfo) {
    let t = h.ctrl.image().topic(topic).unwrap();
    (t.id, t.partitions[0].clone())
}

#[test]
fn alter_partitions_commits_every_valid_change_in_one_entry_and_answers_each() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    h.create("t", 6, 3).unwrap();
    let t = h.ctrl.image().topic("t").unwrap().clone();
    let leader = t.partitions[0].leader;
    let led: Vec<usize> = (0..t.partitions.len())
        .filter(|&i| t.partitions[i].leader == leader)
        .collect();
    let other = (0..t.partitions.len())
        .find(|&i| t.partitions[i].leader != leader)
        .expect("three brokers lead the six partitions");
    assert!(led.len() >= 2, "placement spreads leadership: {led:?}");
    let shrink = |i: usize, partition_epoch: i32| {
        let p = &t.partitions[i];
        IsrChange {
            topic_id: t.id,
            partition: i as i32,
            leader_epoch: p.leader_epoch,
            partition_epoch,
            isr: p
                .isr
                .iter()
                .copied()
                .filter(|r| *r == leader || *r == p.replicas[0])
                .take(2)
                .collect(),
        }
    };
    let before = h.index;
    let answer = h.ask(Request::AlterPartitions {
        broker: leader,
        broker_epoch: epochs[(leader.0 - 1) as usize],
        changes: vec![
            shrink(led[0], t.partitions[led[0]].partition_epoch),
            shrink(led[1], t.partitions[led[1]].partition_epoch),
            // Stale partition epoch, the same partition again, and one
            // another broker leads: each refused alone.
            shrink(led[0], t.partitions[led[0]].partition_epoch),
            {
                let mut c = shrink(other, t.partitions[other].partition_epoch);
                c.isr = t.partitions[other].isr.clone();
                c
            },
        ],
    });
    let Ok(Response::PartitionsAltered(results)) = answer else {
        panic!("{answer:?}");
    };
    let codes_of: Vec<i16> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.code, |_| codes::NONE))
        .collect();
    assert_eq!(
        codes_of,
        vec![
            codes::NONE,
            codes::NONE,
            codes::INVALID_REQUEST,
            codes::NOT_LEADER_OR_FOLLOWER
        ]
    );
    assert_eq!(h.index, before + 1, "both changes in one committed entry");
    for (k, &i) in led[..2].iter().enumerate() {
        let now = &h.ctrl.image().topic("t").unwrap().partitions[i];
        let Ok(state) = &results[k] else {
            unreachable!()
        };
        assert_eq!(now.isr, state.isr);
        assert_eq!(now.partition_epoch, t.partitions[i].partition_epoch + 1);
        assert_eq!(state.partition_epoch, now.partition_epoch);
    }
    // A stale broker epoch refuses the whole request.
    assert_eq!(
        code(h.ask(Request::AlterPartitions {
            broker: leader,
            broker_epoch: epochs[(leader.0 - 1) as usize] - 1,
            changes: vec![shrink(led[0], t.partitions[led[0]].partition_epoch + 1)],
        })),
        codes::STALE_BROKER_EPOCH
    );
}

#[test]
fn alter_partition_changes_the_isr_only_for_the_current_leader_and_epochs() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    h.create("t", 1, 3).unwrap();
    let (id, p) = partition_of(&h, "t");
    let leader = p.leader;
    let epoch_of = |b: NodeId| epochs[(b.0 - 1) as usize];
    let follower = *p.replicas.iter().find(|r| **r != leader).unwrap();
    let alter = |broker: NodeId, le: LeaderEpoch, pe: i32, isr: Vec<NodeId>| AlterPartition {
        broker,
        broker_epoch: epoch_of(broker),
        topic_id: id,
        partition: 0,
        leader_epoch: le,
        partition_epoch: pe,
        isr,
    };
    let shrunk: Vec<NodeId> = p.isr.iter().copied().filter(|r| *r != follower).collect();

    // Refusals, each with Kafka's code; none changes the image.
    assert_eq!(
        code(h.alter_partition(alter(
            follower,
            p.leader_epoch,
            p.partition_epoch,
            shrunk.clone()
        ))),
        codes::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        code(h.alter_partition(alter(
            leader,
            LeaderEpoch(p.leader_epoch.0 + 1),
            p.partition_epoch,
            shrunk.clone()
        ))),
        codes::FENCED_LEADER_EPOCH
    );
    assert_eq!(
        code(h.alter_partition(alter(
            leader,
            p.leader_epoch,
            p.partition_epoch + 3,
            shrunk.clone()
        ))),
        codes::INVALID_UPDATE_VERSION
    );
    assert_eq!(
        code(h.alter_partition(alter(
            leader,
            p.leader_epoch,
            p.partition_epoch,
            vec![follower]
        ))),
        codes::INVALID_REQUEST,
        "the leader must stay in its ISR"
    );
    assert_eq!(
        code(h.alter_partition(AlterPartition {
            broker: leader,
            broker_epoch: epoch_of(leader) - 1,
            topic_id: id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: shrunk.clone(),
        })),
        codes::STALE_BROKER_EPOCH
    );
    assert_eq!(partition_of(&h, "t").1, p);

    // The leader shrinks its ISR: committed, the partition epoch bumped.
    assert_eq!(
        h.alter_partition(alter(
            leader,
            p.leader_epoch,
            p.partition_epoch,
            shrunk.clone()
        )),
        Ok(Response::PartitionsAltered(vec![Ok(PartitionState {
            isr: shrunk.clone(),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch + 1,
        })]))
    );
    let (_, after) = partition_of(&h, "t");
    assert_eq!(after.isr, shrunk);
    assert_eq!(after.partition_epoch, p.partition_epoch + 1);
    assert_eq!(after.leader, leader);
    // The old partition epoch is stale now.
    assert_eq!(
        code(h.alter_partition(alter(
            leader,
            p.leader_epoch,
            p.partition_epoch,
            p.isr.clone()
        ))),
        codes::INVALID_UPDATE_VERSION
    );

    // A fenced broker cannot join the ISR: every broker but the follower
    // heartbeats past the session timeout.
    for _ in 0..10 {
        h.tick(1_000);
        for b in [1, 2, 3].map(NodeId).into_iter().filter(|b| *b != follower) {
            h.ask(Request::Heartbeat {
                broker: b,
                epoch: epoch_of(b),
            })
            .unwrap();
        }
    }
    assert!(h.ctrl.image().broker(follower).unwrap().fenced);
    let (_, now) = partition_of(&h, "t");
    assert_eq!(now.leader, leader, "the leader kept its partition");
    assert_eq!(
        code(h.alter_partition(alter(
            leader,
            now.leader_epoch,
            now.partition_epoch,
            p.isr.clone()
        ))),
        codes::INELIGIBLE_REPLICA
    );
}

#[test]
fn a_fenced_broker_leaves_every_isr_but_the_last_member_stays() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    h.create("t", 1, 3).unwrap();
    let (_, p) = partition_of(&h, "t");
    let leader = p.leader;
    let mut others = p.replicas.iter().copied().filter(|r| *r != leader);
    let (f1, f2) = (others.next().unwrap(), others.next().unwrap());
    assert_eq!(p.isr.len(), 3);
    // Keep `alive` heartbeating while the others go quiet past the session
    // timeout, so only those are fenced.
    let quiet = |h: &mut Harness, alive: &[NodeId]| {
        for _ in 0..10 {
            h.tick(1_000);
            for b in alive {
                h.ask(Request::Heartbeat {
                    broker: *b,
                    epoch: epochs[(b.0 - 1) as usize],
                })
                .unwrap();
            }
        }
    };
    // A follower goes: it leaves the ISR; the leader and its epoch stay.
    quiet(&mut h, &[leader, f2]);
    let (_, q) = partition_of(&h, "t");
    assert_eq!(q.leader, leader);
    assert_eq!(q.leader_epoch, p.leader_epoch);
    assert!(!q.isr.contains(&f1) && q.isr.len() == 2, "{:?}", q.isr);
    assert!(q.partition_epoch > p.partition_epoch);
    // The leader goes: the other in-sync follower leads, in a new epoch.
    quiet(&mut h, &[f2]);
    let (_, r) = partition_of(&h, "t");
    assert_eq!(r.leader, f2);
    assert_eq!(r.leader_epoch, LeaderEpoch(p.leader_epoch.0 + 1));
    assert_eq!(r.isr, vec![f2]);
    // The last in-sync replica goes: it stays in the ISR, and the
    // partition has no leader rather than one that may lack committed data.
    quiet(&mut h, &[]);
    let (_, s) = partition_of(&h, "t");
    assert_eq!(s.isr, vec![f2]);
    assert!(s.leader.0 < 0, "{:?}", s.leader);
    // It comes back: it leads again. The others (out of sync) do not.
    h.ask(Request::Heartbeat {
        broker: f1,
        epoch: epochs[(f1.0 - 1) as usize],
    })
    .unwrap();
    assert!(partition_of(&h, "t").1.leader.0 < 0);
    h.ask(Request::Heartbeat {
        broker: f2,
        epoch: epochs[(f2.0 - 1) as usize],
    })
    .unwrap();
    assert_eq!(partition_of(&h, "t").1.leader, f2);
}

/// Keeps `alive` heartbeating for `ms` while every other broker goes quiet.
fn quiet_for(h: &mut Harness, epochs: &[i64], alive: &[NodeId], ms: u64) {
    for _ in 0..ms / 1_000 {
        h.tick(1_000);
        for b in alive {
            h.ask(Request::Heartbeat {
                broker: *b,
                epoch: epochs[(b.0 - 1) as usize],
            })
            .unwrap();
        }
    }
}

fn elect(h: &mut Harness, election: Election, partitions: Option<Vec<(&str, i32)>>) -> Vec<i16> {
    let partitions = partitions.map(|l| l.into_iter().map(TopicPartition::from).collect());
    match h.ask(Request::ElectLeaders {
        election,
        partitions,
    }) {
        Ok(Response::LeadersElected { results }) => results
            .iter()
            .map(|r| r.error.as_ref().map_or(codes::NONE, |e| e.code))
            .collect(),
        other => panic!("ElectLeaders answered {other:?}"),
    }
}

#[test]
fn elect_leaders_gives_a_partition_back_to_its_preferred_replica() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    h.create("t", 1, 3).unwrap();
    let (_, p) = partition_of(&h, "t");
    let preferred = p.replicas[0];
    assert_eq!(p.leader, preferred);
    assert_eq!(
        elect(
            &mut h,
            Election::Preferred,
            Some(vec![("t", 0), ("t", 7), ("nope", 0)])
        ),
        vec![
            codes::ELECTION_NOT_NEEDED,
            codes::UNKNOWN_TOPIC_OR_PARTITION,
            codes::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    // The preferred replica goes quiet: another leads, and the preferred
    // one cannot be elected while it is fenced and out of the ISR.
    let others: Vec<NodeId> = p.replicas[1..].to_vec();
    quiet_for(&mut h, &epochs, &others, 10_000);
    let (_, q) = partition_of(&h, "t");
    assert_ne!(q.leader, preferred);
    assert_eq!(
        elect(&mut h, Election::Preferred, Some(vec![("t", 0)])),
        vec![codes::PREFERRED_LEADER_NOT_AVAILABLE]
    );
    // Back and in the ISR again (its leader's AlterPartition): elected, in
    // a new leader epoch, with the ISR as it was.
    h.ask(Request::Heartbeat {
        broker: preferred,
        epoch: epochs[(preferred.0 - 1) as usize],
    })
    .unwrap();
    let (id, q) = partition_of(&h, "t");
    let mut isr = q.isr.clone();
    isr.push(preferred);
    let broker_epoch = epochs[(q.leader.0 - 1) as usize];
    h.alter_partition(AlterPartition {
        broker: q.leader,
        broker_epoch,
        topic_id: id,
        partition: 0,
        leader_epoch: q.leader_epoch,
        partition_epoch: q.partition_epoch,
        isr: isr.clone(),
    })
    .unwrap();
    // Every partition: only those that needed an election are answered.
    assert_eq!(elect(&mut h, Election::Preferred, None), vec![codes::NONE]);
    let (_, r) = partition_of(&h, "t");
    assert_eq!(r.leader, preferred);
    assert_eq!(r.leader_epoch, LeaderEpoch(q.leader_epoch.0 + 1));
    assert_eq!(r.isr, isr);
    assert_eq!(elect(&mut h, Election::Preferred, None), Vec::<i16>::new());
}

#[test]
fn leadership_goes_back_to_preferred_replicas_on_its_own() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    h.create("t", 1, 3).unwrap();
    let (id, p) = partition_of(&h, "t");
    let preferred = p.replicas[0];
    let others: Vec<NodeId> = p.replicas[1..].to_vec();
    quiet_for(&mut h, &epochs, &others, 10_000);
    h.ask(Request::Heartbeat {
        broker: preferred,
        epoch: epochs[(preferred.0 - 1) as usize],
    })
    .unwrap();
    let (_, q) = partition_of(&h, "t");
    let mut isr = q.isr.clone();
    isr.push(preferred);
    h.alter_partition(AlterPartition {
        broker: q.leader,
        broker_epoch: epochs[(q.leader.0 - 1) as usize],
        topic_id: id,
        partition: 0,
        leader_epoch: q.leader_epoch,
        partition_epoch: q.partition_epoch,
        isr,
    })
    .unwrap();
    assert_ne!(partition_of(&h, "t").1.leader, preferred);
    // Within one check interval (300 s by default), it leads again.
    quiet_for(&mut h, &epochs, &p.replicas, 301_000);
    assert_eq!(partition_of(&h, "t").1.leader, preferred);
}

#[test]
fn without_a_live_in_sync_replica_only_an_unclean_election_elects() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    for (name, unclean) in [("clean", false), ("unclean", true)] {
        let configs: &[(&str, &str)] = if unclean {
            &[("unclean.leader.election.enable", "true")]
        } else {
            &[]
        };
        h.create_on(name, &[1, 2, 3], configs);
    }
    // 2 and 3 go, then 1: 1 is the last in-sync replica of both.
    quiet_for(&mut h, &epochs, &[NodeId(1)], 10_000);
    quiet_for(&mut h, &epochs, &[], 10_000);
    for name in ["clean", "unclean"] {
        let (_, p) = partition_of(&h, name);
        assert_eq!(
            (p.leader.0 < 0, p.isr.clone()),
            (true, vec![NodeId(1)]),
            "{name}"
        );
    }
    // 3 comes back: the topic that allows it elects 3 at once, with an
    // ISR of 3 alone; the other waits for 1.
    h.ask(Request::Heartbeat {
        broker: NodeId(3),
        epoch: epochs[2],
    })
    .unwrap();
    let (_, u) = partition_of(&h, "unclean");
    assert_eq!((u.leader, u.isr.clone()), (NodeId(3), vec![NodeId(3)]));
    let (_, c) = partition_of(&h, "clean");
    assert!(c.leader.0 < 0);
    // An operator's unclean ElectLeaders does the same for it.
    assert_eq!(
        elect(
            &mut h,
            Election::Unclean,
            Some(vec![("clean", 0), ("unclean", 0)])
        ),
        vec![codes::NONE, codes::ELECTION_NOT_NEEDED]
    );
    let (_, c2) = partition_of(&h, "clean");
    assert_eq!((c2.leader, c2.isr.clone()), (NodeId(3), vec![NodeId(3)]));
    assert_eq!(c2.leader_epoch, LeaderEpoch(c.leader_epoch.0 + 1));
}

#[test]
fn allowing_unclean_elections_elects_a_leader_for_a_partition_without_one_at_once() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=2).map(|b| h.broker(b, None)).collect();
    h.create_on("t", &[1, 2], &[]);
    // 2 goes, then 1, the last in-sync replica; 2 comes back.
    quiet_for(&mut h, &epochs, &[NodeId(1)], 10_000);
    quiet_for(&mut h, &epochs, &[NodeId(2)], 10_000);
    let (_, p) = partition_of(&h, "t");
    assert!(p.leader.0 < 0 && p.isr == vec![NodeId(1)], "{p:?}");
    h.ask(Request::AlterConfigs {
        topic: "t".into(),
        changes: vec![("unclean.leader.election.enable".into(), Some("true".into()))],
    })
    .unwrap();
    let (_, q) = partition_of(&h, "t");
    assert_eq!((q.leader, q.isr), (NodeId(2), vec![NodeId(2)]));
}

#[test]
fn a_replica_that_left_an_isr_below_min_insync_replicas_may_lead_when_the_isr_is_gone() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    let (one, two, three) = (NodeId(1), NodeId(2), NodeId(3));
    h.create_on("t", &[1, 2, 3], &[("min.insync.replicas", "2")]);
    // 3 goes: the ISR {1, 2} is still large enough to advance the high
    // watermark past what 3 holds, so 3 is not eligible.
    quiet_for(&mut h, &epochs, &[one, two], 10_000);
    let (_, p) = partition_of(&h, "t");
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![one, two], vec![]));
    // 2 goes: the ISR {1} is too small for the high watermark to move, so
    // 2 holds everything committed and is eligible.
    quiet_for(&mut h, &epochs, &[one], 10_000);
    let (_, p) = partition_of(&h, "t");
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![one], vec![two]));
    // 1, the last member, goes: no leader.
    quiet_for(&mut h, &epochs, &[], 10_000);
    let (_, p) = partition_of(&h, "t");
    assert!(p.leader.0 < 0, "{p:?}");
    // 3 comes back: not eligible, still no leader.
    h.ask(Request::Heartbeat {
        broker: three,
        epoch: epochs[2],
    })
    .unwrap();
    assert!(partition_of(&h, "t").1.leader.0 < 0);
    // 2 comes back: it leads at once, an ISR of itself, in a new epoch;
    // 1, the member it replaces, is eligible in its place.
    h.ask(Request::Heartbeat {
        broker: two,
        epoch: epochs[1],
    })
    .unwrap();
    let (id, q) = partition_of(&h, "t");
    assert_eq!(
        (q.leader, q.isr.clone(), q.elr.clone()),
        (two, vec![two], vec![one])
    );
    assert_eq!(q.leader_epoch, LeaderEpoch(p.leader_epoch.0 + 1));
    // The snapshot keeps the list.
    let image = h.ctrl.image().clone();
    let back =
        corelog_controller::MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap();
    assert_eq!(back, image);
    // 3 catches up and joins: the ISR {2, 3} is large enough again, and
    // nothing outside it is eligible any more.
    h.alter_partition(AlterPartition {
        broker: two,
        broker_epoch: epochs[1],
        topic_id: id,
        partition: 0,
        leader_epoch: q.leader_epoch,
        partition_epoch: q.partition_epoch,
        isr: vec![two, three],
    })
    .unwrap();
    let (_, r) = partition_of(&h, "t");
    assert_eq!((r.isr.clone(), r.elr.clone()), (vec![two, three], vec![]));
}

#[test]
fn lowering_min_insync_replicas_to_the_isr_size_makes_no_replica_eligible() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=3).map(|b| h.broker(b, None)).collect();
    let (one, two, three) = (NodeId(1), NodeId(2), NodeId(3));
    h.create_on("t", &[1, 2, 3], &[("min.insync.replicas", "3")]);
    quiet_for(&mut h, &epochs, &[one, two], 10_000);
    let (_, p) = partition_of(&h, "t");
    assert_eq!(
        (p.isr.clone(), p.elr.clone()),
        (vec![one, two], vec![three])
    );
    // At 2 the ISR {1, 2} may advance the high watermark past 3.
    h.ask(Request::AlterConfigs {
        topic: "t".into(),
        changes: vec![("min.insync.replicas".into(), Some("2".into()))],
    })
    .unwrap();
    assert_eq!(partition_of(&h, "t").1.elr, Vec::<NodeId>::new());
    // 1 and 2 go, 3 comes back: 3 may not lead.
    quiet_for(&mut h, &epochs, &[], 10_000);
    h.ask(Request::Heartbeat {
        broker: three,
        epoch: epochs[2],
    })
    .unwrap();
    assert!(partition_of(&h, "t").1.leader.0 < 0);
}

fn reassign(h: &mut Harness, topic: &str, target: Option<&[i32]>) -> Vec<i16> {
    let partitions = vec![(
        TopicPartition::new(topic, 0),
        target.map(|t| t.iter().copied().map(NodeId).collect()),
    )];
    match h.ask(Request::AlterReassignments { partitions }) {
        Ok(Response::ReassignmentsAltered { results }) => results
            .iter()
            .map(|r| r.error.as_ref().map_or(codes::NONE, |e| e.code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn in_progress(h: &mut Harness) -> Vec<(Vec<i32>, Vec<i32>, Vec<i32>)> {
    let ids = |l: &[NodeId]| l.iter().map(|n| n.0).collect::<Vec<_>>();
    match h.ask(Request::ListReassignments { partitions: None }) {
        Ok(Response::Reassignments(list)) => list
            .iter()
            .map(|r| (ids(&r.replicas), ids(&r.adding), ids(&r.removing)))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reassignment_adds_replicas_then_removes_the_old_ones_once_the_new_are_in_sync() {
    let mut h = Harness::leader();
    let epochs: Vec<i64> = (1..=4).map(|b| h.broker(b, None)).collect();
    let n = NodeId;
    h.create_on("t", &[1, 2], &[]);
    let (id, before) = partition_of(&h, "t");
    // Move {1, 2} to {3, 4}: the new replicas join at once, the old stay
    // (and 1 leads) until 3 and 4 are in sync; each step a new epoch.
    assert_eq!(reassign(&mut h, "t", Some(&[3, 4])), [codes::NONE]);
    let (_, p) = partition_of(&h, "t");
    assert_eq!(p.replicas, [n(3), n(4), n(1), n(2)]);
    assert_eq!(
        (p.adding.clone(), p.removing.clone()),
        (vec![n(3), n(4)], vec![n(1), n(2)])
    );
    assert_eq!((p.leader, p.isr.clone()), (n(1), vec![n(1), n(2)]));
    assert_eq!(p.leader_epoch.0, before.leader_epoch.0 + 1);
    assert_eq!(
        in_progress(&mut h),
        [(vec![3, 4, 1, 2], vec![3, 4], vec![1, 2])]
    );
    // The snapshot keeps it.
    let image = h.ctrl.image().clone();
    let back =
        corelog_controller::MetadataImage::decode_snapshot(&image.encode_snapshot()).unwrap();
    assert_eq!(back, image);
    // 3 catches up: not done while 4 is not in sync.
    let alter = |h: &mut Harness, isr: &[i32]| {
        let (_, p) = partition_of(h, "t");
        h.alter_partition(AlterPartition {
            broker: p.leader,
            broker_epoch: epochs[p.leader.0 as usize - 1],
            topic_id: id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: isr.iter().copied().map(NodeId).collect(),
        })
        .unwrap();
    };
    alter(&mut h, &[1, 2, 3]);
    assert!(partition_of(&h, "t").1.reassigning());
    // 4 too: the controller completes it at once. 1 and 2 go; 3, the
    // first target replica in sync, leads in a new epoch.
    alter(&mut h, &[1, 2, 3, 4]);
    let (_, q) = partition_of(&h, "t");
    assert_eq!(
        (q.replicas.clone(), q.isr.clone(), q.leader),
        (vec![n(3), n(4)], vec![n(3), n(4)], n(3))
    );
    assert!(!q.reassigning());
    assert!(q.leader_epoch.0 > p.leader_epoch.0);
    assert!(in_progress(&mut h).is_empty());
}

#[test]
fn a_reassignment_is_cancelled_or_replaced_from_the_replicas_before_it() {
    let mut h = Harness::leader();
    for b in 1..=4 {
        h.broker(b, None);
    }
    let n = NodeId;
    h.create_on("t", &[1, 2], &[]);
    assert_eq!(
        reassign(&mut h, "t", None),
        [codes::NO_REASSIGNMENT_IN_PROGRESS]
    );
    assert_eq!(reassign(&mut h, "t", Some(&[1, 3])), [codes::NONE]);
    assert_eq!(partition_of(&h, "t").1.replicas, [n(1), n(3), n(2)]);
    // Replaced: 3 is no longer added, 4 is; 2 still goes.
    assert_eq!(reassign(&mut h, "t", Some(&[1, 4])), [codes::NONE]);
    let (_, p) = partition_of(&h, "t");
    assert_eq!(p.replicas, [n(1), n(4), n(2)]);
    assert_eq!(
        (p.adding.clone(), p.removing.clone()),
        (vec![n(4)], vec![n(2)])
    );
    // Cancelled: back to {1, 2}, nothing in progress.
    assert_eq!(reassign(&mut h, "t", None), [codes::NONE]);
    let (_, q) = partition_of(&h, "t");
    assert_eq!(
        (q.replicas.clone(), q.reassigning()),
        (vec![n(1), n(2)], false)
    );
    assert_eq!(q.leader, n(1));
    // Bad targets are refused, and an unknown partition is named.
    assert_eq!(
        reassign(&mut h, "t", Some(&[1, 1])),
        [codes::INVALID_REPLICA_ASSIGNMENT]
    );
    assert_eq!(
        reassign(&mut h, "t", Some(&[1, 9])),
        [codes::INVALID_REPLICA_ASSIGNMENT]
    );
    assert_eq!(
        reassign(&mut h, "t", Some(&[])),
        [codes::INVALID_REPLICA_ASSIGNMENT]
    );
    assert_eq!(
        reassign(&mut h, "nope", Some(&[1])),
        [codes::UNKNOWN_TOPIC_OR_PARTITION]
    );
    // The same replicas: nothing to do, no error, no new epoch.
    let epoch = partition_of(&h, "t").1.leader_epoch;
    assert_eq!(reassign(&mut h, "t", Some(&[1, 2])), [codes::NONE]);
    assert_eq!(partition_of(&h, "t").1.leader_epoch, epoch);
    // Shrinking needs nobody to catch up: done at once.
    assert_eq!(reassign(&mut h, "t", Some(&[2])), [codes::NONE]);
    let (_, r) = partition_of(&h, "t");
    assert_eq!(
        (r.replicas.clone(), r.leader, r.reassigning()),
        (vec![n(2)], n(2), false)
    );
}
