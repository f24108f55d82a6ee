//! [`IpvsDataPlane`]: the `halb_table::DataPlane` for Linux IPVS.
//!
//! `apply` reads the kernel's table, reconciles ([`crate::reconcile`]) and
//! sends only the differences, pipelined. The kernel's state is read back
//! for `stats` and the connection table for `connections`.

use crate::model::*;
use crate::procfs;
use crate::reconcile::{reconcile, Entry, ForeignPolicy, Op};
use crate::socket::{IpvsError, IpvsSocket};
use halb_table::{
    ApplyReport, ConnectionInfo, Counters, DataPlane, DataPlaneError, DataPlaneKind, Forward,
    Persistence, Protocol, Rates, RealStats, SchedulerKind, ServiceStats, Table, VirtualService,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kernel-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpvsOptions {
    pub foreign: ForeignPolicy,
    /// Seconds; 0 leaves that timeout as the kernel has it.
    pub timeouts: Timeouts,
    /// The sync daemon halb keeps running; `None`: halb starts none (and
    /// stops the one it started).
    pub sync_daemon: Option<SyncDaemon>,
}

/// The desired kernel entry of one virtual service.
pub fn to_kernel(vs: &VirtualService) -> Entry {
    let id = match vs.fwmark {
        Some(mark) => ServiceId::Fwmark {
            family: Family::of(vs.listen.ip()),
            mark,
        },
        None => ServiceId::Inet {
            protocol: match vs.protocol {
                Protocol::Tcp => IpvsProtocol::Tcp,
                Protocol::Udp => IpvsProtocol::Udp,
                Protocol::Sctp => IpvsProtocol::Sctp,
            },
            addr: vs.listen,
        },
    };
    let mut s = Service::new(id, vs.scheduler.name());
    s.flags.sched_fallback = vs.flags.fallback;
    s.flags.sched_port = vs.flags.port;
    s.flags.one_packet = vs.one_packet;
    if let Some(p) = &vs.persistence {
        s.persistence = Some(
            u32::try_from(p.timeout.as_secs())
                .unwrap_or(u32::MAX)
                .max(1),
        );
        s.netmask = match id.family() {
            Family::V4 => p.prefix_v4,
            Family::V6 => p.prefix_v6,
        };
    }
    let dests = vs
        .reals
        .iter()
        .map(|r| {
            let fwd = match r.forward {
                Forward::Masq => FwdMethod::Masq,
                Forward::Tunnel => FwdMethod::Tunnel,
                Forward::Route | Forward::Proxy => FwdMethod::Route,
            };
            let mut d = Dest::new(r.addr, fwd, r.weight);
            d.upper_threshold = r.upper_threshold;
            d.lower_threshold = r.lower_threshold;
            d.tunnel = match r.tunnel_type {
                halb_table::TunnelType::Ipip => TunnelType::Ipip,
                halb_table::TunnelType::Gue => TunnelType::Gue,
                halb_table::TunnelType::Gre => TunnelType::Gre,
            };
            d.tunnel_port = r.tunnel_port;
            // IP_VS_TUNNEL_ENCAP_FLAG_*: NOCSUM 0, CSUM 1, REMCSUM 2.
            d.tunnel_flags = match (r.forward, r.tunnel_checksum) {
                (Forward::Tunnel, halb_table::TunnelChecksum::Csum) => 1,
                (Forward::Tunnel, halb_table::TunnelChecksum::RemCsum) => 2,
                _ => 0,
            };
            d
        })
        .collect();
    (s, dests)
}

struct Inner {
    sock: Option<IpvsSocket>,
    /// Services halb added or adopted.
    managed: BTreeSet<ServiceId>,
    /// Foreign services already reported (reported once).
    reported: BTreeSet<ServiceId>,
    names: Arc<HashMap<ServiceId, String>>,
    timeouts_sent: Option<Timeouts>,
    daemon_started: Option<SyncDaemon>,
    /// The kernel's table as of the last apply, kept up to date with every
    /// accepted change, so that an apply costs what it changes: a health
    /// transition sends its one operation without reading 10,000 services
    /// back. `None` until read; dropped (re-read at the next apply) when the
    /// kernel refused anything and when the options change (every reload),
    /// which is when changes made behind halb's back are put right.
    kernel: Option<BTreeMap<ServiceId, Entry>>,
    /// "This kernel has no IPVS" was said (once per config, not per apply).
    missing_reported: bool,
    /// Check the model against the kernel at the next
    /// [`DataPlane::verify`] (after a reload): one service dump plus
    /// `/proc/net/ip_vs`, and a destination dump only for the services
    /// that differ ([`crate::procfs`]).
    verify: bool,
    /// The last apply's desired services and their names, for `verify`.
    last: Option<(Vec<Entry>, HashMap<ServiceId, String>)>,
}

/// The IPVS data plane.
/// The names of the managed services as of the last apply (`None`: IPVS
/// never used), shared by the data plane and its observer.
type SharedNames = Arc<Mutex<Option<Arc<HashMap<ServiceId, String>>>>>;

pub struct IpvsDataPlane {
    opts: IpvsOptions,
    inner: Mutex<Inner>,
    /// The names of the services halb manages, as of the last apply
    /// (`None`: IPVS never used), shared with the observer.
    shared_names: SharedNames,
}

/// [`DataPlane::observer`] of IPVS: its own netlink socket, and the names
/// the last apply left, so reading the kernel's counters never waits for
/// an apply.
struct IpvsObserver {
    names: SharedNames,
    sock: Mutex<Option<IpvsSocket>>,
}

impl halb_table::Observer for IpvsObserver {
    fn stats(&self) -> Vec<ServiceStats> {
        let names = self.names.lock().ok().and_then(|n| n.clone());
        let Some(names) = names else {
            return Vec::new();
        };
        let Ok(mut sock) = self.sock.lock() else {
            return Vec::new();
        };
        if sock.is_none() {
            *sock = IpvsSocket::open().ok();
        }
        let Some(sock) = sock.as_mut() else {
            return Vec::new();
        };
        stats_from(sock, &names)
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let used = self.names.lock().ok().is_some_and(|n| n.is_some());
        if used {
            crate::conn::read_conn_table()
        } else {
            Vec::new()
        }
    }
}

impl IpvsDataPlane {
    /// Does not touch the kernel yet: the socket opens at the first
    /// `apply`, so that a kernel without IPVS only matters when a service
    /// asks for it.
    pub fn new(opts: IpvsOptions) -> Self {
        IpvsDataPlane {
            opts,
            inner: Mutex::new(Inner {
                sock: None,
                managed: BTreeSet::new(),
                reported: BTreeSet::new(),
                names: Arc::default(),
                timeouts_sent: None,
                daemon_started: None,
                kernel: None,
                missing_reported: false,
                verify: false,
                last: None,
            }),
            shared_names: Arc::default(),
        }
    }

    /// The sync daemon's state (it follows a VRRP instance): applied at the
    /// next `apply`, without re-reading the table. True when it changed.
    pub fn set_sync_state(&mut self, state: SyncState) -> bool {
        match self.opts.sync_daemon.as_mut() {
            Some(d) if d.state != state => {
                d.state = state;
                true
            }
            _ => false,
        }
    }

    /// New options (at every reload): the model is checked against the
    /// kernel at the next [`DataPlane::verify`], so a change made behind
    /// halb's back is undone, at the cost of one service dump and one read
    /// of `/proc/net/ip_vs` plus a destination dump per service that
    /// differs.
    pub fn set_options(&mut self, opts: IpvsOptions) {
        self.opts = opts;
        if let Ok(inner) = self.inner.get_mut() {
            inner.verify = true;
            inner.missing_reported = false;
        }
    }
}

/// The kernel's table, from `model` and what changed: every service from
/// one dump; the destinations from `model` where `/proc/net/ip_vs` shows
/// them as the model has them, else from a dump. Also returns how many
/// services were dumped again.
fn refresh(
    sock: &mut IpvsSocket,
    model: &BTreeMap<ServiceId, Entry>,
) -> Result<(BTreeMap<ServiceId, Entry>, usize), String> {
    let t0 = std::time::Instant::now();
    // A line is at most ~120 bytes; a service line and one per real server.
    let lines: usize = model.values().map(|(_, d)| 1 + d.len()).sum();
    let text = read_proc("/proc/net/ip_vs", 256 + lines * 128)
        .map_err(|e| format!("/proc/net/ip_vs: {e}"))?;
    let t1 = std::time::Instant::now();
    let seen = procfs::parse(&text)?;
    let shown = procfs::index(&seen);
    let t2 = std::time::Instant::now();
    let services = sock.services().map_err(|e| e.to_string())?;
    let t3 = std::time::Instant::now();
    tracing::debug!(
        "ipvs: table check: /proc/net/ip_vs read {:.1} ms ({} bytes), parsed {:.1} ms, service dump {:.1} ms",
        (t1 - t0).as_secs_f64() * 1e3,
        text.len(),
        (t2 - t1).as_secs_f64() * 1e3,
        (t3 - t2).as_secs_f64() * 1e3
    );
    let mut out = BTreeMap::new();
    let mut reread = 0;
    for s in services {
        let id = s.service.id;
        let same = match (model.get(&id), shown.get(&procfs::ProcKey::from(&id))) {
            (Some((_, d)), Some(Some(p))) => procfs::project(d) == **p,
            _ => false,
        };
        let dests = match model.get(&id) {
            Some((_, d)) if same => d.clone(),
            _ => {
                reread += 1;
                sock.dests(&id)
                    .map_err(|e| format!("{id}: {e}"))?
                    .into_iter()
                    .map(|d| d.dest)
                    .collect()
            }
        };
        out.insert(id, (s.service, dests));
    }
    Ok((out, reread))
}

/// Reads `/proc/net/ip_vs` into a buffer sized for the table
/// (`size_hint` bytes) up front. A seq_file answers each read with about
/// one page, so this is one read per page either way; what it saves is
/// `read_to_string`'s growth from 8 KiB (copies and UTF-8 checks of a
/// 6 MB file as it grows): 1.1 s against `cat`'s 0.55 s for 10,000
/// services under emulation.
fn read_proc(path: &str, size_hint: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf: Vec<u8> = Vec::with_capacity(size_hint.max(64 << 10));
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl IpvsDataPlane {
    /// Make the kernel match `desired`, from the model of its table (read
    /// whole first when there is none): the smallest list of operations,
    /// sent in batches; the model follows what the kernel accepted.
    fn sync(
        &self,
        inner: &mut Inner,
        desired: &[Entry],
        names: HashMap<ServiceId, String>,
        report: &mut ApplyReport,
    ) {
        if inner.kernel.is_none() {
            let sock = match socket(inner) {
                Ok(s) => s,
                Err(_) => return,
            };
            let t0 = std::time::Instant::now();
            match sock.table() {
                Ok(t) => {
                    // A fresh model: nothing left to check.
                    inner.verify = false;
                    tracing::info!(
                        "ipvs: read the kernel's table ({} services, {} real servers) in {:.1} ms",
                        t.len(),
                        t.iter().map(|e| e.1.len()).sum::<usize>(),
                        t0.elapsed().as_secs_f64() * 1e3
                    );
                    inner.kernel = Some(
                        t.into_iter()
                            .map(|(s, d)| {
                                let id = s.service.id;
                                (id, (s.service, d.into_iter().map(|d| d.dest).collect()))
                            })
                            .collect(),
                    )
                }
                Err(e) => {
                    report.warnings.push(DataPlaneError::Other(format!(
                        "reading the IPVS table: {e}"
                    )));
                    return;
                }
            }
        }
        let current: Vec<Entry> = inner
            .kernel
            .as_ref()
            .map(|k| k.values().cloned().collect())
            .unwrap_or_default();
        let existed: BTreeSet<ServiceId> = current.iter().map(|e| e.0.id).collect();
        let plan = reconcile(desired, &current, &inner.managed, self.opts.foreign);
        for id in &plan.adopted {
            tracing::info!(
                "ipvs: adopted the kernel's {id} as virtual service {}",
                names.get(id).map_or("?", String::as_str)
            );
        }
        let mut newly = Vec::new();
        for id in &plan.foreign {
            if !inner.reported.contains(id) {
                newly.push(*id);
                match self.opts.foreign {
                    ForeignPolicy::Keep => tracing::warn!(
                        "ipvs: {id} is in the kernel but not in the config; left alone ([global.ipvs] foreign = \"remove\" deletes such services)"
                    ),
                    ForeignPolicy::Remove => {
                        tracing::warn!("ipvs: {id} is in the kernel but not in the config; removing it (foreign = \"remove\")")
                    }
                }
            }
        }
        let sock = match socket(inner) {
            Ok(s) => s,
            Err(_) => return,
        };
        let reqs: Vec<_> = plan.ops.iter().map(Op::request).collect();
        let t0 = std::time::Instant::now();
        let results = sock.execute(&reqs);
        let took = t0.elapsed();
        let mut failed: BTreeSet<ServiceId> = BTreeSet::new();
        let mut refused = 0;
        for (op, res) in plan.ops.iter().zip(results) {
            tracing::debug!("ipvs: ipvsadm {op}");
            if let Err(e) = res {
                let id = op.service();
                failed.insert(id);
                refused += 1;
                let name = names
                    .get(&id)
                    .or_else(|| inner.names.get(&id))
                    .cloned()
                    .unwrap_or_else(|| id.to_string());
                let what = match op.dest() {
                    Some(d) => format!("({id}) real server {d}: {e} (ipvsadm {op})"),
                    None => format!("({id}): {e} (ipvsadm {op})"),
                };
                report.warnings.push(service_err(&name, what));
            }
        }
        if !plan.ops.is_empty() {
            tracing::info!(
                "ipvs: {} change(s) sent to the kernel in {:.1} ms, {} refused",
                plan.ops.len(),
                took.as_secs_f64() * 1e3,
                refused
            );
        }
        inner.reported.extend(newly);
        for op in &plan.ops {
            match op {
                Op::DelService(id) if !failed.contains(id) => {
                    inner.managed.remove(id);
                }
                _ => {}
            }
        }
        for e in desired {
            if !failed.contains(&e.0.id) || existed.contains(&e.0.id) {
                inner.managed.insert(e.0.id);
            }
        }
        inner.names = Arc::new(names);
        if let Ok(mut shared) = self.shared_names.lock() {
            *shared = Some(inner.names.clone());
        }
        if failed.is_empty() {
            if let Some(k) = inner.kernel.as_mut() {
                crate::reconcile::apply_ops_map(k, &plan.ops);
            }
        } else {
            // What the kernel holds now is not known exactly: read it again.
            inner.kernel = None;
        }
    }
}

fn socket(inner: &mut Inner) -> Result<&mut IpvsSocket, IpvsError> {
    if inner.sock.is_none() {
        inner.sock = Some(IpvsSocket::open()?);
    }
    inner.sock.as_mut().ok_or(IpvsError::NotAvailable)
}

fn service_err(name: &str, message: String) -> DataPlaneError {
    DataPlaneError::Service {
        service: name.to_owned(),
        message,
    }
}

impl DataPlane for IpvsDataPlane {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    fn observer(&self) -> Arc<dyn halb_table::Observer> {
        Arc::new(IpvsObserver {
            names: self.shared_names.clone(),
            sock: Mutex::new(None),
        })
    }

    fn apply(&mut self, table: &Table) -> ApplyReport {
        let mut report = ApplyReport::default();
        let Ok(mut inner) = self.inner.lock() else {
            report
                .errors
                .push(DataPlaneError::Other("ipvs state poisoned".into()));
            return report;
        };
        let services: Vec<&VirtualService> = table
            .services
            .iter()
            .filter(|s| s.data_plane == DataPlaneKind::Ipvs)
            .collect();
        let desired: Vec<Entry> = services.iter().map(|s| to_kernel(s)).collect();
        let names: HashMap<ServiceId, String> = services
            .iter()
            .zip(&desired)
            .map(|(s, e)| (e.0.id, s.name.clone()))
            .collect();
        if desired.is_empty() && inner.managed.is_empty() && inner.sock.is_none() {
            return report;
        }
        if let Err(e) = socket(&mut inner) {
            if std::mem::replace(&mut inner.missing_reported, true) {
                return report;
            }
            // Named, but not 10,000 of them in one line.
            let mut list = services
                .iter()
                .take(10)
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if services.len() > 10 {
                list.push_str(&format!(" and {} more", services.len() - 10));
            }
            report.warnings.push(DataPlaneError::Other(format!(
                "IPVS virtual service(s) {list} not started: {e}"
            )));
            return report;
        }
        inner.last = Some((desired.clone(), names.clone()));
        let check_due = inner.verify;
        let mut first = ApplyReport::default();
        self.sync(&mut inner, &desired, names.clone(), &mut first);
        if check_due && !(first.errors.is_empty() && first.warnings.is_empty()) {
            // Refused against a model that a change behind halb's back
            // made stale: read the table now, and answer with what that
            // finds (the kernel refused nothing the first try got right).
            inner.verify = false;
            inner.kernel = None;
            self.sync(&mut inner, &desired, names, &mut report);
        } else {
            report.warnings.extend(first.warnings);
            report.errors.extend(first.errors);
        }

        // Kernel-wide: timeouts and the sync daemon.
        let t = self.opts.timeouts;
        if t != Timeouts::default() && inner.timeouts_sent != Some(t) {
            if let Ok(sock) = socket(&mut inner) {
                match sock.request(&crate::Request::SetConfig(t)) {
                    Ok(_) => inner.timeouts_sent = Some(t),
                    Err(e) => report
                        .warnings
                        .push(DataPlaneError::Other(format!("ipvs timeouts: {e}"))),
                }
            }
        }
        let want = self.opts.sync_daemon.clone();
        if want != inner.daemon_started {
            let old = inner.daemon_started.clone();
            if let Ok(sock) = socket(&mut inner) {
                if let Some(old) = &old {
                    let _ = sock.request(&crate::Request::DelDaemon(old.state));
                }
                let mut started = None;
                if let Some(d) = &want {
                    let running = sock.daemons().unwrap_or_default();
                    if running.iter().any(|r| r.state == d.state) {
                        let _ = sock.request(&crate::Request::DelDaemon(d.state));
                    }
                    match sock.request(&crate::Request::NewDaemon(d.clone())) {
                        Ok(_) => {
                            tracing::info!(
                                "ipvs: sync daemon {:?} on {} (sync id {}) started",
                                d.state,
                                d.interface,
                                d.sync_id
                            );
                            started = Some(d.clone());
                        }
                        Err(e) => report.warnings.push(DataPlaneError::Other(format!(
                            "ipvs sync daemon on {}: {e}",
                            d.interface
                        ))),
                    }
                }
                inner.daemon_started = started;
            }
        }
        report
    }

    /// After a reload: check the model against the kernel and put right
    /// what was changed behind halb's back (the reload's own changes went
    /// out from the model, before this read of the whole table).
    fn verify(&mut self) -> ApplyReport {
        let mut report = ApplyReport::default();
        let Ok(mut inner) = self.inner.lock() else {
            return report;
        };
        if inner.sock.is_none() || !std::mem::take(&mut inner.verify) {
            return report;
        }
        let Some((desired, names)) = inner.last.take() else {
            return report;
        };
        if let Some(model) = inner.kernel.take() {
            let t0 = std::time::Instant::now();
            let checked = socket(&mut inner)
                .map_err(|e| e.to_string())
                .and_then(|sock| refresh(sock, &model));
            match checked {
                Ok((fresh, reread)) => {
                    tracing::info!(
                        "ipvs: checked the kernel's table ({} services; {} re-read) in {:.1} ms",
                        fresh.len(),
                        reread,
                        t0.elapsed().as_secs_f64() * 1e3
                    );
                    inner.kernel = Some(fresh);
                }
                // The full read below.
                Err(e) => tracing::info!(
                    "ipvs: quick check of the kernel's table failed ({e}); reading it whole"
                ),
            }
        }
        self.sync(&mut inner, &desired, names.clone(), &mut report);
        inner.last = Some((desired, names));
        report
    }

    fn stats(&self) -> Vec<ServiceStats> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        if inner.sock.is_none() {
            return Vec::new();
        }
        let names = inner.names.clone();
        let Ok(sock) = socket(&mut inner) else {
            return Vec::new();
        };
        stats_from(sock, &names)
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        crate::conn::read_conn_table()
    }
}

impl Drop for IpvsDataPlane {
    /// A director that stops must not keep sending (or receiving) sync
    /// messages: the sync daemon halb started stops with it, as with
    /// keepalived. The virtual services stay, so packets keep flowing
    /// through a restart.
    fn drop(&mut self) {
        let Ok(inner) = self.inner.get_mut() else {
            return;
        };
        if let (Some(d), Some(sock)) = (inner.daemon_started.take(), inner.sock.as_mut()) {
            match sock.request(&crate::Request::DelDaemon(d.state)) {
                Ok(_) => {
                    tracing::info!("ipvs: sync daemon {:?} on {} stopped", d.state, d.interface)
                }
                Err(e) => tracing::warn!("ipvs: stopping the sync daemon on {}: {e}", d.interface),
            }
        }
    }
}

fn counters_of(s: &Stats) -> Counters {
    Counters {
        conns: s.conns,
        active: 0,
        inactive: 0,
        bytes_in: s.inbytes,
        bytes_out: s.outbytes,
        packets_in: s.inpkts,
        packets_out: s.outpkts,
    }
}

fn counters(s: &Stats) -> Counters {
    counters_of(s)
}

fn rates(s: &Stats) -> Rates {
    Rates {
        cps: s.cps as f64,
        inpps: s.inpps as f64,
        outpps: s.outpps as f64,
        inbps: s.inbps as f64,
        outbps: s.outbps as f64,
    }
}

/// The kernel's counters as [`ServiceStats`], named with `names`.
fn stats_from(sock: &mut IpvsSocket, names: &HashMap<ServiceId, String>) -> Vec<ServiceStats> {
    let Ok(table) = sock.table() else {
        return Vec::new();
    };
    table
        .into_iter()
        .map(|(si, dests)| {
            let s = &si.service;
            let (protocol, listen) = match s.id {
                ServiceId::Inet { protocol, addr } => (
                    match protocol {
                        IpvsProtocol::Tcp => Protocol::Tcp,
                        IpvsProtocol::Udp => Protocol::Udp,
                        IpvsProtocol::Sctp => Protocol::Sctp,
                    },
                    addr,
                ),
                ServiceId::Fwmark { family, .. } => (
                    Protocol::Tcp,
                    match family {
                        Family::V4 => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                        Family::V6 => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                    },
                ),
            };
            let mut counters = counters(&si.stats);
            let reals: Vec<RealStats> = dests
                .iter()
                .map(|d| {
                    let mut c = counters_of(&d.stats);
                    c.active = u64::from(d.active_conns);
                    c.inactive = u64::from(d.inactive_conns);
                    RealStats {
                        addr: d.dest.addr,
                        weight: d.dest.weight,
                        forward: match d.dest.fwd {
                            FwdMethod::Masq => Forward::Masq,
                            FwdMethod::Tunnel => Forward::Tunnel,
                            _ => Forward::Route,
                        },
                        overloaded: false,
                        removed: false,
                        left_out_ms: 0,
                        counters: c,
                        rates: rates(&d.stats),
                    }
                })
                .collect();
            counters.active = reals.iter().map(|r| r.counters.active).sum();
            counters.inactive = reals.iter().map(|r| r.counters.inactive).sum();
            ServiceStats {
                name: names
                    .get(&s.id)
                    .cloned()
                    .unwrap_or_else(|| format!("{} (not managed by halb)", s.id)),
                protocol,
                listen,
                scheduler: SchedulerKind::from_name(&s.scheduler).unwrap_or(SchedulerKind::Wlc),
                scheduler_name: SchedulerKind::from_name(&s.scheduler)
                    .is_none()
                    .then(|| s.scheduler.clone()),
                flags: halb_table::SchedulerFlags {
                    fallback: s.flags.sched_fallback,
                    port: s.flags.sched_port,
                },
                fwmark: match s.id {
                    ServiceId::Fwmark { mark, .. } => Some(mark),
                    ServiceId::Inet { .. } => None,
                },
                one_packet: s.flags.one_packet,
                persistence: s.persistence.map(|t| Persistence {
                    timeout: Duration::from_secs(u64::from(t)),
                    prefix_v4: if s.id.family() == Family::V4 {
                        s.netmask
                    } else {
                        32
                    },
                    prefix_v6: if s.id.family() == Family::V6 {
                        s.netmask
                    } else {
                        128
                    },
                }),
                fallback: None,
                fallback_conns: 0,
                udp_flows: 0,
                udp_flows_evicted: 0,
                counters,
                rates: rates(&si.stats),
                reals,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use halb_table::{Persistence, RealServer, SchedulerFlags};

    #[test]
    fn table_to_kernel() {
        let mut vs = VirtualService::new(
            "web",
            "192.0.2.10:80".parse().unwrap(),
            Protocol::Tcp,
            SchedulerKind::Sh,
        );
        vs.data_plane = DataPlaneKind::Ipvs;
        vs.flags = SchedulerFlags {
            fallback: true,
            port: false,
        };
        vs.persistence = Some(Persistence {
            timeout: Duration::from_secs(600),
            prefix_v4: 24,
            prefix_v6: 64,
        });
        let mut r = RealServer::new("198.51.100.1:80".parse().unwrap(), 3);
        r.forward = Forward::Masq;
        r.upper_threshold = 10;
        vs.reals.push(r);
        let (s, d) = to_kernel(&vs);
        assert_eq!(
            crate::reconcile::Op::AddService(s).to_string(),
            "-A -t 192.0.2.10:80 -s sh -b sh-fallback -p 600 -M 24"
        );
        assert_eq!(
            crate::reconcile::Op::AddDest(web(), d[0]).to_string(),
            "-a -t 192.0.2.10:80 -r 198.51.100.1:80 -m -w 3 -x 10"
        );
    }

    fn web() -> ServiceId {
        ServiceId::Inet {
            protocol: IpvsProtocol::Tcp,
            addr: "192.0.2.10:80".parse().unwrap(),
        }
    }

    #[test]
    fn nothing_to_do_touches_no_kernel() {
        let mut p = IpvsDataPlane::new(IpvsOptions::default());
        let r = p.apply(&Table::default());
        assert!(r.is_ok() && r.warnings.is_empty());
        assert!(p.stats().is_empty());
    }
}
