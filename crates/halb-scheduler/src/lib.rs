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
#![cfg_attr(test, allow(clippy::unwrap_used))]

use halb_table::{RealServer, VirtualService};
use std::net::SocketAddr;
use std::time::Instant;

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

/// One virtual service's balancing state.
#[derive(Debug)]
pub struct Pool {
    reals: Vec<RealState>,
    fallback: Option<SocketAddr>,
    next: usize,
}

impl Pool {
    pub fn new(svc: &VirtualService) -> Self {
        let mut p = Pool {
            reals: Vec::new(),
            fallback: None,
            next: 0,
        };
        p.update(svc);
        p
    }

    /// Apply a changed service definition. Counts of real servers that stay
    /// are kept; removed ones with connections linger (flagged `removed`)
    /// until those end, as in the kernel's destination trash.
    pub fn update(&mut self, svc: &VirtualService) {
        let mut reals: Vec<RealState> = svc
            .reals
            .iter()
            .map(|r| {
                let old = self.reals.iter().find(|o| o.server.addr == r.addr);
                RealState {
                    server: r.clone(),
                    active: old.map_or(0, |o| o.active),
                    inactive: old.map_or(0, |o| o.inactive),
                    overloaded: false,
                    removed: false,
                }
            })
            .collect();
        for o in &self.reals {
            if !svc.reals.iter().any(|r| r.addr == o.server.addr) && o.active + o.inactive > 0 {
                let mut o = o.clone();
                o.removed = true;
                reals.push(o);
            }
        }
        self.reals = reals;
        self.fallback = svc.fallback;
    }

    /// Choose where a new connection goes and count it (inactive).
    pub fn schedule(&mut self, req: &Request<'_>, _now: Instant) -> Option<Pick> {
        let n = self.reals.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            let r = &self.reals[idx];
            if r.removed || r.server.weight == 0 || req.exclude.contains(&r.server.addr) {
                continue;
            }
            self.next = idx + 1;
            let r = &mut self.reals[idx];
            r.inactive += 1;
            return Some(Pick {
                addr: r.server.addr,
                fallback: false,
            });
        }
        self.fallback
            .filter(|f| !req.exclude.contains(f))
            .map(|addr| Pick {
                addr,
                fallback: true,
            })
    }

    /// A connection to `pick` moved between inactive and active.
    pub fn set_active(&mut self, pick: &Pick, active: bool) {
        if pick.fallback {
            return;
        }
        if let Some(r) = self.reals.iter_mut().find(|r| r.server.addr == pick.addr) {
            if active {
                r.inactive = r.inactive.saturating_sub(1);
                r.active += 1;
            } else {
                r.active = r.active.saturating_sub(1);
                r.inactive += 1;
            }
        }
    }

    /// A connection ended (or its connect failed). `was_active` says which
    /// count it was in. `client` finds its persistence template.
    pub fn close(&mut self, pick: &Pick, was_active: bool, _client: SocketAddr, _now: Instant) {
        if pick.fallback {
            return;
        }
        if let Some(r) = self.reals.iter_mut().find(|r| r.server.addr == pick.addr) {
            if was_active {
                r.active = r.active.saturating_sub(1);
            } else {
                r.inactive = r.inactive.saturating_sub(1);
            }
        }
        self.reals.retain(|r| !r.removed || r.active + r.inactive > 0);
    }

    /// Drop expired persistence templates; returns when to call again.
    pub fn expire(&mut self, _now: Instant) -> Option<Instant> {
        None
    }

    /// Live state of every real server, table order first, then removed
    /// ones still carrying connections.
    pub fn reals(&self) -> &[RealState] {
        &self.reals
    }

    /// Number of live persistence templates.
    pub fn persistence_entries(&self) -> usize {
        0
    }
}
