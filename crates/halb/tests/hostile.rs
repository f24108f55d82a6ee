//! Hostile back ends against the real `halb` daemon: 60 real servers that
//! accept and never answer, trickle a response a byte every 100 ms, send
//! an endless body, or send garbage, all checked by HTTP every 200 ms.
//! They must all be down, cannot stall the engine (a healthy real server
//! in the same daemon still goes down and comes back when it should, and
//! every hostile one keeps being probed) and cannot grow its memory
//! (reads are bounded, every probe ends by its timeout).
//!
//! Every wait is a bounded poll; no timing is asserted. Every hostile
//! connection is bounded (at most 10 s, at most 64 MiB written).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

use common::{free_port, poll, temp_dir, Daemon};

#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Accepts, reads, never writes.
    Silent,
    /// A valid status line, a byte every 100 ms.
    Trickle,
    /// A 200 head, then a body that does not end.
    Endless,
    /// Bytes that are not HTTP, then close.
    Garbage,
}

const MODES: [Hostile; 4] = [
    Hostile::Silent,
    Hostile::Trickle,
    Hostile::Endless,
    Hostile::Garbage,
];
const PER_MODE: usize = 15;

/// The longest any hostile connection lives.
const CONN_LIMIT: Duration = Duration::from_secs(10);

async fn hostile(mode: Hostile, accepted: Arc<AtomicU64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            accepted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CONN_LIMIT, misbehave(mode, s)).await;
            });
        }
    });
    addr
}

async fn misbehave(mode: Hostile, mut s: TcpStream) {
    let mut req = [0u8; 1024];
    let _ = s.read(&mut req).await;
    match mode {
        Hostile::Silent => {
            // Hold the connection open; read whatever comes.
            while s.read(&mut req).await.is_ok_and(|n| n > 0) {}
        }
        Hostile::Trickle => {
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
                .iter()
                .cycle()
                .take(600)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
            }
        }
        Hostile::Endless => {
            if s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.is_err() {
                return;
            }
            let chunk = vec![b'O'; 16 * 1024];
            for _ in 0..4096 {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Hostile::Garbage => {
            let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
            let _ = s.write_all(&junk).await;
        }
    }
}

const HEALTHY: u8 = 0;
const FAILING: u8 = 1;

/// A well-behaved back end: `/health` 200 OK, or 503 while failing.
async fn good(mode: Arc<AtomicU8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mode = mode.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let reply: &[u8] = if mode.load(Ordering::Relaxed) == HEALTHY {
                    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nOK\n"
                } else {
                    b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = s.write_all(reply).await;
            });
        }
    });
    addr
}

/// The daemon's resident set in KiB (`VmRSS` in /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn check(timeout: &str) -> String {
    format!(
        "check = {{ type = \"http\", path = \"/health\", body_contains = \"OK\", \
         interval = \"200ms\", timeout = \"{timeout}\", rise = 1, fall = 1 }}\n"
    )
}

#[test]
fn hostile_back_ends_cannot_stall_the_engine_or_grow_its_memory() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counters: Vec<Arc<AtomicU64>> = (0..MODES.len() * PER_MODE)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let hostiles: Vec<(Hostile, SocketAddr)> = rt.block_on(async {
        let mut v = Vec::new();
        for (i, c) in counters.iter().enumerate() {
            let mode = MODES[i % MODES.len()];
            v.push((mode, hostile(mode, c.clone()).await));
        }
        v
    });
    let mode = Arc::new(AtomicU8::new(HEALTHY));
    let good_addr = rt.block_on(good(mode.clone()));

    let mut config = format!(
        "[[virtual_service]]\nname = \"hostile\"\nlisten = \"127.0.0.1:{}\"\n{}",
        free_port(),
        check("500ms")
    );
    for (_, a) in &hostiles {
        config.push_str(&format!(
            "\n  [[virtual_service.real_server]]\n  address = \"{a}\"\n"
        ));
    }
    config.push_str(&format!(
        "\n[[virtual_service]]\nname = \"good\"\nlisten = \"127.0.0.1:{}\"\n{}\
         real_server = [{{ address = \"{good_addr}\" }}]\n",
        free_port(),
        check("500ms")
    ));
    let d = Daemon::start(&temp_dir("hostile"), &config);

    // Every hostile real server is down, with the probe's reason.
    let all_down = poll(|| {
        let st = d.status()?;
        let h = st["health"].as_array()?;
        let down = hostiles.iter().all(|(_, a)| {
            h.iter().any(|e| {
                e["real"] == a.to_string()
                    && e["health"] == "down"
                    && e["reason"].as_str().is_some_and(|r| !r.is_empty())
            })
        });
        down.then_some(st)
    });
    let st = all_down.unwrap_or_else(|| {
        panic!(
            "not every hostile back end went down: {:#}\n{}",
            d.status().unwrap_or_default(),
            d.log()
        )
    });
    for (m, a) in &hostiles {
        let e = st["health"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["real"] == a.to_string())
            .unwrap();
        let reason = e["reason"].as_str().unwrap();
        let expected = match m {
            Hostile::Silent | Hostile::Trickle => "timed out after 500ms",
            Hostile::Endless => "exceeds 64 KiB",
            Hostile::Garbage => "malformed response",
        };
        assert!(reason.contains(expected), "{m:?} {a}: {reason}");
    }
    d.wait_health(good_addr, "up");
    let rss_before = rss_kib(d.child.id());
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();

    // The engine still follows a well-behaved server, both ways, several
    // times while the hostile probes run.
    for _ in 0..3 {
        mode.store(FAILING, Ordering::Relaxed);
        d.wait_health(good_addr, "down");
        mode.store(HEALTHY, Ordering::Relaxed);
        d.wait_health(good_addr, "up");
    }
    // Every hostile server is probed again, twice, after the first round
    // (no probe stuck forever, none starved); a bounded poll, no timing.
    let again = poll(|| {
        counters
            .iter()
            .zip(&before)
            .all(|(c, b)| c.load(Ordering::Relaxed) >= b + 2)
            .then_some(())
    });
    if again.is_none() {
        let stuck: Vec<String> = counters
            .iter()
            .zip(&before)
            .zip(&hostiles)
            .filter(|((c, b), _)| c.load(Ordering::Relaxed) < **b + 2)
            .map(|(_, (m, a))| format!("{m:?} {a}"))
            .collect();
        panic!("not probed again: {stuck:?}\n{}", d.log());
    }
    let rss_after = rss_kib(d.child.id());
    eprintln!("halb RSS: {rss_before} KiB after the first round, {rss_after} KiB at the end");
    // Bounded reads: 60 probes in flight hold at most 64 KiB each.
    assert!(
        rss_after < rss_before + 32 * 1024,
        "halb grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(d.status().is_some(), "halb stopped answering\n{}", d.log());
}
