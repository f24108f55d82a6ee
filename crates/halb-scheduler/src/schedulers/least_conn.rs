//! The connection-counting schedulers: lc, wlc, sed and nq.
//!
//! * lc: `net/netfilter/ipvs/ip_vs_lc.c`, `ip_vs_lc_schedule()`;
//! * wlc: `net/netfilter/ipvs/ip_vs_wlc.c`, `ip_vs_wlc_schedule()`;
//! * sed: `net/netfilter/ipvs/ip_vs_sed.c`, `ip_vs_sed_schedule()`;
//! * nq: `net/netfilter/ipvs/ip_vs_nq.c`, `ip_vs_nq_schedule()`.
//!
//! The overhead of a server is `ip_vs_dest_conn_overhead()` from
//! `include/net/ip_vs.h`, `activeconns * 256 + inactconns`, for lc and wlc,
//! and `activeconns + 1` for sed and nq. The weighted ones compare
//! `loh * dest.weight > doh * least.weight` (load per weight without
//! division) and keep the first server on ties. Products are computed in
//! 128 bits (the kernel uses `__s64`), so no count or weight can wrap them.

use super::Ctx;
use crate::RealState;

/// `ip_vs_dest_conn_overhead()`.
#[inline]
pub(crate) fn conn_overhead(r: &RealState) -> u64 {
    (u64::from(r.active) << 8) + u64::from(r.inactive)
}

/// `loh / lw > doh / dw`, i.e. the candidate `(doh, dw)` is less loaded than
/// the current least `(loh, lw)`.
#[inline]
pub(crate) fn lighter(loh: u64, lw: u32, doh: u64, dw: u32) -> bool {
    u128::from(loh) * u128::from(dw) > u128::from(doh) * u128::from(lw)
}

/// The available server with the least `overhead / weight`, first on ties
/// (the kernel's two-stage wlc loop).
#[inline]
pub(crate) fn weighted_least(ctx: &Ctx<'_>, overhead: impl Fn(&RealState) -> u64) -> Option<usize> {
    let mut it = ctx
        .reals
        .iter()
        .enumerate()
        .filter(|&(i, _)| ctx.available(i));
    let (mut least, first) = it.next()?;
    let mut loh = overhead(first);
    let mut lw = first.server.weight;
    for (i, r) in it {
        let doh = overhead(r);
        let dw = r.server.weight;
        if lighter(loh, lw, doh, dw) {
            least = i;
            loh = doh;
            lw = dw;
        }
    }
    Some(least)
}

/// Least-connection (`ip_vs_lc_schedule()`): the smallest overhead,
/// weights ignored except that 0 is quiescent.
#[inline]
pub(crate) fn lc(ctx: &Ctx<'_>) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for i in 0..ctx.len() {
        if !ctx.available(i) {
            continue;
        }
        let doh = conn_overhead(&ctx.reals[i]);
        let better = match least {
            None => true,
            Some((_, loh)) => doh < loh,
        };
        if better {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// Weighted least-connection (`ip_vs_wlc_schedule()`).
#[inline]
pub(crate) fn wlc(ctx: &Ctx<'_>) -> Option<usize> {
    weighted_least(ctx, conn_overhead)
}

/// `ip_vs_sed_dest_overhead()` / `ip_vs_nq_dest_overhead()`.
#[inline]
fn expected_delay(r: &RealState) -> u64 {
    u64::from(r.active) + 1
}

/// Shortest expected delay (`ip_vs_sed_schedule()`): `(active + 1) / weight`;
/// inactive connections are not counted.
#[inline]
pub(crate) fn sed(ctx: &Ctx<'_>) -> Option<usize> {
    weighted_least(ctx, expected_delay)
}

/// Never queue (`ip_vs_nq_schedule()`): the first available server with no
/// active connection, otherwise the least `(active + 1) / weight` as sed.
#[inline]
pub(crate) fn nq(ctx: &Ctx<'_>) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for i in 0..ctx.len() {
        if !ctx.available(i) {
            continue;
        }
        let r = &ctx.reals[i];
        if r.active == 0 {
            return Some(i);
        }
        let doh = expected_delay(r);
        match least {
            None => least = Some((i, doh)),
            Some((l, loh)) => {
                if lighter(loh, ctx.weight(l), doh, ctx.weight(i)) {
                    least = Some((i, doh));
                }
            }
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    fn with_counts(spec: &[(u32, u32, u32, bool)]) -> Vec<RealState> {
        let w: Vec<u32> = spec.iter().map(|s| s.0).collect();
        let mut r = reals(&w);
        for (x, s) in r.iter_mut().zip(spec) {
            x.active = s.1;
            x.inactive = s.2;
            x.overloaded = s.3;
        }
        r
    }

    #[test]
    fn lc_ties_first_and_overhead() {
        // overhead: 1*256+0 = 256 vs 0*256+255 = 255
        let r = with_counts(&[(1, 1, 0, false), (1, 0, 255, false)]);
        assert_eq!(lc(&ctx(&r)), Some(1));
        let r = with_counts(&[(1, 1, 0, false), (1, 0, 256, false)]);
        assert_eq!(lc(&ctx(&r)), Some(0));
        // weight is ignored by lc except 0
        let r = with_counts(&[(100, 2, 0, false), (1, 1, 0, false), (0, 0, 0, false)]);
        assert_eq!(lc(&ctx(&r)), Some(1));
    }

    #[test]
    fn wlc_weights() {
        // 3 conns on weight 3 (load 1) vs 2 on weight 1 (load 2)
        let r = with_counts(&[(1, 2, 0, false), (3, 3, 0, false)]);
        assert_eq!(wlc(&ctx(&r)), Some(1));
        // equal load: first wins
        let r = with_counts(&[(1, 1, 0, false), (2, 2, 0, false)]);
        assert_eq!(wlc(&ctx(&r)), Some(0));
    }

    #[test]
    fn sed_vs_wlc() {
        // idle servers: wlc takes the first, sed the heaviest weight
        let r = with_counts(&[(1, 0, 0, false), (5, 0, 0, false)]);
        assert_eq!(wlc(&ctx(&r)), Some(0));
        assert_eq!(sed(&ctx(&r)), Some(1));
    }

    #[test]
    fn nq_prefers_idle() {
        let r = with_counts(&[(10, 1, 0, false), (1, 0, 7, false), (10, 0, 0, false)]);
        // server 1 has no active conns (inactive ignored): taken at once
        assert_eq!(nq(&ctx(&r)), Some(1));
        let r = with_counts(&[(10, 1, 0, false), (1, 1, 0, false)]);
        assert_eq!(nq(&ctx(&r)), Some(0));
    }

    fn oracle(
        r: &[RealState],
        ok: impl Fn(&RealState) -> bool,
        load: impl Fn(&RealState) -> (u64, u64),
    ) -> Option<usize> {
        // minimum of load.0 / load.1 as an exact fraction, first on ties
        let mut best: Option<usize> = None;
        for (i, x) in r.iter().enumerate() {
            if !ok(x) {
                continue;
            }
            match best {
                None => best = Some(i),
                Some(b) => {
                    let (bn, bd) = load(&r[b]);
                    let (n, d) = load(x);
                    if u128::from(n) * u128::from(bd) < u128::from(bn) * u128::from(d) {
                        best = Some(i);
                    }
                }
            }
        }
        best
    }

    fn ok(x: &RealState) -> bool {
        x.server.weight > 0 && !x.overloaded
    }

    proptest! {
        #[test]
        fn least_conn_family_matches_oracle(
            spec in prop::collection::vec((0u32..=8, 0u32..50, 0u32..600, prop::bool::weighted(0.15)), 1..12)
        ) {
            let r = with_counts(&spec);
            let c = ctx(&r);
            prop_assert_eq!(lc(&c), oracle(&r, ok, |x| (conn_overhead(x), 1)));
            prop_assert_eq!(wlc(&c), oracle(&r, ok, |x| (conn_overhead(x), u64::from(x.server.weight))));
            prop_assert_eq!(sed(&c), oracle(&r, ok, |x| (u64::from(x.active) + 1, u64::from(x.server.weight))));
            let nq_expect = r.iter().position(|x| ok(x) && x.active == 0)
                .or_else(|| oracle(&r, ok, |x| (u64::from(x.active) + 1, u64::from(x.server.weight))));
            prop_assert_eq!(nq(&c), nq_expect);
        }
    }
}
