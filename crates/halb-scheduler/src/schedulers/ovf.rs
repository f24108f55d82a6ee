//! Overflow: `net/netfilter/ipvs/ip_vs_ovf.c`, `ip_vs_ovf_schedule()`.
//!
//! New connections go to the available server with the highest weight
//! whose active connections do not exceed its weight (the kernel skips a
//! server when `activeconns > weight`, so a server of weight `w` takes
//! connections while it has at most `w` active ones); the first in table
//! order wins a tie. Inactive connections are not counted, so, as the
//! kernel notes, it suits TCP better than UDP.

use super::Ctx;

#[inline]
pub(crate) fn ovf(ctx: &Ctx<'_>) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut hw = 0u32;
    for i in 0..ctx.len() {
        let w = ctx.weight(i);
        if !ctx.available(i) || ctx.reals[i].active > w {
            continue;
        }
        if best.is_none() || w > hw {
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
    fn overflows_in_weight_order() {
        let mut r = reals(&[2, 3, 1]);
        assert_eq!(ovf(&ctx(&r)), Some(1));
        r[1].active = 3;
        assert_eq!(ovf(&ctx(&r)), Some(1)); // 3 > 3 is false
        r[1].active = 4;
        assert_eq!(ovf(&ctx(&r)), Some(0));
        r[0].active = 3;
        assert_eq!(ovf(&ctx(&r)), Some(2));
        r[2].active = 2;
        assert_eq!(ovf(&ctx(&r)), None);
        // inactive connections do not count
        r[2].active = 0;
        r[2].inactive = 100;
        assert_eq!(ovf(&ctx(&r)), Some(2));
    }
}
