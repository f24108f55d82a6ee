//! End-to-end tests of the `halb` binary, as a user runs it: config
//! checking, `run` + `list` + `reload` against real TCP back ends on
//! loopback, signals, and `demo`.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, Daemon, HALB};

fn halb(args: &[&str]) -> Output {
    Command::new(HALB).args(args).output().unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("halb-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A back end that answers each line with `name`, and echoes lines that
/// start with `echo `, so a long-lived connection can be probed.
fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { break };
                    let reply = match line.strip_prefix("echo ") {
                        Some(rest) => format!("{name} {rest}\n"),
                        None => format!("{name}\n"),
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn ask(vip: SocketAddr, line: &str) -> String {
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut out = String::new();
    r.read_line(&mut out).unwrap();
    out.trim().to_string()
}

fn config(port: u16, reals: &[(SocketAddr, u32)]) -> String {
    let mut c = format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\nscheduler = \"wrr\"\n"
    );
    for (a, w) in reals {
        c.push_str(&format!(
            "\n  [[virtual_service.real_server]]\n  address = \"{a}\"\n  weight = {w}\n"
        ));
    }
    c
}

#[test]
fn check_config_accepts_every_example() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = halb(&["check-config", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1, "no examples in {}", dir.display());
    let out = halb(&[
        "check-config",
        dir.join("health-http.toml").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 real servers, 3 health checks"), "{text}");
}

#[test]
fn check_config_reports_every_error_and_exits_2() {
    let dir = tempdir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[virtual_service]]\nlisten = \"127.0.0.1:80\"\nscheduler = \"wrrr\"\n\n  [[virtual_service.real_server]]\n  address = \"127.0.0.1:81\"\n  weight = 70000\n",
    )
    .unwrap();
    let out = halb(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("scheduler"), "{err}");
    assert!(err.contains("bad.toml:7:"), "{err}");
    assert!(err.contains("weight"), "{err}");

    let good = dir.join("good.toml");
    std::fs::write(&good, config(8080, &[("127.0.0.1:81".parse().unwrap(), 1)])).unwrap();
    let out = halb(&["check-config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");

    // `run` with a bad config starts nothing and says so.
    let out = halb(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_list_reload_and_stop() {
    let dir = tempdir("run");
    let (a, b, c) = (backend("a"), backend("b"), backend("c"));
    let port = free_port();
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = dir.join("halb.toml");
    std::fs::write(&cfg, config(port, &[(a, 1), (b, 1), (c, 0)])).unwrap();
    let mut d = Daemon::start_file(&dir, &cfg);
    let socket = d.socket.clone();

    // The control socket is owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // c has weight 0: only a and b answer, alternately.
    let mut seen: Vec<String> = (0..4).map(|_| ask(vip, "hi")).collect();
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"]);

    // A long-lived connection stays up across reloads.
    let mut long = TcpStream::connect(vip).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut long_r = BufReader::new(long.try_clone().unwrap());
    let mut line = String::new();
    long.write_all(b"echo 1\n").unwrap();
    long_r.read_line(&mut line).unwrap();
    let long_backend = line.split_whitespace().next().unwrap().to_string();

    let out = d.list(&[]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains(&format!("TCP  {vip} wrr")), "{table}");
    assert!(table.contains(&format!("-> {c}")), "{table}");
    let json: serde_json::Value = serde_json::from_slice(&d.list(&["--json"]).stdout).unwrap();
    assert_eq!(json["services"][0]["reals"].as_array().unwrap().len(), 3);
    assert!(json["services"][0]["counters"]["conns"].as_u64().unwrap() >= 5);
    let conns = String::from_utf8(d.list(&["--connections"]).stdout).unwrap();
    assert!(conns.contains("ESTABLISHED"), "{conns}");
    let stats = String::from_utf8(d.list(&["--stats"]).stdout).unwrap();
    assert!(stats.contains("InBytes"), "{stats}");

    // Reload: drain a and b, bring c in. New connections go to c only,
    // the long-lived one keeps flowing.
    std::fs::write(&cfg, config(port, &[(a, 0), (b, 0), (c, 5)])).unwrap();
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains(&format!("real server {c} weight 0 -> 5")),
        "{summary}"
    );
    for _ in 0..3 {
        assert_eq!(ask(vip, "hi"), "c");
    }
    line.clear();
    long.write_all(b"echo 2\n").unwrap();
    long_r.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("{long_backend} 2"));

    // A bad config is rejected with its errors; the running one stays.
    std::fs::write(&cfg, "[[virtual_service]]\nlisten = 12\n").unwrap();
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("halb.toml:2:"), "{err}");
    assert_eq!(ask(vip, "hi"), "c");

    // SIGHUP reloads too.
    std::fs::write(&cfg, config(port, &[(a, 3), (b, 0), (c, 0)])).unwrap();
    d.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = String::from_utf8(d.list(&[]).stdout).unwrap();
        if t.lines()
            .any(|l| l.contains(&a.to_string()) && l.contains(" 3 "))
        {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload:\n{t}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(vip, "hi"), "a");

    // SIGTERM: clean exit, control socket removed.
    drop(long_r);
    drop(long);
    d.signal("-TERM");
    assert!(d.wait_exit().success());
    assert!(!socket.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_without_daemon_says_how_to_fix() {
    let out = halb(&["list", "--socket", "/nonexistent/halb.sock"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is `halb run` or `halb demo` running?"),
        "{err}"
    );
}

fn http_get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.rsplit("\r\n\r\n").next().unwrap().trim().to_string()
}

fn http_raw(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn demo_spreads_by_weight_and_stops_on_ctrl_c() {
    let dir = tempdir("demo");
    let socket = dir.join("demo.sock");
    let child = Command::new(HALB)
        .args(["demo", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut d = Daemon::attach(child, &dir, Path::new("(embedded demo)"), &socket);

    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..12 {
        *counts.entry(http_get("127.0.0.1:8080")).or_insert(0) += 1;
    }
    let counts: Vec<_> = counts.into_iter().collect();
    assert_eq!(
        counts,
        [
            ("backend-1".to_string(), 2),
            ("backend-2".to_string(), 4),
            ("backend-3".to_string(), 6)
        ]
    );
    let table = String::from_utf8(d.list(&[]).stdout).unwrap();
    assert!(table.contains("TCP  127.0.0.1:8080 wrr"), "{table}");

    // The dashboard and its JSON API.
    let page = http_raw("127.0.0.1:9090", "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("/api/v1/status"), "{page}");
    let api = http_raw("127.0.0.1:9090", "/api/v1/status");
    let body = api.split("\r\n\r\n").nth(1).unwrap();
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["services"][0]["listen"], "127.0.0.1:8080");
    assert_eq!(status["services"][0]["counters"]["conns"], 12);
    assert!(http_raw("127.0.0.1:9090", "/nope").starts_with("HTTP/1.1 404"));

    d.signal("-INT");
    assert!(d.wait_exit().success());
    let mut banner = String::new();
    d.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut banner)
        .unwrap();
    assert!(
        banner.contains("curl -s http://127.0.0.1:8080/"),
        "{banner}"
    );
    assert!(TcpStream::connect("127.0.0.1:8080").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
