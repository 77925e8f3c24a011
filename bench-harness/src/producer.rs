//! The load generator's producers: state machines multiplexed on a few
//! worker threads, thread-per-core like the broker. Each worker owns its
//! producers' non-blocking sockets and runs one `ppoll` loop, so 50
//! producers cost 50 sockets and no extra threads, and a single generator
//! core can drive the broker on the other core.
//!
//! Lives on: the worker thread that owns the producer. Workers share only
//! the acknowledged-message counter and the interval collector.
//!
//! Schedules (per producer):
//! - closed loop (`rate = None`): a request of `records_per_batch` records
//!   whenever fewer than `max_in_flight` are outstanding; latency runs from
//!   the request's send.
//! - open loop, `linger = 0`: every `records_per_batch / rate` seconds the
//!   application hands over `records_per_batch` records at once, and they go
//!   out as one request;
//! - open loop, `linger > 0`: records arrive one by one at `rate`; a request
//!   leaves when `records_per_batch` are waiting or the oldest has waited
//!   `linger`, like a Kafka producer's `batch.size` and `linger.ms`.
//!
//! In the open loop every record's latency runs from its *intended* arrival
//! time, so a stall that delays later sends is charged to them
//! (no coordinated omission), and the value carries that time too.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;

use crate::compression::Codec;
use crate::hist::{IntervalCollector, LatencyRecorder};
use crate::kafka_client::{encode_request, produce_request, take_frame, PRODUCE_VERSION};
use crate::records::{
    encode_batch_with, key_bytes, partition_for_key, KeyChooser, KeyMode, RecordSpec, Rng,
};

/// How long after the end an open-loop producer still sends what was due
/// before the end; what is still unsent then is `open_loop_behind_schedule`.
pub const SCHEDULE_GRACE: Duration = Duration::from_secs(1);
/// How long after the end (and the grace) producers wait for outstanding
/// acknowledgements before counting them as `produce_timeout`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a producer may have queued but not yet written to its socket:
/// the flow control of acks=0, which has no responses to wait for.
const OUT_BYTES_MAX: usize = 4 << 20;
/// Longest single wait in the poll loop.
const POLL_WAIT_MAX: Duration = Duration::from_millis(100);
/// Produce request timeout sent to the broker.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// Maps `Instant`s to wall-clock microseconds with one shared reference, so
/// producer and consumer timestamps agree.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    unix_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            instant: Instant::now(),
            unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        }
    }
    pub fn us(&self, t: Instant) -> u64 {
        self.unix_us + t.saturating_duration_since(self.instant).as_micros() as u64
    }
    pub fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }
    /// The wall-clock time of `t`.
    pub fn wall(&self, t: Instant) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.us(t))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The run's time line, shared by all workers.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub clock: Clock,
    /// When producers start sending.
    pub start: Instant,
    /// Records intended before this are warmup and not measured.
    pub warmup_end: Instant,
    /// Records intended from this on are not sent.
    pub end: Instant,
}

/// What every producer of a run does.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    /// The topics written, each with the same `partitions`.
    pub topics: Vec<String>,
    /// Each topic's partitions used by the run, sorted.
    pub partitions: Vec<i32>,
    pub acks: i16,
    pub records_per_batch: u32,
    pub record_bytes: usize,
    pub codec: Codec,
    pub keys: KeyMode,
    pub key_space: u64,
    pub linger: Duration,
    pub max_in_flight: usize,
    /// Records per second for each producer; `None` is the closed loop.
    pub rate_per_producer: Option<f64>,
}

impl ProducerSpec {
    fn rpb(&self) -> u64 {
        u64::from(self.records_per_batch.max(1))
    }

    /// Open loop: nanoseconds between records (smooth) or batches (burst).
    /// Whole nanoseconds, so that schedule positions and the counts derived
    /// from them agree exactly (no floating-point off-by-one at the window
    /// edges).
    fn step_ns(&self) -> Option<u64> {
        let rate = self.rate_per_producer?;
        let per_record_ns = 1e9 / rate.max(1e-9);
        let step = if self.linger.is_zero() {
            per_record_ns * self.rpb() as f64
        } else {
            per_record_ns
        };
        Some((step.round() as u64).max(1))
    }

    /// Open loop: the intended time of record `i`.
    fn intended(&self, w: &Window, i: u64) -> Instant {
        let step = self.step_ns().unwrap_or(0);
        let slot = if self.linger.is_zero() {
            i / self.rpb()
        } else {
            i
        };
        w.start + Duration::from_nanos(step.saturating_mul(slot))
    }

    /// Open loop: how many records are intended strictly before `t`.
    fn records_before(&self, w: &Window, t: Instant) -> u64 {
        let Some(step) = self.step_ns() else { return 0 };
        let elapsed = t.saturating_duration_since(w.start).as_nanos();
        let slots = elapsed.div_ceil(u128::from(step)) as u64;
        if self.linger.is_zero() {
            slots * self.rpb()
        } else {
            slots
        }
    }

    /// Open loop: when the request holding record `sent` (the next unsent)
    /// is due.
    fn next_due(&self, w: &Window, sent: u64) -> Instant {
        let first = self.intended(w, sent);
        if self.linger.is_zero() {
            first
        } else {
            (first + self.linger).min(self.intended(w, sent + self.rpb() - 1))
        }
    }
}

/// What one worker measured.
#[derive(Debug, Default)]
pub struct WorkerResult {
    /// Publish latency (none for acks=0).
    pub latency: Option<LatencyRecorder>,
    pub messages: u64,
    pub bytes: u64,
    pub errors: BTreeMap<String, u64>,
}

struct Pending {
    correlation_id: i32,
    /// Intended time of the request's first record.
    first: Instant,
    /// Time between its records' intended times (zero: all the same).
    step: Duration,
    records: u32,
}

struct Producer {
    stream: TcpStream,
    out: BytesMut,
    inb: BytesMut,
    in_flight: VecDeque<Pending>,
    next_correlation_id: i32,
    /// Round-robin position over topics and partitions (starts at the
    /// producer's id).
    rr: usize,
    rng: Rng,
    /// Records handed to requests so far.
    sent: u64,
    failed: bool,
    filler_at: usize,
}

struct Worker<'a> {
    spec: &'a ProducerSpec,
    w: Window,
    keys: KeyChooser,
    acked: &'a AtomicU64,
    intervals: &'a IntervalCollector,
    interval_slot: u64,
    rec: LatencyRecorder,
    result: WorkerResult,
    response_header_version: i16,
}

fn bump(errors: &mut BTreeMap<String, u64>, kind: &str, n: u64) {
    *errors.entry(kind.to_string()).or_default() += n;
}

/// Connects the producers with the given ids and runs them to the end of
/// the window; returns what they measured.
pub fn run_worker(
    ids: &[u32],
    spec: &ProducerSpec,
    w: Window,
    bootstrap: &str,
    acked: &AtomicU64,
    intervals: &IntervalCollector,
) -> WorkerResult {
    let mut worker = Worker {
        spec,
        w,
        keys: KeyChooser::new(spec.keys, spec.key_space),
        acked,
        intervals,
        interval_slot: 0,
        rec: LatencyRecorder::new(),
        result: WorkerResult::default(),
        response_header_version: ApiKey::Produce.response_header_version(PRODUCE_VERSION),
    };
    let mut producers = Vec::new();
    for &id in ids {
        match connect(bootstrap) {
            Ok(stream) => producers.push(Producer {
                stream,
                out: BytesMut::with_capacity(64 * 1024),
                inb: BytesMut::with_capacity(64 * 1024),
                in_flight: VecDeque::new(),
                next_correlation_id: 1,
                rr: id as usize,
                rng: Rng::new(u64::from(id) + 1),
                sent: 0,
                failed: false,
                filler_at: id as usize * 4099,
            }),
            Err(_) => bump(&mut worker.result.errors, "produce_connect", 1),
        }
    }
    worker.run(&mut producers);
    worker.finish(&producers)
}

fn connect(bootstrap: &str) -> Result<TcpStream> {
    let addr = bootstrap
        .to_socket_addrs()
        .with_context(|| format!("resolving {bootstrap}"))?
        .next()
        .ok_or_else(|| anyhow!("{bootstrap} resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

impl Worker<'_> {
    fn closed_loop(&self) -> bool {
        self.spec.rate_per_producer.is_none()
    }

    fn sending_done(&self, p: &Producer, now: Instant) -> bool {
        if self.closed_loop() {
            now >= self.w.end
        } else {
            p.sent >= self.spec.records_before(&self.w, self.w.end)
                || now >= self.w.end + SCHEDULE_GRACE
        }
    }

    fn has_room(&self, p: &Producer) -> bool {
        if self.spec.acks == 0 {
            p.out.len() < OUT_BYTES_MAX
        } else {
            p.in_flight.len() < self.spec.max_in_flight && p.out.len() < OUT_BYTES_MAX
        }
    }

    /// When producer `p` next wants to send, if it has room to.
    fn wants_send_at(&self, p: &Producer, now: Instant) -> Option<Instant> {
        if p.failed || self.sending_done(p, now) || !self.has_room(p) {
            return None;
        }
        Some(if self.closed_loop() {
            now
        } else {
            self.spec.next_due(&self.w, p.sent)
        })
    }

    fn finished(&self, p: &Producer, now: Instant) -> bool {
        p.failed || (self.sending_done(p, now) && p.in_flight.is_empty() && p.out.is_empty())
    }

    fn run(&mut self, producers: &mut [Producer]) {
        let now = Instant::now();
        if self.w.start > now {
            std::thread::sleep(self.w.start - now);
        }
        let drain_deadline = self.w.end + SCHEDULE_GRACE + DRAIN_TIMEOUT;
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(producers.len());
        let mut polled: Vec<usize> = Vec::with_capacity(producers.len());
        loop {
            let now = Instant::now();
            self.intervals
                .drain(&mut self.rec, &mut self.interval_slot, now, false);
            if producers.iter().all(|p| self.finished(p, now)) {
                break;
            }
            if now >= drain_deadline {
                for p in producers.iter().filter(|p| !p.failed) {
                    bump(
                        &mut self.result.errors,
                        "produce_timeout",
                        p.in_flight.len() as u64,
                    );
                }
                break;
            }
            // Send what is due, then write it out at once.
            let mut wake = now + POLL_WAIT_MAX;
            for p in producers.iter_mut() {
                while let Some(at) = self.wants_send_at(p, now) {
                    if at > now {
                        wake = wake.min(at);
                        break;
                    }
                    self.send(p, now);
                }
                if !p.out.is_empty() && !p.failed {
                    self.flush(p);
                }
            }
            fds.clear();
            polled.clear();
            for (i, p) in producers.iter().enumerate() {
                if p.failed {
                    continue;
                }
                let mut events = libc::POLLIN;
                if !p.out.is_empty() {
                    events |= libc::POLLOUT;
                }
                fds.push(libc::pollfd {
                    fd: p.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
                polled.push(i);
            }
            let wait = wake
                .min(drain_deadline)
                .saturating_duration_since(Instant::now());
            let ts = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `fds` is a valid, exclusively borrowed array of
            // `fds.len()` pollfd structures for the duration of the call.
            let rc = unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                )
            };
            if rc <= 0 {
                continue; // timeout or EINTR: re-evaluate the schedule
            }
            for (fd, &i) in fds.iter().zip(&polled) {
                let p = &mut producers[i];
                if fd.revents & libc::POLLOUT != 0 {
                    self.flush(p);
                }
                if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read(p);
                }
            }
        }
    }

    /// Builds and queues one Produce request for producer `p`.
    fn send(&mut self, p: &mut Producer, now: Instant) {
        let spec = self.spec;
        let rpb = spec.rpb();
        let (first, step, n) = match spec.step_ns() {
            None => (now, Duration::ZERO, rpb),
            Some(step_ns) => {
                let first = spec.intended(&self.w, p.sent);
                let left = spec
                    .records_before(&self.w, self.w.end)
                    .saturating_sub(p.sent);
                if spec.linger.is_zero() {
                    (first, Duration::ZERO, rpb.min(left).max(1))
                } else {
                    // Every record that has arrived by now, up to a batch.
                    let arrived = spec
                        .records_before(&self.w, now + Duration::from_nanos(1))
                        .saturating_sub(p.sent);
                    let n = arrived.clamp(1, rpb).min(left.max(1));
                    (first, Duration::from_nanos(step_ns), n)
                }
            }
        };
        // Unkeyed: the next (topic, partition) round robin. Keyed: the next
        // topic round robin, and each record's partition from its key.
        let mut by_partition: BTreeMap<i32, Vec<RecordSpec>> = BTreeMap::new();
        let parts = &spec.partitions;
        let keyed = self.keys.mode() != KeyMode::None;
        let (topic, unkeyed_partition) = if keyed {
            (&spec.topics[p.rr % spec.topics.len()], parts[0])
        } else {
            let target = p.rr % (spec.topics.len() * parts.len());
            (
                &spec.topics[target / parts.len()],
                parts[target % parts.len()],
            )
        };
        p.rr += 1;
        for j in 0..n {
            let key = self.keys.next(&mut p.rng);
            let partition = match key {
                Some(k) => parts[partition_for_key(&key_bytes(k), parts.len())],
                None => unkeyed_partition,
            };
            by_partition.entry(partition).or_default().push(RecordSpec {
                send_us: self.w.clock.us(first + step * j as u32),
                key,
            });
        }
        let mut batches = Vec::with_capacity(by_partition.len());
        for (partition, records) in by_partition {
            match encode_batch_with(&records, spec.record_bytes, spec.codec, p.filler_at) {
                Ok(b) => batches.push((partition, Bytes::from(b))),
                Err(_) => {
                    bump(&mut self.result.errors, "produce_encode", 1);
                    p.failed = true;
                    return;
                }
            }
            p.filler_at = p.filler_at.wrapping_add(records.len() * 131);
        }
        let correlation_id = p.next_correlation_id;
        p.next_correlation_id = p.next_correlation_id.wrapping_add(1);
        let req = produce_request(topic, spec.acks, PRODUCE_TIMEOUT_MS, batches);
        match encode_request(ApiKey::Produce, PRODUCE_VERSION, correlation_id, &req) {
            Ok(frame) => p.out.extend_from_slice(&frame),
            Err(_) => {
                bump(&mut self.result.errors, "produce_encode", 1);
                p.failed = true;
                return;
            }
        }
        p.sent += n;
        let pending = Pending {
            correlation_id,
            first,
            step,
            records: n as u32,
        };
        if spec.acks == 0 {
            // Nothing comes back: count it as sent, with no latency.
            self.account(&pending, None);
        } else {
            p.in_flight.push_back(pending);
        }
    }

    /// Counts the measured records of an acknowledged (or, for acks=0, sent)
    /// request, and their latency when `acked_at` is given.
    fn account(&mut self, pending: &Pending, acked_at: Option<Instant>) {
        let (warm, end) = (self.w.warmup_end, self.w.end);
        let bytes_per = self.spec.record_bytes as u64;
        let mut counted = 0u64;
        if pending.step.is_zero() {
            if pending.first >= warm && pending.first < end {
                counted = u64::from(pending.records);
                if let Some(at) = acked_at {
                    let us = at.saturating_duration_since(pending.first).as_micros() as u64;
                    self.rec.record_n_us(us, counted);
                }
            }
        } else {
            for j in 0..pending.records {
                let t = pending.first + pending.step * j;
                if t >= warm && t < end {
                    counted += 1;
                    if let Some(at) = acked_at {
                        self.rec
                            .record_us(at.saturating_duration_since(t).as_micros() as u64);
                    }
                }
            }
        }
        self.result.messages += counted;
        self.result.bytes += counted * bytes_per;
        self.acked.fetch_add(counted, Ordering::Relaxed);
    }

    fn fail(&mut self, p: &mut Producer) {
        if !p.failed {
            bump(
                &mut self.result.errors,
                "produce_io",
                p.in_flight.len().max(1) as u64,
            );
            p.failed = true;
            p.in_flight.clear();
        }
    }

    fn flush(&mut self, p: &mut Producer) {
        while !p.out.is_empty() {
            match p.stream.write(&p.out) {
                Ok(0) => return self.fail(p),
                Ok(n) => p.out.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(p),
            }
        }
    }

    fn read(&mut self, p: &mut Producer) {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match p.stream.read(&mut chunk) {
                Ok(0) => return self.fail(p),
                Ok(n) => p.inb.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(p),
            }
        }
        let at = Instant::now();
        loop {
            let mut frame = match take_frame(&mut p.inb) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(_) => return self.fail(p),
            };
            let Some(pending) = p.in_flight.pop_front() else {
                bump(&mut self.result.errors, "produce_unexpected_response", 1);
                return self.fail(p);
            };
            match ResponseHeader::decode(&mut frame, self.response_header_version) {
                Ok(h) if h.correlation_id == pending.correlation_id => {}
                _ => {
                    bump(&mut self.result.errors, "produce_decode", 1);
                    return self.fail(p);
                }
            }
            if self.response_ok(frame) {
                self.account(&pending, Some(at));
            }
        }
    }

    /// Whether a Produce response acknowledges every partition; counts the
    /// errors it carries.
    fn response_ok(&mut self, mut body: Bytes) -> bool {
        let r = match ProduceResponse::decode(&mut body, PRODUCE_VERSION) {
            Ok(r) => r,
            Err(_) => {
                bump(&mut self.result.errors, "produce_decode", 1);
                return false;
            }
        };
        let mut any = false;
        let mut ok = true;
        for part in r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
        {
            any = true;
            if part.error_code != 0 {
                bump(
                    &mut self.result.errors,
                    &format!("produce_error_{}", part.error_code),
                    1,
                );
                ok = false;
            }
        }
        if !any {
            bump(&mut self.result.errors, "produce_empty_response", 1);
        }
        ok && any
    }

    fn finish(mut self, producers: &[Producer]) -> WorkerResult {
        self.intervals
            .drain(&mut self.rec, &mut self.interval_slot, Instant::now(), true);
        // Open loop: a producer that fell behind its schedule stops with
        // records still due. Those due inside the measured window are
        // reported, so a missed rate cannot pass as a clean run.
        if !self.closed_loop() {
            let spec = self.spec;
            let (from, to) = (
                spec.records_before(&self.w, self.w.warmup_end),
                spec.records_before(&self.w, self.w.end),
            );
            for p in producers {
                let missed = to.saturating_sub(p.sent.max(from));
                if missed > 0 {
                    bump(&mut self.result.errors, "open_loop_behind_schedule", missed);
                }
            }
        }
        if self.spec.acks != 0 {
            self.result.latency = Some(self.rec);
        }
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linger_ms: u64, rate: Option<f64>) -> ProducerSpec {
        ProducerSpec {
            topics: vec!["t".into()],
            partitions: vec![0, 1],
            acks: -1,
            records_per_batch: 10,
            record_bytes: 100,
            codec: Codec::None,
            keys: KeyMode::None,
            key_space: 1,
            linger: Duration::from_millis(linger_ms),
            max_in_flight: 5,
            rate_per_producer: rate,
        }
    }

    fn window() -> Window {
        let start = Instant::now();
        Window {
            clock: Clock::new(),
            start,
            warmup_end: start + Duration::from_secs(1),
            end: start + Duration::from_secs(3),
        }
    }

    #[test]
    fn burst_schedule_hands_over_whole_batches() {
        // 1,000 records/s in batches of 10: a batch every 10 ms.
        let (s, w) = (spec(0, Some(1000.0)), window());
        assert_eq!(s.intended(&w, 9), w.start);
        assert_eq!(s.intended(&w, 10), w.start + Duration::from_millis(10));
        assert_eq!(s.next_due(&w, 10), w.start + Duration::from_millis(10));
        assert_eq!(s.records_before(&w, w.end), 3000);
        assert_eq!(
            s.records_before(&w, w.start + Duration::from_millis(15)),
            20
        );
    }

    #[test]
    fn linger_schedule_sends_when_full_or_when_the_oldest_waited() {
        // 1,000 records/s one by one, batches of 10, linger 5 ms: the
        // oldest record waits 5 ms, before the batch could fill (9 ms).
        let (s, w) = (spec(5, Some(1000.0)), window());
        assert_eq!(s.intended(&w, 3), w.start + Duration::from_millis(3));
        assert_eq!(s.next_due(&w, 0), w.start + Duration::from_millis(5));
        // Linger 50 ms: the batch fills first, at the 10th record (9 ms).
        let s = spec(50, Some(1000.0));
        assert_eq!(s.next_due(&w, 0), w.start + Duration::from_millis(9));
        assert_eq!(
            s.records_before(&w, w.start + Duration::from_micros(4500)),
            5
        );
    }
}
