//! halb's configuration file: one TOML file, specified in
//! `docs/configuration.md`.
//!
//! [`parse`] walks the spanned TOML document by hand, so that it can check
//! every key and value and report *all* problems in one pass, each with the
//! file, line, column, key path, what was found, what was expected and how to
//! fix it ([`ConfigError`]). A TOML syntax error stops the parse: it is
//! reported alone, with its position.
//!
//! ```
//! let cfg = halb_config::parse(
//!     "[[virtual_service]]\nlisten = \"127.0.0.1:8080\"\n\
//!      [[virtual_service.real_server]]\naddress = \"127.0.0.1:18081\"\n",
//!     std::path::Path::new("halb.toml"),
//! )
//! .unwrap();
//! assert_eq!(cfg.services[0].name, "tcp/127.0.0.1:8080");
//!
//! let err = halb_config::parse("[global]\nworkerz = 2\n", "halb.toml".as_ref()).unwrap_err();
//! assert_eq!(err.errors[0].fix.as_deref(), Some("did you mean `workers`?"));
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod diag;
mod suggest;
mod values;
mod walk;

pub use diag::{ConfigError, ConfigErrors, SNIPPET_WIDTH};
pub use walk::incremental::LoadStats;
pub use walk::resource::{check_agents, AgentLookup};
pub use walk::vrrp::{
    Notify, TrackPing, TrackScript, TrackService, VrrpAuth, VrrpGarp, VrrpInstance, VrrpPath,
    VrrpSyncGroup, VrrpVip,
};

use halb_table::{DataPlaneKind, OnDown, ServiceKey, Table, VirtualService};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings that apply to the whole daemon, and the defaults every virtual
/// service inherits unless it sets its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Global {
    /// Where the control socket listens (`halb list`, `halb reload`).
    pub control_socket: PathBuf,
    /// An operators' group: the socket is made mode 0660 with this group
    /// (its directory 0750), so its members run `halb list` and the other
    /// commands without root. None: the daemon's user alone (0600).
    pub control_socket_group: Option<String>,
    /// A read-only group: its members may run `halb list` (status,
    /// connections) and nothing else. With it the socket is mode 0666 and
    /// the daemon decides by the caller's credentials (SO_PEERCRED):
    /// root, the daemon's user and `control_socket_group` may do
    /// everything, this group may read, others are refused.
    pub control_socket_read_group: Option<String>,
    /// Data-plane worker threads (0: one per CPU).
    pub workers: usize,
    /// Most health-check probes in flight at once (0: 1024, or half the
    /// soft `RLIMIT_NOFILE` if lower; decided by the daemon).
    pub check_concurrency: usize,
    /// Where the read-only dashboard and JSON API listen; off when unset.
    pub http_listen: Option<std::net::SocketAddr>,
    /// The HTTP API's write token: with it the dashboard's buttons and
    /// `POST /api/v1/command` work for a client that sends
    /// `Authorization: Bearer TOKEN`; without it the HTTP side is
    /// read-only. A non-loopback `http_listen` requires it.
    pub http_token: Option<String>,
    /// Default: one TCP connect attempt to a real server.
    pub connect_timeout: Duration,
    /// Default: how many real servers one client connection may try.
    pub connect_attempts: u32,
    /// Default: TCP connection idle both ways (0: never).
    pub idle_timeout: Duration,
    /// Default: UDP flow idle timeout.
    pub udp_timeout: Duration,
    /// Most UDP flows of the userspace proxy at once, all services
    /// together (0: a quarter of the soft `RLIMIT_NOFILE`; a larger value
    /// is held to half of it; decided by the data plane). Not a default:
    /// each service has its own `udp_max_flows` as well.
    pub udp_max_flows: usize,
    /// Default: passive health, failed connects in a row that leave a
    /// real server out (0: off).
    pub max_fails: u32,
    /// Default: passive health's failure window and time out.
    pub fail_timeout: Duration,
    /// On SIGTERM: how long established connections of the userspace
    /// proxy may go on after the listeners closed and VRRP released;
    /// those still open then are reset (0: at once).
    pub drain_timeout: Duration,
    /// Default: what a real server that is down becomes.
    pub on_down: OnDown,
    /// Default data plane of every virtual service.
    pub data_plane: DataPlaneKind,
    /// `[global.ipvs]`: kernel-wide IPVS settings.
    pub ipvs: IpvsGlobal,
    /// `[global.sync]`: the config digest and `halb config diff`/`push`
    /// between the directors of a pair (halb-sync).
    pub sync: Option<SyncConfig>,
    /// `[global.quorum]`: quorum from Corosync for three directors or
    /// more (None: VRRP alone decides).
    pub quorum: Option<halb_quorum::Settings>,
}

/// `[global.sync]`: where this director's sync channel listens, its
/// peers, and the shared key of the channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncConfig {
    /// This director's name as its peers show it (default: the host name).
    pub name: Option<String>,
    /// Where the channel listens (TCP).
    pub listen: std::net::SocketAddr,
    /// The shared key (64 hex digits as 32 bytes, or a passphrase of 16
    /// bytes or more), the same on every director; never serialized.
    #[serde(serialize_with = "secret")]
    pub key: Vec<u8>,
    pub peers: Vec<SyncPeer>,
    /// How often each peer is asked for its digest.
    pub interval: Duration,
}

/// One peer of `[global.sync]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncPeer {
    pub name: String,
    pub address: std::net::SocketAddr,
}

/// The default `[global.sync] interval`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);

fn secret<S: serde::Serializer>(_: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("(secret)")
}

/// What halb does with IPVS services it does not manage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum ForeignServices {
    /// Report them and leave them alone.
    #[default]
    Keep,
    /// Delete them.
    Remove,
}

/// `[global.ipvs]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IpvsGlobal {
    /// Kernel connection timeouts (`ipvsadm --set`); unset: left as they are.
    pub timeout_tcp: Option<Duration>,
    pub timeout_tcpfin: Option<Duration>,
    pub timeout_udp: Option<Duration>,
    pub foreign: ForeignServices,
    /// `[global.ipvs.sync_daemon]`: the kernel's connection-sync daemon.
    pub sync_daemon: Option<SyncDaemonConfig>,
}

/// Role of the connection-sync daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SyncRole {
    Master,
    Backup,
}

/// `[global.ipvs.sync_daemon]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncDaemonConfig {
    /// The fixed state, or the state at start (backup) when it follows
    /// a VRRP instance.
    pub state: SyncRole,
    /// `vrrp_instance`: master while that instance is master, backup
    /// otherwise (keepalived's `lvs_sync_daemon IFACE INSTANCE`).
    pub follow: Option<String>,
    pub interface: String,
    pub sync_id: u32,
    pub group: Option<std::net::IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    /// Largest sync message in bytes (ipvsadm `--sync-maxlen`, keepalived
    /// `maxlen`); `None`: the kernel's choice from the interface MTU.
    pub max_len: Option<u16>,
}

/// The default `[global] drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Global {
    /// The documented defaults; the control socket from
    /// [`default_control_socket`].
    fn default() -> Self {
        Global {
            control_socket: default_control_socket(),
            control_socket_group: None,
            control_socket_read_group: None,
            workers: 0,
            check_concurrency: 0,
            http_listen: None,
            http_token: None,
            connect_timeout: Duration::from_secs(3),
            connect_attempts: 3,
            idle_timeout: Duration::from_secs(15 * 60),
            udp_timeout: Duration::from_secs(5 * 60),
            udp_max_flows: 0,
            max_fails: halb_table::DEFAULT_MAX_FAILS,
            fail_timeout: halb_table::DEFAULT_FAIL_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            on_down: OnDown::Quiescent,
            data_plane: DataPlaneKind::Proxy,
            ipvs: IpvsGlobal::default(),
            sync: None,
            quorum: None,
        }
    }
}

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    pub global: Global,
    /// In file order, every default applied.
    pub services: Vec<VirtualService>,
    /// The health check of every real server that has one, in file order
    /// (a real server under no `check` table anywhere is not checked: it
    /// is always up).
    pub checks: Vec<RealCheck>,
    /// The alert settings of every service that has any (its `alert`
    /// table over the global one), by service name, in file order.
    pub alerts: Vec<(String, halb_alert::AlertSpec)>,
    /// The alert settings of every resource group that has any (its
    /// `alert` table over the global one), by group name.
    pub resource_alerts: Vec<(String, halb_alert::AlertSpec)>,
    /// Where VRRP path alerts (a path of an instance with `paths` died
    /// or healed) and config sync alerts (`[global.sync]`) go:
    /// `[global.alert]`.
    pub vrrp_alert: halb_alert::AlertSpec,
    /// `[[vrrp_instance]]`s, in file order.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `[[vrrp_sync_group]]`s, in file order.
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    /// `[[resource_group]]`s, in file order: what runs on the director
    /// where the instance (or sync group) each follows is master.
    pub resource_groups: Vec<halb_resource::GroupSpec>,
}

/// The resolved health check of one real server of one virtual service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RealCheck {
    pub service: ServiceKey,
    pub real: std::net::SocketAddr,
    pub spec: halb_health::CheckSpec,
    /// The real server's own `on_down`, over its service's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_down: Option<halb_table::OnDown>,
}

impl Config {
    /// The desired data-plane state this configuration describes (before
    /// health checks change any weight).
    pub fn to_table(&self) -> Table {
        Table {
            services: self.services.clone(),
        }
    }

    /// The check of real server `real` of service `service`, if it has one.
    pub fn check(&self, service: ServiceKey, real: std::net::SocketAddr) -> Option<&RealCheck> {
        self.checks
            .iter()
            .find(|c| c.service == service && c.real == real)
    }
}

/// Where the control socket goes when `[global] control_socket` is not set:
/// `/run/halb/halb.sock` as root, else `$XDG_RUNTIME_DIR/halb.sock` if that
/// is set, else `/tmp/halb-$UID/halb.sock`.
pub fn default_control_socket() -> PathBuf {
    control_socket_for(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )
}

fn control_socket_for(uid: u32, xdg_runtime_dir: Option<OsString>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from("/run/halb/halb.sock");
    }
    match xdg_runtime_dir {
        // A relative or empty value is invalid per the XDG spec: ignored.
        Some(dir) if Path::new(&dir).is_absolute() => Path::new(&dir).join("halb.sock"),
        _ => PathBuf::from(format!("/tmp/halb-{uid}/halb.sock")),
    }
}

/// Parse and check a configuration. `file` names it in errors (it is not
/// read). Every problem is reported, in source order.
pub fn parse(src: &str, file: &Path) -> Result<Config, ConfigErrors> {
    walk::check(src, file)
}

/// Read, parse and check a configuration file. A file that cannot be read
/// (missing, not a regular file, larger than [`DEFAULT_MAX_SIZE`]) is one
/// error naming it.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    Loader::default().load(path)
}

/// The largest configuration file halb reads unless told otherwise
/// (`--max-config-size`): 64 MiB, some 300,000 virtual services.
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;

/// Reads a configuration again and again (the daemon's start and its
/// reloads): a load re-parses only the virtual services whose text changed
/// since the last load that succeeded, and parses a large file on several
/// threads. It accepts and rejects exactly what [`parse`] does, with the
/// same config or the same errors.
pub struct Loader {
    cache: walk::incremental::Cache,
    stats: LoadStats,
    max_size: u64,
}

impl Default for Loader {
    fn default() -> Self {
        Loader::with_max_size(DEFAULT_MAX_SIZE)
    }
}

impl Loader {
    /// The largest file this loader reads.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// A loader that refuses files larger than `max_size` bytes.
    pub fn with_max_size(max_size: u64) -> Self {
        Loader {
            cache: walk::incremental::Cache::default(),
            stats: LoadStats::default(),
            max_size,
        }
    }

    /// [`load`], remembering what it can reuse next time.
    pub fn load(&mut self, path: &Path) -> Result<Config, ConfigErrors> {
        let src = read(path, self.max_size)?;
        self.parse(&src, path)
    }

    /// [`Loader::load`], with the text it read (for checks after the walk
    /// that point into it, such as [`check_agents`]).
    pub fn load_with_source(&mut self, path: &Path) -> Result<(Config, String), ConfigErrors> {
        let src = read(path, self.max_size)?;
        let config = self.parse(&src, path)?;
        Ok((config, src))
    }

    /// [`parse`], remembering what it can reuse next time.
    pub fn parse(&mut self, src: &str, file: &Path) -> Result<Config, ConfigErrors> {
        if let Some(c) = walk::incremental::check(src, file, &mut self.cache, &mut self.stats) {
            return Ok(c);
        }
        self.stats = LoadStats {
            whole: true,
            ..LoadStats::default()
        };
        let c = parse(src, file)?;
        self.cache = walk::incremental::Cache::default();
        Ok(c)
    }

    /// What the last load did (how much it reused).
    pub fn stats(&self) -> LoadStats {
        self.stats
    }
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A file's text; a file that cannot be read is one error naming it.
/// Only a regular file of at most `max` bytes is read: a FIFO, a device
/// (`/dev/zero`), a socket or a directory is refused before it is opened
/// (opening a FIFO would wait for a writer), and again on what was
/// opened, should the path have changed in between.
fn read(path: &Path, max: u64) -> Result<String, ConfigErrors> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let one = |message: String, fix: Option<String>| ConfigErrors {
        file: path.to_owned(),
        errors: vec![ConfigError::whole_file(path, message, fix)],
    };
    let io = |e: std::io::Error| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => Some("check the path".to_owned()),
            std::io::ErrorKind::PermissionDenied => Some(
                "make the file readable by this user, or run halb as one who can read it"
                    .to_owned(),
            ),
            _ => None,
        };
        one(format!("cannot read the file: {e}"), fix)
    };
    let refuse = |meta: &std::fs::Metadata| -> Result<(), ConfigErrors> {
        if let Some(what) = not_regular(&meta.file_type()) {
            let fix = if meta.is_dir() {
                "this is a directory: give the path of the TOML file"
            } else {
                "halb reads its config from a regular file only: give the path of the TOML file"
            };
            return Err(one(
                format!("cannot read the file: it is {what}, not a regular file"),
                Some(fix.to_owned()),
            ));
        }
        if meta.len() > max {
            return Err(too_large(path, meta.len(), max, false));
        }
        Ok(())
    };
    refuse(&std::fs::metadata(path).map_err(io)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    refuse(&meta)?;
    let cap = usize::try_from(meta.len().min(max)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(cap.saturating_add(1));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    // It grew while it was read.
    if bytes.len() as u64 > max {
        return Err(too_large(path, bytes.len() as u64, max, true));
    }
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e))
}

/// What a file is when it is not a regular one.
fn not_regular(t: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("a special file")
    }
}

/// A file over the limit; `size` is what was seen (more than `max`).
fn too_large(path: &Path, size: u64, max: u64, grew: bool) -> ConfigErrors {
    let message = if grew {
        format!(
            "cannot read the file: it grew past the limit of {} ({max} bytes) while it was read",
            mib(max)
        )
    } else {
        format!(
            "cannot read the file: it is {size} bytes, larger than the limit of {} ({max} bytes)",
            mib(max)
        )
    };
    ConfigErrors {
        file: path.to_owned(),
        errors: vec![ConfigError::whole_file(
            path,
            message,
            Some(
                "check that this is the config file; if it is, raise the limit with \
                 --max-config-size (halb run, halb check-config)"
                    .to_owned(),
            ),
        )],
    }
}

/// `64 MiB`, `1.5 KiB`, `10 bytes`.
fn mib(n: u64) -> String {
    const K: u64 = 1024;
    match n {
        n if n >= K * K && n % (K * K) == 0 => format!("{} MiB", n / (K * K)),
        n if n >= K && n % K == 0 => format!("{} KiB", n / K),
        n => format!("{n} bytes"),
    }
}

/// A file that is not UTF-8: say where the first bad byte is.
fn not_utf8(path: &Path, e: std::string::FromUtf8Error) -> ConfigErrors {
    let at = e.utf8_error().valid_up_to();
    let text = String::from_utf8_lossy(e.as_bytes());
    let map = diag::SourceMap::new(&text);
    let problem = diag::Problem::new(at..at + 1, "", "the file is not valid UTF-8")
        .expected("a UTF-8 text file")
        .fix("save the file as UTF-8");
    ConfigErrors {
        file: path.to_owned(),
        errors: vec![map.place(path, problem)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_socket_rule() {
        assert_eq!(
            control_socket_for(0, Some("/run/user/0".into())),
            Path::new("/run/halb/halb.sock")
        );
        assert_eq!(
            control_socket_for(1000, Some("/run/user/1000".into())),
            Path::new("/run/user/1000/halb.sock")
        );
        assert_eq!(
            control_socket_for(1000, None),
            Path::new("/tmp/halb-1000/halb.sock")
        );
        assert_eq!(
            control_socket_for(1000, Some("".into())),
            Path::new("/tmp/halb-1000/halb.sock")
        );
        assert_eq!(
            control_socket_for(1000, Some("relative".into())),
            Path::new("/tmp/halb-1000/halb.sock")
        );
        let d = default_control_socket();
        assert!(d.is_absolute() && d.ends_with("halb.sock"), "{d:?}");
    }

    #[test]
    fn load_errors() {
        let dir = std::env::temp_dir().join(format!("halb-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.toml");
        let e = load(&missing).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e.errors[0].file, missing);
        assert_eq!(e.errors[0].line, 0);
        assert!(e.render().contains("cannot read the file"), "{e}");
        assert!(e.render().contains("missing.toml"), "{e}");

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, b"[global]\nworkers = \"\xff\"\n").unwrap();
        let e = load(&bad).unwrap_err();
        assert_eq!((e.errors[0].line, e.errors[0].column), (2, 12));
        assert!(e.errors[0].message.contains("UTF-8"));

        let good = dir.join("good.toml");
        std::fs::write(&good, "[global]\nworkers = 2\n").unwrap();
        assert_eq!(load(&good).unwrap().global.workers, 2);
        // A symlink to a regular file is a regular file.
        let link = dir.join("link.toml");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert_eq!(load(&link).unwrap().global.workers, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fwmark_real_servers_may_have_port_0() {
        let base = "[[virtual_service]]\ndata_plane = \"ipvs\"\nfwmark = 1\n\
                    [[virtual_service.real_server]]\naddress = \"192.0.2.1:0\"\n";
        let c = parse(base, Path::new("x.toml")).unwrap();
        assert_eq!(c.services[0].reals[0].addr.port(), 0);
        let ok = format!("{base}check = {{ type = \"tcp\", port = 80 }}\n");
        let c = parse(&ok, Path::new("x.toml")).unwrap();
        assert_eq!(c.checks[0].spec.target.port(), 80);
        let bad = format!("{base}check = {{ type = \"tcp\" }}\n");
        let e = parse(&bad, Path::new("x.toml")).unwrap_err();
        assert!(
            e.render().contains("has port 0: its check has no port"),
            "{e}"
        );
        let e = parse(
            "[[virtual_service]]\nlisten = \"192.0.2.9:80\"\n[[virtual_service.real_server]]\naddress = \"192.0.2.1:0\"\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(e.render().contains("port 0 is not allowed"), "{e}");
    }

    fn only_error(e: &ConfigErrors) -> &ConfigError {
        assert_eq!(e.len(), 1, "{e}");
        &e.errors[0]
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("halb-config-special-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A FIFO nobody writes to: refused at once, not waited on.
        let fifo = dir.join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = load(&fifo).unwrap_err();
        let err = only_error(&e);
        assert_eq!(err.file, fifo);
        assert!(
            err.message
                .contains("a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        assert!(e.render().contains("fifo.toml"), "{e}");
        // A device that never ends.
        let e = load(Path::new("/dev/zero")).unwrap_err();
        assert!(
            only_error(&e)
                .message
                .contains("a character device, not a regular file"),
            "{e}"
        );
        assert!(e.render().contains("/dev/zero"), "{e}");
        // A directory.
        let e = load(&dir).unwrap_err();
        let err = only_error(&e);
        assert!(err.message.contains("a directory"), "{e}");
        assert!(
            err.fix.as_deref().unwrap_or("").contains("directory"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn size_is_bounded() {
        let dir = std::env::temp_dir().join(format!("halb-config-size-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big.toml");
        std::fs::write(&f, "[global]\nworkers = 2\n").unwrap();
        let e = Loader::with_max_size(10).load(&f).unwrap_err();
        let err = only_error(&e);
        assert!(
            err.message
                .contains("bytes, larger than the limit of 10 bytes (10 bytes)"),
            "{e}"
        );
        assert!(
            err.fix
                .as_deref()
                .unwrap_or("")
                .contains("--max-config-size"),
            "{e}"
        );
        // At the limit: read.
        let size = std::fs::metadata(&f).unwrap().len();
        assert!(Loader::with_max_size(size).load(&f).is_ok());
        assert_eq!(mib(DEFAULT_MAX_SIZE), "64 MiB");
        assert_eq!(mib(2048), "2 KiB");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
