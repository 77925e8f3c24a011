//! Request metrics per shard and api: how many requests, how many closed
//! their connection, the error codes their answers carried, and how long
//! they took (a [`LatencyHistogram`], shown to Prometheus as a histogram
//! with fixed buckets).
//!
//! Recording is on every request's path, so it is made cheap: the numbers
//! are the shard's own (a thread-local, as each shard is one thread), with
//! no atomics and no sharing; a record is one clock read at each end and a
//! histogram increment. A scrape asks each shard for a [`snapshot`] over
//! the mesh (`crate::metrics`), which turns the histogram into the
//! cumulative bucket counts Prometheus wants there, on the shard.
//!
//! The duration is from the moment a request's frame is complete (and its
//! share of the request budget held) to the moment its answer is ready to
//! write. It leaves out the time the answer then waits behind earlier
//! answers of a pipelining connection and the socket write, which the
//! client's own latency includes.
//!
//! Lives on: each shard, for the requests of its connections.

use std::cell::RefCell;
use std::time::Duration;

use corelog_runtime::latency::{LatencyHistogram, LatencySnapshot};

/// Api keys below this are counted; Kafka's keys are small integers (the
/// highest this broker serves is below 100).
const API_KEYS_MAX: usize = 128;

/// One api's numbers on one shard.
struct ApiStats {
    requests: u64,
    closed: u64,
    /// Nonzero error codes and their counts; a handful at most, so a vector
    /// searched in order beats a map.
    errors: Vec<(i16, u64)>,
    /// About 26 KiB, made only for apis the shard serves.
    latency: LatencyHistogram,
}

impl ApiStats {
    fn new() -> ApiStats {
        ApiStats {
            requests: 0,
            closed: 0,
            errors: Vec::new(),
            latency: LatencyHistogram::new(),
        }
    }
}

thread_local! {
    /// The shard's numbers, indexed by api key.
    static STATS: RefCell<Vec<Option<Box<ApiStats>>>> = const { RefCell::new(Vec::new()) };
}

fn with_api<R>(api_key: i16, f: impl FnOnce(&mut ApiStats) -> R) -> Option<R> {
    let index = usize::try_from(api_key)
        .ok()
        .filter(|&i| i < API_KEYS_MAX)?;
    STATS.with(|stats| {
        let mut stats = stats.borrow_mut();
        if stats.len() <= index {
            stats.resize_with(index + 1, || None);
        }
        let api = stats[index].get_or_insert_with(|| Box::new(ApiStats::new()));
        Some(f(api))
    })
}

/// Counts one request of `api_key` answered after `elapsed`; `closed` when
/// its answer was to close the connection.
pub fn record(api_key: i16, elapsed: Duration, closed: bool) {
    with_api(api_key, |api| {
        api.requests += 1;
        api.closed += u64::from(closed);
        api.latency.record(elapsed);
    });
}

/// Counts one nonzero error code in an answer of `api_key` (every level of
/// the answer counts: a Produce answer with two failed partitions counts
/// two).
pub fn count_error(api_key: i16, code: i16) {
    with_api(api_key, |api| {
        match api.errors.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => api.errors.push((code, 1)),
        }
    });
}

/// One api's numbers on one shard, as a scrape renders them.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSample {
    pub api_key: i16,
    pub requests: u64,
    pub closed: u64,
    pub errors: Vec<(i16, u64)>,
    pub latency: LatencySnapshot,
}

/// This shard's numbers, one entry per api it has served, in key order.
pub fn snapshot() -> Vec<ApiSample> {
    STATS.with(|stats| {
        stats
            .borrow()
            .iter()
            .enumerate()
            .filter_map(|(key, api)| {
                let api = api.as_ref()?;
                let mut errors = api.errors.clone();
                errors.sort_unstable();
                Some(ApiSample {
                    api_key: key as i16,
                    requests: api.requests,
                    closed: api.closed,
                    errors,
                    latency: api.latency.snapshot(),
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_errors_and_durations_are_counted_per_api() {
        record(0, Duration::from_micros(50), false);
        record(0, Duration::from_micros(700), false);
        record(0, Duration::from_millis(40), true);
        record(1, Duration::from_secs(7200), false);
        count_error(0, 6);
        count_error(0, 6);
        count_error(0, 3);
        let snap = snapshot();
        let produce = snap.iter().find(|a| a.api_key == 0).unwrap();
        assert_eq!(produce.requests, 3);
        assert_eq!(produce.closed, 1);
        assert_eq!(produce.errors, vec![(3, 1), (6, 2)]);
        assert_eq!(produce.latency.count, 3);
        assert_eq!(produce.latency.buckets[3], 2, "two within 1 ms");
        let fetch = snap.iter().find(|a| a.api_key == 1).unwrap();
        assert_eq!(fetch.requests, 1);
    }

    #[test]
    fn keys_out_of_range_are_ignored() {
        record(-1, Duration::from_micros(5), false);
        record(500, Duration::from_micros(5), false);
        count_error(i16::MAX, 1);
        assert!(snapshot().iter().all(|a| (0..128).contains(&a.api_key)));
    }
}
