//! halb's VRRP shell and keepalived (Debian package, VRRP only) in one
//! virtual router, VRRPv2 (PASS auth) and v3, on a bridge LAN in network
//! namespaces (root only): election by priority both ways round, failover
//! both ways (node death: switch port down, then the process killed), and
//! never two masters for longer than one advert interval once the two hear
//! each other. keepalived's state is read from its VIP; halb's from the
//! shell's status.
//!
//! Without keepalived: SKIPPED, or a failure when `CI` is set.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halb_vrrp_net::{GarpSpec, InstanceSpec, Spec, VipSpec, VrrpHandle};

const VIP: &str = "192.0.2.100";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Switch namespace with a bridge; hosts `h` (halb) and `k` (keepalived),
/// each with eth0 on the bridge through switch port `v-h` / `v-k`.
struct Lab {
    sw: String,
    h: String,
    k: String,
    dir: std::path::PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        let ci = std::env::var_os("CI").is_some();
        if !halb_netlink::is_root() {
            assert!(!ci, "CI runs this as root");
            println!("SKIPPED: needs root for network namespaces");
            return None;
        }
        if !have("keepalived") {
            assert!(!ci, "keepalived is missing (apt-get install keepalived)");
            println!("SKIPPED: keepalived is not installed");
            return None;
        }
        let lab = Lab {
            sw: format!("hvk-{tag}-sw"),
            h: format!("hvk-{tag}-h"),
            k: format!("hvk-{tag}-k"),
            dir: std::env::temp_dir().join(format!("hvk-{tag}-{}", std::process::id())),
        };
        std::fs::create_dir_all(&lab.dir).unwrap();
        for n in [&lab.sw, &lab.h, &lab.k] {
            let _ = ip(&["netns", "del", n]);
            assert!(ip(&["netns", "add", n]));
        }
        assert!(ip(&[
            "-n",
            &lab.sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
            "stp_state",
            "0",
            "forward_delay",
            "0"
        ]));
        assert!(ip(&["-n", &lab.sw, "link", "set", "br0", "up"]));
        for (n, port, addr) in [
            (&lab.h, "v-h", "192.0.2.1/24"),
            (&lab.k, "v-k", "192.0.2.2/24"),
        ] {
            assert!(ip(&[
                "link", "add", "eth0", "netns", n, "type", "veth", "peer", "name", port, "netns",
                &lab.sw
            ]));
            assert!(ip(&[
                "-n", &lab.sw, "link", "set", port, "master", "br0", "up"
            ]));
            assert!(ip(&["-n", n, "addr", "add", addr, "dev", "eth0"]));
            assert!(ip(&["-n", n, "link", "set", "eth0", "up"]));
            assert!(ip(&["-n", n, "link", "set", "lo", "up"]));
        }
        Some(lab)
    }

    fn port(&self, host: &str, up: bool) {
        let port = if host == "h" { "v-h" } else { "v-k" };
        assert!(ip(&[
            "-n",
            &self.sw,
            "link",
            "set",
            port,
            if up { "up" } else { "down" }
        ]));
    }

    fn in_h<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.h);
        std::thread::spawn(move || {
            let f_ns = File::open(path).unwrap();
            nix::sched::setns(f_ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    fn has_vip(&self, ns: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!(" {VIP}/"))
    }

    fn keepalived(&self, version: u8, priority: u8, advert_s: u32, run: u32) -> Keepalived {
        let conf = self.dir.join(format!("k{run}.conf"));
        let auth = if version == 2 {
            "  authentication {\n    auth_type PASS\n    auth_pass hvtpass\n  }\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id hvk\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  \
                 interface eth0\n  version {version}\n  virtual_router_id 51\n  priority {priority}\n  \
                 advert_int {advert_s}\n{auth}  virtual_ipaddress {{\n    {VIP}/24 dev eth0\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let log = File::create(self.dir.join(format!("k{run}.log"))).unwrap();
        // setsid: its own process group, so the VRRP child dies with it
        let child = Command::new("setsid")
            .args([
                "ip",
                "netns",
                "exec",
                &self.k,
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
            ])
            .arg(&conf)
            .arg("-p")
            .arg(self.dir.join(format!("k{run}.pid")))
            .arg("-r")
            .arg(self.dir.join(format!("kv{run}.pid")))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Keepalived { child }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in [&self.h, &self.k, &self.sw] {
            let _ = ip(&["netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Keepalived {
    child: Child,
}

impl Keepalived {
    /// SIGKILL to the whole group (keepalived and its VRRP child).
    fn kill9(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spec(version: u8, priority: u8, advert: Duration) -> Spec {
    Spec {
        instances: vec![InstanceSpec {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: if version == 2 {
                halb_vrrp::Version::V2
            } else {
                halb_vrrp::Version::V3
            },
            priority,
            advert_interval: advert,
            preempt: true,
            preempt_delay: Duration::ZERO,
            announce_at_startup: false,
            accept: false,
            vips: vec![VipSpec {
                address: VIP.parse().unwrap(),
                prefix_len: 24,
                interface: None,
                label: None,
            }],
            unicast_source: None,
            unicast_peers: vec![],
            paths: vec![],
            auth: if version == 2 {
                halb_vrrp::Auth::password("hvtpass")
            } else {
                halb_vrrp::Auth::None
            },
            hmac: None,
            garp: GarpSpec::default(),
            track_interfaces: vec![],
            vip_on_loopback_when_backup: false,
        }],
        groups: vec![],
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start_halb(lab: &Lab, s: Spec) -> VrrpHandle {
    lab.in_h(move || {
        let _rt = rt();
        halb_vrrp_net::spawn(s).unwrap().0
    })
}

fn stop_halb(lab: &Lab, h: VrrpHandle) {
    lab.in_h(move || rt().block_on(h.shutdown()));
}

fn halb_state(h: &VrrpHandle) -> &'static str {
    h.status().first().map_or("NONE", |s| s.state)
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {secs} s");
}

/// Samples both sides until they settle to the expected roles; returns the
/// longest stretch both were master (halb's state, keepalived's VIP).
fn settle(lab: &Lab, h: &VrrpHandle, halb_master: bool, secs: u64) -> Duration {
    let t0 = Instant::now();
    let mut both_since: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    let mut settled = 0;
    while t0.elapsed() < Duration::from_secs(secs) && settled < 25 {
        let hm = halb_state(h) == "MASTER";
        let km = lab.has_vip(&lab.k);
        let now = Instant::now();
        if hm && km {
            let since = *both_since.get_or_insert(now);
            longest = longest.max(now - since);
        } else {
            both_since = None;
        }
        let want_h = if halb_master { "MASTER" } else { "BACKUP" };
        settled =
            if halb_state(h) == want_h && km != halb_master && lab.has_vip(&lab.h) == halb_master {
                settled + 1
            } else {
                0
            };
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        settled >= 25,
        "did not settle to halb {} / keepalived {}: halb {:?}, keepalived holds VIP {}",
        if halb_master { "MASTER" } else { "BACKUP" },
        if halb_master { "BACKUP" } else { "MASTER" },
        h.status(),
        lab.has_vip(&lab.k)
    );
    longest
}

fn interop(version: u8) {
    let Some(lab) = Lab::new(&format!("v{version}")) else {
        return;
    };
    let adv = Duration::from_secs(1);
    let limit = adv + Duration::from_millis(200); // + sampling

    // 1. keepalived alone (100) is master; halb (150) starts and preempts.
    let mut k = lab.keepalived(version, 100, 1, 1);
    wait("keepalived alone takes the VIP", 15, || lab.has_vip(&lab.k));
    let h = start_halb(&lab, spec(version, 150, adv));
    let both = settle(&lab, &h, true, 15);
    assert!(
        both <= limit,
        "v{version}: both master for {both:?} when halb preempted"
    );
    let st = h.status().remove(0);
    assert!(
        st.adverts_received > 0 && st.drops.values().sum::<u64>() == 0,
        "{st:?}"
    );

    // 2. halb dies (node death): keepalived takes over.
    lab.port("h", false);
    stop_halb(&lab, h);
    wait("keepalived takes over from a dead halb", 10, || {
        lab.has_vip(&lab.k)
    });
    lab.port("h", true);
    k.kill9();
    lab.port("k", true);

    // 3. halb alone (100) is master; keepalived (150) starts and preempts.
    let _ = ip(&[
        "-n",
        &lab.k,
        "addr",
        "del",
        &format!("{VIP}/24"),
        "dev",
        "eth0",
    ]);
    let h = start_halb(&lab, spec(version, 100, adv));
    wait("halb alone becomes master", 15, || {
        halb_state(&h) == "MASTER"
    });
    let mut k = lab.keepalived(version, 150, 1, 2);
    let both = settle(&lab, &h, false, 20);
    assert!(
        both <= limit,
        "v{version}: both master for {both:?} when keepalived preempted"
    );

    // 4. keepalived dies (node death): halb takes over.
    lab.port("k", false);
    k.kill9();
    wait("halb takes over from a dead keepalived", 10, || {
        halb_state(&h) == "MASTER" && lab.has_vip(&lab.h)
    });
    let st = h.status().remove(0);
    assert!(
        st.drops.values().sum::<u64>() == 0,
        "packets dropped: {st:?}"
    );
    stop_halb(&lab, h);
}

#[test]
fn keepalived_vrrp_v2_pass_auth() {
    interop(2);
}

#[test]
fn keepalived_vrrp_v3() {
    interop(3);
}
