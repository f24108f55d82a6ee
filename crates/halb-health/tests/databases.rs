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
use std::net::SocketAddr;
use std::time::Duration;

mod support {
    pub mod dbs;
}
use support::dbs::{start_mariadb, start_postgres};

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

/// Servers that accept and never speak, or trickle a plausible greeting
/// one byte every 100 ms (a mysql handshake packet; a pgsql
/// authentication request): every probe ends by the check's timeout, down.
#[tokio::test]
async fn silent_and_trickling_servers_time_out() {
    async fn server(greeting: &'static [u8]) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Bounded: at most the greeting, a byte per 100 ms.
                    for b in greeting {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if tokio::io::AsyncWriteExt::write_all(&mut s, &[*b])
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        addr
    }
    // mysql: a 74-byte handshake packet's header and protocol version 10,
    // then the server version: the probe needs the whole packet.
    let mysql = b"\x4a\x00\x00\x00\x0a10.11.6-MariaDB-0+deb12u1\x00\x01\x02\x03\x04";
    // pgsql: 'R', length 8 (AuthenticationOk would follow), trickled.
    let pgsql = b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I";
    let silent = server(b"").await;
    for (addr, p) in [
        (silent, ProbeSpec::Mysql(SqlSpec::default())),
        (silent, ProbeSpec::Pgsql(sql(Some("u"), None, None, None))),
        (server(mysql).await, ProbeSpec::Mysql(SqlSpec::default())),
        (
            server(pgsql).await,
            ProbeSpec::Pgsql(sql(Some("u"), None, None, None)),
        ),
    ] {
        let mut c = check(addr, p);
        c.timing.timeout = Duration::from_millis(300);
        let o = tokio::time::timeout(Duration::from_secs(5), run(&c))
            .await
            .expect("the probe outlived its timeout");
        assert!(!o.ok && o.reason.starts_with("timed out after"), "{o:?}");
    }
}
