//! A millisecond clock relative to the process's first use of it, cheap to
//! keep in an atomic (connection activity, log rate limits).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant [`now_ms`] counts from.
pub(crate) fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since [`epoch`].
pub(crate) fn now_ms() -> u64 {
    ms_of(Instant::now())
}

/// `at` as milliseconds since [`epoch`] (0 if before it).
pub(crate) fn ms_of(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
