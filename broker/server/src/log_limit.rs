//! Log lines that repeat at most once per period, with a count of those
//! left out: a broker out of descriptors, under a reconnect storm, or
//! closing many stalled connections at once would otherwise write a line
//! per event and bury everything else in its log.

use std::time::{Duration, Instant};

/// Says when a rate-limited line is due.
pub struct RateLimited {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// Allows one line per `period`.
    pub const fn new(period: Duration) -> Self {
        RateLimited {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// Returns how many were suppressed since the last line if a line is
    /// due now, else None.
    pub fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_then_the_count_of_those_left_out() {
        let mut log = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(log.due(), Some(0));
        assert_eq!(log.due(), None);
        assert_eq!(log.due(), None);
        log.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(log.due(), Some(2));
    }
}
