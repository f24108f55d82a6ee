//! Real database servers for tests: a MariaDB and a PostgreSQL 15
//! started in a temporary directory on a free loopback port, with users
//! that have passwords and a database, created over the Unix socket as
//! the superuser. Shared by halb-health's probe tests and halb's
//! end-to-end test (`#[path]`-included). A missing binary returns `None`
//! after printing `SKIPPED: …`, or panics when `CI` is set.
//!
//! MariaDB: user `hc` / `hc-pass-1` (mysql_native_password) with all
//! rights on database `app` (table `t`) and SELECT elsewhere; user
//! `nopass` without a password or rights.
//! PostgreSQL: `md5user` / `md5-pass-1` (pg_hba md5, MD5-stored),
//! `scramuser` / `scram-pass-1` (scram-sha-256, owns database `app`),
//! `trustuser` (trust).
//! Beside them, the directory and AAA servers of the ldap and radius
//! checks: slapd ([`start_slapd`]) and freeradius ([`start_freeradius`]).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    dir: PathBuf,
    pub addr: SocketAddr,
    /// Starts the server process on its data directory and port.
    spawn: Box<dyn Fn() -> Child>,
}

#[allow(dead_code)] // stop/run: used by the daemon-level tests only
impl Server {
    fn new(dir: &Path, port: u16, spawn: Box<dyn Fn() -> Child>) -> Server {
        Server {
            child: Some(spawn()),
            dir: dir.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            spawn,
        }
    }

    /// A clean shutdown first (postgres: SIGINT = fast shutdown; mariadbd:
    /// SIGTERM), then SIGKILL after 10 s; reaped by PID.
    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server process's PID while it runs.
    pub fn pid(&self) -> Option<nix::unistd::Pid> {
        let id = self.child.as_ref()?.id();
        Some(nix::unistd::Pid::from_raw(i32::try_from(id).ok()?))
    }

    pub fn stop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = kill(pid, Signal::SIGINT);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again (same data, same port) and waits, bounded, until
    /// it accepts TCP connections.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.child = Some((self.spawn)());
        let addr = self.addr;
        wait_for(Duration::from_secs(60), "restarted server", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
    }
}

impl Drop for Server {
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

/// One directory per server: tests run in parallel in one process.
fn temp_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("halb-db-{what}-{}-{n}", std::process::id()));
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

fn output_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `ready` every 100 ms for at most `limit`.
fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- MariaDB

pub fn start_mariadb() -> Option<Server> {
    let mariadbd = binary("/usr/sbin/mariadbd", "mariadb-server")?;
    let install = binary("/usr/bin/mariadb-install-db", "mariadb-server")?;
    binary("/usr/bin/mariadb", "mariadb-client")?;
    let dir = temp_dir("mariadb");
    let data = dir.join("data");
    let root = nix::unistd::geteuid().is_root();
    let mut cmd = Command::new(install);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db");
    if root {
        cmd.arg("--user=root");
    }
    // Two bootstraps at once fail ("Installation of system tables
    // failed"): tests in one process take turns.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    output_ok(&mut cmd, "mariadb-install-db");
    drop(turn);
    let port = free_port();
    let sock = dir.join("sock");
    let d = dir.clone();
    let s = sock.clone();
    let spawn = move || {
        let mut cmd = Command::new(&mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", s.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-name-resolve")
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if root {
            cmd.arg("--user=root");
        }
        cmd.spawn().unwrap()
    };
    let server = Server::new(&dir, port, Box::new(spawn));
    let client = |sql: &str| {
        Command::new("/usr/bin/mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", sock.display()))
            .args(["-uroot", "-e", sql])
            .output()
    };
    wait_for(Duration::from_secs(60), "mariadbd", || {
        client("SELECT 1").is_ok_and(|o| o.status.success())
    });
    let setup = "DROP USER IF EXISTS ''@'localhost'; \
        CREATE DATABASE app; \
        CREATE TABLE app.t (x INT); \
        CREATE USER 'hc'@'127.0.0.1' IDENTIFIED BY 'hc-pass-1'; \
        GRANT ALL ON app.* TO 'hc'@'127.0.0.1'; \
        GRANT SELECT ON *.* TO 'hc'@'127.0.0.1'; \
        CREATE USER 'nopass'@'127.0.0.1'; \
        FLUSH PRIVILEGES;";
    let out = client(setup).unwrap();
    assert!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(server)
}

// ------------------------------------------------------------- PostgreSQL

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub fn start_postgres() -> Option<Server> {
    let postgres = binary(&format!("{PG_BIN}/postgres"), "postgresql-15")?;
    let initdb = binary(&format!("{PG_BIN}/initdb"), "postgresql-15")?;
    let psql = binary(&format!("{PG_BIN}/psql"), "postgresql-client-15")?;
    let dir = temp_dir("pgsql");
    // As root, run the server as `postgres` (it refuses root).
    let ids = if nix::unistd::geteuid().is_root() {
        let u = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("user postgres (created by the postgresql package)");
        nix::unistd::chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
        Some((u.uid.as_raw(), u.gid.as_raw()))
    } else {
        None
    };
    let as_owner = |cmd: &mut Command| {
        if let Some((uid, gid)) = ids {
            cmd.uid(uid).gid(gid);
        }
    };
    let data = dir.join("data");
    let mut cmd = Command::new(initdb);
    cmd.arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "--no-sync"])
        .current_dir(&dir);
    as_owner(&mut cmd);
    output_ok(&mut cmd, "initdb");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         host all md5user 127.0.0.1/32 md5\n\
         host all scramuser 127.0.0.1/32 scram-sha-256\n\
         host all trustuser 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let port = free_port();
    let (d, data_dir) = (dir.clone(), data.clone());
    let spawn = move || {
        let mut cmd = Command::new(&postgres);
        cmd.arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(&d)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .current_dir(&d)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = ids {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn().unwrap()
    };
    let server = Server::new(&dir, port, Box::new(spawn));
    let psql_cmd = |sqls: &[&str]| {
        let mut cmd = Command::new(&psql);
        cmd.arg("-h")
            .arg(&dir)
            .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q"]);
        for s in sqls {
            cmd.args(["-c", s]);
        }
        cmd.current_dir(Path::new("/"));
        cmd.output()
    };
    wait_for(Duration::from_secs(60), "postgres", || {
        psql_cmd(&["SELECT 1"]).is_ok_and(|o| o.status.success())
    });
    let out = psql_cmd(&[
        "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-pass-1'",
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE scramuser LOGIN PASSWORD 'scram-pass-1'",
        "CREATE ROLE trustuser LOGIN",
        "CREATE DATABASE app OWNER scramuser",
    ])
    .unwrap();
    assert!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(server)
}

// ---------------------------------------------------------------- slapd

/// slapd with a `dc=example,dc=org` database (rootdn
/// `cn=admin,dc=example,dc=org` / `hc-pass-1`, an entry
/// `ou=health,dc=example,dc=org`) from a slapd.conf and a slapadd'ed
/// database in a temporary directory, on a plain listener (the server's
/// `addr`) and an ldaps one (the port returned; a self-signed RSA
/// certificate from openssl for `localhost`, in the directory as
/// `cert.pem`, see [`Server::dir`]).
pub fn start_slapd() -> Option<(Server, u16)> {
    let slapd = binary("/usr/sbin/slapd", "slapd")?;
    let slapadd = binary("/usr/sbin/slapadd", "slapd")?;
    let dir = temp_dir("slapd");
    let d = dir.display();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    output_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")),
        "openssl req",
    );
    let conf = dir.join("slapd.conf");
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\npidfile {d}/slapd.pid\n\
             TLSCertificateFile {d}/cert.pem\nTLSCertificateKeyFile {d}/key.pem\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             database mdb\nsuffix \"dc=example,dc=org\"\n\
             rootdn \"cn=admin,dc=example,dc=org\"\nrootpw hc-pass-1\ndirectory {d}/db\n"
        ),
    )
    .unwrap();
    let ldif = dir.join("base.ldif");
    std::fs::write(
        &ldif,
        "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=health,dc=example,dc=org\nobjectClass: organizationalUnit\nou: health\n",
    )
    .unwrap();
    output_ok(
        Command::new(slapadd)
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif),
        "slapadd",
    );
    let (plain, tls) = (free_port(), free_port());
    let log = dir.join("slapd.log");
    let spawn = move || {
        Command::new(&slapd)
            .args(["-d", "0", "-f"])
            .arg(&conf)
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{plain}/ ldaps://127.0.0.1:{tls}/"
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let server = Server::new(&dir, plain, Box::new(spawn));
    wait_for(Duration::from_secs(20), "slapd", || {
        [plain, tls]
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
    });
    Some((server, tls))
}

// ---------------------------------------------------------------- freeradius

/// freeradius -X with a radiusd.conf, a client 127.0.0.1 (secret
/// `testing123`) and a users file (`hc` / `hc-pass-1`, Reply-Message
/// `Hello hc`) in a temporary directory; `addr` is its UDP port. Its log
/// (`-X` output) is [`radius_log`].
pub fn start_freeradius() -> Option<Server> {
    let freeradius = binary("/usr/sbin/freeradius", "freeradius")?;
    let dir = temp_dir("freeradius");
    let d = dir.display();
    // A UDP port: one bound and released.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("radiusd.conf"),
        format!(
            "prefix = /usr\nexec_prefix = /usr\nsysconfdir = {d}\nlocalstatedir = {d}\n\
             sbindir = /usr/sbin\nlogdir = {d}\nraddbdir = {d}\nradacctdir = {d}\n\
             name = freeradius\nconfdir = {d}\nrun_dir = {d}\nlibdir = /usr/lib/freeradius\n\
             pidfile = {d}/radiusd.pid\nmax_request_time = 5\ncleanup_delay = 1\n\
             max_requests = 256\nhostname_lookups = no\nlog {{\n destination = stderr\n}}\n\
             security {{\n allow_core_dumps = no\n allow_vulnerable_openssl = yes\n}}\n\
             client local {{\n ipaddr = 127.0.0.1\n secret = testing123\n}}\n\
             modules {{\n files {{\n  filename = {d}/users\n }}\n pap {{\n }}\n}}\n\
             server default {{\n listen {{\n  type = auth\n  ipaddr = 127.0.0.1\n  port = {port}\n }}\n\
             authorize {{\n  files\n  pap\n }}\n authenticate {{\n  pap\n }}\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("users"),
        "hc Cleartext-Password := \"hc-pass-1\"\n  Reply-Message := \"Hello hc\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("dictionary"), "").unwrap();
    let log = dir.join("freeradius.log");
    let (conf_dir, log_file) = (dir.clone(), log.clone());
    let spawn = move || {
        Command::new(&freeradius)
            .arg("-X")
            .arg("-d")
            .arg(&conf_dir)
            .stdout(std::fs::File::create(&log_file).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let server = Server::new(&dir, port, Box::new(spawn));
    wait_for(Duration::from_secs(20), "freeradius", || {
        radius_log(&server).contains("Ready to process requests")
    });
    Some(server)
}

/// freeradius' `-X` output so far.
pub fn radius_log(server: &Server) -> String {
    std::fs::read_to_string(server.dir.join("freeradius.log")).unwrap_or_default()
}
