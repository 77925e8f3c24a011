//! Metrics in Prometheus' text exposition format (version 0.0.4), gathered
//! when scraped.
//!
//! Every value here is read at scrape time from state the broker keeps
//! anyway (partition offsets and sizes, connection counts, the batch
//! cache, the request budget) and from the process' `/proc` files: a
//! scrape costs the data path nothing between scrapes. Shard 0 asks each
//! shard for a [`ShardSample`] over the mesh, one job per shard, and
//! renders them; a shard that does not answer (stopping) is left out.
//!
//! Names follow Prometheus' conventions: base units (`_bytes`,
//! `_seconds`), `_total` for counters, the `process_*` names every
//! Prometheus client library uses.
//!
//! Lives on: the shard that serves the admin listener (shard 0) renders;
//! each sample is taken on its own shard.

use std::fmt::Write as _;
use std::rc::Rc;

use corelog_runtime::latency::{LatencySnapshot, LATENCY_BUCKETS_SECONDS};

use crate::shard::Shard;
use crate::ShardId;

/// One partition's numbers, as its owning shard sees them.
#[derive(Debug, Clone)]
pub struct PartitionSample {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    /// For a compacted log: its dirty ratio and last cleaned offset.
    pub cleaner: Option<(f64, i64)>,
}

/// What one shard reports; sent from its thread to shard 0.
#[derive(Debug, Clone)]
pub struct ShardSample {
    pub shard: u32,
    pub connections: usize,
    pub partitions: Vec<PartitionSample>,
    pub batch_cache_bytes: usize,
    pub batch_cache_bytes_max: usize,
    /// Batch-cache lookups that found their batch, and those that went to
    /// the disk.
    pub batch_cache_hits: u64,
    pub batch_cache_misses: u64,
    /// The shard's durable writes and fdatasyncs: durations, and the bytes
    /// of the writes.
    pub syncs: LatencySnapshot,
    pub synced_bytes: u64,
    pub request_bytes_in_flight: u64,
    pub request_bytes_in_flight_max: u64,
    /// Message-format conversions the shard did for old clients (issue 21).
    pub conversions: crate::handlers::conversions::Counts,
    /// Requests its connections sent, per api.
    pub requests: Vec<crate::request_metrics::ApiSample>,
    /// Bytes and records in and out per partition, as counted on this
    /// shard (summed over the shards when rendered).
    pub traffic: Vec<(String, i32, crate::traffic::Counts)>,
    /// The committed offsets of the groups this shard coordinates, at most
    /// [`GROUP_LAG_SERIES_MAX`].
    pub committed_offsets: Vec<(String, crate::TopicPartition, i64)>,
}

/// The most committed offsets (group and partition pairs) one shard
/// reports per scrape: each is a lag series, and a broker with many groups
/// over many partitions would otherwise make a scrape of unbounded size.
/// Kafka tools show the rest (`corelog group describe`).
pub const GROUP_LAG_SERIES_MAX: usize = 10_000;

/// Takes this shard's sample. Synchronous: nothing here waits.
pub fn sample(shard: &Shard) -> ShardSample {
    let mut partitions: Vec<PartitionSample> = shard
        .partitions()
        .keys()
        .into_iter()
        .filter_map(|key| {
            let p = shard.partition(&key.topic, key.partition)?;
            Some(PartitionSample {
                log_start_offset: p.log_start_offset().0,
                log_end_offset: p.log_end_offset().0,
                high_watermark: p.high_watermark().0,
                size_bytes: p.size_bytes(),
                cleaner: p
                    .cleaner_state()
                    .map(|c| (c.dirty_ratio, c.last_cleaned_offset.0)),
                topic: key.topic,
                partition: key.partition,
            })
        })
        .collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let (batch_cache_bytes, batch_cache_bytes_max, (batch_cache_hits, batch_cache_misses)) = {
        let cache = shard.cache().borrow();
        (
            cache.bytes_used(),
            cache.bytes_max(),
            cache.hits_and_misses(),
        )
    };
    let (syncs, synced_bytes) = corelog_runtime::io::sync_stats();
    let budget_max = shard.config().request_bytes_in_flight_per_shard_max as u64;
    let available = shard.request_bytes_budget().available();
    ShardSample {
        shard: shard.id().0,
        connections: shard.connections(),
        partitions,
        batch_cache_bytes,
        batch_cache_bytes_max,
        batch_cache_hits,
        batch_cache_misses,
        syncs,
        synced_bytes,
        request_bytes_in_flight: budget_max.saturating_sub(available),
        request_bytes_in_flight_max: budget_max,
        // Taken on the shard's own thread, whose counts they are.
        conversions: crate::handlers::conversions::counts(),
        requests: crate::request_metrics::snapshot(),
        traffic: crate::traffic::snapshot(&shard.metadata()),
        committed_offsets: shard.groups().committed_offsets(GROUP_LAG_SERIES_MAX),
    }
}

/// Asks every shard for its sample, in shard order.
pub async fn gather(shard: &Rc<Shard>) -> Vec<ShardSample> {
    let mut samples = Vec::with_capacity(shard.shard_count());
    for id in 0..shard.shard_count() {
        let answer = shard
            .call(ShardId(id as u32), |s| async move { sample(&s) })
            .await;
        if let Ok(s) = answer {
            samples.push(s);
        }
    }
    samples
}

/// The process' own numbers, from `/proc/self` (Linux).
#[derive(Debug, Clone, Default)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
    pub threads: u64,
}

/// Reads the process' numbers. It reads files (blocking calls): run it on
/// the blocking pool, not on an executor.
pub fn process_sample() -> ProcessSample {
    let mut p = ProcessSample::default();
    // SAFETY: sysconf has no preconditions; it only reads system values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let (ticks, page) = (ticks.max(1) as f64, page.max(1) as u64);
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // The command name (field 2) is in parentheses and may hold
        // spaces: the numbered fields start after its closing one.
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 3.. of proc(5), so field n is f[n - 3].
            let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(utime), Some(stime)) = (num(14), num(15)) {
                p.cpu_seconds = (utime + stime) as f64 / ticks;
            }
            p.threads = num(20).unwrap_or(0);
            p.virtual_memory_bytes = num(23).unwrap_or(0);
            p.resident_memory_bytes = num(24).unwrap_or(0) * page;
            if let (Some(start_ticks), Some(boot)) = (num(22), boot_time_seconds()) {
                p.start_time_seconds = boot + start_ticks as f64 / ticks;
            }
        }
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        p.max_fds = limit.rlim_cur;
    }
    p
}

fn boot_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// A label value as the exposition format writes it: backslash, double
/// quote and line feed escaped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes one metric family: its HELP and TYPE lines, then its samples
/// (label text without braces, value).
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, V)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Renders the samples as one exposition.
pub fn render(shards: &[ShardSample], process: &ProcessSample, ready: bool) -> String {
    let mut out = String::new();
    let per_shard = |f: &dyn Fn(&ShardSample) -> String| -> Vec<(String, String)> {
        shards
            .iter()
            .map(|s| (format!("shard=\"{}\"", s.shard), f(s)))
            .collect()
    };
    family(
        &mut out,
        "corelog_ready",
        "gauge",
        "1 when every shard serves (the broker wrote its ready line), else 0.",
        [(String::new(), u8::from(ready))],
    );
    family(
        &mut out,
        "corelog_shards",
        "gauge",
        "Shards (cores) the broker runs.",
        [(String::new(), shards.len())],
    );
    family(
        &mut out,
        "corelog_connections",
        "gauge",
        "Client connections open on the shard.",
        per_shard(&|s| s.connections.to_string()),
    );
    family(
        &mut out,
        "corelog_shard_partitions",
        "gauge",
        "Partition logs the shard owns.",
        per_shard(&|s| s.partitions.len().to_string()),
    );
    family(
        &mut out,
        "corelog_batch_cache_bytes",
        "gauge",
        "Bytes of batches in the shard's batch cache.",
        per_shard(&|s| s.batch_cache_bytes.to_string()),
    );
    family(
        &mut out,
        "corelog_batch_cache_bytes_max",
        "gauge",
        "The bound of the shard's batch cache (batch_cache_bytes_per_shard).",
        per_shard(&|s| s.batch_cache_bytes_max.to_string()),
    );
    family(
        &mut out,
        "corelog_batch_cache_hits_total",
        "counter",
        "Reads of flushed records the shard's batch cache answered.",
        per_shard(&|s| s.batch_cache_hits.to_string()),
    );
    family(
        &mut out,
        "corelog_batch_cache_misses_total",
        "counter",
        "Reads of flushed records the batch cache did not hold, which went to the disk.",
        per_shard(&|s| s.batch_cache_misses.to_string()),
    );
    let name = "corelog_log_sync_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Durable log writes (written with O_DSYNC, or written then fdatasynced, in one call) and fdatasyncs of the shard's logs: how long each took."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for s in shards {
        histogram_samples(&mut out, name, &format!("shard=\"{}\"", s.shard), &s.syncs);
    }
    family(
        &mut out,
        "corelog_log_synced_bytes_total",
        "counter",
        "Bytes of the durable log writes; over corelog_log_sync_duration_seconds_count, the mean group-commit size.",
        per_shard(&|s| s.synced_bytes.to_string()),
    );
    family(
        &mut out,
        "corelog_request_bytes_in_flight",
        "gauge",
        "Bytes of requests the shard has read and not yet answered.",
        per_shard(&|s| s.request_bytes_in_flight.to_string()),
    );
    family(
        &mut out,
        "corelog_request_bytes_in_flight_max",
        "gauge",
        "The bound of request bytes in flight per shard (request_bytes_in_flight_per_shard_max).",
        per_shard(&|s| s.request_bytes_in_flight_max.to_string()),
    );
    let conversions = |f: &dyn Fn(&crate::handlers::conversions::Counts) -> (u64, u64)| {
        shards
            .iter()
            .flat_map(|s| {
                let (up, down) = f(&s.conversions);
                [
                    (format!("shard=\"{}\",direction=\"up\"", s.shard), up),
                    (format!("shard=\"{}\",direction=\"down\"", s.shard), down),
                ]
            })
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "corelog_message_format_conversions_total",
        "counter",
        "Message-format conversions for old clients: up, a Produce v0-2 message set to a record batch; down, a partition's records to a message set for a Fetch v0-3.",
        conversions(&|c| (c.up, c.down)),
    );
    family(
        &mut out,
        "corelog_message_format_conversion_bytes_total",
        "counter",
        "Input bytes of those conversions (message sets up, record batches down).",
        conversions(&|c| (c.up_bytes, c.down_bytes)),
    );
    let partitions = || {
        shards.iter().flat_map(|s| {
            s.partitions.iter().map(move |p| {
                (
                    format!(
                        "topic=\"{}\",partition=\"{}\",shard=\"{}\"",
                        label(&p.topic),
                        p.partition,
                        s.shard
                    ),
                    p,
                )
            })
        })
    };
    let partition_family =
        |out: &mut String, name: &str, help: &str, f: &dyn Fn(&PartitionSample) -> String| {
            family(
                out,
                name,
                "gauge",
                help,
                partitions().map(|(labels, p)| (labels, f(p))),
            );
        };
    partition_family(
        &mut out,
        "corelog_partition_log_start_offset",
        "The partition's first offset (its low watermark).",
        &|p| p.log_start_offset.to_string(),
    );
    partition_family(
        &mut out,
        "corelog_partition_log_end_offset",
        "The offset the partition's next record gets.",
        &|p| p.log_end_offset.to_string(),
    );
    partition_family(
        &mut out,
        "corelog_partition_high_watermark",
        "The offset below which records are committed and readable.",
        &|p| p.high_watermark.to_string(),
    );
    partition_family(
        &mut out,
        "corelog_partition_size_bytes",
        "Bytes of the partition's segments on disk.",
        &|p| p.size_bytes.to_string(),
    );
    let compacted = || partitions().filter_map(|(labels, p)| Some((labels, p.cleaner?)));
    family(
        &mut out,
        "corelog_partition_cleaner_dirty_ratio",
        "gauge",
        "Compacted partitions: the share of the cleanable bytes not cleaned yet (compared with min.cleanable.dirty.ratio).",
        compacted().map(|(labels, (ratio, _))| (labels, format!("{ratio:.4}"))),
    );
    family(
        &mut out,
        "corelog_partition_cleaner_last_cleaned_offset",
        "gauge",
        "Compacted partitions: every offset below it was cleaned at least once.",
        compacted().map(|(labels, (_, offset))| (labels, offset.to_string())),
    );
    render_requests(&mut out, shards);
    render_traffic(&mut out, shards);
    render_lag(&mut out, shards);
    let one = |v: String| [(String::new(), v)];
    family(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time the broker process spent, in seconds.",
        one(format!("{:.2}", process.cpu_seconds)),
    );
    family(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        one(process.resident_memory_bytes.to_string()),
    );
    family(
        &mut out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        one(process.virtual_memory_bytes.to_string()),
    );
    family(
        &mut out,
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        one(process.open_fds.to_string()),
    );
    family(
        &mut out,
        "process_max_fds",
        "gauge",
        "The process' limit of open file descriptors.",
        one(process.max_fds.to_string()),
    );
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
        one(format!("{:.2}", process.start_time_seconds)),
    );
    family(
        &mut out,
        "process_threads",
        "gauge",
        "Threads of the process.",
        one(process.threads.to_string()),
    );
    out
}

/// An api's name as Kafka's request metrics label it (`Produce`), or its
/// key for one this version does not know.
fn api_name(api_key: i16) -> String {
    use corelog_protocol::kafka_protocol::messages::ApiKey;
    ApiKey::try_from(api_key).map_or_else(|_| api_key.to_string(), |k| format!("{k:?}"))
}

/// The request families: counts, closes, errors by code, and the duration
/// histogram, per shard and api.
fn render_requests(out: &mut String, shards: &[ShardSample]) {
    let apis = || {
        shards.iter().flat_map(|s| {
            s.requests.iter().map(move |a| {
                (
                    format!("shard=\"{}\",api=\"{}\"", s.shard, api_name(a.api_key)),
                    a,
                )
            })
        })
    };
    family(
        out,
        "corelog_requests_total",
        "counter",
        "Requests answered (or whose connection was closed), per shard of the connection and api.",
        apis().map(|(labels, a)| (labels, a.requests)),
    );
    family(
        out,
        "corelog_request_connection_closes_total",
        "counter",
        "Requests whose answer was to close the connection (a request the broker cannot answer).",
        apis().map(|(labels, a)| (labels, a.closed)),
    );
    family(
        out,
        "corelog_request_errors_total",
        "counter",
        "Error codes in answers, at every level (a Produce answer with two failed partitions counts two), by Kafka's error name.",
        apis().flat_map(|(labels, a)| {
            a.errors.iter().map(move |(code, n)| {
                (
                    format!("{labels},error=\"{}\"", corelog_protocol::error_name(*code)),
                    *n,
                )
            })
        }),
    );
    let name = "corelog_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From a request's complete frame to its answer ready to write (long polls included; the socket write and the wait behind a pipelining connection's earlier answers not)."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (labels, a) in apis() {
        histogram_samples(out, name, &labels, &a.latency);
    }
}

/// The samples of one labelled histogram: its cumulative buckets, `+Inf`,
/// sum and count.
fn histogram_samples(out: &mut String, name: &str, labels: &str, h: &LatencySnapshot) {
    for (bound, count) in LATENCY_BUCKETS_SECONDS.iter().zip(&h.buckets) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {:.6}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// Bytes and records in and out per topic and partition, summed over the
/// shards that counted them.
fn render_traffic(out: &mut String, shards: &[ShardSample]) {
    let mut sums: std::collections::BTreeMap<(&str, i32), crate::traffic::Counts> =
        std::collections::BTreeMap::new();
    for (topic, partition, c) in shards.iter().flat_map(|s| &s.traffic) {
        let sum = sums.entry((topic.as_str(), *partition)).or_default();
        sum.bytes_in += c.bytes_in;
        sum.records_in += c.records_in;
        sum.bytes_out += c.bytes_out;
    }
    let each = |f: fn(&crate::traffic::Counts) -> u64| {
        sums.iter().map(move |((topic, partition), c)| {
            (
                format!("topic=\"{}\",partition=\"{partition}\"", label(topic)),
                f(c),
            )
        })
    };
    family(
        out,
        "corelog_partition_bytes_in_total",
        "counter",
        "Bytes of record batches appended by producers.",
        each(|c| c.bytes_in),
    );
    family(
        out,
        "corelog_partition_records_in_total",
        "counter",
        "Records appended by producers; process_cpu_seconds_total over its sum is the broker's CPU per message.",
        each(|c| c.records_in),
    );
    family(
        out,
        "corelog_partition_bytes_out_total",
        "counter",
        "Bytes of records sent in Fetch answers (to consumers and followers).",
        each(|c| c.bytes_out),
    );
}

/// Each group's committed offset and lag per partition: the partition's
/// high watermark less the committed offset (never below 0), as
/// `kafka-consumer-groups.sh --describe` shows it. A partition this node
/// does not hold (another broker leads it) has no lag here.
fn render_lag(out: &mut String, shards: &[ShardSample]) {
    let high_watermarks: std::collections::HashMap<(&str, i32), i64> = shards
        .iter()
        .flat_map(|s| &s.partitions)
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let committed = || {
        shards
            .iter()
            .flat_map(|s| &s.committed_offsets)
            .map(|(group, tp, offset)| {
                (
                    format!(
                        "group=\"{}\",topic=\"{}\",partition=\"{}\"",
                        label(group),
                        label(&tp.topic),
                        tp.partition
                    ),
                    tp,
                    *offset,
                )
            })
    };
    family(
        out,
        "corelog_group_committed_offset",
        "gauge",
        "The offset a consumer group committed for a partition (the next record it reads).",
        committed().map(|(labels, _, offset)| (labels, offset)),
    );
    family(
        out,
        "corelog_group_lag",
        "gauge",
        "Records a consumer group has still to read in a partition: its high watermark less the committed offset.",
        committed().filter_map(|(labels, tp, offset)| {
            let hw = high_watermarks.get(&(tp.topic.as_str(), tp.partition))?;
            Some((labels, (hw - offset).max(0)))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_as_the_exposition_format_asks() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("orders.v1-x_y"), "orders.v1-x_y");
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let shard = ShardSample {
            shard: 0,
            connections: 2,
            partitions: vec![PartitionSample {
                topic: "t".into(),
                partition: 3,
                log_start_offset: 1,
                log_end_offset: 10,
                high_watermark: 9,
                size_bytes: 4096,
                cleaner: Some((0.25, 7)),
            }],
            batch_cache_bytes: 5,
            batch_cache_bytes_max: 6,
            batch_cache_hits: 8,
            batch_cache_misses: 9,
            syncs: LatencySnapshot {
                buckets: vec![2; LATENCY_BUCKETS_SECONDS.len()],
                count: 2,
                sum_seconds: 0.001,
            },
            synced_bytes: 8192,
            request_bytes_in_flight: 0,
            request_bytes_in_flight_max: 7,
            conversions: crate::handlers::conversions::Counts {
                up: 3,
                up_bytes: 300,
                down: 4,
                down_bytes: 400,
            },
            requests: vec![crate::request_metrics::ApiSample {
                api_key: 0,
                requests: 4,
                closed: 1,
                errors: vec![(3, 2)],
                latency: LatencySnapshot {
                    buckets: vec![1; LATENCY_BUCKETS_SECONDS.len()],
                    count: 4,
                    sum_seconds: 0.5,
                },
            }],
            committed_offsets: vec![("g\"1".into(), crate::TopicPartition::new("t", 3), 4)],
            traffic: vec![(
                "t".into(),
                3,
                crate::traffic::Counts {
                    bytes_in: 100,
                    records_in: 7,
                    bytes_out: 50,
                },
            )],
        };
        let text = render(&[shard], &ProcessSample::default(), true);
        assert!(text.contains(
            "corelog_message_format_conversions_total{shard=\"0\",direction=\"up\"} 3\n"
        ));
        assert!(text.contains(
            "corelog_message_format_conversion_bytes_total{shard=\"0\",direction=\"down\"} 400\n"
        ));
        assert!(text.contains(
            "corelog_partition_log_end_offset{topic=\"t\",partition=\"3\",shard=\"0\"} 10\n"
        ));
        assert!(text.contains("corelog_connections{shard=\"0\"} 2\n"));
        assert!(text.contains(
            "corelog_partition_cleaner_last_cleaned_offset{topic=\"t\",partition=\"3\",shard=\"0\"} 7\n"
        ));
        assert!(text.contains("corelog_ready 1\n"));
        assert!(text.contains("corelog_requests_total{shard=\"0\",api=\"Produce\"} 4\n"));
        assert!(text.contains(
            "corelog_request_errors_total{shard=\"0\",api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 2\n"
        ));
        assert!(text.contains(
            "corelog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"+Inf\"} 4\n"
        ));
        assert!(text.contains(
            "corelog_request_duration_seconds_bucket{shard=\"0\",api=\"Produce\",le=\"0.0001\"} 1\n"
        ));
        assert!(
            text.contains("corelog_partition_records_in_total{topic=\"t\",partition=\"3\"} 7\n")
        );
        // High watermark 9, committed 4.
        assert!(
            text.contains("corelog_group_lag{group=\"g\\\"1\",topic=\"t\",partition=\"3\"} 5\n")
        );
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|base| typed.contains(*base))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} has no TYPE line before it");
            }
        }
    }

    #[test]
    fn the_process_sample_reads_this_process() {
        let p = process_sample();
        assert!(p.resident_memory_bytes > 0);
        assert!(p.open_fds > 0 && p.max_fds >= p.open_fds);
        assert!(p.threads >= 1);
        assert!(p.start_time_seconds > 1.0e9, "{}", p.start_time_seconds);
    }
}
