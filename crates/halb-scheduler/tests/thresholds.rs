//! Connection thresholds (IP_VS_DEST_F_OVERLOAD) through the Pool.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_scheduler::{Pick, Pool};
use halb_table::SchedulerKind;

/// Real 0 has the thresholds, real 1 takes the overflow.
fn pool(upper: u32, lower: u32) -> Pool {
    let mut s = svc(SchedulerKind::Fo, &[10, 1]);
    s.reals[0].upper_threshold = upper;
    s.reals[0].lower_threshold = lower;
    Pool::new(&s)
}

fn fill(pool: &mut Pool, n: u32) -> Vec<Pick> {
    (0..n).map(|i| pick(pool, client(i), at(0))).collect()
}

#[test]
fn upper_threshold_stops_new_connections() {
    let mut p = pool(4, 0);
    let picks = fill(&mut p, 6);
    let to_0 = picks.iter().filter(|x| x.addr == real(0)).count();
    assert_eq!(to_0, 4);
    assert!(picks[4..].iter().all(|x| x.addr == real(1)));
    assert!(p.real(&real(0)).unwrap().overloaded);
    // moving a connection to active does not change the total
    p.set_active(&picks[0], true);
    assert!(p.real(&real(0)).unwrap().overloaded);
}

#[test]
fn default_lower_is_three_quarters_of_upper() {
    let mut p = pool(4, 0);
    let mut picks = fill(&mut p, 4);
    // 4 -> 3: 3*4 < 4*3 is false, still overloaded
    let c = picks.pop().unwrap();
    p.close(&c, false, client(3), at(1));
    assert!(p.real(&real(0)).unwrap().overloaded);
    assert_eq!(pick(&mut p, client(50), at(1)).addr, real(1));
    // 3 -> 2: resumes
    let c = picks.pop().unwrap();
    p.close(&c, false, client(2), at(1));
    assert!(!p.real(&real(0)).unwrap().overloaded);
    assert_eq!(pick(&mut p, client(51), at(1)).addr, real(0));
}

#[test]
fn default_lower_uses_the_kernel_form() {
    // upper 10: total*4 < 30 resumes at 7 (the kernel's exact comparison)
    let mut p = pool(10, 0);
    let mut picks = fill(&mut p, 10);
    for (left, over) in [(9, true), (8, true), (7, false)] {
        let c = picks.pop().unwrap();
        p.close(&c, false, client(left), at(1));
        assert_eq!(p.real(&real(0)).unwrap().overloaded, over, "at {left}");
    }
}

#[test]
fn explicit_lower_threshold() {
    let mut p = pool(4, 2);
    let mut picks = fill(&mut p, 4);
    for (i, (active, over)) in [(3, true), (2, true), (1, false)].into_iter().enumerate() {
        let c = picks.pop().unwrap();
        p.close(&c, false, client(3 - i as u32), at(1));
        let r = p.real(&real(0)).unwrap();
        assert_eq!((r.inactive, r.overloaded), (active, over));
    }
}

#[test]
fn active_and_inactive_both_count() {
    let mut p = pool(2, 0);
    let a = pick(&mut p, client(0), at(0));
    p.set_active(&a, true);
    let b = pick(&mut p, client(1), at(0));
    assert_eq!((a.addr, b.addr), (real(0), real(0)));
    assert!(p.real(&real(0)).unwrap().overloaded);
    p.close(&a, true, client(0), at(0));
    // 1*4 < 2*3: resumes
    assert!(!p.real(&real(0)).unwrap().overloaded);
}

#[test]
fn raising_or_clearing_the_threshold_by_update() {
    let mut s = svc(SchedulerKind::Fo, &[10, 1]);
    s.reals[0].upper_threshold = 2;
    let mut p = Pool::new(&s);
    fill(&mut p, 2);
    assert!(p.real(&real(0)).unwrap().overloaded);
    s.reals[0].upper_threshold = 5;
    p.update(&s);
    assert!(!p.real(&real(0)).unwrap().overloaded);
    assert_eq!(pick(&mut p, client(9), at(0)).addr, real(0));
    // lowering under the load sets it at once
    s.reals[0].upper_threshold = 2;
    p.update(&s);
    assert!(p.real(&real(0)).unwrap().overloaded);
    s.reals[0].upper_threshold = 0;
    p.update(&s);
    assert!(!p.real(&real(0)).unwrap().overloaded);
}

#[test]
fn all_overloaded_falls_back() {
    let mut s = svc(SchedulerKind::Wlc, &[1, 1]);
    for r in &mut s.reals {
        r.upper_threshold = 1;
    }
    s.fallback = Some(fallback());
    let mut p = Pool::new(&s);
    assert!(!pick(&mut p, client(0), at(0)).fallback);
    assert!(!pick(&mut p, client(1), at(0)).fallback);
    assert!(pick(&mut p, client(2), at(0)).fallback);
}
