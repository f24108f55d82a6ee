//! The control socket: a Unix stream socket, owner-only (mode 0600, in a
//! directory of its user's that nobody else can write to), one JSON
//! request line and one JSON response per connection. Clients give up
//! after a timeout, connect included.

use anyhow::Context;
use halb_table::{ConnectionInfo, ServiceStats};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
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
    /// A successor (`halb run --takeover`) asks for the listening sockets
    /// (see `handover`); answered on the connection itself.
    Handover,
    /// `halb resource …`, `halb maintenance …`.
    Resource(ResourceRequest),
    /// `halb standby` (true) / `halb online` (false).
    Standby {
        on: bool,
    },
    /// `halb reset`: every runtime override ends.
    Reset,
    /// `halb takeover [INSTANCE]` (none: every instance).
    Takeover {
        #[serde(default)]
        instance: Option<String>,
    },
    /// `halb weight|drain|disable|enable SERVICE REAL`.
    Real {
        service: String,
        real: String,
        action: halb_director::overrides::RealAction,
    },
}

/// One real server an operator overrode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideRow {
    pub service: String,
    pub protocol: halb_table::Protocol,
    pub listen: std::net::SocketAddr,
    pub real: std::net::SocketAddr,
    #[serde(rename = "override")]
    pub what: halb_director::overrides::Override,
}

/// An operator's resource command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ResourceRequest {
    /// The last operations of a member, with their output.
    Show { group: String, member: String },
    /// Clear fail counts and bans and probe again (a healthy member is
    /// not restarted); all groups when `group` is `None`.
    Cleanup {
        group: Option<String>,
        member: Option<String>,
    },
    /// Stop and start a member (and the members after it).
    Restart { group: String, member: String },
    /// Maintenance (is-managed=false) for one group or all.
    Maintenance { group: Option<String>, on: bool },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Resource groups (empty without `[[resource_group]]`).
    #[serde(default)]
    pub resources: Vec<halb_resource::GroupStatus>,
    /// Operators' real-server overrides (`halb weight|drain|disable`).
    #[serde(default)]
    pub overrides: Vec<OverrideRow>,
    /// VRRP instances (empty without `[[vrrp_instance]]`).
    #[serde(default)]
    pub vrrp: Vec<VrrpStatus>,
    /// VRRP faults held until the resource groups of their instance have
    /// stopped here (stop first, then release the VIP).
    #[serde(default)]
    pub held_faults: Vec<HeldFault>,
    /// Reloads (SIGHUP, `halb reload`) since the start.
    #[serde(default)]
    pub reloads: ReloadStats,
    /// The IPVS sync daemon's role ("master", "backup"), when
    /// `[global.ipvs.sync_daemon]` is set.
    #[serde(default)]
    pub sync_daemon: Option<String>,
    /// Every real server's weight as configured (checked or not).
    #[serde(default)]
    pub configured_weights: Vec<ConfiguredWeight>,
    /// `[global.sync]`: how each peer's config compares with ours.
    #[serde(default)]
    pub config_sync: Vec<ConfigSyncStatus>,
    /// Quorum (`[global.quorum]`; None without it).
    #[serde(default)]
    pub quorum: Option<halb_quorum::Status>,
}

/// One sync peer (`[global.sync]`): its config compared with ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSyncStatus {
    pub peer: String,
    pub address: std::net::SocketAddr,
    /// "in_sync", "differs", "unreachable", or "unknown" (not asked yet).
    pub state: String,
    /// When this state began (seconds since the Unix epoch).
    #[serde(default)]
    pub since_unix: Option<f64>,
    /// Our running config's digest, and the peer's last one.
    pub ours: String,
    #[serde(default)]
    pub theirs: Option<String>,
    /// Why the peer is unreachable.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Reloads since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadStats {
    /// Reloads asked for (accepted or not).
    pub total: u64,
    /// Reloads rejected (the config did not validate, or an address is
    /// another daemon's) or applied with errors.
    pub failed: u64,
    /// When the last reload that applied cleanly ended (seconds since
    /// the Unix epoch); none before the first.
    pub last_success_unix: Option<f64>,
}

/// One real server's configured weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfiguredWeight {
    pub service: String,
    pub protocol: halb_table::Protocol,
    pub listen: std::net::SocketAddr,
    pub real: std::net::SocketAddr,
    pub weight: u32,
}

/// A VRRP fault held until resource groups stop (see
/// `halb_director::resources`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFault {
    pub instance: String,
    pub fault: String,
    /// The groups still running here.
    pub waiting_for: Vec<String>,
}

/// One VRRP instance as `halb list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Transitions to MASTER since the instance was created.
    #[serde(default)]
    pub became_master: u64,
    /// Received packets dropped, by reason (`ttl`, `checksum`, `auth`…).
    pub drops: std::collections::BTreeMap<String, u64>,
    /// v3 adverts accepted with another address list than ours.
    #[serde(default)]
    pub address_mismatches: u64,
    /// `halb takeover` in force (priority 254).
    #[serde(default)]
    pub takeover: bool,
    /// MASTER, waiting for the previous master to stop its resource
    /// groups before they start here.
    #[serde(default)]
    pub awaiting_peer: bool,
    /// Not MASTER, its resource groups still stopping here (releasing
    /// adverts sent, so that the new master waits).
    #[serde(default)]
    pub releasing: bool,
    /// Redundant heartbeat paths (halb to halb), the instance's interface
    /// first; empty with one path.
    #[serde(default)]
    pub paths: Vec<VrrpPathStatus>,
}

/// One heartbeat path of a VRRP instance (heartbeat's `Link node:eth1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VrrpPathStatus {
    pub interface: String,
    /// The peer's address on it (unicast), if known.
    pub peer: Option<std::net::IpAddr>,
    /// `alive`, `dead`, or `unknown` (not BACKUP: only a backup hears the
    /// master's adverts).
    pub state: String,
    /// Milliseconds since the last advert over it (BACKUP only).
    pub last_heard_ms: Option<u64>,
}

pub use halb_director::RealHealth;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
// One per control request, built once and serialized: boxing the status
// would buy nothing.
#[allow(clippy::large_enum_variant)]
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
    /// A command was carried out; what it did.
    Done {
        message: String,
    },
}

/// How long a client waits for the daemon, at each step.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the daemon to take the connection: a daemon out of file
    /// descriptors (or stopped) leaves clients in its backlog.
    pub connect: Duration,
    /// For the request to be written and the whole answer read.
    pub answer: Duration,
}

impl Timeouts {
    /// Status and connections are read from a published snapshot: a few
    /// seconds is plenty. A reload answers once the new table is applied:
    /// with tens of thousands of services on a slow machine that takes
    /// minutes, so only its connect is short.
    pub fn for_request(req: &Request) -> Timeouts {
        let connect = Duration::from_secs(5);
        match req {
            Request::Reload => Timeouts {
                connect,
                answer: Duration::from_secs(600),
            },
            Request::Status
            | Request::Connections
            | Request::Handover
            | Request::Resource(_)
            | Request::Standby { .. }
            | Request::Takeover { .. }
            | Request::Reset
            | Request::Real { .. } => Timeouts {
                connect,
                answer: Duration::from_secs(10),
            },
        }
    }
}

/// Send one request to the daemon and read its answer; give up, with a
/// message saying why, after [`Timeouts::for_request`].
pub fn request(socket: &Path, req: &Request) -> anyhow::Result<Response> {
    request_within(socket, req, Timeouts::for_request(req))
}

/// [`request`] with its own timeouts.
pub fn request_within(socket: &Path, req: &Request, t: Timeouts) -> anyhow::Result<Response> {
    // Never talk to a socket someone else could have put there.
    check_socket_dir(socket, false)?;
    check_socket_owner(socket)?;
    let mut stream = connect_within(socket, t.connect)?;
    let deadline = std::time::Instant::now() + t.answer;
    let late = || {
        anyhow::anyhow!(
            "the halb daemon at {} took the connection but did not answer within {} s: \
             it may be stopped (SIGSTOP), out of file descriptors or overloaded; its log says which",
            socket.display(),
            t.answer.as_secs()
        )
    };
    let left = |deadline: std::time::Instant| {
        deadline
            .checked_duration_since(std::time::Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.set_write_timeout(Some(left(deadline).ok_or_else(late)?))?;
    stream.write_all(&line).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => late(),
        _ => {
            anyhow::Error::new(e).context(format!("writing to the daemon at {}", socket.display()))
        }
    })?;
    // Read the answer line with one deadline for all of it.
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        stream.set_read_timeout(Some(left(deadline).ok_or_else(late)?))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.ends_with(b"\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late())
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "reading the answer of the daemon at {}",
                    socket.display()
                )))
            }
        }
    }
    if answer.is_empty() {
        anyhow::bail!(
            "the halb daemon at {} closed the connection without answering (is it stopping?)",
            socket.display()
        );
    }
    serde_json::from_slice(&answer).context("the daemon sent an answer halb cannot read")
}

/// Connects to `socket`, waiting at most `limit` for the daemon to take
/// the connection: the wait of a blocking connect on a full backlog
/// honours `SO_SNDTIMEO`.
fn connect_within(socket: &Path, limit: Duration) -> anyhow::Result<UnixStream> {
    use nix::sys::socket::{self as so, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
    use nix::sys::time::{TimeVal, TimeValLike};
    use std::os::fd::AsRawFd;
    let unreachable = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!(
            "cannot reach the halb daemon at {} (is `halb run` or `halb demo` running? \
             pass --socket PATH if it uses another control socket)",
            socket.display()
        ))
    };
    let addr = UnixAddr::new(socket).map_err(|e| unreachable(e.into()))?;
    let fd = so::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("creating a socket")?;
    let ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX).max(1);
    so::setsockopt(&fd, sockopt::SendTimeout, &TimeVal::milliseconds(ms))
        .context("setting the connect timeout")?;
    match so::connect(fd.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINPROGRESS) => anyhow::bail!(
            "the halb daemon at {} did not take the connection within {} s: it may be out of \
             file descriptors, stopped or overloaded (its log says which)",
            socket.display(),
            limit.as_secs()
        ),
        Err(e) => return Err(unreachable(e.into())),
    }
    let stream = UnixStream::from(fd);
    // Back to no send timeout; request_within sets its own.
    stream.set_write_timeout(None)?;
    Ok(stream)
}

/// The control socket's directory, as the daemon creates it and as every
/// client checks it: its own user's (or root's), and writable by nobody
/// else, so that nobody else can put a socket there that would receive
/// the operator's commands (the non-root default `/tmp/halb-$UID` is in a
/// directory anyone can write to). The daemon (`create`) makes it 0700
/// when it is missing; a client only checks what is there.
pub fn check_socket_dir(socket: &Path, create: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if create && std::fs::symlink_metadata(dir).is_err() {
        if let Some(up) = dir.parent().filter(|u| !u.as_os_str().is_empty()) {
            std::fs::create_dir_all(up).with_context(|| {
                format!(
                    "creating the control socket's parent directory {}",
                    up.display()
                )
            })?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private (0700)", dir.display()))?,
            // Someone made it in the meantime: checked below like any other.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "creating control socket directory {}",
                    dir.display()
                )))
            }
        }
    }
    let me = nix::unistd::geteuid().as_raw();
    let Ok(link) = std::fs::symlink_metadata(dir) else {
        // Missing: a client finds no daemon there (the connect says so).
        return Ok(());
    };
    if link.file_type().is_symlink() && !trusted(link.uid(), me) {
        anyhow::bail!(
            "refusing the control socket directory {}: it is a symbolic link owned by uid {}, \
             not by you (uid {me}) or root, so that user chooses where halb's commands go; \
             remove it and start halb again, or set another control_socket (--socket)",
            dir.display(),
            link.uid()
        );
    }
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("reading the control socket directory {}", dir.display()))?;
    dir_verdict(dir, &meta, me)
}

/// The caller of a control request, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
}

/// Who may do what on the control socket: root and the daemon's user
/// everything; `control_socket_group` everything; `control_socket_read_group`
/// the read requests (status, connections). Decided per request from the
/// caller's credentials (SO_PEERCRED), so that one socket serves both
/// groups (HAProxy's `stats socket … level`).
#[derive(Debug, Clone, Default)]
pub struct Access {
    write: Option<(String, nix::unistd::Gid)>,
    read: Option<(String, nix::unistd::Gid)>,
}

fn lookup_group(key: &str, group: &str) -> anyhow::Result<nix::unistd::Gid> {
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => anyhow::bail!(
            "{key} {group:?}: no such group; create it (groupadd {group}) or remove the key"
        ),
        Err(e) => anyhow::bail!("{key} {group:?}: looking it up: {e}"),
    }
}

impl Access {
    /// The groups of `[global]`, looked up (a missing group stops the
    /// start, naming `groupadd`).
    pub fn new(global: &halb_config::Global) -> anyhow::Result<Access> {
        let resolve = |key: &str, g: &Option<String>| -> anyhow::Result<_> {
            g.as_ref()
                .map(|g| lookup_group(key, g).map(|gid| (g.clone(), gid)))
                .transpose()
        };
        Ok(Access {
            write: resolve("control_socket_group", &global.control_socket_group)?,
            read: resolve(
                "control_socket_read_group",
                &global.control_socket_read_group,
            )?,
        })
    }

    /// The socket's mode and group: none configured, 0600 (the socket as
    /// bound); `control_socket_group` alone, 0660 with that group (its
    /// directory 0750); with `control_socket_read_group`, 0666 (directory
    /// 0755) and every request judged by [`Access::allows`].
    pub fn share(&self, socket: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let (sock_mode, dir_mode, gid) = match (&self.write, &self.read) {
            (None, None) => return Ok(()),
            (Some((_, gid)), None) => (0o660, 0o750, Some(*gid)),
            (_, Some(_)) => (0o666, 0o755, None),
        };
        if let Some(gid) = gid {
            nix::unistd::chown(socket, None, Some(gid))
                .with_context(|| format!("giving {} to group {gid}", socket.display()))?;
        }
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(sock_mode))?;
        if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::MetadataExt;
            let me = nix::unistd::geteuid().as_raw();
            if std::fs::metadata(dir).is_ok_and(|m| m.uid() == me && m.mode() & 0o777 == 0o700) {
                if let Some(gid) = gid {
                    nix::unistd::chown(dir, None, Some(gid))
                        .with_context(|| format!("giving {} to group {gid}", dir.display()))?;
                }
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
            }
        }
        match (&self.write, &self.read) {
            (Some((w, _)), None) => {
                tracing::info!("control socket shared with group {w} (mode 0660)")
            }
            (w, Some((r, _))) => tracing::info!(
                "control socket open to group {r} for reading{} (mode 0666, each request judged by the caller's credentials)",
                w.as_ref().map_or(String::new(), |(w, _)| format!(" and to group {w} for every command"))
            ),
            (None, None) => {}
        }
        Ok(())
    }

    /// Whether the caller may take the listening sockets and end this
    /// daemon (`halb run --takeover`): root or the daemon's user only,
    /// whatever the groups.
    pub fn may_hand_over(uid: Option<u32>) -> bool {
        let me = nix::unistd::geteuid().as_raw();
        uid.is_some_and(|u| u == 0 || u == me)
    }

    /// Whether the caller (`uid`, `gid` from SO_PEERCRED) may make
    /// `req`; the refusal says which group it needs.
    pub fn allows(&self, peer: Peer, req: &Request) -> Result<(), String> {
        let Peer { uid, gid, pid } = peer;
        if self.read.is_none() {
            // 0600 or 0660: the socket's mode already decided.
            return Ok(());
        }
        let me = nix::unistd::geteuid().as_raw();
        let Some(uid) = uid else {
            return Err("permission denied: the caller's credentials are unknown".into());
        };
        if uid == 0 || uid == me {
            return Ok(());
        }
        let member = |g: &Option<(String, nix::unistd::Gid)>| {
            g.as_ref()
                .is_some_and(|(_, want)| in_group(pid, gid, *want))
        };
        let read_only = matches!(req, Request::Status | Request::Connections);
        if member(&self.write) || (read_only && member(&self.read)) {
            return Ok(());
        }
        let write = self.write.as_ref().map(|(w, _)| w.as_str());
        let read = self
            .read
            .as_ref()
            .map(|(r, _)| r.as_str())
            .unwrap_or_default();
        Err(match (read_only, write) {
            (true, Some(w)) => format!(
                "permission denied: uid {uid} is in neither group {r} (control_socket_read_group) nor {w} (control_socket_group)",
                r = read
            ),
            (true, None) => format!(
                "permission denied: uid {uid} is not in group {read} (control_socket_read_group)"
            ),
            (false, Some(w)) => format!(
                "permission denied: this command changes the director; uid {uid} needs group {w} (control_socket_group){}",
                if member(&self.read) { format!(", group {read} may only read (halb list)") } else { String::new() }
            ),
            (false, None) => format!(
                "permission denied: this command changes the director; only root and the daemon's user may (group {read} may only read: halb list); set control_socket_group for operators"
            ),
        })
    }
}

/// Whether the calling process (`pid`, effective group `gid`, from
/// SO_PEERCRED) has the group `want`: its effective group or one of its
/// supplementary groups (the `Groups:` of /proc/PID/status) — what the
/// kernel would check for a file of that group.
fn in_group(pid: Option<i32>, gid: Option<u32>, want: nix::unistd::Gid) -> bool {
    if gid == Some(want.as_raw()) {
        return true;
    }
    let Some(pid) = pid else {
        return false;
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|gs| {
            gs.split_whitespace()
                .any(|g| g.parse::<u32>() == Ok(want.as_raw()))
        })
}

/// A lock file of the daemon's (the control socket's, `listen.lock`):
/// opened read-write, created 0600, never through a symbolic link.
pub fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Whether a file owned by `uid` may hold our control socket.
fn trusted(uid: u32, me: u32) -> bool {
    uid == me || uid == 0
}

/// The rule itself, on what `stat` said.
fn dir_verdict(dir: &Path, meta: &std::fs::Metadata, me: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_dir() {
        anyhow::bail!(
            "the control socket's directory {} is not a directory; set another control_socket (--socket)",
            dir.display()
        );
    }
    if !trusted(meta.uid(), me) {
        anyhow::bail!(
            "refusing the control socket directory {}: it belongs to uid {}, not to you (uid {me}) \
             or root, so that user could replace the socket and receive halb's commands; \
             remove it (its owner or root can: rm -r {}) and start halb again, which creates it \
             mode 0700, or set another control_socket (--socket)",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    let mode = meta.mode() & 0o7777;
    // A sticky directory (/tmp, /run/user's parents): others may create
    // files there but cannot remove or rename ours, and a socket of theirs
    // at our path is refused by its owner (`check_socket_owner`).
    if mode & 0o1000 != 0 {
        return Ok(());
    }
    if mode & 0o022 != 0 {
        anyhow::bail!(
            "refusing the control socket directory {}: it is writable by {} (mode {mode:04o}), \
             so they could replace the socket and receive halb's commands; \
             run `chmod go-w {}` (halb makes it 0700), or set another control_socket (--socket)",
            dir.display(),
            match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "its group and others",
                (true, false) => "its group",
                _ => "others",
            },
            dir.display()
        );
    }
    Ok(())
}

/// A socket at `path`, if any, must be ours (or root's).
fn check_socket_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    match std::fs::symlink_metadata(path) {
        Ok(m) if !trusted(m.uid(), me) => anyhow::bail!(
            "refusing the control socket {}: it belongs to uid {}, not to you (uid {me}) or root; \
             it is not a halb daemon of yours. Remove it, or pass --socket PATH",
            path.display(),
            m.uid()
        ),
        _ => Ok(()),
    }
}

/// This daemon's hold on the control socket's path: an exclusive `flock`
/// on `<socket>.lock` beside it for the daemon's life (a second daemon on
/// the same socket is refused at once, even while the first is starting),
/// and the socket's inode, so that the daemon removes its own socket and
/// never one a successor bound in its place.
pub struct Claim {
    path: PathBuf,
    inode: Option<(u64, u64)>,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Claim {
    /// Bind the control socket at the claimed path (mode 0600).
    pub fn listen(&mut self) -> anyhow::Result<tokio::net::UnixListener> {
        use std::os::unix::fs::MetadataExt;
        let path = &self.path;
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("binding control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        self.inode = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok(listener)
    }

    /// Removes the socket if it is still ours.
    pub fn remove(&mut self) {
        use std::os::unix::fs::MetadataExt;
        if let (Some(ours), Ok(m)) = (self.inode, std::fs::symlink_metadata(&self.path)) {
            if (m.dev(), m.ino()) == ours {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        self.inode = None;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.remove();
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("path", &self.path).finish()
    }
}

/// Claim the control socket's path, before anything else is bound: check
/// its directory (created 0700 if missing), take the lock beside it,
/// refuse to start while a live daemon answers on it, remove a stale
/// socket that nobody answers on. The socket itself is bound later
/// ([`Claim::listen`]), once the daemon serves: its appearing means the
/// table is applied.
pub fn claim(path: &Path) -> anyhow::Result<Claim> {
    check_socket_dir(path, true)?;
    let another = || {
        anyhow::anyhow!(
            "another halb daemon is already running with the control socket {}; \
             stop it first (or give this one another --socket; two daemons must not \
             serve the same addresses)",
            path.display()
        )
    };
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock_path = PathBuf::from(lock_name);
    let file = open_lock_file(&lock_path)
        .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
    let lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EAGAIN)) => return Err(another()),
        Err((_, e)) => {
            return Err(anyhow::Error::new(std::io::Error::from(e))
                .context(format!("locking {}", lock_path.display())))
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "control socket path {} exists and is not a socket; remove it or choose another control_socket",
                path.display()
            );
        }
        check_socket_owner(path)?;
        // A daemon of a version without the lock may still answer.
        if UnixStream::connect(path).is_ok() {
            return Err(another());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale control socket {}", path.display()))?;
    }
    Ok(Claim {
        path: path.to_owned(),
        inode: None,
        _lock: lock,
    })
}

/// Accept errors are logged at most once per this long.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// The log of accept errors, rate-limited: a daemon out of file
/// descriptors fails every accept, and must not fill the log.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    /// The line to log for this error now, if one is due.
    pub fn note(&mut self, e: &std::io::Error, now: std::time::Instant) -> Option<String> {
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < ACCEPT_LOG_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        let what = match e.raw_os_error() {
            Some(nix::libc::EMFILE) => format!(
                "out of file descriptors (the daemon's limit, RLIMIT_NOFILE, is used up: {e})"
            ),
            Some(nix::libc::ENFILE) => {
                format!("out of file descriptors (the system's limit, fs.file-max: {e})")
            }
            _ => e.to_string(),
        };
        let more = match std::mem::take(&mut self.suppressed) {
            0 => String::new(),
            n => format!(
                "; {n} more accept errors in the last {} s not logged",
                ACCEPT_LOG_EVERY.as_secs()
            ),
        };
        Some(format!("control socket accept: {what}{more}"))
    }

    /// An accept worked: the line that tells how many errors went
    /// unlogged since the last line, once that is [`ACCEPT_LOG_EVERY`]
    /// old (a daemon that fails every other accept still logs one line
    /// per period).
    pub fn recovered(&mut self, now: std::time::Instant) -> Option<String> {
        let last = self.last?;
        if self.suppressed == 0 || now.saturating_duration_since(last) < ACCEPT_LOG_EVERY {
            return None;
        }
        self.last = Some(now);
        let n = std::mem::take(&mut self.suppressed);
        Some(format!(
            "control socket accept: working again; {n} more accept errors before that not logged"
        ))
    }
}

/// Accept control clients for ever, each served by [`serve_one`]; accept
/// errors are logged rate-limited and retried after a short pause.
pub async fn serve(listener: tokio::net::UnixListener, asker: Asker) {
    let mut errors = AcceptErrors::default();
    // The control socket's own reserve: one descriptor held open, given up
    // to accept an operator while the daemon is out of descriptors (the
    // answer needs no other), then taken again.
    let mut spare = spare_descriptor();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if let Some(line) = errors.recovered(std::time::Instant::now()) {
                    tracing::info!("{line}");
                }
                tokio::spawn(serve_one(stream, asker.clone()));
            }
            Err(e) => {
                if let Some(line) = errors.note(&e, std::time::Instant::now()) {
                    tracing::warn!("{line}");
                }
                let out_of_fds = matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EMFILE | nix::libc::ENFILE)
                );
                if out_of_fds && spare.take().is_some() {
                    if let Ok((stream, _)) = listener.accept().await {
                        tracing::info!("control socket: out of file descriptors, a client served from the reserve");
                        serve_one(stream, asker.clone()).await;
                    }
                    spare = spare_descriptor();
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if spare.is_none() {
                    spare = spare_descriptor();
                }
            }
        }
    }
}

/// A descriptor to give up when the daemon is out of them (`/dev/null`).
fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// A message to the daemon's one task.
#[derive(Debug)]
pub enum Msg {
    /// Answer this request.
    Ask(Request, tokio::sync::oneshot::Sender<Response>),
    /// An answer was written to its client: work it did not wait for may
    /// run now.
    Answered,
    /// A successor asks for the listening sockets (duplicates).
    Listeners(tokio::sync::oneshot::Sender<std::io::Result<halb_proxy::Listeners>>),
    /// The successor accepts on them: stop, as on SIGTERM.
    HandedOver,
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
        self.refreshed().await;
        self.status()
    }

    /// Asks the daemon's task for a fresh snapshot and waits at most
    /// [`crate::daemon::FRESH_WAIT`] for it.
    async fn refreshed(&self) {
        let mut rx = self.snapshot.clone();
        rx.borrow_and_update();
        self.refresh.notify_one();
        let _ = tokio::time::timeout(crate::daemon::FRESH_WAIT, rx.changed()).await;
    }

    /// What `/metrics` renders: [`Reader::fresh_status`], with the data
    /// planes' stats read without any lock a connection takes
    /// ([`halb_table::Observer::stats_unlocked`]); the VRRP rows are the
    /// thread's published status (read without a lock), so a scrape
    /// never delays the data plane or an advert.
    pub async fn metrics_status(&self) -> Status {
        self.refreshed().await;
        self.status_with(self.observer.stats_unlocked())
    }

    /// The status with the last published director's part.
    pub fn status(&self) -> Status {
        self.status_with(self.observer.stats())
    }

    fn status_with(&self, services: Vec<ServiceStats>) -> Status {
        let mut st = Status::clone(&self.snapshot.borrow());
        st.uptime_secs = self.started.elapsed().as_secs();
        st.services = services;
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
    /// Who may do what (the control socket's groups).
    pub access: std::sync::Arc<Access>,
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
            Request::Reload
            | Request::Resource(_)
            | Request::Standby { .. }
            | Request::Takeover { .. }
            | Request::Reset
            | Request::Real { .. } => {}
            Request::Handover => {
                return Response::Error {
                    message: "a hand-over is made on the control connection itself".into(),
                }
            }
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
    // Who asks: every command that changes something is logged with it.
    let cred = stream.peer_cred().ok();
    let peer = Peer {
        uid: cred.map(|c| c.uid()),
        gid: cred.map(|c| c.gid()),
        pid: cred.and_then(|c| c.pid()),
    };
    let uid = peer.uid;
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = tokio::io::BufReader::new(rd.take(MAX_REQUEST));
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_line(&mut line)).await;
    let response = match read {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(Request::Handover) if !Access::may_hand_over(uid) => {
                tracing::warn!(
                    uid,
                    "control request refused: a hand-over is for root or the daemon's user"
                );
                Response::Error {
                    message: "permission denied: a hand-over (halb run --takeover) is for root or the daemon's user".into(),
                }
            }
            Ok(Request::Handover) => {
                if let Ok(stream) = rd.into_inner().into_inner().reunite(wr) {
                    hand_over(stream, &asker).await;
                }
                return;
            }
            Ok(req) => match asker.access.allows(peer, &req) {
                Err(message) => {
                    tracing::warn!(uid, "control request refused: {message}: {req:?}");
                    Response::Error { message }
                }
                Ok(()) => {
                    if !matches!(req, Request::Status | Request::Connections) {
                        match uid {
                            Some(uid) => tracing::info!(uid, "control request: {req:?}"),
                            None => tracing::info!("control request (peer unknown): {req:?}"),
                        }
                    }
                    asker.ask(req).await
                }
            },
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

/// The running daemon's side of a hand-over (see `handover`): send the
/// listening sockets, wait for the successor's `ready`, then tell the
/// daemon's task to stop. Any failure leaves this daemon running as it was.
async fn hand_over(stream: tokio::net::UnixStream, asker: &Asker) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if asker.tx.send(Msg::Listeners(tx)).await.is_err() {
        return;
    }
    let listeners = match rx.await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            tracing::warn!("hand-over refused: cannot duplicate the listening sockets: {e}");
            return;
        }
        Err(_) => return,
    };
    let n: usize = listeners.iter().map(|(_, f)| f.len()).sum();
    let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        crate::handover::send(&stream, &listeners)?;
        crate::handover::wait_ready(&stream)
    })
    .await;
    match done {
        Ok(Ok(())) => {
            tracing::info!(
                sockets = n,
                "hand-over: the successor accepts on our listening sockets; stopping"
            );
            let _ = asker.tx.send(Msg::HandedOver).await;
        }
        Ok(Err(e)) => tracing::warn!("hand-over failed, this daemon keeps running: {e}"),
        Err(e) => tracing::warn!("hand-over failed, this daemon keeps running: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("halb-control-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn accept_errors_are_rate_limited() {
        let mut log = AcceptErrors::default();
        let emfile = std::io::Error::from_raw_os_error(nix::libc::EMFILE);
        let t0 = Instant::now();
        let first = log.note(&emfile, t0).unwrap();
        assert!(
            first.starts_with("control socket accept: out of file descriptors"),
            "{first}"
        );
        assert!(!first.contains("more"), "{first}");
        for i in 1..1000 {
            assert_eq!(log.note(&emfile, t0 + Duration::from_millis(i)), None);
        }
        let next = log.note(&emfile, t0 + ACCEPT_LOG_EVERY).unwrap();
        assert!(
            next.ends_with("; 999 more accept errors in the last 10 s not logged"),
            "{next}"
        );
        let enfile = std::io::Error::from_raw_os_error(nix::libc::ENFILE);
        let sys = log.note(&enfile, t0 + 3 * ACCEPT_LOG_EVERY).unwrap();
        assert!(
            sys.contains("out of file descriptors (the system's limit"),
            "{sys}"
        );
        let other = std::io::Error::from_raw_os_error(nix::libc::ECONNABORTED);
        let line = log.note(&other, t0 + 5 * ACCEPT_LOG_EVERY).unwrap();
        assert!(!line.contains("file descriptors"), "{line}");
        // Back to work: what went unlogged is told once, in its time.
        let t1 = t0 + 10 * ACCEPT_LOG_EVERY;
        assert_eq!(log.recovered(t1), None);
        assert!(log.note(&emfile, t1).is_some());
        assert_eq!(log.note(&emfile, t1 + Duration::from_secs(1)), None);
        assert_eq!(log.recovered(t1 + Duration::from_secs(2)), None);
        let back = log.recovered(t1 + ACCEPT_LOG_EVERY).unwrap();
        assert!(back.contains("1 more accept errors"), "{back}");
        assert_eq!(log.recovered(t1 + 3 * ACCEPT_LOG_EVERY), None);
    }

    #[test]
    fn the_socket_directory_must_be_private() {
        let d = dir("perm");
        let sock = d.join("halb.sock");
        // Missing: a client has nothing to check, the daemon creates it.
        check_socket_dir(&sock, false).unwrap();
        assert!(!d.exists());
        check_socket_dir(&sock, true).unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        for (mode, who) in [
            (0o777, "its group and others"),
            (0o720, "its group"),
            (0o702, "others"),
        ] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            for create in [false, true] {
                let e = check_socket_dir(&sock, create).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("writable by {who} (mode {mode:04o})")),
                    "{e}"
                );
                assert!(e.contains(&format!("chmod go-w {}", d.display())), "{e}");
            }
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_socket_dir(&sock, false).unwrap();
        // Sticky and ours (or root's), as /tmp: others cannot move our
        // socket, and one of theirs at our path is refused by its owner.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_socket_dir(&sock, false).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Someone else's: refused, whoever we are.
        use std::os::unix::fs::MetadataExt;
        let me = nix::unistd::geteuid().as_raw();
        let other = if me == 0 {
            std::os::unix::fs::chown(&d, Some(65534), None).unwrap();
            0
        } else {
            me + 1
        };
        let meta = std::fs::metadata(&d).unwrap();
        assert_ne!(meta.uid(), 0);
        let e = dir_verdict(&d, &meta, other).unwrap_err().to_string();
        assert!(e.contains(&format!("belongs to uid {}", meta.uid())), "{e}");
        assert!(e.contains("rm -r"), "{e}");
        // A file where the directory should be.
        let f = d.join("file");
        std::fs::write(&f, "").unwrap();
        let e = check_socket_dir(&f.join("halb.sock"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a directory"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_full_backlog_times_out_the_connect() {
        use nix::sys::socket::{self as so, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
        let d = dir("backlog");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("halb.sock");
        // A daemon that never accepts, with a backlog of one.
        let l = so::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let addr = UnixAddr::new(&path).unwrap();
        use std::os::fd::AsRawFd;
        so::bind(l.as_raw_fd(), &addr).unwrap();
        so::listen(&l, Backlog::new(1).unwrap()).unwrap();
        // Fill the backlog.
        let mut queued = Vec::new();
        for _ in 0..64 {
            let c = so::socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
            .unwrap();
            let full = so::connect(c.as_raw_fd(), &addr).is_err();
            queued.push(c);
            if full {
                break;
            }
        }
        let t = Timeouts {
            connect: Duration::from_millis(300),
            answer: Duration::from_secs(1),
        };
        let e = request_within(&path, &Request::Status, t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not take the connection within"), "{e}");
        assert!(e.contains("out of file descriptors"), "{e}");
        drop(queued);
        drop(l);
        // Queued but never answered: the answer's timeout.
        let path2 = d.join("quiet.sock");
        let quiet = std::os::unix::net::UnixListener::bind(&path2).unwrap();
        let e = request_within(&path2, &Request::Status, t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not answer within 1 s"), "{e}");
        drop(quiet);
        // Nobody there at all.
        let _ = std::fs::remove_file(&path);
        let e = format!(
            "{:#}",
            request_within(&path, &Request::Status, t).unwrap_err()
        );
        assert!(e.contains("cannot reach the halb daemon"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
