//! The driver's contract on a small, fault-free cluster: persistence
//! before answers, commit and apply, proposal matching, refusals, restart.
//! (The seeded simulation with faults is broker/controller/tests/sim.rs.)

use std::collections::VecDeque;

use bytes::Bytes;
use corelog_model::NodeId;
use corelog_quorum::*;

#[derive(Default)]
struct Disk {
    hs: HardState,
    entries: Vec<LogEntry>,
}

/// A persist handed out and not yet done.
type Write = (PersistId, Vec<LogEntry>, Option<HardState>);

struct Cluster {
    nodes: Vec<Quorum>,
    disks: Vec<Disk>,
    /// Persists handed out, not yet done, per node.
    io: Vec<VecDeque<Write>>,
    net: VecDeque<(usize, Vec<u8>)>,
    applied: Vec<Vec<Committed>>,
    now: u64,
}

fn voters(n: i32) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

impl Cluster {
    fn new(n: i32) -> Cluster {
        let nodes = (1..=n)
            .map(|i| {
                Quorum::start(
                    QuorumConfig::new(NodeId(i), voters(n), 42),
                    Durable::default(),
                )
                .unwrap()
            })
            .collect();
        Cluster {
            nodes,
            disks: (0..n).map(|_| Disk::default()).collect(),
            io: (0..n).map(|_| VecDeque::new()).collect(),
            net: VecDeque::new(),
            applied: (0..n).map(|_| Vec::new()).collect(),
            now: 0,
        }
    }

    fn handle(&mut self, i: usize, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Send { to, frame } => self.net.push_back(((to.0 - 1) as usize, frame)),
                Output::Persist {
                    id,
                    entries,
                    hard_state,
                    snapshot,
                } => {
                    assert!(snapshot.is_none());
                    self.io[i].push_back((id, entries, hard_state));
                }
                Output::Apply(c) => self.applied[i].extend(c),
                Output::Refused { reason } => panic!("refused: {reason}"),
                _ => {}
            }
        }
    }

    fn step(&mut self, i: usize, input: Input) {
        let outs = self.nodes[i].step(self.now, input);
        self.handle(i, outs);
    }

    fn sync(&mut self, i: usize) {
        let mut last = None;
        while let Some((id, entries, hs)) = self.io[i].pop_front() {
            for e in entries {
                let pos = (e.index - 1) as usize;
                self.disks[i].entries.truncate(pos);
                self.disks[i].entries.push(e);
            }
            if let Some(hs) = hs {
                self.disks[i].hs = hs;
            }
            last = Some(id);
        }
        if let Some(id) = last {
            self.step(i, Input::Persisted(id));
        }
    }

    /// Delivers messages and syncs disks until quiet.
    fn settle(&mut self) {
        for _ in 0..1000 {
            if let Some((to, frame)) = self.net.pop_front() {
                self.step(to, Input::Received(Bytes::from(frame)));
                continue;
            }
            let busy: Vec<usize> = (0..self.nodes.len())
                .filter(|i| !self.io[*i].is_empty())
                .collect();
            if busy.is_empty() {
                return;
            }
            for i in busy {
                self.sync(i);
            }
        }
        panic!("did not settle");
    }

    fn elect(&mut self) -> usize {
        for _ in 0..100 {
            self.now += 100;
            for i in 0..self.nodes.len() {
                self.step(i, Input::Tick);
            }
            self.settle();
            if let Some(l) = self.nodes.iter().position(|n| n.is_leader()) {
                return l;
            }
        }
        panic!("no leader");
    }
}

#[test]
fn a_proposal_commits_everywhere_and_answers_its_proposer() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    c.step(
        l,
        Input::Propose {
            id: 7,
            data: Bytes::from_static(b"rec"),
        },
    );
    c.settle();
    // Heartbeats carry the commit index to the followers.
    c.now += 300;
    for i in 0..3 {
        c.step(i, Input::Tick);
    }
    c.settle();
    for i in 0..3 {
        let rec = c.applied[i]
            .iter()
            .find(|e| e.data == Bytes::from_static(b"rec"))
            .expect("applied");
        assert_eq!(rec.proposal, if i == l { Some(7) } else { None });
        assert_eq!(c.nodes[i].applied(), rec.index);
    }
}

#[test]
fn a_follower_answers_an_append_only_after_it_is_persisted() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    c.step(
        l,
        Input::Propose {
            id: 1,
            data: Bytes::from_static(b"x"),
        },
    );
    let f = (l + 1) % 3;
    // Deliver only the append to the follower, nothing else.
    let k = c
        .net
        .iter()
        .position(|(to, _)| *to == f)
        .expect("an append to the follower");
    let (_, frame) = c.net.remove(k).unwrap();
    c.net.clear();
    let outs = c.nodes[f].step(c.now, Input::Received(Bytes::from(frame)));
    let persist = outs.iter().find_map(|o| match o {
        Output::Persist { id, entries, .. } if !entries.is_empty() => Some(*id),
        _ => None,
    });
    let id = persist.expect("the entries go to disk first");
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Send { .. })),
        "answered before persisting: {outs:?}"
    );
    let outs = c.nodes[f].step(c.now, Input::Persisted(id));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Send { to, .. } if *to == NodeId(l as i32 + 1))));
}

#[test]
fn a_follower_drops_proposals_and_names_the_leader() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    let f = (l + 1) % 3;
    let outs = c.nodes[f].step(
        c.now,
        Input::Propose {
            id: 3,
            data: Bytes::new(),
        },
    );
    assert_eq!(
        outs,
        vec![Output::ProposalDropped {
            id: 3,
            leader: Some(NodeId(l as i32 + 1))
        }]
    );
}

#[test]
fn bad_frames_are_refused_before_stepping() {
    let mut q = Quorum::start(
        QuorumConfig::new(NodeId(1), voters(3), 1),
        Durable::default(),
    )
    .unwrap();
    let refused = |outs: Vec<Output>| matches!(&outs[..], [Output::Refused { .. }]);
    assert!(refused(
        q.step(0, Input::Received(Bytes::from_static(b"\x01garbage")))
    ));
    let mut m = raft::eraftpb::Message {
        msg_type: raft::eraftpb::MessageType::MsgHeartbeat,
        to: 2,
        from: 3,
        term: 5,
        ..Default::default()
    };
    assert!(refused(q.step(
        0,
        Input::Received(Bytes::from(codec::encode_message(&m)))
    )));
    m.to = 1;
    m.from = 9;
    assert!(refused(q.step(
        0,
        Input::Received(Bytes::from(codec::encode_message(&m)))
    )));
    assert_eq!(q.term(), 0);
}

#[test]
fn a_node_outside_the_voters_does_not_start() {
    assert!(Quorum::start(
        QuorumConfig::new(NodeId(4), voters(3), 1),
        Durable::default()
    )
    .is_err());
}

#[test]
fn a_restarted_node_reapplies_what_its_disk_holds() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    for id in 0..5 {
        c.step(
            l,
            Input::Propose {
                id,
                data: Bytes::from(vec![id as u8 + 1]),
            },
        );
    }
    c.settle();
    c.now += 300;
    for i in 0..3 {
        c.step(i, Input::Tick);
    }
    c.settle();
    let f = (l + 1) % 3;
    let disk = &c.disks[f];
    let durable = Durable {
        hard_state: disk.hs,
        snapshot: None,
        entries: disk.entries.clone(),
    };
    let mut q = Quorum::start(
        QuorumConfig::new(NodeId(f as i32 + 1), voters(3), 9),
        durable,
    )
    .unwrap();
    let outs = q.step(c.now, Input::Tick);
    let applied: Vec<Bytes> = outs
        .into_iter()
        .filter_map(|o| match o {
            Output::Apply(c) => Some(c),
            _ => None,
        })
        .flatten()
        .map(|c| c.data)
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(
        applied,
        (1..=5u8).map(|b| Bytes::from(vec![b])).collect::<Vec<_>>()
    );
}

#[test]
fn a_log_with_a_gap_does_not_start() {
    let entry = |index| LogEntry {
        index,
        term: 1,
        kind: EntryKind::Normal,
        data: Bytes::new(),
        context: Bytes::new(),
    };
    let durable = Durable {
        hard_state: HardState {
            term: 1,
            vote: 1,
            commit: 0,
        },
        snapshot: None,
        entries: vec![entry(1), entry(3)],
    };
    assert!(Quorum::start(QuorumConfig::new(NodeId(1), voters(3), 1), durable).is_err());
}
