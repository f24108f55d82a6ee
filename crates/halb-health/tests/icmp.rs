//! The icmp probe on loopback: 127.0.0.1 and ::1 answer (up); a send
//! the kernel refuses (the IPv4 broadcast address without
//! SO_BROADCAST; no packet leaves the host) is down with the error.
//! Needs a raw socket (root) or a ping socket allowed by
//! `net.ipv4.ping_group_range`: without either the test is skipped, or
//! fails when `CI` is set.
#![allow(clippy::unwrap_used)]

use halb_health::probe::run;
use halb_health::{CheckSpec, InitialState, ProbeSpec, Timing};
use std::net::SocketAddr;
use std::time::Duration;

fn check(ip: &str) -> CheckSpec {
    CheckSpec {
        target: SocketAddr::new(ip.parse().unwrap(), 0),
        probe: ProbeSpec::Icmp,
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            rise: 1,
            fall: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        },
    }
}

#[tokio::test]
async fn ping_loopback_v4_and_v6() {
    let o = run(&check("127.0.0.1")).await;
    if o.reason.starts_with("cannot open an ICMP socket") {
        assert!(std::env::var_os("CI").is_none(), "{o:?}");
        eprintln!("SKIPPED: {}", o.reason);
        return;
    }
    assert!(o.ok, "{o:?}");
    assert_eq!(o.reason, "echo reply from 127.0.0.1");
    // Several probes at once: each matches its own reply.
    let many = futures_join(8).await;
    assert!(many.iter().all(|o| o.ok), "{many:?}");

    let o = run(&check("::1")).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.reason, "echo reply from ::1");

    let o = run(&check("255.255.255.255")).await;
    assert!(
        !o.ok && o.reason.starts_with("ping 255.255.255.255: "),
        "{o:?}"
    );
}

async fn futures_join(n: usize) -> Vec<halb_health::ProbeOutcome> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(async { run(&check("127.0.0.1")).await }))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
