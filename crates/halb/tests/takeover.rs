//! Seamless restart (issue 16): `halb run --takeover` takes the listening
//! sockets over from the running daemon, which then stops accepting and
//! drains; clients connecting all along are never refused nor reset.
//! Every loop is bounded in count and time.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, ok_backend, ok_request, poll, temp_dir, Daemon, HALB};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn takeover_under_load_refuses_no_client() {
    let dir = temp_dir("takeover");
    let port = free_port();
    let real = ok_backend();
    let config = format!(
        "[global]\nworkers = 2\n\n[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\
         \n  [[virtual_service.real_server]]\n  address = \"{real}\"\n"
    );
    let mut old = Daemon::start(&dir, &config);
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    ok_request(vip).unwrap();

    // Two clients, back to back, for the whole hand-over (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed)
                    && t0.elapsed() < Duration::from_secs(60)
                    && ok < 200_000
                {
                    match ok_request(vip) {
                        Ok(()) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let log = std::fs::File::create(dir.join("new.log")).unwrap();
    let new = Command::new(HALB)
        .args(["run", "--takeover", "--config"])
        .arg(&old.file)
        .arg("--socket")
        .arg(&old.socket)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let new_log = || std::fs::read_to_string(dir.join("new.log")).unwrap_or_default();
    // The old one hands over and exits cleanly.
    let st = old.wait_exit();
    assert!(st.success(), "{st:?}\n{}", old.log());
    let mut new = Daemon::attach(new, &dir, &old.file, &old.socket);
    // Load on the new one alone for a moment.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, failed) = c.join().unwrap();
        assert!(
            failed.is_empty(),
            "{} failed requests, first {:?}\nold:\n{}\nnew:\n{}",
            failed.len(),
            failed.first(),
            old.log(),
            new_log()
        );
        total += ok;
    }
    assert!(total > 100, "only {total} requests during the hand-over");
    let old_log = old.log();
    assert!(
        old_log.contains("hand-over: the successor accepts"),
        "{old_log}"
    );
    let log = new_log();
    assert!(
        log.contains("takes over its predecessor's listening sockets"),
        "{log}"
    );
    // The new one is the daemon now: it answers, reloads, and stops.
    assert!(poll(|| new.status()).is_some());
    let out = new.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    new.signal("-TERM");
    assert!(new.wait_exit().success(), "{}", new_log());
}

#[test]
fn takeover_without_a_running_daemon_says_so() {
    let dir = temp_dir("takeover-none");
    let port = free_port();
    let file = dir.join("halb.toml");
    std::fs::write(
        &file,
        format!("[[virtual_service]]\nlisten = \"127.0.0.1:{port}\"\nreal_server = [{{ address = \"127.0.0.1:9\" }}]\n"),
    )
    .unwrap();
    let out = Command::new(HALB)
        .args(["run", "--takeover", "--config"])
        .arg(&file)
        .arg("--socket")
        .arg(dir.join("halb.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no running halb daemon answers"), "{err}");
}
