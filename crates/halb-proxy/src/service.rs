//! A virtual service's state shared by every worker: its scheduler pool and
//! configuration behind one mutex (held only to schedule and to account a
//! connection's life), and its counters.

use crate::stats::Metered;
use crate::udp::ServiceFlows;
use halb_scheduler::{Pick, Pool, Request};
use halb_table::{RealStats, ServiceKey, ServiceStats, VirtualService};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

struct PoolState {
    pool: Pool,
    cfg: Arc<VirtualService>,
    /// Counters per real server, kept while the pool lists it.
    reals: HashMap<SocketAddr, Arc<Metered>>,
}

impl PoolState {
    fn real_metered(&mut self, addr: SocketAddr, workers: usize) -> Arc<Metered> {
        self.reals
            .entry(addr)
            .or_insert_with(|| Arc::new(Metered::new(workers)))
            .clone()
    }

    /// Forget counters of real servers the pool no longer lists and no
    /// connection holds.
    fn prune(&mut self) {
        let pool = &self.pool;
        self.reals.retain(|addr, m| {
            Arc::strong_count(m) > 1 || pool.reals().iter().any(|r| r.server.addr == *addr)
        });
    }
}

pub(crate) struct ServiceShared {
    pub(crate) key: ServiceKey,
    workers: usize,
    state: Mutex<PoolState>,
    /// The pool's part of the stats as last published, read without the
    /// lock (see [`ServiceShared::stats_unlocked`]).
    view: arc_swap::ArcSwap<PoolView>,
    pub(crate) metered: Metered,
    /// UDP services: the flow count, its cap and the evictions.
    pub(crate) udp: ServiceFlows,
}

impl ServiceShared {
    pub(crate) fn new(svc: &VirtualService, workers: usize) -> Self {
        let mut st = PoolState {
            pool: Pool::new(svc),
            cfg: Arc::new(svc.clone()),
            reals: HashMap::new(),
        };
        for r in &svc.reals {
            st.real_metered(r.addr, workers);
        }
        let view = arc_swap::ArcSwap::from_pointee(PoolView::of(&st, Instant::now()));
        ServiceShared {
            view,
            key: svc.key(),
            workers,
            state: Mutex::new(st),
            metered: Metered::new(workers),
            udp: ServiceFlows::new(svc.udp_max_flows),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic elsewhere while holding the lock leaves a pool that is
        // still consistent enough to keep balancing; carry on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply a changed definition (same key); established connections
    /// carry on.
    pub(crate) fn update(&self, svc: &VirtualService) {
        {
            let mut st = self.lock();
            if *st.cfg == *svc {
                return;
            }
            st.pool.update(svc);
            st.cfg = Arc::new(svc.clone());
            for r in &svc.reals {
                st.real_metered(r.addr, self.workers);
            }
            st.prune();
            self.publish(&st, Instant::now());
        }
        // A lowered cap evicts at once (not under the pool lock: an
        // evicted flow closes its place in the pool).
        self.udp
            .set
            .set_max(usize::try_from(svc.udp_max_flows).unwrap_or(usize::MAX));
    }

    /// Schedule a new connection from `client` to `dest`, skipping
    /// `exclude`. The assignment counts as inactive until activated and is
    /// closed in the pool when dropped.
    pub(crate) fn schedule(
        self: &Arc<Self>,
        client: SocketAddr,
        dest: SocketAddr,
        exclude: &[SocketAddr],
        worker: usize,
    ) -> Option<(Assignment, Arc<VirtualService>)> {
        let now = Instant::now();
        let (pick, real, cfg) = {
            let mut st = self.lock();
            let pick = st.pool.schedule(
                &Request {
                    client,
                    dest,
                    exclude,
                },
                now,
            )?;
            let real = (!pick.fallback).then(|| st.real_metered(pick.addr, self.workers));
            (pick, real, st.cfg.clone())
        };
        if let Some(r) = &real {
            let s = r.shard(worker);
            s.conn();
            s.inactive_up();
        } else {
            self.metered.shard(worker).fallback_conn();
        }
        Some((
            Assignment {
                svc: self.clone(),
                pick,
                real,
                client,
                worker,
                active: false,
            },
            cfg,
        ))
    }

    /// A connect to `real` failed: passive health counts it (and says so
    /// when it leaves the real server out).
    pub(crate) fn connect_failed(&self, real: SocketAddr, now: Instant) {
        let out = self.lock().pool.connect_failed(real, now);
        if let Some(out) = out {
            tracing::warn!(
                service = %self.key, real = %real, fails = out.fails,
                "real server left out for {:?} after failed connects (passive health)",
                out.until.saturating_duration_since(now)
            );
        }
    }

    /// A connect to `real` succeeded: passive health forgets its failures.
    pub(crate) fn connect_succeeded(&self, real: SocketAddr) {
        if self.lock().pool.connect_succeeded(real) {
            tracing::info!(service = %self.key, real = %real, "real server answers again (passive health)");
        }
    }

    /// Drop expired persistence templates.
    pub(crate) fn expire(&self, now: Instant) {
        let mut st = self.lock();
        st.pool.handle_timeout(now);
        st.prune();
        self.publish(&st, now);
    }

    /// Feed the rate estimators.
    pub(crate) fn sample(&self, now: Instant) {
        self.metered.sample(now);
        let reals: Vec<Arc<Metered>> = self.lock().reals.values().cloned().collect();
        for r in reals {
            r.sample(now);
        }
    }

    /// The counters, rates and the pool's weights, overload and passive
    /// health now (takes the pool's lock briefly): `halb list`.
    pub(crate) fn stats(&self) -> ServiceStats {
        let now = Instant::now();
        let view = PoolView::of(&self.lock(), now);
        self.render(&view, now)
    }

    /// [`ServiceShared::stats`] without the pool's lock, which every
    /// connection takes: the counters live (atomics), the pool's part as
    /// last published (at start, each apply and each timer tick, every
    /// second). What a `/metrics` scrape reads.
    pub(crate) fn stats_unlocked(&self) -> ServiceStats {
        self.render(&self.view.load(), Instant::now())
    }

    /// Publishes the pool's part for [`ServiceShared::stats_unlocked`];
    /// called with the lock held (`st`).
    fn publish(&self, st: &PoolState, now: Instant) {
        self.view.store(Arc::new(PoolView::of(st, now)));
    }

    fn render(&self, view: &PoolView, now: Instant) -> ServiceStats {
        let cfg = &view.cfg;
        ServiceStats {
            name: cfg.name.clone(),
            scheduler_name: None,
            protocol: cfg.protocol,
            listen: cfg.listen,
            scheduler: cfg.scheduler,
            flags: cfg.flags,
            fwmark: cfg.fwmark,
            one_packet: cfg.one_packet,
            persistence: cfg.persistence,
            fallback: cfg.fallback,
            fallback_conns: self.metered.counters.fallback_conns(),
            udp_flows: self.udp.set.count() as u64,
            udp_flows_evicted: self.udp.evicted.load(std::sync::atomic::Ordering::Relaxed),
            counters: self.metered.counters.snapshot(),
            rates: self.metered.rates(),
            reals: view
                .reals
                .iter()
                .map(|r| RealStats {
                    addr: r.addr,
                    weight: r.weight,
                    forward: r.forward,
                    overloaded: r.overloaded,
                    removed: r.removed,
                    left_out_ms: r.left_out_until.filter(|u| *u > now).map_or(0, |until| {
                        u64::try_from(until.saturating_duration_since(now).as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1)
                    }),
                    counters: r
                        .metered
                        .as_ref()
                        .map(|m| m.counters.snapshot())
                        .unwrap_or_default(),
                    rates: r.metered.as_ref().map(|m| m.rates()).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// The pool's part of a service's stats at one instant: configuration,
/// the real servers' weights, overload and passive health, and their
/// counters' handles.
struct PoolView {
    cfg: Arc<VirtualService>,
    reals: Vec<ViewReal>,
}

struct ViewReal {
    addr: SocketAddr,
    weight: u32,
    forward: halb_table::Forward,
    overloaded: bool,
    removed: bool,
    left_out_until: Option<Instant>,
    metered: Option<Arc<Metered>>,
}

impl PoolView {
    fn of(st: &PoolState, now: Instant) -> PoolView {
        PoolView {
            cfg: st.cfg.clone(),
            reals: st
                .pool
                .reals()
                .iter()
                .map(|r| ViewReal {
                    addr: r.server.addr,
                    weight: r.server.weight,
                    forward: r.server.forward,
                    overloaded: r.overloaded,
                    removed: r.removed,
                    left_out_until: st.pool.left_out_until(&r.server.addr, now),
                    metered: st.reals.get(&r.server.addr).cloned(),
                })
                .collect(),
        }
    }
}

/// A connection's (or flow's) place in the pool: scheduled to `pick`,
/// inactive until [`Assignment::set_active`]; dropping it closes it in the
/// pool (connect failed, connection over, task cancelled).
pub(crate) struct Assignment {
    svc: Arc<ServiceShared>,
    pick: Pick,
    real: Option<Arc<Metered>>,
    client: SocketAddr,
    worker: usize,
    active: bool,
}

impl Assignment {
    /// The fallback server (no passive health for it).
    pub(crate) fn is_fallback(&self) -> bool {
        self.pick.fallback
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.pick.addr
    }

    /// Counters of the real server (None for the fallback server).
    pub(crate) fn real_metered(&self) -> Option<Arc<Metered>> {
        self.real.clone()
    }

    pub(crate) fn set_active(&mut self, active: bool) {
        if self.active == active {
            return;
        }
        self.active = active;
        self.svc.lock().pool.set_active(&self.pick, active);
        if let Some(r) = &self.real {
            if active {
                r.shard(self.worker).activate();
            } else {
                r.shard(self.worker).deactivate();
            }
        }
    }
}

impl Drop for Assignment {
    fn drop(&mut self) {
        self.svc
            .lock()
            .pool
            .close(&self.pick, self.active, self.client, Instant::now());
        if let Some(r) = &self.real {
            if self.active {
                r.shard(self.worker).active_down();
            } else {
                r.shard(self.worker).inactive_down();
            }
        }
    }
}

/// A client connection's (or flow's) place in the service counters:
/// counted on creation as inactive, active while established both ways.
pub(crate) struct ServiceConn {
    svc: Arc<ServiceShared>,
    worker: usize,
    active: bool,
}

impl ServiceConn {
    pub(crate) fn new(svc: Arc<ServiceShared>, worker: usize) -> Self {
        let s = svc.metered.shard(worker);
        s.conn();
        s.inactive_up();
        ServiceConn {
            svc,
            worker,
            active: false,
        }
    }

    pub(crate) fn set_active(&mut self, active: bool) {
        if self.active == active {
            return;
        }
        self.active = active;
        let s = self.svc.metered.shard(self.worker);
        if active {
            s.activate();
        } else {
            s.deactivate();
        }
    }
}

impl Drop for ServiceConn {
    fn drop(&mut self) {
        let s = self.svc.metered.shard(self.worker);
        if self.active {
            s.active_down();
        } else {
            s.inactive_down();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use halb_table::{Protocol, RealServer, SchedulerKind};
    use std::time::Duration;

    fn svc(weight: u32) -> VirtualService {
        let mut s = VirtualService::new(
            "web",
            ([127, 0, 0, 1], 8080).into(),
            Protocol::Tcp,
            SchedulerKind::Wrr,
        );
        s.reals = vec![
            RealServer::new(([127, 0, 0, 1], 18081).into(), weight),
            RealServer::new(([127, 0, 0, 1], 18082).into(), 1),
        ];
        s
    }

    /// A scrape (`stats_unlocked`) answers while a connection holds the
    /// pool's lock, and shows what the last apply published.
    #[test]
    fn unlocked_stats_never_wait_for_the_pool() {
        let shared = Arc::new(ServiceShared::new(&svc(3), 2));
        shared.update(&svc(5));
        let held = shared.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let reader = std::thread::spawn(move || {
            let _ = tx.send(s.stats_unlocked());
        });
        // Bounded: a reader that took the lock would never answer.
        let got = rx.recv_timeout(Duration::from_secs(20));
        drop(held);
        reader.join().unwrap();
        let got = got.expect("stats_unlocked answered while the pool was locked");
        let weights: Vec<u32> = got.reals.iter().map(|r| r.weight).collect();
        assert_eq!(weights, vec![5, 1]);
        // The locked path agrees once the lock is free.
        assert_eq!(shared.stats().reals.len(), 2);
        assert_eq!(shared.stats().reals[0].weight, 5);
    }
}
