//! `systemctl restart halb` refuses no client (issue 16's seamless restart
//! under the unit): with `halb run --fd-store` and `FileDescriptorStoreMax=`
//! the listening sockets wait in systemd's file-descriptor store while the
//! old process stops, and the new one accepts on them (src/fdstore.rs).
//!
//! Against a real systemd: a user manager (`systemd --user`) in a private
//! mount namespace where `/run/systemd/system` exists, as the agents'
//! systemd test does; driven with `systemctl --user` over its private
//! socket. The same restart without `--fd-store` refuses clients (shown in
//! the test, so this one can fail). Every loop is bounded in count and
//! time; systemd and its units are stopped by PID at the end.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, ok_backend, ok_request, temp_dir};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYSTEMD: &str = "/lib/systemd/systemd";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        == Some("0")
}

/// A real systemd user manager; SIGTERM by PID on drop (it stops its
/// units first).
struct UserSystemd {
    child: Child,
    run: PathBuf,
    units: PathBuf,
    log: PathBuf,
}

impl UserSystemd {
    fn start(dir: &Path) -> UserSystemd {
        let run = dir.join("run");
        let units = dir.join("config/systemd/user");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&units).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = dir.join("systemd.log");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mkdir -p /run/systemd && mount -t tmpfs halb-systemd /run/systemd && \
                 mkdir /run/systemd/system && exec {SYSTEMD} --user --log-level=info"
            ))
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let sd = UserSystemd {
            child,
            run,
            units,
            log,
        };
        let private = sd.run.join("systemd/private");
        let end = Instant::now() + Duration::from_secs(20);
        while !private.exists() {
            assert!(
                Instant::now() < end,
                "systemd --user did not start: {}",
                std::fs::read_to_string(&sd.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sd
    }

    /// `systemctl --user ARGS`: its standard output; panics (with the
    /// manager's log) when it fails.
    fn systemctl(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .arg("60")
            .arg("systemctl")
            .arg("--user")
            .args(args)
            .env("XDG_RUNTIME_DIR", &self.run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemctl --user {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One property of a unit (`systemctl show -p NAME --value`).
    fn property(&self, unit: &str, name: &str) -> String {
        self.systemctl(&["show", unit, "-p", name, "--value"])
            .trim()
            .to_owned()
    }
}

impl Drop for UserSystemd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests one after another (at most 20,000, at most 60 s) until `stop`:
/// (answered, failures).
fn clients(vip: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, Vec<String>)> {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        let (mut ok, mut failed) = (0u32, Vec::new());
        for _ in 0..20_000 {
            if stop.load(Ordering::Relaxed) || Instant::now() > end {
                break;
            }
            match ok_request(vip) {
                Ok(()) => ok += 1,
                Err(e) => failed.push(e),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (ok, failed)
    })
}

fn config(dir: &Path, ports: &[u16], real: SocketAddr) -> String {
    let mut c = format!(
        "[global]\nworkers = 2\ncontrol_socket = \"{}\"\ndrain_timeout = \"1s\"\n",
        dir.join("halb.sock").display()
    );
    for (i, p) in ports.iter().enumerate() {
        c.push_str(&format!(
            "\n[[virtual_service]]\nname = \"web{i}\"\nlisten = \"127.0.0.1:{p}\"\n\n  \
             [[virtual_service.real_server]]\n  address = \"{real}\"\n"
        ));
    }
    c
}

/// Restarts the unit while clients run: (answered, failures, the main
/// PIDs before and after).
fn restart_under_load(
    sd: &UserSystemd,
    unit: &str,
    vip: SocketAddr,
) -> (u32, Vec<String>, String, String) {
    let before = sd.property(unit, "MainPID");
    let stop = Arc::new(AtomicBool::new(false));
    let load = clients(vip, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    sd.systemctl(&["restart", unit]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap();
    let after = sd.property(unit, "MainPID");
    (ok, failed, before, after)
}

#[test]
fn systemctl_restart_with_the_fd_store_refuses_no_client() {
    if !is_root() || !Path::new(SYSTEMD).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with systemd installed (.ci/packages)"
        );
        eprintln!("SKIPPED: needs root and {SYSTEMD}");
        return;
    }
    let dir = temp_dir("fdstore");
    let sd = UserSystemd::start(&dir);
    let real = ok_backend();
    let (p0, p1) = (free_port(), free_port());
    let cfg = dir.join("halb.toml");
    std::fs::write(&cfg, config(&dir, &[p0, p1], real)).unwrap();
    for (unit, flag) in [
        ("halb-fdstore.service", " --fd-store"),
        ("halb-plain.service", ""),
    ] {
        std::fs::write(
            sd.units.join(unit),
            format!(
                "[Service]\nType=notify\nNotifyAccess=main\n\
                 ExecStart={} run{flag} --config {}\nExecReload={} reload --config {}\n\
                 FileDescriptorStoreMax=64\nKillMode=process\nTimeoutStopSec=30s\n",
                common::HALB,
                cfg.display(),
                common::HALB,
                cfg.display()
            ),
        )
        .unwrap();
    }
    sd.systemctl(&["daemon-reload"]);
    let vip: SocketAddr = format!("127.0.0.1:{p0}").parse().unwrap();

    // With the store: two services of two workers each, four sockets held.
    let unit = "halb-fdstore.service";
    sd.systemctl(&["start", unit]);
    assert_eq!(ok_request(vip), Ok(()));
    assert_eq!(sd.property(unit, "NFileDescriptorStore"), "4");
    let (ok, failed, before, after) = restart_under_load(&sd, unit, vip);
    assert_ne!(before, after, "systemd restarted the daemon");
    assert!(
        ok > 50,
        "the clients ran across the restart ({ok} answered)"
    );
    assert!(
        failed.is_empty(),
        "{} of {} refused or reset: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(sd.property(unit, "NFileDescriptorStore"), "4");

    // A reload that drops a service takes its sockets out of the store
    // (nothing keeps listening for it); one that adds a service stores it.
    std::fs::write(&cfg, config(&dir, &[p0], real)).unwrap();
    sd.systemctl(&["reload", unit]);
    assert_eq!(sd.property(unit, "NFileDescriptorStore"), "2");
    assert!(
        TcpStream::connect_timeout(
            &format!("127.0.0.1:{p1}").parse().unwrap(),
            Duration::from_secs(5)
        )
        .is_err(),
        "the removed service's port is closed"
    );
    std::fs::write(&cfg, config(&dir, &[p0, p1], real)).unwrap();
    sd.systemctl(&["reload", unit]);
    assert_eq!(sd.property(unit, "NFileDescriptorStore"), "4");
    // A full stop empties the store.
    sd.systemctl(&["stop", unit]);
    assert_eq!(sd.property(unit, "NFileDescriptorStore"), "0");

    // Without it, the same restart refuses clients: what the store fixes.
    let unit = "halb-plain.service";
    sd.systemctl(&["start", unit]);
    assert_eq!(ok_request(vip), Ok(()));
    assert_eq!(sd.property(unit, "NFileDescriptorStore"), "0");
    let mut refused = 0;
    for _ in 0..3 {
        let (_, failed, before, after) = restart_under_load(&sd, unit, vip);
        assert_ne!(before, after);
        refused += failed.len();
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "a restart without the store refused no client: this test would not see a regression"
    );
    sd.systemctl(&["stop", unit]);
    drop(sd);
    let _ = std::fs::remove_dir_all(&dir);
}
