//! The ldirectord service probes against the real Debian daemons, started
//! here on loopback ports with every file in a temporary directory and
//! killed by PID on drop: vsftpd (ftp), dovecot (imap, imaps, pop, pops),
//! opensmtpd (submission), redis-server (simpletcp), slapd (ldap, ldaps),
//! freeradius (radius), and hostile servers.
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
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::submission())).await;
    assert!(
        !o.ok && o.reason.starts_with("STARTTLS: TLS handshake"),
        "{o:?}"
    );
    // Plain smtp stays plain.
    let o = probe(port, ProbeSpec::Smtp(SmtpSpec::default())).await;
    assert!(o.ok && !o.reason.contains("STARTTLS"), "{o:?}");
    daemon.stop();
    // Its privsep children close the listening socket as they die.
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "smtpd still listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
