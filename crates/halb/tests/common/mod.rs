//! What the end-to-end tests of the `halb` binary share: a daemon started
//! from a config as a user starts it (`halb run --config F --socket S`),
//! asked with `halb list` / `--json`, and killed by PID on drop; bounded
//! polling; free loopback ports and per-test directories.
//!
//! Each test file uses a part of it, hence `dead_code` is allowed here.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const HALB: &str = env!("CARGO_BIN_EXE_halb");

/// How long a wait for a state may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Calls `f` every 50 ms until it returns `Some`, for at most [`DEADLINE`].
pub fn poll<T>(f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_for(DEADLINE, f)
}

/// [`poll`] with its own bound.
pub fn poll_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `halb ARGS`, which must end by itself within `limit` (killed and the
/// test failed otherwise); its output.
pub fn halb_to_end(args: &[&std::ffi::OsStr], limit: Duration) -> Output {
    let mut child = Command::new(HALB)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = poll_for(limit, || child.try_wait().unwrap());
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done.is_some(), "halb {args:?} did not end: {out:?}");
    out
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new empty directory, named after `tag`, this process and a counter:
/// tests run in parallel in one process, two with one tag must not share
/// a config file or control socket.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("halb-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `halb run` in the background, its log in `dir/halb.log`.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    pub file: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    /// Writes `config` to `dir/halb.toml` and runs it; returns once
    /// `halb list` answers.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let file = dir.join("halb.toml");
        std::fs::write(&file, config).unwrap();
        Daemon::start_file(dir, &file)
    }

    /// As a careful user does: `halb check-config` must accept `config`
    /// (written to a new directory for `tag`), then `halb run` it.
    pub fn start_checked(tag: &str, config: &str) -> Daemon {
        let dir = temp_dir(tag);
        let file = dir.join("halb.toml");
        std::fs::write(&file, config).unwrap();
        let out = Command::new(HALB)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "check-config refused it: {out:?}\n{config}"
        );
        Daemon::start_file(&dir, &file)
    }

    /// Runs the config file `file` (which the test may rewrite before a
    /// reload); the control socket and the log go to `dir`.
    pub fn start_file(dir: &Path, file: &Path) -> Daemon {
        let socket = dir.join("halb.sock");
        let log = std::fs::File::create(dir.join("halb.log")).unwrap();
        let child = Command::new(HALB)
            .args(["run", "--config"])
            .arg(file)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon::attach(child, dir, file, &socket)
    }

    /// A daemon the test spawned itself (`halb demo`, say); returns once
    /// `halb list` answers on `socket`.
    pub fn attach(child: Child, dir: &Path, file: &Path, socket: &Path) -> Daemon {
        let d = Daemon {
            child,
            dir: dir.to_owned(),
            file: file.to_owned(),
            socket: socket.to_owned(),
        };
        let ready = poll(|| d.list(&[]).status.success().then_some(()));
        assert!(ready.is_some(), "halb did not come up:\n{}", d.log());
        d
    }

    /// `halb ARGS --socket S`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(HALB)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .unwrap()
    }

    /// `halb list EXTRA --socket S`.
    pub fn list(&self, extra: &[&str]) -> Output {
        let mut args = vec!["list"];
        args.extend_from_slice(extra);
        self.ctl(&args)
    }

    /// `halb list --json`, or `None` while the daemon does not answer.
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = self.list(&["--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The first health entry for which `pred` holds, once it does.
    pub fn wait_health_entry(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let found = poll(|| {
            let st = self.status()?;
            last = st["health"].clone();
            st["health"].as_array()?.iter().find(|h| pred(h)).cloned()
        });
        found.unwrap_or_else(|| panic!("{what}: never seen; last {last:#}\n{}", self.log()))
    }

    /// Waits until real server `real` is `state` ("up" or "down").
    pub fn wait_health(&self, real: SocketAddr, state: &str) -> serde_json::Value {
        let r = real.to_string();
        self.wait_health_entry(&format!("{real} {state}"), |h| {
            h["real"] == r.as_str() && h["health"] == state
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("halb.log")).unwrap_or_default()
    }

    /// Sends `sig` ("-TERM", "-HUP"...) to the daemon.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits (bounded) for the daemon to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let st = poll_for(Duration::from_secs(10), || self.child.try_wait().unwrap());
        st.unwrap_or_else(|| panic!("halb did not exit:\n{}", self.log()))
    }
}

/// Kills a child the test started (a peer it stops and starts again) and
/// reaps it; nothing when it is not running.
pub fn stop_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A back end (for the seamless-restart tests) answering each connection's line with "ok\n".
pub fn ok_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                if s.read(&mut b).is_ok_and(|n| n > 0) {
                    let _ = s.write_all(b"ok\n");
                }
            });
        }
    });
    addr
}

/// One request through the proxy; the error says what went wrong.
pub fn ok_request(vip: SocketAddr) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"hi\n").map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    if got == b"ok\n" {
        Ok(())
    } else {
        Err(format!("answer {:?}", String::from_utf8_lossy(&got)))
    }
}
