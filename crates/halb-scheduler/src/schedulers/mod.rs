//! The thirteen IPVS schedulers.
//!
//! Every scheduler sees only the *live* real servers (table order, the
//! destination trash excluded, like the kernel's `svc->destinations`) with
//! their live connection counts, and answers an index into that slice.
//! Every scheduler skips a real server that is quiescent (weight 0),
//! overloaded (threshold flag) or in the request's exclude list; the
//! hashing ones treat such a server as "unavailable" exactly where the
//! kernel tests `weight <= 0 || IP_VS_DEST_F_OVERLOAD`.

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod least_conn;
mod mh;
mod ovf;
mod rr;
mod sh;
mod wrr;

use crate::hash::AddrMap;
use crate::{RealState, Request};
use halb_table::{SchedulerFlags, SchedulerKind};
use std::net::SocketAddr;
use std::time::Instant;

/// What one scheduling decision may look at.
pub(crate) struct Ctx<'a> {
    /// The live real servers, table order.
    pub reals: &'a [RealState],
    /// Real servers this request must not go to.
    pub exclude: &'a [SocketAddr],
}

impl Ctx<'_> {
    #[inline]
    pub fn len(&self) -> usize {
        self.reals.len()
    }

    #[inline]
    pub fn weight(&self, i: usize) -> u32 {
        self.reals[i].server.weight
    }

    /// Not flagged overloaded and not excluded (the kernel's
    /// `!(dest->flags & IP_VS_DEST_F_OVERLOAD)`, extended by the exclude
    /// list). Says nothing about the weight.
    #[inline]
    pub fn usable(&self, i: usize) -> bool {
        let r = &self.reals[i];
        !r.overloaded && (self.exclude.is_empty() || !self.exclude.contains(&r.server.addr))
    }

    /// May take a new connection: weight > 0, not overloaded, not excluded.
    #[inline]
    pub fn available(&self, i: usize) -> bool {
        self.reals[i].server.weight > 0 && self.usable(i)
    }

    /// Whether any live real server may take a new connection.
    pub fn any_available(&self) -> bool {
        (0..self.len()).any(|i| self.available(i))
    }
}

/// The live real servers after an update, for rebuilding scheduler state.
pub(crate) struct Live<'a> {
    pub reals: &'a [RealState],
    /// Per live real: the last non-zero weight it was given (the kernel's
    /// `dest->last_weight`, which mh builds its table from).
    pub last_weight: &'a [u32],
    /// Address to index, live and trash; only indices below
    /// `reals.len()` are live.
    pub index: &'a AddrMap<usize>,
}

impl Live<'_> {
    /// The live index of `addr`.
    #[inline]
    pub fn position(&self, addr: &SocketAddr) -> Option<usize> {
        self.index
            .get(addr)
            .copied()
            .filter(|&i| i < self.reals.len())
    }

    /// `(addr, weight)` of every live real, the signature the weighted
    /// schedulers rebuild on.
    pub fn weights(&self) -> Vec<(SocketAddr, u32)> {
        self.reals
            .iter()
            .map(|r| (r.server.addr, r.server.weight))
            .collect()
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.reals.iter().map(|r| r.server.addr).collect()
    }
}

/// A service's scheduler with its private state.
#[derive(Debug, Clone)]
pub(crate) enum Scheduler {
    Rr(rr::Rr),
    Wrr(wrr::Wrr),
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh(sh::Sh),
    Dh(dh::Dh),
    Lblc(lblc::Lblc),
    Lblcr(lblcr::Lblcr),
    Mh(Box<mh::Mh>),
    Fo,
    Ovf,
}

impl Scheduler {
    pub fn new(kind: SchedulerKind, flags: SchedulerFlags, live: &Live<'_>) -> Self {
        match kind {
            SchedulerKind::Rr => Scheduler::Rr(rr::Rr::default()),
            SchedulerKind::Wrr => Scheduler::Wrr(wrr::Wrr::new(live)),
            SchedulerKind::Lc => Scheduler::Lc,
            SchedulerKind::Wlc => Scheduler::Wlc,
            SchedulerKind::Sed => Scheduler::Sed,
            SchedulerKind::Nq => Scheduler::Nq,
            SchedulerKind::Sh => Scheduler::Sh(sh::Sh::new(flags, live)),
            SchedulerKind::Dh => Scheduler::Dh(dh::Dh::new(live)),
            SchedulerKind::Lblc => Scheduler::Lblc(lblc::Lblc::default()),
            SchedulerKind::Lblcr => Scheduler::Lblcr(lblcr::Lblcr::default()),
            SchedulerKind::Mh => Scheduler::Mh(Box::new(mh::Mh::new(flags, live))),
            SchedulerKind::Fo => Scheduler::Fo,
            SchedulerKind::Ovf => Scheduler::Ovf,
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        match self {
            Scheduler::Rr(_) => SchedulerKind::Rr,
            Scheduler::Wrr(_) => SchedulerKind::Wrr,
            Scheduler::Lc => SchedulerKind::Lc,
            Scheduler::Wlc => SchedulerKind::Wlc,
            Scheduler::Sed => SchedulerKind::Sed,
            Scheduler::Nq => SchedulerKind::Nq,
            Scheduler::Sh(_) => SchedulerKind::Sh,
            Scheduler::Dh(_) => SchedulerKind::Dh,
            Scheduler::Lblc(_) => SchedulerKind::Lblc,
            Scheduler::Lblcr(_) => SchedulerKind::Lblcr,
            Scheduler::Mh(_) => SchedulerKind::Mh,
            Scheduler::Fo => SchedulerKind::Fo,
            Scheduler::Ovf => SchedulerKind::Ovf,
        }
    }

    /// The real server set, weights or flags may have changed. `old` is the
    /// previous live order. Each scheduler rebuilds only what depends on
    /// what changed.
    pub fn update(&mut self, flags: SchedulerFlags, old: &[SocketAddr], live: &Live<'_>) {
        match self {
            Scheduler::Rr(s) => s.update(old, live),
            Scheduler::Wrr(s) => s.update(live),
            Scheduler::Sh(s) => s.update(flags, live),
            Scheduler::Dh(s) => s.update(live),
            Scheduler::Lblc(s) => s.update(old, live),
            Scheduler::Lblcr(s) => s.update(old, live),
            Scheduler::Mh(s) => s.update(flags, live),
            Scheduler::Lc
            | Scheduler::Wlc
            | Scheduler::Sed
            | Scheduler::Nq
            | Scheduler::Fo
            | Scheduler::Ovf => {}
        }
    }

    /// Choose a live real server for `req`, or `None` when none may take it.
    #[inline]
    pub fn pick(&mut self, ctx: &Ctx<'_>, req: &Request<'_>, now: Instant) -> Option<usize> {
        match self {
            Scheduler::Rr(s) => s.pick(ctx),
            Scheduler::Wrr(s) => s.pick(ctx),
            Scheduler::Lc => least_conn::lc(ctx),
            Scheduler::Wlc => least_conn::wlc(ctx),
            Scheduler::Sed => least_conn::sed(ctx),
            Scheduler::Nq => least_conn::nq(ctx),
            Scheduler::Sh(s) => s.pick(ctx, req.client),
            Scheduler::Dh(s) => s.pick(ctx, req.dest.ip()),
            Scheduler::Lblc(s) => s.pick(ctx, req.dest.ip(), now),
            Scheduler::Lblcr(s) => s.pick(ctx, req.dest.ip(), now),
            Scheduler::Mh(s) => s.pick(ctx, req.client),
            Scheduler::Fo => fo::fo(ctx),
            Scheduler::Ovf => ovf::ovf(ctx),
        }
    }

    /// Drop stale locality entries (lblc, lblcr).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Scheduler::Lblc(s) => s.handle_timeout(now),
            Scheduler::Lblcr(s) => s.handle_timeout(now),
            _ => {}
        }
    }

    /// When [`Scheduler::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Scheduler::Lblc(s) => s.poll_timeout(),
            Scheduler::Lblcr(s) => s.poll_timeout(),
            _ => None,
        }
    }
}

/// Greatest common divisor of the positive values, 0 if there are none.
pub(crate) fn gcd_positive(values: impl Iterator<Item = u32>) -> u32 {
    fn gcd(mut a: u32, mut b: u32) -> u32 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    values
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g == 0 { w } else { gcd(g, w) })
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use halb_table::RealServer;

    pub fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 8080))
    }

    pub fn reals(weights: &[u32]) -> Vec<RealState> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RealState {
                server: RealServer::new(addr(i), w),
                active: 0,
                inactive: 0,
                overloaded: false,
                removed: false,
            })
            .collect()
    }

    pub fn index(reals: &[RealState]) -> AddrMap<usize> {
        reals
            .iter()
            .enumerate()
            .map(|(i, r)| (r.server.addr, i))
            .collect()
    }

    pub fn ctx<'a>(reals: &'a [RealState]) -> Ctx<'a> {
        Ctx {
            reals,
            exclude: &[],
        }
    }
}
