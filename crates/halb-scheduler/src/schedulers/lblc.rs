//! Locality-based least-connection: `net/netfilter/ipvs/ip_vs_lblc.c`,
//! `ip_vs_lblc_schedule()`, `__ip_vs_lblc_schedule()`, `is_overloaded()`
//! and the expiry in `ip_vs_lblc_check_expire()` /
//! `ip_vs_lblc_full_check()`.
//!
//! Each destination address the clients ask for is mapped to one real
//! server. A request for a known address goes to its server unless that
//! server is unavailable or "overloaded" in the lblc sense: more active
//! connections than its weight while some server has fewer than half its
//! weight. Otherwise the weighted least-connection server is chosen and
//! becomes the address's server.
//!
//! Entries unused for [`EXPIRATION`] (the `lblc_expiration` sysctl's
//! default, 24 hours) are dropped by [`Lblc::handle_timeout`]; when there are more
//! than [`MAX_ENTRIES`], those unused for [`ENTRY_TIMEOUT`] go too.
//!
//! Differences: the kernel keeps using a cached server that is over its
//! connection threshold (it only checks weight and the lblc overload);
//! halb treats it as unavailable, like every other scheduler. Entries are
//! kept across updates; those whose server left the table are dropped (the
//! kernel keeps them pointing at the trashed server, which is then never
//! used). The kernel's periodic timer sweeps a part of the table at a time;
//! halb drops every due entry whenever `handle_timeout` runs.

use super::least_conn::wlc;
use super::{Ctx, Live};
use crate::hash::canonical;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// `DEFAULT_EXPIRATION`: an entry unused this long is dropped.
pub(crate) const EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
/// `ENTRY_TIMEOUT`: when the table is over [`MAX_ENTRIES`], entries unused
/// this long are dropped.
pub(crate) const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `IP_VS_LBLC_TAB_SIZE * 16`.
pub(crate) const MAX_ENTRIES: usize = 1024 * 16;

/// lblc/lblcr `is_overloaded()`: more active connections than weight while
/// some live server is under half its weight.
#[inline]
pub(crate) fn locality_overloaded(ctx: &Ctx<'_>, d: usize) -> bool {
    let r = &ctx.reals[d];
    if r.active <= r.server.weight {
        return false;
    }
    ctx.reals
        .iter()
        .any(|o| u64::from(o.active) * 2 < u64::from(o.server.weight))
}

/// Deadline of an entry last used at `lastuse`.
#[inline]
pub(crate) fn expiry(lastuse: Instant, after: Duration) -> Option<Instant> {
    lastuse.checked_add(after)
}

/// Whether a deadline (none: never) has passed at `now`.
#[inline]
pub(crate) fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|t| now >= t)
}

/// Something a locality table keeps, with when it was last used.
pub(crate) trait LastUse {
    fn lastuse(&self) -> Instant;
}

/// The expiry sweep lblc and lblcr share (`ip_vs_lblc_check_expire`,
/// `ip_vs_lblcr_check_expire`): entries unused for [`EXPIRATION`] go; over
/// [`MAX_ENTRIES`], those unused for [`ENTRY_TIMEOUT`] go too.
pub(crate) fn expire_entries<E: LastUse>(map: &mut HashMap<IpAddr, E>, now: Instant) {
    map.retain(|_, en| !due(expiry(en.lastuse(), EXPIRATION), now));
    if map.len() > MAX_ENTRIES {
        map.retain(|_, en| !due(expiry(en.lastuse(), ENTRY_TIMEOUT), now));
    }
}

/// When the next entry of a locality table expires.
pub(crate) fn next_entry_deadline<E: LastUse>(map: &HashMap<IpAddr, E>) -> Option<Instant> {
    map.values()
        .filter_map(|en| expiry(en.lastuse(), EXPIRATION))
        .min()
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    dest: usize,
    lastuse: Instant,
}

impl LastUse for Entry {
    fn lastuse(&self) -> Instant {
        self.lastuse
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Lblc {
    map: HashMap<IpAddr, Entry>,
}

impl Lblc {
    #[inline]
    pub fn pick(&mut self, ctx: &Ctx<'_>, dest: IpAddr, now: Instant) -> Option<usize> {
        let key = canonical(dest);
        if let Some(en) = self.map.get_mut(&key) {
            en.lastuse = now;
            let d = en.dest;
            if d < ctx.len() && ctx.available(d) && !locality_overloaded(ctx, d) {
                return Some(d);
            }
        }
        let d = wlc(ctx)?;
        self.map.insert(
            key,
            Entry {
                dest: d,
                lastuse: now,
            },
        );
        Some(d)
    }

    pub fn update(&mut self, old: &[SocketAddr], live: &Live<'_>) {
        if old.len() == live.reals.len()
            && old.iter().zip(live.reals).all(|(a, r)| *a == r.server.addr)
        {
            return;
        }
        self.map.retain(
            |_, en| match old.get(en.dest).and_then(|a| live.position(a)) {
                Some(n) => {
                    en.dest = n;
                    true
                }
                None => false,
            },
        );
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        expire_entries(&mut self.map, now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        next_entry_deadline(&self.map)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn vip(i: u8) -> IpAddr {
        IpAddr::from(Ipv4Addr::new(192, 0, 2, i))
    }

    #[test]
    fn sticks_to_cached_server() {
        let t0 = Instant::now();
        let mut r = reals(&[1, 1, 1]);
        let mut s = Lblc::default();
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(0));
        r[0].active = 1; // not over its weight yet
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(0));
        // another address: least connections
        assert_eq!(s.pick(&ctx(&r), vip(2), t0), Some(1));
    }

    #[test]
    fn reassigns_when_overloaded_and_someone_is_idle() {
        let t0 = Instant::now();
        let mut r = reals(&[2, 4]);
        let mut s = Lblc::default();
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(0));
        r[0].active = 3; // > weight 2
        r[1].active = 2; // 2*2 < 4 is false: nobody under half load
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(0));
        r[1].active = 1; // 1*2 < 4: reassign to wlc's choice
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(1));
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(1));
    }

    #[test]
    fn quiescent_cached_server_is_replaced() {
        let t0 = Instant::now();
        let mut r = reals(&[1, 1]);
        let mut s = Lblc::default();
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(0));
        r[0].server.weight = 0;
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(1));
        r[0].server.weight = 1;
        assert_eq!(s.pick(&ctx(&r), vip(1), t0), Some(1));
    }

    #[test]
    fn entries_expire() {
        let t0 = Instant::now();
        let r = reals(&[1]);
        let mut s = Lblc::default();
        s.pick(&ctx(&r), vip(1), t0);
        assert_eq!(s.poll_timeout(), Some(t0 + EXPIRATION));
        s.handle_timeout(t0 + EXPIRATION - Duration::from_secs(1));
        assert_eq!(s.len(), 1);
        s.handle_timeout(t0 + EXPIRATION);
        assert_eq!(s.len(), 0);
        assert_eq!(s.poll_timeout(), None);
    }
}
