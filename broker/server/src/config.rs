//! Broker settings: every one has a default, and a bad value is an error
//! naming the setting before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use corelog_storage::{CleanupPolicy, FlushPolicy, LogConfig, RecordLimits};
use serde::Deserialize;

use crate::error::ServerError;

/// 64 MiB, the default of `legacy_conversion_bytes_max`: as much as a
/// compressed batch may decompress to (`batch_decompressed_bytes_max`), so
/// that any message set a current client's batch could match converts.
pub const LEGACY_CONVERSION_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// Settings of the broker process. Field names are the TOML keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where partitions and cluster metadata live.
    pub data_dir: PathBuf,
    /// Address every shard listens on (SO_REUSEPORT spreads connections).
    pub listen: SocketAddr,
    /// Host:port clients are told to connect to; defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Number of shards (one pinned executor each); 0 means every core.
    pub cores: usize,
    /// How long an idle shard keeps polling for work before it parks, in
    /// microseconds (glommio's `spin_before_park`); 0 parks at once. A
    /// parked shard is woken by an eventfd write and a return from
    /// `io_uring_enter`, microseconds of kernel time per wake-up; a
    /// spinning one sees a request or a cross-shard message at once, but
    /// burns its core meanwhile. Worth it on a host whose broker cores do
    /// nothing else; on a machine shared with other work (the 2-core VM
    /// the project measures on, where the load generator shares the
    /// cores) it takes their CPU, hence the default of 0. At most 10,000.
    pub shard_spin_before_park_us: u64,
    /// How clients reach the shard that owns a partition (issue 16).
    /// `single-port` (the default): every shard accepts on `listen`, and a
    /// request for a partition another shard owns travels there over the
    /// channel mesh and back, two cross-core hops. `shard-direct`: shard
    /// `s` also accepts on port `listen + 1 + s`, and Metadata describes
    /// each shard as a broker of its own (node id `1 + s`) that leads the
    /// partitions and coordinates the groups the shard owns. Kafka clients
    /// send each partition's requests to its leader, so they reach the
    /// owning shard without a hop. It needs those ports open to clients,
    /// which is why it is not the default.
    pub listener_mode: ListenerMode,
    /// Whether producing to or asking metadata for an unknown topic creates it.
    pub auto_create_topics: bool,
    /// Partitions of a topic created without a count.
    pub default_partitions: u32,
    /// The most partitions one topic may have, at creation or after
    /// CreatePartitions. Kafka sets no such limit, but a count is a number
    /// on the wire: 2^31-1 asked for 8 GiB for the placement table alone
    /// and took the broker down. 10,000 is far above the largest topics in
    /// use (a few thousand partitions) and below the broker's own bound.
    pub partitions_per_topic_max: u32,
    /// The most partitions one CreateTopics or CreatePartitions request may
    /// add, summed over its topics. One request is one metadata change: the
    /// controller shard places, persists and opens all of it before it
    /// answers, so this bounds the work and the memory of a single change.
    /// It equals `partitions_per_topic_max`, so the largest topic can be
    /// created in one request.
    pub partitions_per_request_max: u32,
    /// The most partitions the broker holds, its topics' and the offsets
    /// log's together. A partition costs memory and descriptors for as long
    /// as it exists: measured on a debug build, about 9 KiB of RSS and one
    /// descriptor idle, 15 KiB and two descriptors once written (segment
    /// file and its O_DSYNC twin), more with data in flight. 50,000 is
    /// about 750 MiB and 100,000 descriptors at that rate: more than any
    /// single node is sized for (Kafka's guidance was 4,000 per broker
    /// under ZooKeeper), and a bound a hostile client cannot raise.
    pub partitions_per_broker_max: u32,
    /// The most partitions one shard owns (Redpanda bounds partitions per
    /// core in the same spirit): a shard opens, drives and reconciles its
    /// partitions on one core, so its share is what decides how long it
    /// spends away from its connections. New partitions go to the least
    /// loaded shards, so this binds only when every shard is full, or when
    /// the broker restarted on fewer cores.
    pub partitions_per_shard_max: u32,
    /// The most topics (or config resources) one CreateTopics, DeleteTopics,
    /// CreatePartitions, DescribeConfigs, AlterConfigs or
    /// IncrementalAlterConfigs request may name. Each entry is a few bytes
    /// on the wire but its answer may be hundreds (an error message, a
    /// topic's configs with their documentation), so without a bound one
    /// 100 MiB request could make the broker build gigabytes of answer;
    /// 10,000 answers are a few MiB. Tools send one topic at a time, or
    /// every topic a pattern matches (a bulk delete), rarely thousands.
    pub topics_per_request_max: usize,
    /// The most config entries one CreateTopics, AlterConfigs or
    /// IncrementalAlterConfigs request may carry, summed over its topics.
    /// A topic has nine configs, so `topics_per_request_max` topics with
    /// every config set fit; beyond that a request is not a real client's.
    pub configs_per_request_max: usize,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub request_bytes_max: usize,
    /// How long a request frame may stay incomplete while the connection is
    /// reading it or waiting for the shard's request budget to admit it:
    /// from its first byte (or from when the connection starts reading
    /// again after its own requests in flight held it back) until its last. A connection still
    /// holding a partial frame then is closed and the shard logs it. The
    /// default, 30 s, is Kafka clients' `request.timeout.ms`: a client gives
    /// up on a request 30 s after sending it, so a frame that has not
    /// arrived whole by then comes from a client that has already given up
    /// or from one trickling bytes on purpose to hold a connection slot and
    /// its read buffer. Kafka itself has no such bound (its idle timer
    /// restarts with every byte); this one counts from the frame's start, so
    /// one byte now and then cannot keep a frame open forever.
    pub request_partial_frame_timeout_ms: u64,
    /// How long writing a response to a connection may make no progress
    /// (not one byte taken by the socket) before the connection is closed
    /// and the shard logs it. A client that sends requests and never reads
    /// its socket would otherwise keep the connection's task, its requests
    /// in flight (at most `requests_in_flight_per_connection_max`), their
    /// share of `request_bytes_in_flight_per_shard_max` and its Fetch
    /// answers (at most `fetch_response_bytes_per_connection_max`) for as
    /// long as it stays connected. The default, 30 s, is Kafka clients'
    /// `request.timeout.ms`: a client that has not read an answer 30 s
    /// after the socket stopped taking it has given up on that request
    /// and will reconnect anyway. Real clients read continuously (the Java
    /// consumer's heartbeat thread polls the socket even while the
    /// application is busy), so only a stuck or hostile peer meets it.
    /// Kafka closes such a channel only at `connections.max.idle.ms`.
    pub response_write_timeout_ms: u64,
    /// `connections.max.idle.ms`: a connection with no request in flight and
    /// no byte of a next one for this long is closed, as in Kafka (same
    /// default, 10 minutes). Clients reconnect when they need to, so this
    /// only gives back what a forgotten connection holds.
    pub connections_max_idle_ms: u64,
    /// Connections one shard serves at once; further ones are closed at
    /// accept. Lowered at start if all shards' connections together would
    /// not fit in the process's descriptor limit (`RLIMIT_NOFILE`) less
    /// `descriptors_reserved`.
    pub connections_per_shard_max: usize,
    /// File descriptors kept out of the connections' share of
    /// `RLIMIT_NOFILE`: partition segment and index files, the data
    /// directory, io_uring and the runtime's own.
    pub descriptors_reserved: usize,
    /// Requests one connection may have in flight: read and being handled,
    /// answered in order. Produce and Fetch requests overlap up to this
    /// bound; any other request waits for those before it and holds back
    /// those after it, so admin and group requests keep Kafka's one-at-a-
    /// time order.
    pub requests_in_flight_per_connection_max: usize,
    /// Bytes of request frames a shard holds in flight across all its
    /// connections (Kafka's `queued.max.request.bytes`), counted from the
    /// moment a frame's size prefix is read, before its body, until its
    /// response is written. When it is used up, connections stop reading
    /// their sockets until responses go out or frames still arriving
    /// complete or time out (`request_partial_frame_timeout_ms`, which
    /// so bounds how long a complete request can wait behind them).
    pub request_bytes_in_flight_per_shard_max: usize,
    /// `fetch.max.bytes`: the most record bytes one Fetch response carries
    /// (a consumer's own max_bytes can only lower it; the first batch of the
    /// first partition with data goes out whole even when larger). It also
    /// bounds what a Fetch reads into memory on each shard that owns some
    /// of its partitions: the owners read at once, each within this, and
    /// the answer is trimmed to it in request order.
    pub fetch_bytes_max: usize,
    /// Bytes of Fetch responses one connection may hold while they are
    /// built or wait to be written to its socket (each Fetch reserves its
    /// max_bytes, within this bound, before it reads). A client that does
    /// not read its answers gets no more than this buffered for it: its
    /// next Fetch waits and the connection stops reading requests. Per
    /// shard that is at most `connections_per_shard_max` times this.
    pub fetch_response_bytes_per_connection_max: usize,
    /// The longest a Fetch waits for `min_bytes` to arrive, whatever its
    /// `max_wait_ms` asks (Kafka clients ask 500 ms by default).
    pub fetch_wait_ms_max: u64,
    /// How long a shard runs tasks before it looks at finished I/O again
    /// (glommio's preemption timer; Seastar calls it the task quota).
    /// Connections whose data is ready are served in turns of about this
    /// length: glommio's own default, 100 ms, let one connection flooding
    /// cached Fetches delay another's ApiVersions by a quarter of a second.
    pub shard_task_quota_us: u64,
    /// Bytes of flushed batches each shard keeps in memory for tail reads.
    pub batch_cache_bytes_per_shard: usize,
    /// Topic defaults (Kafka's broker-level `log.*` settings).
    pub topic_defaults: TopicDefaults,
    /// Kafka's `log.retention.check.interval.ms`: how often each shard
    /// lets its partitions delete segments that retention made deletable.
    /// Appends find such segments too, but a partition nobody writes to
    /// would otherwise keep expired data for ever.
    pub log_retention_check_interval_ms: u64,
    /// The admin HTTP listener: Prometheus metrics at `/metrics`, probes
    /// at `/health` and `/ready` (see `admin_http`). None: not served.
    pub admin_listen: Option<SocketAddr>,
    /// The web console on the admin listener (`/ui`, `/api/...`) only
    /// reads: creating and deleting topics and producing are refused with
    /// 403, and the console hides its write buttons.
    pub admin_read_only: bool,
    /// Cluster id reported to clients; generated and persisted if absent.
    pub cluster_id: Option<String>,
    /// The most bytes one group-commit write carries. Unset: taken from the
    /// data directory's `io-properties.toml` (`corelog tune --probe-disk`)
    /// when present, else 4 MiB.
    pub write_bytes_max: Option<usize>,
    /// Segment files each partition keeps after retention deleted them, for
    /// its next segments to be written over (twice the write speed of new
    /// space on SSDs, and no zero fill). Costs up to this many segments of
    /// disk per partition beyond retention; 0 turns recycling off.
    pub segment_files_recycled_max: usize,
    /// The most bytes a produced batch's records may decompress to. Every
    /// compressed batch is decompressed once on produce, to check that each
    /// record in it decodes (a batch a consumer cannot read is refused, not
    /// stored), and the check holds the output while it walks it: this
    /// bounds that memory and the time one batch can take, so that a few
    /// kilobytes of crafted input cannot claim gigabytes. A larger batch is
    /// answered MESSAGE_TOO_LARGE, on which the Java producer splits it.
    pub batch_decompressed_bytes_max: usize,
    /// The most bytes one message-format conversion may produce (issue 21):
    /// a Produce v0-2 message set converted to a record batch, or one
    /// partition's records converted to a message set for a Fetch v0-3.
    /// The conversion holds its output (and, for a compressed input, the
    /// decompressed bytes, within `batch_decompressed_bytes_max`) in memory
    /// while it runs, so this bounds the memory an old client's request
    /// can take. A produce past it is answered MESSAGE_TOO_LARGE; a fetch
    /// stops converting there (the first message always goes out).
    pub legacy_conversion_bytes_max: usize,
    /// Consumer-group settings (Kafka's `group.*` and `offsets.*`).
    pub groups: GroupSettings,
    /// Transaction settings (Kafka's `transaction.*`).
    pub transactions: TxnSettings,
    /// The log cleaner of compacted topics (Kafka's `log.cleaner.*`).
    pub log_cleaner: CleanerSettings,
    /// A file the broker writes once every shard serves (when it logs
    /// "corelog ready"), for scripts and tests to wait on: JSON with `pid`,
    /// `listen`, `advertised`, `shards` and `write_bytes_max`. Written
    /// atomically (a temporary file beside it, then a rename), so it is
    /// either absent or complete. The broker does not remove a file left
    /// from an earlier run before it starts: whoever waits on it removes it
    /// first. Unset: no file.
    pub ready_file: Option<PathBuf>,
    /// `node.id`: this node's id in a cluster (at least 1, one of
    /// `controller_quorum_voters`). Set together with `cluster_listen` and
    /// `controller_quorum_voters`, or not at all: without them the broker
    /// is the single-node broker (issue 17, in progress; see
    /// `crate::cluster`).
    pub node_id: Option<i32>,
    /// The internal listener other nodes of the cluster reach this one on
    /// (metadata quorum frames, forwarded controller requests, `corelog
    /// cluster status`). Never advertised to Kafka clients.
    pub cluster_listen: Option<SocketAddr>,
    /// `controller.quorum.voters`: every voter of the metadata quorum as
    /// `id@host:port`, comma separated, each address a `cluster_listen`.
    pub controller_quorum_voters: Option<String>,
    /// `broker.heartbeat.interval.ms`: how often this node's broker
    /// heartbeats to the active controller (cluster mode only).
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: the active controller fences a broker
    /// whose heartbeats stop for this long (cluster mode only).
    pub broker_session_timeout_ms: u64,
    /// Cluster mode only: allow clients' topics with more than one
    /// replica. Off by default while replication is incomplete (issue 18):
    /// followers copy their leader's log, the high watermark waits for
    /// every in-sync replica's disk, the ISR shrinks and grows, a failover
    /// elects a leader from the ISR, and the internal offsets topic is
    /// replicated whatever this says; but each followed partition has a
    /// connection of its own to its leader, which counts against the
    /// leader's connection bound, and partitions cannot be reassigned.
    pub replication_preview: bool,
    /// `replica.lag.time.max.ms`: a follower that has not caught up with
    /// its leader's log end for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `leader.imbalance.check.interval.seconds`, in milliseconds,
    /// with `auto.leader.rebalance.enable`: how often the active
    /// controller gives partitions back to their preferred replica (the
    /// first of their replicas) once it is back in the ISR; 0 turns that
    /// off.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage`: a broker's preferred
    /// partitions are given back when more than this share of them is led
    /// by others.
    pub leader_imbalance_per_broker_percentage: u32,
}

/// See [`ServerConfig::listener_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerMode {
    SinglePort,
    ShardDirect,
}

impl std::str::FromStr for ListenerMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single-port" => Ok(ListenerMode::SinglePort),
            "shard-direct" => Ok(ListenerMode::ShardDirect),
            other => Err(format!(
                "listener_mode: {other:?} is neither \"single-port\" nor \"shard-direct\""
            )),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("data"),
            listen: "0.0.0.0:9092".parse().expect("static address"),
            advertised_listener: None,
            cores: 0,
            listener_mode: ListenerMode::SinglePort,
            shard_spin_before_park_us: 0,
            auto_create_topics: false,
            default_partitions: 1,
            partitions_per_topic_max: 10_000,
            partitions_per_request_max: 10_000,
            partitions_per_broker_max: 50_000,
            partitions_per_shard_max: 10_000,
            topics_per_request_max: 10_000,
            configs_per_request_max: 100_000,
            request_bytes_max: 100 << 20,
            request_partial_frame_timeout_ms: 30_000,
            connections_max_idle_ms: 600_000,
            response_write_timeout_ms: 30_000,
            connections_per_shard_max: 10_000,
            descriptors_reserved: 1024,
            requests_in_flight_per_connection_max: 5,
            request_bytes_in_flight_per_shard_max: 256 << 20,
            fetch_bytes_max: 57_671_680,
            fetch_wait_ms_max: 30_000,
            fetch_response_bytes_per_connection_max: 57_671_680,
            shard_task_quota_us: 500,
            batch_cache_bytes_per_shard: 256 << 20,
            topic_defaults: TopicDefaults::default(),
            log_retention_check_interval_ms: 300_000,
            admin_listen: None,
            admin_read_only: false,
            cluster_id: None,
            write_bytes_max: None,
            segment_files_recycled_max: LogConfig::default().segment_files_recycled_max,
            batch_decompressed_bytes_max: RecordLimits::default().decompressed_bytes_max,
            legacy_conversion_bytes_max: LEGACY_CONVERSION_BYTES_MAX_DEFAULT,
            groups: GroupSettings::default(),
            transactions: TxnSettings::default(),
            log_cleaner: CleanerSettings::default(),
            ready_file: None,
            node_id: None,
            cluster_listen: None,
            controller_quorum_voters: None,
            broker_heartbeat_interval_ms: 2_000,
            broker_session_timeout_ms: 9_000,
            replication_preview: false,
            replica_lag_time_max_ms: 30_000,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// Consumer-group settings, with Kafka's defaults.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupSettings {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`
    pub members_max: usize,
    /// The most consumer groups one shard holds, over all the offsets
    /// partitions it coordinates: empty groups, groups with members and
    /// "simple" groups that only commit offsets alike. Each new group id a
    /// client names creates coordinator state (and offsets-log records),
    /// so without a bound one client naming ever new group ids could grow
    /// a shard without end; Kafka has none. Checked before anything is
    /// created: JoinGroup, ConsumerGroupHeartbeat and OffsetCommit for a
    /// group that does not exist are answered GROUP_MAX_SIZE_REACHED, which
    /// clients treat as fatal and report to the application (see
    /// `corelog_coordination::GROUPS_FULL` for why that code). Requests
    /// for existing groups are served as ever. Empty groups without
    /// offsets are removed at the next offsets-retention check (every 10
    /// minutes, as in Kafka), groups with offsets once their offsets
    /// expire, and DeleteGroups removes empty groups at once. 100,000 is
    /// far above what a shard coordinates in practice (large Kafka
    /// clusters hold tens of thousands of groups in all) while bounding
    /// the memory: an empty group is a few hundred bytes of state, one
    /// with committed offsets some 150 bytes per partition more, so the
    /// bound is tens of megabytes per shard for groups with few offsets
    /// (an estimate, not a measurement).
    pub groups_per_shard_max: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_bytes_max: usize,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval_ms: i32,
    /// `offsets.topic.num.partitions`: used when the data directory is new;
    /// after that the count recorded in the cluster metadata holds, because
    /// changing it would move groups away from their committed offsets.
    pub offsets_topic_partitions: u32,
    /// `offsets.topic.segment.bytes`
    pub offsets_segment_bytes: u64,
    /// `offsets.topic.replication.factor` (cluster mode): the replicas of
    /// each partition of the internal offsets topic, so a group's
    /// committed offsets and its coordinator survive the loss of a
    /// broker. Unset: Kafka's 3, or the number of voters when there are
    /// fewer. Used when the topic is created (a group's first
    /// FindCoordinator); it is not created while fewer brokers are live.
    pub offsets_topic_replication_factor: Option<u32>,
}

impl Default for GroupSettings {
    fn default() -> Self {
        let c = corelog_coordination::CoordinatorConfig::default();
        GroupSettings {
            min_session_timeout_ms: c.min_session_timeout_ms,
            max_session_timeout_ms: c.max_session_timeout_ms,
            initial_rebalance_delay_ms: c.initial_rebalance_delay_ms,
            members_max: c.members_max,
            groups_per_shard_max: 100_000,
            offsets_retention_ms: c.offsets_retention_ms,
            offset_metadata_bytes_max: c.offset_metadata_bytes_max,
            consumer_session_timeout_ms: c.consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: c.consumer_heartbeat_interval_ms,
            offsets_topic_partitions: 50,
            offsets_segment_bytes: 100 << 20,
            offsets_topic_replication_factor: None,
        }
    }
}

impl GroupSettings {
    pub fn coordinator_config(&self) -> corelog_coordination::CoordinatorConfig {
        corelog_coordination::CoordinatorConfig {
            min_session_timeout_ms: self.min_session_timeout_ms,
            max_session_timeout_ms: self.max_session_timeout_ms,
            initial_rebalance_delay_ms: self.initial_rebalance_delay_ms,
            members_max: self.members_max,
            offsets_retention_ms: self.offsets_retention_ms,
            offset_metadata_bytes_max: self.offset_metadata_bytes_max,
            consumer_session_timeout_ms: self.consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: self.consumer_heartbeat_interval_ms,
            // Rewrite the live state once the superseded data reaches a
            // segment's worth, so whole segments can be dropped.
            snapshot_min_bytes: self.offsets_segment_bytes,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.min_session_timeout_ms <= 0
            || self.min_session_timeout_ms > self.max_session_timeout_ms
        {
            return Err("groups.min_session_timeout_ms: must be positive and at most max_session_timeout_ms".into());
        }
        if self.initial_rebalance_delay_ms < 0 {
            return Err("groups.initial_rebalance_delay_ms: must not be negative".into());
        }
        if self.members_max == 0 {
            return Err("groups.members_max: must be at least 1".into());
        }
        if self.groups_per_shard_max == 0 {
            return Err("groups.groups_per_shard_max: must be at least 1".into());
        }
        if self.consumer_session_timeout_ms <= 0
            || self.consumer_heartbeat_interval_ms <= 0
            || self.consumer_heartbeat_interval_ms >= self.consumer_session_timeout_ms
        {
            return Err("groups.consumer_heartbeat_interval_ms: must be positive and below consumer_session_timeout_ms".into());
        }
        if !(1..=1000).contains(&self.offsets_topic_partitions) {
            return Err("groups.offsets_topic_partitions: must be between 1 and 1000".into());
        }
        if self.offsets_segment_bytes < (1 << 20) {
            return Err("groups.offsets_segment_bytes: must be at least 1 MiB".into());
        }
        Ok(())
    }
}

/// The log cleaner's settings (Kafka's `log.cleaner.*`). Each shard runs
/// one cleaner for the compacted partitions it owns, one pass at a time,
/// in the shard's background task queue.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`: false leaves compacted topics uncleaned (they
    /// still refuse keyless records and keep their segments).
    pub enable: bool,
    /// `log.cleaner.backoff.ms`: how long a shard's cleaner sleeps when no
    /// partition needed a pass.
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`, per shard: the bytes a
    /// cleaner reads and writes per second at most. None: no limit (Kafka's
    /// default); the cleaner still yields to producers, its task queue
    /// having a tenth of the shares of the request path.
    pub io_max_bytes_per_second: Option<u64>,
    /// Kafka's `log.cleaner.dedupe.buffer.size`, per shard: the memory of a
    /// pass's key map. A larger dirty range is cleaned over several passes.
    pub offset_map_bytes_per_shard: usize,
    /// The dirty segment bytes one pass maps at most.
    pub dirty_bytes_per_pass_max: u64,
}

impl Default for CleanerSettings {
    fn default() -> Self {
        let budget = corelog_storage::CleanerBudget::default();
        CleanerSettings {
            enable: true,
            backoff_ms: 15_000,
            io_max_bytes_per_second: None,
            offset_map_bytes_per_shard: budget.offset_map_bytes_max,
            dirty_bytes_per_pass_max: budget.dirty_bytes_per_pass_max,
        }
    }
}

/// The smallest key map a cleaner may have: room for a few thousand keys.
pub const CLEANER_OFFSET_MAP_BYTES_MIN: usize = 1 << 20;

impl CleanerSettings {
    fn validate(&self) -> Result<(), String> {
        if self.backoff_ms == 0 || self.backoff_ms > TIMEOUT_MS_MAX {
            return Err(format!(
                "log_cleaner.backoff_ms: must be between 1 and {TIMEOUT_MS_MAX}"
            ));
        }
        if self.io_max_bytes_per_second == Some(0) {
            return Err(
                "log_cleaner.io_max_bytes_per_second: must be positive (leave it out for no limit)"
                    .into(),
            );
        }
        if self.offset_map_bytes_per_shard < CLEANER_OFFSET_MAP_BYTES_MIN {
            return Err(format!(
                "log_cleaner.offset_map_bytes_per_shard: must be at least {CLEANER_OFFSET_MAP_BYTES_MIN}"
            ));
        }
        if self.dirty_bytes_per_pass_max == 0 {
            return Err("log_cleaner.dirty_bytes_per_pass_max: must be positive".into());
        }
        Ok(())
    }

    /// What one pass may cost.
    pub fn budget(&self) -> corelog_storage::CleanerBudget {
        corelog_storage::CleanerBudget {
            offset_map_bytes_max: self.offset_map_bytes_per_shard,
            dirty_bytes_per_pass_max: self.dirty_bytes_per_pass_max,
        }
    }
}

/// Transaction settings, with Kafka's names and defaults.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`: used when the data
    /// directory is new; after that the count recorded in the cluster
    /// metadata holds, because a transactional id's coordinator is found by
    /// hashing the id over it.
    pub state_log_partitions: u32,
    /// `transaction.state.log.segment.bytes`
    pub state_log_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a
    /// producer may ask for (INVALID_TRANSACTION_TIMEOUT above it).
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long an idle transactional
    /// id's state is kept.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_timed_out_check_interval_ms: i64,
    /// The most transactional ids one coordinator (one partition of the
    /// transaction state log) holds: a named bound on its memory, a few
    /// hundred bytes per id plus its open transaction's partitions. Kafka
    /// has none; an InitProducerId for a new id past it is refused.
    pub transactional_ids_per_partition_max: usize,
    /// The most partitions one transaction may add: bounds the
    /// coordinator's state per id and the markers one EndTxn writes.
    pub partitions_per_transaction_max: usize,
}

impl Default for TxnSettings {
    fn default() -> Self {
        TxnSettings {
            state_log_partitions: 50,
            state_log_segment_bytes: 100 << 20,
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
            abort_timed_out_check_interval_ms: 10_000,
            transactional_ids_per_partition_max: 100_000,
            partitions_per_transaction_max: 10_000,
        }
    }
}

impl TxnSettings {
    pub fn coordinator_config(&self) -> corelog_coordination::TxnConfig {
        corelog_coordination::TxnConfig {
            transaction_max_timeout_ms: self.max_timeout_ms,
            transactional_id_expiration_ms: self.id_expiration_ms,
            abort_timed_out_check_interval_ms: self.abort_timed_out_check_interval_ms,
            transactional_ids_max: self.transactional_ids_per_partition_max,
            partitions_per_txn_max: self.partitions_per_transaction_max,
            // Rewrite the live state once the superseded data reaches a
            // segment's worth, so whole segments can be dropped.
            snapshot_min_bytes: self.state_log_segment_bytes,
            ..corelog_coordination::TxnConfig::default()
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.state_log_partitions) {
            return Err("transactions.state_log_partitions: must be between 1 and 1000".into());
        }
        if self.state_log_segment_bytes < (1 << 20) {
            return Err("transactions.state_log_segment_bytes: must be at least 1 MiB".into());
        }
        if self.max_timeout_ms <= 0 {
            return Err("transactions.max_timeout_ms: must be positive".into());
        }
        if self.id_expiration_ms <= 0 || self.abort_timed_out_check_interval_ms <= 0 {
            return Err("transactions.id_expiration_ms and abort_timed_out_check_interval_ms: must be positive".into());
        }
        if self.transactional_ids_per_partition_max == 0 || self.partitions_per_transaction_max == 0
        {
            return Err("transactions.transactional_ids_per_partition_max and partitions_per_transaction_max: must be at least 1".into());
        }
        Ok(())
    }
}

/// Broker-level defaults for topic configs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// -1 keeps data forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: u32,
    /// "always", or a number of milliseconds between fdatasyncs.
    pub flush_policy: String,
    /// `log.cleanup.policy`: "delete", "compact" or "compact,delete".
    pub cleanup_policy: String,
    /// `log.cleaner.min.cleanable.ratio`: see
    /// `LogConfig::min_cleanable_dirty_ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `log.cleaner.min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `log.cleaner.delete.retention.ms`: how long tombstones stay after
    /// the cleaner first passed them.
    pub delete_retention_ms: i64,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            flush_policy: "always".into(),
            cleanup_policy: "delete".into(),
            min_cleanable_dirty_ratio: LogConfig::default().min_cleanable_dirty_ratio,
            min_compaction_lag_ms: LogConfig::default().min_compaction_lag_ms,
            max_compaction_lag_ms: LogConfig::default().max_compaction_lag_ms,
            delete_retention_ms: LogConfig::default().delete_retention_ms,
        }
    }
}

impl ServerConfig {
    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.data_dir.as_os_str().is_empty() {
            return Err("data_dir: must not be empty".into());
        }
        if self.default_partitions == 0 {
            return Err("default_partitions: must be at least 1".into());
        }
        for (name, value) in [
            ("partitions_per_topic_max", self.partitions_per_topic_max),
            (
                "partitions_per_request_max",
                self.partitions_per_request_max,
            ),
            ("partitions_per_broker_max", self.partitions_per_broker_max),
            ("partitions_per_shard_max", self.partitions_per_shard_max),
        ] {
            if value == 0 || value > i32::MAX as u32 {
                return Err(format!("{name}: must be between 1 and {}", i32::MAX));
            }
        }
        if self.default_partitions > self.partitions_per_topic_max {
            return Err(
                "default_partitions: must be at most partitions_per_topic_max, or topics created without a count would be refused"
                    .into(),
            );
        }
        let internal =
            self.groups.offsets_topic_partitions + self.transactions.state_log_partitions;
        if self.partitions_per_broker_max <= internal {
            return Err(format!(
                "partitions_per_broker_max: must be above groups.offsets_topic_partitions plus transactions.state_log_partitions ({internal}), whose partitions count against it",
            ));
        }
        if self.topics_per_request_max == 0 {
            return Err("topics_per_request_max: must be at least 1".into());
        }
        if self.configs_per_request_max == 0 {
            return Err("configs_per_request_max: must be at least 1".into());
        }
        if self.request_bytes_max < 1024 || self.request_bytes_max > i32::MAX as usize {
            return Err(format!(
                "request_bytes_max: must be between 1024 and {}",
                i32::MAX
            ));
        }
        // Bounded so that a deadline computed from them cannot overflow.
        if !(1..=TIMEOUT_MS_MAX).contains(&self.request_partial_frame_timeout_ms) {
            return Err(format!(
                "request_partial_frame_timeout_ms: must be between 1 and {TIMEOUT_MS_MAX}"
            ));
        }
        if !(1..=TIMEOUT_MS_MAX).contains(&self.connections_max_idle_ms) {
            return Err(format!(
                "connections_max_idle_ms: must be between 1 and {TIMEOUT_MS_MAX}"
            ));
        }
        if !(1..=TIMEOUT_MS_MAX).contains(&self.response_write_timeout_ms) {
            return Err(format!(
                "response_write_timeout_ms: must be between 1 and {TIMEOUT_MS_MAX}"
            ));
        }
        if let Some(w) = self.write_bytes_max {
            if !(WRITE_BYTES_MIN..=WRITE_BYTES_LIMIT).contains(&w) {
                return Err(format!(
                    "write_bytes_max: must be between {WRITE_BYTES_MIN} and {WRITE_BYTES_LIMIT}"
                ));
            }
        }
        if self.connections_per_shard_max == 0 {
            return Err("connections_per_shard_max: must be at least 1".into());
        }
        if !(1..=1024).contains(&self.requests_in_flight_per_connection_max) {
            return Err("requests_in_flight_per_connection_max: must be between 1 and 1024".into());
        }
        if self.fetch_bytes_max < 1024 || self.fetch_bytes_max > i32::MAX as usize {
            return Err(format!(
                "fetch_bytes_max: must be between 1024 and {}",
                i32::MAX
            ));
        }
        if self.legacy_conversion_bytes_max < 1024 {
            return Err("legacy_conversion_bytes_max: must be at least 1024".into());
        }
        if self.fetch_response_bytes_per_connection_max < 1024 {
            return Err("fetch_response_bytes_per_connection_max: must be at least 1024".into());
        }
        if self.shard_spin_before_park_us > 10_000 {
            return Err("shard_spin_before_park_us: must be at most 10000".into());
        }
        if !(100..=100_000).contains(&self.shard_task_quota_us) {
            return Err("shard_task_quota_us: must be between 100 and 100000".into());
        }
        if self.log_retention_check_interval_ms == 0
            || self.log_retention_check_interval_ms > TIMEOUT_MS_MAX
        {
            return Err(format!(
                "log_retention_check_interval_ms: must be between 1 and {TIMEOUT_MS_MAX}"
            ));
        }
        if self.fetch_wait_ms_max == 0 || self.fetch_wait_ms_max > i32::MAX as u64 {
            return Err(format!(
                "fetch_wait_ms_max: must be between 1 and {}",
                i32::MAX
            ));
        }
        if self.request_bytes_in_flight_per_shard_max < self.request_bytes_max {
            return Err(
                "request_bytes_in_flight_per_shard_max: must be at least request_bytes_max, or the largest request could never be admitted"
                    .into(),
            );
        }
        if self
            .ready_file
            .as_ref()
            .is_some_and(|p| p.file_name().is_none())
        {
            return Err("ready_file: must name a file".into());
        }
        if let Some(adv) = &self.advertised_listener {
            parse_host_port(adv).map_err(|e| format!("advertised_listener: {e}"))?;
        }
        self.groups.validate()?;
        self.transactions.validate()?;
        self.log_cleaner.validate()?;
        self.cluster()?;
        let d = &self.topic_defaults;
        parse_flush_policy(&d.flush_policy)
            .map_err(|e| format!("topic_defaults.flush_policy: {e}"))?;
        CleanupPolicy::parse(&d.cleanup_policy)
            .map_err(|e| format!("topic_defaults.cleanup_policy: {e}"))?;
        if d.max_message_bytes == 0 {
            return Err("topic_defaults.max_message_bytes: must be positive".into());
        }
        self.base_log_config()
            .validate()
            .map_err(|e| format!("topic_defaults: {e}"))?;
        Ok(())
    }

    /// Why a request naming `topics` topics (or config resources) is
    /// refused, if it is: INVALID_REQUEST, naming `topics_per_request_max`.
    pub fn refuse_topics(&self, topics: usize) -> Option<ServerError> {
        let max = self.topics_per_request_max;
        (topics > max).then(|| {
            ServerError::InvalidRequest(format!(
                "topics_per_request_max is {max}: the request names {topics}."
            ))
        })
    }

    /// Why a request carrying `configs` config entries is refused, if it
    /// is: INVALID_REQUEST, naming `configs_per_request_max`.
    pub fn refuse_configs(&self, configs: usize) -> Option<ServerError> {
        let max = self.configs_per_request_max;
        (configs > max).then(|| {
            ServerError::InvalidRequest(format!(
                "configs_per_request_max is {max}: the request carries {configs}."
            ))
        })
    }

    /// The log settings a topic without overrides gets.
    pub fn base_log_config(&self) -> LogConfig {
        let d = &self.topic_defaults;
        LogConfig {
            segment_bytes_max: d.segment_bytes,
            segment_ms: d.segment_ms,
            retention_ms: (d.retention_ms >= 0).then_some(d.retention_ms),
            retention_bytes: (d.retention_bytes >= 0).then_some(d.retention_bytes as u64),
            flush_policy: parse_flush_policy(&d.flush_policy).unwrap_or(FlushPolicy::Always),
            write_bytes_max: self
                .write_bytes_max
                .unwrap_or(LogConfig::default().write_bytes_max),
            segment_files_recycled_max: self.segment_files_recycled_max,
            record_limits: RecordLimits {
                decompressed_bytes_max: self.batch_decompressed_bytes_max,
            },
            cleanup_policy: CleanupPolicy::parse(&d.cleanup_policy)
                .unwrap_or(CleanupPolicy::Delete),
            min_cleanable_dirty_ratio: d.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: d.min_compaction_lag_ms,
            max_compaction_lag_ms: d.max_compaction_lag_ms,
            delete_retention_ms: d.delete_retention_ms,
            ..LogConfig::default()
        }
    }

    /// (host, port) clients should connect to.
    pub fn advertised(&self) -> (String, u16) {
        match self.advertised_listener.as_deref().map(parse_host_port) {
            Some(Ok(hp)) => hp,
            _ => {
                let ip = self.listen.ip();
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    ip.to_string()
                };
                (host, self.listen.port())
            }
        }
    }
}

/// One voter of the metadata quorum (`id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The cluster settings, once validated: present only in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub node_id: i32,
    pub cluster_listen: SocketAddr,
    /// In node id order.
    pub voters: Vec<Voter>,
    pub heartbeat_interval_ms: u64,
    pub session_timeout_ms: u64,
    pub leader_imbalance_check_interval_ms: u64,
    pub leader_imbalance_per_broker_percentage: u32,
    /// `groups.offsets_topic_replication_factor`, resolved against the
    /// voters.
    pub offsets_topic_replication_factor: u32,
}

impl ClusterSettings {
    /// The cluster id every node of this quorum reports when `cluster_id`
    /// is not set: a function of the voters (ids and addresses), which
    /// every node is given alike, so clients see one cluster. 22
    /// characters, like Kafka's.
    pub fn derived_cluster_id(&self) -> String {
        // FNV-1a, twice with different offsets: stable across builds and
        // platforms, unlike std's hasher.
        let fnv = |seed: u64| {
            let mut h = seed;
            for v in &self.voters {
                for b in format!("{}@{};", v.id, v.address()).bytes() {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(0x100_0000_01b3);
                }
            }
            h
        };
        let bytes = [fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142)];
        let id = uuid::Uuid::from_u64_pair(bytes[0], bytes[1]);
        id.simple().to_string()[..22].to_string()
    }
}

/// The most voters a quorum may have (the quorum codec's bound).
pub const VOTERS_MAX: usize = 64;

/// Parses `controller_quorum_voters` (`1@host:port,2@host:port`).
pub fn parse_voters(s: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("empty voter in {s:?}"));
        }
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| format!("expected id@host:port, got {part:?}"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| format!("bad node id in {part:?}"))?;
        if id < 1 {
            return Err(format!(
                "node id {id} in {part:?}: node ids must be at least 1"
            ));
        }
        let (host, port) = parse_host_port(addr.trim())?;
        if port == 0 {
            return Err(format!("port 0 in {part:?}"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(format!("node id {id} is named twice"));
        }
        if voters.iter().any(|v| v.host == host && v.port == port) {
            return Err(format!("address {host}:{port} is named twice"));
        }
        voters.push(Voter { id, host, port });
    }
    if voters.len() > VOTERS_MAX {
        return Err(format!("at most {VOTERS_MAX} voters"));
    }
    voters.sort_by_key(|v| v.id);
    Ok(voters)
}

impl ServerConfig {
    /// The cluster settings, checked: `Ok(None)` for a single-node broker
    /// (none of `node_id`, `cluster_listen`, `controller_quorum_voters`
    /// set).
    pub fn cluster(&self) -> Result<Option<ClusterSettings>, String> {
        let (node_id, listen, voters) = match (
            self.node_id,
            self.cluster_listen,
            self.controller_quorum_voters.as_deref(),
        ) {
            (None, None, None) => return Ok(None),
            (Some(n), Some(l), Some(v)) => (n, l, v),
            _ => {
                return Err(
                    "node_id, cluster_listen and controller_quorum_voters: set all three (a cluster node) or none (a single-node broker)"
                        .into(),
                )
            }
        };
        let voters = parse_voters(voters).map_err(|e| format!("controller_quorum_voters: {e}"))?;
        if node_id < 1 {
            return Err("node_id: must be at least 1".into());
        }
        let Some(own) = voters.iter().find(|v| v.id == node_id) else {
            return Err(format!(
                "node_id: {node_id} is not among controller_quorum_voters (every node of this increment is a voter)"
            ));
        };
        if listen.port() == 0 {
            return Err("cluster_listen: port must not be 0".into());
        }
        if listen.port() == self.listen.port() {
            return Err(format!(
                "cluster_listen: port {} is also the Kafka listen port; the internal listener needs a port of its own",
                listen.port()
            ));
        }
        if own.port != listen.port() {
            return Err(format!(
                "cluster_listen: port {} differs from this node's voter address {} in controller_quorum_voters",
                listen.port(),
                own.address()
            ));
        }
        if self.listener_mode != ListenerMode::SinglePort {
            return Err(
                "listener_mode: shard-direct is not supported on a cluster node yet (its per-shard node ids would collide with other nodes')"
                    .into(),
            );
        }
        if !(10..=TIMEOUT_MS_MAX).contains(&self.broker_heartbeat_interval_ms) {
            return Err(format!(
                "broker_heartbeat_interval_ms: must be between 10 and {TIMEOUT_MS_MAX}"
            ));
        }
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
            || self.broker_session_timeout_ms > TIMEOUT_MS_MAX
        {
            return Err(format!(
                "broker_session_timeout_ms: must be above broker_heartbeat_interval_ms and at most {TIMEOUT_MS_MAX}"
            ));
        }
        if self.leader_imbalance_check_interval_ms > TIMEOUT_MS_MAX
            || self.leader_imbalance_per_broker_percentage > 100
        {
            return Err(format!(
                "leader_imbalance_check_interval_ms must be at most {TIMEOUT_MS_MAX}, and leader_imbalance_per_broker_percentage at most 100"
            ));
        }
        let offsets_topic_replication_factor = match self.groups.offsets_topic_replication_factor
        {
            None => voters.len().min(3) as u32,
            Some(n) if n >= 1 && n as usize <= voters.len() => n,
            Some(n) => {
                return Err(format!(
                    "groups.offsets_topic_replication_factor: {n} must be between 1 and the number of voters ({})",
                    voters.len()
                ))
            }
        };
        Ok(Some(ClusterSettings {
            offsets_topic_replication_factor,
            node_id,
            cluster_listen: listen,
            voters,
            heartbeat_interval_ms: self.broker_heartbeat_interval_ms,
            session_timeout_ms: self.broker_session_timeout_ms,
            leader_imbalance_check_interval_ms: self.leader_imbalance_check_interval_ms,
            leader_imbalance_per_broker_percentage: self.leader_imbalance_per_broker_percentage,
        }))
    }
}

/// The longest connection timeout accepted, in milliseconds: Java's
/// `Integer.MAX_VALUE`, about 24.8 days, the bound Kafka's own int settings
/// have.
pub const TIMEOUT_MS_MAX: u64 = i32::MAX as u64;

/// Bounds of `write_bytes_max`.
pub const WRITE_BYTES_MIN: usize = 64 << 10;
pub const WRITE_BYTES_LIMIT: usize = 16 << 20;

/// The group-commit write size a disk probe recommends: the write size
/// that reaches 90% of the device's bandwidth times the writes it needs in
/// flight (the kernel splits one large direct write into parallel requests),
/// within [`WRITE_BYTES_MIN`, `WRITE_BYTES_LIMIT`].
pub fn write_bytes_from_probe(write_chunk_bytes: u64, write_queue_depth: u32) -> usize {
    let bytes = write_chunk_bytes.saturating_mul(write_queue_depth.max(1) as u64);
    (bytes.min(WRITE_BYTES_LIMIT as u64) as usize).max(WRITE_BYTES_MIN)
}

pub fn parse_flush_policy(s: &str) -> Result<FlushPolicy, String> {
    match s {
        "always" => Ok(FlushPolicy::Always),
        ms => ms
            .parse::<u64>()
            .ok()
            .filter(|&v| v > 0)
            .map(FlushPolicy::IntervalMs)
            .ok_or_else(|| format!("expected \"always\" or a positive number of ms, got {s:?}")),
    }
}

fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected host:port, got {s:?}"))?;
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("bad port in {s:?}: {e}"))?;
    if host.is_empty() {
        return Err(format!("missing host in {s:?}"));
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_recycling_is_on_by_default_and_can_be_turned_off() {
        assert_eq!(
            ServerConfig::default()
                .base_log_config()
                .segment_files_recycled_max,
            1
        );
        let off: ServerConfig = toml::from_str("segment_files_recycled_max = 0").unwrap();
        assert_eq!(off.base_log_config().segment_files_recycled_max, 0);
    }

    #[test]
    fn defaults_are_valid_and_listen_on_9092() {
        let c = ServerConfig::default();
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 9092);
        assert_eq!(c.request_partial_frame_timeout_ms, 30_000);
        assert_eq!(c.connections_max_idle_ms, 600_000);
        assert_eq!(c.response_write_timeout_ms, 30_000);
        assert_eq!(c.advertised(), ("127.0.0.1".to_string(), 9092));
    }

    #[test]
    fn listener_mode_and_spin_are_read_from_toml_and_checked() {
        let c: ServerConfig =
            toml::from_str("listener_mode = \"shard-direct\"\nshard_spin_before_park_us = 50")
                .unwrap();
        assert_eq!(c.listener_mode, ListenerMode::ShardDirect);
        c.validate().unwrap();
        assert_eq!(
            ServerConfig::default().listener_mode,
            ListenerMode::SinglePort
        );
        assert!(toml::from_str::<ServerConfig>("listener_mode = \"per-core\"").is_err());
        assert_eq!(
            "shard-direct".parse::<ListenerMode>(),
            Ok(ListenerMode::ShardDirect)
        );
        assert!("both".parse::<ListenerMode>().is_err());
        let spin = ServerConfig {
            shard_spin_before_park_us: 10_001,
            ..Default::default()
        };
        assert!(spin
            .validate()
            .unwrap_err()
            .starts_with("shard_spin_before_park_us"));
    }

    #[test]
    fn probe_results_set_the_group_commit_write_size_within_bounds() {
        assert_eq!(write_bytes_from_probe(64 << 10, 16), 1 << 20);
        assert_eq!(write_bytes_from_probe(4096, 1), WRITE_BYTES_MIN);
        assert_eq!(write_bytes_from_probe(1 << 20, 64), WRITE_BYTES_LIMIT);
        let c = ServerConfig {
            write_bytes_max: Some(write_bytes_from_probe(64 << 10, 16)),
            ..Default::default()
        };
        assert_eq!(c.base_log_config().write_bytes_max, 1 << 20);
        let bad = ServerConfig {
            write_bytes_max: Some(100),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("write_bytes_max"));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let c = ServerConfig {
            default_partitions: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().starts_with("default_partitions"));
        let mut c = ServerConfig::default();
        c.topic_defaults.flush_policy = "sometimes".into();
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("topic_defaults.flush_policy"));
        let mut c = ServerConfig::default();
        c.topic_defaults.segment_bytes = 1 << 40;
        assert!(c.validate().unwrap_err().contains("segment.bytes"));
        let c = ServerConfig {
            advertised_listener: Some("nohostport".into()),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().starts_with("advertised_listener"));
        let mut c = ServerConfig::default();
        c.groups.consumer_heartbeat_interval_ms = c.groups.consumer_session_timeout_ms;
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("groups.consumer_heartbeat_interval_ms"));
        let c = ServerConfig {
            request_partial_frame_timeout_ms: 0,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("request_partial_frame_timeout_ms"));
        let c = ServerConfig {
            connections_max_idle_ms: u64::MAX,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("connections_max_idle_ms"));
        let c = ServerConfig {
            response_write_timeout_ms: 0,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("response_write_timeout_ms"));
        let mut c = ServerConfig::default();
        c.groups.offsets_topic_partitions = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("groups.offsets_topic_partitions"));
    }

    #[test]
    fn group_defaults_are_kafkas_and_reach_the_coordinator() {
        let g = GroupSettings::default();
        assert_eq!(g.min_session_timeout_ms, 6_000);
        assert_eq!(g.max_session_timeout_ms, 1_800_000);
        assert_eq!(g.initial_rebalance_delay_ms, 3_000);
        assert_eq!(g.offsets_topic_partitions, 50);
        assert_eq!(g.groups_per_shard_max, 100_000);
        assert_eq!(g.offsets_retention_ms, 7 * 24 * 3600 * 1000);
        let g = GroupSettings {
            min_session_timeout_ms: 1_000,
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        };
        let c = g.coordinator_config();
        assert_eq!(c.min_session_timeout_ms, 1_000);
        assert_eq!(c.initial_rebalance_delay_ms, 0);
        assert_eq!(c.snapshot_min_bytes, g.offsets_segment_bytes);
    }

    fn cluster_config(toml_text: &str) -> Result<Option<ClusterSettings>, String> {
        let c: ServerConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        c.validate()?;
        c.cluster()
    }

    #[test]
    fn cluster_settings_come_together_or_not_at_all() {
        assert_eq!(cluster_config(""), Ok(None));
        let ok = cluster_config(
            "node_id = 2\ncluster_listen = \"127.0.0.1:9193\"\ncontroller_quorum_voters = \"1@127.0.0.1:9093, 3@localhost:9293,2@127.0.0.1:9193\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.node_id, 2);
        assert_eq!(
            ok.voters.iter().map(|v| v.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(ok.voters[2].address(), "localhost:9293");
        assert_eq!(ok.session_timeout_ms, 9_000);
        let err = cluster_config("node_id = 1").unwrap_err();
        assert!(err.contains("set all three"), "{err}");
    }

    #[test]
    fn every_node_of_a_quorum_derives_the_same_cluster_id() {
        let node = |id: i32, port: u16, voters: &str| {
            cluster_config(&format!(
                "node_id = {id}\ncluster_listen = \"127.0.0.1:{port}\"\ncontroller_quorum_voters = \"{voters}\"\nlisten = \"127.0.0.1:9092\"\n"
            ))
            .unwrap()
            .unwrap()
            .derived_cluster_id()
        };
        let v = "1@127.0.0.1:9093,2@127.0.0.1:9193";
        let id = node(1, 9093, v);
        assert_eq!(id.len(), 22);
        assert_eq!(node(2, 9193, v), id);
        // Another quorum, another id.
        assert_ne!(node(1, 9093, "1@127.0.0.1:9093,2@127.0.0.1:9194"), id);
    }

    #[test]
    fn the_offsets_topic_has_three_replicas_or_one_per_voter_when_fewer() {
        let voters = |n: u32, extra: &str| {
            let list: Vec<String> = (1..=n)
                .map(|i| format!("{i}@127.0.0.1:{}", 9093 + 100 * i))
                .collect();
            cluster_config(&format!(
                "node_id = 1\ncluster_listen = \"127.0.0.1:9193\"\ncontroller_quorum_voters = \"{}\"\n{extra}",
                list.join(",")
            ))
        };
        let rf = |n, extra| voters(n, extra).map(|c| c.unwrap().offsets_topic_replication_factor);
        assert_eq!(rf(1, ""), Ok(1));
        assert_eq!(rf(2, ""), Ok(2));
        assert_eq!(rf(3, ""), Ok(3));
        assert_eq!(rf(5, ""), Ok(3));
        let set = "[groups]\noffsets_topic_replication_factor = 2\n";
        assert_eq!(rf(5, set), Ok(2));
        let err = rf(1, set).unwrap_err();
        assert!(
            err.contains("groups.offsets_topic_replication_factor"),
            "{err}"
        );
        let zero = "[groups]\noffsets_topic_replication_factor = 0\n";
        assert!(rf(3, zero).is_err());
    }

    #[test]
    fn cluster_settings_are_checked() {
        let with = |node: i32, listen: &str, voters: &str, extra: &str| {
            cluster_config(&format!(
                "node_id = {node}\ncluster_listen = \"{listen}\"\ncontroller_quorum_voters = \"{voters}\"\nlisten = \"127.0.0.1:9092\"\n{extra}"
            ))
            .unwrap_err()
        };
        let v = "1@127.0.0.1:9093,2@127.0.0.1:9193";
        for (err, want) in [
            (with(3, "127.0.0.1:9093", v, ""), "node_id: 3 is not among"),
            (
                with(1, "127.0.0.1:9094", v, ""),
                "differs from this node's voter address",
            ),
            (
                with(1, "127.0.0.1:9092", "1@127.0.0.1:9092", ""),
                "also the Kafka listen port",
            ),
            (
                with(0, "127.0.0.1:9093", "0@127.0.0.1:9093", ""),
                "at least 1",
            ),
            (
                with(1, "127.0.0.1:9093", "1@127.0.0.1:9093,1@127.0.0.1:9193", ""),
                "named twice",
            ),
            (
                with(1, "127.0.0.1:9093", "1@127.0.0.1:9093,2@127.0.0.1:9093", ""),
                "named twice",
            ),
            (
                with(1, "127.0.0.1:9093", "1@127.0.0.1:9093,x@h:1", ""),
                "bad node id",
            ),
            (
                with(1, "127.0.0.1:9093", "1@127.0.0.1:9093,", ""),
                "empty voter",
            ),
            (
                with(1, "127.0.0.1:9093", "1127.0.0.1:9093", ""),
                "expected id@host:port",
            ),
            (
                with(1, "127.0.0.1:9093", v, "listener_mode = \"shard-direct\""),
                "shard-direct",
            ),
            (
                with(1, "127.0.0.1:9093", v, "broker_session_timeout_ms = 1000"),
                "broker_session_timeout_ms",
            ),
        ] {
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
    }
}
