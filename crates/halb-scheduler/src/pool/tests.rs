//! Model-based property test of the pool's bookkeeping: whatever the
//! sequence of schedule / set_active / close / update / expire, the counts
//! equal the open connections per real server, never wrap, the trash holds
//! exactly the removed servers with connections, every pick was allowed,
//! and the persistence templates count each key's connections.

use super::*;
use crate::persistence::mask;
use halb_table::{Persistence, Protocol, RealServer, SchedulerFlags};
use proptest::prelude::*;
use std::time::Duration;

const ADDRS: usize = 6;

fn real_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 80))
}

fn fallback_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 9, 9], 80))
}

fn client(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i % 64], 1000 + u16::from(i)))
}

#[derive(Debug, Clone)]
struct RealSpec {
    present: bool,
    weight: u32,
    upper: u32,
    lower: u32,
}

#[derive(Debug, Clone)]
enum Op {
    Schedule {
        client: u8,
        exclude: u8,
    },
    SetActive {
        conn: usize,
        active: bool,
    },
    Close {
        conn: usize,
    },
    Update {
        reals: Vec<RealSpec>,
        kind: usize,
        flags: (bool, bool),
    },
    Advance {
        secs: u64,
    },
}

fn real_spec() -> impl Strategy<Value = RealSpec> {
    (
        prop::bool::weighted(0.7),
        prop_oneof![Just(0u32), 1u32..5, Just(300)],
        prop_oneof![Just(0u32), 1u32..6],
        0u32..4,
    )
        .prop_map(|(present, weight, upper, lower)| RealSpec {
            present,
            weight,
            upper,
            lower,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>()).prop_map(|(client, exclude)| Op::Schedule {
            client,
            exclude: if exclude % 4 == 0 { exclude } else { 0 },
        }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(conn, active)| Op::SetActive { conn, active }),
        4 => any::<usize>().prop_map(|conn| Op::Close { conn }),
        1 => (
            prop::collection::vec(real_spec(), ADDRS),
            0usize..SchedulerKind::ALL.len(),
            (any::<bool>(), any::<bool>())
        )
            .prop_map(|(reals, kind, flags)| Op::Update { reals, kind, flags }),
        1 => (0u64..30).prop_map(|secs| Op::Advance { secs }),
    ]
}

fn service(
    reals: &[RealSpec],
    kind: usize,
    flags: (bool, bool),
    persistence: Option<Persistence>,
) -> VirtualService {
    let mut svc = VirtualService::new(
        "model",
        SocketAddr::from(([192, 0, 2, 200], 80)),
        Protocol::Tcp,
        SchedulerKind::ALL[kind],
    );
    svc.flags = SchedulerFlags {
        fallback: flags.0,
        port: flags.1,
    };
    svc.persistence = persistence;
    svc.fallback = Some(fallback_addr());
    // order varies with the spec so updates also reorder
    for (i, s) in reals.iter().enumerate() {
        if s.present {
            let mut r = RealServer::new(real_addr(i), s.weight);
            r.upper_threshold = s.upper;
            r.lower_threshold = s.lower;
            svc.reals.push(r);
        }
    }
    if reals.first().is_some_and(|s| s.weight % 2 == 1) {
        svc.reals.reverse();
    }
    svc
}

struct Conn {
    pick: Pick,
    active: bool,
    client: SocketAddr,
}

fn check(
    pool: &Pool,
    svc: &VirtualService,
    conns: &[Conn],
    persistent: Option<Persistence>,
) -> Result<(), TestCaseError> {
    // live reals: exactly the table, in order
    let live: Vec<_> = pool
        .reals()
        .iter()
        .filter(|r| !r.removed)
        .map(|r| r.server.clone())
        .collect();
    prop_assert_eq!(&live, &svc.reals);
    prop_assert!(pool.reals()[..live.len()].iter().all(|r| !r.removed));
    for i in 0..ADDRS {
        let a = real_addr(i);
        let act = conns
            .iter()
            .filter(|c| !c.pick.fallback && c.pick.addr == a && c.active)
            .count() as u32;
        let ina = conns
            .iter()
            .filter(|c| !c.pick.fallback && c.pick.addr == a && !c.active)
            .count() as u32;
        let in_table = svc.reals.iter().any(|r| r.addr == a);
        match pool.reals().iter().find(|r| r.server.addr == a) {
            Some(r) => {
                prop_assert_eq!((r.active, r.inactive), (act, ina), "counts of {}", a);
                prop_assert_eq!(r.removed, !in_table);
                if r.removed {
                    prop_assert!(act + ina > 0, "empty real {} left in the trash", a);
                }
                // the flag is consistent with the thresholds
                let total = u64::from(act + ina);
                let u = u64::from(r.server.upper_threshold);
                if u == 0 {
                    prop_assert!(!r.overloaded);
                } else if total >= u {
                    prop_assert!(r.overloaded);
                }
            }
            None => prop_assert!(!in_table && act + ina == 0, "real {} lost", a),
        }
    }
    if let Some(p) = persistent {
        let mut keys: Vec<IpAddr> = conns
            .iter()
            .map(|c| mask(c.client.ip(), p.prefix_v4, p.prefix_v6))
            .collect();
        keys.sort();
        keys.dedup();
        for i in 0..ADDRS {
            let a = real_addr(i);
            for c in conns {
                let k = mask(c.client.ip(), p.prefix_v4, p.prefix_v6);
                let open = conns
                    .iter()
                    .filter(|o| {
                        !o.pick.fallback
                            && o.pick.addr == a
                            && mask(o.client.ip(), p.prefix_v4, p.prefix_v6) == k
                    })
                    .count() as u32;
                prop_assert_eq!(pool.template_count(c.client.ip(), a), open);
            }
        }
        prop_assert!(pool.persistence_entries() <= 64);
    }
    Ok(())
}

fn run(
    ops: Vec<Op>,
    first: Vec<RealSpec>,
    kind: usize,
    persistence: Option<Persistence>,
) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut svc = service(&first, kind, (false, false), persistence);
    let mut pool = Pool::new(&svc);
    let mut conns: Vec<Conn> = Vec::new();
    check(&pool, &svc, &conns, persistence)?;
    for op in ops {
        match op {
            Op::Schedule { client: c, exclude } => {
                let excl: Vec<SocketAddr> = (0..ADDRS)
                    .filter(|i| exclude & (1 << i) != 0)
                    .map(real_addr)
                    .collect();
                let req = Request {
                    client: client(c),
                    dest: svc.listen,
                    exclude: &excl,
                };
                let before: Vec<RealState> = pool.reals().to_vec();
                if let Some(pick) = pool.schedule(&req, now) {
                    if pick.fallback {
                        prop_assert_eq!(pick.addr, fallback_addr());
                    } else {
                        let r = before.iter().find(|r| r.server.addr == pick.addr);
                        prop_assert!(r.is_some());
                        let r = r.unwrap_or(&before[0]);
                        prop_assert!(
                            !r.removed && r.server.weight > 0 && !r.overloaded,
                            "bad pick {:?}",
                            r
                        );
                        prop_assert!(!excl.contains(&pick.addr));
                    }
                    conns.push(Conn {
                        pick,
                        active: false,
                        client: client(c),
                    });
                }
            }
            Op::SetActive { conn, active } => {
                if !conns.is_empty() {
                    let i = conn % conns.len();
                    let c = &mut conns[i];
                    if c.active != active {
                        pool.set_active(&c.pick, active);
                        c.active = active;
                    }
                }
            }
            Op::Close { conn } => {
                if !conns.is_empty() {
                    let c = conns.swap_remove(conn % conns.len());
                    pool.close(&c.pick, c.active, c.client, now);
                }
            }
            Op::Update { reals, kind, flags } => {
                svc = service(&reals, kind, flags, persistence);
                pool.update(&svc);
                prop_assert_eq!(pool.scheduler(), svc.scheduler);
            }
            Op::Advance { secs } => {
                now += Duration::from_secs(secs);
                pool.handle_timeout(now);
                if let Some(d) = pool.poll_timeout() {
                    prop_assert!(d > now);
                }
            }
        }
        check(&pool, &svc, &conns, persistence)?;
    }
    // closing everything empties the trash
    for c in conns.drain(..) {
        pool.close(&c.pick, c.active, c.client, now);
    }
    prop_assert!(pool
        .reals()
        .iter()
        .all(|r| !r.removed && r.active == 0 && r.inactive == 0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, .. ProptestConfig::default() })]

    #[test]
    fn counts_match_open_connections(
        first in prop::collection::vec(real_spec(), ADDRS),
        kind in 0usize..SchedulerKind::ALL.len(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(ops, first, kind, None)?;
    }

    #[test]
    fn counts_and_templates_with_persistence(
        first in prop::collection::vec(real_spec(), ADDRS),
        kind in 0usize..SchedulerKind::ALL.len(),
        ops in prop::collection::vec(op(), 1..120),
        prefix in prop_oneof![Just(32u8), Just(30u8), Just(24u8)],
    ) {
        let p = Persistence { timeout: Duration::from_secs(20), prefix_v4: prefix, prefix_v6: 128 };
        run(ops, first, kind, Some(p))?;
    }
}
