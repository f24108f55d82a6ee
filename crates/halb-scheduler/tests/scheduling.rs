//! Scheduler behaviour through the public `Pool` API.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_scheduler::{Pool, Request};
use halb_table::{SchedulerFlags, SchedulerKind};
use proptest::prelude::*;
use std::collections::HashMap;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[test]
fn wrr_kernel_sequence_1_2_3() {
    let mut pool = Pool::new(&svc(SchedulerKind::Wrr, &[1, 2, 3]));
    let (a, b, c) = (real(0), real(1), real(2));
    let seq: Vec<_> = (0..12)
        .map(|i| pick(&mut pool, client(i), at(0)).addr)
        .collect();
    assert_eq!(seq, vec![c, b, c, a, b, c, c, b, c, a, b, c]);
}

proptest! {
    /// Over each cycle of sum(w)/gcd picks, every server is picked exactly
    /// w/gcd times.
    #[test]
    fn wrr_cycle_counts(base in prop::collection::vec(1u32..=12, 1..8), scale in 1u32..=5) {
        let weights: Vec<u32> = base.iter().map(|w| w * scale).collect();
        let g = weights.iter().copied().fold(0, gcd);
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let mut pool = Pool::new(&svc(SchedulerKind::Wrr, &weights));
        for round in 0..2 {
            let mut seen: HashMap<_, u32> = HashMap::new();
            for i in 0..cycle {
                *seen.entry(pick(&mut pool, client(i), at(0)).addr).or_default() += 1;
            }
            for (i, w) in weights.iter().enumerate() {
                prop_assert_eq!(seen.get(&real(i)).copied().unwrap_or(0), w / g, "round {}", round);
            }
        }
    }
}

#[test]
fn rr_rotates_in_table_order() {
    let mut pool = Pool::new(&svc(SchedulerKind::Rr, &[1, 5, 1]));
    let seq: Vec<_> = (0..6)
        .map(|i| pick(&mut pool, client(i), at(0)).addr)
        .collect();
    assert_eq!(
        seq,
        vec![real(0), real(1), real(2), real(0), real(1), real(2)]
    );
}

#[test]
fn least_connection_sees_live_counts() {
    for kind in [SchedulerKind::Lc, SchedulerKind::Wlc] {
        let mut pool = Pool::new(&svc(kind, &[1, 1]));
        let p = pick(&mut pool, client(0), at(0));
        assert_eq!(p.addr, real(0));
        pool.set_active(&p, true);
        // real 0 has one active connection now
        assert_eq!(pick(&mut pool, client(1), at(0)).addr, real(1), "{kind}");
        // closing it makes real 0 the least loaded again
        pool.close(&p, true, client(0), at(0));
        assert_eq!(pick(&mut pool, client(2), at(0)).addr, real(0), "{kind}");
    }
    // sed: (active + 1) / weight, inactive connections ignored
    let mut pool = Pool::new(&svc(SchedulerKind::Sed, &[1, 3]));
    for i in 0..2 {
        let p = pick(&mut pool, client(i), at(0));
        assert_eq!(p.addr, real(1)); // 1/3, then 2/3 < 1/1
        pool.set_active(&p, true);
    }
    let idle = pick(&mut pool, client(5), at(0));
    assert_eq!(idle.addr, real(0)); // 3/3 vs 1/1: the first wins the tie
                                    // nq: an idle server first, in table order
    let mut pool = Pool::new(&svc(SchedulerKind::Nq, &[1, 3]));
    let p = pick(&mut pool, client(0), at(0));
    assert_eq!(p.addr, real(0));
    pool.set_active(&p, true);
    assert_eq!(pick(&mut pool, client(1), at(0)).addr, real(1));
}

#[test]
fn ovf_overflows_by_active_connections() {
    let mut pool = Pool::new(&svc(SchedulerKind::Ovf, &[1, 2]));
    let mut open = vec![];
    for i in 0..3 {
        let p = pick(&mut pool, client(i), at(0));
        assert_eq!(p.addr, real(1));
        pool.set_active(&p, true);
        open.push(p);
    }
    // real 1 has 3 > 2 active: overflow to real 0
    assert_eq!(pick(&mut pool, client(9), at(0)).addr, real(0));
}

#[test]
fn fo_uses_the_heaviest() {
    let mut pool = Pool::new(&svc(SchedulerKind::Fo, &[3, 7, 7]));
    for i in 0..10 {
        assert_eq!(pick(&mut pool, client(i), at(0)).addr, real(1));
    }
}

#[test]
fn sh_dh_mh_stable_across_calls_and_neutral_updates() {
    for kind in [SchedulerKind::Sh, SchedulerKind::Dh, SchedulerKind::Mh] {
        let s = svc(kind, &[1, 2, 3, 1, 1]);
        let mut pool = Pool::new(&s);
        let first: Vec<_> = (0..300)
            .map(|i| pick(&mut pool, client(i), at(0)).addr)
            .collect();
        let again: Vec<_> = (0..300)
            .map(|i| pick(&mut pool, client(i), at(0)).addr)
            .collect();
        assert_eq!(first, again, "{kind}");
        // an update that does not change the (address, weight) set
        let mut s2 = s.clone();
        s2.name = "renamed".into();
        s2.reals[0].upper_threshold = 10_000;
        s2.idle_timeout = std::time::Duration::from_secs(5);
        pool.update(&s2);
        let after: Vec<_> = (0..300)
            .map(|i| pick(&mut pool, client(i), at(0)).addr)
            .collect();
        assert_eq!(first, after, "{kind}");
        if kind != SchedulerKind::Dh {
            let distinct: std::collections::HashSet<_> = first.iter().collect();
            assert!(distinct.len() > 1, "{kind} spreads clients");
        }
    }
}

#[test]
fn every_scheduler_skips_quiescent() {
    for kind in SchedulerKind::ALL {
        let mut s = svc(kind, &[0, 1, 0, 2, 0]);
        s.flags = SchedulerFlags {
            fallback: true,
            port: false,
        };
        s.fallback = Some(fallback());
        let mut pool = Pool::new(&s);
        for i in 0..300 {
            let mut r = req(client(i));
            let dest = std::net::SocketAddr::from(([192, 0, 2, (i % 200) as u8], 80));
            r.dest = dest;
            if let Some(p) = pool.schedule(&r, at(0)) {
                assert!(
                    p.addr == real(1) || p.addr == real(3) || p.fallback,
                    "{kind}: {p:?}"
                );
            }
        }
        assert_eq!(counts(&pool, real(0)), (0, 0), "{kind}");
        assert_eq!(counts(&pool, real(2)), (0, 0), "{kind}");
    }
}

#[test]
fn all_quiescent_gives_fallback_or_none() {
    for kind in SchedulerKind::ALL {
        let mut s = svc(kind, &[0, 0, 0]);
        let mut pool = Pool::new(&s);
        assert_eq!(pool.schedule(&req(client(1)), at(0)), None, "{kind}");
        s.fallback = Some(fallback());
        pool.update(&s);
        let p = pool.schedule(&req(client(1)), at(0)).unwrap();
        assert!(p.fallback && p.addr == fallback(), "{kind}");
        // the fallback is not counted anywhere; closing it is harmless
        assert!(pool.reals().iter().all(|r| r.active + r.inactive == 0));
        pool.set_active(&p, true);
        pool.close(&p, true, client(1), at(0));
        assert!(pool.reals().iter().all(|r| r.active + r.inactive == 0));
    }
}

#[test]
fn no_reals_at_all() {
    let mut s = svc(SchedulerKind::Mh, &[]);
    let mut pool = Pool::new(&s);
    assert_eq!(pool.schedule(&req(client(1)), at(0)), None);
    s.fallback = Some(fallback());
    pool.update(&s);
    assert!(pool.schedule(&req(client(1)), at(0)).unwrap().fallback);
}

#[test]
fn exclude_is_honoured_by_every_scheduler() {
    for kind in SchedulerKind::ALL {
        let mut s = svc(kind, &[1, 1, 1]);
        s.flags = SchedulerFlags {
            fallback: true,
            port: true,
        };
        s.fallback = Some(fallback());
        let mut pool = Pool::new(&s);
        for i in 0..100 {
            let first = pool.schedule(&req(client(i)), at(0)).unwrap();
            assert!(!first.fallback, "{kind}");
            // the connect to `first` failed: retry excluding it
            pool.close(&first, false, client(i), at(0));
            let ex = [first.addr];
            let r = Request {
                client: client(i),
                dest: vip(),
                exclude: &ex,
            };
            let second = pool.schedule(&r, at(0)).unwrap();
            assert_ne!(second.addr, first.addr, "{kind}");
            pool.close(&second, false, client(i), at(0));
        }
    }
}

#[test]
fn fallback_only_when_no_real_can_take_it() {
    let mut s = svc(SchedulerKind::Rr, &[1, 1]);
    s.fallback = Some(fallback());
    let mut pool = Pool::new(&s);
    for i in 0..10 {
        assert!(!pick(&mut pool, client(i), at(0)).fallback);
    }
    let ex = [real(0)];
    let r = Request {
        client: client(1),
        dest: vip(),
        exclude: &ex,
    };
    assert_eq!(pool.schedule(&r, at(0)).unwrap().addr, real(1));
    let ex = [real(0), real(1)];
    let r = Request {
        client: client(1),
        dest: vip(),
        exclude: &ex,
    };
    assert_eq!(pool.schedule(&r, at(0)).unwrap().addr, fallback());
    // an excluded fallback is not offered either
    let ex = [real(0), real(1), fallback()];
    let r = Request {
        client: client(1),
        dest: vip(),
        exclude: &ex,
    };
    assert_eq!(pool.schedule(&r, at(0)), None);
}

#[test]
fn sh_without_fallback_flag_uses_the_service_fallback() {
    // sh without sh-fallback: the hashed server being unavailable means no
    // real server can take the connection.
    let mut s = svc(SchedulerKind::Sh, &[1, 1]);
    s.fallback = Some(fallback());
    let mut pool = Pool::new(&s);
    let home = pick(&mut pool, client(5), at(0)).addr;
    let ex = [home];
    let r = Request {
        client: client(5),
        dest: vip(),
        exclude: &ex,
    };
    assert!(pool.schedule(&r, at(0)).unwrap().fallback);
    s.flags.fallback = true;
    pool.update(&s);
    let p = pool.schedule(&r, at(0)).unwrap();
    assert!(!p.fallback && p.addr != home);
}

#[test]
fn mh_quiesce_and_restore_moves_nobody_else() {
    let mut s = svc(SchedulerKind::Mh, &[1, 1, 1, 1]);
    s.flags.fallback = true;
    let mut pool = Pool::new(&s);
    let before: Vec<_> = (0..2000)
        .map(|i| pick(&mut pool, client(i), at(0)).addr)
        .collect();
    s.reals[2].weight = 0;
    pool.update(&s);
    let during: Vec<_> = (0..2000)
        .map(|i| pick(&mut pool, client(i), at(0)).addr)
        .collect();
    for (b, d) in before.iter().zip(&during) {
        assert_ne!(*d, real(2));
        if *b != real(2) {
            assert_eq!(b, d, "a key not on the quiesced server moved");
        }
    }
    s.reals[2].weight = 1;
    pool.update(&s);
    let after: Vec<_> = (0..2000)
        .map(|i| pick(&mut pool, client(i), at(0)).addr)
        .collect();
    assert_eq!(before, after);
}

#[test]
fn scheduler_kind_can_change() {
    let mut s = svc(SchedulerKind::Rr, &[1, 1]);
    let mut pool = Pool::new(&s);
    let p = pick(&mut pool, client(0), at(0));
    for kind in SchedulerKind::ALL {
        s.scheduler = kind;
        pool.update(&s);
        assert_eq!(pool.scheduler(), kind);
        assert!(pool.schedule(&req(client(3)), at(0)).is_some(), "{kind}");
    }
    // counts survived all of it: the first connection plus one per kind
    let total: u32 = pool.reals().iter().map(|r| r.inactive).sum();
    assert_eq!(total, 1 + SchedulerKind::ALL.len() as u32);
    assert!(counts(&pool, p.addr).1 >= 1);
}
