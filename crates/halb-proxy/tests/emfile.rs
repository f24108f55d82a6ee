//! Out of file descriptors: accepting pauses and resumes, nothing panics.
//! (Its own test binary: it lowers the process's descriptor limit.)
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_proxy::{ProxyDataPlane, ProxyOptions};
use halb_table::{DataPlane, SchedulerKind, Table};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use socket2::{Domain, SockAddr, Socket, Type};
use std::time::Duration;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn accept_survives_emfile() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut p = ProxyDataPlane::new(ProxyOptions {
        workers: 1,
        raise_nofile_limit: false,
        ..ProxyOptions::default()
    })
    .unwrap();
    let a = rt.block_on(backend("a", "127.0.0.1"));
    let vip = free_tcp("127.0.0.1");
    let r = p.apply(&Table {
        services: vec![service("web", vip, SchedulerKind::Rr, &[(a.addr, 1)])],
    });
    assert!(r.is_ok());
    rt.block_on(async { assert_eq!(name_of(vip).await, "a") });

    // Client sockets made while descriptors are plentiful ...
    let clients: Vec<Socket> = (0..64)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // ... then hardly any left: the proxy's accept gets EMFILE
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() + 8, hard).unwrap();
    for c in &clients {
        let _ = c.connect(&SockAddr::from(vip));
    }
    std::thread::sleep(Duration::from_millis(500));
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    drop(clients);

    // accepting resumed
    rt.block_on(bounded(async {
        for _ in 0..3 {
            assert_eq!(name_of(vip).await, "a");
        }
    }));
    assert!(p.stats()[0].counters.conns >= 4);
}
