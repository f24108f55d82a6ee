//! Weighted failover: `net/netfilter/ipvs/ip_vs_fo.c`,
//! `ip_vs_fo_schedule()`.
//!
//! All new connections go to the available server with the highest weight;
//! the first in table order wins a tie.

use super::Ctx;

#[inline]
pub(crate) fn fo(ctx: &Ctx<'_>) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut hw = 0u32;
    for i in 0..ctx.len() {
        let w = ctx.weight(i);
        if ctx.usable(i) && w > hw {
            best = Some(i);
            hw = w;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn highest_weight_first_on_tie() {
        let mut r = reals(&[1, 5, 5, 0]);
        assert_eq!(fo(&ctx(&r)), Some(1));
        r[1].overloaded = true;
        assert_eq!(fo(&ctx(&r)), Some(2));
        r[2].overloaded = true;
        assert_eq!(fo(&ctx(&r)), Some(0));
        r[0].overloaded = true;
        assert_eq!(fo(&ctx(&r)), None);
    }
}
