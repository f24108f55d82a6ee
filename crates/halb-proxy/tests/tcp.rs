//! TCP through the proxy on loopback, with real clients and back ends.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_proxy::{ProxyDataPlane, SpliceMode};
use halb_table::{DataPlane, DataPlaneError, Persistence, ProxyProtocol, SchedulerKind, Table};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn table(services: Vec<halb_table::VirtualService>) -> Table {
    Table { services }
}

async fn three() -> (Backend, Backend, Backend) {
    (
        backend("a", "127.0.0.1").await,
        backend("b", "127.0.0.1").await,
        backend("c", "127.0.0.1").await,
    )
}

fn counts(m: &std::collections::BTreeMap<String, usize>, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| m.get(*n).copied().unwrap_or(0))
        .collect()
}

#[tokio::test]
async fn rr_spreads_evenly() {
    bounded(async {
        let (a, b, c) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let r = p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Rr,
            &[(a.addr, 1), (b.addr, 1), (c.addr, 1)],
        )]));
        assert!(r.is_ok(), "{:?}", r.errors);
        let m = distribution(vip, 9).await;
        assert_eq!(counts(&m, &["a", "b", "c"]), vec![3, 3, 3], "{m:?}");
        assert_eq!(p.name(), "proxy");
        let st = p.stats();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].counters.conns, 9);
        assert_eq!(st[0].reals.len(), 3);
        assert!(st[0].reals.iter().all(|r| r.counters.conns == 3));
    })
    .await;
}

#[tokio::test]
async fn wrr_follows_weights_exactly_over_a_cycle() {
    bounded(async {
        let (a, b, c) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let r = p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Wrr,
            &[(a.addr, 1), (b.addr, 2), (c.addr, 3)],
        )]));
        assert!(r.is_ok(), "{:?}", r.errors);
        let m = distribution(vip, 12).await;
        assert_eq!(counts(&m, &["a", "b", "c"]), vec![2, 4, 6], "{m:?}");
    })
    .await;
}

#[tokio::test]
async fn weight_zero_drains_while_established_keeps_flowing() {
    bounded(async {
        let (a, b, c) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let reals = [(a.addr, 1), (b.addr, 1), (c.addr, 1)];
        p.apply(&table(vec![service("web", vip, SchedulerKind::Rr, &reals)]));
        let (mut long, name) = open(vip).await;
        echo(&mut long, "before").await;
        // quiesce the one the long-lived connection is on
        let drained = [&a, &b, &c].into_iter().find(|x| x.name == name).unwrap();
        let reals: Vec<_> = reals
            .iter()
            .map(|&(addr, w)| (addr, if addr == drained.addr { 0 } else { w }))
            .collect();
        let r = p.apply(&table(vec![service("web", vip, SchedulerKind::Rr, &reals)]));
        assert!(r.is_ok());
        let m = distribution(vip, 8).await;
        assert!(
            !m.contains_key(&name),
            "{name} still gets connections: {m:?}"
        );
        assert_eq!(m.values().sum::<usize>(), 8);
        echo(&mut long, "after the drain").await;
        let st = p.stats();
        let real = st[0].reals.iter().find(|r| r.addr == drained.addr).unwrap();
        assert_eq!(real.weight, 0);
        assert_eq!(real.counters.active, 1);
    })
    .await;
}

#[tokio::test]
async fn upper_threshold_sends_the_second_connection_elsewhere() {
    bounded(async {
        let (a, b, _c) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut s = service("web", vip, SchedulerKind::Wlc, &[(a.addr, 5), (b.addr, 1)]);
        s.reals[0].upper_threshold = 1;
        s.reals[1].upper_threshold = 0;
        p.apply(&table(vec![s]));
        let (mut first, n1) = open(vip).await;
        assert_eq!(n1, "a");
        echo(&mut first, "established").await;
        // a is at its threshold while `first` is open
        let (_second, n2) = open(vip).await;
        assert_eq!(n2, "b");
        let st = p.stats();
        assert!(st[0].reals[0].overloaded, "{:?}", st[0].reals[0]);
    })
    .await;
}

#[tokio::test]
async fn persistence_sticks_per_client_and_expires() {
    bounded(async {
        let (a, b, c) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut s = service(
            "web",
            vip,
            SchedulerKind::Rr,
            &[(a.addr, 1), (b.addr, 1), (c.addr, 1)],
        );
        s.persistence = Some(Persistence {
            timeout: Duration::from_millis(600),
            prefix_v4: 32,
            prefix_v6: 128,
        });
        p.apply(&table(vec![s]));
        let first = open_from(Some("127.0.0.2"), vip).await.1;
        for _ in 0..5 {
            assert_eq!(open_from(Some("127.0.0.2"), vip).await.1, first);
        }
        // another client gets the next real server, and sticks to it
        let other = open_from(Some("127.0.0.3"), vip).await.1;
        assert_ne!(other, first);
        for _ in 0..3 {
            assert_eq!(open_from(Some("127.0.0.3"), vip).await.1, other);
        }
        // all connections closed; after the timeout the templates go and
        // 127.0.0.2 is scheduled afresh (round robin: the third server)
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let again = open_from(Some("127.0.0.2"), vip).await.1;
        assert_ne!(again, first, "template did not expire");
    })
    .await;
}

#[tokio::test]
async fn fallback_when_every_weight_is_zero() {
    bounded(async {
        let (a, b, f) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut s = service("web", vip, SchedulerKind::Wlc, &[(a.addr, 0), (b.addr, 0)]);
        s.fallback = Some(f.addr);
        p.apply(&table(vec![s.clone()]));
        let m = distribution(vip, 4).await;
        assert_eq!(counts(&m, &["a", "b", "c"]), vec![0, 0, 4], "{m:?}");
        let st = p.stats();
        assert_eq!(st[0].fallback_conns, 4);
        assert_eq!(st[0].fallback, Some(f.addr));
        // a real server back: the fallback is no longer used
        s.reals[0].weight = 1;
        p.apply(&table(vec![s]));
        assert_eq!(name_of(vip).await, "a");
    })
    .await;
}

#[tokio::test]
async fn reload_with_new_weights_keeps_established_connections() {
    bounded(async {
        let (a, b, c) = three().await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Wrr,
            &[(a.addr, 1), (b.addr, 1), (c.addr, 1)],
        )]));
        let mut held = Vec::new();
        for _ in 0..3 {
            let (mut s, n) = open(vip).await;
            echo(&mut s, "x").await;
            held.push((s, n));
        }
        let r = p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Wrr,
            &[(a.addr, 0), (b.addr, 1), (c.addr, 3)],
        )]));
        assert!(r.is_ok());
        for (s, n) in &mut held {
            echo(s, &format!("still here {n}")).await;
        }
        let m = distribution(vip, 8).await;
        assert_eq!(counts(&m, &["a", "b", "c"]), vec![0, 2, 6], "{m:?}");
        // counters survived the reload
        assert_eq!(p.stats()[0].counters.conns, 11);
        eventually("the three held connections active", || {
            p.stats()[0].counters.active == 3
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn dead_real_server_costs_the_client_nothing() {
    bounded(async {
        let (a, b, _c) = three().await;
        let dead = free_tcp("127.0.0.1"); // nothing listens there
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Rr,
            &[(dead, 1), (a.addr, 1), (b.addr, 1)],
        )]));
        let m = distribution(vip, 9).await;
        assert_eq!(m.values().sum::<usize>(), 9);
        assert!(counts(&m, &["a", "b"]).iter().all(|&n| n >= 3), "{m:?}");
        let st = p.stats();
        let d = st[0].reals.iter().find(|r| r.addr == dead).unwrap();
        assert_eq!(d.counters.active + d.counters.inactive, 0);
    })
    .await;
}

#[tokio::test]
async fn all_reals_dead_closes_the_client() {
    bounded(async {
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Rr,
            &[(free_tcp("127.0.0.1"), 1), (free_tcp("127.0.0.1"), 1)],
        )]));
        // The client is reset (every connect failed): so fast, on
        // loopback, that its own connect may already report it.
        let mut s = match TcpStream::connect(vip).await {
            Ok(s) => s,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                return;
            }
        };
        let mut buf = [0u8; 8];
        let r = step("closed", s.read(&mut buf)).await;
        assert!(matches!(r, Ok(0) | Err(_)));
    })
    .await;
}

async fn half_close(mode: SpliceMode) {
    let a = backend("a", "127.0.0.1").await;
    let vip = free_tcp("127.0.0.1");
    let mut p = plane(mode);
    p.apply(&table(vec![service(
        "web",
        vip,
        SchedulerKind::Rr,
        &[(a.addr, 1)],
    )]));
    let (mut s, name) = open(vip).await;
    assert_eq!(name, "a");
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let (mut rd, mut wr) = s.split();
    let send = async {
        wr.write_all(&big).await.unwrap();
        // half-close: the back end still answers afterwards
        wr.shutdown().await.unwrap();
    };
    let recv = async {
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = step("transfer", async { tokio::join!(send, recv) }).await;
    assert_eq!(got.len(), big.len() + 4);
    assert!(got[..big.len()] == big[..], "echoed bytes differ");
    assert_eq!(&got[big.len()..], b"bye\n");
    eventually("connection gone", || {
        let st = &p.stats()[0];
        p.connections().is_empty()
            && st.counters.active + st.counters.inactive == 0
            && st.reals[0].counters.active + st.reals[0].counters.inactive == 0
    })
    .await;
    let st = p.stats();
    assert_eq!(st[0].counters.bytes_in, big.len() as u64);
    assert_eq!(st[0].counters.bytes_out, big.len() as u64 + 2 + 4);
}

#[tokio::test]
async fn half_close_with_splice() {
    bounded(half_close(SpliceMode::On)).await;
}

#[tokio::test]
async fn half_close_with_copy() {
    bounded(half_close(SpliceMode::Off)).await;
}

#[tokio::test]
async fn half_close_with_auto() {
    bounded(half_close(SpliceMode::Auto)).await;
}

async fn proxy_header(version: ProxyProtocol, ip: &str) -> (Vec<u8>, SocketAddr, SocketAddr) {
    let rec = proxy_header_backend().await;
    let vip = free_tcp(ip);
    let mut p = plane(SpliceMode::Auto);
    let mut s = service("pp", vip, SchedulerKind::Rr, &[(rec.addr, 1)]);
    s.proxy_protocol = Some(version);
    let r = p.apply(&table(vec![s]));
    assert!(r.is_ok(), "{:?}", r.errors);
    let mut c = TcpStream::connect(vip).await.unwrap();
    let client = c.local_addr().unwrap();
    let mut got = Vec::new();
    step("header back", c.read_to_end(&mut got)).await.unwrap();
    (got, client, vip)
}

#[tokio::test]
async fn proxy_protocol_v1_reaches_the_back_end() {
    bounded(async {
        let (got, client, vip) = proxy_header(ProxyProtocol::V1, "127.0.0.1").await;
        let want = format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            client.port(),
            vip.port()
        );
        assert_eq!(String::from_utf8_lossy(&got), want);
    })
    .await;
}

#[tokio::test]
async fn proxy_protocol_v2_reaches_the_back_end() {
    bounded(async {
        let (got, client, vip) = proxy_header(ProxyProtocol::V2, "127.0.0.1").await;
        let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        want.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        want.extend_from_slice(&client.port().to_be_bytes());
        want.extend_from_slice(&vip.port().to_be_bytes());
        assert_eq!(got, want);
    })
    .await;
}

fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[tokio::test]
async fn ipv6_service() {
    if !ipv6_loopback() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    bounded(async {
        let a = backend("a6", "::1").await;
        let b = backend("b6", "::1").await;
        let vip = free_tcp("::1");
        let mut p = plane(SpliceMode::Auto);
        let r = p.apply(&table(vec![service(
            "v6",
            vip,
            SchedulerKind::Rr,
            &[(a.addr, 1), (b.addr, 1)],
        )]));
        assert!(r.is_ok(), "{:?}", r.errors);
        let m = distribution(vip, 4).await;
        assert_eq!(counts(&m, &["a6", "b6"]), vec![2, 2]);
        let (mut s, _) = open(vip).await;
        echo(&mut s, "over v6").await;
        let conns = p.connections();
        assert!(conns
            .iter()
            .any(|c| c.virtual_addr == vip && c.client.is_ipv6()));
    })
    .await;
}

#[tokio::test]
async fn ipv6_proxy_protocol_v2() {
    if !ipv6_loopback() {
        return;
    }
    bounded(async {
        let (got, client, vip) = proxy_header(ProxyProtocol::V2, "::1").await;
        let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
        let one: std::net::Ipv6Addr = "::1".parse().unwrap();
        want.extend_from_slice(&one.octets());
        want.extend_from_slice(&one.octets());
        want.extend_from_slice(&client.port().to_be_bytes());
        want.extend_from_slice(&vip.port().to_be_bytes());
        assert_eq!(got, want);
        let (got, client, vip) = proxy_header(ProxyProtocol::V1, "::1").await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("PROXY TCP6 ::1 ::1 {} {}\r\n", client.port(), vip.port())
        );
    })
    .await;
}

#[tokio::test]
async fn bind_failure_is_reported_and_others_run() {
    bounded(async {
        let a = backend("a", "127.0.0.1").await;
        // held without SO_REUSEPORT: nobody else can bind it
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap();
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let r = p.apply(&table(vec![
            service("busy", busy, SchedulerKind::Rr, &[(a.addr, 1)]),
            service("fine", vip, SchedulerKind::Rr, &[(a.addr, 1)]),
        ]));
        assert_eq!(r.errors.len(), 1);
        match &r.errors[0] {
            DataPlaneError::Listen {
                service, listen, ..
            } => {
                assert_eq!(service, "busy");
                assert_eq!(*listen, busy);
            }
            e => panic!("unexpected {e:?}"),
        }
        assert!(r.errors[0].to_string().contains("busy"));
        assert_eq!(name_of(vip).await, "a");
        assert_eq!(p.stats().len(), 1);
        assert_eq!(p.stats()[0].name, "fine");
    })
    .await;
}

#[tokio::test]
async fn removed_service_stops_listening_but_connections_finish() {
    bounded(async {
        let a = backend("a", "127.0.0.1").await;
        let vip = free_tcp("127.0.0.1");
        let vip2 = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let keep = service("keep", vip2, SchedulerKind::Rr, &[(a.addr, 1)]);
        p.apply(&table(vec![
            service("gone", vip, SchedulerKind::Rr, &[(a.addr, 1)]),
            keep.clone(),
        ]));
        let (mut s, _) = open(vip).await;
        let (mut kept, _) = open(vip2).await;
        let r = p.apply(&table(vec![keep]));
        assert!(r.is_ok());
        echo(&mut s, "still flowing").await;
        echo(&mut kept, "untouched").await;
        step("listener closed", async {
            loop {
                if TcpStream::connect(vip).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(p.stats().len(), 1);
        assert_eq!(p.stats()[0].counters.conns, 1);
    })
    .await;
}

#[tokio::test]
async fn connection_table_and_counters() {
    bounded(async {
        let a = backend_with_bye_delay("a", "127.0.0.1", Duration::from_secs(1)).await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Off);
        p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Rr,
            &[(a.addr, 1)],
        )]));
        let (mut s, _) = open(vip).await;
        echo(&mut s, "12345").await;
        let client = s.local_addr().unwrap();
        eventually("bytes counted", || {
            p.connections()
                .first()
                .is_some_and(|c| c.bytes_in == 6 && c.bytes_out == 2 + 6)
        })
        .await;
        let conns = p.connections();
        assert_eq!(conns.len(), 1);
        let c = &conns[0];
        assert_eq!(c.client, client);
        assert_eq!(c.virtual_addr, vip);
        assert_eq!(c.real, a.addr);
        assert_eq!(c.state, "ESTABLISHED");
        assert!(c.expires_ms > 0);
        let st = &p.stats()[0];
        assert_eq!((st.counters.active, st.counters.inactive), (1, 0));
        assert_eq!(st.reals[0].counters.active, 1);
        // half-close: FIN_WAIT, inactive
        s.shutdown().await.unwrap();
        eventually("FIN_WAIT", || {
            p.connections()
                .first()
                .is_some_and(|c| c.state == "FIN_WAIT")
        })
        .await;
        eventually("inactive", || {
            let st = &p.stats()[0];
            (st.counters.active, st.counters.inactive) == (0, 1)
        })
        .await;
        // the server's reply, then the end
        assert_eq!(read_line(&mut s).await, "bye");
        drop(s);
        eventually("table empty", || {
            let st = &p.stats()[0];
            p.connections().is_empty() && st.counters.active + st.counters.inactive == 0
        })
        .await;
        let st = &p.stats()[0];
        assert_eq!(st.counters.conns, 1);
        assert_eq!(st.counters.bytes_in, 6);
        assert_eq!(st.counters.bytes_out, 2 + 6 + 4);
    })
    .await;
}

#[tokio::test]
async fn idle_timeout_closes_quiet_connections() {
    bounded(async {
        let a = backend("a", "127.0.0.1").await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut s = service("web", vip, SchedulerKind::Rr, &[(a.addr, 1)]);
        s.idle_timeout = Duration::from_millis(300);
        p.apply(&table(vec![s]));
        let (mut c, _) = open(vip).await;
        let mut buf = [0u8; 16];
        let r = step("idle close", c.read(&mut buf)).await;
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        eventually("table empty", || p.connections().is_empty()).await;
    })
    .await;
}

#[tokio::test]
async fn resets_and_garbage_do_not_hurt() {
    bounded(async {
        let a = backend("a", "127.0.0.1").await;
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&table(vec![service(
            "web",
            vip,
            SchedulerKind::Rr,
            &[(a.addr, 1)],
        )]));
        for i in 0..50u32 {
            let s = TcpStream::connect(vip).await.unwrap();
            if i % 2 == 0 {
                let garbage: Vec<u8> = (0..(i * 997) % 70000)
                    .map(|x| (x * 31 % 256) as u8)
                    .collect();
                let mut s = s;
                let _ = s.write_all(&garbage).await;
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(s);
            } else {
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                drop(s);
            }
        }
        // half-open client: connects and never says anything, then leaves
        let idle = TcpStream::connect(vip).await.unwrap();
        let (mut s, n) = open(vip).await;
        assert_eq!(n, "a");
        echo(&mut s, "alive").await;
        drop(idle);
        drop(s);
        eventually("table empty", || {
            let st = &p.stats()[0];
            p.connections().is_empty() && st.counters.active + st.counters.inactive == 0
        })
        .await;
    })
    .await;
}

#[test]
fn apply_from_a_plain_thread_and_drop_stops_everything() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt.block_on(backend("a", "127.0.0.1"));
    let vip = free_tcp("127.0.0.1");
    // no runtime on this thread
    let mut p: ProxyDataPlane = plane(SpliceMode::Auto);
    let r = p.apply(&table(vec![service(
        "web",
        vip,
        SchedulerKind::Rr,
        &[(a.addr, 1)],
    )]));
    assert!(r.is_ok());
    rt.block_on(bounded(async {
        let (mut s, n) = open(vip).await;
        assert_eq!(n, "a");
        echo(&mut s, "x").await;
        drop(p);
        // the data plane's connections and listeners are gone
        let mut buf = [0u8; 8];
        let r = step("closed", s.read(&mut buf)).await;
        assert!(matches!(r, Ok(0) | Err(_)));
        assert!(TcpStream::connect(vip).await.is_err());
    }));
}

#[tokio::test]
async fn bulk_both_ways_in_every_mode() {
    bounded(async {
        for mode in [SpliceMode::Off, SpliceMode::On, SpliceMode::Auto] {
            let a = backend("a", "127.0.0.1").await;
            let vip = free_tcp("127.0.0.1");
            let mut p = plane(mode);
            p.apply(&table(vec![service(
                "bulk",
                vip,
                SchedulerKind::Rr,
                &[(a.addr, 1)],
            )]));
            let mut clients = Vec::new();
            for k in 0..4u8 {
                clients.push(tokio::spawn(async move {
                    let (mut s, _) = open(vip).await;
                    let big: Vec<u8> = (0..3_000_000u32)
                        .map(|i| (i as u8).wrapping_mul(k + 1))
                        .collect();
                    let (mut rd, mut wr) = s.split();
                    let send = async {
                        wr.write_all(&big).await.unwrap();
                        wr.shutdown().await.unwrap();
                    };
                    let recv = async {
                        let mut got = Vec::new();
                        rd.read_to_end(&mut got).await.unwrap();
                        got
                    };
                    let ((), got) = tokio::join!(send, recv);
                    assert!(got[..big.len()] == big[..], "mode bytes differ");
                    assert_eq!(&got[big.len()..], b"bye\n");
                }));
            }
            for c in clients {
                step("bulk client", c).await.unwrap();
            }
        }
    })
    .await;
}

/// A listener that never accepts, its queue full: SYNs go unanswered.
fn black_hole() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fill.push(s);
        }
    }
    (l, fill, addr)
}

#[tokio::test]
async fn connect_timeout_moves_on_to_the_next_real_server() {
    bounded(async {
        let a = backend("a", "127.0.0.1").await;
        let (_hole, _fill, hole) = black_hole();
        let vip = free_tcp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut s = service("web", vip, SchedulerKind::Rr, &[(hole, 1), (a.addr, 1)]);
        s.connect_timeout = Duration::from_millis(300);
        p.apply(&table(vec![s]));
        for _ in 0..4 {
            assert_eq!(name_of(vip).await, "a");
        }
    })
    .await;
}

#[tokio::test]
async fn bytes_sent_before_the_real_server_answers_are_delivered() {
    bounded(async {
        let a = backend("a", "127.0.0.1").await;
        let dead = free_tcp("127.0.0.1");
        let vip = free_tcp("127.0.0.1");
        for mode in [SpliceMode::Off, SpliceMode::On, SpliceMode::Auto] {
            let mut p = plane(mode);
            p.apply(&table(vec![service(
                "web",
                vip,
                SchedulerKind::Rr,
                &[(dead, 1), (a.addr, 1)],
            )]));
            for i in 0..6 {
                let mut s = TcpStream::connect(vip).await.unwrap();
                // at once, before anything comes back (the proxy may read
                // it before the real server is even connected)
                let early = format!("early {i}\n");
                s.write_all(early.as_bytes()).await.unwrap();
                assert_eq!(step("greeting", read_line(&mut s)).await, "a");
                assert_eq!(step("echo", read_line(&mut s)).await, early.trim_end());
                s.shutdown().await.unwrap();
                assert_eq!(step("bye", read_line(&mut s)).await, "bye");
            }
            let st = &p.stats()[0];
            assert_eq!(st.counters.conns, 6);
            eventually("bytes counted", || p.stats()[0].counters.bytes_in == 6 * 8).await;
        }
    })
    .await;
}
