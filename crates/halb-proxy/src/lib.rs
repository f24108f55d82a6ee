//! The userspace data plane: a TCP full proxy and a UDP flow proxy with
//! IPVS scheduling semantics.
//!
//! [`ProxyDataPlane`] owns `workers` threads, each running a current-thread
//! tokio runtime (thread per core, like HAProxy's `nbthread`). Every
//! virtual service gets one `SO_REUSEPORT` listening socket per worker, so
//! the kernel spreads connections over the workers and a connection lives
//! and dies on the worker that accepted it. The scheduler pool of a
//! service is shared by its workers behind a mutex held only to schedule a
//! connection and to account its life (established, half-closed, closed).
//!
//! TCP connections are relayed both ways by one future per connection,
//! copying through a pooled buffer or, for bulk transfers, zero-copy with
//! splice(2) through a pooled pipe ([`SpliceMode`]). UDP datagrams go
//! through per-client flows, each with its own socket connected to its real
//! server; flows are capped per service (`udp_max_flows`) and in all
//! ([`ProxyDataPlane::set_udp_max_flows`]), the flow idle the longest
//! evicted first.
//!
//! Limits: a UDP service listening on a wildcard address answers from the
//! address the kernel picks for the client (bind the VIP itself to be
//! sure replies come from it); the PROXY header is sent on TCP only (a UDP
//! server would take it for a datagram).
//!
//! Module map: `listener` (sockets and their options), `worker` (threads
//! and per-worker pools), `tcp` (accept, connect with retries, PROXY
//! header), `relay` (the byte pump), `splice` (pipes), `udp` (flows),
//! `proxy_protocol`, `service` (pool and counters of one service), `sock`
//! (registering sockets with tokio, the only `unsafe`),
//! `stats` (per-worker counter shards), `registry` (connection table).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod clock;
mod listener;
mod memory;
pub mod proxy_protocol;
mod ratelimit;
mod registry;
mod relay;
mod service;
mod sock;
mod splice;
mod stats;
mod tcp;
mod udp;
mod worker;

pub use relay::SpliceMode;

use halb_table::{
    ApplyReport, ConnectionInfo, DataPlane, DataPlaneError, Protocol, ServiceKey, ServiceStats,
    Table, VirtualService, ESTIMATOR_PERIOD,
};
use registry::Registry;
use service::ServiceShared;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;
use worker::{LocalConfig, Workers};

/// How the data plane runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// Worker threads; 0: one per available CPU.
    pub workers: usize,
    /// Copy, splice, or copy small exchanges and splice bulk ones.
    pub splice: SpliceMode,
    /// Size of a copy buffer (one per direction, only while bytes are in
    /// flight).
    pub buffer_size: usize,
    /// Pipe capacity for splice (best effort, `F_SETPIPE_SZ`); 0: the
    /// system default (64 KiB). Larger pipes mean fewer splice calls per
    /// byte; pipes hold page references, not copies, and only while bytes
    /// are in flight.
    pub pipe_size: usize,
    /// Listen backlog of every listening socket.
    pub backlog: u32,
    /// Raise the soft `RLIMIT_NOFILE` to the hard limit at start (a proxied
    /// connection takes two descriptors, a spliced one up to four).
    pub raise_nofile_limit: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            workers: 0,
            splice: SpliceMode::Auto,
            buffer_size: 64 * 1024,
            pipe_size: 256 * 1024,
            backlog: 4096,
            raise_nofile_limit: true,
        }
    }
}

/// One running virtual service.
struct Service {
    shared: Arc<ServiceShared>,
    /// The listener task on each worker.
    tasks: Vec<AbortHandle>,
    /// A duplicate of each worker's listening socket, for a hand-over to a
    /// successor process ([`ProxyDataPlane::listener_fds`]); dropped with
    /// the listeners, so that a stopped service is closed for good.
    fds: Vec<OwnedFd>,
}

impl Service {
    /// Stop listening. Established TCP connections run to their end; UDP
    /// flows end with the listener (their replies would have nowhere to go).
    fn stop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.fds.clear();
    }
}

/// Expires persistence templates every second and samples the rate
/// estimators every [`ESTIMATOR_PERIOD`].
struct Timer {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    fn start(
        services: Arc<Mutex<Vec<Arc<ServiceShared>>>>,
        registry: Arc<Registry>,
    ) -> io::Result<Timer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let mut trim = memory::TrimPolicy::default();
        let thread = std::thread::Builder::new()
            .name("halb-proxy-timer".into())
            .spawn(move || {
                let mut last_sample: Option<Instant> = None;
                loop {
                    match stopped.recv_timeout(Duration::from_secs(1)) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = Instant::now();
                    // After a flood: give the freed memory back.
                    if trim.observe(registry.len()) {
                        memory::release_free_memory();
                    }
                    let list: Vec<Arc<ServiceShared>> =
                        services.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    for s in &list {
                        s.expire(now);
                    }
                    let due = last_sample
                        .is_none_or(|t| now.saturating_duration_since(t) >= ESTIMATOR_PERIOD);
                    if due {
                        for s in &list {
                            s.sample(now);
                        }
                        last_sample = Some(now);
                    }
                }
            })?;
        Ok(Timer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listening sockets by service, as handed to a successor process (one
/// per worker).
pub type Listeners = Vec<(ServiceKey, Vec<OwnedFd>)>;

/// The userspace data plane (see the crate documentation).
pub struct ProxyDataPlane {
    opts: ProxyOptions,
    /// In table order.
    services: Vec<Service>,
    /// What the timer walks.
    timer_list: Arc<Mutex<Vec<Arc<ServiceShared>>>>,
    registry: Arc<Registry>,
    timer: Option<Timer>,
    workers: Option<Workers>,
    /// Every UDP flow of every service, under the global cap.
    udp_flows: Arc<udp::GlobalFlows>,
    /// Set at the end of a drain: every connection still open is reset.
    cut: tokio::sync::watch::Sender<bool>,
    /// Most connections and flows open at once: the descriptor budget
    /// ([`ProxyDataPlane::set_descriptor_reserve`]).
    budget: Arc<std::sync::atomic::AtomicUsize>,
    /// Listening sockets handed over by a predecessor process, by service:
    /// used (instead of binding) when the service starts.
    inherited: HashMap<ServiceKey, Vec<OwnedFd>>,
}

/// Descriptors the proxy leaves to the rest of the daemon unless told
/// otherwise ([`ProxyDataPlane::set_descriptor_reserve`]).
pub const DEFAULT_RESERVE: usize = 128;

/// Most TCP connections and UDP flows open at once when `reserve`
/// descriptors of the soft `RLIMIT_NOFILE` stay for the rest of the
/// daemon: a connection holds two (client and real server), a flow one;
/// counted as two each. At least 1.
pub fn connection_budget(reserve: usize) -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024);
    (soft.saturating_sub(reserve) / 2).max(1)
}

/// The global UDP flow cap for `[global] udp_max_flows = requested`: 0 is
/// a quarter of the soft `RLIMIT_NOFILE` (each flow holds a descriptor; the
/// rest is for TCP, health checks and the control socket), and no value
/// goes above half of it. Never below 1.
pub fn udp_flow_budget(requested: usize) -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024);
    let auto = soft / 4;
    let most = soft / 2;
    let budget = if requested == 0 {
        auto
    } else {
        requested.min(most)
    };
    budget.max(1)
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= hard {
        return;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        // an infinite hard limit is capped by fs.nr_open
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard);
    }
}

impl ProxyDataPlane {
    /// Start the worker threads; no service runs until [`DataPlane::apply`].
    pub fn new(opts: ProxyOptions) -> io::Result<Self> {
        let mut opts = opts;
        if opts.workers == 0 {
            opts.workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        opts.buffer_size = opts.buffer_size.clamp(1024, 16 << 20);
        if opts.raise_nofile_limit {
            raise_nofile_limit();
        }
        let workers = Workers::start(
            opts.workers,
            LocalConfig {
                buffer_size: opts.buffer_size,
                pipe_size: opts.pipe_size,
                ..LocalConfig::default()
            },
        )?;
        let timer_list = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::new(Registry::new(opts.workers));
        let timer = Timer::start(timer_list.clone(), registry.clone())?;
        let udp_flows = Arc::new(udp::GlobalFlows::new(udp_flow_budget(0)));
        Ok(ProxyDataPlane {
            udp_flows,
            cut: tokio::sync::watch::channel(false).0,
            inherited: HashMap::new(),
            budget: Arc::new(std::sync::atomic::AtomicUsize::new(connection_budget(
                DEFAULT_RESERVE,
            ))),
            registry,
            opts,
            services: Vec::new(),
            timer_list,
            timer: Some(timer),
            workers: Some(workers),
        })
    }

    /// The global UDP flow cap, `[global] udp_max_flows` (0: derived from
    /// the descriptor limit; see [`udp_flow_budget`]). Takes effect at
    /// once: flows over a lowered cap are evicted, oldest idle first.
    /// Returns the cap in force.
    pub fn set_udp_max_flows(&self, requested: usize) -> usize {
        let max = udp_flow_budget(requested);
        if requested > max {
            tracing::warn!(
                requested,
                max,
                "udp_max_flows is more than half the open-file limit allows; capped"
            );
        }
        self.udp_flows.set_max(max);
        max
    }

    /// Listening sockets a predecessor handed over (seamless restart): a
    /// service started next with one of these keys accepts on them rather
    /// than binding its own, so no client is refused while the two
    /// processes change places. Those no service takes are closed at the
    /// next apply.
    pub fn inherit(&mut self, listeners: HashMap<ServiceKey, Vec<OwnedFd>>) {
        self.inherited = listeners;
    }

    /// Duplicates of the listening sockets of every running service, for a
    /// successor process (sent over the control socket).
    pub fn listener_fds(&self) -> io::Result<Listeners> {
        self.services
            .iter()
            .map(|s| {
                let fds = s
                    .fds
                    .iter()
                    .map(|f| f.try_clone())
                    .collect::<io::Result<Vec<_>>>()?;
                Ok((s.shared.key, fds))
            })
            .collect()
    }

    /// One descriptor budget for the daemon: the proxy accepts no new
    /// connection while its connections and flows would leave fewer than
    /// `reserve` descriptors (the control socket, VRRP, the dashboard and
    /// the health checks' share); accepting resumes as connections end.
    /// Returns the connection budget in force.
    pub fn set_descriptor_reserve(&self, reserve: usize) -> usize {
        let most = connection_budget(reserve);
        self.budget
            .store(most, std::sync::atomic::Ordering::Relaxed);
        most
    }

    /// UDP flows open now, all services together.
    pub fn udp_flows(&self) -> usize {
        self.udp_flows.count()
    }

    /// The options in force (`workers` resolved).
    pub fn options(&self) -> &ProxyOptions {
        &self.opts
    }

    fn bind(&mut self, svc: &VirtualService) -> io::Result<Vec<Bound>> {
        let mut addr = svc.listen;
        let backlog = i32::try_from(self.opts.backlog).unwrap_or(i32::MAX);
        let mut out = Vec::with_capacity(self.opts.workers);
        // A predecessor's sockets first (all of them, whatever its worker
        // count: every one must be accepted on); then bound ones
        // (SO_REUSEPORT) up to our worker count.
        let mut inherited = self.inherited.remove(&svc.key()).unwrap_or_default();
        while let Some(fd) = inherited.pop() {
            let b = match svc.protocol {
                Protocol::Tcp => Bound::Tcp(std::net::TcpListener::from(fd)),
                Protocol::Udp => Bound::Udp(std::net::UdpSocket::from(fd)),
                Protocol::Sctp => continue,
            };
            let local = match &b {
                Bound::Tcp(l) => l.local_addr()?,
                Bound::Udp(u) => u.local_addr()?,
            };
            if addr.port() != 0 && local != addr {
                tracing::warn!(service = %svc.name, %local, "a handed-over socket is bound elsewhere; not used");
                continue;
            }
            addr = local;
            out.push(b);
        }
        if !out.is_empty() {
            tracing::info!(service = %svc.name, listeners = out.len(), "virtual service takes over its predecessor's listening sockets");
        }
        for _ in out.len().min(self.opts.workers)..self.opts.workers {
            let b = match svc.protocol {
                Protocol::Tcp => Bound::Tcp(listener::bind_tcp(addr, backlog)?),
                Protocol::Udp => Bound::Udp(listener::bind_udp(addr)?),
                Protocol::Sctp => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the userspace proxy has no SCTP: set data_plane = \"ipvs\"",
                    ))
                }
            };
            if addr.port() == 0 {
                // port 0: every worker on the port the first one got
                let local = match &b {
                    Bound::Tcp(l) => l.local_addr()?,
                    Bound::Udp(u) => u.local_addr()?,
                };
                addr = SocketAddr::new(addr.ip(), local.port());
            }
            out.push(b);
        }
        Ok(out)
    }

    fn start(&mut self, svc: &VirtualService) -> Result<Service, DataPlaneError> {
        if self.workers.is_none() {
            return Err(DataPlaneError::Other("data plane stopped".into()));
        }
        let bound = self.bind(svc).map_err(|source| DataPlaneError::Listen {
            service: svc.name.clone(),
            listen: svc.listen,
            source,
        })?;
        let fds = bound
            .iter()
            .map(|b| match b {
                Bound::Tcp(l) => l.as_fd().try_clone_to_owned(),
                Bound::Udp(u) => u.as_fd().try_clone_to_owned(),
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(|source| DataPlaneError::Listen {
                service: svc.name.clone(),
                listen: svc.listen,
                source,
            })?;
        let Some(workers) = self.workers.as_ref() else {
            return Err(DataPlaneError::Other("data plane stopped".into()));
        };
        if svc.protocol == Protocol::Udp && svc.proxy_protocol.is_some() {
            tracing::warn!(service = %svc.name, "PROXY protocol is not sent on UDP services");
        }
        let shared = Arc::new(ServiceShared::new(svc, self.opts.workers));
        let tasks = bound
            .into_iter()
            .enumerate()
            .map(|(worker, b)| {
                let h = workers.handle(worker);
                match b {
                    Bound::Tcp(l) => h
                        .spawn(tcp::accept_loop(
                            l,
                            tcp::TcpCtx {
                                svc: shared.clone(),
                                registry: self.registry.clone(),
                                worker,
                                splice: self.opts.splice,
                                cut: self.cut.subscribe(),
                                budget: self.budget.clone(),
                            },
                        ))
                        .abort_handle(),
                    Bound::Udp(u) => h
                        .spawn(udp::serve(
                            u,
                            udp::UdpCtx {
                                svc: shared.clone(),
                                registry: self.registry.clone(),
                                global: self.udp_flows.clone(),
                                worker,
                            },
                        ))
                        .abort_handle(),
                }
            })
            .collect();
        tracing::info!(service = %svc.name, listen = %svc.listen, protocol = %svc.protocol, "virtual service started");
        Ok(Service { shared, tasks, fds })
    }
}

/// [`DataPlane::observer`] of the proxy: the services' shared counters
/// (the list the estimator timer walks, in table order) and the
/// connection registry.
struct ProxyObserver {
    services: Arc<Mutex<Vec<Arc<ServiceShared>>>>,
    registry: Arc<Registry>,
}

impl halb_table::Observer for ProxyObserver {
    fn stats(&self) -> Vec<ServiceStats> {
        let services = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        services.iter().map(|s| s.stats()).collect()
    }

    fn stats_unlocked(&self) -> Vec<ServiceStats> {
        let services = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        services.iter().map(|s| s.stats_unlocked()).collect()
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        self.registry.snapshot()
    }
}

impl DataPlane for ProxyDataPlane {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn observer(&self) -> Arc<dyn halb_table::Observer> {
        Arc::new(ProxyObserver {
            services: self.timer_list.clone(),
            registry: self.registry.clone(),
        })
    }

    fn apply(&mut self, table: &Table) -> ApplyReport {
        let mut report = ApplyReport::default();
        let wanted: HashSet<ServiceKey> = table.services.iter().map(|s| s.key()).collect();
        let mut old: HashMap<ServiceKey, Service> = HashMap::new();
        for mut s in self.services.drain(..) {
            if wanted.contains(&s.shared.key) {
                old.insert(s.shared.key, s);
            } else {
                s.stop();
                tracing::info!(service = %s.shared.key, "virtual service stopped");
            }
        }
        let mut seen = HashSet::new();
        for svc in &table.services {
            let key = svc.key();
            if !seen.insert(key) {
                report.errors.push(DataPlaneError::Service {
                    service: svc.name.clone(),
                    message: format!("{key} is defined more than once"),
                });
                continue;
            }
            if let Some(s) = old.remove(&key) {
                s.shared.update(svc);
                self.services.push(s);
                continue;
            }
            match self.start(svc) {
                Ok(s) => self.services.push(s),
                Err(e) => {
                    tracing::warn!(error = %e, "virtual service not started");
                    report.errors.push(e);
                }
            }
        }
        *self.timer_list.lock().unwrap_or_else(|e| e.into_inner()) =
            self.services.iter().map(|s| s.shared.clone()).collect();
        // Handed-over sockets no service took: closed.
        self.inherited.clear();
        report
    }

    fn stats(&self) -> Vec<ServiceStats> {
        self.services.iter().map(|s| s.shared.stats()).collect()
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        self.registry.snapshot()
    }

    fn close_listeners(&mut self) {
        for s in &mut self.services {
            s.stop();
        }
    }

    fn open_connections(&self) -> usize {
        self.registry.len()
    }

    fn reset_connections(&mut self) {
        self.close_listeners();
        self.cut.send_replace(true);
    }
}

impl Drop for ProxyDataPlane {
    fn drop(&mut self) {
        self.timer.take();
        for s in &mut self.services {
            s.stop();
        }
        // joins the workers; their remaining connections close
        self.workers.take();
    }
}
