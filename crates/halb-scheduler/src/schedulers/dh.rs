//! Destination hashing: `net/netfilter/ipvs/ip_vs_dh.c`,
//! `ip_vs_dh_reassign()`, `ip_vs_dh_hashkey()` and `ip_vs_dh_schedule()`.
//!
//! A 256-bucket table is filled with the live real servers in table order,
//! one bucket each, wrapping around the list. Unlike sh, the kernel's dh
//! table ignores weights (a weight only matters as 0 = unavailable); halb
//! follows the kernel. The bucket of a request is
//! `(addr * 2654435761) & 255` of the address the client connected to,
//! IPv6 folded by XOR. An unavailable server (quiescent, overloaded or
//! excluded) means "none": dh has no fallback flag.
//!
//! Behind the userspace proxy every connection of a service has the same
//! destination address, so dh sends all of them to one real server, as
//! IPVS would for a single VIP.

use super::sh::{EMPTY, SH_TAB_SIZE};
use super::{Ctx, Live};
use crate::hash::{addr_fold, KNUTH_32};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

const DH_TAB_SIZE: usize = SH_TAB_SIZE;
const DH_TAB_MASK: u32 = (DH_TAB_SIZE as u32) - 1;

#[derive(Clone)]
pub(crate) struct Dh {
    buckets: [u32; DH_TAB_SIZE],
    sig: Vec<SocketAddr>,
}

impl fmt::Debug for Dh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dh")
            .field("reals", &self.sig.len())
            .finish_non_exhaustive()
    }
}

/// `ip_vs_dh_reassign()`.
fn reassign(n: usize) -> [u32; DH_TAB_SIZE] {
    let mut buckets = [EMPTY; DH_TAB_SIZE];
    if n > 0 {
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = (i % n) as u32;
        }
    }
    buckets
}

/// `ip_vs_dh_hashkey()`.
#[inline]
fn hashkey(ip: IpAddr) -> usize {
    (addr_fold(ip).wrapping_mul(KNUTH_32) & DH_TAB_MASK) as usize
}

impl Dh {
    pub fn new(live: &Live<'_>) -> Self {
        Dh {
            buckets: reassign(live.reals.len()),
            sig: live.addrs(),
        }
    }

    pub fn update(&mut self, live: &Live<'_>) {
        let sig = live.addrs();
        if sig != self.sig {
            self.buckets = reassign(sig.len());
            self.sig = sig;
        }
    }

    #[inline]
    pub fn pick(&self, ctx: &Ctx<'_>, dest: IpAddr) -> Option<usize> {
        let d = self.buckets[hashkey(dest)];
        if d == EMPTY {
            return None;
        }
        let d = d as usize;
        (d < ctx.len() && ctx.available(d)).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn dh(r: &[crate::RealState]) -> Dh {
        let idx = index(r);
        let lw: Vec<u32> = r.iter().map(|x| x.server.weight).collect();
        Dh::new(&Live {
            reals: r,
            last_weight: &lw,
            index: &idx,
        })
    }

    #[test]
    fn kernel_bucket_and_stability() {
        let r = reals(&[1, 9, 1]);
        let s = dh(&r);
        let vip = IpAddr::from(Ipv4Addr::new(192, 0, 2, 10));
        let bucket = (0xc000_020au32.wrapping_mul(2_654_435_761) & 255) as usize;
        assert_eq!(s.pick(&ctx(&r), vip), Some(bucket % 3));
        for _ in 0..10 {
            assert_eq!(s.pick(&ctx(&r), vip), Some(bucket % 3));
        }
    }

    #[test]
    fn unavailable_is_none() {
        let mut r = reals(&[1, 1]);
        let s = dh(&r);
        let vip = IpAddr::from(Ipv4Addr::new(192, 0, 2, 10));
        let home = s.pick(&ctx(&r), vip).unwrap();
        r[home].server.weight = 0;
        assert_eq!(s.pick(&ctx(&r), vip), None);
    }
}
