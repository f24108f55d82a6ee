//! systemd's side of `Type=notify`, for real: the test plays the service
//! manager. It binds a unix datagram socket, starts the `halb` binary
//! with `NOTIFY_SOCKET` and `WATCHDOG_USEC` as systemd sets them, and
//! reads what halb sends: READY=1 once the control socket listens,
//! WATCHDOG=1 while it runs, RELOADING=1 (with MONOTONIC_USEC) then
//! READY=1 around `halb reload` and SIGHUP, STOPPING=1 on SIGTERM. And
//! the logs journald reads: `<N>` priority prefixes when stderr is the
//! journal (`JOURNAL_STREAM` names its device and inode), JSON lines with
//! `--log-format json`, `--log-level`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, temp_dir, Daemon, DEADLINE, HALB};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(port: u16, real: u16) -> String {
    format!(
        "[[virtual_service]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\n\n  \
         [[virtual_service.real_server]]\n  address = \"127.0.0.1:{real}\"\n"
    )
}

/// The service manager's end: every datagram halb sent, in order.
struct Manager {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn bind(path: &Path) -> Manager {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Manager {
            sock,
            seen: Vec::new(),
        }
    }

    /// The next message for which `pred` holds (those before it are kept
    /// in `seen`), waiting at most [`DEADLINE`].
    fn wait(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < end {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg.clone());
                    if pred(&msg) {
                        return msg;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("reading the notify socket: {e}"),
            }
        }
        panic!("{what}: not received; got {:?}", self.seen)
    }
}

impl Manager {
    /// Reads (and keeps) messages until `d` exits, at most [`DEADLINE`].
    fn read_until_exit(&mut self, d: &mut Daemon) {
        let end = Instant::now() + DEADLINE;
        let mut buf = vec![0u8; 4096];
        while d.child.try_wait().unwrap().is_none() && Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

#[test]
fn notify_ready_watchdog_reloading_stopping() {
    let dir = temp_dir("sd-notify");
    let mut mgr = Manager::bind(&dir.join("notify.sock"));
    let file = dir.join("halb.toml");
    // An external check that records its environment: a child of halb
    // must not get NOTIFY_SOCKET (it would speak for halb to systemd).
    let env_file = dir.join("check.env");
    let env_path = env_file.display();
    // A back end that never accepts: the kernel completes the handshake,
    // so a client's connection through halb stays established.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(
        &file,
        format!(
            "[global]\ndrain_timeout = \"2s\"\n\n\
             [[virtual_service]]\nname = \"web\"\nlisten = \"{listen}\"\n\n  \
             [virtual_service.check]\n  type = \"external\"\n  \
             command = [\"/bin/sh\", \"-c\", \"env > {env_path}.tmp; mv {env_path}.tmp {env_path}\"]\n\n  \
             [[virtual_service.real_server]]\n  address = \"{}\"\n",
            backend.local_addr().unwrap()
        ),
    )
    .unwrap();
    let socket = dir.join("halb.sock");
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    let child = Command::new(HALB)
        .args(["run", "-c"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        // As systemd sets it for WatchdogSec=400ms (WATCHDOG_PID would
        // name halb's PID; without it the value is for this process).
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // READY=1 first (no WATCHDOG, RELOADING or STOPPING before it), and
    // when it comes the control socket already answers.
    let ready = mgr.wait("READY=1", |m| has_line(m, "READY=1"));
    assert_eq!(mgr.seen.len(), 1, "before READY=1: {:?}", mgr.seen);
    assert!(
        ready.contains("STATUS=running: 1 virtual service"),
        "{ready}"
    );
    let mut d = Daemon::attach(child, &dir, &file, &socket);
    assert!(d.list(&[]).status.success());

    // The watchdog is fed.
    mgr.wait("WATCHDOG=1", |m| has_line(m, "WATCHDOG=1"));

    // The check ran, without halb's notify socket or watchdog settings.
    let env = common::poll(|| std::fs::read_to_string(&env_file).ok())
        .unwrap_or_else(|| panic!("the external check never ran:\n{}", d.log()));
    assert!(env.contains("HALB_RIP="), "{env}");
    for k in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
        assert!(
            !env.lines().any(|l| l.starts_with(k)),
            "{k} passed to a check: {env}"
        );
    }

    // `halb reload`: RELOADING=1 with the monotonic clock, then READY=1.
    let n = mgr.seen.len();
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let reloading = mgr.wait("RELOADING=1", |m| has_line(m, "RELOADING=1"));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC with RELOADING=1: {reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0, "{reloading:?}");
    let after = mgr.wait("READY=1 after the reload", |m| has_line(m, "READY=1"));
    assert!(after.contains("STATUS=running: reloaded"), "{after}");
    assert!(
        !mgr.seen[n..]
            .iter()
            .take_while(|m| !has_line(m, "RELOADING=1"))
            .any(|m| has_line(m, "READY=1")),
        "READY=1 before RELOADING=1: {:?}",
        &mgr.seen[n..]
    );

    // SIGHUP is a reload too.
    d.signal("-HUP");
    mgr.wait("RELOADING=1 on SIGHUP", |m| has_line(m, "RELOADING=1"));
    mgr.wait("READY=1 after SIGHUP", |m| has_line(m, "READY=1"));

    // A rejected reload still ends with READY=1 (the old config runs).
    std::fs::write(&file, "[[virtual_service]]\nname = 3\n").unwrap();
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    mgr.wait("RELOADING=1 (rejected)", |m| has_line(m, "RELOADING=1"));
    let after = mgr.wait("READY=1 (rejected)", |m| has_line(m, "READY=1"));
    assert!(after.contains("rejected"), "{after}");

    // The watchdog is still fed after the reloads.
    mgr.wait("WATCHDOG=1 after the reloads", |m| {
        has_line(m, "WATCHDOG=1")
    });

    // SIGTERM: STOPPING=1, then a clean exit. A connection held open
    // makes the stop drain (drain_timeout, 2 s here): the watchdog is fed
    // on its own meanwhile (systemd's TimeoutStopSec bounds the stop).
    let held = std::net::TcpStream::connect(listen).unwrap();
    let active = common::poll(|| {
        let st = d.status()?;
        (st["services"][0]["reals"][0]["counters"]["active"].as_u64()? > 0).then_some(())
    });
    assert!(
        active.is_some(),
        "the held connection never became active:\n{}",
        d.log()
    );
    d.signal("-TERM");
    mgr.wait("STOPPING=1", |m| has_line(m, "STOPPING=1"));
    for i in 0..3 {
        mgr.wait(&format!("WATCHDOG=1 #{i} while draining"), |m| {
            has_line(m, "WATCHDOG=1")
        });
    }
    drop(held);
    // Go on reading, as systemd does, until halb exits (a full queue
    // would block its sends).
    mgr.read_until_exit(&mut d);
    assert!(d.wait_exit().success(), "{}", d.log());
    assert!(!socket.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_notify_socket_nothing_is_sent_and_it_runs() {
    // The same daemon outside systemd: no NOTIFY_SOCKET, a stray
    // WATCHDOG_USEC ignored.
    let dir = temp_dir("sd-none");
    let file = dir.join("halb.toml");
    std::fs::write(&file, config(free_port(), free_port())).unwrap();
    let socket = dir.join("halb.sock");
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    let child = Command::new(HALB)
        .args(["run", "-c"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .env_remove("NOTIFY_SOCKET")
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon::attach(child, &dir, &file, &socket);
    assert!(d.ctl(&["reload"]).status.success());
    d.signal("-TERM");
    assert!(d.wait_exit().success(), "{}", d.log());
    assert!(!d.log().contains("sd_notify"), "{}", d.log());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs a daemon with `args` and `env`, stderr to `dir/halb.log`, stops it
/// with SIGTERM once it answered; its log.
fn run_and_log(dir: &Path, args: &[&str], journal: JournalStream) -> String {
    run_and_log_with(dir, args, journal, |_| {})
}

/// [`run_and_log`], doing `meanwhile` with the running daemon first.
fn run_and_log_with(
    dir: &Path,
    args: &[&str],
    journal: JournalStream,
    meanwhile: impl FnOnce(&Daemon),
) -> String {
    let file = dir.join("halb.toml");
    std::fs::write(&file, config(free_port(), free_port())).unwrap();
    let socket = dir.join("halb.sock");
    let log_path = dir.join("halb.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = std::fs::metadata(&log_path).unwrap();
    let mut cmd = Command::new(HALB);
    cmd.args(args)
        .args(["run", "-c"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("HALB_LOG")
        .stdout(Stdio::null())
        .stderr(log);
    match journal {
        // As systemd sets it for StandardError=journal: stderr's device
        // and inode (here a file's: what halb checks is the match).
        JournalStream::Stderr => {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        }
        // Inherited from a parent whose stderr was the journal: another
        // inode, not ours.
        JournalStream::Other => cmd.env(
            "JOURNAL_STREAM",
            format!("{}:{}", meta.dev(), meta.ino() + 1),
        ),
        JournalStream::Unset => cmd.env_remove("JOURNAL_STREAM"),
    };
    let child = cmd.spawn().unwrap();
    let mut d = Daemon::attach(child, dir, &file, &socket);
    meanwhile(&d);
    d.signal("-TERM");
    assert!(d.wait_exit().success(), "{}", d.log());
    d.log()
}

#[derive(Clone, Copy)]
enum JournalStream {
    Stderr,
    Other,
    Unset,
}

#[test]
fn journal_gets_priority_prefixes() {
    let dir = temp_dir("log-journal");
    // A rejected reload logs its errors on several lines, at error level.
    let log = run_and_log_with(
        &dir,
        &["--log-level", "debug"],
        JournalStream::Stderr,
        |d| {
            std::fs::write(&d.file, "[[virtual_service]]\nname = 3\nlisten = 4\n").unwrap();
            assert_eq!(d.ctl(&["reload"]).status.code(), Some(2));
        },
    );
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    // Every line starts with its priority (each line of a multi-line
    // message too: journald reads lines one by one).
    for l in &lines {
        let p = l.get(..3).unwrap_or(l);
        assert!(["<3>", "<4>", "<6>", "<7>"].contains(&p), "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("running")),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<7>")),
        "no debug line: {log}"
    );
    let rejected = lines
        .iter()
        .position(|l| l.starts_with("<3>reload rejected"))
        .unwrap_or_else(|| panic!("no <3>reload rejected: {log}"));
    assert!(lines[rejected + 1].starts_with("<3>error: "), "{log}");
    // Neither timestamp nor level word: journald has both.
    assert!(lines.iter().any(|l| l.starts_with("<6>halb ")), "{log}");
    assert!(!log.contains("INFO"), "{log}");

    // A JOURNAL_STREAM that is not our stderr: plain lines.
    let dir2 = temp_dir("log-other");
    let log = run_and_log(&dir2, &[], JournalStream::Other);
    assert!(log.lines().all(|l| !l.starts_with("<6>")), "{log}");
    assert!(log.contains("INFO"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn json_logs_and_log_level() {
    let dir = temp_dir("log-json");
    let log = run_and_log(&dir, &["--log-format", "json"], JournalStream::Unset);
    let mut infos = 0;
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string(), "{l}");
        assert!(v["fields"]["message"].is_string(), "{l}");
        if v["level"] == "INFO" {
            infos += 1;
        }
    }
    assert!(infos > 0, "{log}");

    // Under the journal, JSON too gets its prefix (journald strips it).
    let dir2 = temp_dir("log-json-journal");
    let log = run_and_log(&dir2, &["--log-format", "json"], JournalStream::Stderr);
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let body = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .find_map(|p| l.strip_prefix(p))
            .unwrap_or_else(|| panic!("no prefix: {l}"));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }

    // --log-level warn: no info line.
    let dir3 = temp_dir("log-warn");
    let log = run_and_log(&dir3, &["--log-level", "warn"], JournalStream::Unset);
    assert!(!log.contains("INFO"), "{log}");
    // A bad level is a usage error that says what to write.
    let out = Command::new(HALB)
        .args(["--log-level", "loud=please=now", "check-config", "-c"])
        .arg(dir3.join("halb.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("write error, warn, info"), "{err}");
    for d in [dir, dir2, dir3] {
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// dist/halb.service, the unit the package installs: `systemd-analyze
/// verify` passes on it (offline: no systemd as PID 1 is needed), with
/// ExecStart pointing at the binary under test and without the man pages
/// (the package check verifies the installed unit as it is), and it says
/// what docs/operations.md promises.
#[test]
fn unit_file_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/halb.service"
    ))
    .unwrap();
    for want in [
        "Type=notify",
        "ExecStart=/usr/bin/halb run --fd-store --config /etc/halb/halb.toml",
        "FileDescriptorStoreMax=",
        "ExecReload=/usr/bin/halb reload --config /etc/halb/halb.toml",
        "WatchdogSec=",
        "RuntimeDirectory=halb",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(want)), "no {want}");
    }
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap();
    for c in [
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_NICE",
    ] {
        assert!(caps.split_whitespace().any(|w| w == c), "{c} not in {caps}");
    }
    let Some(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing (Debian package systemd, in .ci/packages)"
        );
        eprintln!("SKIPPED: systemd-analyze not installed (apt-get install systemd)");
        return;
    };
    let dir = temp_dir("unit");
    let local = unit
        .replace("/usr/bin/halb", HALB)
        .lines()
        .filter(|l| !l.starts_with("Documentation="))
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("halb.service");
    std::fs::write(&path, local + "\n").unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    // Only what it says about our unit counts: it also loads the units
    // installed here, and may warn about those.
    let ours = |out: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| {
                l.contains("halb.service") && !l.starts_with("/lib/") && !l.starts_with("/usr/lib/")
            })
            .map(str::to_owned)
            .collect()
    };
    assert!(
        out.status.success() && ours(&out).is_empty(),
        "systemd-analyze verify: {out:?}"
    );
    // And a broken unit fails it: the check can fail.
    std::fs::write(&path, "[Service]\nType=notify\nExecStart=relative/halb\n").unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success() || !ours(&out).is_empty(), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn which(prog: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file())
}

/// A network namespace with one veth pair (`hop0` up, 192.0.2.1/24),
/// deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("hop-wd-{}", std::process::id());
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Netns(name.clone());
        ip(&[
            "-n", &name, "link", "add", "hop0", "type", "veth", "peer", "name", "hop1",
        ]);
        ip(&["-n", &name, "addr", "add", "192.0.2.1/24", "dev", "hop0"]);
        for l in ["lo", "hop0", "hop1"] {
            ip(&["-n", &name, "link", "set", l, "up"]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// With VRRP running, the watchdog is fed only while the VRRP thread
/// answers its heartbeats: here it does (a VRRP master in a namespace of
/// its own), and WATCHDOG=1 keeps coming. (That a silent thread stops the
/// feeding is `systemd::tests::a_silent_vrrp_thread_stops_the_feeding`.)
#[test]
fn watchdog_is_fed_while_vrrp_runs() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "needs root (a network namespace and VRRP's raw sockets)"
        );
        eprintln!("SKIPPED: needs root (a network namespace and VRRP's raw sockets)");
        return;
    }
    let ns = Netns::new();
    let dir = temp_dir("sd-vrrp");
    let mut mgr = Manager::bind(&dir.join("notify.sock"));
    let socket = dir.join("halb.sock");
    let file = dir.join("halb.toml");
    std::fs::write(
        &file,
        "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"hop0\"\nvirtual_router_id = 51\n\
         version = 3\npriority = 150\nadvert_interval = \"100ms\"\n\
         virtual_ipaddress = [\"192.0.2.100/24\"]\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0, HALB, "run", "-c"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    mgr.wait("READY=1", |m| has_line(m, "READY=1"));
    let mut d = Daemon::attach(child, &dir, &file, &socket);
    // VRRP runs (its thread answers `halb list` too).
    let master = common::poll(|| {
        let st = d.status()?;
        (st["vrrp"][0]["state"] == "MASTER").then_some(())
    });
    assert!(master.is_some(), "never MASTER:\n{}", d.log());
    for i in 0..3 {
        mgr.wait(&format!("WATCHDOG=1 #{i} with VRRP"), |m| {
            has_line(m, "WATCHDOG=1")
        });
    }
    assert!(
        !d.log()
            .contains("watchdog: the VRRP thread has not answered"),
        "{}",
        d.log()
    );
    d.signal("-TERM");
    mgr.wait("STOPPING=1", |m| has_line(m, "STOPPING=1"));
    mgr.read_until_exit(&mut d);
    assert!(d.wait_exit().success(), "{}", d.log());
    drop(ns);
    std::fs::remove_dir_all(&dir).unwrap();
}
