//! Health checks end to end, as a user runs them: the real `halb` binary
//! in front of small HTTP back ends on loopback that answer `/health`
//! with 200 OK, or 503 when switched to failing, or stop listening. Every
//! wait is a bounded poll; no timing is asserted.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{free_port, poll, poll_for, temp_dir, Daemon, HALB};

const HEALTHY: u8 = 0;
const FAILING: u8 = 1;
const STOPPED: u8 = 2;

/// A back end: `GET /health` answers 200 "OK" (or 503 while failing);
/// any other first line starts line mode: each line is answered with the
/// name, `echo X` with `name X` (a long-lived connection).
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    quit: Arc<AtomicBool>,
}

impl Backend {
    fn start(name: &'static str) -> Backend {
        Backend::start_on(name, "127.0.0.1:0")
    }

    /// On a fixed address (the example's ports).
    fn start_on(name: &'static str, addr: &str) -> Backend {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("{name}: bind {addr}: {e}"));
        let addr = l.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(HEALTHY));
        let quit = Arc::new(AtomicBool::new(false));
        let (m, q) = (mode.clone(), quit.clone());
        std::thread::spawn(move || {
            let mut listener = Some(l);
            while !q.load(Ordering::Relaxed) {
                if m.load(Ordering::Relaxed) == STOPPED {
                    listener = None; // closed: connections are refused
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match TcpListener::bind(addr) {
                        Ok(l) => listener.insert(l),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    },
                };
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((s, _)) => {
                        let m = m.clone();
                        std::thread::spawn(move || serve(name, s, &m));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Backend {
            name,
            addr,
            mode,
            quit,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
    }
}

fn serve(name: &str, s: TcpStream, mode: &AtomicU8) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    let mut first = String::new();
    if r.read_line(&mut first).is_err() {
        return;
    }
    if first.starts_with("GET ") {
        // Read the request head, answer, close.
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
            line.clear();
        }
        let reply = if first.starts_with("GET /health ") && mode.load(Ordering::Relaxed) == HEALTHY
        {
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nOK\n"
        } else {
            "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nFAIL\n"
        };
        let _ = w.write_all(reply.as_bytes());
        return;
    }
    let mut line = first;
    loop {
        let reply = match line.trim().strip_prefix("echo ") {
            Some(rest) => format!("{name} {rest}\n"),
            None => format!("{name}\n"),
        };
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
        line.clear();
        if !r.read_line(&mut line).is_ok_and(|n| n > 0) {
            return;
        }
    }
}

/// `halb run` with `config`, in a directory of its own.
fn start(tag: &str, config: &str) -> Daemon {
    Daemon::start(&temp_dir(&format!("health-{tag}")), config)
}

/// `halb list --json`.
fn status(d: &Daemon) -> serde_json::Value {
    d.status()
        .unwrap_or_else(|| panic!("halb list --json failed:\n{}", d.log()))
}

/// The health entry of `real`, from `halb list --json`.
fn health(d: &Daemon, real: SocketAddr) -> serde_json::Value {
    let st = status(d);
    st["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["real"] == real.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no health for {real} in {st:#}"))
}

/// One new connection through the VIP: the name of the back end that
/// answered, or `None` if none did.
fn who(vip: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"who\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    let name = line.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The back ends that answer `n` new connections.
fn spread(vip: SocketAddr, n: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..n).filter_map(|_| who(vip)).collect();
    names.sort();
    names.dedup();
    names
}

fn config(port: u16, on_down: &str, fallback: Option<SocketAddr>, reals: &[&Backend]) -> String {
    let mut c = format!(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:{port}"
scheduler = "wrr"
on_down = "{on_down}"
"#
    );
    if let Some(f) = fallback {
        c.push_str(&format!("fallback = \"{f}\"\n"));
    }
    c.push_str(
        r#"
  [virtual_service.check]
  type = "http"
  path = "/health"
  expect_status = [200]
  body_contains = "OK"
  interval = "200ms"
  timeout = "500ms"
  rise = 2
  fall = 2
"#,
    );
    for r in reals {
        c.push_str(&format!(
            "\n  [[virtual_service.real_server]]\n  address = \"{}\"\n",
            r.addr
        ));
    }
    c
}

#[test]
fn failing_server_leaves_the_pool_and_returns_after_rise() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let port = free_port();
    let vip: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = start("remove", &config(port, "remove", None, &[&a, &b, &c]));
    for r in [&a, &b, &c] {
        d.wait_health(r.addr, "up");
    }
    let all = poll(|| {
        let s = spread(vip, 9);
        (s.len() == 3).then_some(s)
    });
    assert_eq!(all.unwrap(), ["a", "b", "c"]);

    // b fails its check: after `fall` failures it leaves the table.
    b.set(FAILING);
    let h = d.wait_health(b.addr, "down");
    assert!(h["reason"].as_str().unwrap().contains("503"), "{h:#}");
    assert!(h["transitions"].as_u64().unwrap() >= 2, "{h:#}");
    for _ in 0..12 {
        assert_ne!(
            who(vip).as_deref(),
            Some(b.name),
            "new connection sent to the failed server"
        );
    }
    let st = status(&d);
    let web = &st["services"][0];
    assert!(
        !web["reals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["addr"] == b.addr.to_string()),
        "{st:#}"
    );
    let text = String::from_utf8(d.list(&[]).stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.contains(&b.addr.to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("Down") && row.contains("removed"), "{text}");
    assert!(text.contains("Health"), "{text}");
    assert!(
        d.log().contains(&format!("real server {} is down", b.addr)),
        "{}",
        d.log()
    );

    // b recovers: back after `rise` successes, with its weight.
    b.set(HEALTHY);
    d.wait_health(b.addr, "up");
    let back = poll(|| {
        let s = spread(vip, 9);
        s.contains(&"b".to_owned()).then_some(s)
    });
    assert!(back.is_some(), "b never received traffic again");
    assert!(status(&d)["health_transitions"].as_u64().unwrap() >= 5);
}

#[test]
fn quiescent_keeps_a_long_lived_connection_while_new_ones_avoid_the_server() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let port = free_port();
    let vip: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = start("quiescent", &config(port, "quiescent", None, &[&a, &b]));
    d.wait_health(a.addr, "up");
    d.wait_health(b.addr, "up");

    // A long-lived connection; find which back end holds it.
    let mut long = TcpStream::connect(vip).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(long.try_clone().unwrap());
    let mut echo = |msg: &str| -> String {
        long.write_all(format!("echo {msg}\n").as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.trim().to_owned()
    };
    let first = echo("1");
    let (held, other) = if first.starts_with("a ") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(first, format!("{} 1", held.name));

    // The back end stops listening: its check fails, it goes quiescent.
    held.set(STOPPED);
    let h = d.wait_health(held.addr, "down");
    assert!(!h["reason"].as_str().unwrap().is_empty(), "{h:#}");
    let st = status(&d);
    let row = st["services"][0]["reals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["addr"] == held.addr.to_string())
        .cloned()
        .unwrap();
    assert_eq!(row["weight"], 0, "{st:#}");

    // New connections avoid it; the established one still flows.
    for _ in 0..8 {
        assert_eq!(who(vip).as_deref(), Some(other.name));
    }
    assert_eq!(echo("2"), format!("{} 2", held.name));

    // It comes back: weight restored, traffic returns.
    held.set(HEALTHY);
    d.wait_health(held.addr, "up");
    let back = poll(|| spread(vip, 8).contains(&held.name.to_owned()).then_some(()));
    assert!(back.is_some(), "{} never received traffic again", held.name);
    assert_eq!(echo("3"), format!("{} 3", held.name));
}

#[test]
fn all_down_sends_new_connections_to_the_fallback() {
    all_down_uses_fallback("remove");
}

#[test]
fn all_quiescent_sends_new_connections_to_the_fallback() {
    all_down_uses_fallback("quiescent");
}

fn all_down_uses_fallback(on_down: &str) {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let sorry = Backend::start("sorry");
    let port = free_port();
    let vip: SocketAddr = ([127, 0, 0, 1], port).into();
    let d = start(
        &format!("fallback-{on_down}"),
        &config(port, on_down, Some(sorry.addr), &[&a, &b]),
    );
    d.wait_health(a.addr, "up");
    d.wait_health(b.addr, "up");
    let both = poll(|| (spread(vip, 6).len() == 2).then_some(()));
    assert!(both.is_some());

    a.set(FAILING);
    b.set(STOPPED);
    d.wait_health(a.addr, "down");
    d.wait_health(b.addr, "down");
    for _ in 0..4 {
        assert_eq!(who(vip).as_deref(), Some("sorry"));
    }

    // One returns: it takes the traffic again.
    a.set(HEALTHY);
    d.wait_health(a.addr, "up");
    let back = poll(|| (who(vip).as_deref() == Some("a")).then_some(()));
    assert!(back.is_some());
}

#[test]
fn reload_keeps_the_health_of_unchanged_checks() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let port = free_port();
    let d = start("reload", &config(port, "remove", None, &[&a, &b]));
    d.wait_health(a.addr, "up");
    d.wait_health(b.addr, "up");
    let before = health(&d, a.addr)["transitions"].as_u64().unwrap();

    // Change b's check only (another path): a keeps its state and count.
    let cfg = config(port, "remove", None, &[&a, &b]).replace(
        &format!("  address = \"{}\"\n", b.addr),
        &format!(
            "  address = \"{}\"\n  check = {{ path = \"/health?x\" }}\n",
            b.addr
        ),
    );
    std::fs::write(d.dir.join("halb.toml"), cfg).unwrap();
    let out = Command::new(HALB)
        .arg("reload")
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("health checks: 1 changed"), "{summary}");
    let h = health(&d, a.addr);
    assert_eq!(h["health"], "up", "{h:#}");
    assert_eq!(h["transitions"].as_u64().unwrap(), before);
    // b's new check starts over at its initial state (down), and stays
    // down: the back end answers 503 for /health?x.
    let hb = health(&d, b.addr);
    assert!(
        hb["check"].as_str().unwrap().contains("/health?x"),
        "{hb:#}"
    );
    assert_eq!(hb["health"], "down", "{hb:#}");
    assert_eq!(hb["transitions"], 0, "{hb:#}");
    let vip: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..6 {
        assert_eq!(who(vip).as_deref(), Some("a"));
    }
    assert_eq!(health(&d, b.addr)["health"], "down");
}

/// `halb run --config examples/health-http.toml`, as the example's header
/// says, over back ends on its ports (18081-18083): all three get
/// traffic through 127.0.0.1:8080; one failing `/health` leaves the pool
/// (after fall = 2 checks a second) and comes back after rise = 2.
/// (The demo in cli.rs uses 8080 too; test binaries run one at a time.)
#[test]
fn the_health_http_example_runs_as_documented() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/health-http.toml"
    );
    let backends = [
        Backend::start_on("b1", "127.0.0.1:18081"),
        Backend::start_on("b2", "127.0.0.1:18082"),
        Backend::start_on("b3", "127.0.0.1:18083"),
    ];
    let dir = temp_dir("health-example");
    let d = Daemon::start_file(&dir, Path::new(example));
    let vip: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    for b in &backends {
        let h = d.wait_health(b.addr, "up");
        assert_eq!(h["reason"], "HTTP 200", "{h:#}");
    }
    let all = poll_for(Duration::from_secs(10), || {
        let s = spread(vip, 9);
        (s.len() == 3).then_some(s)
    });
    assert_eq!(all.unwrap_or_default(), ["b1", "b2", "b3"], "{}", d.log());

    backends[1].set(FAILING);
    let h = d.wait_health(backends[1].addr, "down");
    assert_eq!(h["reason"], "HTTP 503", "{h:#}");
    for _ in 0..9 {
        let got = who(vip);
        assert!(
            matches!(got.as_deref(), Some("b1" | "b3")),
            "{got:?} with b2 failing\n{}",
            d.log()
        );
    }
    backends[1].set(HEALTHY);
    d.wait_health(backends[1].addr, "up");
    let back = poll_for(Duration::from_secs(10), || {
        spread(vip, 9).contains(&"b2".to_owned()).then_some(())
    });
    assert!(back.is_some(), "b2 never came back\n{}", d.log());
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
