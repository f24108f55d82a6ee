//! Rate-limited logging: a dead real server or a flood of accept errors must
//! not flood the log. Each call site gets one [`RateLimit`]; at most one
//! message per interval gets through, carrying the number suppressed since.

use crate::clock::now_ms;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// At most one event per `INTERVAL_MS` per call site.
pub(crate) const INTERVAL_MS: u64 = 1000;

pub(crate) struct RateLimit {
    /// `now_ms() + 1` of the last event let through; 0: never.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub(crate) const fn new() -> Self {
        RateLimit {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed since the last one)` if this event may be logged.
    pub(crate) fn check(&self) -> Option<u64> {
        self.check_at(now_ms())
    }

    fn check_at(&self, now_ms: u64) -> Option<u64> {
        let now = now_ms + 1;
        let last = self.last.load(Relaxed);
        if last != 0 && now < last + INTERVAL_MS {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Relaxed))
    }
}

/// `tracing::warn!` at most once a second per call site; the message gets a
/// `suppressed` field counting the ones dropped since the last.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if let Some(suppressed) = LIMIT.check() {
            tracing::warn!(suppressed, $($arg)+);
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_through_per_interval() {
        let l = RateLimit::new();
        assert_eq!(l.check_at(5000), Some(0));
        assert_eq!(l.check_at(5001), None);
        assert_eq!(l.check_at(5999), None);
        assert_eq!(l.check_at(6000), Some(2));
        assert_eq!(l.check_at(6001), None);
    }
}
