//! `corelog produce TOPIC` and `corelog consume TOPIC`: records from stdin
//! to a topic and from a topic to stdout, over the public Kafka protocol,
//! like `kcat -P`/`-C` or `rpk topic produce`/`consume`, against any
//! Kafka-compatible broker.
//!
//! `produce` reads one record per line, splits a key off at
//! `--key-separator`, places keyed records with Kafka's default
//! partitioner (murmur2) and keyless ones round-robin, and sends each
//! leader one Produce request per `--batch-records` records, with
//! `--acks` and `--compression`. It ends with a summary line on stderr.
//!
//! `consume` reads partitions from `--from` (beginning, end, an offset, or
//! the first offset at or after a timestamp) up to their end when it
//! started (or for ever with `--follow`, or `--count` records), at
//! read_committed unless told otherwise, and prints each record as text,
//! JSON lines or hex. It does not join a consumer group.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use clap::{Args, ValueEnum};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;

use corelog_client::member::{needs_rejoin, GroupMember};
use corelog_client::partitioner::partition_for_key;
use corelog_client::Connection;

use crate::group_cli::DEFAULT_BOOTSTRAP;
use crate::topic_cli::{check, code_name, CONNECTION};

/// How long the broker may take to replicate a produced batch (acks=all).
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// The longest line (record) `produce` reads; Kafka's default
/// `max.message.bytes` is about 1 MiB.
pub const PRODUCE_LINE_BYTES_MAX: usize = 1 << 20;
/// The most bytes one decompressed batch may take when consuming: a batch
/// claiming more is refused instead of filling memory.
pub const CONSUME_BATCH_DECOMPRESSED_BYTES_MAX: usize = 256 << 20;
/// Fetch sizes: per request and per partition.
const FETCH_MAX_BYTES: i32 = 16 << 20;
const FETCH_PARTITION_MAX_BYTES: i32 = 4 << 20;
/// How long a Fetch waits for data (long poll) when following.
const FETCH_WAIT_MS: i32 = 500;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all")]
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn kafka(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

/// The storage layer's codec for a Kafka codec: the framing Kafka's Java
/// producer writes (snappy-java's, LZ4 frames), which every client reads.
fn storage_codec(c: Compression) -> corelog_storage::codec::Compression {
    use corelog_storage::codec::Compression as S;
    match c {
        Compression::None => S::None,
        Compression::Gzip => S::Gzip,
        Compression::Snappy => S::Snappy,
        Compression::Lz4 => S::Lz4,
        Compression::Zstd => S::Zstd,
    }
}

#[derive(Args)]
pub struct ProduceArgs {
    topic: String,
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    /// Split each line into key and value at the first occurrence of this
    /// text [default: no key].
    #[arg(short = 'K', long)]
    key_separator: Option<String>,
    /// Send every record to this partition [default: by key, keyless
    /// round-robin].
    #[arg(short = 'p', long)]
    partition: Option<i32>,
    #[arg(long, value_enum, default_value = "all")]
    acks: Acks,
    #[arg(short = 'z', long, value_enum, default_value = "none")]
    compression: Codec,
    /// A header for every record, key=value; repeat for more.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Records per partition per Produce request.
    #[arg(long, default_value_t = 1000)]
    batch_records: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The value (with --print-keys: key, separator, value), one per line.
    Text,
    /// One JSON object per record: partition, offset, timestamp, key,
    /// value, headers (bytes as UTF-8, invalid sequences replaced).
    Json,
    /// The value in hex, one per line.
    Hex,
}

#[derive(Args)]
pub struct ConsumeArgs {
    topic: String,
    /// A broker to bootstrap from, host:port.
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    bootstrap_server: String,
    /// Read only this partition; repeat for more [default: all].
    #[arg(short = 'p', long = "partition")]
    partitions: Vec<i32>,
    /// Where to start: beginning, end, an offset, or @MILLIS (the first
    /// record at or after that time).
    #[arg(short = 'o', long, default_value = "beginning")]
    from: String,
    /// Stop after this many records.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Keep reading new records instead of stopping at the end.
    #[arg(short = 'f', long)]
    follow: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: Output,
    /// Text format: print the key, then --key-separator, then the value.
    #[arg(long)]
    print_keys: bool,
    #[arg(short = 'K', long, default_value = "\t")]
    key_separator: String,
    /// Also read records of open and aborted transactions.
    #[arg(long)]
    read_uncommitted: bool,
    /// Consume as a member of this consumer group (classic protocol, range
    /// assignor): read the partitions the group assigns from its committed
    /// offsets (--from where it has none), commit what was printed, and
    /// leave the group at the end. Like `kcat -G`.
    #[arg(short = 'G', long, conflicts_with = "partitions")]
    group: Option<String>,
}

type CliResult<T> = Result<T, String>;

fn finish(result: CliResult<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect(addr: &str) -> CliResult<Connection> {
    Connection::connect(addr, &CONNECTION).map_err(|e| e.to_string())
}

/// Partition index -> leader address, from the bootstrap broker.
fn leaders(bootstrap: &str, topic: &str) -> CliResult<BTreeMap<i32, String>> {
    let mut c = connect(bootstrap)?;
    let md = c.metadata(Some(&[topic])).map_err(|e| e.to_string())?;
    let t = md
        .topics
        .first()
        .ok_or_else(|| format!("topic {topic}: the broker answered nothing"))?;
    check(&format!("topic {topic}"), t.error_code, None)?;
    let mut out = BTreeMap::new();
    for p in &t.partitions {
        let broker = md
            .brokers
            .iter()
            .find(|b| b.node_id == p.leader_id)
            .ok_or_else(|| {
                format!(
                    "topic {topic} partition {} has no leader ({})",
                    p.partition_index,
                    code_name(p.error_code)
                )
            })?;
        out.insert(
            p.partition_index,
            format!("{}:{}", broker.host, broker.port),
        );
    }
    Ok(out)
}

/// Runs `corelog produce`.
pub fn produce(args: ProduceArgs) -> ExitCode {
    finish(run_produce(&args))
}

fn run_produce(args: &ProduceArgs) -> CliResult<()> {
    let started = Instant::now();
    let leaders = leaders(&args.bootstrap_server, &args.topic)?;
    let count = leaders.len();
    if let Some(p) = args.partition.filter(|p| !leaders.contains_key(p)) {
        return Err(format!(
            "topic {} has no partition {p} (it has {count})",
            args.topic
        ));
    }
    let mut headers: IndexMap<StrBytes, Option<Bytes>> = IndexMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| format!("--header {h:?}: expected key=value"))?;
        headers.insert(
            StrBytes::from_string(k.to_string()),
            Some(Bytes::from(v.as_bytes().to_vec())),
        );
    }
    let mut conns: BTreeMap<String, Connection> = BTreeMap::new();
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut next_keyless = 0usize;
    let (mut sent, mut requests) = (0u64, 0u64);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = Read::take(&mut input, PRODUCE_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("stdin: {e}"))?;
        if n == 0 {
            break;
        }
        if line.len() > PRODUCE_LINE_BYTES_MAX {
            return Err(format!(
                "a line is longer than {PRODUCE_LINE_BYTES_MAX} bytes"
            ));
        }
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        let (key, value) = match &args.key_separator {
            Some(sep) => match find(&line, sep.as_bytes()) {
                Some(at) => (
                    Some(Bytes::copy_from_slice(&line[..at])),
                    Bytes::copy_from_slice(&line[at + sep.len()..]),
                ),
                None => (None, Bytes::copy_from_slice(&line)),
            },
            None => (None, Bytes::copy_from_slice(&line)),
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, count) as i32,
            (None, None) => {
                next_keyless = (next_keyless + 1) % count.max(1);
                next_keyless as i32
            }
        };
        let batch = pending.entry(partition).or_default();
        let now = now_ms();
        batch.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: batch.len() as i64,
            // kafka-protocol starts a new batch where offset minus
            // sequence changes: -1 throughout keeps one batch without a
            // producer id.
            sequence: batch.len() as i32 - 1,
            timestamp: now,
            key,
            value: Some(value),
            headers: headers.clone(),
        });
        if batch.len() >= args.batch_records.max(1) {
            let records = pending.remove(&partition).unwrap_or_default();
            send(args, &leaders, &mut conns, partition, &records)?;
            sent += records.len() as u64;
            requests += 1;
        }
    }
    for (partition, records) in std::mem::take(&mut pending) {
        send(args, &leaders, &mut conns, partition, &records)?;
        sent += records.len() as u64;
        requests += 1;
    }
    eprintln!(
        "produced {sent} record(s) to {} in {requests} request(s), {:.0} ms",
        args.topic,
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Encodes `records` as one batch and sends it to the partition's leader.
fn send(
    args: &ProduceArgs,
    leaders: &BTreeMap<i32, String>,
    conns: &mut BTreeMap<String, Connection>,
    partition: i32,
    records: &[Record],
) -> CliResult<()> {
    let addr = &leaders[&partition];
    if !conns.contains_key(addr) {
        conns.insert(addr.clone(), connect(addr)?);
    }
    let c = conns.get_mut(addr).expect("connected above");
    let mut buf = BytesMut::new();
    let compress = |raw: &mut BytesMut, out: &mut BytesMut, codec: Compression| {
        let bytes = corelog_storage::codec::compress(storage_codec(codec), raw)?;
        out.extend_from_slice(&bytes);
        Ok(())
    };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: args.compression.kafka(),
        },
        Some(compress),
    )
    .map_err(|e| format!("encoding a batch: {e}"))?;
    let acks = match args.acks {
        Acks::None => 0,
        Acks::Leader => 1,
        Acks::All => -1,
    };
    let resp = c
        .produce(
            &args.topic,
            partition,
            buf.freeze(),
            acks,
            PRODUCE_TIMEOUT_MS,
        )
        .map_err(|e| e.to_string())?;
    for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
        check(
            &format!("produce to {} partition {}", args.topic, p.index),
            p.error_code,
            p.error_message.as_ref(),
        )?;
    }
    Ok(())
}

/// Runs `corelog consume`.
pub fn consume(args: ConsumeArgs) -> ExitCode {
    finish(run_consume(&args))
}

/// Where one partition's read stands.
struct Cursor {
    next: i64,
    /// Stop once `next` reaches it (None: follow).
    end: Option<i64>,
}

fn list_offset(c: &mut Connection, topic: &str, partition: i32, timestamp: i64) -> CliResult<i64> {
    c.offset_for(topic, partition, timestamp)
        .map_err(|e| format!("offsets of {topic} partition {partition}: {e}"))
}

/// Where to start reading partition `p` (--from), given its log end.
fn start_offset(c: &mut Connection, args: &ConsumeArgs, p: i32, end: i64) -> CliResult<i64> {
    Ok(match args.from.as_str() {
        "beginning" => list_offset(c, &args.topic, p, -2)?,
        "end" => end,
        s => match s.strip_prefix('@') {
            Some(ms) => {
                let ms: i64 = ms.parse().map_err(|_| format!("--from {s:?}: bad time"))?;
                // -1: nothing at or after that time; start at the end.
                Some(list_offset(c, &args.topic, p, ms)?)
                    .filter(|&o| o >= 0)
                    .unwrap_or(end)
            }
            None => s.parse().map_err(|_| {
                format!("--from {s:?}: expected beginning, end, an offset or @MILLIS")
            })?,
        },
    })
}

/// Opens the read of `partitions`: from `committed[p]` where the group
/// has an offset, else from --from; up to today's end unless following.
fn open_cursors(
    args: &ConsumeArgs,
    leaders: &BTreeMap<i32, String>,
    conns: &mut BTreeMap<String, Connection>,
    partitions: &[i32],
    committed: &BTreeMap<i32, i64>,
) -> CliResult<BTreeMap<i32, Cursor>> {
    let mut cursors = BTreeMap::new();
    for &p in partitions {
        let addr = leaders
            .get(&p)
            .ok_or_else(|| format!("topic {} has no partition {p}", args.topic))?
            .clone();
        if !conns.contains_key(&addr) {
            conns.insert(addr.clone(), connect(&addr)?);
        }
        let c = conns.get_mut(&addr).expect("connected above");
        let end = list_offset(c, &args.topic, p, -1)?;
        let next = match committed.get(&p) {
            Some(&o) if o >= 0 => o,
            _ => start_offset(c, args, p, end)?,
        };
        cursors.insert(
            p,
            Cursor {
                next,
                end: (!args.follow).then_some(end),
            },
        );
    }
    Ok(cursors)
}

/// The group's committed offsets of the member's partitions.
fn committed_offsets(member: &mut GroupMember) -> CliResult<BTreeMap<i32, i64>> {
    Ok(member
        .committed()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|o| o.error_code == 0 && o.offset >= 0)
        .map(|o| (o.partition, o.offset))
        .collect())
}

fn run_consume(args: &ConsumeArgs) -> CliResult<()> {
    let leaders = leaders(&args.bootstrap_server, &args.topic)?;
    let mut member = match &args.group {
        Some(group) => {
            let mut boot = connect(&args.bootstrap_server)?;
            Some(
                GroupMember::join(&mut boot, &CONNECTION, group, &args.topic)
                    .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    // A group member that follows stops on Ctrl-C or SIGTERM at the end
    // of a fetch round, to commit what it printed and leave the group, as
    // `kcat -G` does; other reads keep the default (exit at once), which
    // loses nothing.
    let stop = Arc::new(AtomicBool::new(false));
    if member.is_some() && args.follow {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .map_err(|e| format!("cannot handle signal {signal}: {e}"))?;
        }
    }
    let result = consume_records(args, &leaders, member.as_mut(), &stop);
    if let Some(m) = member {
        let group = args.group.as_deref().unwrap_or_default();
        if let Ok((printed, partitions)) = &result {
            eprintln!(
                "consumed {printed} record(s) from {partitions} partition(s) of {} as group {group}; offsets committed",
                args.topic
            );
        }
        // Leaving lets the other members take the partitions now rather
        // than after the session timeout; a failure to leave changes
        // nothing that was printed or committed.
        if let Err(e) = m.leave() {
            eprintln!("corelog: leaving group {group}: {e}");
        }
    }
    result.map(|_| ())
}

/// Reads and prints records; returns how many, from how many partitions.
fn consume_records(
    args: &ConsumeArgs,
    leaders: &BTreeMap<i32, String>,
    mut member: Option<&mut GroupMember>,
    stop: &AtomicBool,
) -> CliResult<(u64, usize)> {
    let partitions: Vec<i32> = match &member {
        Some(m) => m.assignment().to_vec(),
        None if args.partitions.is_empty() => leaders.keys().copied().collect(),
        None => args.partitions.clone(),
    };
    let isolation: i8 = if args.read_uncommitted { 0 } else { 1 };
    let mut conns: BTreeMap<String, Connection> = BTreeMap::new();
    let committed = match member.as_deref_mut() {
        Some(m) => committed_offsets(m)?,
        None => BTreeMap::new(),
    };
    let mut cursors = open_cursors(args, leaders, &mut conns, &partitions, &committed)?;
    // What the group has committed, so only progress is committed again.
    let mut commit_marks: BTreeMap<i32, i64> = cursors.iter().map(|(&p, c)| (p, c.next)).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    loop {
        if args.count.is_some_and(|n| printed >= n) || stop.load(Ordering::Relaxed) {
            break;
        }
        let open: Vec<i32> = cursors
            .iter()
            .filter(|(_, c)| c.end.is_none_or(|e| c.next < e))
            .map(|(&p, _)| p)
            .collect();
        if open.is_empty() {
            // A following group member with nothing assigned (more members
            // than partitions) waits for a rebalance, heartbeating.
            if !(args.follow && member.is_some()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(FETCH_WAIT_MS as u64));
        }
        let mut progressed = false;
        // One Fetch per leader for its open partitions.
        let mut by_leader: BTreeMap<&String, Vec<i32>> = BTreeMap::new();
        for p in &open {
            by_leader.entry(&leaders[p]).or_default().push(*p);
        }
        for (addr, ps) in by_leader {
            let c = conns.get_mut(addr).expect("connected above");
            let wait_ms = if args.follow { FETCH_WAIT_MS } else { 0 };
            let resp = c
                .fetch(
                    &args.topic,
                    &ps.iter().map(|p| (*p, cursors[p].next)).collect::<Vec<_>>(),
                    wait_ms,
                    FETCH_MAX_BYTES,
                    FETCH_PARTITION_MAX_BYTES,
                    isolation,
                )
                .map_err(|e| e.to_string())?;
            check("fetch", resp.error_code, None)?;
            for pd in resp.responses.iter().flat_map(|t| &t.partitions) {
                if args.count.is_some_and(|n| printed >= n) {
                    break;
                }
                let p = pd.partition_index;
                check(
                    &format!("fetch from {} partition {p}", args.topic),
                    pd.error_code,
                    None,
                )?;
                let Some(cursor) = cursors.get_mut(&p) else {
                    continue;
                };
                // Under read_committed the broker stops at the last stable
                // offset; the end the read began with may lie past it while
                // a transaction is open: stop there too.
                if let Some(end) = cursor.end.as_mut() {
                    let bound = if isolation == 1 {
                        pd.last_stable_offset
                    } else {
                        pd.high_watermark
                    };
                    if bound >= 0 && *end > bound && !args.follow {
                        *end = bound;
                    }
                }
                let records = decode(pd.records.clone().unwrap_or_default())?;
                let aborted: Vec<(i64, i64)> = pd
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect();
                let mut aborting: Vec<i64> = Vec::new();
                for r in records {
                    if r.offset < cursor.next {
                        continue;
                    }
                    cursor.next = r.offset + 1;
                    progressed = true;
                    if isolation == 1 {
                        if aborted
                            .iter()
                            .any(|&(pid, first)| pid == r.producer_id && first <= r.offset)
                            && !aborting.contains(&r.producer_id)
                            && r.transactional
                            && !r.control
                        {
                            aborting.push(r.producer_id);
                        }
                        if r.control {
                            aborting.retain(|&pid| pid != r.producer_id);
                        }
                        if aborting.contains(&r.producer_id) {
                            continue;
                        }
                    }
                    if r.control {
                        continue;
                    }
                    if cursor.end.is_some_and(|e| r.offset >= e) {
                        break;
                    }
                    print_record(&mut out, args, p, &r).map_err(|e| format!("stdout: {e}"))?;
                    printed += 1;
                    if args.count.is_some_and(|n| printed >= n) {
                        break;
                    }
                }
                // A compacted log may leave nothing past a gap: move on to
                // what the broker says is the end.
                if let Some(end) = cursor.end {
                    if pd.records.as_ref().is_none_or(|r| r.is_empty())
                        && cursor.next < end
                        && pd.high_watermark >= end
                    {
                        cursor.end = Some(cursor.next);
                    }
                }
            }
        }
        out.flush().map_err(|e| format!("stdout: {e}"))?;
        if let Some(m) = member.as_deref_mut() {
            // Commit what was printed, then keep the membership alive; if
            // the group rebalanced meanwhile, join again and read what it
            // assigns now, from the offsets committed for it.
            let round =
                commit_progress(m, &cursors, &mut commit_marks).and_then(|()| m.heartbeat_if_due());
            if let Err(e) = round {
                if !needs_rejoin(&e) {
                    return Err(e.to_string());
                }
                m.rejoin().map_err(|e| e.to_string())?;
                let committed = committed_offsets(m)?;
                let assigned = m.assignment().to_vec();
                cursors = open_cursors(args, leaders, &mut conns, &assigned, &committed)?;
                commit_marks = cursors.iter().map(|(&p, c)| (p, c.next)).collect();
                continue;
            }
        }
        if !progressed && !args.follow {
            // Nothing came and nothing will: the ends were reached or the
            // log has a gap up to them.
            break;
        }
    }
    out.flush().map_err(|e| format!("stdout: {e}"))?;
    if let Some(m) = member {
        commit_progress(m, &cursors, &mut commit_marks).map_err(|e| e.to_string())?;
    }
    Ok((printed, cursors.len()))
}

/// Commits, for the partitions read past their last commit, the offset
/// after the last record read.
fn commit_progress(
    member: &mut GroupMember,
    cursors: &BTreeMap<i32, Cursor>,
    marks: &mut BTreeMap<i32, i64>,
) -> corelog_client::ClientResult<()> {
    let moved: Vec<(i32, i64)> = cursors
        .iter()
        .filter(|(p, c)| marks.get(p) != Some(&c.next))
        .map(|(&p, c)| (p, c.next))
        .collect();
    member.commit(&moved)?;
    marks.extend(moved);
    Ok(())
}

/// Decodes a Fetch answer's batches, decompressing with the storage
/// layer's bounded codecs.
fn decode(mut data: Bytes) -> CliResult<Vec<Record>> {
    let mut out = Vec::new();
    let decompress = |raw: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
        let mut buf = Vec::new();
        corelog_storage::codec::decompress_into(
            storage_codec(codec),
            raw,
            CONSUME_BATCH_DECOMPRESSED_BYTES_MAX,
            &mut buf,
        )
        .map_err(|e| anyhow::Error::msg(e.to_string()))?;
        Ok(Bytes::from(buf))
    };
    while data.len() >= 12 {
        // A partial batch at the end (the size limit cut it) is left.
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let whole = 12 + usize::try_from(len).unwrap_or(usize::MAX);
        if data.len() < whole {
            break;
        }
        let mut batch = data.split_to(whole);
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress))
            .map_err(|e| format!("decoding a batch: {e}"))?;
        out.extend(set.records);
    }
    Ok(out)
}

fn print_record(
    out: &mut impl Write,
    args: &ConsumeArgs,
    partition: i32,
    r: &Record,
) -> std::io::Result<()> {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match args.format {
        Output::Text => {
            if args.print_keys {
                out.write_all(r.key.as_deref().unwrap_or_default())?;
                out.write_all(args.key_separator.as_bytes())?;
            }
            out.write_all(r.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")
        }
        Output::Hex => {
            let hex: String = r
                .value
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            writeln!(out, "{hex}")
        }
        Output::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(text(v))))
                .collect();
            writeln!(
                out,
                "{}",
                json!({
                    "topic": args.topic,
                    "partition": partition,
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "key": text(&r.key),
                    "value": text(&r.value),
                    "headers": headers,
                })
            )
        }
    }
}
