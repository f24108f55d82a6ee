//! The balancing table and the data-plane interface.
//!
//! A [`Table`] is the *desired* state: every virtual service with its real
//! servers, their effective weights (config combined with health) and
//! thresholds. The daemon builds it and hands it to a [`DataPlane`], which
//! makes it so (the userspace proxy by rebinding listeners and swapping
//! pools; the kernel data planes by sending the smallest set of netlink
//! operations). Data planes report back [`ServiceStats`] and
//! [`ConnectionInfo`], which the control socket serves to `halb list`.
//!
//! This crate holds no I/O.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod estimator;
mod stats;

pub use estimator::{Estimator, RateCounters, ESTIMATOR_PERIOD};
pub use stats::{ConnectionInfo, Counters, Rates, RealStats, ServiceStats};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// IPVS only (the userspace proxy has no SCTP).
    Sctp,
}

impl Protocol {
    /// As ipvsadm prints it (`TCP`, `UDP`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// The IPVS schedulers, by their kernel names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Lblc,
    Lblcr,
    Mh,
    Fo,
    Ovf,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 13] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Dh,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Scheduler flags of the hashing schedulers (ipvsadm `-b`): `sh-fallback`,
/// `sh-port` for sh, and the same for mh (`mh-fallback`, `mh-port`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchedulerFlags {
    /// When the hashed real server is unavailable, pick another one.
    pub fallback: bool,
    /// Hash the source port too, not only the address.
    pub port: bool,
}

/// Client affinity (ipvsadm `-p TIMEOUT -M NETMASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// How long a client's entry lives after its last connection ends.
    pub timeout: Duration,
    /// Prefix length applied to IPv4 clients (32: one client per address).
    pub prefix_v4: u8,
    /// Prefix length applied to IPv6 clients (128: one client per address).
    pub prefix_v6: u8,
}

/// What a real server that is down or drained becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDown {
    /// Weight 0: no new connections, established ones carry on (ldirectord
    /// `quiescent = yes`).
    #[default]
    Quiescent,
    /// Taken out of the table. The userspace proxy still lets established
    /// connections finish.
    Remove,
}

/// PROXY protocol header sent to real servers before any client byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    V1,
    V2,
}

/// How packets reach a real server (the `Forward` column of `ipvsadm -L`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// Userspace full proxy: a new connection from the director.
    #[default]
    Proxy,
    /// IPVS direct routing (`-g`, "Route").
    Route,
    /// IPVS NAT (`-m`, "Masq").
    Masq,
    /// IPVS IP-in-IP (`-i`, "Tunnel").
    Tunnel,
}

impl Forward {
    /// As ipvsadm prints it.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forward::Proxy => "Proxy",
            Forward::Route => "Route",
            Forward::Masq => "Masq",
            Forward::Tunnel => "Tunnel",
        }
    }
}

/// Which data plane carries a virtual service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlaneKind {
    /// The userspace proxy (`halb-proxy`).
    #[default]
    Proxy,
    /// Linux IPVS, programmed over netlink (`halb-ipvs`).
    Ipvs,
}

impl DataPlaneKind {
    pub fn name(self) -> &'static str {
        match self {
            DataPlaneKind::Proxy => "proxy",
            DataPlaneKind::Ipvs => "ipvs",
        }
    }
}

/// Encapsulation of an IPVS tunnel real server (`forward = "tunnel"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

/// Checksums of a GUE or GRE tunnel (ipvsadm `--tun-nocsum`, `--tun-csum`,
/// `--tun-remcsum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    /// No checksum in the encapsulation (the kernel's default).
    #[default]
    NoCsum,
    /// A checksum in the outer UDP (GUE) or GRE header.
    Csum,
    /// GUE remote checksum offload.
    RemCsum,
}

/// One real server as the data plane should see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RealServer {
    pub addr: SocketAddr,
    /// Effective weight, 0..=65535. 0 is quiescent.
    pub weight: u32,
    /// Upper connection threshold (ipvsadm `-x`); 0: none.
    pub upper_threshold: u32,
    /// Lower connection threshold (ipvsadm `-y`); 0: three quarters of upper.
    pub lower_threshold: u32,
    pub forward: Forward,
    /// IPVS tunnel: encapsulation and (GUE) destination port.
    #[serde(default)]
    pub tunnel_type: TunnelType,
    #[serde(default)]
    pub tunnel_port: u16,
    #[serde(default)]
    pub tunnel_checksum: TunnelChecksum,
}

impl RealServer {
    pub fn new(addr: SocketAddr, weight: u32) -> Self {
        RealServer {
            addr,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            forward: Forward::Proxy,
            tunnel_type: TunnelType::Ipip,
            tunnel_port: 0,
            tunnel_checksum: TunnelChecksum::NoCsum,
        }
    }
}

/// Passive health: failed connects in a row that leave a real server out
/// (nginx's default).
pub const DEFAULT_MAX_FAILS: u32 = 1;
/// Passive health: the failure window and the time out (nginx's default).
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

fn default_max_fails() -> u32 {
    DEFAULT_MAX_FAILS
}

fn default_fail_timeout() -> Duration {
    DEFAULT_FAIL_TIMEOUT
}

/// The default `udp_max_flows` of a virtual service.
pub const DEFAULT_UDP_MAX_FLOWS: u32 = 10_000;

fn default_udp_max_flows() -> u32 {
    DEFAULT_UDP_MAX_FLOWS
}

/// One virtual service as the data plane should see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VirtualService {
    pub name: String,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    pub scheduler: SchedulerKind,
    pub flags: SchedulerFlags,
    pub persistence: Option<Persistence>,
    /// Used only while no real server can take a connection. IPVS: added
    /// to the kernel's table (weight 1) while no real server is up, as
    /// keepalived's `sorry_server` and ldirectord's `fallback`.
    pub fallback: Option<SocketAddr>,
    /// IPVS: how the fallback server is reached.
    #[serde(default)]
    pub fallback_forward: Forward,
    pub on_down: OnDown,
    pub proxy_protocol: Option<ProxyProtocol>,
    /// TCP: how long one connect attempt to a real server may take.
    pub connect_timeout: Duration,
    /// TCP: how many real servers one client connection may try.
    pub connect_attempts: u32,
    /// TCP: an established connection with no traffic either way is closed
    /// after this long (0: never).
    pub idle_timeout: Duration,
    /// UDP: a client flow with no packets either way is forgotten after this.
    pub udp_timeout: Duration,
    /// UDP (userspace proxy): at most this many client flows at once; when
    /// a new client comes at the cap, the flow idle the longest is evicted.
    #[serde(default = "default_udp_max_flows")]
    pub udp_max_flows: u32,
    /// Passive health (userspace proxy, TCP; nginx's `max_fails`): after
    /// this many failed connects in a row, each within `fail_timeout` of
    /// the first, the real server is left out of the choice for
    /// `fail_timeout`. 0: off.
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    /// Passive health: the window the failures count in, and how long the
    /// real server is then left out (nginx's `fail_timeout`).
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout: Duration,
    /// Which data plane carries this service.
    #[serde(default)]
    pub data_plane: DataPlaneKind,
    /// IPVS firewall-mark service: packets marked N (by nftables/iptables)
    /// are balanced, whatever their address; `listen` is then the
    /// unspecified address of the family, port 0.
    #[serde(default)]
    pub fwmark: Option<u32>,
    /// IPVS one-packet scheduling (UDP): each datagram scheduled alone.
    #[serde(default)]
    pub one_packet: bool,
    pub reals: Vec<RealServer>,
}

impl VirtualService {
    /// A service with defaults everywhere but the essentials; for tests and
    /// the demo.
    pub fn new(
        name: impl Into<String>,
        listen: SocketAddr,
        protocol: Protocol,
        scheduler: SchedulerKind,
    ) -> Self {
        VirtualService {
            name: name.into(),
            listen,
            protocol,
            scheduler,
            flags: SchedulerFlags::default(),
            persistence: None,
            fallback: None,
            fallback_forward: Forward::Proxy,
            on_down: OnDown::default(),
            proxy_protocol: None,
            connect_timeout: Duration::from_secs(3),
            connect_attempts: 3,
            idle_timeout: Duration::from_secs(900),
            udp_timeout: Duration::from_secs(300),
            udp_max_flows: DEFAULT_UDP_MAX_FLOWS,
            max_fails: DEFAULT_MAX_FAILS,
            fail_timeout: DEFAULT_FAIL_TIMEOUT,
            data_plane: DataPlaneKind::Proxy,
            fwmark: None,
            one_packet: false,
            reals: Vec::new(),
        }
    }

    /// The key a virtual service is known by across reloads.
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            listen: self.listen,
            fwmark: self.fwmark,
        }
    }
}

/// Identity of a virtual service: protocol and listen address, or a
/// firewall mark, as in IPVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub listen: SocketAddr,
    #[serde(default)]
    pub fwmark: Option<u32>,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fwmark {
            Some(m) if self.listen.is_ipv6() => write!(f, "fwmark {m} IPv6"),
            Some(m) => write!(f, "fwmark {m}"),
            None => write!(f, "{} {}", self.protocol, self.listen),
        }
    }
}

/// The desired state of one data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub services: Vec<VirtualService>,
}

/// What went wrong applying a table. Names the service (and real server)
/// concerned so an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("virtual service {service}: cannot listen on {listen}: {source}")]
    Listen {
        service: String,
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("virtual service {service}: {message}")]
    Service { service: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// The result of applying a table: services whose apply failed are listed,
/// the rest are in force. A data plane never half-applies one service.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub errors: Vec<DataPlaneError>,
    /// Problems that leave the rest running: a service the kernel could
    /// not take, a kernel without IPVS. The daemon logs them and carries on.
    pub warnings: Vec<DataPlaneError>,
}

impl ApplyReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The interface every data plane implements: the userspace proxy today,
/// IPVS, nftables and XDP later.
///
/// `apply` takes the whole desired table and makes the data plane match it
/// as a diff: services and real servers that did not change are not
/// touched, established connections survive weight and scheduler changes.
/// It is synchronous and may be called from any thread: a data plane owns
/// its own threads (or talks to the kernel) and never borrows the caller's
/// runtime.
pub trait DataPlane: Send {
    /// Short name for logs and `halb list` (`proxy`, `ipvs`).
    fn name(&self) -> &'static str;

    /// A read-only view of this data plane's counters and connections,
    /// for readers (the control socket, the dashboard) that must never
    /// wait for the daemon's work: it does not go through `&self`, and an
    /// apply in progress does not hold it up.
    fn observer(&self) -> std::sync::Arc<dyn Observer>;

    /// Make the data plane match `table`.
    fn apply(&mut self, table: &Table) -> ApplyReport;

    /// After a reload (the daemon calls it once the reload is answered):
    /// compare the data plane with the last applied table and put right
    /// what was changed behind halb's back. A data plane that owns all its
    /// state has nothing to check.
    fn verify(&mut self) -> ApplyReport {
        ApplyReport::default()
    }

    /// Counters and rates per service and real server, in table order.
    fn stats(&self) -> Vec<ServiceStats>;

    /// The connection table (TCP connections and UDP flows).
    fn connections(&self) -> Vec<ConnectionInfo>;

    /// Shutdown, first step: stop taking new connections (listeners
    /// closed); established ones go on. A data plane that does not carry
    /// connections itself (the kernel's IPVS) has nothing to do.
    fn close_listeners(&mut self) {}

    /// Connections (and flows) this data plane carries now: what a drain
    /// waits for.
    fn open_connections(&self) -> usize {
        0
    }

    /// Shutdown, last step (the drain is over): every connection still
    /// open is reset (RST, not FIN), so that its client knows the transfer
    /// is incomplete.
    fn reset_connections(&mut self) {}
}

/// What [`DataPlane::observer`] gives: counters and the connection
/// table, read from the data plane's shared state.
pub trait Observer: Send + Sync {
    /// Counters and rates per service and real server, in table order.
    fn stats(&self) -> Vec<ServiceStats>;

    /// [`Observer::stats`] without taking any lock the forwarding path
    /// takes (what a `/metrics` scrape reads): counters live, parts that
    /// need such a lock as the data plane last published them. The
    /// default is `stats`, for planes whose `stats` takes none.
    fn stats_unlocked(&self) -> Vec<ServiceStats> {
        self.stats()
    }

    /// The connection table (TCP connections and UDP flows).
    fn connections(&self) -> Vec<ConnectionInfo>;
}
