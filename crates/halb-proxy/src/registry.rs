//! The connection table behind [`DataPlane::connections`].
//!
//! One shard per worker, each a slab of entries behind its own mutex: a
//! worker registers and forgets its connections on its own shard (an
//! uncontended lock, no hashing), the table is read rarely (`halb list -c`).
//! Each entry is shared with its connection, which updates the byte counts
//! and activity time with relaxed stores; only that connection writes them.
//!
//! [`DataPlane::connections`]: halb_table::DataPlane::connections

use crate::clock::{epoch, now_ms};
use halb_table::{ConnectionInfo, Protocol};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ConnState {
    Connecting = 0,
    Established = 1,
    FinWait = 2,
    Udp = 3,
}

impl ConnState {
    fn name(self) -> &'static str {
        match self {
            ConnState::Connecting => "CONNECTING",
            ConnState::Established => "ESTABLISHED",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::Udp => "UDP",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnState::Connecting,
            1 => ConnState::Established,
            2 => ConnState::FinWait,
            _ => ConnState::Udp,
        }
    }
}

/// One connection or flow as the table shows it.
pub(crate) struct ConnEntry {
    pub(crate) protocol: Protocol,
    pub(crate) client: SocketAddr,
    pub(crate) virtual_addr: SocketAddr,
    /// The real server being tried or in use.
    real: Mutex<SocketAddr>,
    state: AtomicU8,
    /// Milliseconds since the clock's epoch.
    created_ms: u64,
    last_ms: AtomicU64,
    /// Idle timeout in ms (0: never).
    timeout_ms: u64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl ConnEntry {
    pub(crate) fn new(
        protocol: Protocol,
        client: SocketAddr,
        virtual_addr: SocketAddr,
        state: ConnState,
        timeout_ms: u64,
    ) -> Self {
        let now = now_ms();
        ConnEntry {
            protocol,
            client,
            virtual_addr,
            real: Mutex::new(SocketAddr::from(([0, 0, 0, 0], 0))),
            state: AtomicU8::new(state as u8),
            created_ms: now,
            last_ms: AtomicU64::new(now),
            timeout_ms,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_real(&self, real: SocketAddr) {
        *self.real.lock().unwrap_or_else(|e| e.into_inner()) = real;
    }

    pub(crate) fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Relaxed);
    }

    /// Traffic seen now (`now_ms` from [`crate::clock`]).
    #[inline]
    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_ms.store(now_ms, Relaxed);
    }

    pub(crate) fn last_ms(&self) -> u64 {
        self.last_ms.load(Relaxed)
    }

    /// Only the owning connection calls these (single writer).
    #[inline]
    pub(crate) fn add_in(&self, n: u64) {
        self.bytes_in
            .store(self.bytes_in.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub(crate) fn add_out(&self, n: u64) {
        self.bytes_out
            .store(self.bytes_out.load(Relaxed).wrapping_add(n), Relaxed);
    }

    fn info(&self, now: u64) -> ConnectionInfo {
        let last = self.last_ms.load(Relaxed);
        let expires_ms = if self.timeout_ms == 0 {
            0
        } else {
            (last.saturating_add(self.timeout_ms)).saturating_sub(now)
        };
        ConnectionInfo {
            protocol: self.protocol,
            client: self.client,
            virtual_addr: self.virtual_addr,
            real: *self.real.lock().unwrap_or_else(|e| e.into_inner()),
            state: ConnState::from_u8(self.state.load(Relaxed))
                .name()
                .to_string(),
            age_ms: now.saturating_sub(self.created_ms),
            expires_ms,
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
        }
    }
}

#[derive(Default)]
struct Slab {
    slots: Vec<Option<Arc<ConnEntry>>>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, e: Arc<ConnEntry>) -> usize {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = Some(e);
                return i;
            }
        }
        self.slots.push(Some(e));
        self.slots.len() - 1
    }

    fn remove(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.take().is_some() {
                self.len -= 1;
                self.free.push(i);
            }
        }
        // give memory back once a burst is over
        if self.len == 0 && self.slots.len() > 1024 {
            self.slots = Vec::new();
            self.free = Vec::new();
        }
    }
}

/// The connection table, one shard per worker.
pub(crate) struct Registry {
    shards: Box<[Mutex<Slab>]>,
    /// Entries in all shards (read on every accept: no lock).
    open: AtomicUsize,
}

impl Registry {
    pub(crate) fn new(workers: usize) -> Self {
        Registry {
            shards: (0..workers.max(1))
                .map(|_| Mutex::new(Slab::default()))
                .collect(),
            open: AtomicUsize::new(0),
        }
    }

    fn shard(&self, w: usize) -> MutexGuard<'_, Slab> {
        let last = self.shards.len() - 1;
        self.shards[w.min(last)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Register `entry` on worker `w`'s shard until the guard drops.
    pub(crate) fn register(self: &Arc<Self>, w: usize, entry: ConnEntry) -> Registered {
        let entry = Arc::new(entry);
        let key = self.shard(w).insert(entry.clone());
        self.open.fetch_add(1, Relaxed);
        Registered {
            registry: self.clone(),
            worker: w,
            key,
            entry,
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<ConnectionInfo> {
        let now = now_ms();
        let mut out = Vec::new();
        for w in 0..self.shards.len() {
            let s = self.shard(w);
            out.reserve(s.len);
            out.extend(s.slots.iter().flatten().map(|e| e.info(now)));
        }
        out
    }

    /// Connections and flows open now.
    pub(crate) fn len(&self) -> usize {
        self.open.load(Relaxed)
    }
}

/// A registered entry; dropping it takes the entry out of the table.
pub(crate) struct Registered {
    registry: Arc<Registry>,
    worker: usize,
    key: usize,
    entry: Arc<ConnEntry>,
}

impl Registered {
    #[inline]
    pub(crate) fn entry(&self) -> &ConnEntry {
        &self.entry
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.shard(self.worker).remove(self.key);
        self.registry.open.fetch_sub(1, Relaxed);
    }
}

/// The instant an entry's `last_ms` stands for.
pub(crate) fn instant_of_ms(ms: u64) -> Instant {
    epoch() + std::time::Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_and_forget() {
        let r = Arc::new(Registry::new(2));
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let v: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let g1 = r.register(
            0,
            ConnEntry::new(Protocol::Tcp, a, v, ConnState::Connecting, 0),
        );
        let g2 = r.register(1, ConnEntry::new(Protocol::Udp, a, v, ConnState::Udp, 5000));
        g1.entry().set_real("10.0.0.1:80".parse().unwrap());
        g1.entry().set_state(ConnState::Established);
        g1.entry().add_in(10);
        g1.entry().add_out(20);
        let snap = r.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].state, "ESTABLISHED");
        assert_eq!(snap[0].real.to_string(), "10.0.0.1:80");
        assert_eq!((snap[0].bytes_in, snap[0].bytes_out), (10, 20));
        assert_eq!(snap[0].expires_ms, 0);
        assert_eq!(snap[1].state, "UDP");
        assert!(snap[1].expires_ms <= 5000 && snap[1].expires_ms > 0);
        drop(g1);
        assert_eq!(r.len(), 1);
        let g3 = r.register(
            0,
            ConnEntry::new(Protocol::Tcp, a, v, ConnState::Connecting, 0),
        );
        assert_eq!(r.len(), 2);
        drop(g2);
        drop(g3);
        assert_eq!(r.len(), 0);
        assert!(r.snapshot().is_empty());
    }
}
