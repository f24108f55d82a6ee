//! `/metrics` end to end (issue 19, item 3): the real `halb` binary with
//! a loopback virtual service of two TCP back ends and `http_listen`;
//! its metrics scraped, one back end stopped and the metrics seen to
//! follow, the output checked by `promtool check metrics`, and a real
//! Prometheus server (Debian's `prometheus`, its own config and data
//! directory in a temporary directory, on a free loopback port) scraping
//! halb and queried over its HTTP API.
//!
//! Under `CI`, a missing `promtool` or `prometheus` fails the test;
//! otherwise those parts print `SKIPPED: …`. Every wait is a bounded
//! poll; no timing is asserted. Prometheus is killed by PID at the end,
//! also when the test fails.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{free_port, poll, poll_for, temp_dir, Daemon};

/// A TCP back end on loopback: answers `hi\n` to whatever it is sent;
/// stopped, it closes its listener (connections are refused).
struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 64];
                        if matches!(c.read(&mut buf), Ok(n) if n > 0) {
                            let _ = c.write_all(b"hi\n");
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Backend {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listener (joins the thread that holds it).
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A child killed by PID and reaped when dropped (the test's Prometheus).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on `addr` with `accept`: the status line and the body.
fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .ok()?;
    let mut out = Vec::new();
    s.take(16 * 1024 * 1024).read_to_end(&mut out).ok()?;
    let text = String::from_utf8(out).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_owned();
    // hyper sends a fixed length for these bodies (no chunking).
    Some((status, body.to_owned()))
}

fn scrape(http: SocketAddr) -> Option<String> {
    let (status, body) = get(http, "/metrics", None)?;
    status.contains(" 200 ").then_some(body)
}

/// The value of the one sample `name{…}` carrying every label of
/// `labels`.
fn value(text: &str, name: &str, labels: &[String]) -> Option<f64> {
    let hits: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|want| l.contains(want.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(hits.len() <= 1, "{name} {labels:?} matches {hits:?}");
    hits.first().copied()
}

fn real(addr: SocketAddr) -> Vec<String> {
    vec![
        "service=\"web\"".into(),
        format!("remote_address=\"{}\"", addr.ip()),
        format!("remote_port=\"{}\"", addr.port()),
    ]
}

/// Whether `program` can be run (`--version`); under `CI` its absence
/// fails the test, else it prints SKIPPED and the caller skips.
fn have(program: &str, package: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!("{program} not found: apt-get install --no-install-recommends {package}");
        assert!(
            std::env::var_os("CI").is_none(),
            "{msg} (CI is set: a missing peer fails)"
        );
        println!("SKIPPED: {msg}");
    }
    ok
}

/// `promtool check metrics` on `text`: its verdict and what it said.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let done = poll_for(Duration::from_secs(30), || child.try_wait().unwrap());
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (done.is_some() && out.status.success(), said)
}

#[test]
fn metrics_follow_the_daemon_and_prometheus_scrapes_them() {
    let a = Backend::start();
    let mut b = Backend::start();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let vip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        r#"[global]
http_listen = "{http}"

[[virtual_service]]
name = "web"
listen = "{vip}"
scheduler = "rr"
on_down = "quiescent"

  [virtual_service.check]
  type = "tcp"
  interval = "200ms"
  timeout = "500ms"
  rise = 1
  fall = 1

  [[virtual_service.real_server]]
  address = "{}"
  weight = 3

  [[virtual_service.real_server]]
  address = "{}"
  weight = 3
"#,
        a.addr, b.addr
    );
    let dir = temp_dir("metrics");
    let d = Daemon::start(&dir, &config);

    // Both up, with their weights, once their checks have run.
    let first = poll(|| {
        let t = scrape(http)?;
        let probed = [a.addr, b.addr]
            .iter()
            .all(|r| value(&t, "halb_check_probes_total", &real(*r)).is_some_and(|n| n >= 1.0));
        probed.then_some(t)
    })
    .unwrap_or_else(|| panic!("no probes seen in /metrics\n{}", d.log()));
    for r in [a.addr, b.addr] {
        assert_eq!(
            value(&first, "halb_backend_up", &real(r)),
            Some(1.0),
            "{first}"
        );
        assert_eq!(value(&first, "halb_backend_weight", &real(r)), Some(3.0));
        assert_eq!(
            value(&first, "halb_backend_configured_weight", &real(r)),
            Some(3.0)
        );
    }

    // Traffic through the virtual service shows in the counters.
    for _ in 0..4 {
        let mut c = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"hello\n").unwrap();
        let mut buf = [0u8; 8];
        let n = c.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\n");
    }
    let svc = [
        "service=\"web\"".to_owned(),
        format!("local_port=\"{}\"", vip.port()),
    ];
    poll(|| {
        let t = scrape(http)?;
        (value(&t, "halb_service_connections_total", &svc)? >= 4.0
            && value(&t, "halb_service_incoming_bytes_total", &svc)? >= 24.0)
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "connections not counted\n{}",
            scrape(http).unwrap_or_default()
        )
    });

    // b goes down: its health, weight and failures follow; a's do not.
    b.stop();
    let down = poll(|| {
        let t = scrape(http)?;
        (value(&t, "halb_backend_up", &real(b.addr))? == 0.0).then_some(t)
    })
    .unwrap_or_else(|| panic!("b never down in /metrics\n{}", d.log()));
    let down = poll(|| {
        let t = scrape(http)?;
        (value(&t, "halb_backend_weight", &real(b.addr))? == 0.0).then_some(t)
    })
    .unwrap_or(down);
    assert_eq!(
        value(&down, "halb_backend_weight", &real(b.addr)),
        Some(0.0),
        "{down}"
    );
    assert_eq!(
        value(&down, "halb_backend_configured_weight", &real(b.addr)),
        Some(3.0)
    );
    assert!(value(&down, "halb_check_failures_total", &real(b.addr)).unwrap() >= 1.0);
    assert!(value(&down, "halb_check_transitions_total", &real(b.addr)).unwrap() >= 1.0);
    assert_eq!(value(&down, "halb_backend_up", &real(a.addr)), Some(1.0));
    assert_eq!(
        value(&down, "halb_backend_weight", &real(a.addr)),
        Some(3.0)
    );
    assert!(value(&down, "halb_health_transitions_total", &[]).unwrap() >= 1.0);

    // A reload counts.
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let reloaded = poll(|| {
        let t = scrape(http)?;
        (value(&t, "halb_reloads_total", &[])? >= 1.0).then_some(t)
    })
    .unwrap();
    assert_eq!(
        value(&reloaded, "halb_reload_failures_total", &[]),
        Some(0.0)
    );
    assert!(value(&reloaded, "halb_last_reload_success_timestamp_seconds", &[]).unwrap() > 1e9);

    // An operator's override shows, and goes with `halb enable`.
    let drained = |t: &str| {
        let mut l = real(a.addr);
        l.push("override=\"drain\"".into());
        value(t, "halb_backend_override", &l)
    };
    let out = d.ctl(&["drain", "web", &a.addr.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let t = poll(|| {
        let t = scrape(http)?;
        (drained(&t)? == 1.0 && value(&t, "halb_backend_weight", &real(a.addr))? == 0.0)
            .then_some(t)
    });
    assert!(
        t.is_some(),
        "drain not in /metrics\n{}",
        scrape(http).unwrap_or_default()
    );
    let out = d.ctl(&["enable", "web", &a.addr.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let back = poll(|| {
        let t = scrape(http)?;
        (drained(&t).is_none() && value(&t, "halb_backend_weight", &real(a.addr))? == 3.0)
            .then_some(())
    });
    assert!(
        back.is_some(),
        "enable not in /metrics\n{}",
        scrape(http).unwrap_or_default()
    );

    // What Prometheus asks for: OpenMetrics.
    let (status, om) = get(
        http,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert!(om.ends_with("# EOF\n"), "{om}");

    // promtool's lint on the classic text format.
    if have("promtool", "prometheus") {
        let (ok, said) = promtool(&reloaded);
        assert!(ok, "promtool check metrics: {said}\n{reloaded}");
    }

    // A real Prometheus scraping halb.
    if have("prometheus", "prometheus") {
        prometheus_scrapes(&dir, http, b.addr);
    }
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts Prometheus on a free loopback port with its own config and
/// data directory under `dir`, scraping halb at `http` every second;
/// waits until `up` is 1 for it and `halb_backend_up` of `down` is 0 in
/// its answers; kills it by PID.
fn prometheus_scrapes(dir: &Path, http: SocketAddr, down: SocketAddr) {
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: halb\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{http}']\n"
        ),
    )
    .unwrap();
    let data = dir.join("prometheus-data");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let prom = Killed(child);
    let plog = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let query = |q: &str| -> Option<serde_json::Value> {
        let (status, body) = get(web, &format!("/api/v1/query?query={q}"), None)?;
        if !status.contains(" 200 ") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then_some(v)
    };
    // `up` of the halb target: 1 once a scrape succeeded.
    let target = http.to_string();
    let up = poll_for(Duration::from_secs(60), || {
        let v = query("up")?;
        v["data"]["result"]
            .as_array()?
            .iter()
            .find(|r| r["metric"]["instance"] == target.as_str() && r["metric"]["job"] == "halb")
            .filter(|r| r["value"][1] == "1")
            .cloned()
    });
    assert!(
        up.is_some(),
        "Prometheus never scraped halb: {:?}\n{}",
        query("up"),
        plog()
    );
    // One of halb's own series, as halb exports it.
    let q = format!("halb_backend_up%7Bremote_port%3D%22{}%22%7D", down.port());
    let series = poll_for(Duration::from_secs(30), || {
        let v = query(&q)?;
        v["data"]["result"].as_array()?.first().cloned()
    });
    let series = series.unwrap_or_else(|| panic!("no halb_backend_up in Prometheus\n{}", plog()));
    assert_eq!(series["value"][1], "0", "{series}");
    assert_eq!(series["metric"]["service"], "web", "{series}");
    assert_eq!(series["metric"]["job"], "halb", "{series}");
    let pid = prom.0.id();
    drop(prom);
    // Gone: its port no longer answers.
    let gone = poll_for(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&web, Duration::from_millis(200))
            .is_err()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "prometheus (pid {pid}) still answers after kill"
    );
}
