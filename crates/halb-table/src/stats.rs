//! What data planes report: counters, rates and the connection table.

use crate::{Forward, Persistence, Protocol, SchedulerFlags, SchedulerKind};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Cumulative counters, as IPVS keeps them per service and destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections (TCP) or flows (UDP) ever scheduled.
    pub conns: u64,
    /// Connections established both ways right now.
    pub active: u64,
    /// Connections half-closed (TCP) or flows (UDP) right now; IPVS counts
    /// every non-established entry as inactive.
    pub inactive: u64,
    /// Bytes from clients to real servers.
    pub bytes_in: u64,
    /// Bytes from real servers to clients.
    pub bytes_out: u64,
    /// UDP datagrams from clients (TCP: 0, a proxy sees no packets).
    pub packets_in: u64,
    /// UDP datagrams to clients.
    pub packets_out: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.conns += o.conns;
        self.active += o.active;
        self.inactive += o.inactive;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
    }
}

/// Smoothed rates per second (see [`crate::Estimator`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: f64,
    pub inpps: f64,
    pub outpps: f64,
    pub inbps: f64,
    pub outbps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealStats {
    pub addr: SocketAddr,
    pub weight: u32,
    pub forward: Forward,
    /// Over its upper threshold and not yet back below the lower one.
    pub overloaded: bool,
    /// Still carrying connections after being removed from the table.
    pub removed: bool,
    /// Left out of the choice by passive health (failed connects), for
    /// this many more milliseconds (userspace proxy); 0: not left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_out_ms: u64,
    pub counters: Counters,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub name: String,
    pub protocol: Protocol,
    pub listen: SocketAddr,
    pub scheduler: SchedulerKind,
    /// The kernel's scheduler name when it is none of the thirteen halb
    /// knows (a module of its own): shown as is instead of `scheduler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// sh/mh flags (`(sh-fallback,sh-port)` in the listing).
    #[serde(default)]
    pub flags: SchedulerFlags,
    /// IPVS firewall-mark service (`FWM  7` in the listing).
    #[serde(default)]
    pub fwmark: Option<u32>,
    /// IPVS one-packet scheduling (`ops`).
    #[serde(default)]
    pub one_packet: bool,
    pub persistence: Option<Persistence>,
    pub fallback: Option<SocketAddr>,
    /// Connections sent to the fallback server.
    pub fallback_conns: u64,
    /// UDP flows open now (userspace proxy).
    #[serde(default)]
    pub udp_flows: u64,
    /// UDP flows evicted to make room for new clients (`udp_max_flows`,
    /// per service or global), since the service started.
    #[serde(default)]
    pub udp_flows_evicted: u64,
    pub counters: Counters,
    pub rates: Rates,
    pub reals: Vec<RealStats>,
}

/// One entry of the connection table (`ipvsadm -L -n -c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub virtual_addr: SocketAddr,
    pub real: SocketAddr,
    /// `ESTABLISHED`, `CONNECTING`, `FIN_WAIT` (one way closed), `UDP`.
    pub state: String,
    /// Milliseconds since the connection was accepted.
    pub age_ms: u64,
    /// Milliseconds until it expires when idle (UDP flows; TCP idle timeout).
    pub expires_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
