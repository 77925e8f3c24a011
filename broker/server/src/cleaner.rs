//! The shard's log cleaner: compaction passes over the compacted
//! partitions the shard owns (see `corelog_storage::clean` for what a pass
//! does and its durability contract).
//!
//! One cleaner per shard, one pass at a time (Kafka runs
//! `log.cleaner.threads` threads per broker; here each core cleans its own
//! partitions, so there is no cross-core work and no lock). It runs in the
//! shard's background task queue, which has [`CLEANER_SHARES`] of the
//! default queue's 1000 shares: while requests are waiting, the executor
//! gives the cleaner about a tenth of the core, and all of it when the
//! shard is otherwise idle. On top of that, `log_cleaner.io_max_bytes_per_second`
//! paces its reads and writes (Kafka's `log.cleaner.io.max.bytes.per.second`).
//!
//! Lives on: each shard, for the partitions it owns.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::shard::Shard;

/// The cleaner task queue's shares; the request path runs in the default
/// queue with 1000.
pub const CLEANER_SHARES: usize = 100;

/// Runs the shard's cleaner until the shard stops.
pub async fn run(shard: Rc<Shard>) {
    let settings = shard.config().log_cleaner.clone();
    if !settings.enable {
        return;
    }
    let budget = settings.budget();
    let pace = Rc::new(RefCell::new(Pace::new(settings.io_max_bytes_per_second)));
    let backoff = Duration::from_millis(settings.backoff_ms);
    loop {
        let mut cleaned_any = false;
        for key in shard.partitions().keys() {
            if shard.is_stopping() {
                return;
            }
            let Some(partition) = shard.partition(&key.topic, key.partition) else {
                continue;
            };
            // A replicated partition is not cleaned: a follower appends
            // the leader's batches at the log end, and a cleaned leader
            // log (gaps, emptied batches) cannot be replicated yet (issue
            // 18's replication preview). Such a topic keeps every record.
            if !partition.compacts() || partition.is_follower() || partition.leads_replicated() {
                continue;
            }
            let pace = pace.clone();
            let throttle = move |bytes: u64| {
                let wait = pace.borrow_mut().charge(bytes, Instant::now());
                async move {
                    if !wait.is_zero() {
                        glommio::timer::sleep(wait).await;
                    }
                    // Between segments, whatever the pace: requests queued
                    // meanwhile run first.
                    glommio::yield_if_needed().await;
                }
            };
            let started = Instant::now();
            match partition.clean(&budget, throttle).await {
                None => {}
                Some(Ok(stats)) => {
                    cleaned_any = true;
                    // The pass's wall time, pacing and waits for the core
                    // included, so that its throughput can be read off the
                    // log (bytes read plus written over this). The swap
                    // job that follows is not in it.
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    tracing::info!(
                        shard = shard.id().0,
                        topic = %key.topic,
                        partition = key.partition,
                        segments_read = stats.segments_read,
                        segments_rewritten = stats.segments_rewritten,
                        bytes_read = stats.bytes_read,
                        bytes_written = stats.bytes_written,
                        batches_dropped = stats.batches_dropped,
                        batches_rebuilt = stats.batches_rebuilt,
                        keys = stats.map_keys,
                        cleaned_to = stats.cleaned_to.0,
                        elapsed_ms,
                        "log cleaner pass done"
                    );
                }
                Some(Err(e)) => {
                    tracing::warn!(shard = shard.id().0, topic = %key.topic, partition = key.partition, error = %e, "log cleaner pass failed; retried after the backoff");
                }
            }
        }
        // A pass that stopped where its key map filled leaves the log due:
        // go on at once. Otherwise sleep, waking for a stop.
        if cleaned_any {
            glommio::yield_if_needed().await;
            continue;
        }
        let stop = shard.stop_notified();
        if shard.is_stopping() {
            return;
        }
        let slept = async {
            glommio::timer::sleep(backoff).await;
            false
        };
        let stopped = async {
            stop.await;
            true
        };
        if slept.or(stopped).await {
            return;
        }
    }
}

/// Paces bytes to a rate: each charge says how long to wait so that the
/// bytes moved since the start stay within `rate * elapsed`. Idle time
/// does not bank more than one second of credit.
#[derive(Debug)]
pub struct Pace {
    bytes_per_second: Option<u64>,
    /// When the bytes charged so far may all have moved.
    free_at: Option<Instant>,
}

/// The most credit idle time earns, so that a cleaner that slept does not
/// burst far past its rate.
const PACE_CREDIT_MAX: Duration = Duration::from_secs(1);

impl Pace {
    pub fn new(bytes_per_second: Option<u64>) -> Pace {
        Pace {
            bytes_per_second,
            free_at: None,
        }
    }

    /// Charges `bytes` at `now`; returns how long to wait before moving more.
    pub fn charge(&mut self, bytes: u64, now: Instant) -> Duration {
        let Some(rate) = self.bytes_per_second else {
            return Duration::ZERO;
        };
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let floor = now.checked_sub(PACE_CREDIT_MAX).unwrap_or(now);
        let free_at = self.free_at.map_or(floor, |t| t.max(floor)) + cost;
        self.free_at = Some(free_at);
        free_at.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_never_waits() {
        let mut p = Pace::new(None);
        assert_eq!(p.charge(1 << 40, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn a_rate_makes_bytes_past_the_credit_wait() {
        let now = Instant::now() + Duration::from_secs(10);
        let mut p = Pace::new(Some(1_000_000));
        // One second of credit: the first megabyte goes at once.
        assert_eq!(p.charge(1_000_000, now), Duration::ZERO);
        // The next two take two seconds.
        let wait = p.charge(2_000_000, now);
        assert!(
            (wait.as_secs_f64() - 2.0).abs() < 0.01,
            "{wait:?} for 2 MB at 1 MB/s"
        );
        // After waiting that long, the debt is paid.
        let later = now + wait;
        let wait = p.charge(500_000, later);
        assert!((wait.as_secs_f64() - 0.5).abs() < 0.01, "{wait:?}");
    }
}
