//! Connection thresholds: the `IP_VS_DEST_F_OVERLOAD` hysteresis.
//!
//! Follows `ip_vs_bind_dest()` / `ip_vs_unbind_dest()` in
//! `net/netfilter/ipvs/ip_vs_conn.c` and the threshold part of
//! `__ip_vs_update_dest()` in `net/netfilter/ipvs/ip_vs_ctl.c`:
//!
//! * a real server with an upper threshold `u > 0` becomes overloaded when
//!   its active + inactive connections reach `u`;
//! * it stays overloaded until they drop below the lower threshold `l`, or,
//!   when `l == 0`, until `total * 4 < u * 3` (the kernel's exact form; it
//!   equals `total < ceil(3u/4)`, which for `u` not a multiple of four is
//!   one more than `total < u * 3 / 4` in integer arithmetic);
//! * an update that clears the upper threshold or raises it clears the flag.
//!
//! Difference: the kernel only tests the upper threshold when a connection
//! is bound and the lower one when one is unbound; halb re-evaluates both on
//! every count change and on update, which gives the same answers whenever
//! the kernel's would be well defined and also catches thresholds lowered
//! under a loaded server at once.

/// The overload flag after a count change, given the flag before it.
#[inline]
pub(crate) fn evaluate(overloaded: bool, total: u64, upper: u32, lower: u32) -> bool {
    if upper == 0 {
        return false;
    }
    if total >= u64::from(upper) {
        return true;
    }
    if !overloaded {
        return false;
    }
    if lower != 0 {
        total >= u64::from(lower)
    } else {
        total * 4 >= u64::from(upper) * 3
    }
}

/// The overload flag after the thresholds changed from `old_upper` to
/// `upper` (`__ip_vs_update_dest`), then re-evaluated.
#[inline]
pub(crate) fn on_update(
    overloaded: bool,
    old_upper: u32,
    total: u64,
    upper: u32,
    lower: u32,
) -> bool {
    let kept = overloaded && !(upper == 0 || upper > old_upper);
    evaluate(kept, total, upper, lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk the count up to `to` then down to 0, returning the flag after
    /// each step.
    fn walk(upper: u32, lower: u32, to: u64) -> (Vec<bool>, Vec<bool>) {
        let mut o = false;
        let mut up = vec![];
        for t in 1..=to {
            o = evaluate(o, t, upper, lower);
            up.push(o);
        }
        let mut down = vec![];
        for t in (0..to).rev() {
            o = evaluate(o, t, upper, lower);
            down.push(o);
        }
        (up, down)
    }

    #[test]
    fn no_threshold_never_overloads() {
        let (up, down) = walk(0, 5, 100);
        assert!(up.iter().chain(&down).all(|o| !o));
    }

    #[test]
    fn explicit_lower() {
        // upper 10, lower 5: overloaded from 10, until below 5.
        let (up, down) = walk(10, 5, 10);
        assert_eq!(up.iter().position(|&o| o), Some(9)); // at total 10
                                                         // down: totals 9,8,7,6,5,4,...
        assert!(down[..5].iter().all(|&o| o)); // 9..=5 still overloaded
        assert!(!down[5]); // 4 < 5
    }

    #[test]
    fn default_lower_is_three_quarters() {
        // upper 8: resumes below 6.
        let (_, down) = walk(8, 0, 8);
        // totals 7,6,5
        assert_eq!(&down[..3], &[true, true, false]);
        // upper 10: kernel form total*4 < 30 resumes at 7, not 6.
        let (_, down) = walk(10, 0, 10);
        // totals 9,8,7
        assert_eq!(&down[..3], &[true, true, false]);
    }

    #[test]
    fn update_rules() {
        // raising the upper threshold clears the flag
        assert!(!on_update(true, 10, 9, 20, 0));
        // still at or above the new upper: set again
        assert!(on_update(true, 10, 25, 20, 0));
        // lowering keeps it
        assert!(on_update(true, 10, 8, 9, 0));
        // removing the threshold clears it
        assert!(!on_update(true, 10, 100, 0, 0));
        // a fresh low threshold under load sets it
        assert!(on_update(false, 0, 5, 5, 0));
    }
}
