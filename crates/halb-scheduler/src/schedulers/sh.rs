//! Source hashing: `net/netfilter/ipvs/ip_vs_sh.c`, `ip_vs_sh_reassign()`,
//! `ip_vs_sh_hashkey()`, `ip_vs_sh_get()` and `ip_vs_sh_get_fallback()`.
//!
//! A 256-bucket table is filled with the live real servers in table order,
//! each taking as many consecutive buckets as its weight (`d_count`); the
//! fill wraps around the list until all buckets are assigned. As in the
//! kernel, a weight-0 server still takes one bucket (`++d_count >= 0`) and
//! a weight above 256 fills the rest of the table. The bucket of a client is
//! `hash_32(port + addr, 8)`, with the port only under the `port` flag
//! (`sh-port`) and IPv6 addresses folded by XOR.
//!
//! If the server in that bucket is unavailable (quiescent, overloaded or,
//! in halb, excluded) the answer is "none", unless the `fallback` flag
//! (`sh-fallback`) is set: then the kernel's deterministic walk over the
//! other buckets finds another one.
//!
//! The table is rebuilt when the `(address, weight)` list changes (the
//! kernel reassigns on every destination add, delete or edit, which gives
//! the same table).

use super::{Ctx, Live};
use crate::hash::{addr_fold, hash_32};
use halb_table::SchedulerFlags;
use std::fmt;
use std::net::SocketAddr;

pub(crate) const SH_TAB_BITS: u32 = 8;
pub(crate) const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = (SH_TAB_SIZE as u32) - 1;
pub(crate) const EMPTY: u32 = u32::MAX;

#[derive(Clone)]
pub(crate) struct Sh {
    buckets: [u32; SH_TAB_SIZE],
    flags: SchedulerFlags,
    sig: Vec<(SocketAddr, u32)>,
}

impl fmt::Debug for Sh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sh")
            .field("flags", &self.flags)
            .field("reals", &self.sig.len())
            .finish_non_exhaustive()
    }
}

/// `ip_vs_sh_reassign()`.
fn reassign(live: &Live<'_>) -> [u32; SH_TAB_SIZE] {
    let mut buckets = [EMPTY; SH_TAB_SIZE];
    let n = live.reals.len();
    if n == 0 {
        return buckets;
    }
    let mut p = 0usize;
    let mut d_count: u64 = 0;
    for b in buckets.iter_mut() {
        *b = p as u32;
        d_count += 1;
        if d_count >= u64::from(live.reals[p].server.weight) {
            p = (p + 1) % n;
            d_count = 0;
        }
    }
    buckets
}

/// `ip_vs_sh_hashkey()`.
#[inline]
fn hashkey(fold: u32, port: u16, offset: u32) -> usize {
    (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(fold), SH_TAB_BITS)) & SH_TAB_MASK)
        as usize
}

/// Look a key up in a 256-bucket table, with the kernel's fallback walk if
/// `fallback`. Shared with dh's table shape.
#[inline]
fn lookup(
    buckets: &[u32; SH_TAB_SIZE],
    ctx: &Ctx<'_>,
    fold: u32,
    port: u16,
    fallback: bool,
) -> Option<usize> {
    let ihash = hashkey(fold, port, 0);
    let d = buckets[ihash];
    if d == EMPTY {
        return None;
    }
    let d = d as usize;
    if d < ctx.len() && ctx.available(d) {
        return Some(d);
    }
    if !fallback {
        return None;
    }
    for offset in 0..SH_TAB_SIZE as u32 {
        let roffset = (offset + ihash as u32) % SH_TAB_SIZE as u32;
        let d = buckets[hashkey(fold, port, roffset)];
        if d == EMPTY {
            break;
        }
        let d = d as usize;
        if d < ctx.len() && ctx.available(d) {
            return Some(d);
        }
    }
    None
}

impl Sh {
    pub fn new(flags: SchedulerFlags, live: &Live<'_>) -> Self {
        Sh {
            buckets: reassign(live),
            flags,
            sig: live.weights(),
        }
    }

    pub fn update(&mut self, flags: SchedulerFlags, live: &Live<'_>) {
        self.flags = flags;
        let sig = live.weights();
        if sig != self.sig {
            self.buckets = reassign(live);
            self.sig = sig;
        }
    }

    #[inline]
    pub fn pick(&self, ctx: &Ctx<'_>, client: SocketAddr) -> Option<usize> {
        let port = if self.flags.port { client.port() } else { 0 };
        lookup(
            &self.buckets,
            ctx,
            addr_fold(client.ip()),
            port,
            self.flags.fallback,
        )
    }

    #[cfg(test)]
    pub fn buckets(&self) -> &[u32; SH_TAB_SIZE] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn sh(r: &[crate::RealState], flags: SchedulerFlags) -> Sh {
        let idx = index(r);
        let lw: Vec<u32> = r.iter().map(|x| x.server.weight).collect();
        Sh::new(
            flags,
            &Live {
                reals: r,
                last_weight: &lw,
                index: &idx,
            },
        )
    }

    fn client(i: u32, port: u16) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0xc0a8_0000 + i), port))
    }

    #[test]
    fn table_is_filled_by_weight() {
        let r = reals(&[1, 2, 0]);
        let s = sh(&r, SchedulerFlags::default());
        // 0, 1, 1, 2 (weight 0 still takes one bucket), then again
        assert_eq!(&s.buckets()[..8], &[0, 1, 1, 2, 0, 1, 1, 2]);
        let r = reals(&[300, 1]);
        let s = sh(&r, SchedulerFlags::default());
        assert!(s.buckets().iter().all(|&b| b == 0));
    }

    #[test]
    fn kernel_bucket_of_a_client() {
        // hash_32(0x0a000001, 8) = (0x0a000001 * 0x61c88647) >> 24
        let expect = (0x0a00_0001u32.wrapping_mul(0x61c8_8647) >> 24) as usize;
        assert_eq!(hashkey(0x0a00_0001, 0, 0), expect);
    }

    #[test]
    fn stable_and_port_flag() {
        let r = reals(&[1, 1, 1, 1]);
        let s = sh(&r, SchedulerFlags::default());
        for i in 0..200 {
            let a = s.pick(&ctx(&r), client(i, 1000));
            assert!(a.is_some());
            assert_eq!(a, s.pick(&ctx(&r), client(i, 2000)));
        }
        let s = sh(
            &r,
            SchedulerFlags {
                port: true,
                fallback: false,
            },
        );
        let differs = (0..200u16)
            .any(|p| s.pick(&ctx(&r), client(7, p)) != s.pick(&ctx(&r), client(7, p + 1)));
        assert!(differs);
    }

    #[test]
    fn unavailable_without_and_with_fallback() {
        let mut r = reals(&[1, 1, 1]);
        let plain = sh(&r, SchedulerFlags::default());
        let fb = sh(
            &r,
            SchedulerFlags {
                fallback: true,
                port: false,
            },
        );
        let c = client(42, 0);
        let home = plain.pick(&ctx(&r), c).unwrap();
        r[home].overloaded = true;
        assert_eq!(plain.pick(&ctx(&r), c), None);
        let other = fb.pick(&ctx(&r), c).unwrap();
        assert_ne!(other, home);
        // excluded works the same way
        r[home].overloaded = false;
        let ex = [r[home].server.addr];
        let cx = Ctx {
            reals: &r,
            exclude: &ex,
        };
        assert_eq!(plain.pick(&cx, c), None);
        assert_eq!(fb.pick(&cx, c), Some(other));
        for x in r.iter_mut() {
            x.overloaded = true;
        }
        assert_eq!(fb.pick(&ctx(&r), c), None);
    }
}
