//! Counters on the hot path.
//!
//! Every counter is sharded per worker thread: a worker only ever writes its
//! own shard (connections and flows stay on the worker that accepted them),
//! so the hot path is a plain load and store of a cache line no other core
//! writes, with no locked instruction and no cache-line bouncing between
//! workers. Readers (stats, the estimator timer) sum the shards with
//! `Relaxed` loads; a sum may be a few bytes behind, never torn.

use halb_table::{Counters, Estimator, Rates};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

/// Add to a counter only the current thread writes (see the module doc).
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Subtract from a gauge only the current thread writes.
#[inline]
fn drop_by(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_sub(n), Relaxed);
}

/// One worker's share of a [`CounterSet`], alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Shard {
    conns: AtomicU64,
    active: AtomicU64,
    inactive: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    fallback_conns: AtomicU64,
}

impl Shard {
    #[inline]
    pub(crate) fn conn(&self) {
        bump(&self.conns, 1);
    }
    #[inline]
    pub(crate) fn fallback_conn(&self) {
        bump(&self.fallback_conns, 1);
    }
    /// A connection starts counting as inactive (connecting, UDP flow).
    #[inline]
    pub(crate) fn inactive_up(&self) {
        bump(&self.inactive, 1);
    }
    #[inline]
    pub(crate) fn inactive_down(&self) {
        drop_by(&self.inactive, 1);
    }
    /// Inactive → active (established).
    #[inline]
    pub(crate) fn activate(&self) {
        drop_by(&self.inactive, 1);
        bump(&self.active, 1);
    }
    /// Active → inactive (half-closed).
    #[inline]
    pub(crate) fn deactivate(&self) {
        drop_by(&self.active, 1);
        bump(&self.inactive, 1);
    }
    #[inline]
    pub(crate) fn active_down(&self) {
        drop_by(&self.active, 1);
    }
    /// Bytes from client to real server.
    #[inline]
    pub(crate) fn bytes_in(&self, n: u64) {
        bump(&self.bytes_in, n);
    }
    /// Bytes from real server to client.
    #[inline]
    pub(crate) fn bytes_out(&self, n: u64) {
        bump(&self.bytes_out, n);
    }
    #[inline]
    pub(crate) fn packet_in(&self, bytes: u64) {
        bump(&self.packets_in, 1);
        bump(&self.bytes_in, bytes);
    }
    #[inline]
    pub(crate) fn packet_out(&self, bytes: u64) {
        bump(&self.packets_out, 1);
        bump(&self.bytes_out, bytes);
    }
}

/// Counters of one service or real server, one [`Shard`] per worker.
pub(crate) struct CounterSet {
    shards: Box<[Shard]>,
}

impl CounterSet {
    pub(crate) fn new(workers: usize) -> Self {
        CounterSet {
            shards: (0..workers.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    /// The shard of worker `w` (the last one if `w` is out of range, which
    /// only a bug could cause; counts stay right, just shared).
    #[inline]
    pub(crate) fn shard(&self, w: usize) -> &Shard {
        let last = self.shards.len() - 1;
        &self.shards[w.min(last)]
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let mut c = Counters::default();
        for s in self.shards.iter() {
            c.conns = c.conns.wrapping_add(s.conns.load(Relaxed));
            c.active = c.active.wrapping_add(s.active.load(Relaxed));
            c.inactive = c.inactive.wrapping_add(s.inactive.load(Relaxed));
            c.bytes_in = c.bytes_in.wrapping_add(s.bytes_in.load(Relaxed));
            c.bytes_out = c.bytes_out.wrapping_add(s.bytes_out.load(Relaxed));
            c.packets_in = c.packets_in.wrapping_add(s.packets_in.load(Relaxed));
            c.packets_out = c.packets_out.wrapping_add(s.packets_out.load(Relaxed));
        }
        // Gauges are summed over shards that each stay >= 0, but a reader
        // racing a worker may see a transient wrap; clamp it.
        if c.active > i64::MAX as u64 {
            c.active = 0;
        }
        if c.inactive > i64::MAX as u64 {
            c.inactive = 0;
        }
        c
    }

    pub(crate) fn fallback_conns(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |a, s| a.wrapping_add(s.fallback_conns.load(Relaxed)))
    }
}

/// Counters plus their rate estimator.
pub(crate) struct Metered {
    pub(crate) counters: CounterSet,
    estimator: Mutex<Estimator>,
}

impl Metered {
    pub(crate) fn new(workers: usize) -> Self {
        Metered {
            counters: CounterSet::new(workers),
            estimator: Mutex::new(Estimator::new()),
        }
    }

    #[inline]
    pub(crate) fn shard(&self, w: usize) -> &Shard {
        self.counters.shard(w)
    }

    /// Feed the estimator (the data plane's timer calls this every period).
    pub(crate) fn sample(&self, now: Instant) {
        let c = self.counters.snapshot();
        self.estimator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(now, &c);
    }

    pub(crate) fn rates(&self) -> Rates {
        self.estimator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rates()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum() {
        let m = Metered::new(3);
        m.shard(0).conn();
        m.shard(0).inactive_up();
        m.shard(1).conn();
        m.shard(1).inactive_up();
        m.shard(1).activate();
        m.shard(2).packet_in(10);
        m.shard(2).packet_out(7);
        m.shard(0).bytes_in(5);
        m.shard(9).fallback_conn(); // out of range: last shard
        let c = m.counters.snapshot();
        assert_eq!(c.conns, 2);
        assert_eq!(c.active, 1);
        assert_eq!(c.inactive, 1);
        assert_eq!(c.bytes_in, 15);
        assert_eq!(c.bytes_out, 7);
        assert_eq!(c.packets_in, 1);
        assert_eq!(c.packets_out, 1);
        assert_eq!(m.counters.fallback_conns(), 1);
        m.shard(1).deactivate();
        m.shard(1).inactive_down();
        m.shard(0).inactive_down();
        let c = m.counters.snapshot();
        assert_eq!((c.active, c.inactive), (0, 0));
    }
}
