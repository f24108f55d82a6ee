//! UDP flows through the proxy on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_proxy::SpliceMode;
use halb_table::{DataPlane, Protocol, RealServer, SchedulerKind, Table, VirtualService};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

fn udp_service(listen: SocketAddr, reals: &[SocketAddr], timeout: Duration) -> Table {
    let mut s = VirtualService::new("dns", listen, Protocol::Udp, SchedulerKind::Rr);
    s.udp_timeout = timeout;
    s.reals = reals.iter().map(|&a| RealServer::new(a, 1)).collect();
    Table { services: vec![s] }
}

/// Send `msg` from `sock` to `vip`; the answer must come from `vip`.
async fn ask(sock: &UdpSocket, vip: SocketAddr, msg: &str) -> String {
    step("UDP answer", async {
        sock.send_to(msg.as_bytes(), vip).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let (n, from) = sock.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, vip, "reply not from the virtual address");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    })
    .await
}

fn who(answer: &str) -> &str {
    answer.split(':').next().unwrap()
}

#[tokio::test]
async fn flows_stick_reply_from_the_vip_and_expire() {
    bounded(async {
        let a = udp_backend("a", "127.0.0.1").await;
        let b = udp_backend("b", "127.0.0.1").await;
        let vip = free_udp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let r = p.apply(&udp_service(
            vip,
            &[a.addr, b.addr],
            Duration::from_millis(400),
        ));
        assert!(r.is_ok(), "{:?}", r.errors);

        let c1 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let c2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let first = ask(&c1, vip, "q1").await;
        assert!(first.ends_with(":q1"));
        let s1 = who(&first).to_string();
        // the flow sticks
        for i in 0..5 {
            assert_eq!(who(&ask(&c1, vip, &format!("again{i}")).await), s1);
        }
        // a second client is a second flow, on the other server (rr)
        let s2 = who(&ask(&c2, vip, "hello").await).to_string();
        assert_ne!(s1, s2);

        let conns = p.connections();
        assert_eq!(conns.len(), 2, "{conns:?}");
        assert!(conns
            .iter()
            .all(|c| c.state == "UDP" && c.virtual_addr == vip));
        let c1_addr = c1.local_addr().unwrap();
        let e = conns.iter().find(|c| c.client == c1_addr).unwrap();
        assert_eq!(e.bytes_in, (2 + 5 * 6) as u64);
        assert!(e.expires_ms <= 400);

        eventually("counters", || {
            let st = &p.stats()[0];
            st.counters.packets_in == 7 && st.counters.packets_out == 7
        })
        .await;
        let st = &p.stats()[0];
        assert_eq!(st.counters.conns, 2);
        assert_eq!(st.counters.inactive, 2);
        assert_eq!(st.counters.active, 0);
        assert_eq!(
            st.reals.iter().map(|r| r.counters.packets_in).sum::<u64>(),
            7
        );

        // idle for longer than the timeout: both flows go
        eventually("flows expired", || p.connections().is_empty()).await;
        eventually("gauges back to 0", || {
            let st = &p.stats()[0];
            st.counters.inactive == 0 && st.reals.iter().all(|r| r.counters.inactive == 0)
        })
        .await;
        // and the client gets a new flow
        let again = ask(&c1, vip, "back").await;
        assert!(again.ends_with(":back"));
        assert_eq!(p.stats()[0].counters.conns, 3);
    })
    .await;
}

#[tokio::test]
async fn a_busy_flow_does_not_expire() {
    bounded(async {
        let a = udp_backend("a", "127.0.0.1").await;
        let vip = free_udp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&udp_service(vip, &[a.addr], Duration::from_millis(300)));
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..12 {
            ask(&c, vip, &format!("{i}")).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(p.stats()[0].counters.conns, 1);
    })
    .await;
}

#[tokio::test]
async fn removing_the_service_ends_its_flows() {
    bounded(async {
        let a = udp_backend("a", "127.0.0.1").await;
        let vip = free_udp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&udp_service(vip, &[a.addr], Duration::from_secs(60)));
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        ask(&c, vip, "x").await;
        assert_eq!(p.connections().len(), 1);
        let r = p.apply(&Table::default());
        assert!(r.is_ok());
        eventually("flows gone", || p.connections().is_empty()).await;
        assert!(p.stats().is_empty());
    })
    .await;
}

#[tokio::test]
async fn dead_udp_real_server_does_not_break_the_flow_table() {
    bounded(async {
        let dead = free_udp("127.0.0.1");
        let vip = free_udp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        p.apply(&udp_service(vip, &[dead], Duration::from_secs(5)));
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..5 {
            c.send_to(b"anyone?", vip).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ICMP port unreachable is ignored; one flow, still there
        assert_eq!(p.connections().len(), 1);
        // garbage of every size
        for n in [0usize, 1, 1500, 65000] {
            let _ = c.send_to(&vec![0xAB; n], vip).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.stats()[0].counters.conns, 1);
    })
    .await;
}

#[tokio::test]
async fn udp_over_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return;
    }
    bounded(async {
        let a = udp_backend("a6", "::1").await;
        let vip = free_udp("::1");
        let mut p = plane(SpliceMode::Auto);
        let r = p.apply(&udp_service(vip, &[a.addr], Duration::from_secs(5)));
        assert!(r.is_ok(), "{:?}", r.errors);
        let c = UdpSocket::bind("[::1]:0").await.unwrap();
        assert_eq!(ask(&c, vip, "v6").await, "a6:v6");
    })
    .await;
}

#[tokio::test]
async fn the_flow_table_is_capped_and_the_oldest_idle_flow_goes_first() {
    bounded(async {
        const CAP: usize = 50;
        let a = udp_backend("a", "127.0.0.1").await;
        let vip = free_udp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut t = udp_service(vip, &[a.addr], Duration::from_secs(60));
        t.services[0].udp_max_flows = CAP as u32;
        let r = p.apply(&t);
        assert!(r.is_ok(), "{:?}", r.errors);
        let flows = |p: &halb_proxy::ProxyDataPlane| {
            let st = &p.stats()[0];
            (st.udp_flows as usize, st.udp_flows_evicted)
        };

        // the oldest client, idle from now on
        let old = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&old, vip, "old").await, "a:old");
        // 200 more sources, one after the other: each is answered, and the
        // table never holds more than the cap
        let mut clients = Vec::new();
        for i in 0..200 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let q = format!("c{i}");
            assert_eq!(ask(&c, vip, &q).await, format!("a:{q}"));
            let (n, _) = flows(&p);
            assert!(n <= CAP, "{n} flows after {} sources", i + 2);
            clients.push(c);
        }
        assert_eq!(flows(&p), (CAP, 201 - CAP as u64));
        // the flows left are the 50 most recent; the evicted ones' sockets
        // close as their tasks end
        eventually("evicted flows gone", || p.connections().len() == CAP).await;
        let conns = p.connections();
        let old_addr = old.local_addr().unwrap();
        assert!(!conns.iter().any(|c| c.client == old_addr));
        for c in &clients[200 - CAP..] {
            let addr = c.local_addr().unwrap();
            assert!(conns.iter().any(|x| x.client == addr), "{addr} evicted");
        }
        // a busy flow is not the oldest idle one: keep one early client
        // talking while new ones come
        let keep = &clients[200 - CAP];
        let mut more = Vec::new();
        for i in 0..(CAP + 10) {
            assert!(ask(keep, vip, "still here").await.ends_with("still here"));
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            assert!(ask(&c, vip, &format!("n{i}"))
                .await
                .ends_with(&format!("n{i}")));
            more.push(c);
        }
        let keep_addr = keep.local_addr().unwrap();
        eventually("table settled", || p.connections().len() == CAP).await;
        assert!(p.connections().iter().any(|c| c.client == keep_addr));

        // a burst from 200 sources at once: still within the cap
        let mut burst = Vec::new();
        for i in 0..200 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.send_to(format!("b{i}").as_bytes(), vip).await.unwrap();
            burst.push(c);
        }
        // until the burst is worked off (no eviction for 300 ms)
        let mut last = flows(&p).1;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = flows(&p).1;
            assert!(flows(&p).0 <= CAP);
            if now == last {
                break;
            }
            last = now;
        }
        // once the evicted flows' sockets have closed (until then new flows
        // wait and their datagram is dropped, by design: see udp.rs), a new
        // client gets its answer at its first datagram
        eventually("evicted flows closed", || p.connections().len() <= CAP).await;
        let fresh = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&fresh, vip, "fresh").await, "a:fresh");
        assert!(flows(&p).0 <= CAP);

        // the global cap, lowered below the service's: enforced at once
        let (before, evicted) = flows(&p);
        assert_eq!(before, CAP);
        assert_eq!(p.set_udp_max_flows(20), 20);
        assert_eq!(p.udp_flows(), 20);
        let (n, after) = flows(&p);
        assert_eq!(n, 20);
        assert_eq!(after, evicted + (CAP as u64 - 20));
        eventually("evicted flows closed", || p.connections().len() <= 20).await;
        let fresh2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(ask(&fresh2, vip, "fresh2").await, "a:fresh2");
        assert_eq!(p.udp_flows(), 20);

        // removing the service gives its places back
        p.apply(&Table::default());
        eventually("no flows", || p.udp_flows() == 0).await;
    })
    .await;
}

#[tokio::test]
async fn a_lowered_service_cap_evicts_at_once() {
    bounded(async {
        let a = udp_backend("a", "127.0.0.1").await;
        let vip = free_udp("127.0.0.1");
        let mut p = plane(SpliceMode::Auto);
        let mut t = udp_service(vip, &[a.addr], Duration::from_secs(60));
        p.apply(&t);
        let mut clients = Vec::new();
        for i in 0..30 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            ask(&c, vip, &format!("{i}")).await;
            clients.push(c);
        }
        assert_eq!(p.stats()[0].udp_flows, 30);
        t.services[0].udp_max_flows = 10;
        p.apply(&t);
        let st = &p.stats()[0];
        assert_eq!((st.udp_flows, st.udp_flows_evicted), (10, 20));
        eventually("registry follows", || p.connections().len() == 10).await;
        // the 10 most recent stay
        let conns = p.connections();
        for c in &clients[20..] {
            let addr = c.local_addr().unwrap();
            assert!(conns.iter().any(|x| x.client == addr), "{addr} evicted");
        }
    })
    .await;
}
