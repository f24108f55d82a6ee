//! Loopback integration tests of the probes against small tokio servers,
//! friendly and hostile. Every test is bounded by a tokio timeout and
//! asserts outcomes, not timings.
#![allow(clippy::unwrap_used)]

use halb_health::probe::{http::parse_md5, run};
use halb_health::{
    CheckSpec, ExternalSpec, HttpMethod, HttpSpec, InitialState, ProbeOutcome, ProbeSpec, Timing,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the test server does with each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Reads the request, writes this response, closes.
    Respond(&'static str),
    /// Accepts and never reads or writes.
    Silent,
    /// Reads the request, then sends a valid response one byte per 200 ms.
    Trickle,
    /// Reads the request, sends a 200 head, then an endless body.
    Endless,
}

/// Starts a server; returns its address and the requests it received.
async fn server(behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move { handle(stream, behaviour, seen).await });
        }
    });
    (addr, requests)
}

async fn read_request(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn handle(mut stream: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Vec<String>>>) {
    match behaviour {
        Behaviour::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Behaviour::Respond(response) => {
            let req = read_request(&mut stream).await;
            seen.lock().unwrap().push(req);
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Behaviour::Trickle => {
            read_request(&mut stream).await;
            for b in b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK" {
                if stream.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Behaviour::Endless => {
            read_request(&mut stream).await;
            if stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await.is_err() {
                return;
            }
            let block = [b'a'; 4096];
            while stream.write_all(&block).await.is_ok() {}
        }
    }
}

fn spec(target: SocketAddr, probe: ProbeSpec, timeout_ms: u64) -> CheckSpec {
    CheckSpec {
        target,
        probe,
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(timeout_ms),
            rise: 1,
            fall: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        },
    }
}

/// Runs a probe under an outer bound far above its own timeout.
async fn probe(spec: &CheckSpec) -> ProbeOutcome {
    tokio::time::timeout(Duration::from_secs(20), run(spec))
        .await
        .expect("the probe ended by its own timeout")
}

fn health_ok() -> HttpSpec {
    let mut h = HttpSpec::get("/health");
    h.body_contains = Some("OK".into());
    h
}

async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn tcp_connect_and_refused() {
    let (addr, _) = server(Behaviour::Silent).await;
    let up = probe(&spec(addr, ProbeSpec::Tcp, 2000)).await;
    assert!(up.ok, "{up:?}");
    let down = probe(&spec(closed_port().await, ProbeSpec::Tcp, 2000)).await;
    assert!(!down.ok && down.reason.contains("connect"), "{down:?}");
}

#[tokio::test]
async fn http_healthy_sends_host_and_accepts() {
    let (addr, requests) = server(Behaviour::Respond(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nOK\n",
    ))
    .await;
    let mut h = health_ok();
    h.host = Some("app.example".into());
    let o = probe(&spec(addr, ProbeSpec::Http(h), 2000)).await;
    assert!(o.ok, "{o:?}");
    let req = requests.lock().unwrap()[0].clone();
    assert!(req.starts_with("GET /health HTTP/1.0\r\n"), "{req}");
    assert!(req.contains("\r\nHost: app.example\r\n"), "{req}");
}

#[tokio::test]
async fn http_body_until_close_and_md5() {
    let (addr, _) = server(Behaviour::Respond("HTTP/1.0 200 OK\r\n\r\nall OK")).await;
    let mut h = health_ok();
    h.body_md5 = parse_md5("2b8d9ac4a0b9d2d4a3c8e8c2f1b0e0a0");
    let o = probe(&spec(addr, ProbeSpec::Http(h.clone()), 2000)).await;
    assert!(!o.ok && o.reason.contains("MD5"), "{o:?}");
    // The reason names the real digest, genhash-style: use it.
    let real = o
        .reason
        .split("MD5 ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    h.body_md5 = parse_md5(real);
    let o = probe(&spec(addr, ProbeSpec::Http(h), 2000)).await;
    assert!(o.ok, "{o:?}");
}

#[tokio::test]
async fn http_500_and_expected_ranges() {
    let (addr, _) = server(Behaviour::Respond(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nOK",
    ))
    .await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 2000)).await;
    assert_eq!((o.ok, o.reason.as_str()), (false, "HTTP 500"));
    let mut h = health_ok();
    h.expect_status = vec![200..=200, 500..=599];
    let o = probe(&spec(addr, ProbeSpec::Http(h), 2000)).await;
    assert!(o.ok, "{o:?}");
}

#[tokio::test]
async fn http_wrong_body() {
    let (addr, _) = server(Behaviour::Respond(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nERROR",
    ))
    .await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 2000)).await;
    assert!(!o.ok && o.reason.contains("lacks"), "{o:?}");
}

#[tokio::test]
async fn http_head_ignores_body_checks() {
    let (addr, requests) = server(Behaviour::Respond(
        "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
    ))
    .await;
    let mut h = health_ok();
    h.method = HttpMethod::Head;
    let o = probe(&spec(addr, ProbeSpec::Http(h), 2000)).await;
    assert!(o.ok, "{o:?}");
    assert!(requests.lock().unwrap()[0].starts_with("HEAD "));
}

#[tokio::test]
async fn http_never_answers_times_out() {
    let (addr, _) = server(Behaviour::Silent).await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 300)).await;
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
}

#[tokio::test]
async fn http_trickle_times_out() {
    let (addr, _) = server(Behaviour::Trickle).await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 500)).await;
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
}

#[tokio::test]
async fn http_endless_body_hits_the_cap_not_the_timeout() {
    let (addr, _) = server(Behaviour::Endless).await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 10_000)).await;
    assert!(!o.ok && o.reason.contains("64 KiB"), "{o:?}");
    // Without a body check the head is enough.
    let o = probe(&spec(addr, ProbeSpec::Http(HttpSpec::get("/")), 10_000)).await;
    assert!(o.ok, "{o:?}");
}

#[tokio::test]
async fn http_closed_port_and_garbage() {
    let o = probe(&spec(
        closed_port().await,
        ProbeSpec::Http(health_ok()),
        2000,
    ))
    .await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
    let (addr, _) = server(Behaviour::Respond("\x00\x01garbage\r\n\r\n")).await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 2000)).await;
    assert!(!o.ok && o.reason.contains("malformed"), "{o:?}");
    let (addr, _) = server(Behaviour::Respond("")).await;
    let o = probe(&spec(addr, ProbeSpec::Http(health_ok()), 2000)).await;
    assert!(!o.ok && o.reason.contains("closed"), "{o:?}");
}

fn sh(script: &str, dynamic_weight: bool) -> ProbeSpec {
    ProbeSpec::External(ExternalSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        service: None,
        dynamic_weight,
        pass_addresses: true,
    })
}

#[tokio::test]
async fn external_exit_codes() {
    let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert!(probe(&spec(target, sh("exit 0", false), 5000)).await.ok);
    let o = probe(&spec(target, sh("exit 1", true), 5000)).await;
    assert_eq!((o.ok, o.weight), (false, None));
    let o = probe(&spec(target, sh("exit 7", true), 5000)).await;
    assert_eq!((o.ok, o.weight), (true, Some(5)));
    let o = probe(&spec(target, sh("exit 7", false), 5000)).await;
    assert_eq!((o.ok, o.weight), (false, None));
    let o = probe(&spec(target, sh("kill -9 $$", false), 5000)).await;
    assert!(!o.ok, "{o:?}");
    let o = probe(&spec(
        target,
        ProbeSpec::External(ExternalSpec {
            program: "/nonexistent/check".into(),
            args: vec![],
            service: None,
            dynamic_weight: false,
            pass_addresses: true,
        }),
        5000,
    ))
    .await;
    assert!(!o.ok && o.reason.contains("spawn"), "{o:?}");
}

/// ldirectord's arguments: `CMD ARGS... VIP VPORT RIP RPORT`, and the same
/// in the environment; the script exits 0 only when all of them are right.
#[tokio::test]
async fn external_gets_the_virtual_service_and_the_real_server() {
    let target: SocketAddr = "127.0.0.1:18081".parse().unwrap();
    let check = |service: Option<SocketAddr>, script: &str| {
        ProbeSpec::External(ExternalSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into(), "check".into()],
            service,
            dynamic_weight: false,
            pass_addresses: true,
        })
    };
    let both = r#"[ "$*" = "192.0.2.10 80 127.0.0.1 18081" ] && [ "$HALB_VIP:$HALB_VPORT" = "192.0.2.10:80" ] && [ "$HALB_RIP:$HALB_RPORT" = "127.0.0.1:18081" ]"#;
    let vs: SocketAddr = "192.0.2.10:80".parse().unwrap();
    let o = probe(&spec(target, check(Some(vs), both), 5000)).await;
    assert!(o.ok, "{o:?}");
    // A different virtual service: the same script fails.
    let other: SocketAddr = "192.0.2.11:80".parse().unwrap();
    assert!(
        !probe(&spec(target, check(Some(other), both), 5000))
            .await
            .ok
    );
    // A firewall-mark service has no VIP: only RIP RPORT.
    let fwm = r#"[ "$*" = "127.0.0.1 18081" ] && [ -z "${HALB_VIP+set}" ]"#;
    let o = probe(&spec(target, check(None, fwm), 5000)).await;
    assert!(o.ok, "{o:?}");
}

/// A hung script is killed at the timeout with its children.
#[tokio::test]
async fn external_timeout_kills_the_process_group() {
    let dir = std::env::temp_dir().join(format!("halb-health-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("child.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let o = probe(&spec(
        "127.0.0.1:1".parse().unwrap(),
        sh(&script, false),
        500,
    ))
    .await;
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    // Gone, or a zombie waiting for its (new) parent to reap it.
    let mut dead = false;
    for _ in 0..50 {
        match std::fs::read_to_string(&stat) {
            Err(_) => dead = true,
            Ok(s) => {
                dead = s
                    .rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            }
        }
        if dead {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(dead, "the script's child survived the timeout");
}

#[tokio::test]
async fn forced_states() {
    let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert!(probe(&spec(target, ProbeSpec::On, 100)).await.ok);
    assert!(!probe(&spec(target, ProbeSpec::Off, 100)).await.ok);
}
