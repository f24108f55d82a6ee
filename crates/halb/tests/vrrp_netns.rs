//! The daemon with VRRP, in two network namespaces joined by a veth pair
//! (root only): the examples/vrrp-director{1,2}.toml pair elects
//! director 1, `halb list --json` shows it, and SIGTERM on the master
//! hands the VIP to director 2.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HALB: &str = env!("CARGO_BIN_EXE_halb");
const NS: [&str; 2] = ["hv6-dm-1", "hv6-dm-2"];

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

struct Lab {
    daemons: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        for n in NS {
            let _ = ip(&["netns", "del", n]);
        }
        for i in 1..=2 {
            let _ = std::fs::remove_file(sock(i));
        }
    }
}

fn sock(i: usize) -> String {
    format!("/tmp/hv6-dm-{i}-{}.sock", std::process::id())
}

fn vrrp_json(i: usize) -> Option<serde_json::Value> {
    let out = Command::new(HALB)
        .args(["list", "--json", "--socket", &sock(i)])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("vrrp")?.get(0).cloned()
}

fn wait_state(i: usize, want: &str) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        if let Some(v) = vrrp_json(i) {
            if v["state"] == want {
                return v;
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "director {i}: {v}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "director {i} not answering"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_vip(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("192.0.2.100/24")
}

#[test]
fn director_pair_elects_and_fails_over_on_sigterm() {
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs this as root");
        println!("SKIPPED: needs root for network namespaces");
        return;
    }
    let mut lab = Lab {
        daemons: Vec::new(),
    };
    for n in NS {
        let _ = ip(&["netns", "del", n]);
        assert!(ip(&["netns", "add", n]));
    }
    assert!(ip(&[
        "link", "add", "eth0", "netns", NS[0], "type", "veth", "peer", "name", "eth0", "netns",
        NS[1]
    ]));
    for (n, a) in NS.iter().zip(["192.0.2.1/24", "192.0.2.2/24"]) {
        assert!(ip(&["-n", n, "addr", "add", a, "dev", "eth0"]));
        assert!(ip(&["-n", n, "link", "set", "eth0", "up"]));
        assert!(ip(&["-n", n, "link", "set", "lo", "up"]));
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (i, n) in NS.iter().enumerate() {
        let cfg = examples.join(format!("vrrp-director{}.toml", i + 1));
        let child = Command::new("ip")
            .args(["netns", "exec", n, HALB, "run", "--config"])
            .arg(&cfg)
            .args(["--socket", &sock(i + 1)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        lab.daemons.push(child);
    }
    let m = wait_state(1, "MASTER");
    assert_eq!(m["priority"], 150);
    assert_eq!(m["vrid"], 51);
    assert_eq!(m["vips"][0], "192.0.2.100/24");
    let b = wait_state(2, "BACKUP");
    assert_eq!(b["master"], "192.0.2.1");
    assert!(has_vip(NS[0]) && !has_vip(NS[1]));
    // SIGTERM: director 1 releases, director 2 takes over.
    let pid = lab.daemons[0].id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let _ = lab.daemons[0].wait();
    wait_state(2, "MASTER");
    assert!(has_vip(NS[1]));
    assert!(!has_vip(NS[0]), "the released VIP is gone");
}
