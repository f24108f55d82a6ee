//! The data planes side by side: services with `data_plane = "proxy"` go
//! to the userspace proxy, those with `data_plane = "ipvs"` to the
//! kernel. A kernel without IPVS costs the IPVS services only.

use halb_config::{ForeignServices, Global, SyncRole};
use halb_ipvs::reconcile::ForeignPolicy;
use halb_ipvs::{IpvsDataPlane, IpvsOptions, SyncDaemon, SyncState, Timeouts};
use halb_proxy::ProxyDataPlane;
use halb_table::{
    ApplyReport, ConnectionInfo, DataPlane, DataPlaneKind, Observer, ServiceStats, Table,
};

pub struct Planes {
    proxy: ProxyDataPlane,
    ipvs: IpvsDataPlane,
    uses_ipvs: bool,
    /// The sync daemon's state as the followed VRRP instance set it
    /// (`[global.ipvs.sync_daemon] vrrp_instance`); survives reloads.
    sync_role: Option<SyncState>,
}

/// The IPVS options `[global.ipvs]` describes.
pub fn ipvs_options(g: &Global) -> IpvsOptions {
    let secs = |d: Option<std::time::Duration>| {
        d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    };
    IpvsOptions {
        foreign: match g.ipvs.foreign {
            ForeignServices::Keep => ForeignPolicy::Keep,
            ForeignServices::Remove => ForeignPolicy::Remove,
        },
        timeouts: Timeouts {
            tcp: secs(g.ipvs.timeout_tcp),
            tcp_fin: secs(g.ipvs.timeout_tcpfin),
            udp: secs(g.ipvs.timeout_udp),
        },
        sync_daemon: g.ipvs.sync_daemon.as_ref().map(|d| SyncDaemon {
            state: match d.state {
                SyncRole::Master => SyncState::Master,
                SyncRole::Backup => SyncState::Backup,
            },
            interface: d.interface.clone(),
            sync_id: d.sync_id,
            group: d.group,
            port: d.port,
            ttl: d.ttl,
            max_len: d.max_len,
        }),
    }
}

impl Planes {
    pub fn new(proxy: ProxyDataPlane, global: &Global) -> Self {
        proxy.set_udp_max_flows(global.udp_max_flows);
        Planes {
            proxy,
            ipvs: IpvsDataPlane::new(ipvs_options(global)),
            uses_ipvs: false,
            sync_role: None,
        }
    }

    /// The userspace proxy's listening sockets (duplicates), for a
    /// successor process; IPVS services have none (the kernel keeps them).
    pub fn listener_fds(&self) -> std::io::Result<halb_proxy::Listeners> {
        self.proxy.listener_fds()
    }

    /// See [`ProxyDataPlane::set_descriptor_reserve`].
    pub fn set_descriptor_reserve(&self, reserve: usize) -> usize {
        self.proxy.set_descriptor_reserve(reserve)
    }

    pub fn set_global(&mut self, global: &Global) {
        self.proxy.set_udp_max_flows(global.udp_max_flows);
        let mut opts = ipvs_options(global);
        let follows = global
            .ipvs
            .sync_daemon
            .as_ref()
            .is_some_and(|d| d.follow.is_some());
        if !follows {
            self.sync_role = None;
        }
        if let (Some(d), Some(role)) = (opts.sync_daemon.as_mut(), self.sync_role) {
            d.state = role;
        }
        self.ipvs.set_options(opts);
    }

    /// The followed VRRP instance changed role: the sync daemon's state
    /// follows at the next apply. True when that changes anything.
    pub fn set_sync_role(&mut self, role: SyncState) -> bool {
        if self.sync_role == Some(role) {
            return false;
        }
        self.sync_role = Some(role);
        self.ipvs.set_sync_state(role)
    }
}

/// Both data planes' observers side by side.
struct PlanesObserver {
    proxy: std::sync::Arc<dyn Observer>,
    ipvs: std::sync::Arc<dyn Observer>,
}

impl Observer for PlanesObserver {
    fn stats(&self) -> Vec<ServiceStats> {
        let mut s = self.proxy.stats();
        s.extend(self.ipvs.stats());
        s
    }

    fn stats_unlocked(&self) -> Vec<ServiceStats> {
        let mut s = self.proxy.stats_unlocked();
        s.extend(self.ipvs.stats_unlocked());
        s
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let mut c = self.proxy.connections();
        c.extend(self.ipvs.connections());
        c
    }
}

impl DataPlane for Planes {
    fn observer(&self) -> std::sync::Arc<dyn Observer> {
        std::sync::Arc::new(PlanesObserver {
            proxy: self.proxy.observer(),
            ipvs: self.ipvs.observer(),
        })
    }

    fn name(&self) -> &'static str {
        if self.uses_ipvs {
            "proxy+ipvs"
        } else {
            "proxy"
        }
    }

    fn apply(&mut self, table: &Table) -> ApplyReport {
        let (ipvs, proxy): (Vec<_>, Vec<_>) = table
            .services
            .iter()
            .cloned()
            .partition(|s| s.data_plane == DataPlaneKind::Ipvs);
        self.uses_ipvs = !ipvs.is_empty();
        let mut report = self.proxy.apply(&Table { services: proxy });
        let r = self.ipvs.apply(&Table { services: ipvs });
        report.errors.extend(r.errors);
        report.warnings.extend(r.warnings);
        report
    }

    fn verify(&mut self) -> ApplyReport {
        let mut report = self.proxy.verify();
        let r = self.ipvs.verify();
        report.errors.extend(r.errors);
        report.warnings.extend(r.warnings);
        report
    }

    fn stats(&self) -> Vec<ServiceStats> {
        let mut s = self.proxy.stats();
        s.extend(self.ipvs.stats());
        s
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let mut c = self.proxy.connections();
        if self.uses_ipvs {
            c.extend(self.ipvs.connections());
        }
        c
    }

    fn close_listeners(&mut self) {
        self.proxy.close_listeners();
        self.ipvs.close_listeners();
    }

    fn open_connections(&self) -> usize {
        self.proxy.open_connections() + self.ipvs.open_connections()
    }

    fn reset_connections(&mut self) {
        self.proxy.reset_connections();
        self.ipvs.reset_connections();
    }
}
