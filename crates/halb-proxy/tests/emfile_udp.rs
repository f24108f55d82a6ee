//! Out of file descriptors on a UDP service: the log says so (and does not
//! blame the real servers), nothing panics, and new flows open once
//! descriptors are back. (Its own test binary: it lowers the process's
//! descriptor limit and captures the log.)
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use halb_proxy::{ProxyDataPlane, ProxyOptions};
use halb_table::{DataPlane, Protocol, RealServer, SchedulerKind, Table, VirtualService};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn open_fds() -> u64 {
    // minus the directory being read
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64 - 1
}

/// The log, captured.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

#[test]
fn out_of_descriptors_is_logged_as_such_for_udp_flows() {
    let log = Log::default();
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
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
    let a = rt.block_on(udp_backend("a", "127.0.0.1"));
    let vip = free_udp("127.0.0.1");
    let mut s = VirtualService::new("dns", vip, Protocol::Udp, SchedulerKind::Rr);
    s.reals = vec![RealServer::new(a.addr, 1)];
    assert!(p.apply(&Table { services: vec![s] }).is_ok());

    // Client sockets made while descriptors are plentiful ...
    let clients: Vec<std::net::UdpSocket> = (0..8)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // ... then none left: a new flow's socket gets EMFILE
    setrlimit(Resource::RLIMIT_NOFILE, open_fds(), hard).unwrap();
    for c in &clients {
        let _ = c.send_to(b"anyone?", vip);
    }
    std::thread::sleep(Duration::from_millis(300));
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("out of file descriptors"), "{text}");
    assert!(!text.contains("no real server available"), "{text}");
    assert!(
        !text.contains("cannot open a UDP flow to real server"),
        "{text}"
    );

    // descriptors back: flows open again
    rt.block_on(bounded(async {
        let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        step("answer", async {
            c.send_to(b"back", vip).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, _) = c.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"a:back");
        })
        .await;
    }));
    assert!(p.stats()[0].udp_flows >= 1);
}
