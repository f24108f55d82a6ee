//! The config sync channel's shell (`[global.sync]`): TCP sockets around
//! halb-sync's sans-IO session, the server the daemon runs, and the
//! client `halb config diff|push` and the drift tracker use.
//!
//! It decides nothing: the handshake, the frames and their keys are
//! `halb_sync::Session`'s; when to ask a peer and what its answer means
//! are `halb_sync::Tracker`'s; what a push writes is
//! `halb_sync::keep_local` (the daemon's task checks and applies it).
//! Every connection is bounded: in time ([`CONNECTION_TIMEOUT`], the
//! handshake within [`HANDSHAKE_TIMEOUT`]), in size (the session's frame
//! cap) and in number ([`MAX_CONNECTIONS`]).

use halb_sync::{Event, Reply, Request, Session};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// The whole of one connection, a push's check and reload included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// From accept (or connect) to both sides authenticated.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 8;

/// What the server answers from without asking the daemon's task.
#[derive(Debug, Clone)]
pub struct Local {
    /// This director's name.
    pub name: String,
    /// The digest of the running config.
    pub digest: String,
    /// The config file (what `halb config diff` fetches).
    pub path: Option<PathBuf>,
    /// The largest file served or accepted.
    pub max_size: u64,
}

/// A push for the daemon's task: check `text`, apply it as a reload if
/// valid, and answer.
#[derive(Debug)]
pub struct Push {
    pub from: String,
    pub text: String,
    pub reply: oneshot::Sender<Reply>,
}

/// 32 fresh random bytes for a session.
fn nonce() -> std::io::Result<[u8; halb_sync::session::NONCE_LEN]> {
    let mut n = [0u8; halb_sync::session::NONCE_LEN];
    getrandom::getrandom(&mut n).map_err(std::io::Error::other)?;
    Ok(n)
}

/// Writes what the session queued.
async fn flush(s: &mut Session, stream: &mut TcpStream) -> std::io::Result<()> {
    while let Some(b) = s.poll_transmit() {
        stream.write_all(&b).await?;
    }
    Ok(())
}

/// Reads until the session has an event (or the peer closes).
async fn next_event(s: &mut Session, stream: &mut TcpStream) -> Result<Event, String> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(e) = s.poll_event() {
            return Ok(e);
        }
        flush(s, stream).await.map_err(|e| e.to_string())?;
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(if s.is_established() {
                "the peer closed the connection".to_owned()
            } else {
                "the peer closed the connection during the handshake (a wrong sync key, or this address is not among its [global.sync] peers)".to_owned()
            });
        }
        s.handle_input(&buf[..n]).map_err(|e| e.to_string())?;
    }
}

/// Connects to `addr` from `source` (this director's `[global.sync]
/// listen` address: the one its peers let in).
async fn connect(addr: SocketAddr, source: std::net::IpAddr) -> Result<TcpStream, String> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::new(source, 0)).map_err(|e| {
        format!("binding to {source}, this director's [global.sync] listen address: {e} (run halb config on the director itself)")
    })?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, sock.connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr}: timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))
}

/// One request to the peer at `addr`, from `source`, its reply. Fails on
/// a connect error, a wrong key (either side's), a timeout or a bad
/// reply.
pub async fn ask(
    addr: SocketAddr,
    source: std::net::IpAddr,
    key: &[u8],
    req: &Request,
    timeout: Duration,
) -> Result<Reply, String> {
    let run = async {
        let mut stream = connect(addr, source).await?;
        let _ = stream.set_nodelay(true);
        let mut s = Session::client(key, nonce().map_err(|e| e.to_string())?);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, next_event(&mut s, &mut stream)).await {
            Err(_) => return Err("the handshake timed out".to_owned()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Event::Established)) => {}
            Ok(Ok(Event::Message(_))) => return Err("a message before the handshake".to_owned()),
        }
        s.send(&halb_sync::msg::encode(req))
            .map_err(|e| e.to_string())?;
        flush(&mut s, &mut stream)
            .await
            .map_err(|e| e.to_string())?;
        match next_event(&mut s, &mut stream).await? {
            Event::Message(m) => halb_sync::msg::decode::<Reply>(&m)
                .ok_or_else(|| "the peer's reply is not a sync reply".to_owned()),
            Event::Established => Err("an unexpected handshake".to_owned()),
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r.map_err(|e| format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: no answer within {timeout:?}")),
    }
}

/// Serves the channel on `listener` until the task is aborted. Only the
/// peers' addresses (`allowed`) get as far as the handshake: another
/// host cannot take the connection slots.
pub async fn serve(
    listener: TcpListener,
    allowed: Vec<std::net::IpAddr>,
    key: Arc<Vec<u8>>,
    local: Arc<Mutex<Local>>,
    pushes: mpsc::Sender<Push>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Each stranger is logged once (at debug level after that).
    let mut strangers: std::collections::HashSet<std::net::IpAddr> = Default::default();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("config sync: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let from = peer.ip().to_canonical();
        if !allowed.contains(&from) {
            if strangers.len() < 1024 && strangers.insert(from) {
                tracing::warn!("config sync: connection from {peer} refused: not a [global.sync] peer address (logged once per address)");
            } else {
                tracing::debug!("config sync: connection from {peer} refused: not a peer");
            }
            continue;
        }
        let key = key.clone();
        let local = local.clone();
        let pushes = pushes.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(CONNECTION_TIMEOUT, serve_one(stream, &key, &local, &pushes))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("config sync: connection from {peer} refused: {e}"),
                Err(_) => tracing::warn!("config sync: connection from {peer} timed out"),
            }
        });
    }
}

async fn serve_one(
    mut stream: TcpStream,
    key: &[u8],
    local: &Mutex<Local>,
    pushes: &mpsc::Sender<Push>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut s = Session::server(key, nonce().map_err(|e| e.to_string())?);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, next_event(&mut s, &mut stream)).await {
        Err(_) => return Err("the handshake timed out".to_owned()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) => {}
    }
    let Event::Message(m) = next_event(&mut s, &mut stream).await? else {
        return Err("an unexpected handshake".to_owned());
    };
    let snapshot = local.lock().map(|l| l.clone()).map_err(|e| e.to_string())?;
    let reply = match halb_sync::msg::decode::<Request>(&m) {
        None => Reply::Error {
            message: "not a sync request (another halb version?)".to_owned(),
        },
        Some(Request::Digest { .. }) => Reply::Digest {
            name: snapshot.name.clone(),
            digest: snapshot.digest.clone(),
        },
        Some(Request::File { from }) => {
            tracing::info!("config sync: {from} fetched the config file");
            file_reply(&snapshot)
        }
        Some(Request::Push { from, text }) => {
            tracing::info!(
                "config sync: {from} pushed its config file ({} bytes)",
                text.len()
            );
            let (tx, rx) = oneshot::channel();
            let msg = Push {
                from,
                text,
                reply: tx,
            };
            if pushes.send(msg).await.is_err() {
                Reply::Error {
                    message: "the daemon is stopping".to_owned(),
                }
            } else {
                rx.await.unwrap_or(Reply::Error {
                    message: "the daemon dropped the push".to_owned(),
                })
            }
        }
    };
    s.send(&halb_sync::msg::encode(&reply))
        .map_err(|e| e.to_string())?;
    flush(&mut s, &mut stream)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.shutdown().await;
    Ok(())
}

fn file_reply(l: &Local) -> Reply {
    let Some(path) = &l.path else {
        return Reply::Error {
            message: "this director runs an embedded config, not a file".to_owned(),
        };
    };
    match read_bounded(path, l.max_size) {
        Ok(text) => Reply::File {
            name: l.name.clone(),
            path: path.display().to_string(),
            text,
        },
        Err(e) => Reply::Error {
            message: format!("reading {}: {e}", path.display()),
        },
    }
}

/// A config file, at most `max` bytes (and the session's frame cap).
pub fn read_bounded(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    let cap = max.min(halb_sync::session::MAX_MESSAGE as u64 / 2);
    let len = std::fs::metadata(path)?.len();
    if len > cap {
        return Err(std::io::Error::other(format!(
            "{len} bytes, over the limit of {cap}"
        )));
    }
    std::fs::read_to_string(path)
}

/// This director's name: `[global.sync] name`, else the host name.
pub fn own_name(c: &halb_config::SyncConfig) -> String {
    c.name.clone().unwrap_or_else(halb_alert::director_name)
}

/// The daemon's side of `[global.sync]`: the tracker, the questions in
/// flight, what the server answers from, and when each peer's state
/// began (for `halb list`).
pub struct Running {
    pub name: String,
    pub key: Arc<Vec<u8>>,
    pub peers: Vec<halb_config::SyncPeer>,
    /// Where questions leave from (the listen address).
    pub source: std::net::IpAddr,
    pub tracker: halb_sync::Tracker,
    pub local: Arc<Mutex<Local>>,
    pub asks: tokio::task::JoinSet<(usize, Result<Reply, String>)>,
    /// Per peer: when its state began (seconds since the Unix epoch).
    pub since_unix: Vec<Option<f64>>,
    pub server: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
        self.asks.abort_all();
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Running {
    /// Binds the channel and starts serving it; the tracker asks each
    /// peer at once.
    pub async fn start(
        c: &halb_config::SyncConfig,
        text: &str,
        path: Option<PathBuf>,
        max_size: u64,
        takeover: bool,
        pushes: mpsc::Sender<Push>,
    ) -> anyhow::Result<Running> {
        let listener = crate::daemon::bind_retrying(c.listen, takeover, "config sync").await?;
        let name = own_name(c);
        let digest = halb_sync::digest_or_bytes(text);
        let local = Arc::new(Mutex::new(Local {
            name: name.clone(),
            digest: digest.clone(),
            path,
            max_size,
        }));
        let key = Arc::new(c.key.clone());
        let allowed = c
            .peers
            .iter()
            .map(|p| p.address.ip().to_canonical())
            .collect();
        let server = tokio::spawn(serve(listener, allowed, key.clone(), local.clone(), pushes));
        tracing::info!(
            "config sync: {name} listens on {}, {} peer(s), running config {}",
            c.listen,
            c.peers.len(),
            halb_sync::short(&digest)
        );
        Ok(Running {
            name,
            key,
            peers: c.peers.clone(),
            source: c.listen.ip(),
            tracker: halb_sync::Tracker::new(
                c.peers.len(),
                digest,
                c.interval,
                std::time::Instant::now(),
            ),
            local,
            asks: tokio::task::JoinSet::new(),
            since_unix: vec![None; c.peers.len()],
            server,
        })
    }

    /// The running config changed.
    pub fn set_text(&mut self, text: &str) {
        let d = halb_sync::digest_or_bytes(text);
        if let Ok(mut l) = self.local.lock() {
            l.digest = d.clone();
        }
        self.tracker.handle_local(d, std::time::Instant::now());
    }

    /// Asks `peer` for its digest in a task.
    pub fn ask_digest(&mut self, peer: usize) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let addr = p.address;
        let key = self.key.clone();
        let req = Request::Digest {
            from: self.name.clone(),
        };
        let timeout = self.tracker.ask_timeout();
        let source = self.source;
        self.asks
            .spawn(async move { (peer, ask(addr, source, &key, &req, timeout).await) });
    }

    /// The rows of `halb list`.
    pub fn status(&self) -> Vec<crate::control::ConfigSyncStatus> {
        use halb_sync::PeerState as S;
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (state, reason) = match self.tracker.state(i) {
                    Some(S::InSync { .. }) => ("in_sync", None),
                    Some(S::Differs { .. }) => ("differs", None),
                    Some(S::Unreachable { reason, .. }) => ("unreachable", Some(reason.clone())),
                    Some(S::Unknown) | None => ("unknown", None),
                };
                crate::control::ConfigSyncStatus {
                    peer: p.name.clone(),
                    address: p.address,
                    state: state.to_owned(),
                    since_unix: self.since_unix.get(i).copied().flatten(),
                    ours: self.tracker.ours().to_owned(),
                    theirs: self.tracker.theirs(i).map(str::to_owned),
                    reason,
                }
            })
            .collect()
    }
}

/// The next answer of a question in flight, or never.
pub async fn next_answer(s: &mut Option<Running>) -> Option<(usize, Result<Reply, String>)> {
    match s {
        Some(r) if !r.asks.is_empty() => match r.asks.join_next().await {
            Some(Ok(x)) => Some(x),
            _ => None,
        },
        _ => std::future::pending().await,
    }
}

/// The next push, or never (no `[global.sync]`).
pub async fn next_push(rx: &mut Option<mpsc::Receiver<Push>>) -> Option<Push> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `halb config …`.
#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
    /// This director's config file: its [global.sync] says where the
    /// peers are, and its text is what is compared and pushed.
    #[arg(short, long, global = true, value_name = "FILE", default_value = crate::cli::DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(clap::Subcommand)]
enum ConfigAction {
    /// Fetch the peer's config file and print a unified diff: the lines
    /// `halb config push` would change there (the peer's own keys —
    /// [global.sync], VRRP priority, state and unicast addresses — left
    /// as they are). Exit 0 when equal, 1 when they differ or a peer
    /// cannot be asked.
    Diff {
        /// The peer (a [global.sync] peers name); every peer without it.
        peer: Option<String>,
        /// The two files as they are, node-local keys included.
        #[arg(long)]
        raw: bool,
    },
    /// Send this director's config file to the peer, which checks it as
    /// `halb check-config` does and applies it as a reload only if valid
    /// (keeping its own [global.sync], VRRP priorities, states and
    /// unicast addresses). Exit 0 when applied, 2 when the peer refused
    /// it (its errors are printed), 1 when it could not be asked.
    Push {
        /// The peer (a [global.sync] peers name); every peer without it.
        peer: Option<String>,
    },
}

/// How long `halb config diff` waits for a peer, and `push` (the peer
/// checks and reloads).
const DIFF_TIMEOUT: Duration = Duration::from_secs(10);
const PUSH_TIMEOUT: Duration = CONNECTION_TIMEOUT;

/// The [global.sync] of `text`: from the whole config when it validates,
/// else from that table alone (a file with errors elsewhere can still be
/// pushed, for the peer to refuse with its errors). `Err`: what to print.
fn sync_settings(
    text: &str,
    path: &std::path::Path,
) -> Result<(halb_config::SyncConfig, bool), String> {
    match halb_config::parse(text, path) {
        Ok(c) => c.global.sync.map(|s| (s, true)).ok_or_else(|| {
            format!(
                "halb: {} has no [global.sync]: nothing to compare with\n",
                path.display()
            )
        }),
        Err(whole) => {
            let only = halb_sync::digest::sync_table_only(text)
                .ok_or_else(|| whole.render_with_outcome("no [global.sync] could be read"))?;
            match halb_config::parse(&only, path) {
                Ok(c) => c
                    .global
                    .sync
                    .map(|s| (s, false))
                    .ok_or_else(|| whole.render_with_outcome("no [global.sync] could be read")),
                Err(_) => Err(whole.render_with_outcome("no [global.sync] could be read")),
            }
        }
    }
}

pub fn run_cli(args: &ConfigArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let path = &args.config;
    let text = match read_bounded(path, halb_config::DEFAULT_MAX_SIZE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("halb: reading {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let (sync, valid) = match sync_settings(&text, path) {
        Ok(x) => x,
        Err(message) => {
            eprint!("{message}");
            return ExitCode::from(crate::cli::EXIT_CONFIG);
        }
    };
    let wanted = match &args.action {
        ConfigAction::Diff { peer, .. } | ConfigAction::Push { peer } => peer.as_deref(),
    };
    let peers: Vec<&halb_config::SyncPeer> = match wanted {
        Some(w) => match sync.peers.iter().find(|p| p.name == w) {
            Some(p) => vec![p],
            None => {
                let names: Vec<&str> = sync.peers.iter().map(|p| p.name.as_str()).collect();
                eprintln!(
                    "halb: no peer {w:?} in [global.sync] of {}: the peers are {}",
                    path.display(),
                    names.join(", ")
                );
                return ExitCode::FAILURE;
            }
        },
        None => sync.peers.iter().collect(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("halb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let me = own_name(&sync);
    let mut status = 0u8;
    for p in peers {
        let code = match &args.action {
            ConfigAction::Diff { raw, .. } => {
                let req = Request::File { from: me.clone() };
                match rt.block_on(ask(
                    p.address,
                    sync.listen.ip(),
                    &sync.key,
                    &req,
                    DIFF_TIMEOUT,
                )) {
                    Ok(Reply::File {
                        name,
                        path: theirs,
                        text: peer_text,
                    }) => {
                        let after = if *raw {
                            text.clone()
                        } else {
                            halb_sync::keep_local(&text, &peer_text)
                                .unwrap_or_else(|_| text.clone())
                        };
                        let d = unified(
                            &peer_text,
                            &after,
                            &format!("{name}:{theirs}"),
                            &format!("{me}:{}", path.display()),
                        );
                        if d.is_empty() {
                            println!("{name}: the same config as {me}");
                            0
                        } else {
                            print!("{d}");
                            1
                        }
                    }
                    other => failed(&p.name, other),
                }
            }
            ConfigAction::Push { .. } => {
                if !valid {
                    eprintln!(
                        "halb: {} does not validate here; pushing it anyway, {} checks it",
                        path.display(),
                        p.name
                    );
                }
                let req = Request::Push {
                    from: me.clone(),
                    text: text.clone(),
                };
                match rt.block_on(ask(
                    p.address,
                    sync.listen.ip(),
                    &sync.key,
                    &req,
                    PUSH_TIMEOUT,
                )) {
                    Ok(Reply::Pushed {
                        name,
                        applied: true,
                        message,
                    }) => {
                        println!("{name}: pushed config applied: {message}");
                        0
                    }
                    Ok(Reply::Pushed {
                        name,
                        applied: false,
                        message,
                    }) => {
                        eprintln!("halb: {name} refused the pushed config:");
                        eprint!("{message}");
                        if !message.ends_with('\n') {
                            eprintln!();
                        }
                        crate::cli::EXIT_CONFIG
                    }
                    other => failed(&p.name, other),
                }
            }
        };
        status = status.max(code);
    }
    ExitCode::from(status)
}

/// A peer's answer that is not the one asked for, or no answer: said,
/// and exit status 1.
fn failed(peer: &str, r: Result<Reply, String>) -> u8 {
    match r {
        Ok(Reply::Error { message }) => eprintln!("halb: {peer}: {message}"),
        Ok(other) => eprintln!("halb: {peer}: unexpected answer {other:?}"),
        Err(e) => eprintln!("halb: {peer}: {e}"),
    }
    1
}

/// A unified diff of two files ("" when equal).
fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}
