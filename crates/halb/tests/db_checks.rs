//! mysql and pgsql checks end to end: the real `halb` binary checking a
//! real MariaDB and a real PostgreSQL 15 (started by the test, see
//! halb-health's `tests/support/dbs.rs`), and `halb list` / `--json`
//! showing each real server's state with the last probe's reason, also
//! for a real server that has never changed state. Every wait is a
//! bounded poll; no timing is asserted.
#![allow(clippy::unwrap_used)]

#[path = "../../halb-health/tests/support/dbs.rs"]
mod dbs;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HALB: &str = env!("CARGO_BIN_EXE_halb");
const DEADLINE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Daemon {
    fn start(config: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("halb-dbcheck-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("halb.toml");
        std::fs::write(&file, config).unwrap();
        let out = Command::new(HALB)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let socket = dir.join("halb.sock");
        let log = std::fs::File::create(dir.join("halb.log")).unwrap();
        let child = Command::new(HALB)
            .args(["run", "--config"])
            .arg(&file)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child, socket, dir };
        let ready = poll(|| d.list(&[]).status.success().then_some(()));
        assert!(ready.is_some(), "halb did not come up:\n{}", d.log());
        d
    }

    fn list(&self, extra: &[&str]) -> Output {
        Command::new(HALB)
            .arg("list")
            .args(extra)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .unwrap()
    }

    /// The health entry of service `name`, once `pred` holds for it.
    fn wait(&self, name: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let found = poll(|| {
            let out = self.list(&["--json"]);
            let st: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let h = st["health"]
                .as_array()?
                .iter()
                .find(|h| h["service"] == name)?
                .clone();
            last = h.clone();
            pred(&h).then_some(h)
        });
        found.unwrap_or_else(|| {
            panic!(
                "{name}: condition never held; last {last:#}\n{}",
                self.log()
            )
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("halb.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let d = Daemon::start(&cfg);

    for name in ["my-good", "pg-good"] {
        let h = d.wait(name, |h| h["health"] == "up");
        assert_eq!(text(&h, "reason"), "query returned 1 row", "{h:#}");
    }
    // Down from the start (initial "down"): no transition ever, but the
    // reason is there.
    let h = d.wait("my-bad", |h| h["reason"].is_string());
    assert_eq!(
        (h["health"].as_str(), h["transitions"].as_u64()),
        (Some("down"), Some(0))
    );
    assert!(
        text(&h, "reason").starts_with("login failed: Access denied for user 'hc'@'127.0.0.1'"),
        "{h:#}"
    );
    let h = d.wait("pg-bad", |h| h["reason"].is_string());
    assert_eq!(h["health"], "down", "{h:#}");
    assert!(
        text(&h, "reason").starts_with(
            "login failed: FATAL: password authentication failed for user \"md5user\""
        ),
        "{h:#}"
    );
    let h = d.wait("closed", |h| h["reason"].is_string());
    assert_eq!(
        (h["health"].as_str(), h["transitions"].as_u64()),
        (Some("down"), Some(0))
    );
    assert!(text(&h, "reason").contains("Connection refused"), "{h:#}");
    assert!(text(&h, "check").starts_with("tcp connect"), "{h:#}");
    let h = d.wait("my-good", |_| true);
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
