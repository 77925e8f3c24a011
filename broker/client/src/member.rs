//! A consumer group member for one topic, on the classic group protocol,
//! as simple as a correct one can be: what `corelog consume --group` is
//! (like `kcat -G`).
//!
//! It joins the group (JoinGroup, retrying once with the member id the
//! broker hands out, KIP-394), and when it is the leader assigns every
//! member's subscribed topics with the range assignor, as Kafka's default
//! consumer does; then SyncGroup gives each member its partitions. The
//! caller fetches them from the committed offsets, commits what it
//! consumed, heartbeats between fetches, and leaves at the end. When the
//! coordinator says the group rebalances (another consumer came or went),
//! [`GroupMember::rejoin`] joins again and the assignment may change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::api::{CommittedOffset, OffsetToCommit};
use crate::{ClientError, ClientResult, Connection, Options};

/// The group's protocol type for Kafka consumers, and the assignor.
const PROTOCOL_TYPE: &str = "consumer";
const RANGE_ASSIGNOR: &str = "range";
/// The consumer protocol versions this member writes (0: topics only,
/// understood by every consumer) and reads (up to 3, the codec's newest).
const SUBSCRIPTION_VERSION: i16 = 0;
const ASSIGNMENT_VERSION: i16 = 0;
const CONSUMER_PROTOCOL_VERSION_MAX: i16 = 3;
/// Kafka consumer defaults: the coordinator drops a member silent for
/// this long, and waits this long for members to rejoin.
pub const SESSION_TIMEOUT_MS: i32 = 10_000;
pub const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// A third of the session timeout, as Kafka's consumer does.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(3_000);
/// JoinGroup answers when the rebalance completes; the connection must
/// wait that long and a little more.
const JOIN_WAIT_MARGIN: Duration = Duration::from_millis(5_000);
/// How many times a join that the coordinator sends back (new member id,
/// a rebalance starting meanwhile) is retried before giving up.
const JOIN_ATTEMPTS_MAX: usize = 10;

/// Error codes of a member that must join again.
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Whether an error means "join again" rather than "give up".
pub fn needs_rejoin(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID | REBALANCE_IN_PROGRESS)
    )
}

/// A member of one consumer group, consuming one topic.
pub struct GroupMember {
    conn: Connection,
    group: String,
    topic: String,
    member_id: String,
    generation_id: i32,
    assignment: Vec<i32>,
    last_heartbeat: Instant,
}

impl GroupMember {
    /// Finds `group`'s coordinator through `bootstrap`, connects to it
    /// with `options` (the request timeout raised to cover a rebalance),
    /// and joins.
    pub fn join(
        bootstrap: &mut Connection,
        options: &Options,
        group: &str,
        topic: &str,
    ) -> ClientResult<GroupMember> {
        let coordinator = bootstrap.find_coordinator(group)?;
        let mut options = options.clone();
        options.request_timeout = options
            .request_timeout
            .max(Duration::from_millis(REBALANCE_TIMEOUT_MS as u64) + JOIN_WAIT_MARGIN);
        let conn = Connection::connect(&coordinator.addr, &options)?;
        let mut member = GroupMember {
            conn,
            group: group.to_string(),
            topic: topic.to_string(),
            member_id: String::new(),
            generation_id: -1,
            assignment: Vec::new(),
            last_heartbeat: Instant::now(),
        };
        member.rejoin()?;
        Ok(member)
    }

    /// The partitions of the topic this member was given, in order.
    pub fn assignment(&self) -> &[i32] {
        &self.assignment
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// Joins (again) and syncs; afterwards [`GroupMember::assignment`] is
    /// the new generation's.
    pub fn rejoin(&mut self) -> ClientResult<()> {
        let subscription = encode_versioned(
            SUBSCRIPTION_VERSION,
            &ConsumerProtocolSubscription::default()
                .with_topics(vec![StrBytes::from_string(self.topic.clone())]),
        )?;
        for _ in 0..JOIN_ATTEMPTS_MAX {
            let joined = self.conn.join_group(
                &self.group,
                &self.member_id,
                PROTOCOL_TYPE,
                RANGE_ASSIGNOR,
                subscription.clone(),
                SESSION_TIMEOUT_MS,
                REBALANCE_TIMEOUT_MS,
            )?;
            match joined.error_code {
                0 => {}
                // The coordinator hands out a member id first (KIP-394),
                // or forgot this one: join with what it says.
                MEMBER_ID_REQUIRED | UNKNOWN_MEMBER_ID => {
                    self.member_id = joined.member_id.to_string();
                    continue;
                }
                REBALANCE_IN_PROGRESS => continue,
                code => {
                    self.conn
                        .check(&format!("join group {}", self.group), code, None)?;
                }
            }
            self.member_id = joined.member_id.to_string();
            self.generation_id = joined.generation_id;
            let assignments = if joined.leader == joined.member_id {
                let subscriptions: Vec<(String, Vec<String>)> = joined
                    .members
                    .iter()
                    .map(|m| {
                        let topics = decode_subscription(&m.metadata).unwrap_or_default();
                        (m.member_id.to_string(), topics)
                    })
                    .collect();
                let partitions = self.partition_counts(&subscriptions)?;
                range_assign(&subscriptions, &partitions)
                    .into_iter()
                    .map(|(member, topics)| Ok((member, encode_assignment(&topics)?)))
                    .collect::<ClientResult<Vec<_>>>()?
            } else {
                Vec::new()
            };
            let synced = self.conn.sync_group(
                &self.group,
                self.generation_id,
                &self.member_id,
                assignments,
            )?;
            if synced.error_code == REBALANCE_IN_PROGRESS {
                continue;
            }
            self.conn.check(
                &format!("sync group {}", self.group),
                synced.error_code,
                None,
            )?;
            self.assignment = decode_assignment(&synced.assignment)
                .map_err(|e| ClientError::Protocol {
                    addr: self.conn.addr().to_string(),
                    reason: format!("group {} assignment: {e}", self.group),
                })?
                .into_iter()
                .filter(|(t, _)| *t == self.topic)
                .flat_map(|(_, ps)| ps)
                .collect();
            self.assignment.sort_unstable();
            self.last_heartbeat = Instant::now();
            return Ok(());
        }
        Err(ClientError::Protocol {
            addr: self.conn.addr().to_string(),
            reason: format!(
                "group {} kept rebalancing through {JOIN_ATTEMPTS_MAX} joins",
                self.group
            ),
        })
    }

    /// Partition counts of the topics the members subscribe to (a topic
    /// that does not exist gets none).
    fn partition_counts(
        &mut self,
        subscriptions: &[(String, Vec<String>)],
    ) -> ClientResult<BTreeMap<String, i32>> {
        let mut topics: Vec<&str> = subscriptions
            .iter()
            .flat_map(|(_, ts)| ts.iter().map(String::as_str))
            .collect();
        topics.sort_unstable();
        topics.dedup();
        let md = self.conn.metadata(Some(&topics))?;
        Ok(md
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let name = t.name.as_ref()?.to_string();
                Some((name, i32::try_from(t.partitions.len()).ok()?))
            })
            .collect())
    }

    /// The group's committed offsets of the assigned partitions.
    pub fn committed(&mut self) -> ClientResult<Vec<CommittedOffset>> {
        let topics = [(self.topic.clone(), self.assignment.clone())];
        self.conn.offset_fetch(&self.group, Some(&topics))
    }

    /// Commits `offsets` (partition, next offset to read) in this
    /// generation; an error for which [`needs_rejoin`] holds means the
    /// group moved on and the caller should rejoin.
    pub fn commit(&mut self, offsets: &[(i32, i64)]) -> ClientResult<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let offsets: Vec<OffsetToCommit> = offsets
            .iter()
            .map(|&(partition, offset)| OffsetToCommit {
                topic: self.topic.clone(),
                partition,
                offset,
            })
            .collect();
        let resp =
            self.conn
                .offset_commit(&self.group, self.generation_id, &self.member_id, &offsets)?;
        for t in &resp.topics {
            for p in &t.partitions {
                self.conn.check(
                    &format!("commit {}/{}", t.name.as_str(), p.partition_index),
                    p.error_code,
                    None,
                )?;
            }
        }
        // A commit counts as a sign of life too.
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// Heartbeats when [`HEARTBEAT_INTERVAL`] has passed since the last
    /// one; see [`GroupMember::commit`] for the errors.
    pub fn heartbeat_if_due(&mut self) -> ClientResult<()> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(());
        }
        let resp = self
            .conn
            .heartbeat(&self.group, self.generation_id, &self.member_id)?;
        self.last_heartbeat = Instant::now();
        self.conn.check(
            &format!("heartbeat in group {}", self.group),
            resp.error_code,
            None,
        )
    }

    /// Leaves the group, so the others rebalance now instead of after the
    /// session timeout.
    pub fn leave(mut self) -> ClientResult<()> {
        let resp = self.conn.leave_group(&self.group, &self.member_id)?;
        self.conn.check(
            &format!("leave group {}", self.group),
            resp.error_code,
            None,
        )
    }
}

/// A consumer protocol message: its version, then its fields at it.
fn encode_versioned<T: Encodable>(version: i16, message: &T) -> ClientResult<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::Protocol {
            addr: String::new(),
            reason: format!("encoding a consumer protocol message: {e}"),
        })?;
    Ok(buf.freeze())
}

/// The version prefix of a consumer protocol message, clamped to the
/// newest this codec reads: later versions only add fields at the end,
/// which the decoder leaves unread.
fn split_version(bytes: &Bytes) -> Result<(i16, Bytes), String> {
    if bytes.len() < 2 {
        return Err(format!("{} bytes, too short for a version", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return Err(format!("version {version}"));
    }
    Ok((version.min(CONSUMER_PROTOCOL_VERSION_MAX), bytes.slice(2..)))
}

/// The topics of a member's subscription.
pub fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>, String> {
    let (version, mut body) = split_version(bytes)?;
    let sub =
        ConsumerProtocolSubscription::decode(&mut body, version).map_err(|e| e.to_string())?;
    Ok(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// An assignment's (topic, partitions); empty bytes are no assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<TopicPartitions, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = split_version(bytes)?;
    let a = ConsumerProtocolAssignment::decode(&mut body, version).map_err(|e| e.to_string())?;
    Ok(a.assigned_partitions
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect())
}

fn encode_assignment(topics: &[(String, Vec<i32>)]) -> ClientResult<Bytes> {
    encode_versioned(
        ASSIGNMENT_VERSION,
        &ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(ps.clone())
                })
                .collect(),
        ),
    )
}

/// Partitions by topic: one member's assignment.
pub type TopicPartitions = Vec<(String, Vec<i32>)>;

/// Kafka's range assignor: per topic, its subscribers sorted by member
/// id; each gets a consecutive range of partitions, the first
/// `count % subscribers` one more than the rest. Every member appears in
/// the result, with what it got (possibly nothing).
pub fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> Vec<(String, TopicPartitions)> {
    let mut out: BTreeMap<String, TopicPartitions> = subscriptions
        .iter()
        .map(|(m, _)| (m.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partitions {
        let mut members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        members.sort();
        members.dedup();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = i32::try_from(members.len()).unwrap_or(i32::MAX);
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.into_iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let take = each + i32::from(i < extra);
            if take > 0 {
                out.entry(m.clone())
                    .or_default()
                    .push((topic.clone(), (next..next + take).collect()));
            }
            next += take;
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        v.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn the_range_assignor_gives_the_first_members_one_more() {
        let partitions = BTreeMap::from([("t".to_string(), 5), ("u".to_string(), 1)]);
        let got = range_assign(&subs(&[("b", &["t"]), ("a", &["t", "u"])]), &partitions);
        assert_eq!(
            got,
            vec![
                (
                    "a".to_string(),
                    vec![("t".to_string(), vec![0, 1, 2]), ("u".to_string(), vec![0])]
                ),
                ("b".to_string(), vec![("t".to_string(), vec![3, 4])]),
            ]
        );
    }

    #[test]
    fn a_lone_member_gets_every_partition_and_more_members_than_partitions_leave_some_idle() {
        let partitions = BTreeMap::from([("t".to_string(), 2)]);
        let got = range_assign(
            &subs(&[("c", &["t"]), ("b", &["t"]), ("a", &["t"])]),
            &partitions,
        );
        assert_eq!(got[0], ("a".to_string(), vec![("t".to_string(), vec![0])]));
        assert_eq!(got[1], ("b".to_string(), vec![("t".to_string(), vec![1])]));
        assert_eq!(got[2], ("c".to_string(), vec![]));
    }

    #[test]
    fn assignments_and_subscriptions_round_trip_and_bad_bytes_are_errors() {
        let bytes = encode_assignment(&[("t".to_string(), vec![0, 2])]).unwrap();
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![("t".to_string(), vec![0, 2])]
        );
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), vec![]);
        let sub = encode_versioned(
            0,
            &ConsumerProtocolSubscription::default()
                .with_topics(vec![StrBytes::from_static_str("t")]),
        )
        .unwrap();
        assert_eq!(decode_subscription(&sub).unwrap(), vec!["t".to_string()]);
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0xff, 0xff, 0xff])).is_err());
    }
}
