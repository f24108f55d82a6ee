//! Table updates: counts kept, destination trash, re-adding.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_scheduler::Pool;
use halb_table::{RealServer, SchedulerKind};

#[test]
fn counts_survive_weight_and_order_changes() {
    let mut s = svc(SchedulerKind::Wlc, &[1, 1, 1]);
    let mut p = Pool::new(&s);
    let picks: Vec<_> = (0..6).map(|i| pick(&mut p, client(i), at(0))).collect();
    for x in &picks[..3] {
        p.set_active(x, true);
    }
    let before: Vec<_> = (0..3).map(|i| counts(&p, real(i))).collect();
    s.reals.reverse();
    s.reals[0].weight = 7;
    p.update(&s);
    assert_eq!(p.reals()[0].server.addr, real(2));
    assert_eq!(p.reals()[0].server.weight, 7);
    let after: Vec<_> = (0..3).map(|i| counts(&p, real(i))).collect();
    assert_eq!(before, after);
}

#[test]
fn removed_real_lingers_in_the_trash_until_its_connections_end() {
    let mut s = svc(SchedulerKind::Rr, &[1, 1]);
    let mut p = Pool::new(&s);
    let a = pick(&mut p, client(0), at(0));
    let a2 = pick(&mut p, client(1), at(0));
    let a3 = pick(&mut p, client(2), at(0));
    assert_eq!((a.addr, a2.addr, a3.addr), (real(0), real(1), real(0)));
    p.set_active(&a, true);
    s.reals.remove(0);
    p.update(&s);
    assert_eq!(p.reals().len(), 2);
    let trash = &p.reals()[1];
    assert!(trash.removed);
    assert_eq!(
        (trash.server.addr, trash.active, trash.inactive),
        (real(0), 1, 1)
    );
    // never scheduled again
    for i in 0..10 {
        assert_eq!(pick(&mut p, client(10 + i), at(0)).addr, real(1));
    }
    p.close(&a3, false, client(2), at(0));
    assert_eq!(counts(&p, real(0)), (1, 0));
    p.set_active(&a, false);
    assert_eq!(counts(&p, real(0)), (0, 1));
    p.close(&a, false, client(0), at(0));
    assert!(p.real(&real(0)).is_none());
    assert_eq!(p.reals().len(), 1);
}

#[test]
fn removed_real_without_connections_goes_at_once() {
    let mut s = svc(SchedulerKind::Rr, &[1, 1]);
    let mut p = Pool::new(&s);
    s.reals.remove(0);
    p.update(&s);
    assert_eq!(p.reals().len(), 1);
    assert!(p.real(&real(0)).is_none());
}

#[test]
fn re_adding_restores_counts() {
    let mut s = svc(SchedulerKind::Rr, &[1, 1]);
    let mut p = Pool::new(&s);
    let a = pick(&mut p, client(0), at(0));
    p.set_active(&a, true);
    let keep = s.reals.remove(0);
    p.update(&s);
    assert!(p.real(&real(0)).unwrap().removed);
    s.reals.push(RealServer { weight: 3, ..keep });
    p.update(&s);
    let r = p.real(&real(0)).unwrap();
    assert!(!r.removed);
    assert_eq!((r.active, r.inactive, r.server.weight), (1, 0, 3));
    assert_eq!(p.reals()[1].server.addr, real(0), "back in table order");
    p.close(&a, true, client(0), at(0));
    assert_eq!(counts(&p, real(0)), (0, 0));
    assert!(p.real(&real(0)).is_some(), "a live real stays at zero");
}

#[test]
fn duplicate_reals_count_once() {
    let mut s = svc(SchedulerKind::Rr, &[1, 1]);
    s.reals.push(RealServer::new(real(0), 5));
    let p = Pool::new(&s);
    assert_eq!(p.reals().len(), 2);
    assert_eq!(p.real(&real(0)).unwrap().server.weight, 1);
}

#[test]
fn stray_events_never_underflow() {
    let mut p = Pool::new(&svc(SchedulerKind::Rr, &[1]));
    let a = pick(&mut p, client(0), at(0));
    p.close(&a, false, client(0), at(0));
    // already closed: ignored
    p.close(&a, false, client(0), at(0));
    p.close(&a, true, client(0), at(0));
    p.set_active(&a, true);
    p.set_active(&a, false);
    assert_eq!(counts(&p, real(0)), (0, 0));
    // unknown server: ignored
    let ghost = halb_scheduler::Pick {
        addr: fallback(),
        fallback: false,
    };
    p.close(&ghost, false, client(0), at(0));
    p.set_active(&ghost, true);
    assert_eq!(counts(&p, real(0)), (0, 0));
}
