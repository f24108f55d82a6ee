//! The ldirectord service probes against the real Debian daemons, started
//! here on loopback ports with every file in a temporary directory and
//! killed by PID on drop: vsftpd (ftp), dovecot (imap, imaps, pop, pops),
//! opensmtpd (submission), redis-server (simpletcp), slapd (ldap, ldaps),
//! freeradius (radius), kamailio (sip), squid (http_proxy), leafnode
//! (nntp, behind a listener of the test) and hostile servers.
//! A missing daemon skips the test, or fails it when `CI` is set
//! (.ci/run installs them from .ci/packages). Each probe is up when the
//! daemon answers right, down with the daemon's reason when it answers
//! wrong (a bad password, a missing file), and down once it is stopped.
#![allow(clippy::unwrap_used)]

use halb_health::probe::run;
use halb_health::{
    BodyRegex, CheckSpec, FtpSpec, LdapSpec, MailSpec, ProbeOutcome, ProbeSpec, Timing, TlsSpec,
};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
}

impl Daemon {
    /// Kills the daemon and, when it was started as a process group's
    /// leader (`process_group(0)`), its group: OpenSMTPD's privsep
    /// children otherwise keep the listening socket open a while.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap());
            if nix::unistd::getpgid(Some(pid)) == Ok(pid) {
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary(path: &str, package: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{path} is missing: .ci/run must apt-get install {package}"
    );
    eprintln!("SKIPPED: {path} not found (apt-get install {package})");
    None
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("halb-ldsvc-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} not listening on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most 20 s) until a connection to `port` gets a greeting
/// line starting `220`.
fn wait_greeting(port: u16, what: &str, log: &Path) {
    use std::io::Read as _;
    let start = Instant::now();
    loop {
        let mut buf = [0u8; 64];
        let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            c.read(&mut buf)
        });
        if matches!(got, Ok(n) if buf[..n].starts_with(b"220")) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} on {port} gives no 220 greeting: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGSTOP, then waits (bounded) until every thread of the process is
/// stopped: the signal is only sent when `kill` returns.
fn freeze(pid: nix::unistd::Pid) {
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let start = Instant::now();
    let stopped = || {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        tasks.flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the ")" that ends the command name.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with(['T', 't']))
        })
    };
    while !stopped() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

mod support {
    pub mod dbs;
}

async fn probe(port: u16, probe: ProbeSpec) -> ProbeOutcome {
    let spec = CheckSpec {
        target: SocketAddr::from(([127, 0, 0, 1], port)),
        probe,
        timing: Timing {
            timeout: Duration::from_secs(5),
            ..Timing::default()
        },
    };
    run(&spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_against_vsftpd() {
    let Some(vsftpd) = binary("/usr/sbin/vsftpd", "vsftpd") else {
        return;
    };
    let dir = temp_dir("vsftpd");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("health.txt"), "halb ftp ok\n").unwrap();
    let port = free_port();
    let conf = dir.join("vsftpd.conf");
    let log = dir.join("vsftpd.log");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
             anonymous_enable=YES\nno_anon_password=NO\nanon_root={}\nlocal_enable=NO\nwrite_enable=NO\n\
             seccomp_sandbox=NO\nsecure_chroot_dir=/var/run/vsftpd/empty\npasv_enable=YES\n\
             vsftpd_log_file={}\nxferlog_enable=YES\n",
            root.display(),
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new(vsftpd)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    wait_port(port, "vsftpd", &log);

    // ldirectord's defaults: anonymous / ldirectord@<hostname>.
    let o = probe(port, ProbeSpec::Ftp(FtpSpec::default())).await;
    assert!(o.ok, "{o:?}");
    let file = |re: &str| {
        ProbeSpec::Ftp(FtpSpec {
            retrieve: Some("health.txt".into()),
            expect: Some(BodyRegex::new(re).unwrap()),
            ..FtpSpec::default()
        })
    };
    let o = probe(port, file("^halb ftp ok")).await;
    assert!(o.ok && o.reason.contains("RETR health.txt"), "{o:?}");
    let o = probe(port, file("^something else")).await;
    assert!(!o.ok && o.reason.contains("does not match"), "{o:?}");
    let o = probe(
        port,
        ProbeSpec::Ftp(FtpSpec {
            retrieve: Some("missing.txt".into()),
            ..FtpSpec::default()
        }),
    )
    .await;
    assert!(!o.ok && o.reason.contains("550"), "{o:?}");
    // Local users are off: a login as one is refused.
    let o = probe(
        port,
        ProbeSpec::Ftp(FtpSpec {
            username: "root".into(),
            password: Some("x".into()),
            ..FtpSpec::default()
        }),
    )
    .await;
    assert!(!o.ok && o.reason.contains("530"), "{o:?}");
    d.stop();
    let o = probe(port, ProbeSpec::Ftp(FtpSpec::default())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_and_pop_against_dovecot() {
    let Some(dovecot) = binary("/usr/sbin/dovecot", "dovecot-imapd and dovecot-pop3d") else {
        return;
    };
    binary("/usr/lib/dovecot/imap", "dovecot-imapd").unwrap();
    binary("/usr/lib/dovecot/pop3", "dovecot-pop3d").unwrap();
    let dir = temp_dir("dovecot");
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let [imap, imaps, pop, pops] = [free_port(), free_port(), free_port(), free_port()];
    let d = dir.display();
    let log = dir.join("dovecot.log");
    let conf = dir.join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = imap pop3\nlisten = 127.0.0.1\nssl = yes\n\
             ssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n\
             disable_plaintext_auth = no\nauth_mechanisms = plain\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\n\
             passdb {{\n  driver = static\n  args = password=hc-pass-1\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/home/%u\n}}\n\
             mail_location = maildir:~/Maildir\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n  inet_listener imaps {{\n    port = {imaps}\n    ssl = yes\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop}\n  }}\n  inet_listener pop3s {{\n    port = {pops}\n    ssl = yes\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let child = Command::new(dovecot)
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    for p in [imap, imaps, pop, pops] {
        wait_port(p, "dovecot", &log);
    }
    let login = |password: &str, tls: bool| MailSpec {
        username: Some("hc".into()),
        password: Some(password.into()),
        tls: tls.then(TlsSpec::default),
    };
    for (port, tls) in [(imap, false), (imaps, true)] {
        let o = probe(
            port,
            ProbeSpec::Imap(MailSpec {
                tls: tls.then(TlsSpec::default),
                ..MailSpec::default()
            }),
        )
        .await;
        assert!(o.ok && o.reason.contains("greeting"), "{o:?}");
        let o = probe(port, ProbeSpec::Imap(login("hc-pass-1", tls))).await;
        assert!(
            o.ok && o.reason.contains("LOGIN hc OK"),
            "imap tls={tls}: {o:?}"
        );
        let o = probe(port, ProbeSpec::Imap(login("wrong", tls))).await;
        assert!(
            !o.ok && o.reason.contains("LOGIN hc"),
            "imap tls={tls}: {o:?}"
        );
    }
    for (port, tls) in [(pop, false), (pops, true)] {
        let o = probe(port, ProbeSpec::Pop(login("hc-pass-1", tls))).await;
        assert!(o.ok, "pop tls={tls}: {o:?}");
        let o = probe(port, ProbeSpec::Pop(login("wrong", tls))).await;
        assert!(!o.ok && o.reason.contains("-ERR"), "pop tls={tls}: {o:?}");
    }
    // Plain IMAP against the imaps port: the TLS server sends nothing.
    let o = probe(imaps, ProbeSpec::Imap(MailSpec::default())).await;
    assert!(!o.ok, "{o:?}");
    // TLS against the plain port: the handshake fails, with a reason.
    let o = probe(pop, ProbeSpec::Pop(MailSpec::tls())).await;
    assert!(!o.ok && o.reason.contains("TLS"), "{o:?}");
    daemon.stop();
    let o = probe(imap, ProbeSpec::Imap(MailSpec::default())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_against_opensmtpd() {
    use halb_health::SmtpSpec;
    let Some(smtpd) = binary("/usr/sbin/smtpd", "opensmtpd") else {
        return;
    };
    let dir = temp_dir("smtpd");
    // An RSA certificate: OpenSMTPD's libtls fails the handshake with
    // rcgen's ECDSA one ("internal error").
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(
        dir.join("key.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = dir.join("smtpd.conf");
    std::fs::write(
        &conf,
        format!(
            "pki localhost cert \"{d}/cert.pem\"\npki localhost key \"{d}/key.pem\"\n\
             listen on 127.0.0.1 port {port} tls pki localhost hostname localhost\n\
             action \"relay\" relay\nmatch from local for any action \"relay\"\n"
        ),
    )
    .unwrap();
    let log = dir.join("smtpd.log");
    let child = Command::new(smtpd)
        .process_group(0)
        .arg("-d")
        .arg("-f")
        .arg(&conf)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    wait_port(port, "smtpd", &log);
    // OpenSMTPD 6.8 on Debian 12 offers STARTTLS but cannot finish any
    // handshake with OpenSSL 3 (its privsep RSA engine: "missing private
    // key"; `openssl s_client -starttls smtp` fails alike). The probe
    // reaches the handshake after EHLO and STARTTLS 220, and reports it.
    // Listening is not ready: until its privsep processes are up, smtpd
    // may reset a connection it accepted. Ready is a 220 greeting.
    wait_greeting(port, "smtpd", &log);
    // Plain smtp stays plain.
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::default())).await;
    assert!(o.ok && !o.reason.contains("STARTTLS"), "{o:?}");
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::submission())).await;
    assert!(
        !o.ok && o.reason.starts_with("STARTTLS: TLS handshake"),
        "{o:?}"
    );
    // Plain smtp stays plain.
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::default())).await;
    assert!(o.ok && !o.reason.contains("STARTTLS"), "{o:?}");
    // SIGTERM: smtpd stops its privsep children (a SIGKILL leaves the
    // one holding the listener to reset connections a moment longer).
    terminate(&mut daemon);
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::submission())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletcp_against_redis_server() {
    use halb_health::SimpleTcpSpec;
    let Some(redis) = binary("/usr/bin/redis-server", "redis-server") else {
        return;
    };
    let dir = temp_dir("redis");
    let port = free_port();
    let child = Command::new(redis)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    wait_port(port, "redis-server", &dir.join("none"));
    let simple = |re: &str| {
        ProbeSpec::SimpleTcp(SimpleTcpSpec {
            send: halb_health::spec::unescape("PING\\r\\n").unwrap(),
            expect: Some(BodyRegex::new(re).unwrap()),
            tls: None,
        })
    };
    let o = probe(port, simple("^\\+PONG\r\n")).await;
    assert!(o.ok, "{o:?}");
    // redis keeps the connection open: a wrong expectation is ended by
    // the timeout, with its reason.
    let spec = CheckSpec {
        target: SocketAddr::from(([127, 0, 0, 1], port)),
        probe: simple("^-ERR"),
        timing: Timing {
            timeout: Duration::from_millis(500),
            ..Timing::default()
        },
    };
    let o = run(&spec).await;
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
    daemon.stop();
    let o = probe(port, simple("PONG")).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

/// slapd (support/dbs.rs) on a plain and an ldaps listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_and_ldaps_against_slapd() {
    let Some((mut daemon, tls)) = support::dbs::start_slapd() else {
        return;
    };
    let plain = daemon.addr.port();
    let pid = daemon.pid().unwrap();
    let admin = |password: &str, base: Option<&str>| LdapSpec {
        bind_dn: Some("cn=admin,dc=example,dc=org".into()),
        password: Some(password.into()),
        search_base: base.map(str::to_owned),
        ..LdapSpec::default()
    };
    // ldirectord's default: anonymous, the root DSE.
    let o = probe(plain, ProbeSpec::Ldap(LdapSpec::root_dse())).await;
    assert!(o.ok && o.reason.contains("(root DSE)"), "{o:?}");
    let o = probe(plain, ProbeSpec::Ldap(LdapSpec::default())).await;
    assert!(o.ok && o.reason == "LDAP bind (anonymous) OK", "{o:?}");
    let o = probe(tls, ProbeSpec::Ldap(LdapSpec::tls())).await;
    assert!(o.ok, "{o:?}");
    let o = probe(
        plain,
        ProbeSpec::Ldap(admin("hc-pass-1", Some("ou=health,dc=example,dc=org"))),
    )
    .await;
    assert!(o.ok, "{o:?}");
    // receive matched against the entry's DN.
    let matching = |re: &str| {
        ProbeSpec::Ldap(LdapSpec {
            expect: Some(BodyRegex::new(re).unwrap()),
            tls: Some(TlsSpec::default()),
            ..admin("hc-pass-1", Some("ou=health,dc=example,dc=org"))
        })
    };
    let o = probe(tls, matching("^ou=health,")).await;
    assert!(o.ok, "{o:?}");
    // Verified against the server's own certificate, by name.
    let verified = |name: Option<&str>| {
        ProbeSpec::Ldap(LdapSpec {
            tls: Some(TlsSpec {
                verify: true,
                ca_file: Some(daemon.dir().join("cert.pem")),
                server_name: name.map(str::to_owned),
                ..TlsSpec::default()
            }),
            ..LdapSpec::root_dse()
        })
    };
    let o = probe(tls, verified(Some("localhost"))).await;
    assert!(o.ok, "{o:?}");
    let o = probe(tls, verified(Some("other.example"))).await;
    assert!(!o.ok && o.reason.starts_with("TLS handshake"), "{o:?}");
    let o = probe(
        tls,
        ProbeSpec::Ldap(LdapSpec {
            tls: Some(TlsSpec {
                verify: true,
                ..TlsSpec::default()
            }),
            ..LdapSpec::root_dse()
        }),
    )
    .await;
    assert!(!o.ok && o.reason.contains("UnknownIssuer"), "{o:?}");
    let o = probe(tls, matching("^ou=sales,")).await;
    assert!(
        !o.ok && o.reason.contains("does not match /^ou=sales,/"),
        "{o:?}"
    );
    // The server's own reasons.
    let o = probe(plain, ProbeSpec::Ldap(admin("wrong", None))).await;
    assert_eq!(
        o.reason, "bind cn=admin,dc=example,dc=org: invalidCredentials (49)",
        "{o:?}"
    );
    let o = probe(
        plain,
        ProbeSpec::Ldap(admin("hc-pass-1", Some("ou=missing,dc=example,dc=org"))),
    )
    .await;
    assert!(!o.ok && o.reason.contains("noSuchObject (32)"), "{o:?}");
    // Plain LDAP against the ldaps port, TLS against the plain one.
    let o = probe(tls, ProbeSpec::Ldap(LdapSpec::default())).await;
    assert!(!o.ok, "{o:?}");
    let o = probe(plain, ProbeSpec::Ldap(LdapSpec::tls())).await;
    assert!(!o.ok && o.reason.contains("TLS"), "{o:?}");
    // A hung slapd (SIGSTOP): the kernel accepts, nothing answers; the
    // probe ends by its timeout with the reason.
    freeze(pid);
    let spec = CheckSpec {
        target: SocketAddr::from(([127, 0, 0, 1], plain)),
        probe: ProbeSpec::Ldap(LdapSpec::root_dse()),
        timing: Timing {
            timeout: Duration::from_millis(500),
            ..Timing::default()
        },
    };
    let o = run(&spec).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
    daemon.stop();
    let o = probe(plain, ProbeSpec::Ldap(LdapSpec::root_dse())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

/// freeradius -X (support/dbs.rs): client 127.0.0.1 with secret
/// `testing123`, user `hc` / `hc-pass-1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radius_against_freeradius() {
    use halb_health::RadiusSpec;
    let Some(mut daemon) = support::dbs::start_freeradius() else {
        return;
    };
    let port = daemon.addr.port();
    let pid = daemon.pid().unwrap();
    let check = |user: &str, password: &str, secret: &str, require_accept: bool| {
        ProbeSpec::Radius(RadiusSpec {
            username: user.into(),
            password: Some(password.into()),
            secret: secret.into(),
            require_accept,
        })
    };
    let o = probe(port, check("hc", "hc-pass-1", "testing123", true)).await;
    assert_eq!(o.reason, "Access-Accept for hc: Hello hc", "{o:?}");
    assert!(o.ok);
    // A wrong password: Access-Reject, alive as ldirectord reads it,
    // down when an Accept is required.
    let o = probe(port, check("hc", "wrong", "testing123", false)).await;
    assert!(
        o.ok && o.reason.starts_with("Access-Reject for hc"),
        "{o:?}"
    );
    let o = probe(port, check("hc", "wrong", "testing123", true)).await;
    assert!(!o.ok && o.reason.contains("require_accept"), "{o:?}");
    // ldirectord's default: no password, the server still answers.
    let o = probe(port, ProbeSpec::Radius(RadiusSpec::new("testing123"))).await;
    assert!(
        o.ok && o.reason.starts_with("Access-Reject for halb"),
        "{o:?}"
    );
    // A wrong secret: FreeRADIUS drops a request whose
    // Message-Authenticator it cannot verify; the probe says so.
    let spec = |probe: ProbeSpec, timeout_ms: u64| CheckSpec {
        target: SocketAddr::from(([127, 0, 0, 1], port)),
        probe,
        timing: Timing {
            timeout: Duration::from_millis(timeout_ms),
            ..Timing::default()
        },
    };
    let o = run(&spec(check("hc", "hc-pass-1", "wrong-secret", false), 900)).await;
    assert!(
        !o.ok && o.reason.starts_with("no reply to 3 Access-Requests"),
        "{o:?}"
    );
    assert!(
        support::dbs::radius_log(&daemon).contains("Message-Authenticator"),
        "freeradius did not report the bad Message-Authenticator"
    );
    // A hung server (SIGSTOP): no reply, bounded by the timeout.
    freeze(pid);
    let o = run(&spec(check("hc", "hc-pass-1", "testing123", false), 600)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(!o.ok && o.reason.starts_with("no reply"), "{o:?}");
    daemon.stop();
    let o = run(&spec(check("hc", "hc-pass-1", "testing123", false), 900)).await;
    assert!(!o.ok && o.reason.contains("port unreachable"), "{o:?}");
}

/// Hostile servers: garbage, an endless banner, a trickle. Every new
/// probe ends by its timeout (or sooner) with a reason, and reads only
/// its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_never_stall_the_new_probes() {
    use halb_health::SimpleTcpSpec;
    use tokio::io::AsyncWriteExt as _;
    async fn serve(kind: u8) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    match kind {
                        // Garbage, then silence.
                        0 => {
                            let _ = s.write_all(b"\x00\xff\x1b[31mgarbage\r\n").await;
                            std::future::pending::<()>().await;
                        }
                        // An endless banner line.
                        1 => loop {
                            if s.write_all(&[b'2'; 4096]).await.is_err() {
                                return;
                            }
                        },
                        // A trickle: one byte every 50 ms.
                        _ => loop {
                            if s.write_all(b"2").await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        },
                    }
                });
            }
        });
        port
    }
    let probes = [
        ProbeSpec::Ftp(FtpSpec::default()),
        ProbeSpec::Imap(MailSpec::default()),
        ProbeSpec::Pop(MailSpec::default()),
        ProbeSpec::Nntp,
        ProbeSpec::Ldap(LdapSpec::root_dse()),
        ProbeSpec::Smtp(halb_health::SmtpSpec::submission()),
        ProbeSpec::SimpleTcp(SimpleTcpSpec {
            send: b"x\r\n".to_vec(),
            expect: Some(BodyRegex::new("^OK").unwrap()),
            tls: None,
        }),
    ];
    for kind in 0..3u8 {
        let port = serve(kind).await;
        for p in &probes {
            let spec = CheckSpec {
                target: SocketAddr::from(([127, 0, 0, 1], port)),
                probe: p.clone(),
                timing: Timing {
                    timeout: Duration::from_millis(800),
                    ..Timing::default()
                },
            };
            let start = Instant::now();
            let o = run(&spec).await;
            assert!(!o.ok && !o.reason.is_empty(), "{kind} {p:?}: {o:?}");
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{kind} {p:?} took {:?}",
                start.elapsed()
            );
        }
    }
}

/// SIGTERM by PID (kamailio then stops its children too), SIGKILL
/// after 10 s.
fn terminate(d: &mut Daemon) {
    if let Some(c) = d.child.as_mut() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if c.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_against_kamailio() {
    use halb_health::{SipSpec, SipTransport};
    let Some(kamailio) = binary("/usr/sbin/kamailio", "kamailio") else {
        return;
    };
    let dir = temp_dir("kamailio");
    let port = free_port();
    let conf = dir.join("kamailio.cfg");
    std::fs::write(
        &conf,
        format!(
            "#!KAMAILIO\ndebug=2\nlog_stderror=yes\nchildren=1\nauto_aliases=no\n\
             listen=udp:127.0.0.1:{port}\nlisten=tcp:127.0.0.1:{port}\n\
             mpath=\"/usr/lib/x86_64-linux-gnu/kamailio/modules/\"\nloadmodule \"sl.so\"\nloadmodule \"pv.so\"\n\
             request_route {{\n  if (method==\"OPTIONS\") {{\n    if ($rU==\"busy\") {{ sl_send_reply(\"486\", \"Busy Here\"); exit; }}\n\
             sl_send_reply(\"200\", \"Keepalive\");\n    exit;\n  }}\n  sl_send_reply(\"405\", \"Method Not Allowed\");\n}}\n"
        ),
    )
    .unwrap();
    let log = dir.join("kamailio.log");
    let child = Command::new(kamailio)
        .args(["-DD", "-E", "-f"])
        .arg(&conf)
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    wait_port(port, "kamailio", &log);
    let sip = |transport, user: Option<&str>, expect: Vec<std::ops::RangeInclusive<u16>>| {
        ProbeSpec::Sip(SipSpec {
            transport,
            username: user.map(str::to_owned),
            expect_status: expect,
        })
    };
    for transport in [SipTransport::Udp, SipTransport::Tcp] {
        let o = probe(port, sip(transport, None, vec![])).await;
        assert!(
            o.ok && o.reason == "SIP 200 Keepalive",
            "{transport:?} {o:?}"
        );
        // Any final response is alive; ldirectord's 200 only is not.
        let o = probe(port, sip(transport, Some("busy"), vec![])).await;
        assert!(
            o.ok && o.reason == "SIP 486 Busy Here",
            "{transport:?} {o:?}"
        );
        let o = probe(port, sip(transport, Some("busy"), vec![200..=200])).await;
        assert!(
            !o.ok && o.reason == "SIP 486 Busy Here",
            "{transport:?} {o:?}"
        );
        let o = probe(
            port,
            sip(transport, Some("ldirectord@lb1"), vec![200..=200]),
        )
        .await;
        assert!(o.ok, "{transport:?} {o:?}");
    }
    terminate(&mut d);
    let o = probe(port, sip(SipTransport::Udp, None, vec![])).await;
    assert!(!o.ok && o.reason.contains("port unreachable"), "{o:?}");
    let o = probe(port, sip(SipTransport::Tcp, None, vec![])).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

/// A loopback HTTP origin answering every request with `body`, until
/// dropped (then its port refuses).
struct Origin {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    fn start(body: &'static str) -> Origin {
        use std::io::{Read as _, Write as _};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // Bounded: at most 1000 connections.
            for conn in listener.incoming().take(1000) {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Origin {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_against_squid() {
    use halb_health::HttpSpec;
    let Some(squid) = binary("/usr/sbin/squid", "squid") else {
        return;
    };
    let dir = temp_dir("squid");
    // squid drops to user proxy: its logs and pid file must be writable.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = dir.join("squid.conf");
    std::fs::write(
        &conf,
        format!(
            "http_port 127.0.0.1:{port}\nhttp_access allow all\ncache deny all\n\
             pid_filename {d}/squid.pid\naccess_log {d}/access.log\ncache_log {d}/cache.log\n\
             cache_store_log none\ncoredump_dir {d}\nnetdb_filename none\n\
             shutdown_lifetime 0 seconds\ndns_nameservers 127.0.0.1\n"
        ),
    )
    .unwrap();
    let log = dir.join("squid.out");
    let child = Command::new(squid)
        .args(["-N", "-d", "1", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    wait_port(port, "squid", &log);
    let mut origin = Origin::start("halb origin ok\n");
    let url = format!("http://127.0.0.1:{}/health", origin.port);
    let check = |re: Option<&str>| {
        ProbeSpec::HttpProxy(HttpSpec {
            body_regex: re.map(|r| halb_health::BodyRegex::new(r).unwrap()),
            ..HttpSpec::get(url.clone())
        })
    };
    let o = probe(port, check(Some("^halb origin ok"))).await;
    assert!(o.ok && o.reason.starts_with("HTTP 200"), "{o:?}");
    let o = probe(port, check(Some("^nope"))).await;
    assert!(!o.ok && o.reason.contains("does not match"), "{o:?}");
    origin.stop();
    // The proxy is up, its origin is not: squid answers 503.
    let o = probe(port, check(None)).await;
    assert!(!o.ok && o.reason.starts_with("HTTP 503"), "{o:?}");
    terminate(&mut daemon);
    let o = probe(port, check(None)).await;
    assert!(!o.ok && o.reason.contains("connect to proxy"), "{o:?}");
}

/// An inetd of our own for leafnode (an NNTP server run on its stdin):
/// a loopback listener; each connection gets one leafnode, in a UTS
/// namespace of its own whose host name is `hostname` (leafnode refuses
/// to serve without a unique fully-qualified one). Children are killed by
/// PID on stop.
struct Inetd {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Child>>>,
}

impl Inetd {
    fn start(leafnode: &Path, config: &Path, hostname: &'static str) -> Inetd {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let script = format!(
            "hostname {hostname} && exec {} -F {}",
            leafnode.display(),
            config.display()
        );
        let thread = std::thread::spawn(move || {
            let mut children = Vec::new();
            // Bounded: at most 100 connections.
            for conn in listener.incoming().take(100) {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let Ok(out) = conn.try_clone() else { continue };
                let child = Command::new("unshare")
                    .args(["--uts", "sh", "-c", &script])
                    .stdin(std::os::fd::OwnedFd::from(conn))
                    .stdout(std::os::fd::OwnedFd::from(out))
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("unshare --uts (needs root) to run leafnode");
                children.push(child);
            }
            children
        });
        Inetd {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            for mut c in t.join().unwrap_or_default() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nntp_against_leafnode() {
    let Some(leafnode) = binary("/usr/sbin/leafnode", "leafnode") else {
        return;
    };
    let dir = temp_dir("leafnode");
    let config = dir.join("config");
    std::fs::write(&config, "server = news.invalid\nexpire = 20\n").unwrap();
    let mut good = Inetd::start(&leafnode, &config, "news.halb-test.net");
    let o = probe(good.port, ProbeSpec::Nntp).await;
    assert!(
        o.ok && o.reason.starts_with("NNTP 200 Leafnode NNTP Daemon"),
        "{o:?}"
    );
    // leafnode without a unique host name answers 503: down, its reason shown.
    let mut bad = Inetd::start(&leafnode, &config, "localhost");
    let o = probe(bad.port, ProbeSpec::Nntp).await;
    assert!(
        !o.ok && o.reason.starts_with("greeting 503 Leafnode must have"),
        "{o:?}"
    );
    bad.stop();
    good.stop();
    let o = probe(good.port, ProbeSpec::Nntp).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Submission with a STARTTLS that succeeds, against a real submission
/// server: Debian 12's OpenSMTPD 6.8 cannot finish any TLS handshake with
/// OpenSSL 3 (OpenSMTPD issues #1171 and #1239, fixed upstream in 7.x:
/// "missing private key" in its privsep signer, RSA and ECDSA alike; see
/// `submission_against_opensmtpd`), so dovecot's submission service
/// (dovecot-submissiond) is the peer here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_starttls_against_dovecot_submission() {
    use halb_health::SmtpSpec;
    let Some(dovecot) = binary("/usr/sbin/dovecot", "dovecot-core") else {
        return;
    };
    if binary("/usr/lib/dovecot/submission", "dovecot-submissiond").is_none() {
        return;
    }
    let dir = temp_dir("dovecot-submission");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let d = dir.display();
    let conf = dir.join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             protocols = submission\nlisten = 127.0.0.1\nssl = yes\nhostname = localhost\n\
             ssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n\
             submission_relay_host = 127.0.0.1\nsubmission_relay_port = 9\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\n\
             passdb {{\n  driver = static\n  args = password=unused-1\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/home/%u\n}}\n\
             service submission-login {{\n  inet_listener submission {{\n    port = {port}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let log = dir.join("dovecot.log");
    let child = Command::new(dovecot)
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon {
        child: Some(child),
        dir: dir.clone(),
    };
    wait_port(port, "dovecot submission", &log);
    let submission = |tls: TlsSpec| {
        ProbeSpec::Smtp(SmtpSpec {
            starttls: Some(tls),
            ..SmtpSpec::default()
        })
    };
    // ldirectord's submission: any certificate.
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::submission())).await;
    assert_eq!(
        (o.ok, o.reason.as_str()),
        (true, "SMTP 250 to EHLO after STARTTLS"),
        "{o:?}"
    );
    // Verified against its CA and name.
    let verified = |name: &str| TlsSpec {
        server_name: Some(name.to_owned()),
        verify: true,
        ca_file: Some(dir.join("cert.pem")),
        ..TlsSpec::default()
    };
    let o = probe(port, submission(verified("localhost"))).await;
    assert!(o.ok, "{o:?}");
    // A certificate for another name, or one no trusted CA signed: down,
    // with the handshake's reason.
    let o = probe(port, submission(verified("mail.example.net"))).await;
    assert!(
        !o.ok
            && o.reason.starts_with("STARTTLS: TLS handshake")
            && o.reason.contains("not valid for name"),
        "{o:?}"
    );
    let o = probe(
        port,
        submission(TlsSpec {
            verify: true,
            server_name: Some("localhost".into()),
            ..TlsSpec::default()
        }),
    )
    .await;
    assert!(
        !o.ok
            && o.reason.starts_with("STARTTLS: TLS handshake")
            && o.reason.contains("UnknownIssuer"),
        "{o:?}"
    );
    terminate(&mut daemon);
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::submission())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}
