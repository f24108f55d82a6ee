//! mysql and pgsql checks end to end: the real `halb` binary checking a
//! real MariaDB and a real PostgreSQL 15 (started by the test, see
//! halb-health's `tests/support/dbs.rs`), and `halb list` / `--json`
//! showing each real server's state with the last probe's reason, also
//! for a real server that has never changed state. Every wait is a
//! bounded poll; no timing is asserted.
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
