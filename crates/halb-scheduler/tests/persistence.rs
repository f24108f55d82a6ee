//! Persistence templates through the Pool.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_scheduler::{Pool, Request};
use halb_table::SchedulerKind;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn sticky_where_rr_would_rotate() {
    let mut p = Pool::new(&persistent(svc(SchedulerKind::Rr, &[1, 1, 1]), 60, 32));
    let c = client(1);
    let first = pick(&mut p, c, at(0)).addr;
    for i in 0..10 {
        assert_eq!(pick(&mut p, c, at(i)).addr, first);
        // other clients keep rotating
        let _ = pick(&mut p, client(100 + i as u32), at(i));
    }
    assert_eq!(p.persistence_entries(), 11);
    assert_eq!(p.persistent_real(c.ip(), at(10)), Some(first));
}

#[test]
fn expires_exactly_timeout_after_the_last_close() {
    let mut p = Pool::new(&persistent(svc(SchedulerKind::Rr, &[1, 1]), 30, 32));
    let c = client(1);
    let a = pick(&mut p, c, at(0));
    let b = pick(&mut p, c, at(1));
    assert_eq!(a.addr, b.addr);
    p.handle_timeout(at(2));
    assert_eq!(
        p.poll_timeout(),
        None,
        "nothing pending while connections are open"
    );
    // long after the timeout, still held: connections are open
    assert_eq!(p.persistent_real(c.ip(), at(100)), Some(a.addr));
    p.close(&a, false, c, at(100));
    p.handle_timeout(at(101));
    assert_eq!(p.poll_timeout(), None);
    p.close(&b, false, c, at(110));
    let deadline = at(140);
    assert_eq!(p.poll_timeout(), Some(deadline));
    let just_before = deadline - Duration::from_nanos(1);
    p.handle_timeout(just_before);
    assert_eq!(p.poll_timeout(), Some(deadline));
    assert_eq!(p.persistence_entries(), 1);
    assert_eq!(p.persistent_real(c.ip(), just_before), Some(a.addr));
    // a connection just before the deadline still sticks
    let again = pick(&mut p, c, just_before);
    assert_eq!(again.addr, a.addr);
    p.handle_timeout(deadline);
    assert_eq!(p.poll_timeout(), None, "held again by the new connection");
    assert_eq!(p.persistence_entries(), 1);
    // ...and the clock restarts when it ends
    p.close(&again, false, c, at(150));
    p.handle_timeout(at(179));
    assert_eq!(p.poll_timeout(), Some(at(180)));
    p.handle_timeout(at(180));
    assert_eq!(p.poll_timeout(), None);
    assert_eq!(p.persistence_entries(), 0);
    assert_eq!(p.persistent_real(c.ip(), at(180)), None);
}

#[test]
fn an_expired_template_is_not_used_even_before_expire_runs() {
    let mut p = Pool::new(&persistent(svc(SchedulerKind::Rr, &[1, 1]), 10, 32));
    let c = client(1);
    let a = pick(&mut p, c, at(0));
    p.close(&a, false, c, at(0));
    assert_eq!(p.persistent_real(c.ip(), at(10)), None);
    // rr moves on to the other server
    assert_ne!(pick(&mut p, c, at(10)).addr, a.addr);
    assert_eq!(p.persistence_entries(), 1);
}

#[test]
fn netmask_groups_clients() {
    let mut p = Pool::new(&persistent(svc(SchedulerKind::Rr, &[1, 1, 1, 1]), 60, 24));
    let a = SocketAddr::from(([198, 51, 100, 1], 1111));
    let b = SocketAddr::from(([198, 51, 100, 254], 2222));
    let c = SocketAddr::from(([198, 51, 101, 1], 3333));
    let pa = pick(&mut p, a, at(0)).addr;
    assert_eq!(pick(&mut p, b, at(0)).addr, pa);
    assert_ne!(
        pick(&mut p, c, at(0)).addr,
        pa,
        "another /24 is scheduled afresh"
    );
    assert_eq!(p.persistence_entries(), 2);
    // an IPv4-mapped IPv6 client is the same client
    let mapped: SocketAddr = "[::ffff:198.51.100.77]:4444".parse().unwrap();
    assert_eq!(pick(&mut p, mapped, at(0)).addr, pa);
}

#[test]
fn template_dropped_when_its_real_is_removed() {
    let mut s = persistent(svc(SchedulerKind::Rr, &[1, 1]), 60, 32);
    let mut p = Pool::new(&s);
    let c = client(1);
    let a = pick(&mut p, c, at(0));
    assert_eq!(p.persistence_entries(), 1);
    s.reals.retain(|r| r.addr != a.addr);
    p.update(&s);
    assert_eq!(p.persistence_entries(), 0);
    let b = pick(&mut p, c, at(1));
    assert_ne!(b.addr, a.addr);
    assert_eq!(p.persistent_real(c.ip(), at(1)), Some(b.addr));
    // the old connection still closes cleanly against the trash
    p.close(&a, false, c, at(2));
    assert!(p.real(&a.addr).is_none());
}

#[test]
fn template_dropped_when_its_real_goes_quiescent() {
    let mut s = persistent(svc(SchedulerKind::Rr, &[1, 1]), 60, 32);
    let mut p = Pool::new(&s);
    let c = client(1);
    let a = pick(&mut p, c, at(0));
    let i = s.reals.iter().position(|r| r.addr == a.addr).unwrap();
    s.reals[i].weight = 0;
    p.update(&s);
    assert_eq!(p.persistence_entries(), 0);
    let b = pick(&mut p, c, at(1));
    assert_ne!(b.addr, a.addr);
    // restoring the weight does not bring the old template back
    s.reals[i].weight = 1;
    p.update(&s);
    assert_eq!(pick(&mut p, c, at(2)).addr, b.addr);
}

#[test]
fn overloaded_or_excluded_template_real_is_replaced() {
    let mut s = persistent(svc(SchedulerKind::Rr, &[1, 1]), 60, 32);
    s.reals[0].upper_threshold = 1;
    let mut p = Pool::new(&s);
    let c = client(1);
    let a = pick(&mut p, c, at(0));
    assert_eq!(a.addr, real(0));
    // real 0 is now at its threshold: the template moves to real 1
    let b = pick(&mut p, c, at(0));
    assert_eq!(b.addr, real(1));
    assert_eq!(p.persistent_real(c.ip(), at(0)), Some(real(1)));
    // the connect to real 1 failed: excluded, the template moves again
    p.close(&b, false, c, at(0));
    p.close(&a, false, c, at(0));
    let ex = [real(1)];
    let r = Request {
        client: c,
        dest: vip(),
        exclude: &ex,
    };
    assert_eq!(p.schedule(&r, at(0)).unwrap().addr, real(0));
    assert_eq!(p.persistent_real(c.ip(), at(0)), Some(real(0)));
}

#[test]
fn no_template_for_the_fallback() {
    let mut s = persistent(svc(SchedulerKind::Rr, &[0]), 60, 32);
    s.fallback = Some(fallback());
    let mut p = Pool::new(&s);
    assert!(pick(&mut p, client(1), at(0)).fallback);
    assert_eq!(p.persistence_entries(), 0);
}

#[test]
fn turning_persistence_off_forgets_templates() {
    let mut s = persistent(svc(SchedulerKind::Rr, &[1, 1]), 60, 32);
    let mut p = Pool::new(&s);
    pick(&mut p, client(1), at(0));
    s.persistence = None;
    p.update(&s);
    assert_eq!(p.persistence_entries(), 0);
    p.handle_timeout(at(1000));
    assert_eq!(p.poll_timeout(), None);
}
