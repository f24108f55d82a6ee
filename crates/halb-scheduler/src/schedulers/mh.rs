//! Maglev hashing: `net/netfilter/ipvs/ip_vs_mh.c`,
//! `ip_vs_mh_permutate()`, `ip_vs_mh_populate()`, `ip_vs_mh_get()` and
//! `ip_vs_mh_get_fallback()`.
//!
//! Each live real server gets a preference permutation of the lookup table
//! from two hashes of its address and port (`offset = h1 % M`,
//! `skip = h2 % (M - 1) + 1`, with the kernel's fixed `hsiphash` keys) and
//! the servers take turns claiming their next free preferred slot until the
//! table is full. A server claims `turns` slots per round, `turns` being its
//! weight divided by the gcd of the weights and shifted right so the largest
//! fits in [`TURN_BITS`] bits (at least 1 for any non-zero weight), as the
//! kernel computes it. Weights are the kernel's `last_weight`: setting a
//! server's weight to 0 leaves the table alone (the server is then only
//! unavailable), so quiescing and restoring a server moves no other key.
//!
//! A client's slot is `hsiphash(port + addr) % M`, the port only under the
//! `port` flag (`mh-port`). An unavailable server there (quiescent,
//! overloaded or excluded) means "none", unless the `fallback` flag
//! (`mh-fallback`) is set: then the kernel's walk rehashes with increasing
//! offsets until it finds an available server.
//!
//! Differences from the kernel:
//!
//! * The table has [`MH_TABLE_SIZE`] = 65537 slots (a prime). The kernel's
//!   size is a build option, `primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]`, 4093
//!   by default and at most 131071; its turn precision is
//!   `CONFIG_IP_VS_MH_TAB_INDEX / 2` bits, 8 at the comparable 65521.
//!   Tables, and so key placements, therefore differ from a default kernel.
//! * Each server stops claiming slots once it holds its share of the table,
//!   `M * weight / sum(weights)` rounded by largest remainder (at least one
//!   slot for any non-zero weight). The kernel only has the rounds of
//!   `turns`, whose quantisation and last partial round skew shares by
//!   several percent for uneven weights; with the cap every server's share
//!   of the table is within one slot of its weight share. For equal weights
//!   the cap changes nothing.
//! * The fallback walk is skipped when no live server is available at all
//!   (the kernel walks up to M rehashes to find that out).

use super::{gcd_positive, Ctx, Live};
use crate::hash::{addr_fold, hsiphash_u32};
use halb_table::SchedulerFlags;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Lookup table size, a prime.
pub(crate) const MH_TABLE_SIZE: usize = 65537;
/// Bits of weight precision in `turns` (`IP_VS_MH_TAB_BITS`).
const TURN_BITS: u32 = 8;
/// `generate_hash_secret()`.
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);
const EMPTY: u32 = u32::MAX;

#[derive(Clone)]
pub(crate) struct Mh {
    lookup: Vec<u32>,
    flags: SchedulerFlags,
    /// `(address, last_weight)` the table was built from.
    sig: Vec<(SocketAddr, u32)>,
}

impl fmt::Debug for Mh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mh")
            .field("flags", &self.flags)
            .field("reals", &self.sig)
            .finish_non_exhaustive()
    }
}

/// `ip_vs_mh_hashkey()`.
#[inline]
fn hashkey(ip: IpAddr, port: u16, key: (u64, u64), offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(addr_fold(ip));
    hsiphash_u32(key, v)
}

/// `fls()`: 1-based index of the highest set bit, 0 for 0.
fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

/// Slots per server: `m * w / sum(w)` by largest remainder, at least one
/// for any non-zero weight, summing to exactly `m`.
fn quotas(weights: &[u32], m: usize) -> Vec<u64> {
    let m = m as u64;
    let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut q: Vec<u64> = Vec::with_capacity(weights.len());
    let mut rem: Vec<(u64, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = u128::from(m) * u128::from(w);
        let floor = (exact / u128::from(sum)) as u64;
        let r = (exact % u128::from(sum)) as u64;
        q.push(if w > 0 { floor.max(1) } else { 0 });
        if w > 0 {
            rem.push((r, i));
        }
    }
    let mut total: u64 = q.iter().sum();
    // Largest remainders first, table order on ties.
    rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut k = 0;
    while total < m && !rem.is_empty() {
        q[rem[k % rem.len()].1] += 1;
        total += 1;
        k += 1;
    }
    while total > m {
        // Only when many tiny weights were raised to one slot: take from
        // the largest.
        let Some((i, _)) = q
            .iter()
            .enumerate()
            .filter(|(_, &x)| x > 1)
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        else {
            break;
        };
        q[i] -= 1;
        total -= 1;
    }
    q
}

struct Setup {
    perm: usize,
    skip: usize,
    turns: u32,
    left: u64,
}

/// `ip_vs_mh_permutate()` + `ip_vs_mh_populate()` (with the share cap).
fn build(reals: &[(SocketAddr, u32)], m: usize) -> Vec<u32> {
    let mut lookup = vec![EMPTY; m];
    let g = gcd_positive(reals.iter().map(|r| r.1));
    if g == 0 || reals.len() >= EMPTY as usize {
        return lookup;
    }
    let mw = reals.iter().map(|r| r.1).max().unwrap_or(0) / g;
    let rshift = fls(mw).saturating_sub(TURN_BITS);
    let weights: Vec<u32> = reals.iter().map(|r| r.1).collect();
    let quota = quotas(&weights, m);
    let mut setup: Vec<Setup> = reals
        .iter()
        .zip(&quota)
        .map(|(&(addr, lw), &left)| {
            let offset = hashkey(addr.ip(), addr.port(), HASH1, 0) as usize % m;
            let skip = hashkey(addr.ip(), addr.port(), HASH2, 0) as usize % (m - 1) + 1;
            let t = (lw / g) >> rshift;
            Setup {
                perm: offset,
                skip,
                turns: if t > 0 { t } else { u32::from(lw != 0) },
                left,
            }
        })
        .collect();

    let mut taken = vec![false; m];
    let mut n = 0usize;
    while n < m {
        let before = n;
        for (d, ds) in setup.iter_mut().enumerate() {
            let mut t = 0;
            while t < ds.turns && ds.left > 0 {
                let mut c = ds.perm;
                while taken[c] {
                    ds.perm += ds.skip;
                    if ds.perm >= m {
                        ds.perm -= m;
                    }
                    c = ds.perm;
                }
                taken[c] = true;
                lookup[c] = d as u32;
                ds.left -= 1;
                t += 1;
                n += 1;
                if n == m {
                    return lookup;
                }
            }
        }
        if n == before {
            break;
        }
    }
    lookup
}

impl Mh {
    fn sig(live: &Live<'_>) -> Vec<(SocketAddr, u32)> {
        live.reals
            .iter()
            .zip(live.last_weight)
            .map(|(r, &lw)| (r.server.addr, lw))
            .collect()
    }

    pub fn new(flags: SchedulerFlags, live: &Live<'_>) -> Self {
        let sig = Self::sig(live);
        Mh {
            lookup: build(&sig, MH_TABLE_SIZE),
            flags,
            sig,
        }
    }

    pub fn update(&mut self, flags: SchedulerFlags, live: &Live<'_>) {
        self.flags = flags;
        let sig = Self::sig(live);
        if sig != self.sig {
            self.lookup = build(&sig, MH_TABLE_SIZE);
            self.sig = sig;
        }
    }

    #[inline]
    fn slot(&self, ip: IpAddr, port: u16, offset: u32) -> Option<usize> {
        let h = hashkey(ip, port, HASH1, offset) as usize % MH_TABLE_SIZE;
        let d = self.lookup[h];
        (d != EMPTY).then_some(d as usize)
    }

    #[inline]
    pub fn pick(&self, ctx: &Ctx<'_>, client: SocketAddr) -> Option<usize> {
        let ip = client.ip();
        let port = if self.flags.port { client.port() } else { 0 };
        let ok = |d: usize| d < ctx.len() && ctx.available(d);
        let ihash = hashkey(ip, port, HASH1, 0) as usize % MH_TABLE_SIZE;
        let d = self.lookup[ihash];
        if d == EMPTY {
            return None;
        }
        if ok(d as usize) {
            return Some(d as usize);
        }
        if !self.flags.fallback || !ctx.any_available() {
            return None;
        }
        for offset in 0..MH_TABLE_SIZE {
            let roffset = ((offset + ihash) % MH_TABLE_SIZE) as u32;
            let d = self.slot(ip, port, roffset)?;
            if ok(d) {
                return Some(d);
            }
        }
        None
    }

    #[cfg(test)]
    pub fn lookup(&self) -> &[u32] {
        &self.lookup
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    fn mh(r: &[crate::RealState], flags: SchedulerFlags) -> Mh {
        let idx = index(r);
        let lw: Vec<u32> = r.iter().map(|x| x.server.weight).collect();
        Mh::new(
            flags,
            &Live {
                reals: r,
                last_weight: &lw,
                index: &idx,
            },
        )
    }

    #[test]
    fn quotas_sum_and_round() {
        assert_eq!(quotas(&[1, 1, 1], 10), vec![4, 3, 3]);
        assert_eq!(quotas(&[0, 1], 10), vec![0, 10]);
        assert_eq!(quotas(&[1000, 1], 10), vec![9, 1]);
        assert_eq!(quotas(&[0, 0], 10), vec![0, 0]);
        let q = quotas(&[65535, 1, 1, 1, 1], MH_TABLE_SIZE);
        assert_eq!(q.iter().sum::<u64>(), MH_TABLE_SIZE as u64);
        assert_eq!(&q[1..], &[1, 1, 1, 1]);
    }

    #[test]
    fn small_table_is_a_permutation_fill() {
        // A tiny prime table: every slot assigned, shares exact.
        let r: Vec<(SocketAddr, u32)> = (0..3).map(|i| (addr(i), 1)).collect();
        let t = build(&r, 7);
        assert!(t.iter().all(|&d| d < 3));
        let mut c = [0; 3];
        for &d in &t {
            c[d as usize] += 1;
        }
        assert_eq!(c, [3, 2, 2]);
    }

    #[test]
    fn full_table_equal_weights() {
        let r = reals(&[1; 5]);
        let s = mh(&r, SchedulerFlags::default());
        let mut c = [0usize; 5];
        for &d in s.lookup() {
            c[d as usize] += 1;
        }
        assert_eq!(c.iter().sum::<usize>(), MH_TABLE_SIZE);
        assert!(c.iter().all(|&x| x == 13107 || x == 13108), "{c:?}");
    }

    #[test]
    fn zero_weights_and_empty() {
        let r = reals(&[0, 0]);
        let s = mh(&r, SchedulerFlags::default());
        assert!(s.lookup().iter().all(|&d| d == EMPTY));
        let client = SocketAddr::from(([1, 2, 3, 4], 5));
        assert_eq!(s.pick(&ctx(&r), client), None);
    }

    #[test]
    fn fallback_flag() {
        let mut r = reals(&[1, 1, 1]);
        let plain = mh(&r, SchedulerFlags::default());
        let fb = mh(
            &r,
            SchedulerFlags {
                fallback: true,
                port: false,
            },
        );
        let client = SocketAddr::from(([198, 51, 100, 7], 4242));
        let home = plain.pick(&ctx(&r), client).unwrap();
        assert_eq!(fb.pick(&ctx(&r), client), Some(home));
        r[home].overloaded = true;
        assert_eq!(plain.pick(&ctx(&r), client), None);
        let other = fb.pick(&ctx(&r), client).unwrap();
        assert_ne!(other, home);
        for x in r.iter_mut() {
            x.overloaded = true;
        }
        assert_eq!(fb.pick(&ctx(&r), client), None);
    }

    #[test]
    fn port_flag() {
        let r = reals(&[1; 8]);
        let s = mh(&r, SchedulerFlags::default());
        let p = mh(
            &r,
            SchedulerFlags {
                fallback: false,
                port: true,
            },
        );
        let at = |port| SocketAddr::from(([203, 0, 113, 9], port));
        let a: Vec<_> = (1000..1100).map(|x| s.pick(&ctx(&r), at(x))).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let b: Vec<_> = (1000..1100).map(|x| p.pick(&ctx(&r), at(x))).collect();
        assert!(b.windows(2).any(|w| w[0] != w[1]));
    }

    fn key(i: u64) -> SocketAddr {
        // spread keys over the address space, deterministic
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        SocketAddr::from((std::net::Ipv4Addr::from(x as u32), 0))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Removing one of N equally weighted servers remaps at most
        /// 1/N + 1% of the keys.
        #[test]
        fn removal_disruption(n in 3usize..=20, victim_seed in any::<usize>()) {
            let r = reals(&vec![1; n]);
            let before = mh(&r, SchedulerFlags::default());
            let victim = victim_seed % n;
            let kept: Vec<_> = r.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, x)| x.clone()).collect();
            let after = mh(&kept, SchedulerFlags::default());
            let keys = 100_000u64;
            let mut moved = 0u64;
            for k in 0..keys {
                let c = key(k);
                let a = before.pick(&ctx(&r), c).map(|i| r[i].server.addr);
                let b = after.pick(&ctx(&kept), c).map(|i| kept[i].server.addr);
                prop_assert!(a.is_some() && b.is_some());
                if a != b {
                    moved += 1;
                }
            }
            let frac = moved as f64 / keys as f64;
            prop_assert!(frac <= 1.0 / n as f64 + 0.01, "moved {frac} of keys for n={n}");
        }

        /// Table and key shares follow the weights within 1% absolute.
        #[test]
        fn weighted_shares(weights in prop::collection::vec(1u32..=65535, 2..=20)) {
            let r = reals(&weights);
            let s = mh(&r, SchedulerFlags::default());
            let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
            let mut slots = vec![0usize; weights.len()];
            for &d in s.lookup() {
                slots[d as usize] += 1;
            }
            let keys = 100_000u64;
            let mut hits = vec![0usize; weights.len()];
            for k in 0..keys {
                hits[s.pick(&ctx(&r), key(k)).unwrap()] += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                let want = f64::from(w) / sum;
                let table = slots[i] as f64 / MH_TABLE_SIZE as f64;
                let sample = hits[i] as f64 / keys as f64;
                prop_assert!((table - want).abs() <= 0.01, "server {i}: table share {table} vs {want}");
                prop_assert!((sample - want).abs() <= 0.01, "server {i}: key share {sample} vs {want}");
            }
        }
    }

    #[test]
    fn quiesce_keeps_table() {
        // last_weight: a quiesced server keeps its slots
        let r = reals(&[1, 1, 1]);
        let idx = index(&r);
        let lw = vec![1, 1, 1];
        let live = Live {
            reals: &r,
            last_weight: &lw,
            index: &idx,
        };
        let mut s = Mh::new(SchedulerFlags::default(), &live);
        let before = s.lookup().to_vec();
        let mut q = r.clone();
        q[1].server.weight = 0;
        s.update(
            SchedulerFlags::default(),
            &Live {
                reals: &q,
                last_weight: &lw,
                index: &idx,
            },
        );
        assert_eq!(s.lookup(), &before[..]);
    }
}
