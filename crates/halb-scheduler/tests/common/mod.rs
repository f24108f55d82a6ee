//! Helpers shared by the integration tests.
#![allow(dead_code)]

use halb_scheduler::{Pick, Pool, Request};
use halb_table::{Persistence, Protocol, RealServer, SchedulerKind, VirtualService};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub fn real(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 8080))
}

pub fn vip() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 200], 80))
}

pub fn fallback() -> SocketAddr {
    SocketAddr::from(([10, 9, 9, 9], 8080))
}

pub fn client(i: u32) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::from(0xc633_6400u32.wrapping_add(i.wrapping_mul(7919))),
        40000,
    ))
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn svc(kind: SchedulerKind, weights: &[u32]) -> VirtualService {
    let mut s = VirtualService::new("test", vip(), Protocol::Tcp, kind);
    s.reals = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| RealServer::new(real(i), w))
        .collect();
    s
}

pub fn persistent(mut s: VirtualService, secs: u64, prefix_v4: u8) -> VirtualService {
    s.persistence = Some(Persistence {
        timeout: Duration::from_secs(secs),
        prefix_v4,
        prefix_v6: 128,
    });
    s
}

pub fn req(client: SocketAddr) -> Request<'static> {
    Request {
        client,
        dest: vip(),
        exclude: &[],
    }
}

/// A fixed time base; tests add offsets to it.
pub fn t0() -> Instant {
    use std::sync::OnceLock;
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

pub fn at(secs: u64) -> Instant {
    t0() + Duration::from_secs(secs)
}

/// Schedule and return the pick, panicking on none.
pub fn pick(pool: &mut Pool, c: SocketAddr, now: Instant) -> Pick {
    pool.schedule(&req(c), now).expect("a pick")
}

pub fn counts(pool: &Pool, addr: SocketAddr) -> (u32, u32) {
    pool.real(&addr).map_or((0, 0), |r| (r.active, r.inactive))
}
