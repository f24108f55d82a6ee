//! IPVS scheduling semantics as a pure state machine.
//!
//! A [`Pool`] is one virtual service's balancing state: its real servers
//! with their weights, live connection counts and overload flags, the
//! scheduler, the persistence templates and the fallback server. It does no
//! I/O and reads no clock: callers feed it events and `now`.
//!
//! Connection accounting follows IPVS: a newly scheduled connection counts
//! as *inactive* (the kernel's SYN_RECV) until [`Pool::set_active`] moves it
//! to *active*; a half-closed one goes back to inactive; [`Pool::close`]
//! forgets it. UDP flows stay inactive for their whole life, as in IPVS.
//!
//! Layout:
//!
//! * [`pool`](crate::Pool): the per-service state machine (counts, the
//!   destination trash, wiring of the parts below);
//! * `schedulers/`: the thirteen kernel schedulers, one file per scheduler
//!   or family, each citing the kernel source it follows;
//! * `threshold`: the `IP_VS_DEST_F_OVERLOAD` hysteresis;
//! * `persistence`: client affinity templates (`ipvsadm -p`);
//! * `hash`: the kernel hash functions the hashing schedulers use.
//!
//! # Where halb deliberately differs from the kernel
//!
//! Each scheduler's documentation lists its own differences. Pool-wide:
//!
//! * A real server in [`Request::exclude`] is treated like an overloaded one
//!   by every scheduler (the kernel has no such list: it never retries a
//!   connect).
//! * Persistence templates are checked for overload and exclusion too, and
//!   expire exactly `timeout` after their last connection ended (the kernel
//!   re-arms a timer, so expiry can come up to one timeout later). Weight-0
//!   reals invalidate templates as with `expire_quiescent_template = 1`.
//! * Overload flags are re-evaluated on every count change and on
//!   [`Pool::update`], not only when a connection is bound or unbound.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod hash;
mod passive;
mod persistence;
mod pool;
mod schedulers;
mod threshold;

pub use passive::{LeftOut, Passive};
pub use pool::Pool;

use halb_table::RealServer;
use std::net::SocketAddr;

/// One scheduling request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The address the client connected to (the virtual service's).
    pub dest: SocketAddr,
    /// Real servers this connection already tried and failed to reach; the
    /// scheduler skips them (and a persistence template pointing at one is
    /// ignored for this request).
    pub exclude: &'a [SocketAddr],
}

/// The scheduler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub addr: SocketAddr,
    /// The fallback server was chosen because no real server could take it.
    pub fallback: bool,
}

/// Live view of one real server, for stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealState {
    pub server: RealServer,
    pub active: u32,
    pub inactive: u32,
    pub overloaded: bool,
    /// Removed from the table, kept until its connections end.
    pub removed: bool,
}

impl RealState {
    /// Active plus inactive connections (the kernel's
    /// `ip_vs_dest_totalconns`).
    pub fn total(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }
}
