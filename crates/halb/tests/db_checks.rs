//! mysql and pgsql checks end to end: the real `halb` binary checking a
//! real MariaDB and a real PostgreSQL 15 (started by the test, see
//! halb-health's `tests/support/dbs.rs`), and `halb list` / `--json`
//! showing each real server's state with the last probe's reason, also
//! for a real server that has never changed state; and both stopped and
//! started again behind halb, queried through it with their own clients.
//! Every wait is a bounded poll; no timing is asserted.
#![allow(clippy::unwrap_used)]

#[path = "../../halb-health/tests/support/dbs.rs"]
mod dbs;

use std::net::SocketAddr;

mod common;

use common::{free_port, Daemon};

fn start(config: &str) -> Daemon {
    Daemon::start_checked("dbcheck", config)
}

/// The health entry of service `name`, once `pred` holds for it.
fn wait(d: &Daemon, name: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    d.wait_health_entry(name, |h| h["service"] == name && pred(h))
}

fn service(name: &str, real: SocketAddr, check: &str) -> String {
    format!(
        "[[virtual_service]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{}\"\n\
         check = {{ {check}, interval = \"300ms\", timeout = \"3s\" }}\n\
         real_server = [{{ address = \"{real}\" }}]\n\n",
        free_port()
    )
}

fn text(h: &serde_json::Value, key: &str) -> String {
    h[key].as_str().unwrap_or_default().to_owned()
}

#[test]
fn database_checks_and_reasons_in_halb_list() {
    let Some(maria) = dbs::start_mariadb() else {
        return;
    };
    let Some(pg) = dbs::start_postgres() else {
        return;
    };
    let closed: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut cfg = String::new();
    cfg += &service(
        "my-good",
        maria.addr,
        "type = \"mysql\", username = \"hc\", password = \"hc-pass-1\", database = \"app\", query = \"SELECT 1\"",
    );
    cfg += &service(
        "my-bad",
        maria.addr,
        "type = \"mysql\", username = \"hc\", password = \"wrong\"",
    );
    cfg += &service(
        "pg-good",
        pg.addr,
        "type = \"pgsql\", username = \"scramuser\", password = \"scram-pass-1\", database = \"app\", query = \"SELECT 1\"",
    );
    cfg += &service(
        "pg-bad",
        pg.addr,
        "type = \"pgsql\", username = \"md5user\", password = \"wrong\", database = \"postgres\"",
    );
    cfg += &service("closed", closed, "type = \"tcp\"");
    let d = start(&cfg);

    for name in ["my-good", "pg-good"] {
        let h = wait(&d, name, |h| h["health"] == "up");
        assert_eq!(text(&h, "reason"), "query returned 1 row", "{h:#}");
    }
    // Down from the start (initial "down"): no transition ever, but the
    // reason is there.
    let h = wait(&d, "my-bad", |h| h["reason"].is_string());
    assert_eq!(
        (h["health"].as_str(), h["transitions"].as_u64()),
        (Some("down"), Some(0))
    );
    assert!(
        text(&h, "reason").starts_with("login failed: Access denied for user 'hc'@'127.0.0.1'"),
        "{h:#}"
    );
    let h = wait(&d, "pg-bad", |h| h["reason"].is_string());
    assert_eq!(h["health"], "down", "{h:#}");
    assert!(
        text(&h, "reason").starts_with(
            "login failed: FATAL: password authentication failed for user \"md5user\""
        ),
        "{h:#}"
    );
    let h = wait(&d, "closed", |h| h["reason"].is_string());
    assert_eq!(
        (h["health"].as_str(), h["transitions"].as_u64()),
        (Some("down"), Some(0))
    );
    assert!(text(&h, "reason").contains("Connection refused"), "{h:#}");
    assert!(text(&h, "check").starts_with("tcp connect"), "{h:#}");
    let h = wait(&d, "my-good", |_| true);
    assert!(
        text(&h, "check").starts_with(&format!("mysql login hc {} query \"SELECT 1\"", maria.addr)),
        "{h:#}"
    );
    assert!(
        !h.to_string().contains("hc-pass-1"),
        "the password leaked: {h:#}"
    );

    // The ipvsadm-style table: Down lines end with the reason.
    let out = d.list(&[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Down   (login failed: Access denied for user 'hc'@'127.0.0.1'"),
        "{table}"
    );
    assert!(table.contains(&format!("{closed}")), "{table}");
    assert!(
        !table.contains("hc-pass-1") && !table.contains("scram-pass-1"),
        "{table}"
    );
}

/// `SELECT 1` through `vip` with Debian's own clients, as a user would:
/// MariaDB's `mariadb` and PostgreSQL's `psql`, over TCP.
fn query_through(kind: &str, vip: SocketAddr) -> bool {
    let port = vip.port().to_string();
    let mut cmd = if kind == "mysql" {
        let mut c = std::process::Command::new("/usr/bin/mariadb");
        c.args([
            "--no-defaults",
            "--protocol=TCP",
            "-h127.0.0.1",
            "-P",
            &port,
        ])
        .args([
            "-uhc",
            "-phc-pass-1",
            "--connect-timeout=3",
            "-N",
            "-e",
            "SELECT 1",
        ]);
        c
    } else {
        let mut c = std::process::Command::new("/usr/lib/postgresql/15/bin/psql");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "scramuser",
            "-d",
            "app",
        ])
        .args(["-X", "-A", "-t", "-c", "SELECT 1"])
        .env("PGPASSWORD", "scram-pass-1")
        .env("PGCONNECT_TIMEOUT", "3")
        .current_dir("/");
        c
    };
    cmd.output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "1")
}

/// A stopped MariaDB / PostgreSQL goes down behind halb and, started
/// again on its data and port, comes back up and answers through halb.
#[test]
fn stopped_databases_go_down_and_return_behind_halb() {
    let Some(mut maria) = dbs::start_mariadb() else {
        return;
    };
    let Some(mut pg) = dbs::start_postgres() else {
        return;
    };
    let (my_vip, pg_vip): (SocketAddr, SocketAddr) = (
        ([127, 0, 0, 1], free_port()).into(),
        ([127, 0, 0, 1], free_port()).into(),
    );
    let vs = |name: &str, vip: SocketAddr, real: SocketAddr, check: &str| {
        format!(
            "[[virtual_service]]\nname = \"{name}\"\nlisten = \"{vip}\"\n\
             check = {{ {check}, interval = \"300ms\", timeout = \"3s\", rise = 2, fall = 2 }}\n\
             real_server = [{{ address = \"{real}\" }}]\n\n"
        )
    };
    let cfg = vs(
        "my",
        my_vip,
        maria.addr,
        "type = \"mysql\", username = \"hc\", password = \"hc-pass-1\", database = \"app\", query = \"SELECT 1\"",
    ) + &vs(
        "pg",
        pg_vip,
        pg.addr,
        "type = \"pgsql\", username = \"scramuser\", password = \"scram-pass-1\", database = \"app\", query = \"SELECT 1\"",
    );
    let d = start(&cfg);
    let both = [("my", "mysql", my_vip), ("pg", "pgsql", pg_vip)];
    for (name, kind, vip) in both {
        wait(&d, name, |h| h["health"] == "up");
        assert!(query_through(kind, vip), "{kind} through halb\n{}", d.log());
    }

    maria.stop();
    pg.stop();
    for name in ["my", "pg"] {
        let h = wait(&d, name, |h| h["health"] == "down");
        assert_ne!(text(&h, "reason"), "query returned 1 row", "{h:#}");
    }
    assert!(!query_through("mysql", my_vip), "no real server, no answer");

    maria.run();
    pg.run();
    for (name, kind, vip) in both {
        let h = wait(&d, name, |h| h["health"] == "up");
        assert_eq!(text(&h, "reason"), "query returned 1 row", "{h:#}");
        assert_eq!(h["transitions"], 3, "up, down, up: {h:#}");
        assert!(
            query_through(kind, vip),
            "{kind} through halb after restart\n{}",
            d.log()
        );
    }
}
