//! A latency histogram for the broker's metrics: an HdrHistogram (two
//! significant digits, 1 us to one hour) with the sum Prometheus wants,
//! read out as cumulative counts at fixed bucket bounds.
//!
//! It is kept per shard by whoever records (no atomics, no sharing), and
//! read out on the same shard when a scrape asks, so the bucket counts,
//! not the histogram, travel to the shard that renders them.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The upper bounds of the buckets, in seconds: from 100 us (a request
/// answered from memory, a durable write on a fast device) to 30 s (a long
/// poll or a JoinGroup waiting out a rebalance). Prometheus adds `+Inf`.
pub const LATENCY_BUCKETS_SECONDS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The largest duration told apart, in microseconds (one hour); longer
/// ones are counted at it.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Durations recorded on one shard. About 26 KiB each.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    latency_us: Histogram<u64>,
    sum_us: u64,
}

/// What a scrape renders: cumulative counts at [`LATENCY_BUCKETS_SECONDS`],
/// the count of all, and their sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 2)
                .expect("the bounds are valid"),
            sum_us: 0,
        }
    }

    pub fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        // One pass over the recorded values only (a histogram holds a few
        // thousand counters, most of them zero): asking the histogram for
        // the count below each bound instead walks all of them per bound,
        // which made a scrape cost about a millisecond of the shard.
        let mut buckets = vec![0u64; LATENCY_BUCKETS_SECONDS.len()];
        for v in self.latency_us.iter_recorded() {
            // The top of the value's bucket: a duration is counted at or
            // below a bound only if its whole bucket is.
            let us = v.value_iterated_to();
            if let Some(i) = LATENCY_BUCKETS_SECONDS
                .iter()
                .position(|&bound| us <= (bound * 1e6) as u64)
            {
                buckets[i] += v.count_since_last_iteration();
            }
        }
        let mut below = 0;
        for b in &mut buckets {
            below += *b;
            *b = below;
        }
        LatencySnapshot {
            buckets,
            count: self.latency_us.len(),
            sum_seconds: self.sum_us as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_long_durations_count_only_in_the_total() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_micros(50));
        h.record(Duration::from_micros(700));
        h.record(Duration::from_millis(40));
        h.record(Duration::from_secs(7200));
        let s = h.snapshot();
        // Bounds: 100 us, 250 us, 500 us, 1 ms, 2.5, 5, 10, 25 ms, 50 ms, ...
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[2], 1);
        assert_eq!(s.buckets[3], 2);
        assert_eq!(s.buckets[7], 2);
        assert_eq!(s.buckets[8], 3);
        assert_eq!(*s.buckets.last().unwrap(), 3);
        assert_eq!(s.count, 4);
        assert!(
            (s.sum_seconds - 7200.04075).abs() < 1e-6,
            "{}",
            s.sum_seconds
        );
    }
}
