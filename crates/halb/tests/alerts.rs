//! Health-check alerts end to end: the real `halb` binary checks a back end
//! on loopback that dies and comes back; a webhook receiver in the test
//! and a real SMTP server (aiosmtpd, Debian python3-aiosmtpd) must get the
//! alerts. Also the `smtp` health probe against that real server. Every
//! wait is a bounded poll; no timing is asserted.
//!
//! Without python3-aiosmtpd: SKIPPED, or a failure when `CI` is set.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{free_port, poll, temp_dir, Daemon};

const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");

/// A python3 with aiosmtpd, or `None` (after printing SKIPPED; a panic
/// when `CI` is set).
fn aiosmtpd_python() -> Option<&'static str> {
    for py in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python3-aiosmtpd is not installed (CI must have it)"
    );
    eprintln!("SKIPPED: python3-aiosmtpd not installed (apt-get install python3-aiosmtpd)");
    None
}

/// aiosmtpd on loopback, writing what it receives to `dir`.
struct Smtp {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Smtp {
    fn start(python: &str, dir: &Path, tls: Option<(&Path, &Path, &str, &str)>) -> Smtp {
        Smtp::start_in(None, python, dir, tls)
    }

    /// In the network namespace `netns` (`ip netns exec` execs, so the
    /// child is python itself).
    fn start_in(
        netns: Option<&str>,
        python: &str,
        dir: &Path,
        tls: Option<(&Path, &Path, &str, &str)>,
    ) -> Smtp {
        let port = free_port();
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, python]);
                c
            }
            None => Command::new(python),
        };
        cmd.arg(SINK).arg(&mail).arg(port.to_string());
        if let Some((cert, key, user, pass)) = tls {
            cmd.arg(cert).arg(key).arg(user).arg(pass);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("smtp.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let _ = out.read_line(&mut line);
        assert_eq!(
            line.trim(),
            "READY",
            "aiosmtpd did not start: {}",
            std::fs::read_to_string(dir.join("smtp.log")).unwrap_or_default()
        );
        Smtp {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: mail,
        }
    }

    /// The messages received so far, in order.
    fn mails(&self) -> Vec<String> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "eml").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits for a message containing every one of `needles`.
    fn wait_mail(&self, needles: &[&str]) -> String {
        poll(|| {
            self.mails()
                .into_iter()
                .find(|m| needles.iter().all(|n| m.contains(n)))
        })
        .unwrap_or_else(|| panic!("no mail with {needles:?}; got {:#?}", self.mails()))
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver: records each POSTed JSON body with its path,
/// answers 200.
struct Hook {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    quit: Arc<AtomicBool>,
}

impl Hook {
    fn start() -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let quit = Arc::new(AtomicBool::new(false));
        let (g, q) = (got.clone(), quit.clone());
        std::thread::spawn(move || {
            while !q.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        if let Some(req) = read_post(s) {
                            g.lock().unwrap().push(req);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Hook { addr, got, quit }
    }

    fn wait(&self, path: &str, new_state: &str) -> serde_json::Value {
        poll(|| {
            self.got
                .lock()
                .unwrap()
                .iter()
                .find(|(p, v)| p == path && v["new_state"] == new_state)
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "no webhook {new_state} on {path}; got {:#?}",
                self.got.lock().unwrap()
            )
        })
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
    }
}

/// One HTTP/1.1 POST: (path, JSON body); answers 200 and closes.
fn read_post(s: TcpStream) -> Option<(String, serde_json::Value)> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut w = s.try_clone().ok()?;
    let mut r = BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).ok()?;
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next()?, parts.next()?.to_owned());
    let mut len = 0usize;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if let Some(v) = lower.strip_prefix("content-type:") {
            content_type = v.trim().to_owned();
        }
    }
    let mut body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut body).ok()?;
    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(method, "POST");
    assert_eq!(content_type, "application/json");
    Some((path, serde_json::from_slice(&body).ok()?))
}

/// A back end that answers `GET /health` with 200, or refuses
/// connections while stopped.
struct Backend {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
}

impl Backend {
    fn start() -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let quit = Arc::new(AtomicBool::new(false));
        let (u, q) = (up.clone(), quit.clone());
        std::thread::spawn(move || {
            let mut listener = Some(l);
            while !q.load(Ordering::Relaxed) {
                if !u.load(Ordering::Relaxed) {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match TcpListener::bind(addr) {
                        Ok(l) => listener.insert(l),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    },
                };
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nOK\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Backend { addr, up, quit }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
    }
}

fn service(port: u16, real: SocketAddr, alert: &str) -> String {
    format!(
        r#"[[virtual_service]]
name = "web"
listen = "127.0.0.1:{port}"
alert = {{ {alert} }}
check = {{ type = "http", path = "/health", interval = "200ms", timeout = "500ms", initial = "up" }}
real_server = [{{ address = "{real}" }}]
"#
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn webhook_and_mail_on_down_and_up_with_repeats_and_reload() {
    let Some(py) = aiosmtpd_python() else { return };
    let dir = temp_dir("e2e");
    let smtp = Smtp::start(py, &dir, None);
    let hook = Hook::start();
    let backend = Backend::start();
    let real = backend.addr;
    let port = free_port();
    let alert = |path: &str| {
        format!(
            r#"webhook = "http://{}{path}", email = "ops@example.com", email_from = "halb@test.example", smtp = "{}", email_alert_freq = "1s""#,
            hook.addr, smtp.addr
        )
    };
    let halb = Daemon::start(&dir, &service(port, real, &alert("/a")));
    halb.wait_health(real, "up");

    // The back end dies: "down" by webhook and by mail, then repeats.
    backend.up.store(false, Ordering::Relaxed);
    let down = hook.wait("/a", "down");
    assert_eq!(down["service"], "web");
    assert_eq!(down["real_server"], real.to_string());
    assert_eq!(down["old_state"], "up");
    assert!(!down["reason"].as_str().unwrap().is_empty(), "{down}");
    assert_eq!(down["director"], hostname());
    assert!(down["time"].as_str().unwrap().ends_with('Z'), "{down}");
    let subject = format!("web: real server {real} is down");
    let mail = smtp.wait_mail(&[&subject, "X-Sink-To: ops@example.com"]);
    assert!(mail.contains("X-Sink-From: halb@test.example"), "{mail}");
    assert!(mail.contains("X-Sink-Tls: no"), "{mail}");
    smtp.wait_mail(&[&format!("web: real server {real} is still down")]);

    // It comes back: "up" both ways.
    backend.up.store(true, Ordering::Relaxed);
    let up = hook.wait("/a", "up");
    assert_eq!(up["old_state"], "down");
    smtp.wait_mail(&[&format!("web: real server {real} is up")]);

    // A reload applies a new alert config: the next alert goes to /b.
    std::fs::write(&halb.file, service(port, real, &alert("/b"))).unwrap();
    let out = halb.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}\n{}", halb.log());
    backend.up.store(false, Ordering::Relaxed);
    hook.wait("/b", "down");

    let st = halb.status().unwrap();
    assert!(st["alerts"]["sent"].as_u64().unwrap() >= 5, "{st:#}");
    assert_eq!(st["alerts"]["dropped"], 0, "{st:#}");
    drop(halb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM: the daemon turns `stopping`, sends a down alert for each
/// real server that is up (by webhook, and by mail that only the
/// `stopping` status lets through), and exits once they are out.
#[test]
fn stopping_alerts_go_out_before_the_exit() {
    let Some(py) = aiosmtpd_python() else { return };
    let dir = temp_dir("stopping");
    let smtp = Smtp::start(py, &dir, None);
    let hook = Hook::start();
    let backend = Backend::start();
    let real = backend.addr;
    let alert = format!(
        r#"webhook = "http://{}/s", email = "ops@example.com", email_from = "halb@test.example", smtp = "{}", email_alert_status = ["stopping"]"#,
        hook.addr, smtp.addr
    );
    let mut halb = Daemon::start(&dir, &service(free_port(), real, &alert));
    halb.wait_health(real, "up");
    assert!(smtp.mails().is_empty(), "{:?}", smtp.mails());

    halb.signal("-TERM");
    let down = hook.wait("/s", "down");
    assert_eq!(down["daemon_status"], "stopping", "{down}");
    assert_eq!(down["reason"], "halb is stopping", "{down}");
    assert_eq!(down["real_server"], real.to_string());
    let mail = smtp.wait_mail(&[&format!("web: real server {real} is down")]);
    assert!(mail.contains("halb is stopping"), "{mail}");
    let st = halb.wait_exit();
    assert!(st.success(), "{st:?}\n{}", halb.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mail_with_required_starttls_and_auth() {
    let Some(py) = aiosmtpd_python() else { return };
    let dir = temp_dir("tls");
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
    let smtp = Smtp::start(py, &dir, Some((&cert_pem, &key_pem, "halb", "s3cret")));
    let backend = Backend::start();
    let real = backend.addr;
    let alert = format!(
        r#"email = "ops@example.com", smtp = "{}", smtp_starttls = "required", smtp_ca_file = "cert.pem", smtp_user = "halb", smtp_password = "s3cret""#,
        smtp.addr
    );
    let port = free_port();
    let halb = Daemon::start(&dir, &service(port, real, &alert));
    halb.wait_health(real, "up");
    backend.up.store(false, Ordering::Relaxed);
    let mail = smtp.wait_mail(&[&format!("real server {real} is down")]);
    assert!(mail.contains("X-Sink-Tls: yes"), "{mail}");
    assert!(mail.contains("X-Sink-Auth: yes"), "{mail}");

    // A wrong password: the server refuses, halb counts a failure.
    let bad = alert.replace("s3cret", "wrong") + r#", smtp_retries = 0, smtp_timeout = "3s""#;
    std::fs::write(&halb.file, service(port, real, &bad)).unwrap();
    assert!(halb.ctl(&["reload"]).status.success());
    backend.up.store(true, Ordering::Relaxed);
    let failed = poll(|| {
        let st = halb.status()?;
        (st["alerts"]["failed"].as_u64()? >= 1).then_some(st)
    });
    assert!(failed.is_some(), "no failed alert:\n{}", halb.log());
    assert_eq!(smtp.mails().len(), 1, "only the first mail got through");
    let log = halb.log();
    assert!(
        log.contains("failed after 1 attempt(s): SMTP") && log.contains("535"),
        "the server's refusal is logged: {log}"
    );
    drop(halb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The existing `smtp` health probe against a real SMTP server.
#[test]
fn smtp_health_probe_against_aiosmtpd() {
    let Some(py) = aiosmtpd_python() else { return };
    let dir = temp_dir("probe");
    let smtp = Smtp::start(py, &dir, None);
    let port = free_port();
    let config = format!(
        r#"[[virtual_service]]
name = "mail"
listen = "127.0.0.1:{port}"
check = {{ type = "smtp", helo_name = "probe.halb.test", interval = "200ms", timeout = "1s" }}
real_server = [{{ address = "{}" }}]
"#,
        smtp.addr
    );
    let halb = Daemon::start(&dir, &config);
    halb.wait_health(smtp.addr, "up");
    let addr = smtp.addr;
    drop(smtp);
    halb.wait_health(addr, "down");
    drop(halb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// OpenSMTPD (Debian opensmtpd) on loopback, delivering every recipient
/// to one maildir as `nobody`. It needs root: `None` (SKIPPED) when not
/// root or not installed, unless `CI` is set.
struct OpenSmtpd {
    child: Child,
    addr: SocketAddr,
    maildir: PathBuf,
}

impl OpenSmtpd {
    fn start(dir: &Path) -> Option<OpenSmtpd> {
        let smtpd = ["/usr/sbin/smtpd", "/usr/local/sbin/smtpd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let root = nix::unistd::geteuid().is_root();
        let why = match (&smtpd, root) {
            (None, _) => "opensmtpd not installed (apt-get install opensmtpd)",
            (_, false) => "OpenSMTPD needs root",
            _ => "",
        };
        if !why.is_empty() {
            assert!(std::env::var_os("CI").is_none(), "{why} (CI must run it)");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let maildir = dir.join("maildir");
        std::fs::create_dir_all(&maildir).unwrap();
        nix::unistd::chown(
            &maildir,
            nix::unistd::User::from_name("nobody")
                .unwrap()
                .map(|u| u.uid),
            None,
        )
        .unwrap();
        std::fs::write(dir.join("vusers"), "@ nobody\n").unwrap();
        let port = free_port();
        let conf = format!(
            "table vusers file:{}\nlisten on 127.0.0.1 port {port}\naction \"sink\" maildir \"{}\" virtual <vusers>\nmatch from any for any action \"sink\"\n",
            dir.join("vusers").display(),
            maildir.display()
        );
        let file = dir.join("smtpd.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(smtpd.unwrap())
            .arg("-d")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("smtpd.log")).unwrap())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let s = OpenSmtpd {
            child,
            addr,
            maildir,
        };
        let up = poll(|| TcpStream::connect(addr).ok());
        assert!(
            up.is_some(),
            "OpenSMTPD did not listen: {}",
            std::fs::read_to_string(dir.join("smtpd.log")).unwrap_or_default()
        );
        Some(s)
    }

    fn mails(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for OpenSmtpd {
    fn drop(&mut self) {
        // SIGTERM: smtpd stops its privilege-separated children itself.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The alert mail through a real MTA. Plain SMTP: Debian's OpenSMTPD
/// 6.8 with OpenSSL 3 fails every TLS handshake on the server side
/// ("SSL routines::internal error", `openssl s_client -starttls smtp`
/// too), so STARTTLS is tested against aiosmtpd above.
#[test]
fn mail_through_opensmtpd() {
    let dir = temp_dir("opensmtpd");
    let Some(smtpd) = OpenSmtpd::start(&dir) else {
        return;
    };
    let backend = Backend::start();
    let real = backend.addr;
    let alert = format!(
        r#"email = "ops@example.com", email_from = "halb@test.example", smtp = "{}""#,
        smtpd.addr
    );
    let halb = Daemon::start(&dir, &service(free_port(), real, &alert));
    halb.wait_health(real, "up");
    backend.up.store(false, Ordering::Relaxed);
    let subject = format!("web: real server {real} is down");
    let mail = poll(|| smtpd.mails().into_iter().find(|m| m.contains(&subject)));
    let mail = mail.unwrap_or_else(|| {
        panic!(
            "OpenSMTPD delivered no alert:\n{}\n{}",
            halb.log(),
            std::fs::read_to_string(dir.join("smtpd.log")).unwrap_or_default()
        )
    });
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(mail.contains("From: halb@test.example"), "{mail}");
    assert!(mail.contains("Reason: connect to"), "{mail}");
    drop(halb);
    drop(smtpd);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Resource events (issue 17) go to the group's alert sinks: a director
/// in its own network namespace (root) with aiosmtpd beside it becomes
/// VRRP master and starts a group of Debian's `ocf:heartbeat:Dummy`;
/// its member's state vanishes twice (`migration_threshold = 2`). The
/// mails: the group started here, the member failed, restarted, failed
/// again, and the group given up.
#[test]
fn resource_events_are_mailed() {
    const DUMMY: &str = "/usr/lib/ocf/resource.d/heartbeat/Dummy";
    let root = nix::unistd::geteuid().is_root();
    if !root || !Path::new(DUMMY).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this as root with resource-agents installed"
        );
        println!("SKIPPED: needs root and {DUMMY}");
        return;
    }
    let Some(py) = aiosmtpd_python() else { return };
    let ns = Netns(format!("hrs-alert-{}", std::process::id()));
    assert!(ip(&["netns", "add", &ns.0]));
    let n = ns.0.as_str();
    assert!(ip(&[
        "-n", n, "link", "add", "d0", "type", "veth", "peer", "name", "d1"
    ]));
    assert!(ip(&["-n", n, "link", "set", "d1", "up"]));
    assert!(ip(&["-n", n, "addr", "add", "192.0.2.1/24", "dev", "d0"]));
    assert!(ip(&["-n", n, "link", "set", "d0", "up"]));
    assert!(ip(&["-n", n, "link", "set", "lo", "up"]));

    let dir = temp_dir("resource-alerts");
    let smtp = Smtp::start_in(Some(n), py, &dir, None);
    let state = dir.join("a.state");
    let member = format!("hrs-a-{}", std::process::id());
    let file = dir.join("halb.toml");
    std::fs::write(
        &file,
        format!(
            r#"[global.alert]
email = "ops@example.com"
email_from = "halb@test.example"
smtp = "{smtp}"

[[vrrp_instance]]
name = "VI_1"
interface = "d0"
virtual_router_id = 51
priority = 100
version = 3
advert_interval = "100ms"
virtual_ipaddress = ["192.0.2.100/24"]

[[resource_group]]
name = "web"
follows = "VI_1"
migration_threshold = 2
failure_timeout = "1h"

  [[resource_group.member]]
  name = "{member}"
  agent = "ocf:heartbeat:Dummy"
  params = {{ state = "{state}" }}
  monitor = {{ interval = "500ms", timeout = "10s" }}
"#,
            smtp = smtp.addr,
            state = state.display(),
        ),
    )
    .unwrap();
    let socket = dir.join("halb.sock");
    let log = std::fs::File::create(dir.join("halb.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", n, common::HALB, "run", "--config"])
        .arg(&file)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon::attach(child, &dir, &file, &socket);

    let m = smtp.wait_mail(&[
        "Resource group: web",
        "Event: started",
        "started on this director",
    ]);
    assert!(m.contains("halb on "), "{m}");
    assert!(state.exists());

    // The member's state vanishes: failed, restarted in place.
    std::fs::remove_file(&state).unwrap();
    smtp.wait_mail(&[
        &format!("Member: {member}"),
        "Event: failed",
        "monitor failed",
    ]);
    smtp.wait_mail(&[&format!("Member: {member}"), "Event: restarted"]);
    let restarted = poll(|| state.exists().then_some(()));
    assert!(restarted.is_some(), "{}", d.log());

    // Again: the threshold is reached, the group is given up here.
    std::fs::remove_file(&state).unwrap();
    let m = smtp.wait_mail(&["Resource group: web", "Event: given_up"]);
    assert!(m.contains("migration_threshold = 2"), "{m}");
    let failed = smtp
        .mails()
        .iter()
        .filter(|m| m.contains("Event: failed"))
        .count();
    assert_eq!(failed, 2, "{:#?}", smtp.mails());

    d.signal("-TERM");
    let st = d.wait_exit();
    assert!(st.success(), "{st:?}\n{}", d.log());
    drop(smtp);
    drop(ns);
}
