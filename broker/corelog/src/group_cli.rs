//! `corelog group list` and `corelog group describe <GROUP>`: consumer group
//! inspection over the public Kafka protocol, like Kafka's
//! `kafka-consumer-groups.sh --list / --describe`.
//!
//! `describe` gathers its data the way any Kafka admin client would:
//! FindCoordinator for the group's coordinator; DescribeGroups for a classic
//! group's state and members (each member's assignment is the consumer
//! protocol's `ConsumerProtocolAssignment`); ConsumerGroupDescribe when the
//! group is a KIP-848 consumer group instead; OffsetFetch for the committed
//! offsets; Metadata for partition leaders; and ListOffsets (latest) on each
//! leader for the log-end offsets. Lag is log end minus committed offset.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::messages::consumer_group_describe_response;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use corelog_client::api::READ_UNCOMMITTED;
use serde_json::json;

use crate::topic_cli::Format;
use corelog_client::{ClientError, Connection, Options};
use corelog_server::TopicPartition;

/// Where the CLI looks for a broker when no `--bootstrap-server` is given.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// The CLI's connections: named in broker logs as the CLI, and asking the
/// broker for its api versions first, as Kafka clients do, so a version it
/// does not serve is reported as such.
const CONNECTION: Options = Options {
    client_id: "corelog-cli",
    connect_timeout: Duration::from_millis(5_000),
    request_timeout: Duration::from_millis(10_000),
    api_versions_handshake: true,
};
/// How long to keep retrying while a coordinator loads its state after a
/// restart or moves; past this the command fails instead of waiting on.
const COORDINATOR_WAIT_MS: u64 = 15_000;
const RETRY_BACKOFF_MS: u64 = 200;

const DESCRIBE_GROUPS_VERSION: i16 = 5;
const CONSUMER_GROUP_DESCRIBE_VERSION: i16 = 0;
const LIST_GROUPS_VERSION: i16 = 5;

/// ListOffsets timestamp that asks for the log-end offset (high watermark).
const LATEST_TIMESTAMP: i64 = -1;
/// The protocol type of groups formed by Kafka consumers (as opposed to,
/// say, Kafka Connect workers, whose assignments have another format).
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Kafka error codes this module reacts to.
mod error_code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}

fn error_name(code: i16) -> &'static str {
    match code {
        0 => "NONE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        6 => "NOT_LEADER_OR_FOLLOWER",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        24 => "INVALID_GROUP_ID",
        30 => "GROUP_AUTHORIZATION_FAILED",
        35 => "UNSUPPORTED_VERSION",
        69 => "GROUP_ID_NOT_FOUND",
        88 => "UNSTABLE_OFFSET_COMMIT",
        _ => "UNKNOWN_ERROR_CODE",
    }
}

/// Errors that a short wait may cure: the coordinator is loading the group
/// state or has moved.
fn is_retriable(code: i16) -> bool {
    matches!(
        code,
        error_code::COORDINATOR_LOAD_IN_PROGRESS
            | error_code::COORDINATOR_NOT_AVAILABLE
            | error_code::NOT_COORDINATOR
            | error_code::UNSTABLE_OFFSET_COMMIT
    )
}

#[derive(Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// List the consumer groups: GROUP, STATE and TYPE (classic or consumer).
    List(ListArgs),
    /// Show a group's state and members and, per partition, the committed
    /// offset, log-end offset, lag and owning member.
    Describe(DescribeArgs),
    /// Move a group's committed offsets of a topic (the group must have no
    /// members, as Kafka requires): to earliest/latest, an offset, a time,
    /// or shifted by N; --dry-run shows the plan only.
    ResetOffsets(crate::admin_cli::ResetArgs),
    /// Delete groups that have no members, with their committed offsets.
    Delete(crate::admin_cli::DeleteArgs),
}

#[derive(Args)]
struct ListArgs {
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args)]
struct DescribeArgs {
    /// The group id.
    group: String,
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs one `corelog group` subcommand: the report goes to stdout, an error
/// to stderr with a non-zero exit code.
pub fn run(args: GroupArgs) -> ExitCode {
    let result = match args.command {
        GroupCommand::ResetOffsets(a) => return crate::admin_cli::run_reset(&a),
        GroupCommand::Delete(a) => return crate::admin_cli::run_delete(&a),
        GroupCommand::List(a) => list(&a.bootstrap_server).map(|groups| match a.format {
            Format::Text => render_list(&groups),
            Format::Json => list_json(&groups),
        }),
        GroupCommand::Describe(a) => {
            describe(&a.bootstrap_server, &a.group).map(|report| match a.format {
                Format::Text => render_describe(&report),
                Format::Json => describe_json(&report),
            })
        }
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corelog: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum CliError {
    Client(ClientError),
    /// Neither DescribeGroups nor ConsumerGroupDescribe knows the group.
    GroupNotFound(String),
    /// A Kafka error code that waiting may cure (see [`is_retriable`]).
    Retriable(String),
    /// Any other error the broker answered with.
    Broker(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Client(e) => write!(f, "{e}"),
            CliError::GroupNotFound(g) => write!(f, "consumer group '{g}' does not exist"),
            CliError::Retriable(s) | CliError::Broker(s) => f.write_str(s),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e.code() {
            Some(code) if is_retriable(code) => CliError::Retriable(e.to_string()),
            Some(_) => CliError::Broker(e.to_string()),
            None => CliError::Client(e),
        }
    }
}

type CliResult<T> = Result<T, CliError>;

fn code_error(what: &str, code: i16, message: Option<&StrBytes>) -> CliError {
    let mut text = format!("{what}: {} ({code})", error_name(code));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(m);
    }
    if is_retriable(code) {
        CliError::Retriable(text)
    } else {
        CliError::Broker(text)
    }
}

/// Retries `attempt` while it fails with a retriable Kafka error, for at
/// most [`COORDINATOR_WAIT_MS`].
fn with_retries<T>(mut attempt: impl FnMut() -> CliResult<T>) -> CliResult<T> {
    let deadline = Instant::now() + Duration::from_millis(COORDINATOR_WAIT_MS);
    loop {
        match attempt() {
            Err(CliError::Retriable(reason)) => {
                if Instant::now() >= deadline {
                    return Err(CliError::Broker(format!(
                        "{reason} (still failing after {COORDINATOR_WAIT_MS} ms)"
                    )));
                }
                std::thread::sleep(Duration::from_millis(RETRY_BACKOFF_MS));
            }
            other => return other,
        }
    }
}

fn str_of(s: &StrBytes) -> String {
    s.as_str().to_string()
}

// ------------------------------------------------------------------ cluster --

/// Connections to the brokers of one cluster, opened on first use and kept
/// for the rest of the command.
struct Cluster {
    bootstrap: String,
    connections: HashMap<String, Connection>,
}

impl Cluster {
    fn new(bootstrap: &str) -> CliResult<Cluster> {
        let mut cluster = Cluster {
            bootstrap: bootstrap.to_string(),
            connections: HashMap::new(),
        };
        // Connect now, so that an unreachable bootstrap broker is reported as
        // such before anything else is tried.
        cluster.conn(bootstrap)?;
        Ok(cluster)
    }

    fn conn(&mut self, addr: &str) -> CliResult<&mut Connection> {
        if !self.connections.contains_key(addr) {
            let conn = Connection::connect(addr, &CONNECTION)?;
            self.connections.insert(addr.to_string(), conn);
        }
        self.connections
            .get_mut(addr)
            .ok_or_else(|| CliError::Broker(format!("no connection to {addr}")))
    }

    /// Drops a connection after an I/O error so the next use reconnects.
    fn forget(&mut self, addr: &str) {
        self.connections.remove(addr);
    }

    /// Metadata for all topics (`topics` None) or none (Some(empty)).
    fn metadata(&mut self, all_topics: bool) -> CliResult<MetadataResponse> {
        let bootstrap = self.bootstrap.clone();
        let topics: Option<&[&str]> = if all_topics { None } else { Some(&[]) };
        Ok(self.conn(&bootstrap)?.metadata(topics)?)
    }

    /// The address of the group's coordinator.
    fn find_coordinator(&mut self, group: &str) -> CliResult<String> {
        let bootstrap = self.bootstrap.clone();
        Ok(self.conn(&bootstrap)?.find_coordinator(group)?.addr)
    }
}

/// Node id -> "host:port" of every broker in a Metadata response.
fn broker_addrs(md: &MetadataResponse) -> BTreeMap<i32, String> {
    md.brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect()
}

// --------------------------------------------------------------------- list --

/// One row of `corelog group list`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ListedGroup {
    group_id: String,
    state: String,
    group_type: String,
}

fn list(bootstrap: &str) -> CliResult<Vec<ListedGroup>> {
    let mut cluster = Cluster::new(bootstrap)?;
    let brokers = broker_addrs(&cluster.metadata(false)?);
    // Each broker lists only the groups it coordinates, so ask all of them.
    let addrs: Vec<String> = if brokers.is_empty() {
        vec![bootstrap.to_string()]
    } else {
        brokers.into_values().collect()
    };
    let mut groups = Vec::new();
    for addr in addrs {
        let resp: ListGroupsResponse = with_retries(|| {
            let resp: ListGroupsResponse = cluster.conn(&addr)?.call(
                ApiKey::ListGroups,
                LIST_GROUPS_VERSION,
                &ListGroupsRequest::default(),
            )?;
            if resp.error_code != error_code::NONE {
                return Err(code_error(
                    &format!("ListGroups on {addr}"),
                    resp.error_code,
                    None,
                ));
            }
            Ok(resp)
        })?;
        for g in resp.groups {
            let group_type = if g.group_type.is_empty() {
                // Brokers before ListGroups v5 have only classic groups.
                "classic".to_string()
            } else {
                g.group_type.as_str().to_ascii_lowercase()
            };
            groups.push(ListedGroup {
                group_id: str_of(&g.group_id.0),
                state: str_of(&g.group_state),
                group_type,
            });
        }
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

fn render_list(groups: &[ListedGroup]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| vec![g.group_id.clone(), g.state.clone(), g.group_type.clone()])
        .collect();
    format_table(&["GROUP", "STATE", "TYPE"], &rows)
}

// ----------------------------------------------------------------- describe --

/// Everything `corelog group describe` prints.
#[derive(Debug, PartialEq)]
struct GroupReport {
    group_id: String,
    /// "classic" or "consumer" (KIP-848).
    group_type: &'static str,
    state: String,
    /// The assignor: a classic group's chosen protocol, or a KIP-848
    /// group's server-side assignor.
    protocol: String,
    member_count: usize,
    rows: Vec<PartitionRow>,
}

/// One partition of the describe table.
#[derive(Debug, PartialEq, Eq)]
struct PartitionRow {
    topic: String,
    partition: i32,
    committed_offset: Option<i64>,
    log_end_offset: Option<i64>,
    member_id: Option<String>,
}

/// What the group's describe API said: state, assignor, members and which
/// member owns which partition.
struct Membership {
    group_type: &'static str,
    state: String,
    protocol: String,
    member_count: usize,
    owners: BTreeMap<TopicPartition, String>,
}

fn describe(bootstrap: &str, group: &str) -> CliResult<GroupReport> {
    let mut cluster = Cluster::new(bootstrap)?;
    let (membership, committed) = with_retries(|| {
        let coordinator = cluster.find_coordinator(group)?;
        let result = describe_on_coordinator(&mut cluster, &coordinator, group);
        if let Err(CliError::Client(ClientError::Io { .. })) = &result {
            cluster.forget(&coordinator);
        }
        result
    })?;

    // Metadata maps topic ids to names (for KIP-848 assignments that carry
    // only ids) and gives each partition's leader, which answers ListOffsets.
    let md = cluster.metadata(true)?;
    let brokers = broker_addrs(&md);
    let mut names_by_id = HashMap::new();
    let mut leaders: HashMap<TopicPartition, i32> = HashMap::new();
    for t in &md.topics {
        let Some(name) = &t.name else { continue };
        let name = str_of(&name.0);
        names_by_id.insert(t.topic_id, name.clone());
        for p in &t.partitions {
            leaders.insert(
                TopicPartition::new(name.clone(), p.partition_index),
                p.leader_id.0,
            );
        }
    }
    let membership = membership.resolve(&names_by_id);

    let wanted: BTreeSet<TopicPartition> = committed
        .keys()
        .chain(membership.owners.keys())
        .cloned()
        .collect();
    let ends = log_end_offsets(&mut cluster, &wanted, &leaders, &brokers)?;
    let rows = build_rows(&committed, &ends, &membership.owners);
    Ok(GroupReport {
        group_id: group.to_string(),
        group_type: membership.group_type,
        state: membership.state,
        protocol: membership.protocol,
        member_count: membership.member_count,
        rows,
    })
}

/// A membership whose KIP-848 assignments may still name topics by id only.
struct UnresolvedMembership {
    membership: Membership,
    /// (topic id, partition, member id) for assignments without a name.
    by_topic_id: Vec<(Uuid, i32, String)>,
}

impl UnresolvedMembership {
    fn resolve(mut self, names_by_id: &HashMap<Uuid, String>) -> Membership {
        for (id, partition, member) in self.by_topic_id {
            // A topic deleted since the assignment has no name any more; its
            // id is shown instead so the row is not silently dropped.
            let name = names_by_id
                .get(&id)
                .cloned()
                .unwrap_or_else(|| id.to_string());
            self.membership
                .owners
                .insert(TopicPartition::new(name, partition), member);
        }
        self.membership
    }
}

fn describe_on_coordinator(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
) -> CliResult<(UnresolvedMembership, BTreeMap<TopicPartition, i64>)> {
    let membership = match describe_classic(cluster, coordinator, group)? {
        Some(m) => UnresolvedMembership {
            membership: m,
            by_topic_id: Vec::new(),
        },
        None => match describe_consumer(cluster, coordinator, group)? {
            Some(m) => m,
            None => return Err(CliError::GroupNotFound(group.to_string())),
        },
    };
    let committed = committed_offsets(cluster, coordinator, group)?;
    Ok((membership, committed))
}

/// DescribeGroups. `None` when the coordinator has no classic group of that
/// name (GROUP_ID_NOT_FOUND, or the "Dead" state Kafka reports for unknown
/// groups), which is also what it says for a KIP-848 consumer group.
fn describe_classic(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
) -> CliResult<Option<Membership>> {
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp: DescribeGroupsResponse =
        cluster
            .conn(coordinator)?
            .call(ApiKey::DescribeGroups, DESCRIBE_GROUPS_VERSION, &req)?;
    let Some(g) = resp.groups.into_iter().next() else {
        return Err(CliError::Broker(
            "DescribeGroups answered no group".to_string(),
        ));
    };
    match g.error_code {
        error_code::NONE => {}
        error_code::GROUP_ID_NOT_FOUND => return Ok(None),
        code => return Err(code_error("DescribeGroups", code, g.error_message.as_ref())),
    }
    if g.group_state.as_str() == "Dead" {
        return Ok(None);
    }
    let mut owners = BTreeMap::new();
    if g.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE {
        for m in &g.members {
            let member_id = str_of(&m.member_id);
            let partitions = decode_consumer_assignment(&m.member_assignment).map_err(|e| {
                CliError::Broker(format!("member {member_id}: bad assignment: {e}"))
            })?;
            for tp in partitions {
                owners.insert(tp, member_id.clone());
            }
        }
    }
    Ok(Some(Membership {
        group_type: "classic",
        state: str_of(&g.group_state),
        protocol: str_of(&g.protocol_data),
        member_count: g.members.len(),
        owners,
    }))
}

/// ConsumerGroupDescribe (KIP-848). `None` when the group does not exist as
/// a consumer group either, or the broker does not have that API.
fn describe_consumer(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
) -> CliResult<Option<UnresolvedMembership>> {
    let conn = cluster.conn(coordinator)?;
    if !conn.supports(
        ApiKey::ConsumerGroupDescribe,
        CONSUMER_GROUP_DESCRIBE_VERSION,
    ) {
        return Ok(None);
    }
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp: ConsumerGroupDescribeResponse = conn.call(
        ApiKey::ConsumerGroupDescribe,
        CONSUMER_GROUP_DESCRIBE_VERSION,
        &req,
    )?;
    let Some(g) = resp.groups.into_iter().next() else {
        return Err(CliError::Broker(
            "ConsumerGroupDescribe answered no group".to_string(),
        ));
    };
    match g.error_code {
        error_code::NONE => {}
        error_code::GROUP_ID_NOT_FOUND | error_code::UNSUPPORTED_VERSION => return Ok(None),
        code => {
            return Err(code_error(
                "ConsumerGroupDescribe",
                code,
                g.error_message.as_ref(),
            ))
        }
    }
    if g.group_state.as_str().eq_ignore_ascii_case("dead") {
        return Ok(None);
    }
    let mut owners = BTreeMap::new();
    let mut by_topic_id = Vec::new();
    for m in &g.members {
        let member_id = str_of(&m.member_id);
        add_consumer_assignment(&m.assignment, &member_id, &mut owners, &mut by_topic_id);
    }
    Ok(Some(UnresolvedMembership {
        membership: Membership {
            group_type: "consumer",
            state: str_of(&g.group_state),
            protocol: str_of(&g.assignor_name),
            member_count: g.members.len(),
            owners,
        },
        by_topic_id,
    }))
}

fn add_consumer_assignment(
    assignment: &consumer_group_describe_response::Assignment,
    member_id: &str,
    owners: &mut BTreeMap<TopicPartition, String>,
    by_topic_id: &mut Vec<(Uuid, i32, String)>,
) {
    for tp in &assignment.topic_partitions {
        let name = tp.topic_name.0.as_str();
        for &p in &tp.partitions {
            if name.is_empty() {
                by_topic_id.push((tp.topic_id, p, member_id.to_string()));
            } else {
                owners.insert(TopicPartition::new(name, p), member_id.to_string());
            }
        }
    }
}

/// OffsetFetch for all of the group's partitions: (topic, partition) ->
/// committed offset, leaving out partitions without a commit.
fn committed_offsets(
    cluster: &mut Cluster,
    coordinator: &str,
    group: &str,
) -> CliResult<BTreeMap<TopicPartition, i64>> {
    // topics None asks for every partition the group has committed.
    let offsets = cluster.conn(coordinator)?.offset_fetch(group, None)?;
    let mut committed = BTreeMap::new();
    for o in offsets {
        if o.error_code != error_code::NONE {
            return Err(code_error(
                &format!("OffsetFetch {}-{}", o.topic, o.partition),
                o.error_code,
                None,
            ));
        }
        // -1 means no offset is committed for the partition.
        if o.offset >= 0 {
            committed.insert(TopicPartition::new(o.topic, o.partition), o.offset);
        }
    }
    Ok(committed)
}

/// ListOffsets (latest) for each partition, asked of its leader. A
/// partition without a known leader, or whose leader answers an error, is
/// left out (and shows "-").
fn log_end_offsets(
    cluster: &mut Cluster,
    wanted: &BTreeSet<TopicPartition>,
    leaders: &HashMap<TopicPartition, i32>,
    brokers: &BTreeMap<i32, String>,
) -> CliResult<HashMap<TopicPartition, i64>> {
    let mut by_leader: BTreeMap<&str, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for tp in wanted {
        let (topic, partition) = (&tp.topic, &tp.partition);
        let leader = leaders.get(tp);
        let Some(addr) = leader.and_then(|id| brokers.get(id)) else {
            continue;
        };
        by_leader
            .entry(addr.as_str())
            .or_default()
            .entry(topic.as_str())
            .or_default()
            .push(*partition);
    }
    let mut ends = HashMap::new();
    for (addr, topics) in by_leader {
        for (topic, partitions) in topics {
            let pairs: Vec<(i32, i64)> =
                partitions.iter().map(|&p| (p, LATEST_TIMESTAMP)).collect();
            let resp = cluster
                .conn(addr)?
                .list_offsets(topic, &pairs, READ_UNCOMMITTED)?;
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.error_code == error_code::NONE && p.offset >= 0 {
                        ends.insert(
                            TopicPartition::new(str_of(&t.name.0), p.partition_index),
                            p.offset,
                        );
                    }
                }
            }
        }
    }
    Ok(ends)
}

// ------------------------------------------------------------ pure helpers --

/// The partitions in a classic consumer-protocol assignment: an i16 version,
/// then `ConsumerProtocolAssignment`. Empty bytes mean "no assignment yet"
/// (a member between JoinGroup and SyncGroup).
fn decode_consumer_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let assignment =
        corelog_protocol::consumer_protocol::decode_assignment(bytes).map_err(|e| e.to_string())?;
    Ok(assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| {
            let topic = str_of(&t.topic.0);
            t.partitions
                .iter()
                .map(move |&p| TopicPartition::new(topic.clone(), p))
        })
        .collect())
}

/// Lag of a partition: log end minus committed offset, when both are known.
/// Not clamped at zero: a committed offset past the log end (the log was
/// truncated or recreated) is worth seeing as a negative number.
fn lag(committed_offset: Option<i64>, log_end_offset: Option<i64>) -> Option<i64> {
    Some(log_end_offset?.saturating_sub(committed_offset?))
}

/// One row per partition that has a committed offset or an owner, sorted by
/// topic and partition.
fn build_rows(
    committed: &BTreeMap<TopicPartition, i64>,
    log_ends: &HashMap<TopicPartition, i64>,
    owners: &BTreeMap<TopicPartition, String>,
) -> Vec<PartitionRow> {
    let keys: BTreeSet<&TopicPartition> = committed.keys().chain(owners.keys()).collect();
    keys.into_iter()
        .map(|tp| PartitionRow {
            topic: tp.topic.clone(),
            partition: tp.partition,
            committed_offset: committed.get(tp).copied(),
            log_end_offset: log_ends.get(tp).copied(),
            member_id: owners.get(tp).cloned(),
        })
        .collect()
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `group list --format json`: one array of {group, state, type}.
fn list_json(groups: &[ListedGroup]) -> String {
    let rows: Vec<_> = groups
        .iter()
        .map(|g| json!({"group": g.group_id, "state": g.state, "type": g.group_type}))
        .collect();
    format!("{}\n", json!(rows))
}

/// `group describe --format json`: the header's fields and one object per
/// partition (offsets and lag null where unknown).
fn describe_json(report: &GroupReport) -> String {
    let partitions: Vec<_> = report
        .rows
        .iter()
        .map(|r| {
            json!({
                "topic": r.topic,
                "partition": r.partition,
                "committed_offset": r.committed_offset,
                "log_end_offset": r.log_end_offset,
                "lag": lag(r.committed_offset, r.log_end_offset),
                "member": r.member_id,
            })
        })
        .collect();
    format!(
        "{}\n",
        json!({
            "group": report.group_id,
            "type": report.group_type,
            "state": report.state,
            "protocol": report.protocol,
            "members": report.member_count,
            "partitions": partitions,
        })
    )
}

fn render_describe(report: &GroupReport) -> String {
    let protocol = if report.protocol.is_empty() {
        "-"
    } else {
        report.protocol.as_str()
    };
    let mut out = format!(
        "GROUP {}  TYPE {}  STATE {}  PROTOCOL {}  MEMBERS {}\n\n",
        report.group_id, report.group_type, report.state, protocol, report.member_count
    );
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.topic.clone(),
                r.partition.to_string(),
                or_dash(r.committed_offset),
                or_dash(r.log_end_offset),
                or_dash(lag(r.committed_offset, r.log_end_offset)),
                r.member_id.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    out.push_str(&format_table(
        &[
            "TOPIC",
            "PARTITION",
            "COMMITTED-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "MEMBER",
        ],
        &rows,
    ));
    out
}

/// Left-aligned columns separated by two spaces; the last column is not
/// padded, so lines carry no trailing blanks.
fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Encodable;

    fn topic_name(s: &str) -> kafka_protocol::messages::TopicName {
        kafka_protocol::messages::TopicName(StrBytes::from_string(s.to_string()))
    }

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn lag_is_log_end_minus_committed_when_both_are_known() {
        assert_eq!(lag(Some(10), Some(30)), Some(20));
        assert_eq!(lag(Some(30), Some(30)), Some(0));
        assert_eq!(lag(Some(0), Some(0)), Some(0));
        // A committed offset past the end (a truncated log) shows negative.
        assert_eq!(lag(Some(40), Some(30)), Some(-10));
        assert_eq!(lag(None, Some(30)), None);
        assert_eq!(lag(Some(10), None), None);
        assert_eq!(lag(Some(i64::MIN), Some(i64::MAX)), Some(i64::MAX));
    }

    #[test]
    fn rows_cover_committed_and_assigned_partitions_in_order() {
        let committed = BTreeMap::from([(tp("b", 1), 5), (tp("a", 0), 7)]);
        let ends = HashMap::from([(tp("a", 0), 10), (tp("b", 1), 5), (tp("b", 0), 3)]);
        let owners = BTreeMap::from([
            (tp("b", 0), "m-2".to_string()),
            (tp("a", 0), "m-1".to_string()),
        ]);
        let rows = build_rows(&committed, &ends, &owners);
        assert_eq!(
            rows,
            vec![
                PartitionRow {
                    topic: "a".into(),
                    partition: 0,
                    committed_offset: Some(7),
                    log_end_offset: Some(10),
                    member_id: Some("m-1".into()),
                },
                PartitionRow {
                    topic: "b".into(),
                    partition: 0,
                    committed_offset: None,
                    log_end_offset: Some(3),
                    member_id: Some("m-2".into()),
                },
                PartitionRow {
                    topic: "b".into(),
                    partition: 1,
                    committed_offset: Some(5),
                    log_end_offset: Some(5),
                    member_id: None,
                },
            ]
        );
    }

    #[test]
    fn table_columns_are_aligned_without_trailing_blanks() {
        let text = format_table(
            &["A", "LONG-HEADER", "C"],
            &[
                vec!["xyz".into(), "1".into(), "last".into()],
                vec!["q".into(), "12345678901234".into(), "-".into()],
            ],
        );
        assert_eq!(
            text,
            "A    LONG-HEADER     C\n\
             xyz  1               last\n\
             q    12345678901234  -\n"
        );
    }

    #[test]
    fn describe_report_renders_header_and_rows() {
        let report = GroupReport {
            group_id: "g1".into(),
            group_type: "classic",
            state: "Stable".into(),
            protocol: "range".into(),
            member_count: 1,
            rows: vec![
                PartitionRow {
                    topic: "orders".into(),
                    partition: 0,
                    committed_offset: Some(10),
                    log_end_offset: Some(30),
                    member_id: Some("member-1".into()),
                },
                PartitionRow {
                    topic: "orders".into(),
                    partition: 1,
                    committed_offset: None,
                    log_end_offset: Some(20),
                    member_id: Some("member-1".into()),
                },
                PartitionRow {
                    topic: "orders".into(),
                    partition: 2,
                    committed_offset: Some(4),
                    log_end_offset: None,
                    member_id: None,
                },
            ],
        };
        assert_eq!(
            render_describe(&report),
            "GROUP g1  TYPE classic  STATE Stable  PROTOCOL range  MEMBERS 1\n\
             \n\
             TOPIC   PARTITION  COMMITTED-OFFSET  LOG-END-OFFSET  LAG  MEMBER\n\
             orders  0          10                30              20   member-1\n\
             orders  1          -                 20              -    member-1\n\
             orders  2          4                 -               -    -\n"
        );
    }

    #[test]
    fn list_renders_one_row_per_group() {
        let groups = vec![
            ListedGroup {
                group_id: "a".into(),
                state: "Stable".into(),
                group_type: "classic".into(),
            },
            ListedGroup {
                group_id: "kip848".into(),
                state: "Empty".into(),
                group_type: "consumer".into(),
            },
        ];
        assert_eq!(
            render_list(&groups),
            "GROUP   STATE   TYPE\n\
             a       Stable  classic\n\
             kip848  Empty   consumer\n"
        );
    }

    fn encoded_assignment(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        a.encode(
            &mut buf,
            version.min(corelog_protocol::consumer_protocol::CONSUMER_PROTOCOL_VERSION_MAX),
        )
        .expect("encode");
        buf.freeze()
    }

    #[test]
    fn consumer_assignment_decodes_every_version() {
        for version in 0..=4 {
            let bytes = encoded_assignment(version, &[("t1", &[0, 2]), ("t2", &[1])]);
            assert_eq!(
                decode_consumer_assignment(&bytes).expect("decodes"),
                vec![tp("t1", 0), tp("t1", 2), tp("t2", 1)],
                "version {version}"
            );
        }
        assert_eq!(decode_consumer_assignment(&Bytes::new()), Ok(vec![]));
    }

    #[test]
    fn corrupt_assignments_are_errors_not_allocations() {
        assert!(decode_consumer_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(
            decode_consumer_assignment(&Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 0])).is_err()
        );
        // A topic count of 2^31 - 1 with no bytes behind it.
        assert!(
            decode_consumer_assignment(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff]))
                .is_err()
        );
        // One topic "t" whose partition count is huge.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(i32::MAX);
        assert!(decode_consumer_assignment(&b.freeze()).is_err());
        // Truncated inside the partition list.
        let good = encoded_assignment(1, &[("topic", &[0, 1, 2])]);
        for cut in 2..good.len() - 4 {
            assert!(
                decode_consumer_assignment(&good.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }
}
