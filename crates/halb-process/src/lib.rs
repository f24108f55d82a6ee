//! The one process runner of halb: every program halb starts (external
//! health checks, VRRP `track_script`, notify hooks, resource agents)
//! runs through [`run`].
//!
//! - No shell: the program and its arguments as given; stdin is
//!   /dev/null.
//! - Its own process group, so a script's own children (`sleep`, `curl`)
//!   go with it: at the deadline, or when the future is dropped (the
//!   caller gave up), the whole group gets SIGKILL — unless
//!   [`Spec::outlive`] is set (a notify hook may outlive the daemon, as
//!   keepalived's do).
//! - Output bounded: at most [`Spec::capture`] bytes of each of stdout
//!   and stderr are kept; the rest is read and dropped, so a chatty
//!   program never blocks on a full pipe. `capture = 0`: /dev/null.
//! - The exit is returned: a code, a signal, the deadline, or why it
//!   could not start.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to the daemon's environment.
    pub env: Vec<(String, String)>,
    /// Killed (with its process group) this long after the start; `None`:
    /// no deadline of its own (the caller bounds it by dropping the
    /// future).
    pub timeout: Option<Duration>,
    /// Bytes of stdout and of stderr kept, each.
    pub capture: usize,
    /// Not killed when the future is dropped (hooks that may outlive the
    /// daemon); the deadline still applies.
    pub outlive: bool,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// Still running at the deadline: its process group was killed.
    TimedOut(Duration),
    /// Could not be started.
    Spawn(String),
    /// Waiting for it failed.
    Wait(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::TimedOut(t) => write!(f, "timed out after {t:?}"),
            Exit::Spawn(e) => write!(f, "did not start: {e}"),
            Exit::Wait(e) => write!(f, "wait: {e}"),
        }
    }
}

/// What [`run`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Exit,
    /// At most [`Spec::capture`] bytes of each.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// The first line of stderr (or stdout), for a log line.
    pub fn first_line(&self) -> Option<String> {
        [&self.stderr, &self.stdout]
            .into_iter()
            .filter_map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_owned)
            })
            .next()
    }
}

/// Kills the process group on drop while armed (disarmed once the leader
/// has been reaped: the group id could then be reused).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// Reads all of `r`, keeping the first `limit` bytes.
async fn bounded(r: Option<impl AsyncRead + Unpin>, limit: usize, kept: &mut Vec<u8>) {
    let Some(mut r) = r else { return };
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// How long the output is still read after the program exited, when
/// something it left behind keeps its pipes open.
pub const READ_GRACE: Duration = Duration::from_millis(200);

/// Runs `spec` to its end. See the crate documentation.
pub async fn run(spec: &Spec) -> Outcome {
    let start = Instant::now();
    let mut command = std::process::Command::new(&spec.program);
    command.args(&spec.args).process_group(0);
    // A hook or an agent does not speak for halb to systemd (sd_notify:
    // the daemon's own READY/WATCHDOG messages only).
    for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        command.env_remove(k);
    }
    for (k, v) in &spec.env {
        command.env(k, v);
    }
    let pipe = || {
        if spec.capture > 0 {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    command.stdin(Stdio::null()).stdout(pipe()).stderr(pipe());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(!spec.outlive);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                exit: Exit::Spawn(format!("{}: {e}", spec.program.display())),
                stdout: Vec::new(),
                stderr: Vec::new(),
                elapsed: start.elapsed(),
            }
        }
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    // Dropped with the future unless the program may outlive us; at the
    // deadline it fires either way.
    let mut guard = GroupGuard(if spec.outlive { None } else { pgid });
    let (out_r, err_r) = (child.stdout.take(), child.stderr.take());
    let finish = async {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = {
            let mut reads = std::pin::pin!(async {
                tokio::join!(
                    bounded(out_r, spec.capture, &mut stdout),
                    bounded(err_r, spec.capture, &mut stderr)
                )
            });
            let mut read_all = false;
            let status = loop {
                tokio::select! {
                    s = child.wait() => break s,
                    _ = &mut reads, if !read_all => read_all = true,
                }
            };
            if !read_all {
                // It exited, but a process it left behind (a daemon
                // started in the background without redirecting its
                // output, as the mysql agent's runuser) may hold the
                // pipes for as long as it runs: what comes within
                // READ_GRACE is kept, as Pacemaker reads what is there
                // when the agent exits.
                let _ = tokio::time::timeout(READ_GRACE, &mut reads).await;
            }
            status
        };
        (status, stdout, stderr)
    };
    let result = match spec.timeout {
        Some(t) => tokio::time::timeout(t, finish).await.ok(),
        None => Some(finish.await),
    };
    let Some((status, stdout, stderr)) = result else {
        guard.0 = pgid;
        drop(guard);
        return Outcome {
            exit: Exit::TimedOut(spec.timeout.unwrap_or_default()),
            stdout: Vec::new(),
            stderr: Vec::new(),
            elapsed: start.elapsed(),
        };
    };
    guard.0 = None;
    let exit = match status {
        Err(e) => Exit::Wait(e.to_string()),
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(s)) => Exit::Signal(s),
            (None, None) => Exit::Wait(format!("{st}")),
        },
    };
    Outcome {
        exit,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Spec {
        Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            capture: 16,
            timeout: Some(Duration::from_secs(10)),
            ..Spec::default()
        }
    }

    #[tokio::test]
    async fn a_child_left_holding_the_pipes_does_not_hold_the_result() {
        // As the mysql agent's `runuser … &`: the program exits at once,
        // its background child keeps stdout open for 30 s.
        let mut spec = sh("sleep 30 & echo $!; exit 0");
        spec.capture = 64;
        let o = run(&spec).await;
        assert_eq!(o.exit, Exit::Code(0));
        assert!(o.elapsed < Duration::from_secs(10), "{:?}", o.elapsed);
        // (The sleep is left running, as an agent's daemon is: end it by
        // the PID it printed.)
        let pid = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        assert!(pid.parse::<u32>().is_ok(), "{pid:?}");
        let _ = run(&sh(&format!("kill {pid}"))).await;
    }

    #[tokio::test]
    async fn exit_codes_signals_and_bounded_output() {
        let o = run(&sh("echo hello; echo oops >&2; exit 3")).await;
        assert_eq!(o.exit, Exit::Code(3));
        assert_eq!(o.stdout, b"hello\n");
        assert_eq!(o.first_line().as_deref(), Some("oops"));
        let o = run(&sh("kill -9 $$")).await;
        assert_eq!(o.exit, Exit::Signal(9));
        // 1 MB of output: 16 bytes kept, the program is not blocked.
        let o = run(&sh("head -c 1000000 /dev/zero; exit 0")).await;
        assert!(o.success());
        assert_eq!(o.stdout.len(), 16);
        let o = run(&Spec {
            program: "/nonexistent/prog".into(),
            ..Spec::default()
        })
        .await;
        assert!(matches!(o.exit, Exit::Spawn(_)), "{:?}", o.exit);
    }

    /// At the deadline the whole group dies: the script's own child too.
    #[tokio::test]
    async fn the_deadline_kills_the_process_group() {
        let dir = std::env::temp_dir().join(format!("halb-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let mut spec = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        spec.timeout = Some(Duration::from_millis(500));
        let o = run(&spec).await;
        assert_eq!(o.exit, Exit::TimedOut(Duration::from_millis(500)));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed: gone, or a zombie until init reaps it.
        let mut gone = false;
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone, "the script's child {pid} survived the deadline");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
