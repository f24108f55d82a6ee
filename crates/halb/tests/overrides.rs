//! Operators' runtime overrides (issue 19): `halb drain`, `halb weight`,
//! `halb disable` and `halb enable` change a real server without a config
//! edit, are shown by `halb list`, survive `halb reload` and a restart,
//! and an unknown
//! name is answered with the valid ones. Loopback only; every wait
//! bounded.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, poll, temp_dir, Daemon};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A back end that writes its name to every connection and closes.
fn named_backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.write_all(name.as_bytes());
        }
    });
    addr
}

fn who(vip: SocketAddr) -> String {
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    got
}

fn weight_of(d: &Daemon, real: SocketAddr) -> Option<u64> {
    let st = d.status()?;
    st["services"][0]["reals"]
        .as_array()?
        .iter()
        .find(|r| r["addr"] == real.to_string())
        .and_then(|r| r["weight"].as_u64())
}

fn listed(d: &Daemon, real: SocketAddr) -> bool {
    d.status().is_some_and(|st| {
        st["services"][0]["reals"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["addr"] == real.to_string()))
    })
}

#[test]
fn drain_weight_disable_enable_at_runtime() {
    let dir = temp_dir("overrides");
    let port = free_port();
    let (a, b) = (named_backend("a"), named_backend("b"));
    let config = format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\nscheduler = \"rr\"\n\
         real_server = [{{ address = \"{a}\" }}, {{ address = \"{b}\" }}]\n"
    );
    let mut d = Daemon::start(&dir, &config);
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ctl = |args: &[&str]| {
        let out = d.ctl(args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    // drain a: weight 0, new connections all go to b.
    let (ok, said) = ctl(&["drain", "web", &a.to_string()]);
    assert!(ok, "{said}");
    assert!(poll(|| (weight_of(&d, a) == Some(0)).then_some(())).is_some());
    for _ in 0..6 {
        assert_eq!(who(vip), "b");
    }
    let list = String::from_utf8(d.list(&[]).stdout).unwrap();
    assert!(list.contains("[draining (halb drain)]"), "{list}");
    let st = d.status().unwrap();
    assert_eq!(st["overrides"][0]["override"], "drain", "{st}");

    // By VIP:port too; a weight.
    let (ok, said) = ctl(&["weight", &vip.to_string(), &a.to_string(), "3"]);
    assert!(ok, "{said}");
    assert!(poll(|| (weight_of(&d, a) == Some(3)).then_some(())).is_some());

    // disable b: out of the table, shown as disabled; survives a reload.
    let (ok, said) = ctl(&["disable", "web", &b.to_string()]);
    assert!(ok, "{said}");
    assert!(poll(|| (!listed(&d, b)).then_some(())).is_some());
    let list = String::from_utf8(d.list(&[]).stdout).unwrap();
    assert!(list.contains("[disabled (halb disable)]"), "{list}");
    let (ok, said) = ctl(&["reload"]);
    assert!(ok, "{said}");
    assert!(
        !listed(&d, b) && weight_of(&d, a) == Some(3),
        "{:?}",
        d.status()
    );
    for _ in 0..4 {
        assert_eq!(who(vip), "a");
    }

    // enable both: back to the config.
    for r in [a, b] {
        let (ok, said) = ctl(&["enable", "web", &r.to_string()]);
        assert!(ok, "{said}");
    }
    assert!(poll(|| (listed(&d, b) && weight_of(&d, a) == Some(1)).then_some(())).is_some());
    assert_eq!(d.status().unwrap()["overrides"], serde_json::json!([]));

    // Unknown names: refused with the valid ones.
    let (ok, said) = ctl(&["drain", "nope", &a.to_string()]);
    assert!(!ok);
    assert!(
        said.contains("no virtual service \"nope\"") && said.contains("web (127.0.0.1:"),
        "{said}"
    );
    let (ok, said) = ctl(&["drain", "web", "127.0.0.1:1"]);
    assert!(!ok);
    assert!(
        said.contains(&a.to_string()) && said.contains(&b.to_string()),
        "{said}"
    );
    let log = d.log();
    assert!(log.contains("operator: drain"), "{log}");
    // with who asked
    let me = nix::unistd::geteuid().as_raw();
    assert!(
        log.contains(&format!("uid={me}")) && log.contains("control request: Real"),
        "{log}"
    );

    // An override survives a restart (SOCKET.state next to the socket).
    let (ok, said) = ctl(&["drain", "web", &a.to_string()]);
    assert!(ok, "{said}");
    d.signal("-TERM");
    assert!(d.wait_exit().success());
    let file = d.file.clone();
    let d = Daemon::start_file(&dir, &file);
    assert!(
        poll(|| (weight_of(&d, a) == Some(0)).then_some(())).is_some(),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains("1 operator override(s) restored"),
        "{}",
        d.log()
    );
    for _ in 0..4 {
        assert_eq!(who(vip), "b");
    }
    // `halb reset` ends every override, and says what it ended.
    let out = d.ctl(&["reset"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.contains("1 real-server override(s)"),
        "{out:?}"
    );
    assert!(
        poll(|| (weight_of(&d, a) == Some(1)).then_some(())).is_some(),
        "{}",
        d.log()
    );
    let st = d.status().unwrap();
    assert_eq!(st["overrides"].as_array().map(Vec::len), Some(0), "{st}");
    let out = d.ctl(&["reset"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no runtime override"),
        "{out:?}"
    );
}

/// A back end that answers every line with its name and the line, on the
/// same connection, for as long as the client keeps it.
fn echo_backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut out = format!("{name}:").into_bytes();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn say(s: &mut TcpStream, what: &str) -> String {
    s.write_all(what.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// `halb drain` is quiescent, as `ipvsadm -w 0`: a connection established
/// before goes on working through the drain, new ones go elsewhere.
#[test]
fn a_drained_real_server_keeps_its_established_connections() {
    let dir = temp_dir("drain-long");
    let port = free_port();
    let (a, b) = (echo_backend("a"), echo_backend("b"));
    let config = format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\nscheduler = \"rr\"\n\
         real_server = [{{ address = \"{a}\" }}, {{ address = \"{b}\" }}]\n"
    );
    let d = Daemon::start(&dir, &config);
    let vip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut long = TcpStream::connect(vip).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let first = say(&mut long, "hello");
    let (held, other) = if first.starts_with("a:") {
        (a, "b:")
    } else {
        (b, "a:")
    };
    let mine = &first[..2];
    let out = d.ctl(&["drain", "web", &held.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(poll(|| (weight_of(&d, held) == Some(0)).then_some(())).is_some());
    for i in 0..5 {
        // the established connection still reaches its drained server
        assert_eq!(
            say(&mut long, &format!("more{i}")),
            format!("{mine}more{i}")
        );
        // a new one goes to the other
        let mut s = TcpStream::connect(vip).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(say(&mut s, "x").starts_with(other));
    }
}
