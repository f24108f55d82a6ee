//! icmp checks end to end in two network namespaces made here (root
//! only): halb runs in the director namespace and pings a real server
//! in the other one over a veth pair, IPv4 (198.51.100.0/24) and IPv6
//! (2001:db8::/64). The real server stops answering echo requests
//! (`net.ipv4.icmp_echo_ignore_all` / `net.ipv6.icmp.echo_ignore_all`,
//! per namespace): both checks go Down with "no echo reply"; it answers
//! again: both come back Up. Not root: skipped, or a failure when `CI` is
//! set. Namespaces and halb are removed on drop; every wait is bounded.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HALB: &str = env!("CARGO_BIN_EXE_halb");

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

struct Lab {
    director: String,
    real: String,
    dir: PathBuf,
    halb: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.halb.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.director, &self.real] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sysctl(ns: &str, key: &str, value: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .arg(format!("{key}={value}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "sysctl {key}: {out:?}");
}

fn list(socket: &PathBuf) -> serde_json::Value {
    let out = Command::new(HALB)
        .args(["list", "--json", "--socket"])
        .arg(socket)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Waits until every health entry is `state`; returns the entries.
fn wait_all(socket: &PathBuf, state: &str) -> Vec<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let st = list(socket);
        if let Some(h) = st["health"].as_array() {
            if h.len() == 2 && h.iter().all(|e| e["health"] == state) {
                return h.clone();
            }
        }
        assert!(Instant::now() < end, "never all {state}: {st:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn icmp_checks_follow_echo_replies_in_namespaces() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        eprintln!("SKIPPED: needs root for network namespaces");
        return;
    }
    let tag = std::process::id();
    let dir = std::env::temp_dir().join(format!("halb-icmp-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        director: format!("hpi{tag}d"),
        real: format!("hpi{tag}r"),
        dir: dir.clone(),
        halb: None,
    };
    let (d, r) = (lab.director.clone(), lab.real.clone());
    ip(&["netns", "add", &d]);
    ip(&["netns", "add", &r]);
    ip(&[
        "link", "add", "hpid0", "netns", &d, "type", "veth", "peer", "name", "hpir0", "netns", &r,
    ]);
    for (ns, dev, v4, v6) in [
        (&d, "hpid0", "198.51.100.1/24", "2001:db8::1/64"),
        (&r, "hpir0", "198.51.100.2/24", "2001:db8::2/64"),
    ] {
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
        ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    let config = dir.join("halb.toml");
    std::fs::write(
        &config,
        r#"
[[virtual_service]]
name = "v4"
listen = "198.51.100.1:80"
check = { type = "icmp", interval = "200ms", timeout = "500ms" }
real_server = [{ address = "198.51.100.2:80" }]

[[virtual_service]]
name = "v6"
listen = "[2001:db8::1]:80"
check = { type = "icmp", interval = "200ms", timeout = "500ms" }
real_server = [{ address = "[2001:db8::2]:80" }]
"#,
    )
    .unwrap();
    let socket = dir.join("halb.sock");
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    lab.halb = Some(
        Command::new("ip")
            .args(["netns", "exec", &d, HALB, "run", "--config"])
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let up = wait_all(&socket, "up");
    assert!(
        up.iter().all(|h| h["reason"]
            .as_str()
            .unwrap()
            .starts_with("echo reply from ")),
        "{up:?}"
    );

    sysctl(&r, "net.ipv4.icmp_echo_ignore_all", "1");
    sysctl(&r, "net.ipv6.icmp.echo_ignore_all", "1");
    let down = wait_all(&socket, "down");
    for h in &down {
        let reason = h["reason"].as_str().unwrap();
        assert!(reason.starts_with("no echo reply from "), "{h:#}");
    }

    sysctl(&r, "net.ipv4.icmp_echo_ignore_all", "0");
    sysctl(&r, "net.ipv6.icmp.echo_ignore_all", "0");
    wait_all(&socket, "up");
    drop(lab);
}
