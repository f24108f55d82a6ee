//! Passive health: real servers whose connects fail are left out of the
//! choice for a while, whether or not a health check watches them
//! (nginx's `max_fails` / `fail_timeout`, HAProxy's `observe layer4`).
//!
//! `max_fails` failed connects in a row, each within `fail_timeout` of the
//! first of the run, leave a real server out for `fail_timeout`. When that
//! time is up it is tried again: one more failure leaves it out again at
//! once (it is still on probation), a success clears it. While every live
//! real server is out, none is left out (as nginx does): refusing every
//! client would be worse than trying.
//!
//! Sans-IO: fed the connect outcomes with `now`; [`Passive::is_out`] is a
//! pure question.

use crate::hash::AddrMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What passive health knows of one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Failed connects in the current run.
    fails: u32,
    /// When the current run started.
    since: Instant,
    /// Left out until then.
    out_until: Option<Instant>,
    /// Was left out and not yet seen succeeding.
    probation: bool,
}

/// A real server was just left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    pub addr: SocketAddr,
    pub fails: u32,
    pub until: Instant,
}

/// One virtual service's passive health.
#[derive(Debug, Clone, Default)]
pub struct Passive {
    max_fails: u32,
    fail_timeout: Duration,
    /// Only real servers with a failure on record.
    entries: AddrMap<Entry>,
}

impl Passive {
    pub fn new(max_fails: u32, fail_timeout: Duration) -> Self {
        Passive {
            max_fails,
            fail_timeout,
            entries: AddrMap::default(),
        }
    }

    /// New settings; a real server left out stays out until its time is up.
    /// `max_fails = 0` turns it off and forgets everything.
    pub fn reconfigure(&mut self, max_fails: u32, fail_timeout: Duration) {
        self.max_fails = max_fails;
        self.fail_timeout = fail_timeout;
        if max_fails == 0 {
            self.entries.clear();
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_fails > 0 && !self.fail_timeout.is_zero()
    }

    /// A connect to `addr` failed (refused, timed out). Returns the real
    /// server if this failure leaves it out.
    pub fn failed(&mut self, addr: SocketAddr, now: Instant) -> Option<LeftOut> {
        if !self.enabled() {
            return None;
        }
        let window = self.fail_timeout;
        let e = self.entries.entry(addr).or_insert(Entry {
            fails: 0,
            since: now,
            out_until: None,
            probation: false,
        });
        if e.out_until.is_some_and(|t| now < t) {
            // A connect chosen before it was left out: already counted.
            return None;
        }
        if e.out_until.take().is_some() {
            e.probation = true;
        }
        if e.fails == 0 || now.saturating_duration_since(e.since) > window {
            e.fails = 0;
            e.since = now;
        }
        e.fails = e.fails.saturating_add(1);
        if e.fails >= self.max_fails || e.probation {
            let until = now + window;
            e.out_until = Some(until);
            let fails = e.fails;
            e.fails = 0;
            return Some(LeftOut { addr, fails, until });
        }
        None
    }

    /// A connect to `addr` succeeded: its record is cleared. Returns
    /// whether it had been left out (it is back).
    pub fn succeeded(&mut self, addr: SocketAddr) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        self.entries
            .remove(&addr)
            .is_some_and(|e| e.probation || e.out_until.is_some())
    }

    /// Whether `addr` is left out at `now`.
    pub fn is_out(&self, addr: &SocketAddr, now: Instant) -> bool {
        !self.entries.is_empty()
            && self
                .entries
                .get(addr)
                .and_then(|e| e.out_until)
                .is_some_and(|t| now < t)
    }

    /// Until when `addr` is left out, if it is at `now`.
    pub fn out_until(&self, addr: &SocketAddr, now: Instant) -> Option<Instant> {
        self.entries
            .get(addr)
            .and_then(|e| e.out_until)
            .filter(|&t| now < t)
    }

    /// Whether any real server is left out at `now` (cheap when none has
    /// failed).
    pub fn any_out(&self, now: Instant) -> bool {
        !self.entries.is_empty()
            && self
                .entries
                .values()
                .any(|e| e.out_until.is_some_and(|t| now < t))
    }

    /// Forget real servers that left the table.
    pub fn retain(&mut self, mut keep: impl FnMut(&SocketAddr) -> bool) {
        self.entries.retain(|a, _| keep(a));
    }

    /// Asserts its state is consistent; panics otherwise.
    pub fn check_invariants(&self) {
        if !self.enabled() {
            assert!(self.entries.is_empty(), "entries kept while off");
        }
        for (a, e) in &self.entries {
            if let Some(t) = e.out_until {
                assert!(t >= e.since, "{a} left out before its run began");
                assert_eq!(e.fails, 0, "{a}: a run counted while left out");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(n: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], n))
    }

    #[test]
    fn one_failure_leaves_out_with_nginx_defaults_and_a_success_clears() {
        let t0 = Instant::now();
        let mut p = Passive::new(1, Duration::from_secs(10));
        let out = p.failed(a(1), t0).unwrap();
        assert_eq!(out.until, t0 + Duration::from_secs(10));
        assert!(p.is_out(&a(1), t0 + Duration::from_secs(9)));
        assert!(!p.is_out(&a(2), t0));
        assert!(!p.is_out(&a(1), t0 + Duration::from_secs(10)));
        // Back on probation: one more failure leaves it out again.
        assert!(p.failed(a(1), t0 + Duration::from_secs(11)).is_some());
        assert!(p.succeeded(a(1)));
        assert!(!p.is_out(&a(1), t0 + Duration::from_secs(12)));
        assert!(!p.any_out(t0 + Duration::from_secs(12)));
        p.check_invariants();
    }

    #[test]
    fn failures_count_within_the_window_only() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Passive::new(3, Duration::from_secs(10));
        assert!(p.failed(a(1), t0).is_none());
        assert!(p.failed(a(1), t0 + s).is_none());
        // The run is older than the window: it starts again.
        assert!(p.failed(a(1), t0 + 11 * s).is_none());
        assert!(p.failed(a(1), t0 + 12 * s).is_none());
        let out = p.failed(a(1), t0 + 13 * s).unwrap();
        assert_eq!(out.fails, 3);
        // Failures of connects chosen before it was left out are not new.
        assert!(p.failed(a(1), t0 + 14 * s).is_none());
        // A success in between resets the run.
        let mut p = Passive::new(2, Duration::from_secs(10));
        assert!(p.failed(a(1), t0).is_none());
        assert!(!p.succeeded(a(1)));
        assert!(p.failed(a(1), t0 + s).is_none());
    }

    #[test]
    fn off_keeps_nothing() {
        let t0 = Instant::now();
        let mut p = Passive::new(0, Duration::from_secs(10));
        assert!(p.failed(a(1), t0).is_none());
        assert!(!p.any_out(t0));
        let mut p = Passive::new(1, Duration::from_secs(10));
        p.failed(a(1), t0);
        p.reconfigure(0, Duration::from_secs(10));
        assert!(!p.is_out(&a(1), t0));
        p.check_invariants();
    }

    proptest! {
        /// Over any sequence of outcomes: a real server is out only after a
        /// failure, never longer than fail_timeout after its last failure,
        /// and a success always brings it back.
        #[test]
        fn out_only_after_failures_and_never_longer_than_the_timeout(
            steps in proptest::collection::vec((0u16..3, any::<bool>(), 0u64..4000), 1..200),
            max_fails in 0u32..4,
        ) {
            let t0 = Instant::now();
            let window = Duration::from_secs(2);
            let mut p = Passive::new(max_fails, window);
            let mut now = t0;
            let mut last_fail: [Option<Instant>; 3] = [None; 3];
            for (who, ok, dt) in steps {
                now += Duration::from_millis(dt);
                let addr = a(who);
                if ok {
                    p.succeeded(addr);
                    prop_assert!(!p.is_out(&addr, now));
                } else {
                    p.failed(addr, now);
                    last_fail[who as usize] = Some(now);
                }
                for k in 0..3u16 {
                    if p.is_out(&a(k), now) {
                        let f = last_fail[k as usize];
                        prop_assert!(f.is_some_and(|f| now < f + window));
                        prop_assert!(max_fails > 0);
                    }
                }
                p.check_invariants();
            }
        }
    }
}
