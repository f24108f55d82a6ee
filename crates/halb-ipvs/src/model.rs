//! The kernel's IPVS table as plain data: what we send and what we read back.

use crate::consts::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Protocol of an address-based virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpvsProtocol {
    Tcp,
    Udp,
    Sctp,
}

impl IpvsProtocol {
    pub fn number(self) -> u16 {
        match self {
            IpvsProtocol::Tcp => 6,
            IpvsProtocol::Udp => 17,
            IpvsProtocol::Sctp => 132,
        }
    }
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            6 => Some(IpvsProtocol::Tcp),
            17 => Some(IpvsProtocol::Udp),
            132 => Some(IpvsProtocol::Sctp),
            _ => None,
        }
    }
    /// As ipvsadm prints it.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            IpvsProtocol::Tcp => "TCP",
            IpvsProtocol::Udp => "UDP",
            IpvsProtocol::Sctp => "SCTP",
        }
    }
}

/// Address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
    pub fn af(self) -> u16 {
        match self {
            Family::V4 => AF_INET,
            Family::V6 => AF_INET6,
        }
    }
    pub fn from_af(af: u16) -> Option<Family> {
        match af {
            AF_INET => Some(Family::V4),
            AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }
    pub fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// How the kernel knows a virtual service: protocol + address + port, or a
/// firewall mark (per address family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServiceId {
    Inet {
        protocol: IpvsProtocol,
        addr: SocketAddr,
    },
    Fwmark {
        family: Family,
        mark: u32,
    },
}

impl ServiceId {
    pub fn family(&self) -> Family {
        match self {
            ServiceId::Inet { addr, .. } => Family::of(addr.ip()),
            ServiceId::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceId {
    /// As `ipvsadm -L -n` names it: `TCP  192.0.2.1:80`, `FWM  7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceId::Inet { protocol, addr } => write!(f, "{} {}", protocol.ipvsadm_name(), addr),
            ServiceId::Fwmark {
                family: Family::V4,
                mark,
            } => write!(f, "FWM {mark}"),
            ServiceId::Fwmark {
                family: Family::V6,
                mark,
            } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// Service flags the user chooses (`IP_VS_SVC_F_*` minus the kernel's own
/// `HASHED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceFlags {
    /// One-packet scheduling (UDP): every datagram is scheduled on its own.
    pub one_packet: bool,
    /// `sh-fallback` / `mh-fallback` (SCHED1).
    pub sched_fallback: bool,
    /// `sh-port` / `mh-port` (SCHED2).
    pub sched_port: bool,
    /// SCHED3: no scheduler uses it today; kept so a read-back compares.
    pub sched3: bool,
}

/// One virtual service as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    /// Kernel scheduler name (`rr`, `wlc`, `mh`...).
    pub scheduler: String,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds; `None`: not persistent.
    pub persistence: Option<u32>,
    /// Persistence netmask as a prefix length (32 / 128: one client).
    pub netmask: u8,
}

impl Service {
    pub fn new(id: ServiceId, scheduler: impl Into<String>) -> Self {
        Service {
            netmask: id.family().max_prefix(),
            id,
            scheduler: scheduler.into(),
            flags: ServiceFlags::default(),
            persistence: None,
        }
    }

    /// Equal as far as the kernel's behaviour goes (the netmask means
    /// nothing without persistence).
    pub fn same_settings(&self, o: &Service) -> bool {
        self.id == o.id
            && self.scheduler == o.scheduler
            && self.flags == o.flags
            && self.persistence == o.persistence
            && (self.persistence.is_none() || self.netmask == o.netmask)
    }
}

/// Forwarding method of a destination (`ipvsadm -g/-m/-i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FwdMethod {
    Masq,
    Local,
    Tunnel,
    Route,
    Bypass,
}

impl FwdMethod {
    pub fn number(self) -> u32 {
        match self {
            FwdMethod::Masq => CONN_F_MASQ,
            FwdMethod::Local => CONN_F_LOCALNODE,
            FwdMethod::Tunnel => CONN_F_TUNNEL,
            FwdMethod::Route => CONN_F_DROUTE,
            FwdMethod::Bypass => CONN_F_BYPASS,
        }
    }
    pub fn from_number(n: u32) -> Option<Self> {
        match n & CONN_F_FWD_MASK {
            CONN_F_MASQ => Some(FwdMethod::Masq),
            CONN_F_LOCALNODE => Some(FwdMethod::Local),
            CONN_F_TUNNEL => Some(FwdMethod::Tunnel),
            CONN_F_DROUTE => Some(FwdMethod::Route),
            CONN_F_BYPASS => Some(FwdMethod::Bypass),
            _ => None,
        }
    }
    /// The `Forward` column of `ipvsadm -L`.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::Bypass => "Bypass",
        }
    }
}

/// Encapsulation of a tunnel destination (kernel 5.2+ for gue/gre).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub fn number(self) -> u8 {
        match self {
            TunnelType::Ipip => TUNNEL_TYPE_IPIP,
            TunnelType::Gue => TUNNEL_TYPE_GUE,
            TunnelType::Gre => TUNNEL_TYPE_GRE,
        }
    }
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            TUNNEL_TYPE_IPIP => Some(TunnelType::Ipip),
            TUNNEL_TYPE_GUE => Some(TunnelType::Gue),
            TUNNEL_TYPE_GRE => Some(TunnelType::Gre),
            _ => None,
        }
    }
}

/// One destination (real server) of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dest {
    pub addr: SocketAddr,
    pub fwd: FwdMethod,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// Only with [`FwdMethod::Tunnel`]; `Ipip` is what old kernels do.
    pub tunnel: TunnelType,
    /// Destination UDP port of a GUE tunnel.
    pub tunnel_port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*` (checksums).
    pub tunnel_flags: u16,
}

impl Dest {
    pub fn new(addr: SocketAddr, fwd: FwdMethod, weight: u32) -> Self {
        Dest {
            addr,
            fwd,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: TunnelType::Ipip,
            tunnel_port: 0,
            tunnel_flags: 0,
        }
    }
}

/// Cumulative counters and the kernel's estimated rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A service as read back, with its statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub service: Service,
    pub stats: Stats,
}

/// A destination as read back, with its connection counts and statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestInfo {
    pub dest: Dest,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub stats: Stats,
}

/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`); 0 in a
/// request leaves that one unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Role of a connection-sync daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncState {
    Master,
    Backup,
}

impl SyncState {
    pub fn number(self) -> u32 {
        match self {
            SyncState::Master => STATE_MASTER,
            SyncState::Backup => STATE_BACKUP,
        }
    }
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            STATE_MASTER => Some(SyncState::Master),
            STATE_BACKUP => Some(SyncState::Backup),
            _ => None,
        }
    }
}

/// The kernel's connection-sync daemon (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SyncDaemon {
    pub state: SyncState,
    pub interface: String,
    pub sync_id: u32,
    /// Multicast group (default 224.0.0.81).
    pub group: Option<IpAddr>,
    /// Base UDP port (default 8848).
    pub port: Option<u16>,
    /// Multicast TTL (default 1).
    pub ttl: Option<u8>,
    /// Largest sync message payload.
    pub max_len: Option<u16>,
}

/// General IPVS information (`IPVS_CMD_GET_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// `(major << 16) | (minor << 8) | patch`, e.g. 1.2.1.
    pub version: u32,
    pub conn_tab_size: u32,
}
