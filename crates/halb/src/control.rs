//! The control socket: a Unix stream socket, owner-only (mode 0600), one
//! JSON request line and one JSON response per connection.

use anyhow::Context;
use halb_table::{ConnectionInfo, ServiceStats};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest request line the daemon reads; requests are tiny.
const MAX_REQUEST: u64 = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Connections,
    Reload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub dataplane: String,
    pub config: Option<PathBuf>,
    pub uptime_secs: u64,
    pub services: Vec<ServiceStats>,
    /// Health of every checked real server (unchecked ones are absent:
    /// they are always up). A real server that is down with
    /// `on_down = "remove"` is here but not in `services`.
    #[serde(default)]
    pub health: Vec<RealHealth>,
    /// Health transitions since the daemon started.
    #[serde(default)]
    pub health_transitions: u64,
    /// Health-check alerts sent, failed, retried and dropped.
    #[serde(default)]
    pub alerts: halb_alert::AlertStats,
    /// VRRP instances (empty without `[[vrrp_instance]]`).
    #[serde(default)]
    pub vrrp: Vec<VrrpStatus>,
}

/// One VRRP instance as `halb list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 2 or 3.
    pub version: u8,
    /// MASTER, BACKUP, FAULT or INIT.
    pub state: String,
    /// As configured.
    pub priority: u8,
    /// With tracking applied (what the adverts carry).
    pub effective_priority: u8,
    /// The master's primary address (ours when master), if known.
    pub master: Option<std::net::IpAddr>,
    /// `192.0.2.100/24`.
    pub vips: Vec<String>,
    /// Sync group, if any.
    pub group: Option<String>,
    /// Why it is in Fault.
    pub faults: Vec<String>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Received packets dropped, by reason (`ttl`, `checksum`, `auth`…).
    pub drops: std::collections::BTreeMap<String, u64>,
    /// v3 adverts accepted with another address list than ours.
    #[serde(default)]
    pub address_mismatches: u64,
}

pub use halb_director::RealHealth;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status(Status),
    Connections {
        connections: Vec<ConnectionInfo>,
    },
    Reloaded {
        summary: String,
    },
    /// The new config did not validate; the running one stays.
    Rejected {
        message: String,
    },
    Error {
        message: String,
    },
}

/// Send one request to the daemon and read its answer.
pub fn request(socket: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the halb daemon at {} (is `halb run` or `halb demo` running? \
             pass --socket PATH if it uses another control socket)",
            socket.display()
        )
    })?;
    // A reload answers once the new table is applied: with tens of
    // thousands of services on a slow machine that takes minutes.
    let wait = match req {
        Request::Reload => Duration::from_secs(600),
        Request::Status | Request::Connections => Duration::from_secs(30),
    };
    stream.set_read_timeout(Some(wait))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .with_context(|| {
            format!(
                "the daemon at {} did not answer within {} s",
                socket.display(),
                wait.as_secs()
            )
        })?;
    serde_json::from_str(&answer).context("the daemon sent an answer halb cannot read")
}

/// Bind the control socket: create its directory (0700) if missing, replace
/// a stale socket that nobody answers on, refuse to steal a live one.
pub fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating control socket directory {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "control socket path {} exists and is not a socket; remove it or choose another control_socket",
                path.display()
            );
        }
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another halb daemon is already listening on {}; stop it or choose another control_socket",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// A message to the daemon's one task.
#[derive(Debug)]
pub enum Msg {
    /// Answer this request.
    Ask(Request, tokio::sync::oneshot::Sender<Response>),
    /// An answer was written to its client: work it did not wait for may
    /// run now.
    Answered,
}

/// What readers see without waiting for the daemon's work: the
/// director's part of the status as the daemon's task publishes it when
/// asked (a reader waits at most [`crate::daemon::FRESH_WAIT`] for it,
/// else takes the last one), and the live parts read at once (data-plane
/// counters and connections through the data plane's observer, alert
/// counters, VRRP state).
pub struct Reader {
    pub snapshot: tokio::sync::watch::Receiver<std::sync::Arc<Status>>,
    /// Asks the daemon's task to publish a fresh snapshot (it costs a
    /// walk of every checked real server, so it is made when asked for,
    /// not after every probe).
    pub refresh: tokio::sync::Notify,
    pub observer: std::sync::Arc<dyn halb_table::Observer>,
    pub alerts: halb_alert::Sender,
    pub vrrp: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<halb_vrrp_net::VrrpHandle>>>>,
    pub started: std::time::Instant,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// The status with the director's part as fresh as the daemon's task
    /// publishes it within [`crate::daemon::FRESH_WAIT`] (else the last
    /// one published).
    pub async fn fresh_status(&self) -> Status {
        let mut rx = self.snapshot.clone();
        rx.borrow_and_update();
        self.refresh.notify_one();
        let _ = tokio::time::timeout(crate::daemon::FRESH_WAIT, rx.changed()).await;
        self.status()
    }

    /// The status with the last published director's part.
    pub fn status(&self) -> Status {
        let mut st = Status::clone(&self.snapshot.borrow());
        st.uptime_secs = self.started.elapsed().as_secs();
        st.services = self.observer.stats();
        st.alerts = self.alerts.stats();
        let handle = self.vrrp.lock().ok().and_then(|h| h.clone());
        st.vrrp = handle.map(|h| crate::vrrp::status(&h)).unwrap_or_default();
        st
    }
}

/// How the control socket and the dashboard reach the daemon: status and
/// connections from the [`Reader`] (never waiting for the daemon's task),
/// a reload through the task's channel.
#[derive(Debug, Clone)]
pub struct Asker {
    pub tx: tokio::sync::mpsc::Sender<Msg>,
    pub reader: std::sync::Arc<Reader>,
}

impl Asker {
    /// The daemon's answer to `req`.
    pub async fn ask(&self, req: Request) -> Response {
        match req {
            Request::Status => return Response::Status(self.reader.fresh_status().await),
            Request::Connections => {
                return Response::Connections {
                    connections: self.reader.observer.connections(),
                }
            }
            Request::Reload => {}
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Ask(req, tx)).await.is_err() {
            return Response::Error {
                message: "the daemon is stopping".into(),
            };
        }
        rx.await.unwrap_or_else(|_| Response::Error {
            message: "the daemon is stopping".into(),
        })
    }

    async fn answered(&self) {
        let _ = self.tx.send(Msg::Answered).await;
    }
}

/// Serve one client: read one request line (bounded), answer it through
/// `asker`, then tell the daemon the answer is out.
pub async fn serve_one(stream: tokio::net::UnixStream, asker: Asker) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = tokio::io::BufReader::new(rd.take(MAX_REQUEST));
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut line)).await;
    let response = match read {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => asker.ask(req).await,
            Err(e) => Response::Error {
                message: format!("bad control request: {e}"),
            },
        },
        Ok(Err(e)) => Response::Error {
            message: format!("reading control request: {e}"),
        },
        Err(_) => return,
    };
    if let Ok(mut out) = serde_json::to_vec(&response) {
        out.push(b'\n');
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
    }
    asker.answered().await;
}
