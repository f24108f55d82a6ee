//! Weighted round-robin: `net/netfilter/ipvs/ip_vs_wrr.c`,
//! `ip_vs_wrr_schedule()` and `ip_vs_wrr_dest_changed()`.
//!
//! The kernel's gcd-stepped interleaving: `di` is the gcd of the positive
//! weights, `mw = max weight - (di - 1)`, and the current weight `cw`
//! starts at `mw`. Each pass over the list picks, in order, the servers
//! whose weight is `>= cw`; after a pass `cw` drops by `di` and when it
//! reaches `<= 0` it starts over at `mw`. Over one cycle of
//! `sum(weights) / di` picks each server is picked exactly `weight / di`
//! times. Weights 1, 2, 3 give `c b c a b c`.
//!
//! Overloaded (and, in halb, excluded) servers are skipped; the `last` /
//! `stop` bookkeeping that ends a fruitless search is the kernel's.
//!
//! Difference: the kernel calls `dest_changed` (reset the position to the
//! list head and re-align `cw`) on every destination add, delete or edit;
//! halb does it when the set of `(address, weight)` changes, so an update
//! that touches only thresholds does not restart the sequence.

use super::{gcd_positive, Ctx, Live};
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub(crate) struct Wrr {
    /// Index of the last pick; `None`: the list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Maximum weight, reduced by `di - 1`.
    mw: i64,
    /// Decreasing interval: the gcd of the positive weights (1 if none).
    di: i64,
    sig: Vec<(SocketAddr, u32)>,
}

fn params(live: &Live<'_>) -> (i64, i64) {
    let di = i64::from(gcd_positive(live.reals.iter().map(|r| r.server.weight)).max(1));
    let max = live
        .reals
        .iter()
        .map(|r| i64::from(r.server.weight))
        .max()
        .unwrap_or(0);
    (di, max - (di - 1))
}

impl Wrr {
    /// `ip_vs_wrr_init_svc`.
    pub fn new(live: &Live<'_>) -> Self {
        let (di, mw) = params(live);
        Wrr {
            cl: None,
            cw: mw,
            mw,
            di,
            sig: live.weights(),
        }
    }

    /// `ip_vs_wrr_dest_changed`, when the weight set changed.
    pub fn update(&mut self, live: &Live<'_>) {
        let sig = live.weights();
        if sig == self.sig {
            return;
        }
        self.sig = sig;
        let (di, mw) = params(live);
        self.cl = None;
        self.di = di;
        self.mw = mw;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    #[inline]
    pub fn pick(&mut self, ctx: &Ctx<'_>) -> Option<usize> {
        let n = ctx.len();
        if self.mw <= 0 || n == 0 {
            return None;
        }
        let last = self.cl.filter(|&p| p < n);
        let mut pos = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = pos.map_or(0, |p| p + 1);
            for i in start..n {
                if ctx.usable(i) && i64::from(ctx.weight(i)) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Stop if the last pass already ran from the first server,
                // or the only traversal started at the head.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first traversal was for w >= 1 but only after `last`;
                // now do the same up to `last`.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    fn wrr(r: &[crate::RealState]) -> Wrr {
        let idx = index(r);
        let lw: Vec<u32> = r.iter().map(|x| x.server.weight).collect();
        Wrr::new(&Live {
            reals: r,
            last_weight: &lw,
            index: &idx,
        })
    }

    #[test]
    fn kernel_sequence_1_2_3() {
        let r = reals(&[1, 2, 3]);
        let mut s = wrr(&r);
        let seq: Vec<usize> = (0..12).map(|_| s.pick(&ctx(&r)).unwrap()).collect();
        // a=0, b=1, c=2: c b c a b c, twice
        assert_eq!(seq, vec![2, 1, 2, 0, 1, 2, 2, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn kernel_sequence_with_gcd() {
        // weights 4, 2, 6: di = 2, mw = 5; cw: 5, 3, 1
        let r = reals(&[4, 2, 6]);
        let mut s = wrr(&r);
        let seq: Vec<usize> = (0..6).map(|_| s.pick(&ctx(&r)).unwrap()).collect();
        assert_eq!(seq, vec![2, 0, 2, 0, 1, 2]);
    }

    #[test]
    fn all_zero_or_overloaded() {
        let r = reals(&[0, 0]);
        assert_eq!(wrr(&r).pick(&ctx(&r)), None);
        let mut r = reals(&[1, 2]);
        r[0].overloaded = true;
        r[1].overloaded = true;
        let mut s = wrr(&r);
        assert_eq!(s.pick(&ctx(&r)), None);
        r[1].overloaded = false;
        assert_eq!(s.pick(&ctx(&r)), Some(1));
        assert_eq!(s.pick(&ctx(&r)), Some(1));
    }

    #[test]
    fn skips_quiescent_and_overloaded_mid_cycle() {
        let mut r = reals(&[3, 3, 0]);
        let mut s = wrr(&r);
        assert_eq!(s.pick(&ctx(&r)), Some(0));
        r[1].overloaded = true;
        for _ in 0..5 {
            assert_eq!(s.pick(&ctx(&r)), Some(0));
        }
    }
}
