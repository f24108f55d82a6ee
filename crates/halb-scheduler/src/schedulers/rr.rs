//! Round-robin: `net/netfilter/ipvs/ip_vs_rr.c`, `ip_vs_rr_schedule()`.
//!
//! The position is the last real server picked; the next pick is the first
//! available one after it, wrapping once around the list.
//!
//! Across updates the position follows the real server it pointed at. If
//! that server left, it moves to the nearest surviving server before it, as
//! `ip_vs_rr_del_dest()` moves it to the list predecessor, so the server
//! that followed the removed one is next.

use super::{Ctx, Live};
use std::net::SocketAddr;

#[derive(Debug, Clone, Default)]
pub(crate) struct Rr {
    /// Index of the last pick; `None`: the list head (start from the first).
    pos: Option<usize>,
}

impl Rr {
    #[inline]
    pub fn pick(&mut self, ctx: &Ctx<'_>) -> Option<usize> {
        let n = ctx.len();
        let start = self.pos.map_or(0, |p| p + 1);
        for k in 0..n {
            let i = (start + k) % n;
            if ctx.available(i) {
                self.pos = Some(i);
                return Some(i);
            }
        }
        None
    }

    pub fn update(&mut self, old: &[SocketAddr], live: &Live<'_>) {
        let Some(p) = self.pos else { return };
        self.pos = old
            .get(..=p)
            .and_then(|prefix| prefix.iter().rev().find_map(|a| live.position(a)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn cycles_and_skips_unavailable() {
        let mut r = reals(&[1, 0, 5, 1]);
        r[3].overloaded = true;
        let mut rr = Rr::default();
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&ctx(&r)).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        r[3].overloaded = false;
        assert_eq!(rr.pick(&ctx(&r)), Some(3));
        let ex = [addr(0)];
        let c = Ctx {
            reals: &r,
            exclude: &ex,
        };
        assert_eq!(rr.pick(&c), Some(2));
        let none = reals(&[0, 0]);
        assert_eq!(rr.pick(&ctx(&none)), None);
    }

    #[test]
    fn position_survives_removal_of_current() {
        let r = reals(&[1, 1, 1, 1]);
        let mut rr = Rr::default();
        assert_eq!(rr.pick(&ctx(&r)), Some(0));
        assert_eq!(rr.pick(&ctx(&r)), Some(1));
        // remove real 1 (the current position): next is real 2
        let old: Vec<_> = r.iter().map(|x| x.server.addr).collect();
        let new: Vec<_> = [0usize, 2, 3].iter().map(|&i| r[i].clone()).collect();
        let idx = index(&new);
        let lw = vec![1; 3];
        rr.update(
            &old,
            &Live {
                reals: &new,
                last_weight: &lw,
                index: &idx,
            },
        );
        assert_eq!(
            rr.pick(&ctx(&new)).map(|i| new[i].server.addr),
            Some(addr(2))
        );
    }
}
