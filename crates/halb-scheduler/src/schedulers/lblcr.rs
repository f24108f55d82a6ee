//! Locality-based least-connection with replication:
//! `net/netfilter/ipvs/ip_vs_lblcr.c`, `ip_vs_lblcr_schedule()`,
//! `ip_vs_dest_set_min()`, `ip_vs_dest_set_max()` and the expiry in
//! `ip_vs_lblcr_check_expire()` / `ip_vs_lblcr_full_check()`.
//!
//! Each destination address maps to a *set* of real servers. A request goes
//! to the weighted least-connection available member of its address's set,
//! unless there is none or it is overloaded in the lblc sense (more active
//! connections than weight while some server is under half its weight):
//! then the weighted least-connection server of the whole service is chosen
//! and added to the set. When a set has more than one member and has not
//! changed for [`EXPIRATION`], its most loaded member is removed.
//!
//! Entries unused for [`EXPIRATION`] are dropped by [`Lblcr::handle_timeout`], and
//! those unused for [`ENTRY_TIMEOUT`] when there are more than
//! [`MAX_ENTRIES`].
//!
//! Differences: members over their connection threshold or excluded are
//! skipped when choosing in a set (the kernel skips only
//! `IP_VS_DEST_F_OVERLOAD`, which halb's threshold flag is, so only the
//! exclude list is new). Members that left the table are dropped from sets
//! at update, and an emptied set's entry with them.

use super::lblc::{
    expire_entries, expiry, locality_overloaded, next_entry_deadline, LastUse, EXPIRATION,
};
use super::least_conn::{conn_overhead, lighter, wlc};
use super::{Ctx, Live};
use crate::hash::canonical;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

#[derive(Debug, Clone)]
struct Entry {
    /// Members, most recently added first (`list_add_rcu` at the head).
    set: Vec<usize>,
    lastmod: Instant,
    lastuse: Instant,
}

impl LastUse for Entry {
    fn lastuse(&self) -> Instant {
        self.lastuse
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Lblcr {
    map: HashMap<IpAddr, Entry>,
}

/// `ip_vs_dest_set_min()`: the weighted least-connection available member.
fn set_min(ctx: &Ctx<'_>, set: &[usize]) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for &d in set {
        if d >= ctx.len() || !ctx.available(d) {
            continue;
        }
        let doh = conn_overhead(&ctx.reals[d]);
        match least {
            None => least = Some((d, doh)),
            Some((l, loh)) => {
                if lighter(loh, ctx.weight(l), doh, ctx.weight(d)) {
                    least = Some((d, doh));
                }
            }
        }
    }
    least.map(|(d, _)| d)
}

/// `ip_vs_dest_set_max()`: the weighted most-connection member with a
/// non-zero weight.
fn set_max(ctx: &Ctx<'_>, set: &[usize]) -> Option<usize> {
    let mut most: Option<(usize, u64)> = None;
    for &d in set {
        if d >= ctx.len() || ctx.weight(d) == 0 {
            continue;
        }
        let doh = conn_overhead(&ctx.reals[d]);
        match most {
            None => most = Some((d, doh)),
            Some((m, moh)) => {
                // moh/mw < doh/dw
                if u128::from(moh) * u128::from(ctx.weight(d))
                    < u128::from(doh) * u128::from(ctx.weight(m))
                {
                    most = Some((d, doh));
                }
            }
        }
    }
    most.map(|(d, _)| d)
}

impl Lblcr {
    #[inline]
    pub fn pick(&mut self, ctx: &Ctx<'_>, dest: IpAddr, now: Instant) -> Option<usize> {
        let key = canonical(dest);
        let Some(en) = self.map.get_mut(&key) else {
            let d = wlc(ctx)?;
            self.map.insert(
                key,
                Entry {
                    set: vec![d],
                    lastmod: now,
                    lastuse: now,
                },
            );
            return Some(d);
        };
        en.lastuse = now;
        let min = set_min(ctx, &en.set);
        if en.set.len() > 1 && expiry(en.lastmod, EXPIRATION).is_some_and(|t| now > t) {
            if let Some(m) = set_max(ctx, &en.set) {
                en.set.retain(|&x| x != m);
                en.lastmod = now;
            }
        }
        if let Some(d) = min {
            if !locality_overloaded(ctx, d) {
                return Some(d);
            }
        }
        let d = wlc(ctx)?;
        if !en.set.contains(&d) {
            en.set.insert(0, d);
            en.lastmod = now;
        }
        Some(d)
    }

    pub fn update(&mut self, old: &[SocketAddr], live: &Live<'_>) {
        if old.len() == live.reals.len()
            && old.iter().zip(live.reals).all(|(a, r)| *a == r.server.addr)
        {
            return;
        }
        self.map.retain(|_, en| {
            en.set = en
                .set
                .iter()
                .filter_map(|&d| old.get(d).and_then(|a| live.position(a)))
                .collect();
            !en.set.is_empty()
        });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        expire_entries(&mut self.map, now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        next_entry_deadline(&self.map)
    }

    #[cfg(test)]
    fn set(&self, dest: IpAddr) -> Vec<usize> {
        self.map
            .get(&dest)
            .map(|e| e.set.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn vip() -> IpAddr {
        IpAddr::from(Ipv4Addr::new(192, 0, 2, 1))
    }

    #[test]
    fn grows_the_set_under_load_and_shrinks_it_later() {
        let t0 = Instant::now();
        let mut r = reals(&[2, 4, 4]);
        let mut s = Lblcr::default();
        assert_eq!(s.pick(&ctx(&r), vip(), t0), Some(0));
        r[0].active = 3; // over weight; 1 and 2 are idle
        assert_eq!(s.pick(&ctx(&r), vip(), t0), Some(1));
        assert_eq!(s.set(vip()), vec![1, 0]);
        // now the set's least loaded member is used
        r[1].active = 1;
        assert_eq!(s.pick(&ctx(&r), vip(), t0), Some(1));
        // after the expiration without change, the most loaded (0: 3/2)
        // leaves the set
        let later = t0 + EXPIRATION + Duration::from_secs(1);
        assert_eq!(s.pick(&ctx(&r), vip(), later), Some(1));
        assert_eq!(s.set(vip()), vec![1]);
    }

    #[test]
    fn unavailable_members_are_skipped() {
        let t0 = Instant::now();
        let mut r = reals(&[1, 1]);
        let mut s = Lblcr::default();
        assert_eq!(s.pick(&ctx(&r), vip(), t0), Some(0));
        r[0].overloaded = true;
        assert_eq!(s.pick(&ctx(&r), vip(), t0), Some(1));
        assert_eq!(s.set(vip()), vec![1, 0]);
        r[1].server.weight = 0;
        assert_eq!(s.pick(&ctx(&r), vip(), t0), None);
    }
}
