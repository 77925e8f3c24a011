//! Offsets committed inside transactions (TxnOffsetCommit, KIP-98 and
//! KIP-447), as Kafka's group coordinator keeps them.
//!
//! A transactional producer that consumed its input sends the input's
//! offsets with TxnOffsetCommit. They are appended to the offsets log in a
//! transactional batch of the producer ([`Output::AppendTxn`]) and, once
//! durable, held as the producer's *pending* offsets: OffsetFetch does not
//! see them (a fetch with `require_stable` is answered
//! UNSTABLE_OFFSET_COMMIT for their partitions). When the transaction
//! coordinator writes the producer's marker to this offsets partition, the
//! server reports it ([`Input::TxnCompleted`]): a COMMIT makes the pending
//! offsets the group's committed ones, an ABORT drops them. Loading the log
//! replays the same thing from the transactional batches and markers
//! ([`GroupCoordinator::load_txn_record`], [`GroupCoordinator::load_marker`]).
//!
//! While any transaction has offsets here (pending, or still being
//! written), the coordinator takes no snapshot: a snapshot drops the log
//! before it, and with it records whose marker is still to come.
//!
//! Lives on: the group coordinator (the shard owning the offsets partition).

use std::collections::{BTreeMap, HashMap};

use corelog_model::{ProducerEpoch, ProducerId, TopicPartition};

use crate::api::{OffsetCommit, Response, TxnOffsetCommit};
use crate::classic::ClassicGroup;
use crate::codes;
use crate::coordinator::{Group, GroupCoordinator, Output, ReplyId, OFFSETS_PER_GROUP_MAX};
use crate::records::{LogRecord, OffsetValue, RecordKey, RecordValue};

/// One offset: group, topic, partition, value.
type TxnOffset = (String, TopicPartition, OffsetValue);

/// One producer's undecided offsets, by group, then partition.
type ByGroup = BTreeMap<String, BTreeMap<TopicPartition, OffsetValue>>;

/// A TxnOffsetCommit's write that is not durable yet.
#[derive(Debug)]
pub(crate) struct HeldTxn {
    producer_id: ProducerId,
    offsets: Vec<TxnOffset>,
    /// The producer's marker arrived while this write was still in
    /// flight (a transaction aborted by its timeout): what the write
    /// becomes once durable.
    outcome: Option<bool>,
}

/// Pending transactional offsets and the producers' epochs.
#[derive(Debug, Default)]
pub(crate) struct TxnOffsets {
    /// Durable, undecided offsets by producer, then group, then partition.
    pending: BTreeMap<ProducerId, ByGroup>,
    /// The newest epoch each producer committed offsets with: an older
    /// instance's commit is refused.
    epochs: HashMap<ProducerId, ProducerEpoch>,
    /// This step's transactional appends, emitted by `finish_step`.
    pub(crate) step_appends: Vec<Output>,
}

impl GroupCoordinator {
    pub(crate) fn txn_offset_commit(&mut self, reply: ReplyId, r: TxnOffsetCommit) {
        let fenced = self
            .txn
            .epochs
            .get(&r.producer_id)
            .is_some_and(|&e| r.producer_epoch < e);
        let group_error = if r.producer_id.is_none() || r.producer_epoch.is_none() {
            codes::INVALID_REQUEST
        } else if fenced {
            // What Kafka's log answers a batch of an older epoch; clients
            // treat it as being fenced.
            codes::INVALID_PRODUCER_EPOCH
        } else {
            self.validate_commit(&OffsetCommit {
                group_id: r.group_id.clone(),
                generation_id: r.generation_id,
                member_id: r.member_id.clone(),
                group_instance_id: r.group_instance_id.clone(),
                offsets: Vec::new(),
            })
        };
        let known = self.group_offsets(&r.group_id).map_or(0, |o| o.len());
        let mut result = Vec::with_capacity(r.offsets.len());
        let mut offsets = Vec::new();
        for (i, p) in r.offsets.iter().enumerate() {
            let code = if group_error != codes::NONE {
                group_error
            } else if p
                .metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.config.offset_metadata_bytes_max)
            {
                codes::OFFSET_METADATA_TOO_LARGE
            } else if known + i >= OFFSETS_PER_GROUP_MAX {
                codes::INVALID_REQUEST
            } else {
                codes::NONE
            };
            if code == codes::NONE {
                offsets.push((
                    r.group_id.clone(),
                    TopicPartition::new(p.topic.clone(), p.partition),
                    OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: p.metadata.clone(),
                        commit_ms: self.now_ms,
                    },
                ));
            }
            result.push((TopicPartition::new(p.topic.clone(), p.partition), code));
        }
        let response = Response::TxnOffsetCommit(result);
        if offsets.is_empty() {
            self.reply(reply, response);
            return;
        }
        let epoch = self.txn.epochs.entry(r.producer_id).or_default();
        *epoch = (*epoch).max(r.producer_epoch);
        if !self.groups.contains_key(&r.group_id) {
            // As an OffsetCommit from outside any membership: the commit
            // creates an empty ("simple") group.
            self.groups.insert(
                r.group_id.clone(),
                Group::Classic(ClassicGroup::new(&r.group_id, self.now_ms)),
            );
            self.touched.insert(r.group_id.clone());
        }
        let records = offsets
            .iter()
            .map(|(g, tp, v)| LogRecord {
                key: RecordKey::Offset {
                    group: g.clone(),
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                },
                value: Some(RecordValue::Offset(v.clone())),
            })
            .collect();
        let write = self.new_write();
        self.hold(
            write,
            vec![(reply, response)],
            Some(HeldTxn {
                producer_id: r.producer_id,
                offsets,
                outcome: None,
            }),
        );
        self.txn.step_appends.push(Output::AppendTxn {
            write,
            producer_id: r.producer_id,
            producer_epoch: r.producer_epoch,
            records,
        });
    }

    /// A TxnOffsetCommit's write is durable: its offsets wait for the
    /// producer's marker, unless it already came.
    pub(crate) fn txn_write_durable(&mut self, held: HeldTxn) {
        match held.outcome {
            Some(commit) => self.decide(held.offsets, commit),
            None => {
                let by_group = self.txn.pending.entry(held.producer_id).or_default();
                for (g, tp, v) in held.offsets {
                    by_group.entry(g).or_default().insert(tp, v);
                }
            }
        }
    }

    /// The producer's marker is durable in this partition's log.
    pub(crate) fn txn_completed(&mut self, producer_id: ProducerId, commit: bool) {
        if let Some(by_group) = self.txn.pending.remove(&producer_id) {
            let offsets = by_group
                .into_iter()
                .flat_map(|(g, o)| o.into_iter().map(move |(tp, v)| (g.clone(), tp, v)))
                .collect();
            self.decide(offsets, commit);
        }
        for held in self.held_txns_mut() {
            if held.producer_id == producer_id && held.outcome.is_none() {
                held.outcome = Some(commit);
            }
        }
    }

    fn decide(&mut self, offsets: Vec<TxnOffset>, commit: bool) {
        if !commit {
            return;
        }
        for (g, tp, v) in offsets {
            if !self.groups.contains_key(&g) {
                // The group was deleted while the transaction was open;
                // its committed offsets bring it back as a simple group,
                // as an OffsetCommit would.
                self.groups.insert(
                    g.clone(),
                    Group::Classic(ClassicGroup::new(&g, self.now_ms)),
                );
                self.touched.insert(g.clone());
            }
            self.group_offsets_mut_apply(g, tp, Some(v));
        }
    }

    /// Whether any transaction has offsets here, pending or being written.
    pub(crate) fn txn_open(&self) -> bool {
        !self.txn.pending.is_empty() || self.held_txns().next().is_some()
    }

    /// Whether `group`'s offset for the partition waits for a transaction
    /// (OffsetFetch with `require_stable`).
    pub(crate) fn unstable(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = TopicPartition::new(topic, partition);
        self.txn
            .pending
            .values()
            .any(|g| g.get(group).is_some_and(|o| o.contains_key(&key)))
            || self
                .held_txns()
                .any(|h| h.offsets.iter().any(|(g, tp, _)| g == group && *tp == key))
    }

    /// Applies a record read back from a transactional batch of
    /// `producer_id`, in log order, before the first step: it is pending
    /// until the producer's marker ([`Self::load_marker`]). Only offset
    /// records are written in transactions; anything else is ignored.
    pub fn load_txn_record(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        record: LogRecord,
    ) {
        if let (
            RecordKey::Offset {
                group,
                topic,
                partition,
            },
            Some(RecordValue::Offset(v)),
        ) = (record.key, record.value)
        {
            self.txn
                .pending
                .entry(producer_id)
                .or_default()
                .entry(group)
                .or_default()
                .insert(TopicPartition { topic, partition }, v);
            let epoch = self.txn.epochs.entry(producer_id).or_default();
            *epoch = (*epoch).max(producer_epoch);
        }
    }

    /// Applies a transaction marker read back from the log, in log order,
    /// before [`Self::finish_load`].
    pub fn load_marker(&mut self, producer_id: ProducerId, commit: bool) {
        if let Some(by_group) = self.txn.pending.remove(&producer_id) {
            if commit {
                for (g, offsets) in by_group {
                    for (tp, v) in offsets {
                        self.group_offsets_mut_apply(g.clone(), tp, Some(v));
                    }
                }
            }
        }
    }
}
