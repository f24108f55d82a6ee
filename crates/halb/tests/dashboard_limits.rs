//! The dashboard (`[global] http_listen`) against clients that hold its
//! connections (issue 16, item 1): idle connections beyond the cap are
//! closed at once and the others after the header timeout, a slow sender
//! is closed after the header timeout, and meanwhile `halb list` answers
//! and, once the idle ones are gone, so does a fresh `GET /api/v1/status`.
//!
//! Every loop is bounded in count and time; waits are bounded polls, and
//! no duration is asserted. Every socket is closed at the end.
#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, poll_for, temp_dir, Daemon, HALB};

/// halb's cap (`http::MAX_CONNECTIONS`).
const CAP: usize = 256;
/// How many idle connections the test opens: well beyond the cap.
const IDLE: usize = CAP + 150;

fn start(tag: &str) -> (Daemon, SocketAddr) {
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[global]\nhttp_listen = \"{http}\"\n\n[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{}\"\nscheduler = \"rr\"\n\n  [[virtual_service.real_server]]\n  address = \"127.0.0.1:{}\"\n",
        free_port(),
        free_port()
    );
    let d = Daemon::start(&temp_dir(tag), &config);
    (d, http)
}

/// `GET /api/v1/status` on a new connection: the response, if one came
/// within 5 s.
fn get_status(http: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8(out).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// `halb list` within 10 s (killed otherwise): whether it succeeded.
fn list_answers(socket: &Path) -> bool {
    let Ok(mut child) = Command::new(HALB)
        .arg("list")
        .arg("--socket")
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let done = poll_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
    match done {
        Some(st) => st.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

/// Whether the peer has closed `s` (EOF or reset), looking for at most
/// 1 ms.
fn closed(s: &mut TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_millis(1)));
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// `halb list` every 100 ms on a thread until `stop`, at most 600 times:
/// (answers, failures).
fn lister(d: &Daemon, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, u32)> {
    let socket = d.socket.clone();
    let ok = Arc::new(AtomicU32::new(0));
    let bad = Arc::new(AtomicU32::new(0));
    std::thread::spawn(move || {
        for _ in 0..600 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if list_answers(&socket) {
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                bad.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed))
    })
}

#[test]
fn idle_connections_beyond_the_cap_are_closed_and_the_dashboard_answers_again() {
    let (d, http) = start("http-idle");
    assert!(
        get_status(http).is_some(),
        "dashboard down before the test:\n{}",
        d.log()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let listing = lister(&d, stop.clone());

    // IDLE silent connections, opened within 20 s at most.
    let t0 = Instant::now();
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE);
    while idle.len() < IDLE && t0.elapsed() < Duration::from_secs(20) {
        if let Ok(s) = TcpStream::connect_timeout(&http, Duration::from_secs(2)) {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), IDLE, "could not open the idle connections");
    assert!(
        list_answers(&d.socket),
        "halb list with {IDLE} idle dashboard connections"
    );

    // Those beyond the cap are closed at once, the others by the header
    // timeout: all of them, within 30 s.
    let mut open: Vec<TcpStream> = idle;
    let all_closed = poll_for(Duration::from_secs(30), || {
        open.retain_mut(|s| !closed(s));
        open.is_empty().then_some(())
    });
    assert!(
        all_closed.is_some(),
        "{} of {IDLE} idle connections still open\n{}",
        open.len(),
        d.log()
    );
    drop(open);

    // A fresh client is answered again.
    let status = poll_for(Duration::from_secs(10), || get_status(http));
    let status = status.unwrap_or_else(|| panic!("no status after the flood\n{}", d.log()));
    let body = status.split("\r\n\r\n").nth(1).unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(json["services"][0]["listen"].is_string(), "{json}");

    stop.store(true, Ordering::Relaxed);
    let (ok, bad) = listing.join().unwrap();
    assert!(
        ok > 0 && bad == 0,
        "halb list during the flood: {ok} answers, {bad} failures"
    );
    // The cap refused some (the only source of this line), and said so.
    let log = d.log();
    assert!(
        log.contains("connections refused"),
        "the refusals are not logged:\n{log}"
    );
    // Rate-limited: far fewer lines than refusals.
    assert!(log.matches("connections refused").count() <= 5, "{log}");
}

#[test]
fn a_slow_sender_is_closed_after_the_header_timeout() {
    let (d, http) = start("http-slow");
    let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(2)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // A request head that never ends: a byte every 200 ms, at most 150
    // bytes (30 s), far beyond the 5 s header timeout.
    let head = format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: t\r\nX-Pad: {}",
        "a".repeat(200)
    );
    let mut sent = 0;
    let mut was_closed = false;
    for b in head.bytes().take(150) {
        if s.write_all(&[b]).is_err() || closed(&mut s) {
            was_closed = true;
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        was_closed,
        "a slow sender was still connected after {sent} bytes\n{}",
        d.log()
    );
    assert!(sent > 0, "closed before its first byte");
    drop(s);
    assert!(
        get_status(http).is_some(),
        "dashboard down after the slow sender\n{}",
        d.log()
    );
    assert!(list_answers(&d.socket));
}
