//! The mysql and pgsql probes against REAL servers started here: a
//! MariaDB (`mariadb-install-db` into a temporary datadir, then
//! `mariadbd` on a free loopback port, grant tables on) and a PostgreSQL
//! 15 (`initdb`, then `postgres` on a free loopback port, run as the
//! `postgres` user when the test runs as root). Users with passwords and
//! a database are created over the Unix socket as the superuser; the
//! probes then log in over TCP. A missing server binary skips the test,
//! or fails it when `CI` is set. Servers are killed by PID on drop; every
//! wait is bounded.
#![allow(clippy::unwrap_used)]

use halb_health::probe::run;
use halb_health::{CheckSpec, InitialState, ProbeOutcome, ProbeSpec, SqlSpec, Timing};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Server {
    /// A clean shutdown first (postgres: SIGINT = fast shutdown; mariadbd:
    /// SIGTERM), then SIGKILL after 10 s.
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = kill(pid, Signal::SIGINT);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let dir = std::env::temp_dir().join(format!("halb-db-{what}-{}", std::process::id()));
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

fn check(target: SocketAddr, probe: ProbeSpec) -> CheckSpec {
    CheckSpec {
        target,
        probe,
        timing: Timing {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            rise: 1,
            fall: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            initial: InitialState::Down,
        },
    }
}

fn sql(user: Option<&str>, password: Option<&str>, db: Option<&str>, q: Option<&str>) -> SqlSpec {
    SqlSpec {
        username: user.map(str::to_owned),
        password: password.map(str::to_owned),
        database: db.map(str::to_owned),
        query: q.map(str::to_owned),
    }
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

fn start_mariadb() -> Option<Server> {
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
    output_ok(&mut cmd, "mariadb-install-db");
    let port = free_port();
    let sock = dir.join("sock");
    let mut cmd = Command::new(mariadbd);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--skip-name-resolve")
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if root {
        cmd.arg("--user=root");
    }
    let child = cmd.spawn().unwrap();
    let server = Server {
        child,
        dir: dir.clone(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
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

async fn probe(target: SocketAddr, p: ProbeSpec) -> ProbeOutcome {
    run(&check(target, p)).await
}

#[tokio::test]
async fn mysql_against_a_real_mariadb() {
    let Some(db) = start_mariadb() else { return };
    let a = db.addr;
    let my = |s: SqlSpec| ProbeSpec::Mysql(s);

    // No user: the greeting only.
    let o = probe(a, my(SqlSpec::default())).await;
    assert!(o.ok && o.reason.contains("MariaDB"), "{o:?}");

    // Good login, with and without the database.
    let o = probe(a, my(sql(Some("hc"), Some("hc-pass-1"), None, None))).await;
    assert!(o.ok && o.reason.starts_with("logged in as hc"), "{o:?}");
    let o = probe(a, my(sql(Some("hc"), Some("hc-pass-1"), Some("app"), None))).await;
    assert!(o.ok, "{o:?}");
    // A user without a password.
    let o = probe(a, my(sql(Some("nopass"), None, None, None))).await;
    assert!(o.ok, "{o:?}");

    // Wrong password: down with the server's message.
    let o = probe(a, my(sql(Some("hc"), Some("wrong"), None, None))).await;
    assert!(!o.ok, "{o:?}");
    assert!(
        o.reason
            .starts_with("login failed: Access denied for user 'hc'@'127.0.0.1'")
            && o.reason.contains("1045"),
        "{o:?}"
    );
    // A database that does not exist.
    let o = probe(
        a,
        my(sql(Some("hc"), Some("hc-pass-1"), Some("nope"), None)),
    )
    .await;
    assert!(
        !o.ok && o.reason.contains("Unknown database 'nope'"),
        "{o:?}"
    );
    // A database the user may not open.
    let o = probe(a, my(sql(Some("nopass"), None, Some("app"), None))).await;
    assert!(!o.ok && o.reason.contains("Access denied"), "{o:?}");

    // Queries.
    let o = probe(
        a,
        my(sql(
            Some("hc"),
            Some("hc-pass-1"),
            Some("app"),
            Some("SELECT 1"),
        )),
    )
    .await;
    assert_eq!(
        (o.ok, o.reason.as_str()),
        (true, "query returned 1 row"),
        "{o:?}"
    );
    let o = probe(
        a,
        my(sql(
            Some("hc"),
            Some("hc-pass-1"),
            Some("app"),
            Some("SELECT x FROM t"),
        )),
    )
    .await;
    assert_eq!(
        (o.ok, o.reason.as_str()),
        (true, "query returned 0 rows"),
        "{o:?}"
    );
    let o = probe(
        a,
        my(sql(
            Some("hc"),
            Some("hc-pass-1"),
            Some("app"),
            Some("DO 1"),
        )),
    )
    .await;
    assert_eq!((o.ok, o.reason.as_str()), (true, "query OK"), "{o:?}");
    let o = probe(
        a,
        my(sql(
            Some("hc"),
            Some("hc-pass-1"),
            Some("app"),
            Some("SELECT * FROM missing"),
        )),
    )
    .await;
    assert!(
        !o.ok
            && o.reason
                .starts_with("query: Table 'app.missing' doesn't exist"),
        "{o:?}"
    );

    // The server stops: down.
    let addr = db.addr;
    drop(db);
    let o = probe(addr, my(SqlSpec::default())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}

// ------------------------------------------------------------- PostgreSQL

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn start_postgres() -> Option<Server> {
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
    let mut cmd = Command::new(postgres);
    cmd.arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_owner(&mut cmd);
    let child = cmd.spawn().unwrap();
    let server = Server {
        child,
        dir: dir.clone(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
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

#[tokio::test]
async fn pgsql_against_a_real_postgresql() {
    let Some(db) = start_postgres() else { return };
    let a = db.addr;
    let pg = |s: SqlSpec| ProbeSpec::Pgsql(s);

    // No user: SSLRequest answered.
    let o = probe(a, pg(SqlSpec::default())).await;
    assert_eq!(
        (o.ok, o.reason.as_str()),
        (true, "PostgreSQL answered"),
        "{o:?}"
    );

    // SCRAM-SHA-256, MD5 and trust logins.
    let o = probe(
        a,
        pg(sql(
            Some("scramuser"),
            Some("scram-pass-1"),
            Some("app"),
            None,
        )),
    )
    .await;
    assert_eq!(
        (o.ok, o.reason.as_str()),
        (true, "logged in as scramuser"),
        "{o:?}"
    );
    let o = probe(
        a,
        pg(sql(
            Some("md5user"),
            Some("md5-pass-1"),
            Some("postgres"),
            None,
        )),
    )
    .await;
    assert!(o.ok, "{o:?}");
    let o = probe(a, pg(sql(Some("trustuser"), None, Some("postgres"), None))).await;
    assert!(o.ok, "{o:?}");

    // Wrong passwords: down with the server's message.
    for user in ["scramuser", "md5user"] {
        let o = probe(
            a,
            pg(sql(Some(user), Some("wrong"), Some("postgres"), None)),
        )
        .await;
        assert!(!o.ok, "{o:?}");
        assert!(
            o.reason.starts_with(&format!(
                "login failed: FATAL: password authentication failed for user \"{user}\""
            )),
            "{o:?}"
        );
    }
    // No pg_hba line for this user.
    let o = probe(a, pg(sql(Some("postgres"), None, None, None))).await;
    assert!(!o.ok && o.reason.contains("no pg_hba.conf entry"), "{o:?}");
    // A database that does not exist (the default is the user name).
    let o = probe(
        a,
        pg(sql(Some("scramuser"), Some("scram-pass-1"), None, None)),
    )
    .await;
    assert!(
        !o.ok && o.reason.contains("database \"scramuser\" does not exist"),
        "{o:?}"
    );

    // Queries.
    let o = probe(
        a,
        pg(sql(
            Some("scramuser"),
            Some("scram-pass-1"),
            Some("app"),
            Some("SELECT 1"),
        )),
    )
    .await;
    assert_eq!(
        (o.ok, o.reason.as_str()),
        (true, "query returned 1 row"),
        "{o:?}"
    );
    let o = probe(
        a,
        pg(sql(
            Some("scramuser"),
            Some("scram-pass-1"),
            Some("app"),
            Some("SELECT * FROM missing"),
        )),
    )
    .await;
    assert!(
        !o.ok && o.reason.contains("relation \"missing\" does not exist"),
        "{o:?}"
    );

    let addr = db.addr;
    drop(db);
    let o = probe(addr, pg(SqlSpec::default())).await;
    assert!(!o.ok && o.reason.contains("connect"), "{o:?}");
}
