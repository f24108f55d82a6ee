//! `[global.sync]` end to end on loopback: two daemons compare their
//! running configs (`halb list`, the log, `halb_config_in_sync` in
//! /metrics), `halb config diff` shows the lines, `halb config push` is
//! applied when valid and refused with the errors otherwise (the running
//! config stays), and a wrong key is refused by both sides.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, halb_to_end, poll, temp_dir, Daemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// One director's file: `me` listens on `port`, its peer on `peer_port`;
/// `extra` is the shared part after it.
fn config(
    me: &str,
    port: u16,
    peer: &str,
    peer_port: u16,
    http: u16,
    key: &str,
    extra: &str,
) -> String {
    format!(
        r#"# the pair's config
[global]
connect_timeout = "2s"
http_listen = "127.0.0.1:{http}"

[global.sync]
name = "{me}"
listen = "127.0.0.1:{port}"
key = "{key}"
peers = [{{ name = "{peer}", address = "127.0.0.1:{peer_port}" }}]
interval = "1s"
{extra}"#
    )
}

fn sync_state(d: &Daemon, peer: &str) -> Option<String> {
    let st = d.status()?;
    st["config_sync"]
        .as_array()?
        .iter()
        .find(|p| p["peer"] == peer)
        .and_then(|p| p["state"].as_str().map(str::to_owned))
}

fn wait_state(d: &Daemon, peer: &str, want: &str) {
    let got = poll(|| (sync_state(d, peer).as_deref() == Some(want)).then_some(()));
    assert!(
        got.is_some(),
        "{peer} never {want} (now {:?}):\n{}",
        sync_state(d, peer),
        d.log()
    );
}

fn metric(http: u16, peer: &str) -> Option<f64> {
    let addr: SocketAddr = ([127, 0, 0, 1], http).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut out = String::new();
    s.take(4 << 20).read_to_string(&mut out).ok()?;
    let want = format!("halb_config_in_sync{{peer=\"{peer}\"}} ");
    out.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
}

fn halb_config(args: &[&str], file: &Path) -> std::process::Output {
    let mut a: Vec<&std::ffi::OsStr> = vec!["config".as_ref()];
    a.extend(args.iter().map(|s| std::ffi::OsStr::new(*s)));
    a.push("-c".as_ref());
    a.push(file.as_os_str());
    halb_to_end(&a, Duration::from_secs(40))
}

#[test]
fn two_directors_diff_push_and_drift() {
    let (p1, p2, h1, h2) = (free_port(), free_port(), free_port(), free_port());
    let d1 = Daemon::start(
        &temp_dir("sync-d1"),
        &config("d1", p1, "d2", p2, h1, KEY, ""),
    );
    let d2 = Daemon::start(
        &temp_dir("sync-d2"),
        &config("d2", p2, "d1", p1, h2, KEY, ""),
    );
    // Their own keys differ, the rest is equal: in sync, both ways.
    wait_state(&d1, "d2", "in_sync");
    wait_state(&d2, "d1", "in_sync");
    assert_eq!(poll(|| metric(h1, "d2")), Some(1.0));
    let list = String::from_utf8_lossy(&d1.list(&[]).stdout).into_owned();
    assert!(list.contains("config in sync with d2 since "), "{list}");

    // d1's operator pushes a file with a new virtual service to d2.
    let vip = free_port();
    let service = format!(
        "\n[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{vip}\"\nreal_server = [{{ address = \"127.0.0.1:{}\" }}]\n",
        free_port()
    );
    let pushed = d1.dir.join("pushed.toml");
    std::fs::write(&pushed, config("d1", p1, "d2", p2, h1, KEY, &service)).unwrap();
    let out = halb_config(&["push", "d2"], &pushed);
    assert!(out.status.success(), "{out:?}\n{}", d2.log());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("d2: pushed config applied"),
        "{out:?}"
    );
    // d2 runs it, with its own [global.sync] and http_listen kept.
    let on_d2 = std::fs::read_to_string(&d2.file).unwrap();
    assert!(
        on_d2.contains(&format!("listen = \"127.0.0.1:{vip}\"")),
        "{on_d2}"
    );
    assert!(
        on_d2.contains(&format!("listen = \"127.0.0.1:{p2}\"")),
        "{on_d2}"
    );
    assert!(
        on_d2.contains(&format!("http_listen = \"127.0.0.1:{h2}\"")),
        "{on_d2}"
    );
    let listed = poll(|| {
        let st = d2.status()?;
        st["services"]
            .as_array()?
            .iter()
            .any(|s| s["name"] == "web")
            .then_some(())
    });
    assert!(listed.is_some(), "{}", d2.log());

    // d1 still runs its old file: drift, seen on both sides, logged,
    // in `halb list` and /metrics.
    wait_state(&d1, "d2", "differs");
    wait_state(&d2, "d1", "differs");
    let list = String::from_utf8_lossy(&d1.list(&[]).stdout).into_owned();
    assert!(list.contains("config differs from d2 since "), "{list}");
    assert_eq!(poll(|| metric(h1, "d2").filter(|v| *v == 0.0)), Some(0.0));
    assert_eq!(poll(|| metric(h2, "d1").filter(|v| *v == 0.0)), Some(0.0));
    assert!(
        d1.log().contains("config sync: config differs from d2"),
        "{}",
        d1.log()
    );

    // `halb config diff` shows the lines (and exits 1).
    let out = halb_config(&["diff", "d2"], &d1.file);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let diff = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        diff.contains("--- d2:") && diff.contains("+++ d1:"),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("-listen = \"127.0.0.1:{vip}\"")),
        "{diff}"
    );
    assert!(
        !diff.contains("-name = \"d2\""),
        "node-local keys are not shown: {diff}"
    );

    // An invalid file is refused with check-config's errors, and d2
    // keeps running what it ran.
    let bad = d1.dir.join("bad.toml");
    std::fs::write(&bad, config("d1", p1, "d2", p2, h1, KEY, "\n[[virtual_service]]\nname = \"x\"\nlisten = \"127.0.0.1:80\"\nscheduler = \"nosuch\"\n")).unwrap();
    let before = std::fs::read_to_string(&d2.file).unwrap();
    let out = halb_config(&["push"], &bad);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("d2 refused the pushed config"), "{err}");
    assert!(
        err.contains("halb.toml:16:13: virtual_service \"x\".scheduler: unknown scheduler"),
        "{err}"
    );
    assert!(err.contains("d2 keeps its running config"), "{err}");
    assert_eq!(std::fs::read_to_string(&d2.file).unwrap(), before);
    assert!(d2.log().contains("push from d1 refused"), "{}", d2.log());

    // A peer with another key is refused, and refuses.
    let wrong = d1.dir.join("wrong.toml");
    let other = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    std::fs::write(&wrong, config("d1", p1, "d2", p2, h1, other, "")).unwrap();
    let out = halb_config(&["diff", "d2"], &wrong);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not hold the same sync key"),
        "{out:?}"
    );
    let refused = poll(|| {
        d2.log()
            .contains("refused: the peer closed the connection during the handshake")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", d2.log());

    // d1 pushes its own file: in sync again on both sides.
    let out = halb_config(&["push", "d2"], &d1.file);
    assert!(out.status.success(), "{out:?}");
    wait_state(&d1, "d2", "in_sync");
    wait_state(&d2, "d1", "in_sync");
    let out = halb_config(&["diff"], &d1.file);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("d2: the same config as d1"),
        "{out:?}"
    );
    assert!(
        d1.log().contains("d2 runs the same config as d1"),
        "{}",
        d1.log()
    );
}

/// A daemon whose peer holds another key shows it unreachable, with the
/// reason, and never in sync.
#[test]
fn a_peer_with_another_key_is_unreachable() {
    let (p1, p2, h1, h2) = (free_port(), free_port(), free_port(), free_port());
    let other = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let d1 = Daemon::start(
        &temp_dir("sync-k1"),
        &config("d1", p1, "d2", p2, h1, KEY, ""),
    );
    let d2 = Daemon::start(
        &temp_dir("sync-k2"),
        &config("d2", p2, "d1", p1, h2, other, ""),
    );
    // d1 may first find d2 not yet listening; then the key is refused.
    for (d, peer) in [(&d1, "d2"), (&d2, "d1")] {
        let refused = poll(|| {
            let list = String::from_utf8_lossy(&d.list(&[]).stdout).into_owned();
            (list.contains(&format!("config not compared with {peer}"))
                && (list.contains("authentication failed") || list.contains("wrong sync key")))
            .then_some(())
        });
        assert!(refused.is_some(), "{}", d.log());
        assert_eq!(sync_state(d, peer).as_deref(), Some("unreachable"));
    }
    assert_eq!(poll(|| metric(h1, "d2")), Some(0.0));
    // Bytes that are no greeting (an HTTP request, 256 KiB of noise) are
    // refused and closed; d2 goes on answering.
    for junk in [
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        (0..256 * 1024).map(|i| (i * 7 % 251) as u8).collect(),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", p2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&junk);
        let mut rest = Vec::new();
        let _ = s.take(1 << 20).read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "d2 answered junk with {} bytes",
            rest.len()
        );
    }
    let refused = poll(|| {
        d2.log()
            .contains("not a halb sync peer (bad greeting)")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", d2.log());
    assert!(d2.status().is_some(), "d2 stopped answering:\n{}", d2.log());
}
