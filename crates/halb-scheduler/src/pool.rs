//! One virtual service's balancing state: real servers and their counts,
//! the destination trash, and the wiring of scheduler, thresholds and
//! persistence.

use crate::hash::AddrMap;
use crate::passive::{LeftOut, Passive};
use crate::persistence::Templates;
use crate::schedulers::{Ctx, Live, Scheduler};
use crate::threshold;
use crate::{Pick, RealState, Request};
use halb_table::{SchedulerKind, VirtualService};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// One virtual service's balancing state.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The live real servers in table order, then the trash: removed ones
    /// still carrying connections.
    reals: Vec<RealState>,
    /// How many of `reals` are live.
    live: usize,
    /// Per live real: the last non-zero weight it was given (the kernel's
    /// `last_weight`).
    last_weight: Vec<u32>,
    /// Address to index in `reals`, live and trash.
    index: AddrMap<usize>,
    fallback: Option<SocketAddr>,
    sched: Scheduler,
    persistence: Option<Templates>,
    /// Real servers left out after failed connects.
    passive: Passive,
    /// Inputs since the last full invariant sweep (debug builds).
    #[cfg(debug_assertions)]
    unswept: usize,
}

impl Pool {
    pub fn new(svc: &VirtualService) -> Self {
        let index = AddrMap::default();
        let sched = Scheduler::new(
            svc.scheduler,
            svc.flags,
            &Live {
                reals: &[],
                last_weight: &[],
                index: &index,
            },
        );
        let mut p = Pool {
            reals: Vec::new(),
            live: 0,
            last_weight: Vec::new(),
            index,
            fallback: None,
            sched,
            persistence: None,
            passive: Passive::new(svc.max_fails, svc.fail_timeout),
            #[cfg(debug_assertions)]
            unswept: 0,
        };
        p.update(svc);
        p
    }

    /// Apply a changed service definition. Counts of real servers that stay
    /// are kept; removed ones with connections linger (flagged `removed`)
    /// until those end, as in the kernel's destination trash, and come back
    /// with their counts if re-added. The scheduler may change kind; its
    /// state is rebuilt when what it depends on changed (the real server
    /// list, weights or flags). Persistence templates pointing at a real
    /// server that left the table or became quiescent are dropped.
    ///
    /// A real server listed twice counts once, at its first position.
    pub fn update(&mut self, svc: &VirtualService) {
        let old_live: Vec<SocketAddr> = self.reals[..self.live]
            .iter()
            .map(|r| r.server.addr)
            .collect();
        let old_reals = std::mem::take(&mut self.reals);
        let old_index = std::mem::take(&mut self.index);
        let old_last_weight = std::mem::take(&mut self.last_weight);
        let old_n_live = self.live;

        let mut taken = vec![false; old_reals.len()];
        let mut reals = Vec::with_capacity(svc.reals.len());
        let mut last_weight = Vec::with_capacity(svc.reals.len());
        let mut index = AddrMap::with_capacity_and_hasher(svc.reals.len(), Default::default());
        for r in &svc.reals {
            if index.contains_key(&r.addr) {
                continue;
            }
            let mut state = RealState {
                server: r.clone(),
                active: 0,
                inactive: 0,
                overloaded: false,
                removed: false,
            };
            let mut old_upper = 0;
            // `__ip_vs_update_dest`: last_weight follows the weight unless
            // an existing destination is set to 0; (re-)adding sets it.
            let mut lw = r.weight;
            if let Some(&i) = old_index.get(&r.addr) {
                taken[i] = true;
                let o = &old_reals[i];
                state.active = o.active;
                state.inactive = o.inactive;
                state.overloaded = o.overloaded;
                old_upper = o.server.upper_threshold;
                if i < old_n_live && r.weight == 0 {
                    lw = old_last_weight[i];
                }
            }
            state.overloaded = threshold::on_update(
                state.overloaded,
                old_upper,
                state.total(),
                r.upper_threshold,
                r.lower_threshold,
            );
            index.insert(r.addr, reals.len());
            reals.push(state);
            last_weight.push(lw);
        }
        let live = reals.len();
        for (o, taken) in old_reals.into_iter().zip(taken) {
            if taken || o.total() == 0 {
                continue;
            }
            index.insert(o.server.addr, reals.len());
            reals.push(RealState { removed: true, ..o });
        }

        let view = Live {
            reals: &reals[..live],
            last_weight: &last_weight,
            index: &index,
        };
        if self.sched.kind() == svc.scheduler {
            self.sched.update(svc.flags, &old_live, &view);
        } else {
            self.sched = Scheduler::new(svc.scheduler, svc.flags, &view);
        }

        match svc.persistence {
            None => self.persistence = None,
            Some(cfg) => {
                let t = self.persistence.get_or_insert_with(|| Templates::new(cfg));
                t.reconfigure(cfg);
                t.retain_reals(|a| view.position(a).is_some_and(|i| reals[i].server.weight > 0));
            }
        }

        self.reals = reals;
        self.live = live;
        self.last_weight = last_weight;
        self.index = index;
        self.fallback = svc.fallback;
        self.passive.reconfigure(svc.max_fails, svc.fail_timeout);
        let index = &self.index;
        self.passive.retain(|a| index.contains_key(a));
        self.debug_sweep();
    }

    /// A connect to `addr` (chosen by [`Pool::schedule`]) failed: passive
    /// health counts it. Returns the real server if it is now left out of
    /// the choice (see [`Passive`]).
    pub fn connect_failed(&mut self, addr: SocketAddr, now: Instant) -> Option<LeftOut> {
        let out = if self.index.contains_key(&addr) {
            self.passive.failed(addr, now)
        } else {
            None
        };
        self.debug_sweep();
        out
    }

    /// A connect to `addr` succeeded: passive health clears its record.
    /// Returns whether it had been left out.
    pub fn connect_succeeded(&mut self, addr: SocketAddr) -> bool {
        self.passive.succeeded(addr)
    }

    /// Until when passive health leaves `addr` out of the choice, if it
    /// does at `now`.
    pub fn left_out_until(&self, addr: &SocketAddr, now: Instant) -> Option<Instant> {
        self.passive.out_until(addr, now)
    }

    /// Choose where a new connection goes and count it (inactive).
    ///
    /// With persistence, the client's template decides if its real server
    /// is live, not quiescent, not overloaded and not excluded; otherwise
    /// the scheduler decides and its choice becomes the template. Only when
    /// no real server can take the connection is the fallback server
    /// returned (not counted, no template), unless it is excluded too.
    #[inline]
    pub fn schedule(&mut self, req: &Request<'_>, now: Instant) -> Option<Pick> {
        let pick = self.pick(req, now);
        self.debug_sweep();
        pick
    }

    #[inline]
    fn pick(&mut self, req: &Request<'_>, now: Instant) -> Option<Pick> {
        let Pool {
            reals,
            live,
            index,
            sched,
            persistence,
            fallback,
            passive,
            ..
        } = self;
        // Passive health: real servers left out join the exclusions, unless
        // that leaves no one to try.
        let widened: Vec<SocketAddr>;
        let mut exclude = req.exclude;
        if passive.any_out(now) {
            let live_reals = &reals[..*live];
            let usable = live_reals.iter().any(|r| {
                r.server.weight > 0
                    && !req.exclude.contains(&r.server.addr)
                    && !passive.is_out(&r.server.addr, now)
            });
            if usable {
                widened = req
                    .exclude
                    .iter()
                    .copied()
                    .chain(
                        live_reals
                            .iter()
                            .map(|r| r.server.addr)
                            .filter(|a| passive.is_out(a, now)),
                    )
                    .collect();
                exclude = &widened;
            }
        }
        let req = &Request {
            client: req.client,
            dest: req.dest,
            exclude,
        };
        let ctx = Ctx {
            reals: &reals[..*live],
            exclude,
        };
        let chosen = match persistence {
            None => sched.pick(&ctx, req, now),
            Some(t) => {
                let key = t.key(req.client.ip());
                t.schedule(
                    key,
                    now,
                    |a| {
                        index
                            .get(a)
                            .copied()
                            .filter(|&i| i < ctx.len() && ctx.available(i))
                    },
                    || {
                        sched
                            .pick(&ctx, req, now)
                            .map(|i| (i, ctx.reals[i].server.addr))
                    },
                )
            }
        };
        match chosen {
            Some(i) => {
                let r = &mut reals[i];
                r.inactive = r.inactive.saturating_add(1);
                reevaluate(r);
                Some(Pick {
                    addr: r.server.addr,
                    fallback: false,
                })
            }
            None => fallback
                .filter(|f| !req.exclude.contains(f))
                .map(|addr| Pick {
                    addr,
                    fallback: true,
                }),
        }
    }

    /// A connection to `pick` moved between inactive and active. A move out
    /// of an empty count is ignored.
    pub fn set_active(&mut self, pick: &Pick, active: bool) {
        if pick.fallback {
            return;
        }
        let Some(&i) = self.index.get(&pick.addr) else {
            return;
        };
        let r = &mut self.reals[i];
        if active {
            if r.inactive == 0 {
                return;
            }
            r.inactive -= 1;
            r.active = r.active.saturating_add(1);
        } else {
            if r.active == 0 {
                return;
            }
            r.active -= 1;
            r.inactive = r.inactive.saturating_add(1);
        }
        reevaluate(r);
        self.debug_sweep();
    }

    /// A connection ended (or its connect failed). `was_active` says which
    /// count it was in. `client` finds its persistence template, whose
    /// expiry starts when its last connection ends. A removed real server
    /// leaves the trash with its last connection. Closing from an empty
    /// count is ignored.
    pub fn close(&mut self, pick: &Pick, was_active: bool, client: SocketAddr, now: Instant) {
        if pick.fallback {
            return;
        }
        let Some(&i) = self.index.get(&pick.addr) else {
            return;
        };
        let r = &mut self.reals[i];
        let count = if was_active {
            &mut r.active
        } else {
            &mut r.inactive
        };
        if *count == 0 {
            return;
        }
        *count -= 1;
        reevaluate(r);
        let gone = r.removed && r.total() == 0;
        if let Some(t) = &mut self.persistence {
            t.release(t.key(client.ip()), pick.addr, now);
        }
        if gone {
            self.reals.remove(i);
            self.index.remove(&pick.addr);
            for (j, r) in self.reals.iter().enumerate().skip(i) {
                self.index.insert(r.server.addr, j);
            }
        }
        self.debug_sweep();
    }

    /// Time passed: drop the persistence templates expired at `now` (and
    /// stale lblc/lblcr locality entries). Right after it,
    /// [`Pool::poll_timeout`] is exact (`None` if nothing is pending); a
    /// later [`Pool::close`] can make something pending.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sched.handle_timeout(now);
        if let Some(t) = self.persistence.as_mut() {
            t.handle_timeout(now);
        }
        self.debug_sweep();
    }

    /// Asserts that the pool's cross-indexed state is consistent; panics
    /// otherwise: the address index and the real servers agree, the live
    /// ones come first and the trash holds only removed servers with
    /// connections, and the persistence templates agree with their count
    /// and their expiry heap. O(real servers + templates). Debug builds
    /// call it after every input, in full while the pool is small (up to
    /// 512 real servers and templates) and on every ⌈size / 2⌉-th input
    /// above (about two entries per input, amortized).
    pub fn check_invariants(&self) {
        assert!(self.live <= self.reals.len(), "more live reals than reals");
        assert_eq!(
            self.last_weight.len(),
            self.live,
            "last_weight is not one per live real"
        );
        assert_eq!(self.index.len(), self.reals.len(), "index and reals differ");
        for (i, r) in self.reals.iter().enumerate() {
            assert_eq!(
                self.index.get(&r.server.addr),
                Some(&i),
                "{} is not indexed at its position",
                r.server.addr
            );
            if i < self.live {
                assert!(!r.removed, "live real {} flagged removed", r.server.addr);
            } else {
                assert!(
                    r.removed,
                    "trashed real {} not flagged removed",
                    r.server.addr
                );
                assert!(
                    r.total() > 0,
                    "empty real {} left in the trash",
                    r.server.addr
                );
            }
        }
        if let Some(t) = &self.persistence {
            t.check_invariants();
        }
        self.passive.check_invariants();
    }

    #[cfg(debug_assertions)]
    #[inline]
    fn debug_sweep(&mut self) {
        const SMALL: usize = 512;
        let size = self.reals.len() + self.persistence.as_ref().map_or(0, |t| t.size());
        self.unswept += 1;
        if size <= SMALL || self.unswept.saturating_mul(2) >= size {
            self.unswept = 0;
            self.check_invariants();
        }
    }

    #[cfg(not(debug_assertions))]
    #[inline(always)]
    fn debug_sweep(&mut self) {}

    /// When [`Pool::handle_timeout`] should next run: never later than the
    /// next expiry, possibly earlier (an early call is harmless, and
    /// `poll_timeout` is exact after it).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.persistence.as_ref().and_then(|t| t.poll_timeout());
        min_opt(t, self.sched.poll_timeout())
    }

    /// Live state of every real server, table order first, then removed
    /// ones still carrying connections.
    pub fn reals(&self) -> &[RealState] {
        &self.reals
    }

    /// The live state of one real server (table or trash).
    pub fn real(&self, addr: &SocketAddr) -> Option<&RealState> {
        self.index.get(addr).map(|&i| &self.reals[i])
    }

    /// Number of live persistence templates (expired ones count until
    /// [`Pool::handle_timeout`] drops them).
    pub fn persistence_entries(&self) -> usize {
        self.persistence.as_ref().map_or(0, |t| t.len())
    }

    /// The real server `client`'s persistence template names at `now`, if
    /// any (whether or not that server can take a connection right now).
    pub fn persistent_real(&self, client: IpAddr, now: Instant) -> Option<SocketAddr> {
        let t = self.persistence.as_ref()?;
        t.current(t.key(client), now)
    }

    /// The scheduler in force.
    pub fn scheduler(&self) -> SchedulerKind {
        self.sched.kind()
    }

    /// The fallback server, used only while no real server can take a
    /// connection.
    pub fn fallback(&self) -> Option<SocketAddr> {
        self.fallback
    }

    /// Open connections of `client`'s persistence key to `real` as the
    /// templates count them.
    #[cfg(test)]
    pub(crate) fn template_count(&self, client: IpAddr, real: SocketAddr) -> u32 {
        self.persistence
            .as_ref()
            .map_or(0, |t| t.counted(t.key(client), real))
    }
}

#[inline]
fn reevaluate(r: &mut RealState) {
    r.overloaded = threshold::evaluate(
        r.overloaded,
        r.total(),
        r.server.upper_threshold,
        r.server.lower_threshold,
    );
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests;
