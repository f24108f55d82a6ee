//! Persistence templates (`ipvsadm -p TIMEOUT -M NETMASK`), after
//! `ip_vs_sched_persist()` in `net/netfilter/ipvs/ip_vs_core.c` and
//! `ip_vs_check_template()` in `net/netfilter/ipvs/ip_vs_conn.c`.
//!
//! A client address masked by the service's prefix length (per family) is
//! the key of a template naming one real server. While the template holds,
//! new connections from any client under that key go to its real server.
//! The template counts the key's open connections to that server and
//! expires `timeout` after the last of them ended.
//!
//! Choices and differences:
//!
//! * A template is dropped by [`Pool::update`](crate::Pool::update) when its
//!   real server leaves the table or gets weight 0: the behaviour of the
//!   kernel with `sysctl net.ipv4.vs.expire_quiescent_template = 1`
//!   (the kernel default is 0, which keeps sending persistent clients to a
//!   quiescent server).
//! * At scheduling, a template whose server is overloaded or excluded is
//!   ignored and replaced by a fresh decision; the kernel ignores neither.
//! * Expiry is exact: at `last_release + timeout`, never before and, when
//!   [`Templates::handle_timeout`] runs then, not after. The kernel's template timer
//!   restarts on use and re-arms while connections remain, so it can
//!   outlive that point by up to one timeout. A changed timeout applies to
//!   existing templates.
//! * Connections of a key that went to a server other than the template's
//!   (opened under an older template) stay counted apart, so closing them
//!   never shortens the current template's life, and they rejoin it if a
//!   later template names their server again. Connections opened while the
//!   service had no persistence (or another netmask) are not tracked.
//! * IPv4-mapped IPv6 clients are grouped as the IPv4 address they carry.

use crate::hash::canonical;
use halb_table::Persistence;
use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Template {
    real: SocketAddr,
    /// Open connections of this key to `real`.
    refs: u32,
    /// When `refs` last dropped to 0.
    last_release: Instant,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    template: Option<Template>,
    /// Open connections of this key to other real servers.
    others: Vec<(SocketAddr, u32)>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.template.is_none() && self.others.is_empty()
    }

    fn add_other(&mut self, real: SocketAddr, n: u32) {
        if n == 0 {
            return;
        }
        match self.others.iter_mut().find(|(a, _)| *a == real) {
            Some((_, c)) => *c = c.saturating_add(n),
            None => self.others.push((real, n)),
        }
    }

    fn take_other(&mut self, real: SocketAddr) -> u32 {
        match self.others.iter().position(|(a, _)| *a == real) {
            Some(i) => self.others.swap_remove(i).1,
            None => 0,
        }
    }
}

/// The persistence templates of one service.
#[derive(Debug, Clone)]
pub(crate) struct Templates {
    cfg: Persistence,
    map: HashMap<IpAddr, Entry>,
    /// Expiry candidates: `(deadline, key)` pushed when a template's count
    /// drops to 0; stale ones are skipped when they surface.
    heap: BinaryHeap<Reverse<(Instant, IpAddr)>>,
    /// Templates in `map`.
    templates: usize,
}

/// Whether a template is over: no connection left and `timeout` passed
/// since the last one ended.
#[inline]
fn expired(t: &Template, timeout: Duration, now: Instant) -> bool {
    t.refs == 0
        && t.last_release
            .checked_add(timeout)
            .is_some_and(|d| now >= d)
}

/// Make `real` the entry's template for one more connection; the old
/// template's connections are kept apart. Whether the entry had no template.
fn bind(e: &mut Entry, real: SocketAddr, now: Instant) -> bool {
    let was_empty = match e.template.take() {
        Some(old) => {
            e.add_other(old.real, old.refs);
            false
        }
        None => true,
    };
    let refs = e.take_other(real).saturating_add(1);
    e.template = Some(Template {
        real,
        refs,
        last_release: now,
    });
    was_empty
}

/// The client address with all but the first `prefix` bits cleared.
pub(crate) fn mask(ip: IpAddr, prefix_v4: u8, prefix_v6: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let p = u32::from(prefix_v4.min(32));
            let m = u32::MAX.checked_shl(32 - p).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let p = u32::from(prefix_v6.min(128));
            let m = u128::MAX.checked_shl(128 - p).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl Templates {
    pub fn new(cfg: Persistence) -> Self {
        Templates {
            cfg,
            map: HashMap::new(),
            heap: BinaryHeap::new(),
            templates: 0,
        }
    }

    /// Apply a changed persistence setting. A new netmask changes what the
    /// keys mean, so every template goes; a new timeout applies to all.
    pub fn reconfigure(&mut self, cfg: Persistence) {
        if cfg == self.cfg {
            return;
        }
        let masks_changed =
            cfg.prefix_v4 != self.cfg.prefix_v4 || cfg.prefix_v6 != self.cfg.prefix_v6;
        self.cfg = cfg;
        if masks_changed {
            self.map.clear();
            self.heap.clear();
            self.templates = 0;
        } else {
            self.rebuild_heap();
        }
    }

    #[inline]
    pub fn key(&self, client: IpAddr) -> IpAddr {
        mask(client, self.cfg.prefix_v4, self.cfg.prefix_v6)
    }

    #[inline]
    fn deadline(&self, t: &Template) -> Option<Instant> {
        t.last_release.checked_add(self.cfg.timeout)
    }

    /// The real server of the key's template, if it holds at `now`.
    #[inline]
    pub fn current(&self, key: IpAddr, now: Instant) -> Option<SocketAddr> {
        let t = self.map.get(&key)?.template.as_ref()?;
        (!expired(t, self.cfg.timeout, now)).then_some(t.real)
    }

    /// Where a new connection of `key` goes, with one map access: to the
    /// template's real server if the template holds at `now` and `usable`
    /// maps that server to a live index; otherwise to `fresh()`'s choice,
    /// which becomes the key's template. Either way the connection is
    /// counted. `None` (and no change) if `fresh` has nothing either.
    #[inline]
    pub fn schedule(
        &mut self,
        key: IpAddr,
        now: Instant,
        usable: impl FnOnce(&SocketAddr) -> Option<usize>,
        fresh: impl FnOnce() -> Option<(usize, SocketAddr)>,
    ) -> Option<usize> {
        let timeout = self.cfg.timeout;
        match self.map.entry(key) {
            MapEntry::Occupied(mut o) => {
                let e = o.get_mut();
                if let Some(t) = e.template.as_mut() {
                    if !expired(t, timeout, now) {
                        if let Some(i) = usable(&t.real) {
                            t.refs = t.refs.saturating_add(1);
                            return Some(i);
                        }
                    }
                }
                let (i, real) = fresh()?;
                if bind(e, real, now) {
                    self.templates += 1;
                }
                Some(i)
            }
            MapEntry::Vacant(v) => {
                let (i, real) = fresh()?;
                let e = v.insert(Entry::default());
                bind(e, real, now);
                self.templates += 1;
                Some(i)
            }
        }
    }

    /// A connection of `key` to `real` ended.
    pub fn release(&mut self, key: IpAddr, real: SocketAddr, now: Instant) {
        let timeout = self.cfg.timeout;
        let Some(e) = self.map.get_mut(&key) else {
            return;
        };
        let mut push = None;
        match e.template.as_mut() {
            Some(t) if t.real == real => {
                if t.refs > 0 {
                    t.refs -= 1;
                    if t.refs == 0 {
                        t.last_release = now;
                        push = now.checked_add(timeout);
                    }
                }
            }
            _ => {
                if let Some(i) = e.others.iter().position(|(a, _)| *a == real) {
                    e.others[i].1 -= 1;
                    if e.others[i].1 == 0 {
                        e.others.swap_remove(i);
                    }
                }
            }
        }
        if e.is_empty() {
            self.map.remove(&key);
        }
        if let Some(d) = push {
            self.heap.push(Reverse((d, key)));
            self.maybe_compact();
        }
    }

    /// Drop every template whose real server fails `keep` (left the table
    /// or quiescent); their connections stay counted apart.
    pub fn retain_reals(&mut self, keep: impl Fn(&SocketAddr) -> bool) {
        let mut dropped = 0;
        self.map.retain(|_, e| {
            if let Some(t) = e.template {
                if !keep(&t.real) {
                    e.template = None;
                    e.add_other(t.real, t.refs);
                    dropped += 1;
                }
            }
            !e.is_empty()
        });
        self.templates -= dropped;
    }

    /// Whether a heap entry still describes a pending expiry.
    fn valid(&self, deadline: Instant, key: &IpAddr) -> bool {
        self.map
            .get(key)
            .and_then(|e| e.template.as_ref())
            .is_some_and(|t| t.refs == 0 && self.deadline(t) == Some(deadline))
    }

    /// Drop the templates expired at `now`. Right after it,
    /// [`Templates::poll_timeout`] is the exact next expiry, if any (stale
    /// candidates before it are gone).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((d, key))) = self.heap.peek() {
            if self.valid(d, &key) {
                if d > now {
                    return;
                }
                if let Some(e) = self.map.get_mut(&key) {
                    e.template = None;
                    self.templates -= 1;
                    if e.is_empty() {
                        self.map.remove(&key);
                    }
                }
            }
            self.heap.pop();
        }
    }

    /// No later than the next expiry (possibly earlier: stale candidates
    /// are only skipped by [`Templates::handle_timeout`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Asserts the cross-indexed state: `templates` counts the entries
    /// with a template, no entry is empty, an entry's other connections
    /// are positive, distinct and never to the template's server, and
    /// every template waiting to expire has its deadline in the heap
    /// (stale heap entries are allowed). O(entries + heap).
    pub fn check_invariants(&self) {
        let mut templates = 0;
        let pending: std::collections::HashSet<(Instant, IpAddr)> =
            self.heap.iter().map(|Reverse(x)| *x).collect();
        for (key, e) in &self.map {
            assert!(!e.is_empty(), "empty persistence entry {key}");
            for (i, (a, n)) in e.others.iter().enumerate() {
                assert!(*n > 0, "{key}: zero connections to {a} kept");
                assert!(
                    e.others[..i].iter().all(|(b, _)| b != a),
                    "{key}: {a} counted twice"
                );
            }
            if let Some(t) = &e.template {
                templates += 1;
                assert!(
                    e.others.iter().all(|(a, _)| *a != t.real),
                    "{key}: the template's server also counted apart"
                );
                if t.refs == 0 {
                    if let Some(d) = self.deadline(t) {
                        assert!(
                            pending.contains(&(d, *key)),
                            "{key}: an idle template with no expiry pending"
                        );
                    }
                }
            }
        }
        assert_eq!(templates, self.templates, "template count is off");
    }

    /// Entries and heap candidates: the cost of [`Templates::check_invariants`].
    #[cfg(debug_assertions)]
    pub fn size(&self) -> usize {
        self.map.len() + self.heap.len()
    }

    /// Templates held (expired ones count until `handle_timeout` drops them).
    pub fn len(&self) -> usize {
        self.templates
    }

    fn rebuild_heap(&mut self) {
        let mut heap = BinaryHeap::with_capacity(self.templates);
        for (k, e) in &self.map {
            if let Some(t) = &e.template {
                if t.refs == 0 {
                    if let Some(d) = self.deadline(t) {
                        heap.push(Reverse((d, *k)));
                    }
                }
            }
        }
        self.heap = heap;
    }

    fn maybe_compact(&mut self) {
        if self.heap.len() > 2 * self.templates + 64 {
            self.rebuild_heap();
        }
    }

    /// Open connections of `key` to `real` as the templates count them.
    #[cfg(test)]
    pub fn counted(&self, key: IpAddr, real: SocketAddr) -> u32 {
        let Some(e) = self.map.get(&key) else {
            return 0;
        };
        let t = e.template.filter(|t| t.real == real).map_or(0, |t| t.refs);
        t + e
            .others
            .iter()
            .filter(|(a, _)| *a == real)
            .map(|(_, c)| *c)
            .sum::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection of `key` to `real`: through the template if it names
    /// `real`, else a fresh decision for `real`.
    fn connect(t: &mut Templates, key: IpAddr, real: SocketAddr, now: Instant) {
        t.schedule(key, now, |a| (*a == real).then_some(0), || Some((0, real)));
    }

    fn cfg(secs: u64, p4: u8, p6: u8) -> Persistence {
        Persistence {
            timeout: Duration::from_secs(secs),
            prefix_v4: p4,
            prefix_v6: p6,
        }
    }

    #[test]
    fn masks() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(mask(ip, 24, 128), "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask(ip, 32, 128), ip);
        assert_eq!(mask(ip, 0, 128), "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask(ip, 40, 128), ip);
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(mask(v6, 32, 48), "2001:db8:1::".parse::<IpAddr>().unwrap());
        assert_eq!(mask(v6, 32, 0), "::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.77".parse().unwrap();
        assert_eq!(
            mask(mapped, 24, 128),
            "192.0.2.0".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn lifecycle_and_exact_expiry() {
        let t0 = Instant::now();
        let mut t = Templates::new(cfg(10, 32, 128));
        let k = t.key("10.0.0.1".parse().unwrap());
        let a: SocketAddr = "10.1.0.1:80".parse().unwrap();
        assert_eq!(t.current(k, t0), None);
        connect(&mut t, k, a, t0);
        connect(&mut t, k, a, t0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.counted(k, a), 2);
        t.release(k, a, t0 + Duration::from_secs(1));
        t.handle_timeout(t0 + Duration::from_secs(100));
        assert_eq!(t.poll_timeout(), None);
        t.release(k, a, t0 + Duration::from_secs(2));
        let d = t0 + Duration::from_secs(12);
        assert_eq!(t.poll_timeout(), Some(d));
        t.handle_timeout(d - Duration::from_nanos(1));
        assert_eq!(t.poll_timeout(), Some(d));
        assert_eq!(t.current(k, d - Duration::from_nanos(1)), Some(a));
        assert_eq!(t.current(k, d), None);
        t.handle_timeout(d);
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn replaced_template_keeps_old_counts_apart() {
        let t0 = Instant::now();
        let mut t = Templates::new(cfg(10, 32, 128));
        let k = t.key("10.0.0.1".parse().unwrap());
        let a: SocketAddr = "10.1.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.1.0.2:80".parse().unwrap();
        connect(&mut t, k, a, t0);
        connect(&mut t, k, b, t0);
        assert_eq!(t.len(), 1);
        assert_eq!((t.counted(k, a), t.counted(k, b)), (1, 1));
        // closing the old connection to a does not touch b's template
        t.release(k, a, t0);
        assert_eq!(t.current(k, t0), Some(b));
        assert_eq!(t.poll_timeout(), None);
        // back to a: the old connections to a rejoin
        connect(&mut t, k, a, t0);
        assert_eq!((t.counted(k, a), t.counted(k, b)), (1, 1));
        t.release(k, b, t0);
        assert_eq!(t.poll_timeout(), None);
        t.release(k, a, t0);
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn retain_and_reconfigure() {
        let t0 = Instant::now();
        let mut t = Templates::new(cfg(10, 32, 128));
        let a: SocketAddr = "10.1.0.1:80".parse().unwrap();
        let k1 = t.key("10.0.0.1".parse().unwrap());
        let k2 = t.key("10.0.0.2".parse().unwrap());
        connect(&mut t, k1, a, t0);
        connect(&mut t, k2, a, t0);
        t.release(k2, a, t0);
        t.retain_reals(|_| false);
        assert_eq!(t.len(), 0);
        assert_eq!(t.counted(k1, a), 1);
        t.release(k1, a, t0);
        assert_eq!(t.counted(k1, a), 0);
        connect(&mut t, k1, a, t0);
        t.reconfigure(cfg(20, 32, 128));
        assert_eq!(t.len(), 1);
        t.reconfigure(cfg(20, 24, 128));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn huge_timeout_never_expires() {
        let t0 = Instant::now();
        let mut t = Templates::new(Persistence {
            timeout: Duration::MAX,
            prefix_v4: 32,
            prefix_v6: 128,
        });
        let k = t.key("10.0.0.1".parse().unwrap());
        let a: SocketAddr = "10.1.0.1:80".parse().unwrap();
        connect(&mut t, k, a, t0);
        t.release(k, a, t0);
        t.handle_timeout(t0 + Duration::from_secs(1 << 40));
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.current(k, t0 + Duration::from_secs(1 << 40)), Some(a));
    }
}
